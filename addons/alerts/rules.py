"""Alert and budget rules, as config.py validates them from the `alerts` list: what a rule watches, over which time
window, per what, and what it does when the metric passes its threshold.

Pure values and arithmetic (no I/O, no mitmproxy): the config, the gateway's budget gate, the alert engine and the
`llmtap alerts`/`budgets` commands all read the same `AlertRule`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from ..money import format_usd

METRICS = ("spend_usd", "requests", "error_rate", "rate_limited", "p95_latency_ms")
BUDGET_METRICS = ("spend_usd", "requests")  # what a `block` rule may count: known, or bounded, before a call goes
METRIC_UNITS = {"spend_usd": "USD", "requests": "requests", "error_rate": "%", "rate_limited": "429s",
                "p95_latency_ms": "ms"}
SCOPES = ("all", "user", "key", "model")  # and property:<name>
WHERE_KEYS = ("user", "key", "model", "provider")  # and property:<name>
PROPERTY = "property:"
ACTIONS = ("notify", "block")
CALENDAR = ("day", "month")
LONGEST_ROLLING_S = 100 * 366 * 86400  # a window reaching back past year 1 cannot be measured (datetime overflows)
WINDOW_FORM = (f"a rolling window such as 1h, 1d, 30d (a number and s, m, h or d, up to {LONGEST_ROLLING_S // 86400}d),"
               " or a calendar day or month (UTC)")
ROLLING_RE = re.compile(r"^([0-9]{1,7})([smhd])$")
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def format_metric(metric: str, value: Any) -> str:
    """A value of `metric` as a person reads it: `$1.23` (llmtap's money rule), `1,234 requests`, `5.2%`, `840 ms`,
    `3 429s`; `n/a` when there is none (too few calls to judge)."""
    if value is None:
        return "n/a"
    if metric == "spend_usd":
        return format_usd(Decimal(value) if isinstance(value, Decimal | int) else Decimal(repr(float(value))))
    number = float(value)
    if metric == "error_rate":
        return f"{number:g}%"
    if metric == "p95_latency_ms":
        return f"{number:,.0f} ms"
    return f"{number:,.0f} {'requests' if metric == 'requests' else '429s'}"


def for_whom(scope: str, value: str | None) -> str:
    """Whose alert, budget or rate-limit window a scope value is, as a phrase: ` for user 'ann'`, ` for workflow
    'research'`, ` for calls without a user`, or nothing for scope `all`."""
    if scope == "all":
        return ""
    label = scope.removeprefix(PROPERTY)
    return f" for {label} {value!r}" if value is not None else f" for calls without a {label}"


@dataclass(frozen=True)
class Window:
    """A rule's time window: rolling (the last `seconds`) or calendar (`day`, `month`, in UTC)."""

    text: str
    seconds: int | None = None  # rolling; None for a calendar window
    calendar: str | None = None  # "day" | "month"

    @property
    def rolling(self) -> bool:
        return self.calendar is None

    def span(self, now: datetime) -> tuple[datetime, datetime]:
        """The window that holds `now`: [start, end). A rolling window ends at `now`; a calendar one at the end of
        its day or month."""
        now = now.astimezone(UTC)
        if self.seconds is not None:
            return now - timedelta(seconds=self.seconds), now
        if self.calendar == "day":
            start = now.replace(hour=0, minute=0, second=0, microsecond=0)
            return start, start + timedelta(days=1)
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
        return start, end

    @property
    def longest_s(self) -> int:
        """The longest this window can be, in seconds (a month: 31 days)."""
        return self.seconds if self.seconds is not None else 86400 * (1 if self.calendar == "day" else 31)

    def label(self, now: datetime) -> str:
        """How a notice names the window: `1d`, or the calendar period (`2026-11-27`, `2026-11`)."""
        if self.rolling:
            return f"last {self.text}"
        start, _ = self.span(now)
        return start.strftime("%Y-%m-%d" if self.calendar == "day" else "%Y-%m")


def parse_window(text: str) -> Window:
    """`1h`, `30d`, `90s`, `day` or `month` as a Window; ValueError naming what is accepted otherwise."""
    cleaned = text.strip().lower()
    if cleaned in CALENDAR:
        return Window(cleaned, calendar=cleaned)
    if (match := ROLLING_RE.match(cleaned)) and 0 < int(match[1]) * UNIT_SECONDS[match[2]] <= LONGEST_ROLLING_S:
        return Window(cleaned, seconds=int(match[1]) * UNIT_SECONDS[match[2]])
    raise ValueError(f"expected {WINDOW_FORM}, got {text!r}")


@dataclass(frozen=True)
class Webhook:
    """A JSON POST of the notice to `url`."""

    url: str
    kind: str = "webhook"


@dataclass(frozen=True)
class Slack:
    """A message to a Slack incoming webhook at `url`."""

    url: str
    kind: str = "slack"


@dataclass(frozen=True)
class Email:
    """A mail to `to`, through the config's `smtp` server."""

    to: tuple[str, ...]
    kind: str = "email"


Channel = Webhook | Slack | Email


@dataclass(frozen=True)
class Smtp:
    """The mail server email channels send through (config section `smtp`); secrets come from the environment."""

    host: str
    port: int
    sender: str  # the From address
    starttls: bool = False
    ssl: bool = False  # TLS from the first byte (port 465)
    user: str | None = None
    password: str | None = None  # read from the variable the config names; never shown
    timeout_s: float = 10.0

    def __repr__(self) -> str:
        return f"Smtp({self.host}:{self.port}, from={self.sender}, starttls={self.starttls}, user={self.user})"


@dataclass(frozen=True)
class AlertRule:
    """One entry of `alerts`: `metric` over `window`, per value of `scope`, for the calls `where` selects; when it
    passes `threshold` the rule notifies its `channels`, and a `block` rule refuses the calls that would pass it."""

    name: str
    metric: str
    window: Window
    threshold: float
    scope: str = "all"  # all | user | key | model | property:<lower-cased name>
    where: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (user|key|model|provider|property:<name>, accepted values)
    channels: tuple[Channel, ...] = ()
    action: str = "notify"
    min_requests: int = 1  # error_rate and p95_latency_ms: a scope value with fewer calls in the window is not judged

    @property
    def blocks(self) -> bool:
        return self.action == "block"

    def is_over(self, value: float | None) -> bool:
        """Whether `value` passes the threshold: a notify rule fires when the metric exceeds it; a budget (`block`)
        is spent when it reaches it (the next call would pass it). None (too few calls to judge) never is."""
        if value is None:
            return False
        return value >= self.threshold if self.blocks else value > self.threshold

    def admits(self, call: CallFacts) -> bool:
        """Whether `where` selects a call with these facts."""
        return all(call.value_of(field) in values for field, values in self.where)

    def scope_value(self, call: CallFacts) -> str | None:
        """Which of the rule's alerts or budgets the call counts towards (None: everything, or the call has no value
        for the scope: it counts towards the calls without one)."""
        return None if self.scope == "all" else call.value_of(self.scope)

    def describe_threshold(self) -> str:
        """The threshold with its unit, as notices and commands show it (`$50.00`, `1000 requests`, `5%`)."""
        if self.metric == "spend_usd":
            return format_usd(Decimal(str(self.threshold)))
        number = f"{self.threshold:g}"
        return f"{number}%" if self.metric == "error_rate" else f"{number} {METRIC_UNITS[self.metric]}"


@dataclass(frozen=True)
class CallFacts:
    """What a rule's scope and filter can read of a call: the same facts whether the call is in flight (the gateway's
    budget gate) or a row of the log (the alert queries read the same columns)."""

    user: str | None
    key: str | None  # the gateway key's owner, else the fingerprint of the provider key used
    model: str | None  # the model the caller asked for
    provider: str | None
    properties: dict[str, str]  # lower-cased names

    def value_of(self, field: str) -> str | None:
        if field.startswith(PROPERTY):
            return self.properties.get(field[len(PROPERTY):])
        return getattr(self, field)
