"""Blocking budgets: the `alerts` rules with `action: block` refuse the call that would pass their threshold.

For each block rule whose `where` admits a call, the call counts towards the rule's budget for its scope value (the
user, key, model or property value the rule is per) in the rule's window: a rolling window (`1h`, `30d`) on the
monotonic clock, or a calendar `day` or `month` (UTC, on the wall clock), whose counter is keyed by its period so the
next day or month starts empty.

- `requests`: each call let through counts 1; with a threshold of 10, ten calls pass and the eleventh is refused.
- `spend_usd`: a call reserves its estimated cost (`ratelimit.estimated_cents`, as `u=cents` rate-limit policies do)
  and is refused when what the budget has used and reserved plus its reservation would pass the threshold, except
  into an empty window, which lets one call through. When the call's row is final its reservation is replaced by its
  priced cost, or released when it failed (`RateLimitUsage`, the same settling step as cents policies).

A refused call gets 429 with the error type `llmtap_budget_exceeded`, a message naming the rule, the scope value,
what is used against the threshold, the window and when it frees, the rule's name as `budget`, and `retry-after`;
it never reaches the provider, costs nothing, and its row is still written. A call a budget refuses counts towards
no rate-limit policy either (what it counted there is released), as the log's `alerting.ADMITTED` reads it.

The counters are `counters.Counters`, seeded from the log at start-up (seeding.py): a restart in the middle of a
window keeps the budget's spend.

How far spend can pass a budget: a call's cost is known only once its answer is in, so a spend budget reserves an
estimate and what can still pass the threshold is, as for cents policies (ratelimit.py), the call let into an empty
window (up to its whole cost), plus, for the calls in flight at once, what each one's real cost exceeds its estimate
by (prompts of more than one token per 4 bytes, output past the default 4,096 tokens when the request sets no limit,
charges the estimate leaves out). With honest estimates (text prompts, an output limit set) spend stays within the
threshold plus that one first call; request budgets are exact.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from mitmproxy import http

from .alerts.rules import AlertRule, CallFacts, for_whom
from .callstate import CallState, get_state
from .counters import CounterKey, Counters, Quota, Reservation
from .money import format_usd
from .ratelimit import estimated_cents
from .replies import reply_with_error
from .settings import Settings

BUCKETS_PER_WINDOW = 100  # a rolling budget's counter holds about this many events per scope value, plus reservations


def block_rules(rules: tuple[AlertRule, ...]) -> list[AlertRule]:
    """The rules that block calls (`action: block`)."""
    return [rule for rule in rules if rule.blocks]


def budget_key(rule: AlertRule, scope_value: str | None, period_start: datetime | None) -> CounterKey:
    """The counter a call counts in: the rule's, for its scope value and, for a calendar window, its period."""
    return ("budget", rule.name, scope_value, period_start.isoformat() if period_start else None)


def budget_quota(rule: AlertRule) -> Quota:
    """What a budget allows per window, as the counters check it: calls, or cents reserved before calls go."""
    spend = rule.metric == "spend_usd"
    # Cents rounded to a millionth: $0.29 is 29 cents, not the 28.999999999999996 a float makes of it.
    return Quota(round(rule.threshold * 100, 6) if spend else rule.threshold, rule.window.longest_s, reserves=spend)


def coalesce_seconds(rule: AlertRule) -> float:
    """How long a budget's counted calls and costs may share one event: a calendar period whole (nothing leaves it
    before it ends), a hundredth of a rolling window (counted at most that much longer, as the log's seeds are)."""
    window = rule.window
    return float(window.longest_s) if window.seconds is None else window.seconds / BUCKETS_PER_WINDOW


def call_facts(state: CallState) -> CallFacts:
    """What a rule reads of a call in flight: the same facts the log's rows give (`alerting.FACTS`)."""
    options = state.request.options
    return CallFacts(
        user=options.user_id,
        key=state.request.key_owner or state.request.key_hash,
        model=state.request.model,
        provider=state.route.provider.name if state.route.provider else None,
        properties={name.lower(): value for name, value in options.properties.items()},
    )


@dataclass(frozen=True)
class Check:
    """Where a call stands against one budget."""

    rule: AlertRule
    scope_value: str | None
    key: CounterKey
    used: float  # calls, or cents used and reserved
    over: bool
    frees_in_s: float  # until the call would fit (calendar: the period's end)
    period_start: datetime | None  # calendar windows


class Budgets:
    """Refuses (429 `llmtap_budget_exceeded`) a call that would pass a blocking budget, and counts those it lets
    through. Placed right after RateLimiter: a call over a rate limit never counts towards a budget."""

    def __init__(self, settings: Settings, counters: Counters, wall_clock: Callable[[], float] = time.time):
        self.settings = settings
        self.counters = counters
        self.wall_clock = wall_clock
        self.rules: list[AlertRule] = []

    def configure(self, updated: set[str]) -> None:
        self.rules = block_rules(self.settings.config.alert_rules)

    def request(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if flow.response or flow.error or state is None:
            return
        if not self.rules:
            return
        facts = call_facts(state)
        admitting = [rule for rule in self.rules if rule.admits(facts)]
        if not admitting:
            return
        now = self.counters.clock()
        wall = datetime.fromtimestamp(self.wall_clock(), UTC)
        reserve = (estimated_cents(flow.request, state, self.settings)
                   if any(rule.metric == "spend_usd" for rule in admitting) else 0.0)
        checks = [self._check(rule, rule.scope_value(facts), reserve, now, wall) for rule in admitting]
        over = [check for check in checks if check.over]
        if over:
            self._refuse(flow, state, max(over, key=lambda c: c.frees_in_s), wall)
            return
        for check in checks:
            window_s, coalesce_s = check.rule.window.longest_s, coalesce_seconds(check.rule)
            if check.rule.metric == "requests":
                self.counters.add(check.key, window_s, 1, now, coalesce_s)
            else:
                event = self.counters.add(check.key, window_s, reserve, now)
                state.limits.reservations.append(Reservation(check.key, window_s, event, coalesce_s))

    def _check(self, rule: AlertRule, scope_value: str | None, reserve: float, now: float, wall: datetime) -> Check:
        period_start, period_end = (None, None) if rule.window.rolling else rule.window.span(wall)
        key = budget_key(rule, scope_value, period_start)
        count = self.counters.standing(budget_quota(rule), key, now, 1 if rule.metric == "requests" else reserve)
        frees_in_s = count.retry_after_s if period_end is None else (period_end - wall).total_seconds()
        return Check(rule, scope_value, key, count.used, count.over, frees_in_s, period_start)

    def _refuse(self, flow: http.HTTPFlow, state: CallState, check: Check, wall: datetime) -> None:
        for event in state.limits.counted:  # refused here: it counts towards no rate-limit policy either
            self.counters.release(event)
        state.limits.counted = []
        retry_after = max(1, math.ceil(check.frees_in_s))
        reply_with_error(flow, 429, "llmtap_budget_exceeded", refusal_message(check, wall, retry_after),
                         headers={"retry-after": str(retry_after)}, budget=check.rule.name)


def refusal_message(check: Check, wall: datetime, retry_after_s: int) -> str:
    """What a refused call is told: the rule, its scope value, used against the threshold, the window, and when it
    frees."""
    rule = check.rule
    used = format_usd(Decimal(f"{check.used / 100:.6f}")) if rule.metric == "spend_usd" else f"{check.used:g} requests"
    used_what = "used or reserved" if rule.metric == "spend_usd" else "used"
    if rule.window.rolling:
        window = f"in the last {rule.window.text}"
        frees = f"frees as usage leaves the window, in {retry_after_s} s"
    else:
        _, end = rule.window.span(wall)
        window = f"in {rule.window.label(wall)} (UTC)"
        frees = f"frees at {end.strftime('%Y-%m-%dT%H:%M:%SZ')}, in {retry_after_s} s"
    return (f"budget '{rule.name}' reached{for_whom(rule.scope, check.scope_value)}: {used} {used_what} of "
            f"{rule.describe_threshold()} {window}; {frees}")
