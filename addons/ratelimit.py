"""Helicone's rate-limit policies, enforced by llmtap before a call leaves.

A policy (`Helicone-RateLimit-Policy: 1000;w=3600;u=request;s=user`, or a rule in config) allows `quota` requests —
or `quota` cents of priced cost — per sliding window of `w` seconds, for the whole gateway or for each user or each
value of a property (`s=`). A call over any of its policies is answered 429 with a JSON error and
`Helicone-RateLimit-Limit`, `-Remaining`, `-Policy` and `retry-after`; a call within them gets the same headers,
reporting the policy with the least left.

`RateLimiter` decides before the call; `RateLimitUsage`, placed after the Recorder, counts what a finished call cost
towards `u=cents` policies. Both share one `Windows`; state is in memory, for one gateway process.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from mitmproxy import http

from .callstate import CallState, get_state
from .headers import RateLimitPolicy
from .replies import reply_with_error
from .settings import Settings

# (where the policy came from, its text, segment kind, segment value). A header policy counts per paying key, so
# one tenant's header never spends another's quota; each config rule counts on its own.
WindowKey = tuple[str, str, str, str | None]
SWEEP_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Standing:
    """Where a call stands against one policy."""

    policy: RateLimitPolicy
    key: WindowKey
    used: float
    retry_after_s: float  # until enough of the window's usage expires to allow a call again

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.policy.quota - self.used))

    @property
    def over(self) -> bool:
        return is_over(self.policy, self.used)


class Windows:
    """Sliding windows of usage: per key, (time, amount) events younger than the policy's window."""

    def __init__(self) -> None:
        self._events: dict[WindowKey, tuple[float, deque[tuple[float, float]]]] = {}  # key -> (window, events)
        self._swept = time.monotonic()

    def standing(self, policy: RateLimitPolicy, key: WindowKey, now: float) -> Standing:
        if now - self._swept > SWEEP_INTERVAL_S:
            self._sweep(now)
        _, events = self._events.get(key, (policy.window_s, deque()))
        while events and events[0][0] <= now - policy.window_s:
            events.popleft()
        used = sum(amount for _, amount in events)
        return Standing(policy, key, used, self._retry_after(policy, events, used, now))

    def add(self, key: WindowKey, window_s: float, amount: float, now: float) -> None:
        self._events.setdefault(key, (window_s, deque()))[1].append((now, amount))

    def _sweep(self, now: float) -> None:
        """Forget windows with nothing left in them: users and property values come and go."""
        self._swept = now
        for key, (window_s, events) in list(self._events.items()):
            if not events or events[-1][0] <= now - window_s:
                del self._events[key]

    @staticmethod
    def _retry_after(policy: RateLimitPolicy, events: deque[tuple[float, float]], used: float, now: float) -> float:
        if not is_over(policy, used):
            return 0.0
        for at, amount in events:  # oldest first: the window frees as they age out
            used -= amount
            if not is_over(policy, used):
                return max(0.0, at + policy.window_s - now)
        return float(policy.window_s)


class RateLimiter:
    def __init__(self, settings: Settings, windows: Windows):
        self.settings = settings
        self.windows = windows

    def request(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if flow.response or flow.error or state is None:
            return
        policies = self._policies(state)
        if not policies:
            return
        now = time.monotonic()
        standings = [self.windows.standing(p, window_key(source, p, state), now) for source, p in policies]
        over = [s for s in standings if s.over]
        if over:
            worst = max(over, key=lambda s: s.retry_after_s)
            retry_after = max(1, math.ceil(worst.retry_after_s))
            reply_with_error(
                flow, 429, "llmtap_rate_limited",
                f"rate limit policy '{worst.policy.text}' reached{_for_whom(worst.key)}: "
                f"{worst.policy.quota} {'requests' if worst.policy.unit == 'request' else 'cents'} "
                f"per {worst.policy.window_s} s; retry in {retry_after} s",
                headers={**report_headers(worst), "retry-after": str(retry_after)},
                policy=worst.policy.text,
            )
            return
        for standing in standings:
            if standing.policy.unit == "request":
                self.windows.add(standing.key, standing.policy.window_s, 1, now)
        state.ratelimit_standings = [
            Standing(s.policy, s.key, s.used + (1 if s.policy.unit == "request" else 0), s.retry_after_s)
            for s in standings
        ]

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if state is None or flow.response is None or not state.ratelimit_standings:
            return
        least = min(state.ratelimit_standings, key=lambda s: s.remaining / s.policy.quota)
        flow.response.headers.update(report_headers(least))

    def _policies(self, state: CallState) -> list[tuple[str, RateLimitPolicy]]:
        """(source, policy) for each policy that applies: the header's, and each matching config rule."""
        options = state.options
        policies = [(f"header:{state.key_hash}", options.ratelimit_policy)] if options.ratelimit_policy else []
        policies += [
            (f"config:{index}", rule.policy) for index, rule in enumerate(self.settings.config.ratelimit_rules)
            if rule.matches(options.user_id, state.key_owner, options.properties)
        ]
        return policies


class RateLimitUsage:
    """Counts a finished call's priced cost towards the cents policies it was checked against."""

    def __init__(self, windows: Windows):
        self.windows = windows

    def response(self, flow: http.HTTPFlow) -> None:
        self._count(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._count(flow)

    def _count(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if state is None or state.record is None or not state.ratelimit_standings:
            return
        cost = state.record.get("cost_usd")
        if not cost:
            return
        cents = float(Decimal(cost) * 100)
        for standing in state.ratelimit_standings:
            if standing.policy.unit == "cents":
                self.windows.add(standing.key, standing.policy.window_s, cents, time.monotonic())


def is_over(policy: RateLimitPolicy, used: float) -> bool:
    """Whether one more call breaks the policy: a request counts when it starts, cents when the call has finished."""
    return used + 1 > policy.quota if policy.unit == "request" else used >= policy.quota


def window_key(source: str, policy: RateLimitPolicy, state: CallState) -> WindowKey:
    """Which window a call counts in: the policy's own, split by user or by a property's value when `s=` says so."""
    if policy.segment is None:
        return (source, policy.text, "all", None)
    if policy.segment == "user":
        return (source, policy.text, "user", state.options.user_id)
    properties = {k.lower(): v for k, v in state.options.properties.items()}
    return (source, policy.text, f"property:{policy.segment}", properties.get(policy.segment.lower()))


def report_headers(standing: Standing) -> dict[str, str]:
    return {
        "helicone-ratelimit-limit": str(standing.policy.quota),
        "helicone-ratelimit-remaining": str(standing.remaining),
        "helicone-ratelimit-policy": standing.policy.text,
    }


def _for_whom(key: WindowKey) -> str:
    _, _, kind, value = key
    if kind == "all":
        return ""
    label = "user" if kind == "user" else kind.removeprefix("property:")
    return f" for {label} {value!r}" if value is not None else f" for calls without a {label}"
