"""Rows of a query over the log, rendered for a person (a rich table) or a program (JSON lines, CSV).

- JSON lines, one object per row: a column of DuckDB type JSON (`request_body`, `response_body`, `x->'y'`) is a JSON
  value, not a string holding JSON, and the numbers in it pass through as they were written; maps, structs and lists
  (`properties`, `ratelimit`, `attempt_log`, `notes`) are JSON objects and arrays; a DECIMAL (`cost_usd`, a sum of
  it) is a JSON number written from its exact decimal (`0.000115`, never `0.00011500000000000001` or `1.15e-04`);
  timestamps are ISO 8601 strings.
- CSV: the same exact decimals; JSON columns, maps and lists as compact JSON text.
- table: money (a number in a column whose name says `usd` or `cost`) as `money.format_usd` shows it everywhere
  (`$0.000115`); everything else as in CSV.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .money import exact_decimal_text, format_usd

if TYPE_CHECKING:
    from rich.table import Table

NUMERIC_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "DECIMAL"}


def render_rows(columns: list[str], rows: list[tuple], output_format: str, types: list[str] | None = None) -> None:
    """Print `rows` (with DuckDB type names `types`, when known) as a rich table, JSON lines or CSV."""
    types = types or ["" for _ in columns]
    if output_format == "json":
        for row in rows:
            print(json_line(columns, types, row))
    elif output_format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([[cell_text(value, kind) for value, kind in zip(row, types, strict=True)] for row in rows])
    else:
        from rich.console import Console

        Console().print(rich_table(columns, types, rows))


def rich_table(columns: list[str], types: list[str], rows: list[tuple], headers: Mapping[str, str] | None = None,
               title: str | None = None) -> Table:
    """Rows as a rich table for a person: money as `format_usd`, counts with thousands separators, `…_ms` in whole
    milliseconds, `…_pct` as a percentage, times to the second (UTC); numbers right-aligned. `headers` renames
    columns for the eye only."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for name, kind in zip(columns, types, strict=True):
        table.add_column((headers or {}).get(name, name), justify="right" if _is_numeric(name, kind) else "left",
                         overflow="fold")
    for row in rows:
        # Text, not str: a logged value (a user id, a model name) is shown as it is, never read as rich markup;
        # literal: an escape sequence in it is shown, not obeyed by the terminal.
        table.add_row(*[Text(literal(table_cell_text(name, value, kind)))
                        for name, value, kind in zip(columns, row, types, strict=True)])
    return table


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def literal(text: str) -> str:
    """`text` with control characters (an ANSI escape, a bell) written as escapes (`\\x1b`), so they show."""
    return CONTROL.sub(lambda m: repr(m[0])[1:-1], text)


def table_cell_text(name: str, value: Any, kind: str = "") -> str:
    """One value as a table shows it (see `rich_table`)."""
    if value is None:
        return "$?" if _is_money(name) else ""
    if _is_money(name):
        return _money_text(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) and math.isfinite(value):
        if name.endswith("_pct"):
            return f"{value:.1f}%"
        if name.endswith("_ms"):
            return f"{value:,.0f}"
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return cell_text(value, kind)


def _is_numeric(name: str, kind: str) -> bool:
    return _is_money(name) or kind.split("(")[0] in NUMERIC_TYPES


def json_line(columns: list[str], types: list[str], row: tuple) -> str:
    """One row as one line of JSON (see the module's docstring for how each kind of column is written)."""
    fields = []
    for name, kind, value in zip(columns, types, row, strict=True):
        try:
            text = _json_text(_from_json_column(value) if kind == "JSON" else value)
        except RecursionError:  # nested deeper than Python follows: the column's text, as a string
            text = json.dumps(str(value))
        fields.append(f"{json.dumps(name)}: {text}")
    return "{" + ", ".join(fields) + "}"


def cell_text(value: Any, kind: str = "") -> str:
    """A value as one CSV or table cell: exact decimals, JSON for JSON columns, maps and lists, ISO timestamps."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value  # a JSON column's text is already JSON
    if isinstance(value, (dict, list, tuple)):
        try:
            return _json_text(value)
        except RecursionError:
            return str(value)
    return _scalar_text(value)


class _JsonNumber(str):
    """A number from a JSON column's text, written back exactly as it was (no float round trip)."""


def _from_json_column(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value, parse_float=_JsonNumber, parse_int=_JsonNumber)
    except ValueError:  # DuckDB stored it as JSON, so this does not happen; keep the text if it ever does
        return value


def _json_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, _JsonNumber):
        return str(value)
    if isinstance(value, bool | str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_json_text(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return exact_decimal_text(value) if value.is_finite() else "null"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"  # NaN is not JSON
    if isinstance(value, int):
        return str(value)
    return json.dumps(_scalar_text(value))


def _scalar_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return exact_decimal_text(value) if value.is_finite() else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _is_money(name: str) -> bool:
    return "usd" in name.lower() or "cost" in name.lower()


def _money_text(value: Any) -> str:
    """A money column's cell: DECIMAL sums and DOUBLE averages (`avg(cost_usd)`) alike as `format_usd` shows them."""
    if isinstance(value, float) and math.isfinite(value):
        return format_usd(Decimal(repr(value)))
    return format_usd(value) if isinstance(value, Decimal | int) and not isinstance(value, bool) else cell_text(value)
