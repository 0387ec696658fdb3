"""`llmtap sql`: any SQL over the log, while the gateway runs or after it stopped."""

from __future__ import annotations

import sys

import click

from ..analytics import queries
from ..config import Config
from ..render import render_rows
from .options import config_option
from .reading import read_log, warn_if_storage_unhealthy


@click.command()
@click.argument("query")
@config_option()
@click.option("--format", "output_format", type=click.Choice(["table", "json", "csv"]),
              help="default: table on a terminal, else json")
def sql(query: str, config: Config, output_format: str | None) -> int:
    """Run a SQL query over the log (works while the gateway runs)."""
    warn_if_storage_unhealthy(config)
    rows = read_log(config, queries.run, query)
    render_rows(rows.columns, rows.rows, output_format or ("table" if sys.stdout.isatty() else "json"), rows.types)
    return 0
