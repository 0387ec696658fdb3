"""What rate-limit policies' calls already used, for the gateway's counters to start from after a restart (seeding.py).
Budgets (block rules) start from `alerting.rule_usage`.

Counted as the gateway counts live: requests are the calls llmtap let through (`alerting.ADMITTED`), cents the priced
cost (`cost_usd`) of those calls. Each query answers per `bucket_s`-second bucket with `last_at`, the bucket's latest
call: the gateway forgets a bucket's amount when that call leaves the window, never before any of its calls would
have.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from .alerting import ADMITTED, spend_sql
from .rows import Rows, run


def header_policies(log: Path) -> Rows:
    """Every `Helicone-RateLimit-Policy` text calls sent (`requests.ratelimit_policy`), with `last_at`, the latest
    call that sent it. The gateway parses each for its window and keeps those seen within it."""
    return run(log, """
        SELECT ratelimit_policy, max(created_at) AS last_at FROM requests
        WHERE ratelimit_policy IS NOT NULL GROUP BY ratelimit_policy ORDER BY ratelimit_policy""")


def policy_usage(log: Path, since: datetime, cents: bool, segment: str | None, bucket_s: int, *,
                 header: str | None = None, user: str | None = None, key_owner: str | None = None,
                 properties: tuple[tuple[str, str], ...] = (), unpriced_usd: float = 0.0) -> Rows:
    """What the calls a rate-limit policy counts used since `since`: per `key_hash` (the paying key a header policy
    counts per), `segment_value` (the user, or the value of the property named `segment`; NULL without a segment)
    and bucket, `amount` (cents when `cents`, else calls) and `last_at`. `header` selects the calls that sent that
    policy text; `user`, `key_owner` and `properties` (lower-cased names) those a config rule matches. Oldest
    first. An answered call without a price counts `unpriced_usd` towards cents (`alerting.spend_sql`)."""
    segment_sql, params = _segment(segment)
    conditions = ["created_at >= ?", ADMITTED]
    where_params: list[Any] = [since]
    for column, value in (("ratelimit_policy", header), ("user_id", user), ("key_owner", key_owner)):
        if value is not None:
            conditions.append(f"{column} = ?")
            where_params.append(value)
    for name, value in properties:
        conditions.append("properties[?] = ?")
        where_params += [name, value]
    amount = f"{spend_sql(unpriced_usd)} * 100" if cents else "count(*)"
    return run(log, f"""
        SELECT key_hash, {segment_sql} AS segment_value, epoch_us(created_at) // {int(bucket_s) * 1_000_000} AS bucket,
               {amount}::DOUBLE AS amount, max(created_at) AS last_at
        FROM requests WHERE {' AND '.join(conditions)}
        GROUP BY ALL HAVING amount > 0 ORDER BY last_at""", params + where_params)


def _segment(segment: str | None) -> tuple[str, list[Any]]:
    if segment is None:
        return "NULL::VARCHAR", []
    if segment == "user":
        return "user_id", []
    return "properties[?]", [segment.lower()]
