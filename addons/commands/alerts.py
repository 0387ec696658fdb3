"""`llmtap alerts`: the alert and budget rules of the config: `test` sends a rule's test notice through its channels
now and says what each answered; `list` shows where each rule stands now and when it last fired."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..alerts.notice import trial_notice
from ..alerts.rules import AlertRule, format_metric
from ..analytics import queries
from ..analytics.queries import Rows
from ..config import Config
from ..render import table_cell_text
from .budgets import METRIC_WORDS, NO_VALUE, scope_text, where_text
from .options import config_option, format_options
from .output import emit
from .reading import read_log, warn_if_storage_unhealthy

if TYPE_CHECKING:  # delivery brings smtplib, ssl and urllib: about 60 ms of every command's start-up
    from ..alerts.delivery import ChannelOutcome


@click.group()
def alerts() -> None:
    """Alert and budget rules: list, test"""


@alerts.command("test")
@click.argument("rule_name", metavar="RULE")
@config_option()
@click.option("--json", "as_json", is_flag=True, help="one JSON object per channel")
def test(config: Config, rule_name: str, as_json: bool) -> int:
    """Send RULE's test notice (with the rule's current value) through every channel of the rule now, and print what
    each channel answered: kind, target, sent or failed, detail, attempts. Exit status 0 when every channel took it,
    1 when any failed. The outcomes are recorded in the log's `alerts` table (kind `test`)."""
    rules = {rule.name: rule for rule in config.alert_rules}
    if (rule := rules.get(rule_name)) is None:
        known = ", ".join(rules) or "none: the config has no `alerts`"
        raise click.UsageError(f"no rule named {rule_name!r}; the config's rules: {known}")
    if not rule.channels:
        print(f"llmtap: rule {rule.name!r} has no channels to test (add `channels:` to it)", file=sys.stderr)
        return 1
    log = config.storage_path if config.storage_path.exists() else None
    if log is None:
        print(f"llmtap: no log at {config.storage_path} yet: the test is sent without the rule's value and not "
              "recorded", file=sys.stderr)
    from ..alerts.delivery import Delivery

    now = datetime.now(UTC)
    delivery = Delivery(log, config.smtp, config.alerting)
    outcomes = delivery.deliver_now(trial_notice(rule, current_value(log, rule, now), now))
    delivery.close(wait_s=0)
    for outcome in outcomes:
        print(json.dumps(outcome_dict(rule, outcome)) if as_json else outcome_line(outcome))
    return 0 if all(outcome.outcome == "sent" for outcome in outcomes) else 1


def current_value(log: Path | None, rule: AlertRule, now: datetime) -> float | None:
    """The rule's value now, as a test notice shows it: scope `all`'s one value, else the highest scope value's;
    None without a log or when it cannot be read (the test is about the channels, not the log)."""
    import duckdb

    from ..analytics import queries

    if log is None:
        return None
    try:
        rows = queries.rule_values(log, rule, now).dicts()
    except duckdb.Error as e:
        print(f"llmtap: the rule's current value is not shown: {str(e).splitlines()[0]}", file=sys.stderr)
        return None
    value = rows[0]["value"] if rows else None
    return None if value is None else float(value)


def outcome_line(outcome: ChannelOutcome) -> str:
    """`webhook  http://127.0.0.1:8000/hook  sent  HTTP 200  (1 attempt)`."""
    tries = f"{outcome.attempts} attempt" + ("s" if outcome.attempts != 1 else "")
    return f"{outcome.channel.kind}  {outcome.target}  {outcome.outcome}  {outcome.detail}  ({tries})"


def outcome_dict(rule: AlertRule, outcome: ChannelOutcome) -> dict[str, object]:
    """One channel's outcome for --json."""
    return {"rule": rule.name, "kind": "test", "channel": outcome.channel.kind, "target": outcome.target,
            "outcome": outcome.outcome, "detail": outcome.detail, "attempts": outcome.attempts}


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
    now = format_metric(rule.metric, row["value"])
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
