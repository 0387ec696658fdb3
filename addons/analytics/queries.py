"""The query layer: every question llmtap answers about its log, as a named, parameterised query computed by DuckDB.

The terminal commands, the web dashboard and the alert engine are views over these functions and keep no SQL of
their own. Each function takes the log's path and a `Scope` (time range and filters, scope.py) and returns `Rows`:
column names, DuckDB types (so a view writes JSON columns as JSON and money as money) and the rows. Sums, shares,
percentiles, buckets and totals are computed here, in SQL; a view only lays the rows out.

Conventions every query keeps, so views stay thin:
- money columns end in `_usd` and are DECIMAL sums of `cost_usd` (exact); an unknown price stays NULL and is counted
  (`unpriced`), never added as 0. A sum over only unpriced calls is NULL, not 0.
- latencies end in `_ms`, times are TIMESTAMPTZ shown in UTC; periods are UTC.
- every read goes through `run`, the one way of reading the log (while the gateway writes it, or after it stopped).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..batch_writer import read_log_typed
from .scope import Scope, ScopeError


@dataclass
class Rows:
    """What a query returns: column names, their DuckDB types and the rows, in the query's order."""

    columns: list[str]
    types: list[str]
    rows: list[tuple]

    def __len__(self) -> int:
        return len(self.rows)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def run(log: Path, sql: str, params: list[Any] | None = None) -> Rows:
    """Run one read-only query on the log, while a gateway may be writing it (waits for its lock, reads again after
    a torn read: batch_writer.read_log_typed)."""
    columns, types, rows = read_log_typed(log, sql, params)
    return Rows(columns, types, rows)


def scoped(scope: Scope) -> tuple[str, list[Any]]:
    """`calls`: the calls a scope selects, as a CTE every query starts from (DuckDB reads only the columns used)."""
    where, params = scope.where()
    return f"calls AS (SELECT * FROM requests WHERE {where})", params


# ---------------------------------------------------------------------------------------------- dimensions
# What a report can group by: `--by model`, `--by property:workflow`, ... Each is a SQL expression over `requests`.

@dataclass(frozen=True)
class Dimension:
    """A way to group calls: its column name in the result, and its SQL expression with parameters."""

    name: str
    sql: str
    params: tuple[Any, ...] = ()


DIMENSIONS = {
    "model": "coalesce(model, model_requested)",
    "provider": "provider",
    "user": "user_id",
    "key": "coalesce(key_owner, key_hash)",  # a gateway key's owner, else the hash of the provider key used
    "session": "session_id",
    "status": "status",
    "hour": "date_trunc('hour', timezone('UTC', created_at))",
    "day": "date_trunc('day', timezone('UTC', created_at))::DATE",
    "week": "date_trunc('week', timezone('UTC', created_at))::DATE",  # weeks start on Monday
    "month": "date_trunc('month', timezone('UTC', created_at))::DATE",
}
PERIODS = ("hour", "day", "week", "month")
PROPERTY = "property:"


def dimension(text: str) -> Dimension:
    """`model`, `provider`, `user`, `key`, `session`, `status`, `hour`, `day`, `week`, `month` or `property:NAME`
    (the name matched case-insensitively) as a `Dimension`; anything else raises ScopeError."""
    cleaned = text.strip().lower()
    if cleaned.startswith(PROPERTY) and cleaned[len(PROPERTY):].strip():
        name = cleaned[len(PROPERTY):].strip()
        return Dimension(name, "properties[?]", (name,))
    if cleaned in DIMENSIONS:
        return Dimension(cleaned, DIMENSIONS[cleaned])
    raise ScopeError(f"expected one of {', '.join(DIMENSIONS)} or property:NAME, got {text!r}")


# ---------------------------------------------------------------------------------------------- shared
# Questions several views ask.

def totals(log: Path, scope: Scope) -> Rows:
    """One row for the whole scope: requests, errors, cache hits and misses, tokens, total cost (priced calls only),
    how many calls have no price, what the cache saved, and the time of the first and last call."""
    calls, params = scoped(scope)
    return run(log, f"""
        WITH {calls}
        SELECT count(*) AS requests,
               count(*) FILTER (WHERE status IS NULL OR status >= 400) AS errors,
               count(*) FILTER (WHERE cache_status = 'HIT') AS cache_hits,
               count(*) FILTER (WHERE cache_status = 'MISS') AS cache_misses,
               coalesce(sum(input_tokens), 0) AS input_tokens,
               coalesce(sum(output_tokens), 0) AS output_tokens,
               sum(cost_usd) AS cost_usd,
               count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced,
               coalesce(sum(cost_saved_usd), 0) AS saved_usd,
               min(created_at) AS first_call, max(created_at) AS last_call
        FROM calls""", params)


def unpriced(log: Path, scope: Scope) -> Rows:
    """Calls without a price, by model and reason (`price_error`), most first: what a cost total leaves out."""
    calls, params = scoped(scope)
    return run(log, f"""
        WITH {calls}
        SELECT coalesce(model, model_requested) AS model, coalesce(price_error, 'no reason recorded') AS reason,
               count(*) AS calls
        FROM calls WHERE cost_usd IS NULL
        GROUP BY ALL ORDER BY calls DESC, model NULLS LAST, reason""", params)


# ---------------------------------------------------------------------------------------------- costs, users, trends


# ---------------------------------------------------------------------------------------------- logs, tail, export


# ---------------------------------------------------------------------------------------------- sessions, limits
# A session is the calls sharing a `Helicone-Session-Id`; calls without one belong to no session. Its cost is unknown
# (NULL) as soon as one of its calls has no price: a partial sum would pass for the whole. Its duration runs from the
# first call's arrival to the last call's end (arrival + latency).

SESSION_COLUMNS = """
    count(*) AS calls,
    count(DISTINCT user_id) AS users,
    count(DISTINCT coalesce(model, model_requested)) AS models,
    CASE WHEN count(*) FILTER (WHERE cost_usd IS NULL) = 0 THEN sum(cost_usd) END AS cost_usd,
    count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced,
    coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0) AS tokens,
    count(*) FILTER (WHERE status IS NULL OR status >= 400) AS errors,
    min(created_at) AS started,
    (max(epoch_us(created_at) + coalesce(latency_ms, 0) * 1000) - min(epoch_us(created_at))) / 1000 AS duration_ms"""


def sessions(log: Path, scope: Scope, limit: int | None = None) -> Rows:
    """One row per session the scope's calls belong to, newest first: its id, name (the latest one given), calls,
    distinct users and models, cost (NULL when a call lacks a price; `unpriced` counts those), tokens (input +
    output), errors, when it started and how long it lasted. `limit`: only the newest that many."""
    calls, params = scoped(scope)
    return run(log, f"""
        WITH {calls}
        SELECT session_id AS session,
               arg_max(session_name, created_at) FILTER (WHERE session_name IS NOT NULL) AS name,
               {SESSION_COLUMNS}
        FROM calls WHERE session_id IS NOT NULL
        GROUP BY session_id ORDER BY started DESC, session LIMIT ?""", [*params, limit])


def sessions_matching(log: Path, prefix: str) -> Rows:
    """The session ids equal to `prefix`, else those starting with it (at most two: enough to tell one from many)."""
    return run(log, """
        SELECT session_id AS session FROM requests WHERE session_id = ?
        UNION
        (SELECT DISTINCT session_id FROM requests
         WHERE starts_with(session_id, ?) AND NOT EXISTS (SELECT 1 FROM requests WHERE session_id = ?)
         ORDER BY session_id LIMIT 2)
        ORDER BY session""", [prefix, prefix, prefix])


def trace(log: Path, session_id: str) -> Rows:
    """The calls of one session in the order they arrived, each with its `path` (the Helicone-Session-Path cleaned:
    one leading `/`, no trailing or doubled `/`; NULL when it has none), its `depth` (how many levels: `/a/b` is 2,
    no path 0) and `offset_ms`, how long after the session's first call it arrived."""
    calls, params = scoped(Scope(sessions=(session_id,)))
    return run(log, f"""
        WITH {calls}, cleaned AS (
            SELECT *, nullif(trim(regexp_replace(session_path, '/+', '/', 'g'), '/'), '') AS trimmed_path FROM calls
        )
        SELECT request_id, '/' || trimmed_path AS path,
               CASE WHEN trimmed_path IS NULL THEN 0 ELSE len(string_split(trimmed_path, '/')) END AS depth,
               (epoch_us(created_at) - min(epoch_us(created_at)) OVER ()) / 1000 AS offset_ms,
               created_at, coalesce(model, model_requested) AS model, user_id AS user, status, latency_ms,
               input_tokens, output_tokens, cost_usd, error
        FROM cleaned ORDER BY created_at, request_id""", params)


def session_totals(log: Path, session_id: str) -> Rows:
    """One session's totals, as `sessions` computes them for every session (calls, cost, tokens, errors,
    duration, ...)."""
    return sessions(log, Scope(sessions=(session_id,)))


# A provider's budget, read from any rate-limit header named the way providers name them (`…ratelimit-remaining-
# requests` as OpenAI does, `…ratelimit-requests-remaining` as Anthropic does), as the `throttling` view (m005) reads
# it: no provider names here. Calls are grouped by the model sent to the provider that answered (the last try's
# model), so a 429 and the answers of the same model meet in one row even when the answer names a dated model.

def _budget(quantity: str, kind: str) -> str:
    # Suffix tests rather than m005's regular expression: the same names, twice as fast over a million rows.
    names = (f"-ratelimit-{quantity}-{kind}", f"-ratelimit-{kind}-{quantity}")
    matches = " OR ".join(f"suffix('-' || k, '{name}')" for name in names)
    return (f"TRY_CAST(map_values(ratelimit)[list_position(list_transform(map_keys(ratelimit), lambda k: {matches}),"
            f" true)] AS DOUBLE)")


def limits(log: Path, scope: Scope) -> Rows:
    """Throttling per provider, model and key (a gateway key's owner, else the key's fingerprint), most throttled
    first: the 429s providers sent (every try, retried ones included, as the `throttling` view counts them) and
    the latest retry-after asked for; the lowest remaining requests and tokens any answer reported, against their
    limits; and the latest answer's remaining budget (how close to the limit it is now) with when it was seen.
    `…_left_…_pct` is remaining / limit, 0–100."""
    calls, params = scoped(scope)
    return run(log, f"""
        WITH {calls},
        tries AS (
            SELECT *, unnest(attempt_log) AS try, generate_subscripts(attempt_log, 1) AS try_number
            FROM calls WHERE attempt_log IS NOT NULL
        ),
        throttled AS (  -- the 429s of the `throttling` view (m005), with each try's place so "latest" is exact
            SELECT try.provider, try.model, coalesce(key_owner, key_hash) AS key, created_at, try_number,
                   try.retry_after_s
            FROM tries WHERE try.status = 429
            UNION ALL
            SELECT provider, coalesce(model_requested, model), coalesce(key_owner, key_hash), created_at, 1,
                   coalesce(TRY_CAST(ratelimit['retry-after-ms'] AS DOUBLE) / 1000,
                            TRY_CAST(ratelimit['retry-after'] AS DOUBLE))
            FROM calls WHERE status = 429 AND attempts > 0 AND attempt_log IS NULL
        ),
        budgets AS (
            SELECT provider, coalesce(attempt_log[-1].model, model_requested, model) AS model,
                   coalesce(key_owner, key_hash) AS key, created_at,
                   {_budget("remaining", "requests")} AS requests_remaining,
                   {_budget("limit", "requests")} AS requests_limit,
                   {_budget("remaining", "tokens")} AS tokens_remaining,
                   {_budget("limit", "tokens")} AS tokens_limit
            -- a cache hit replays an old answer's headers: they say nothing about the budget at its time
            FROM calls WHERE cardinality(ratelimit) > 0 AND cache_status IS DISTINCT FROM 'HIT'
        ),
        reported AS (
            SELECT *, 100 * requests_remaining / nullif(requests_limit, 0) AS requests_left_pct,
                   100 * tokens_remaining / nullif(tokens_limit, 0) AS tokens_left_pct
            FROM budgets
            WHERE coalesce(requests_remaining, requests_limit, tokens_remaining, tokens_limit) IS NOT NULL
        ),
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
