"""Helicone's rate-limit policies, enforced by llmtap before a call leaves.

A policy (`Helicone-RateLimit-Policy: 1000;w=3600;u=request;s=user`, or a rule in config) allows `quota` requests —
or `quota` cents of priced cost — per sliding window of `w` seconds, for the whole gateway or for each user or each
value of a property (`s=`). A call over any of its policies is answered 429 with a JSON error and
`Helicone-RateLimit-Limit`, `-Remaining`, `-Policy` and `retry-after`; a call within them gets the same headers,
reporting the policy with the least left.

`RateLimiter` decides before the call; `RateLimitUsage`, placed after the Recorder, settles what a finished call cost.
Both share one `Counters` (counters.py: in memory for one gateway process today, a shared store when several run),
seeded from the log at start-up (seeding.py), so that a restart forgets no policy's window.

Cents policies (`u=cents`) reserve before they let a call go, so that concurrent calls cannot all pass on an empty
window: when a call starts it reserves an estimate of its cost, `estimated_cents`, which is

- input: the request body's size in bytes / 4 as tokens (`CHARS_PER_TOKEN`), at the model's input price, plus
- output: the request's `max_tokens` / `max_completion_tokens` / `max_output_tokens`, or `DEFAULT_OUTPUT_TOKENS`
  (4,096) when it sets none, at the model's output price,

priced like the call's row (genai-prices, or a `pricing` override in config); a model without a known price reserves
`UNPRICED_RESERVATION_CENTS` (10 cents). A call is refused (429) when what its window has used and reserved plus its
own reservation would pass the quota — except into a window with nothing used or reserved, so that a quota smaller
than one call's estimate still lets one call through per window. When the call's row is final its reservation is
replaced by its priced cost (counted at the time it finished, as before); a failed or refused call releases it; an
answered call whose cost cannot be priced keeps it.

What can still pass a cents quota: the call let into an empty window (up to its whole cost), plus, for the calls in
flight at once, what each one's real cost exceeds its estimate by — a prompt of more than one token per 4 bytes (much
non-English text, images, audio), output past the default 4,096 tokens when the request sets no limit, or cache-write
and tool charges the estimate leaves out. With honest estimates (text prompts, an output limit set) spend stays within
the quota plus that one first call.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from genai_prices import Usage
from mitmproxy import http

from .alerts.rules import for_whom
from .callstate import CallState, get_state
from .counters import Counters, Quota, Reservation
from .pricing import price_call
from .ratelimit_policy import RateLimitPolicy
from .record import CallRecord
from .replies import reply_with_error
from .settings import Settings

# (where the policy came from, its text, segment kind, segment value). A header policy counts per paying key, so
# one tenant's header never spends another's quota; each config rule counts on its own.
WindowKey = tuple[str, str, str, str | None]
CHARS_PER_TOKEN = 4  # a rough count of input tokens from the body's size: about right for English text and JSON
DEFAULT_OUTPUT_TOKENS = 4096  # reserved for output when a request sets no limit on it
UNPRICED_RESERVATION_CENTS = 10.0  # reserved for a call to a model without a known price
OUTPUT_LIMIT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


@dataclass(frozen=True)
class Standing:
    """Where a call stands against one policy."""

    policy: RateLimitPolicy
    key: WindowKey
    used: float  # used and reserved in the window, this call's own reservation left out
    retry_after_s: float  # until enough of the window's usage expires to allow a call again
    over: bool = False  # whether this call would break the policy

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.policy.quota - self.used))


class RateLimiter:
    """Refuses (429) a call over any rate-limit policy that applies to it, and counts the calls it lets through."""

    def __init__(self, settings: Settings, counters: Counters, clock: Callable[[], float] | None = None):
        self.settings = settings
        self.counters = counters
        self.clock = clock or counters.clock

    def request(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if flow.response or flow.error or state is None:
            return
        policies = self._policies(state)
        if not policies:
            return
        now = self.clock()
        reserve = (estimated_cents(flow.request, state, self.settings)
                   if any(p.unit == "cents" for _, p in policies) else 0.0)
        standings = []
        for source, p in policies:
            key = window_key(source, p, state)
            count = self.counters.standing(policy_quota(p), key, now, 1 if p.unit == "request" else reserve)
            standings.append(Standing(p, key, count.used, count.retry_after_s, count.over))
        over = [s for s in standings if s.over]
        if over:
            worst = max(over, key=lambda s: s.retry_after_s)
            retry_after = max(1, math.ceil(worst.retry_after_s))
            reply_with_error(
                flow, 429, "llmtap_rate_limited",
                f"rate limit policy '{worst.policy.text}' reached{for_whom(worst.key[2], worst.key[3])}: "
                f"{worst.policy.quota} {'requests' if worst.policy.unit == 'request' else 'cents'} "
                f"per {worst.policy.window_s} s; retry in {retry_after} s",
                headers={**report_headers(worst), "retry-after": str(retry_after)},
                policy=worst.policy.text,
            )
            return
        for standing in standings:
            if standing.policy.unit == "request":
                state.limits.counted.append(self.counters.add(standing.key, standing.policy.window_s, 1, now))
            else:
                event = self.counters.add(standing.key, standing.policy.window_s, reserve, now)
                state.limits.reservations.append(Reservation(standing.key, standing.policy.window_s, event))
        state.limits.standings = [
            Standing(s.policy, s.key, s.used + (1 if s.policy.unit == "request" else 0), s.retry_after_s)
            for s in standings
        ]

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if state is None or flow.response is None or not state.limits.standings:
            return
        least = min(state.limits.standings, key=lambda s: s.remaining / s.policy.quota if s.policy.quota else 0)
        flow.response.headers.update(report_headers(least))

    def _policies(self, state: CallState) -> list[tuple[str, RateLimitPolicy]]:
        """(source, policy) for each policy that applies: the header's, and each matching config rule."""
        options = state.request.options
        policies = [(f"header:{state.request.key_hash}", options.ratelimit_policy)] if options.ratelimit_policy else []
        policies += [
            (f"config:{index}", rule.policy) for index, rule in enumerate(self.settings.config.ratelimit_rules)
            if rule.matches(options.user_id, state.request.key_owner, options.properties)
        ]
        return policies


class RateLimitUsage:
    """Settles a finished call's reservations (cents policies and spend budgets): each is replaced by the call's
    priced cost in cents, or released when the call failed."""

    def __init__(self, counters: Counters, clock: Callable[[], float] | None = None):
        self.counters = counters
        self.clock = clock or counters.clock

    def call_finished(self, flow: http.HTTPFlow, record: CallRecord) -> None:
        state = get_state(flow)
        if state is None or not state.limits.reservations:
            return
        reservations, state.limits.reservations = state.limits.reservations, []
        cost = record.cost_usd
        failed = flow.error is not None or flow.response is None or flow.response.status_code >= 400
        for key, window_s, event, coalesce_s in reservations:
            if cost is None and not failed:
                continue  # answered, but its cost cannot be priced: the reservation stands for it
            self.counters.release(event)
            if cost:
                self.counters.add(key, window_s, float(Decimal(cost) * 100), self.clock(), coalesce_s)


def policy_quota(policy: RateLimitPolicy) -> Quota:
    """What a policy allows per window, as the counters check it: requests, or cents reserved before calls go."""
    return Quota(policy.quota, policy.window_s, reserves=policy.unit == "cents")


def estimated_cents(request: http.Request, state: CallState, settings: Settings) -> float:
    """What a call may cost, in cents, before it is sent: see the module docstring for the estimate."""
    body = state.request.body if isinstance(state.request.body, dict) else {}
    limits = [body.get(name) for name in OUTPUT_LIMIT_FIELDS]
    output_tokens = next((n for n in limits if isinstance(n, int) and not isinstance(n, bool) and n >= 0),
                         DEFAULT_OUTPUT_TOKENS)
    size = len(request.raw_content or b"") if "content-encoding" not in request.headers else len(request.content or b"")
    usage = Usage(input_tokens=math.ceil(size / CHARS_PER_TOKEN), output_tokens=output_tokens)
    if state.route.provider is None:
        return UNPRICED_RESERVATION_CENTS
    model = state.request.model or (body.get("model") if isinstance(body.get("model"), str) else None)
    for name in dict.fromkeys([model, model.rpartition("/")[2] if model else None]):  # "openai/gpt-4o" too
        if not name:
            continue
        provider = state.route.provider
        priced = price_call(usage, name, provider.prices_provider, settings.config.pricing, state.created_at,
                            provider.name)
        if priced.cost_usd is not None:
            return float(priced.cost_usd * 100)
    return UNPRICED_RESERVATION_CENTS


def window_key(source: str, policy: RateLimitPolicy, state: CallState) -> WindowKey:
    """Which window a call counts in: the policy's own, split by user or by a property's value when `s=` says so."""
    options = state.request.options
    if policy.segment is None:
        value = None
    elif policy.segment == "user":
        value = options.user_id
    else:
        value = {k.lower(): v for k, v in options.properties.items()}.get(policy.segment.lower())
    return segment_key(source, policy, value)


def segment_key(source: str, policy: RateLimitPolicy, value: str | None) -> WindowKey:
    """The window of `policy` (from `source`) for one segment value (the user, or the property's value; None without
    a segment or for calls without one): the same for a call in flight and for the log's rows (seeding.py)."""
    kind = "all" if policy.segment is None else "user" if policy.segment == "user" else f"property:{policy.segment}"
    return (source, policy.text, kind, value)


def report_headers(standing: Standing) -> dict[str, str]:
    return {
        "helicone-ratelimit-limit": str(standing.policy.quota),
        "helicone-ratelimit-remaining": str(standing.remaining),
        "helicone-ratelimit-policy": standing.policy.text,
    }
