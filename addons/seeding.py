"""The gateway's counters start from the log, so that a restart resets no budget and no rate-limit policy.

`CounterSeeding` reads, when the gateway starts (mitmproxy configures addons before it opens any listener, so
before the first call can be admitted) and whenever the config's limits change, what earlier calls used in each
limit's current window, and seeds `counters.Counters` with it:

- every block rule (`alerts` with `action: block`) from `alerting.rule_usage`: a rolling window in buckets of a
  hundredth of it, a calendar window's period whole, under the period's key (the next day or month starts empty);
- every config rate-limit rule (`ratelimit.policies`), by its filter (user, key owner, properties) and segment;
- every `Helicone-RateLimit-Policy` calls sent within its window (`requests.ratelimit_policy`), per paying key, as
  RateLimiter keys it live.

Requests count the calls llmtap let through (`alerting.ADMITTED`), cents and spend the calls' `cost_usd`. A bucket is
placed at its latest call, on the monotonic clock (`now_monotonic - (now_wall - last_at)`): it leaves a rolling
window when that call does, never before any of its calls would have. Rows a stopped gateway left in its spool are
written after start-up (store.py) and are not seeded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import duckdb

from .analytics import queries
from .budgets import BUCKETS_PER_WINDOW, block_rules, budget_key
from .config import Config
from .counters import Counters
from .ratelimit import UNPRICED_RESERVATION_CENTS, segment_key
from .ratelimit_policy import RateLimitPolicy, parse_ratelimit_policy
from .settings import Settings

logger = logging.getLogger(__name__)
UNPRICED_USD = UNPRICED_RESERVATION_CENTS / 100  # what an answered call without a price holds live, in USD

class CounterSeeding:
    """Seeds the counters from the log at start-up (after Recorder has opened and migrated it) and when the config's
    limits change; the counters of limits the config dropped are forgotten."""

    def __init__(self, settings: Settings, counters: Counters, wall_clock: Callable[[], float] = time.time):
        self.settings = settings
        self.counters = counters
        self.wall_clock = wall_clock
        self._seeded_for: tuple | None = None

    def configure(self, updated: set[str]) -> None:
        config = self.settings.config
        limits = (config.storage_path, tuple(block_rules(config.alert_rules)), config.ratelimit_rules)
        if limits == self._seeded_for:
            return
        self._seeded_for = limits
        self.counters.clear()
        started = time.perf_counter()
        try:
            seeded = seed_counters(self.counters, config, self.counters.clock(), self.wall_clock())
        except duckdb.Error as e:  # the gateway still starts; its limits count from now
            logger.error(f"llmtap: budgets and rate limits start from zero: reading the log failed ({e})")
            return
        logger.info(f"llmtap: budgets and rate limits start from the log: {seeded} buckets of earlier calls "
                    f"({time.perf_counter() - started:.2f} s)")


def seed_counters(counters: Counters, config: Config, now_monotonic: float, now_wall: float) -> int:
    """Seed `counters` with what earlier calls used in every limit's window at `now_wall` (see the module docstring);
    returns how many buckets were seeded."""
    log = config.storage_path
    now = datetime.fromtimestamp(now_wall, UTC)

    def at(last_at: datetime) -> float:
        return now_monotonic - max(0.0, (now - last_at).total_seconds())

    seeded = 0
    with queries.reading(log):
        for rule in block_rules(config.alert_rules):
            window = rule.window
            bucket_s = window.longest_s if window.seconds is None else _bucket_s(window.seconds)
            period_start = None if window.rolling else window.span(now)[0]
            scale = 100 if rule.metric == "spend_usd" else 1  # budgets count spend in cents, as reservations are
            used = queries.rule_usage(log, rule, now, bucket_s, UNPRICED_USD)
            for scope_value, _bucket, amount, last_at in used.rows:
                counters.seed(budget_key(rule, scope_value, period_start), window.longest_s, amount * scale,
                              at(last_at))
                seeded += 1
        for index, config_rule in enumerate(config.ratelimit_rules):
            policy = config_rule.policy
            rows = queries.policy_usage(log, now - timedelta(seconds=policy.window_s), policy.unit == "cents",
                                        policy.segment, _bucket_s(policy.window_s), user=config_rule.user,
                                        key_owner=config_rule.key_owner, properties=config_rule.properties,
                                        unpriced_usd=UNPRICED_USD)
            seeded += _seed_policy(counters, f"config:{index}", policy, rows.rows, at, by_key=False)
        for text, last_at in queries.header_policies(log).rows:
            try:
                policy = parse_ratelimit_policy(text)
            except ValueError:
                continue
            since = now - timedelta(seconds=policy.window_s)
            if last_at <= since:
                continue
            rows = queries.policy_usage(log, since, policy.unit == "cents", policy.segment,
                                        _bucket_s(policy.window_s), header=text, unpriced_usd=UNPRICED_USD)
            seeded += _seed_policy(counters, "header", policy, rows.rows, at, by_key=True)
    return seeded


def _seed_policy(counters: Counters, source: str, policy: RateLimitPolicy, rows: list[tuple],
                 at: Callable[[datetime], float], by_key: bool) -> int:
    for key_hash, segment_value, _bucket, amount, last_at in rows:
        # A header policy counts per paying key (RateLimiter's `header:<key_hash>`); a config rule on its own.
        key = segment_key(f"{source}:{key_hash}" if by_key else source, policy, segment_value)
        counters.seed(key, policy.window_s, amount, at(last_at))
    return len(rows)


def _bucket_s(window_s: int) -> int:
    return max(1, window_s // BUCKETS_PER_WINDOW)
