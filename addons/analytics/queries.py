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
# `llmtap logs`, `logs show`, `tail`, `export`: calls one by one, newest first or as they land, and the log as files.

def logs(log: Path, scope: Scope, limit: int, compact: bool = False) -> Rows:
    """The latest `limit` calls of the scope, newest first: time, id, model, user, tokens, cost (NULL when unknown),
    latency, llmtap's cache, status. `compact` (for a table at 80 columns): the id's first 8 characters (a prefix
    `call` accepts) and the time as text without the year."""
    calls, params = scoped(scope)
    time, request_id = ("strftime(created_at, '%m-%d %H:%M')", "left(request_id, 8)") if compact else (
        "created_at", "request_id")
    return run(log, f"""
        WITH {calls}
        SELECT {time} AS time, {request_id} AS id, coalesce(model, model_requested) AS model, user_id AS user,
               input_tokens AS tokens_in, output_tokens AS tokens_out, cost_usd, latency_ms,
               cache_status AS cache, status
        FROM calls ORDER BY created_at DESC, request_id DESC LIMIT ?""", [*params, limit])


def call(log: Path, id_prefix: str) -> Rows:
    """The whole row of the call whose request id is `id_prefix` or starts with it: one row, or two when the prefix
    names several calls (the exact id first, when one call has it), or none."""
    return run(log, """
        SELECT * FROM requests WHERE starts_with(request_id, ?)
        ORDER BY request_id = ? DESC, request_id LIMIT 2""", [id_prefix, id_prefix])


def last_seq(log: Path) -> int:
    """Where the log ends now, as `tail` counts: the last row's sequence number (-1 for an empty log)."""
    return int(run(log, "SELECT coalesce(max(rowid), -1) AS seq FROM requests").rows[0][0])


def tail(log: Path, scope: Scope, start_seq: int, after_seq: int) -> Rows:
    """The calls of the scope written to the log after sequence number `after_seq`, in the order they were written,
    each with the running totals (calls, spend of the priced ones, unpriced calls, errors, cache hits) since
    `start_seq` (`last_seq` when the tail began).

    The sequence is DuckDB's rowid: the gateway only appends (nothing deletes or rewrites rows), so it grows in the
    order rows are written. `created_at` is when a call started, so a slow call lands after quicker later ones; a
    cursor on it would skip or repeat rows, one on the rowid never does."""
    where, params = scope.where()
    return run(log, f"""
        WITH calls AS (SELECT rowid AS seq, * FROM requests WHERE rowid > ? AND {where})
        SELECT seq, created_at AS time, request_id AS id, coalesce(model, model_requested) AS model, user_id AS user,
               input_tokens AS tokens_in, output_tokens AS tokens_out, cost_usd, latency_ms,
               cache_status AS cache, status,
               count(*) OVER so_far AS calls,
               sum(cost_usd) OVER so_far AS spend_usd,
               count(*) FILTER (WHERE cost_usd IS NULL) OVER so_far AS unpriced,
               count(*) FILTER (WHERE status IS NULL OR status >= 400) OVER so_far AS errors,
               count(*) FILTER (WHERE cache_status = 'HIT') OVER so_far AS cache_hits
        FROM calls
        WINDOW so_far AS (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
        QUALIFY seq > ?
        ORDER BY seq""", [start_seq, *params, after_seq])


EXPORT_FORMATS = ("parquet", "csv", "jsonl")


def export(log: Path, scope: Scope, file_format: str, out: Path) -> Rows:
    """Write the scope's calls, every column, oldest first, to `out` with DuckDB's COPY; one row: how many calls.

    - parquet: a directory partitioned by UTC day (`day=2026-11-01/data_0.parquet`, hive style), money DECIMAL.
    - csv: one file with a header line; money as exact decimal text, JSON columns, maps, structs and lists as JSON.
    - jsonl: one JSON object per line; money as exact decimal numbers, bodies and maps as nested JSON."""
    calls, params = scoped(scope)
    target = "'" + str(out).replace("'", "''") + "'"
    if file_format == "parquet":
        select = "SELECT *, strftime(timezone('UTC', created_at), '%Y-%m-%d') AS day FROM calls"
        options = "FORMAT parquet, PARTITION_BY (day)"
    elif file_format == "csv":
        select = ("SELECT * REPLACE (to_json(attempt_log) AS attempt_log, to_json(properties) AS properties, "
                  "to_json(ratelimit) AS ratelimit, to_json(notes) AS notes) FROM calls")
        options = "FORMAT csv, HEADER"
    elif file_format == "jsonl":
        select, options = "SELECT * FROM calls", "FORMAT json"
    else:
        raise ScopeError(f"expected an export format of {', '.join(EXPORT_FORMATS)}, got {file_format!r}")
    return run(log, f"COPY (WITH {calls} {select} ORDER BY created_at, request_id) TO {target} ({options})",
               params)




# ---------------------------------------------------------------------------------------------- sessions, limits
