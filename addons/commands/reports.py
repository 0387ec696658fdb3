"""`llmtap costs`, `llmtap users`, `llmtap trends`: what was spent, by whom, and how it moves over time.

One module for the three because they share how they read (a missing log, a log DuckDB cannot open) and what they
say under a money column when some calls have no price; each command only lays out its query's rows.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import click
from rich import box
from rich.bar import Bar
from rich.table import Table
from rich.text import Text

from ..analytics import queries
from ..analytics.queries import Dimension, Rows
from ..analytics.scope import Scope, ScopeError
from ..config import Config
from ..money import format_usd
from ..render import literal, rich_table, table_cell_text
from .options import config_option, format_options, scope_options
from .output import console, cut, emit, show, table_rows_option
from .reading import read_log, warn_if_storage_unhealthy

REPORT_SINCE = "7d"
DIMENSION_HELP = "model, provider, user, key, session, status, hour, day, week, month or property:NAME"
NO_VALUE = "(none)"
NO_CALLS = "no calls in this time range and filters"
MAX_LABEL_WIDTH = 28  # a trend's group names (models, users) beyond this are cut, so the bars keep their room


def _dimension(ctx: click.Context, param: click.Parameter, value: str | None) -> Dimension | None:
    try:
        return None if value is None else queries.dimension(value)
    except ScopeError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None


def _say_unpriced(config: Config, scope: Scope, output_format: str) -> None:
    """Why a cost total leaves calls out: how many have no price, by model and reason (on stderr for a pipe's
    JSON/CSV, so stdout stays rows)."""
    missing = read_log(config, queries.unpriced, scope)
    if not missing.rows:
        return
    count = sum(calls for _, _, calls in missing.rows)
    reasons = "; ".join(f"{calls:,} × {model or NO_VALUE} ({reason})" for model, reason, calls in missing.rows)
    _say(f"{count:,} call{'s' * (count != 1)} without a price, not in the cost: {reasons}", output_format)


def _say(line: str, output_format: str) -> None:
    """A line about a report below its table, or on stderr for a pipe's JSON/CSV (so stdout stays rows)."""
    if output_format == "table":
        show(Text(literal(line)))
    else:
        print(f"llmtap: {line}", file=sys.stderr)


def _groups_only(rows: Rows) -> Rows:
    """The group rows alone, without subtotals, the total and the `kind` column: what a pipe sums by itself."""
    kind = rows.columns.index("kind")
    groups = Rows(rows.columns, rows.types, [row for row in rows.rows if row[kind] == "group"])
    return groups.only(name for name in rows.columns if name != "kind")


def _short_count(count: int) -> str:
    """A count for a narrow column: `8,765`, `12.3k`, `4.5M`."""
    if count >= 10_000:
        for size, unit in ((10**9, "G"), (10**6, "M"), (10**3, "k")):
            if count >= size:
                return f"{count / size:.1f}{unit}"
    return f"{count:,}"


def _compact(table: Table, wrap: tuple[str, ...]) -> Table:
    """A report table that fits 80 columns: no frame, one space between columns, numbers never broken (only the
    columns named in `wrap`, by their header, give up width)."""
    table.box = box.SIMPLE_HEAD
    table.show_edge = False
    table.padding = (0, 0)
    for column in table.columns:
        column.no_wrap = str(column.header) not in wrap
    return table


COST_HEADERS = {"requests": "calls", "input_tokens": "tokens\nin", "output_tokens": "tokens\nout", "cost_usd": "cost",
                "avg_cost_usd": "cost per\ncall", "saved_usd": "cache\nsaved", "share_pct": "share",
                "unpriced": "no\nprice"}
# With --as, a table leaves out the per-call, cache and share columns and the count of calls not re-priced (said
# below it) so it still fits; --json/--csv keep them.
COST_AS_HIDDEN = ("avg_cost_usd", "saved_usd", "share_pct", "not_repriced")
COST_AS_HEADERS = {**COST_HEADERS, "as_cost_usd": "cost\nas-if", "change_pct": "change"}


@click.command()
@click.option("--by", "by", default="model", show_default=True, callback=_dimension, metavar="DIMENSION",
              help=f"group by {DIMENSION_HELP}")
@click.option("--then", "then", callback=_dimension, metavar="DIMENSION",
              help="within each --by group, split by another dimension (e.g. --by property:workflow --then "
                   "property:step)")
@click.option("--as", "as_model", metavar="MODEL",
              help="also what the calls would have cost on MODEL (provider/model or a model's name), same tokens")
@scope_options(REPORT_SINCE)
@table_rows_option
@format_options
@config_option()
def costs(by: Dimension, then: Dimension | None, as_model: str | None, scope: Scope, count: int, output_format: str,
          config: Config) -> int:
    """What was spent, per model, user, day, workflow, ... (--by).

    Per group: calls, input and output tokens, the cost of the priced calls, the average cost per priced call, what
    llmtap's cache saved and the group's share of the total cost; the total last. With --then, each --by group's
    subtotal comes first, its --then groups under it. Calls without a price are counted and named below the table,
    never added as $0; a group without a value (no user, no such property) is "(none)". --json/--csv give the
    group rows only (no subtotals, no total), with exact decimals.

    With --as MODEL (`anthropic/claude-haiku-4-5`, or `claude-haiku-4-5`: the provider the gateway would route it
    to, else the one genai-prices knows it from), each call is also priced as if MODEL had answered it with the same
    tokens (input, cached input, cache-write input, output), at MODEL's price today, a `pricing` entry in config
    first: `as_cost_usd`, and `change_pct` from the real cost (over the calls that have both; -75 is a quarter). A
    cache hit and a call no provider billed cost 0 on MODEL too; a call that recorded no tokens is not re-priced
    (`not_repriced`), never counted as $0. A model with no known price is refused (exit status 2).
    """
    warn_if_storage_unhealthy(config)
    if as_model is None:
        rows = read_log(config, queries.costs, scope, by, then)
    else:
        from .. import repricing  # brings genai-prices' data: only this report pays for it

        try:
            target = repricing.target_model(as_model, config)
        except repricing.UnknownModel as e:
            raise click.BadParameter(str(e), param_hint="'--as'") from None
        rows = read_log(config, repricing.costs_as, scope, by, then, target)
    if output_format != "table" or not rows.rows:
        emit(_groups_only(rows), output_format, empty=NO_CALLS)
    elif as_model is None:
        show(*_cost_table(rows, by, then, count))
    else:
        show(Text(literal(f"as if every call had used {as_model} (same tokens, today's price):")),
             *_cost_table(rows.only(n for n in rows.columns if n not in COST_AS_HIDDEN), by, then, count,
                         COST_AS_HEADERS))
    if rows.rows and rows.rows[-1][rows.columns.index("unpriced")]:
        _say_unpriced(config, scope, output_format)
    if as_model is not None and rows.rows and (not_repriced := rows.rows[-1][rows.columns.index("not_repriced")]):
        calls = f"{not_repriced:,} call{'s' * (not_repriced != 1)}"
        _say(f"{calls} recorded no tokens, so {'is' if not_repriced == 1 else 'are'} not in the cost on {as_model}",
             output_format)
    return 0


def _cost_table(rows: Rows, by: Dimension, then: Dimension | None, count: int,
                headers: dict[str, str] = COST_HEADERS) -> list[Table | str]:
    """The costs as a table that fits 80 columns: one label column (with --then, each `by` group's subtotal in bold
    and its `then` groups indented under it), the first `count` rows, the total (of every group) last under a rule;
    and the line saying how many rows were left out, if any."""
    shown, more = cut(rows.rows[:-1], count, "rows")
    rows = Rows(rows.columns, rows.types, [*shown, rows.rows[-1]])
    numbers = rows.columns[rows.columns.index("requests"):rows.columns.index("kind")]
    label_column = by.name if then is None else f"{by.name} / {then.name}"

    def label(record: dict[str, Any]) -> str:
        if record["kind"] == "total":
            return "total"
        name = by.name if then is None or record["kind"] == "subtotal" else then.name
        value = NO_VALUE if record[name] is None else table_cell_text(name, record[name])
        return value if name == by.name else f"  {value}"

    laid_out = [(label(record), *(_short_count(record[name]) if name.endswith("_tokens") else
                                  _change(record[name]) if name == "change_pct" else record[name]
                                  for name in numbers)) for record in rows.dicts()]
    types = ["VARCHAR", *rows.types[rows.columns.index("requests"):rows.columns.index("kind")]]
    table = _compact(rich_table([label_column, *numbers], types, laid_out, headers), wrap=(label_column,))
    for row, kind in zip(table.rows, (row[-1] for row in rows.rows), strict=True):
        row.style = "bold" if kind == "subtotal" else None
    table.rows[-2].end_section = True  # a rule above the total
    return [table] if more is None else [table, more]


def _change(change_pct: float | None) -> str | None:
    """A change as a table shows it, signed: `-75.0%` cheaper, `+12.5%` dearer."""
    return None if change_pct is None else f"{change_pct:+.1f}%"


USER_HEADERS = {"requests": "calls", "cost_usd": "cost", "avg_latency_ms": "avg ms", "p95_latency_ms": "p95 ms",
                "error_pct": "errors", "models": "models", "last_seen": "last seen"}


@click.command()
@scope_options(REPORT_SINCE)
@table_rows_option
@format_options
@config_option()
def users(scope: Scope, count: int, output_format: str, config: Config) -> int:
    """Calls, cost, latency, errors and models per user.

    Per Helicone-User-Id: calls, cost, average and p95 latency, error rate, the models used (share of the user's
    calls) and the last call's time (UTC). Calls that named no user are one row, "(no user)". The cost is that of
    the priced calls; calls without a price are counted (`unpriced` in --json/--csv) and named below the table.
    Errors are answers of 400 and up and calls that got no answer.
    """
    warn_if_storage_unhealthy(config)
    rows = read_log(config, queries.users, scope)
    if output_format != "table" or not rows.rows:
        emit(rows, output_format, empty=NO_CALLS)
    else:
        shown = [name for name in rows.columns if name != "unpriced"]
        first, more = cut(rows.rows, count, "users")
        unpriced = rows.columns.index("unpriced")
        laid_out = [tuple("(no user)" if name == "user" and value is None else
                          value.strftime("%m-%d %H:%M") if name == "last_seen" else
                          _first_models(value) if name == "models" else
                          _partial_cost(value, row[unpriced]) if name == "cost_usd" else value
                          for name, value in zip(rows.columns, row, strict=True) if name in shown)
                    for row in first]
        types = [kind for name, kind in zip(rows.columns, rows.types, strict=True) if name in shown]
        show(_compact(rich_table(shown, types, laid_out, USER_HEADERS), wrap=("user", "models")), *filter(None, [more]))
    if any(row[rows.columns.index("unpriced")] for row in rows.rows):
        _say_unpriced(config, scope, output_format)
    return 0


def _partial_cost(cost: Decimal | None, unpriced: int) -> Decimal | str | None:
    """A user's cost as a table shows it: `$1.23+?` when some of the user's calls have no price (the sum leaves them
    out), so a partial sum never reads as the whole; `$?` when none has one."""
    return f"{format_usd(cost)}+?" if cost is not None and unpriced else cost


def _first_models(models: str | None, shown: int = 1) -> str | None:
    """The user's `shown` most used models of the query's text (`a 60%, b 30%, c 10%`), and how many more: a table
    row stays a row at 80 columns (--json/--csv keep the whole text)."""
    if not models:
        return models
    parts = models.split(", ")
    return ", ".join(parts[:shown]) + (f" +{len(parts) - shown} more" if len(parts) > shown else "")


@click.command()
@click.option("--every", type=click.Choice(queries.PERIODS), default="day", show_default=True,
              help="one bar per hour, day, week (from Monday) or month, UTC")
@click.option("--by", "by", callback=_dimension, metavar="DIMENSION",
              help=f"split each period by {DIMENSION_HELP}")
@scope_options(REPORT_SINCE)
@format_options
@config_option()
def trends(every: str, by: Dimension | None, scope: Scope, output_format: str, config: Config) -> int:
    """Spend and calls per period, as bars, with each period's total.

    Every period in the range has its line, those without calls too. With --by, each period's total is followed by
    one bar per group (model, user, ...), on the same scale. --json/--csv give one row per period (and group):
    period, requests, cost_usd (priced calls only), unpriced, and with --by the period's totals.
    """
    warn_if_storage_unhealthy(config)
    rows = read_log(config, queries.trends, scope, every, by)
    if output_format != "table" or not rows.rows:
        emit(rows, output_format, empty=NO_CALLS)
    else:
        show(_bars(rows, every, by))
    if any(row[rows.columns.index("unpriced")] for row in rows.rows):
        _say_unpriced(config, scope, output_format)
    return 0


def _bars(rows: Rows, every: str, by: Dimension | None) -> Table:
    """The trend as a picture: per period a spend bar and a calls bar with their numbers (and with `by`, a line per
    group under its period's total), the bars sharing one scale each so lengths compare."""
    lines: list[tuple[str, Decimal | None, int, str]] = []  # label, cost, calls, style
    previous = None
    for record in rows.dicts():
        period = record[every]
        label = table_cell_text(every, period)[:16] if every == "hour" else str(period)
        if by is None:
            lines.append((label, record["cost_usd"], record["requests"], ""))
            continue
        if period != previous:
            lines.append((label, record["period_cost_usd"], record["period_requests"], "bold"))
            previous = period
        if record["requests"]:
            group = record[by.name]
            lines.append((f"  {NO_VALUE if group is None else table_cell_text(by.name, group)}", record["cost_usd"],
                          record["requests"], ""))
    # The scales: the largest period. Sizing a picture is the view's job; every number shown came from the query.
    most_usd = max((cost or Decimal(0) for _, cost, _, _ in lines), default=Decimal(0)) or Decimal(1)
    most_calls = max((calls for _, _, calls, _ in lines), default=0) or 1
    label_width = min(MAX_LABEL_WIDTH, max(len(label) for label, _, _, _ in lines))
    money_width = max(len(format_usd(cost)) for _, cost, _, _ in lines)
    calls_width = max(len(f"{calls:,}") for _, _, calls, _ in lines)
    gaps = 2 * 4  # one space each side between five columns
    bar_width = max(6, (console().width - label_width - money_width - calls_width - gaps) // 2)
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_header=True, header_style="bold")
    table.add_column(every, no_wrap=True, width=label_width, overflow="ellipsis")
    table.add_column("spend", width=bar_width, no_wrap=True)
    table.add_column("", justify="right", no_wrap=True, width=money_width)
    table.add_column("calls", width=bar_width, no_wrap=True)
    table.add_column("", justify="right", no_wrap=True, width=calls_width)
    for label, cost_usd, calls, style in lines:
        table.add_row(Text(literal(label), style=style), Bar(float(most_usd), 0, float(cost_usd or 0), width=bar_width),
                      format_usd(cost_usd), Bar(most_calls, 0, calls, width=bar_width), f"{calls:,}")
    return table
