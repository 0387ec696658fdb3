"""`llmtap budgets`: each spend and request rule's budget per scope value, what its window used and what is left.

The figures are the query layer's (`queries.budgets`); this module only writes them for a person, and holds how a
rule's scope reads in words (`scope_text`, `where_text`), which `llmtap alerts list` shares.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
from rich.text import Text

from ..alerts.rules import BUDGET_METRICS, PROPERTY, AlertRule, format_metric
from ..analytics import queries
from ..analytics.queries import Rows
from ..config import Config
from ..render import literal, table_cell_text
from .options import config_option, format_options
from .output import cut, emit, show, table_rows_option
from .reading import read_log, warn_if_storage_unhealthy

NO_VALUE = "(none)"
METRIC_WORDS = {"spend_usd": "spend", "requests": "requests", "error_rate": "error rate",
                "rate_limited": "429s", "p95_latency_ms": "p95 latency"}
TABLE_COLUMNS = ["for", "used", "of", "left", "used %", "state"]
RIGHT = "DOUBLE"  # a table column right-aligned (render.rich_table aligns by type)
TABLE_TYPES = ["VARCHAR", RIGHT, RIGHT, RIGHT, RIGHT, "VARCHAR"]


@click.command()
@config_option()
@format_options
@table_rows_option
def budgets(config: Config, output_format: str, count: int) -> None:
    """Every spend_usd and requests rule of the config's `alerts` (block and notify alike), per scope value: what
    its current window used, the threshold, what is left, the share used, the window (and when a calendar one
    resets), and whether it blocks calls now. Calls llmtap refused count towards nothing."""
    rules = [rule for rule in config.alert_rules if rule.metric in BUDGET_METRICS]
    if not rules:  # nothing to read: the columns alone
        emit(queries.budgets(config.storage_path, rules, datetime.now(UTC)), output_format,
             empty="no budgets: the config has no spend_usd or requests rule under `alerts`")
        return
    warn_if_storage_unhealthy(config)
    rows = read_log(config, queries.budgets, rules, datetime.now(UTC))
    if output_format != "table":
        emit(rows, output_format, empty="no budgets")
        return
    everything = rows.dicts()
    seen = {row["rule"] for row in everything}
    shown, more = cut(everything, count, "rows")
    for rule in rules:  # a table per rule, titled with what the rule counts: six short columns fit 80
        mine = [row for row in shown if row["rule"] == rule.name]
        if mine:  # the title on its own line: as a table's title it would fold to the table's width
            show(Text(literal(budget_title(rule, mine[0]))))
            emit(Rows(TABLE_COLUMNS, TABLE_TYPES, [budget_cells(row) for row in mine]), "table", empty="")
        elif rule.name not in seen:
            show(Text(literal(f"{budget_title(rule, None)}: no calls in its window yet")))
    if more:
        show(more)


def budget_title(rule: AlertRule, row: dict[str, Any] | None) -> str:
    """`user-monthly (block): spend per user, 2026-11 (resets 2026-12-01 00:00 UTC)`."""
    window = row["window"] if row else rule.window.label(datetime.now(UTC))
    resets = f" (resets {table_cell_text('resets_at', row['resets_at'])[:16]} UTC)" if row and row["resets_at"] \
        else ""
    per = "" if rule.scope == "all" else f" per {scope_text(rule.scope)}"
    where = f" where {where_text(rule)}" if rule.where else ""
    return f"{rule.name} ({rule.action}): {METRIC_WORDS[rule.metric]}{per}{where}, {window}{resets}"


def budget_cells(row: dict[str, Any]) -> tuple[str, ...]:
    """One row of `queries.budgets` as the table's cells."""
    metric = row["metric"]
    used = format_metric(metric, row["used"]) + ("+?" if row["unpriced"] else "")
    state = "blocking" if row["blocking"] else "over" if row["over"] else "ok"
    return (scope_value_text(row["scope"], row["scope_value"]), used, format_metric(metric, row["threshold"]),
            format_metric(metric, row["left"]), table_cell_text("used_pct", row["used_pct"]) or "–", state)


def scope_text(scope: str) -> str:
    """A rule's scope in words: `everything`, `user`, `property workflow`."""
    return "everything" if scope == "all" else scope.replace(PROPERTY, "property ")


def scope_value_text(scope: str, value: str | None) -> str:
    """Which budget or alert of a rule a row is: `all`, `carol`, `(none)` (the calls without a value)."""
    return "all" if scope == "all" else NO_VALUE if value is None else value


def where_text(rule: AlertRule) -> str:
    """A rule's filter as `user=carol,dave model=gpt-4o`, empty when it has none."""
    return " ".join(f"{field}={','.join(values)}" for field, values in rule.where)
