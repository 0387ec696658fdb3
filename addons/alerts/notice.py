"""One alert, as every channel sends it: which rule, for which scope value, what the metric reached against what
threshold, in which window, and a one-line human summary (no links: it may be read in a mail client or a chat)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .rules import PROPERTY, AlertRule, format_metric

KINDS = ("firing", "resolved", "test")


@dataclass(frozen=True)
class Notice:
    """An alert about `rule` for `scope_value` (None: scope `all`, or the calls without a value): `kind` is
    `firing` (the metric passed the threshold), `resolved` (it dropped back) or `test` (`llmtap alerts test`)."""

    rule: AlertRule
    kind: str
    value: float | None
    scope_value: str | None
    at: datetime
    period_start: datetime  # the window's start (calendar), or when the rule started firing (rolling)
    alert_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def window_label(self) -> str:
        return self.rule.window.label(self.period_start if not self.rule.window.rolling else self.at)

    @property
    def who(self) -> str:
        """The scope value as a phrase: ` for user 'carol'`, or nothing for scope `all`. The value as sent, in
        quotes (not `for_whom`'s repr: a person reads a notice, and a mail subject folds its line breaks itself)."""
        if self.rule.scope == "all":
            return ""
        label = self.rule.scope.removeprefix(PROPERTY)
        return f" for {label} '{self.scope_value}'" if self.scope_value is not None else f" for calls without a {label}"

    def shown_value(self) -> str:
        return format_metric(self.rule.metric, self.value)

    def summary(self) -> str:
        """One line a person reads first: what happened, to whom, against what."""
        rule = self.rule
        what = {"spend_usd": "spend", "requests": "requests", "error_rate": "error rate",
                "rate_limited": "rate-limited calls (429)", "p95_latency_ms": "p95 latency"}[rule.metric]
        window = self.window_label
        if self.kind == "test":
            return (f"llmtap test alert for rule '{rule.name}': {what}{self.who} over {window} is "
                    f"{self.shown_value()} against a threshold of {rule.describe_threshold()}")
        if self.kind == "resolved":
            return (f"llmtap: resolved '{rule.name}': {what}{self.who} over {window} is back to "
                    f"{self.shown_value()}, within {rule.describe_threshold()}")
        blocking = " Calls that would pass it are refused (429)." if rule.blocks else ""
        return (f"llmtap: '{rule.name}': {what}{self.who} over {window} is {self.shown_value()}, past the threshold "
                f"of {rule.describe_threshold()}.{blocking}")

    def payload(self) -> dict[str, Any]:
        """The webhook's JSON body."""
        rule = self.rule
        return {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "rule": rule.name,
            "metric": rule.metric,
            "value": self.value,
            "threshold": rule.threshold,
            "window": rule.window.text,
            "window_label": self.window_label,
            "period_start": self.period_start.astimezone(UTC).isoformat(),
            "scope": rule.scope,
            "scope_value": self.scope_value,
            "action": rule.action,
            "at": self.at.astimezone(UTC).isoformat(),
            "summary": self.summary(),
        }


def trial_notice(rule: AlertRule, value: float | None, now: datetime) -> Notice:
    """What `llmtap alerts test` sends: the rule's current value, marked as a test."""
    start, _ = rule.window.span(now)
    return Notice(rule, "test", value, None, now, start if not rule.window.rolling else now)
