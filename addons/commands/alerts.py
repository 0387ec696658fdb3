"""`llmtap alerts`: the config's alert and budget rules, where each stands now, and trying their channels."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from ..alerts.rules import AlertRule
from ..analytics import queries
from ..analytics.queries import Rows
from ..config import Config
from ..render import table_cell_text
from .budgets import METRIC_WORDS, NO_VALUE, metric_text, scope_text, where_text
from .options import config_option, format_options
from .output import emit
from .reading import read_log, warn_if_storage_unhealthy


@click.group()
def alerts() -> None:
    """Alert and budget rules: list, test"""


LIST_COLUMNS = ["rule", "watches", "threshold", "now", "state", "last fired"]
LIST_TYPES = ["VARCHAR", "VARCHAR", "DOUBLE", "DOUBLE", "VARCHAR", "VARCHAR"]


@alerts.command("list")
@config_option()
@format_options
def list_rules(config: Config, output_format: str) -> None:
    """One line per rule of the config's `alerts`: what it watches, its threshold, its value now in its current
    window (per scope value: the highest, and how many scope values are past the threshold), its state (over, ok,
    n/a when too few calls to judge), its action and channels, and when it last fired (for which scope value;
    resolved since, if so)."""
    rules = config.alert_rules
    if not rules:
        emit(queries.rule_states(config.storage_path, rules, datetime.now(UTC)), output_format,
             empty="no alert rules: the config has no `alerts` list")
        return
    warn_if_storage_unhealthy(config)
    with queries.reading(config.storage_path):  # one connection for every rule's query
        rows = read_log(config, queries.rule_states, rules, datetime.now(UTC))
    if output_format != "table":
        emit(rows, output_format, empty="no alert rules")
        return
    cells = [rule_cells(rule, row) for rule, row in zip(rules, rows.dicts(), strict=True)]
    emit(Rows(LIST_COLUMNS, LIST_TYPES, cells), "table", empty="no alert rules", title="alert and budget rules now")


def rule_cells(rule: AlertRule, row: dict[str, Any]) -> tuple[str, ...]:
    """One row of `queries.rule_states` as the table's cells."""
    watches = f"{METRIC_WORDS[rule.metric]} over {row['period']}"
    if rule.scope != "all":
        watches += f" per {scope_text(rule.scope)}"
    if rule.where:
        watches += f" where {where_text(rule)}"
    now = metric_text(rule.metric, row["value"])
    if rule.scope != "all" and row["value_scope"] is not None:
        now += f"\n{row['value_scope']}; {row['over']:,} of {row['scope_values']:,} over"
    elif rule.scope != "all" and row["over"]:  # the highest was the calls without a value
        now += f"\n{NO_VALUE}; {row['over']:,} of {row['scope_values']:,} over"
    action = "block" if rule.blocks else "notify"
    if row["channels"]:
        action += " → " + ", ".join(row["channels"])
    return (f"{rule.name}\n{action}", watches, rule.describe_threshold(), now, row["state"], fired_text(rule, row))


def fired_text(rule: AlertRule, row: dict[str, Any]) -> str:
    """`2026-11-27 10:03:12 for carol, resolved 10:05:40`, `… (not delivered)`, or `never`."""
    if row["last_fired_at"] is None:
        return "never"
    text = table_cell_text("last_fired_at", row["last_fired_at"])
    if rule.scope != "all":
        text += f" for {NO_VALUE if row['last_fired_scope'] is None else row['last_fired_scope']}"
    if row["last_fired_delivered"] is False:
        text += " (not delivered)"
    if row["resolved_at"] is not None:
        text += f", resolved {table_cell_text('resolved_at', row['resolved_at'])}"
    return text
