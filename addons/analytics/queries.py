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


UTC_DAY = "(DATE '1970-01-01' + (epoch_us(created_at) // 86400000000)::INTEGER)"  # calls are after 1970
DIMENSIONS = {
    "model": "coalesce(model, model_requested)",
    "provider": "provider",
    "user": "user_id",
    "key": "coalesce(key_owner, key_hash)",  # a gateway key's owner, else the hash of the provider key used
    "session": "session_id",
    "status": "status",
    # UTC periods from the instant's microseconds: the same values as date_trunc over timezone('UTC', created_at),
    # in any session time zone, for a sixth of the CPU (10M calls: 1.9 s against 0.2-0.5 s, scripts/bench_reports.py)
    "hour": "make_timestamp(epoch_us(created_at) // 3600000000 * 3600000000)",
    "day": UTC_DAY,
    "week": f"date_trunc('week', {UTC_DAY})::DATE",  # weeks start on Monday
    "month": f"date_trunc('month', {UTC_DAY})::DATE",
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
