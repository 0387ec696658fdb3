"""`llmtap sql`: any SQL over the log, while the gateway runs or after it stopped."""

from __future__ import annotations

import sys

import click

from ..config import Config
from ..render import render_rows
from .health import warn_if_storage_unhealthy
from .options import config_option


@click.command()
@click.argument("query")
@config_option()
@click.option("--format", "output_format", type=click.Choice(["table", "json", "csv"]),
              help="default: table on a terminal, else json")
def sql(query: str, config: Config, output_format: str | None) -> int:
    """Run a SQL query over the log (works while the gateway runs)."""
    warn_if_storage_unhealthy(config)
    return run_sql(config, query, output_format)


def run_sql(config: Config, query: str, output_format: str | None) -> int:
    import duckdb

    from ..batch_writer import read_log_typed
    from ..log_file import log_file_problem

    if not config.storage_path.exists():
        print(f"llmtap: no log yet at {config.storage_path} (start the gateway and make a call)", file=sys.stderr)
        return 1
    try:
        columns, types, rows = read_log_typed(config.storage_path, query)
    except duckdb.IOException as e:  # the file itself, not the query: say what to do, as start-up would
        print(f"llmtap: {log_file_problem(config.storage_path) or e}", file=sys.stderr)
        return 1
    except duckdb.Error as e:
        print(f"llmtap: {e}", file=sys.stderr)
        return 1
    output_format = output_format or ("table" if sys.stdout.isatty() else "json")
    render_rows(columns, rows, output_format, types)
    return 0


