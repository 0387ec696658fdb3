"""The Alerts page: the config's alert and budget rules against their thresholds now, every budget per scope value,
and the alerts sent (what `llmtap alerts list` and `llmtap budgets` print, and the `alerts` table)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...alerts.rules import BUDGET_METRICS
from ...analytics import queries
from ..api import Request, endpoint

HISTORY_ROWS = 200  # the newest notices; the whole table is `llmtap sql` away


@endpoint("alerts")
def alerts(log: Path, request: Request) -> dict[str, Any]:
    """`{"rules", "budgets", "history"}`: `queries.rule_states` (one row per rule, each measured over its own
    window), `queries.budgets` (spend and request rules per scope value) and `queries.alert_history` (the newest
    `HISTORY_ROWS` notices, one row per channel, from the URL's `since` on, 7d by default; `rule=NAME` for one
    rule's)."""
    now = datetime.now(UTC)
    since = request.scope().since
    rules = request.alert_rules
    return {"rules": queries.rule_states(log, rules, now),
            "budgets": queries.budgets(log, [rule for rule in rules if rule.metric in BUDGET_METRICS], now),
            "history": queries.alert_history(log, since, request.arg("rule"), HISTORY_ROWS)}
