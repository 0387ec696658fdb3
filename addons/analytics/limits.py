"""Throttling and providers' remaining budgets: `llmtap limits`, and both over time for the dashboard.

A provider's budget, read from any rate-limit header named the way providers name them (`…ratelimit-remaining-
requests` as OpenAI does, `…ratelimit-requests-remaining` as Anthropic does), as the `throttling` view (m005) reads
it: no provider names here. Calls are grouped by the model sent to the provider that answered (the last try's
model), so a 429 and the answers of the same model meet in one row even when the answer names a dated model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .buckets import bucket_of, bucket_time, buckets
from .rows import Rows, run, scoped
from .scope import Scope


def _budget(header_names: list[str], quantity: str, kind: str) -> tuple[str, list[str]]:
    """The SQL reading one budget figure from a call's `ratelimit` map, and its parameters: the first of the headers
    named for it (`-ratelimit-remaining-requests` or `-ratelimit-requests-remaining` at the end of the name) among
    `header_names`, the names the log holds. Looking those few names up directly costs a tenth of testing every
    key of every row's map."""
    endings = (f"-ratelimit-{quantity}-{kind}", f"-ratelimit-{kind}-{quantity}")
    names = sorted(name for name in header_names if ("-" + name).endswith(endings))
    if not names:
        return "NULL::DOUBLE", []
    return f"TRY_CAST(coalesce({', '.join('ratelimit[?]' for _ in names)}) AS DOUBLE)", names


# The 429s providers sent, as the `throttling` view (m005) counts them: every try of a call with an attempt log
# (retried ones included), else the call itself; each with its try's place so "latest" is exact. After `calls`.
THROTTLED = """tries AS (
            SELECT *, unnest(attempt_log) AS try, generate_subscripts(attempt_log, 1) AS try_number
            FROM calls WHERE attempt_log IS NOT NULL
        ),
        throttled AS (
            SELECT try.provider, try.model, coalesce(key_owner, key_hash) AS key, created_at, try_number,
                   try.retry_after_s
            FROM tries WHERE try.status = 429
            UNION ALL
            SELECT provider, coalesce(model_requested, model), coalesce(key_owner, key_hash), created_at, 1,
                   coalesce(TRY_CAST(ratelimit['retry-after-ms'] AS DOUBLE) / 1000,
                            TRY_CAST(ratelimit['retry-after'] AS DOUBLE))
            FROM calls WHERE status = 429 AND attempts > 0 AND attempt_log IS NULL
        )"""


def ratelimit_headers(log: Path, scope: Scope) -> list[str]:
    """The names of the rate-limit headers the scope's calls hold: what `limits` and `headroom_series` look up first.
    A view asking both for one scope looks them up once and passes them to each (`header_names`)."""
    calls, params = scoped(scope)
    return [row[0] for row in run(log, f"""
        WITH {calls} SELECT DISTINCT unnest(map_keys(ratelimit)) FROM calls""", params).rows]


def _reported(log: Path, scope: Scope, header_names: list[str] | None) -> tuple[str, list[Any]]:
    """The CTEs `calls`, `tries`, `throttled` and `reported` (every answer that reported a budget: its remaining
    and limit figures and `…_left_pct`, remaining / limit 0–100), and their parameters. The rate-limit header names
    are those the scope's calls hold (`ratelimit_headers`), looked up first unless given."""
    calls, params = scoped(scope)
    if header_names is None:
        header_names = ratelimit_headers(log, scope)
    budgets = {f"{kind}_{quantity}": _budget(header_names, quantity, kind)  # in the order the SQL names them
               for kind in ("requests", "tokens") for quantity in ("remaining", "limit")}
    return f"""{calls},
        {THROTTLED},
        budgets AS (
            SELECT provider, coalesce(attempt_log[-1].model, model_requested, model) AS model,
                   coalesce(key_owner, key_hash) AS key, created_at,
                   {", ".join(f"{sql} AS {name}" for name, (sql, _) in budgets.items())}
            -- a cache hit replays an old answer's headers: they say nothing about the budget at its time
            FROM calls WHERE cardinality(ratelimit) > 0 AND cache_status IS DISTINCT FROM 'HIT'
        ),
        reported AS (
            SELECT *, 100 * requests_remaining / nullif(requests_limit, 0) AS requests_left_pct,
                   100 * tokens_remaining / nullif(tokens_limit, 0) AS tokens_left_pct
            FROM budgets
            WHERE coalesce(requests_remaining, requests_limit, tokens_remaining, tokens_limit) IS NOT NULL
        )""", [*params, *(name for sql, names in budgets.values() for name in names)]


def limits(log: Path, scope: Scope, header_names: list[str] | None = None) -> Rows:
    """Throttling per provider, model and key (a gateway key's owner, else the key's fingerprint), most throttled
    first: the 429s providers sent (every try, retried ones included, as the `throttling` view counts them) and
    the latest retry-after asked for; the lowest remaining requests and tokens any answer reported, against their
    limits; and the latest answer's remaining budget (how close to the limit it is now) with when it was seen.
    `…_left_…_pct` is remaining / limit, 0–100. `header_names`: see `ratelimit_headers`."""
    reported, params = _reported(log, scope, header_names)
    return run(log, f"""
        WITH {reported},
        throttling_by_key AS (
            SELECT provider, model, key, count(*) AS rate_limited, max(created_at) AS last_rate_limited,
                   arg_max(retry_after_s, (created_at, try_number)) FILTER (WHERE retry_after_s IS NOT NULL)
                       AS retry_after_s
            FROM throttled GROUP BY ALL
        ),
        budget_by_key AS (
            SELECT provider, model, key,
                   min(requests_remaining) AS requests_remaining_min,
                   arg_min(requests_limit, requests_remaining) AS requests_limit,
                   min(requests_left_pct) AS requests_left_min_pct,
                   min(tokens_remaining) AS tokens_remaining_min,
                   arg_min(tokens_limit, tokens_remaining) AS tokens_limit,
                   min(tokens_left_pct) AS tokens_left_min_pct,
                   arg_max(requests_remaining, created_at) AS requests_remaining_now,
                   arg_max(requests_left_pct, created_at) AS requests_left_now_pct,
                   arg_max(tokens_remaining, created_at) AS tokens_remaining_now,
                   arg_max(tokens_left_pct, created_at) AS tokens_left_now_pct,
                   max(created_at) AS seen_at
            FROM reported GROUP BY ALL
        )
        SELECT coalesce(t.provider, b.provider) AS provider, coalesce(t.model, b.model) AS model,
               coalesce(t.key, b.key) AS key, coalesce(rate_limited, 0) AS rate_limited, last_rate_limited,
               retry_after_s, requests_remaining_min, requests_limit, requests_left_min_pct,
               tokens_remaining_min, tokens_limit, tokens_left_min_pct,
               requests_remaining_now, requests_left_now_pct, tokens_remaining_now, tokens_left_now_pct, seen_at
        FROM throttling_by_key t FULL JOIN budget_by_key b  -- NULL keys (no key seen) match each other too
            ON t.provider IS NOT DISTINCT FROM b.provider AND t.model IS NOT DISTINCT FROM b.model
               AND t.key IS NOT DISTINCT FROM b.key
        ORDER BY rate_limited DESC, least(requests_left_min_pct, tokens_left_min_pct) NULLS LAST,
                 provider NULLS LAST, model NULLS LAST, key NULLS LAST""", params)


def headroom_series(log: Path, scope: Scope, step_s: int, header_names: list[str] | None = None) -> Rows:
    """Per time bucket (`step_s` wide, gap-filled: buckets.py): the 429s providers sent (`rate_limited`, counted as
    `limits` counts them) and the lowest remaining budget any answer reported (`requests_left_min_pct`,
    `tokens_left_min_pct`, 0–100; NULL when none reported one). No rows when the scope has no calls.
    `header_names`: see `ratelimit_headers`."""
    reported, params = _reported(log, scope, header_names)
    filled, fill_params = buckets(scope, step_s)
    return run(log, f"""
        WITH {reported},
        {filled},
        throttled_per_bucket AS (
            SELECT {bucket_of("created_at", step_s)} AS b, count(*) AS rate_limited FROM throttled GROUP BY 1),
        budget_per_bucket AS (
            SELECT {bucket_of("created_at", step_s)} AS b, min(requests_left_pct) AS requests_left_min_pct,
                   min(tokens_left_pct) AS tokens_left_min_pct
            FROM reported GROUP BY 1)
        SELECT {bucket_time("k.b", step_s)} AS bucket, coalesce(t.rate_limited, 0) AS rate_limited,
               r.requests_left_min_pct, r.tokens_left_min_pct
        FROM buckets k LEFT JOIN throttled_per_bucket t ON t.b = k.b LEFT JOIN budget_per_bucket r ON r.b = k.b
        ORDER BY k.b""", [*params, *fill_params])
