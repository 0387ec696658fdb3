"""The one way a command prints rows: a rich table on a terminal, the same table as plain text fitted to 80 columns
when stdout is not a terminal, one JSON object per line (`--json`) or CSV (`--csv`). How each kind of value is
written (exact money in JSON and CSV, `$0.0000082` in a table) is render.py's."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import click
from rich.console import Console, RenderableType

from ..analytics.queries import Rows
from ..render import render_rows, rich_table

PIPE_WIDTH = 80


def console() -> Console:
    """Rich's console for stdout: the terminal's width and colours on a terminal, 80 plain columns in a pipe."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=PIPE_WIDTH, no_color=True, highlight=False, emoji=False, markup=False)


def emit(rows: Rows, output_format: str, empty: str, headers: Mapping[str, str] | None = None,
         title: str | None = None) -> None:
    """Print `rows` in `output_format` (table, json, csv). With no rows, a table says `empty` in words; JSON and CSV
    print nothing on stdout (CSV its header line) and say it on stderr, so a pipe reads no prose."""
    if output_format in ("json", "csv"):
        if not rows.rows:
            print(f"llmtap: {empty}", file=sys.stderr)
        render_rows(rows.columns, rows.rows, output_format, rows.types)
        return
    if not rows.rows:
        print(empty)
        return
    show(rich_table(rows.columns, rows.types, rows.rows, headers or {}, title))


TABLE_ROWS = 50  # a table longer than this is slow to lay out (rich: seconds per thousand rows) and to read


def table_rows_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`-n/--count N`: how many rows a table shows (the first, in the report's order); the command receives
    `count` (0: all). --json/--csv always give every row: a program never gets a cut list without asking."""
    return click.option("-n", "--count", type=click.IntRange(min=0), default=TABLE_ROWS, show_default=True,
                        help="rows a table shows, 0 for all (--json/--csv give every row)")(command)


SQL_LIMIT_MAX = 2**63 - 1  # DuckDB's LIMIT is a BIGINT


def sql_limit(ctx: click.Context, param: click.Parameter, value: int) -> int:
    """A click callback for a count that becomes a SQL LIMIT: a count larger than a BIGINT holds means every row,
    as it says, instead of DuckDB's conversion error."""
    return min(value, SQL_LIMIT_MAX)


def cut[T](rows: list[T], count: int, what: str) -> tuple[list[T], str | None]:
    """The first `count` of `rows` (all when 0) and, when some are left out, the line that says so."""
    if not count or len(rows) <= count:
        return rows, None
    return rows[:count], f"… and {len(rows) - count:,} more {what} (-n 0 shows all; --json/--csv give every row)"


def show(*renderables: RenderableType) -> None:
    """Print rich renderables (a table, a tree, bars) the way `emit` prints tables."""
    out = console()
    for renderable in renderables:
        out.print(renderable)
