"""Calls one by one, newest first or as they land, and the log as files: `llmtap logs`, `logs show`, `tail`,
`export`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .rows import Rows, run, scoped
from .scope import Scope, ScopeError

SEARCH_WINDOWS = (timedelta(hours=1), timedelta(days=1), timedelta(days=7), timedelta(days=30))


def logs(log: Path, scope: Scope, limit: int, compact: bool = False) -> Rows:
    """The latest `limit` calls of the scope, newest first: time, id, model, user, tokens, cost (NULL when unknown),
    latency, llmtap's cache, status. `compact` (for a table at 80 columns): the id's first 8 characters (a prefix
    `call` accepts) and the time as text without the year.

    A text search (`scope.text`) reads every body it looks at, the one costly read of the log (about 2.5 GB of
    JSON per million calls), so it looks newest first: the last hour, day, week, month, then the rest, and stops once
    `limit` calls are found. The log is written in time order, so DuckDB skips the row groups outside each window
    (its min/max of `created_at`); a match from today costs a day of bodies, not the whole log."""
    if not scope.text:
        return _latest_calls(log, scope, limit, compact)
    found = Rows([], [], [])
    upper = scope.until
    newest = datetime.now(UTC) if upper is None else upper
    for window in (*SEARCH_WINDOWS, None):
        lower = None if window is None else newest - window
        if scope.since is not None and (lower is None or lower <= scope.since):
            lower = scope.since
        part = _latest_calls(log, replace(scope, since=lower, until=upper), limit - len(found), compact)
        found = Rows(part.columns, part.types, [*found.rows, *part.rows])
        if len(found) >= limit or lower is None or lower == scope.since:
            return found
        upper = lower
    return found  # not reached: the last window has no lower bound


def _latest_calls(log: Path, scope: Scope, limit: int, compact: bool) -> Rows:
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
