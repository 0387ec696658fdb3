"""`llmtap alerts`: the alert and budget rules of the config: `test` sends a rule's test notice through its channels
now and says what each answered."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..alerts.notice import trial_notice
from ..alerts.rules import AlertRule
from ..config import Config
from .options import config_option

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
