"""Calls one by one, newest first or as they land, and the log as files: `llmtap logs`, `logs show`, `tail`,
`export`."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .rows import Rows, run, scoped
from .scope import Scope, ScopeError

SEARCH_WINDOWS = (timedelta(hours=1), timedelta(days=1), timedelta(days=7), timedelta(days=30))
SEARCH_PACE_S = 5e-6  # a text search's time per call read (2.5 KB of bodies), until a window has measured it
PACE_SAMPLE = 2000  # calls a window must have read for its own pace to count
REST_GUESS = timedelta(days=365)  # how far back the rest of a log reaches, when no start is given
MIN_SEARCH_STEP = timedelta(minutes=1)  # less of the next window than this is not worth a read


# A call's place in the newest-first order: (created_at, request_id), what a page of calls continues from.
Cursor = tuple[datetime, str]

# What `llmtap logs` shows, and the wider row the dashboard's requests table shows.
LOG_COLUMNS = """coalesce(model, model_requested) AS model, user_id AS user, input_tokens AS tokens_in,
               output_tokens AS tokens_out, cost_usd, latency_ms, cache_status AS cache, status"""
PAGE_COLUMNS = """provider, coalesce(model, model_requested) AS model, user_id AS user, session_id AS session,
               status, latency_ms, ttft_ms, input_tokens AS tokens_in, output_tokens AS tokens_out, cost_usd,
               cache_status AS cache, way, key_owner"""


def logs(log: Path, scope: Scope, limit: int, compact: bool = False, *, before: Cursor | None = None,
         after: Cursor | None = None, wide: bool = False) -> Rows:
    """The latest `limit` calls of the scope, newest first: time, id, model, user, tokens, cost (NULL when unknown),
    latency, llmtap's cache, status. `compact` (for a table at 80 columns): the id's first 8 characters (a prefix
    `call` accepts) and the time as text without the year. `wide` (the dashboard's table): time, id, provider, model,
    user, session, status, latency and TTFT, tokens, cost, cache, way in and key owner.

    Paging is by keyset, so the millionth row costs what the first does: `before` = the (created_at, request_id) of
    the oldest call shown gives the next older page; `after` = the newest call shown gives the page just newer than
    it (still newest first).

    A text search (`scope.text`): see `search_calls`."""
    if not scope.text or after is not None:
        return _latest_calls(log, scope, limit, compact, before, after, wide)
    return search_calls(log, scope, limit, compact, before=before, wide=wide)[0]


def search_calls(log: Path, scope: Scope, limit: int, compact: bool = False, *, before: Cursor | None = None,
                 wide: bool = False, budget_s: float | None = None) -> tuple[Rows, datetime | None]:
    """The latest `limit` calls of the scope whose bodies hold `scope.text`, as `logs` shows them, and where the
    search stopped: None when it read the whole scope (or found `limit` calls), else the time it read back to.

    A text search reads every body it looks at, the one costly read of the log (about 2.5 GB of JSON per million
    calls), so it looks newest first: the last hour, day, week, month, then the rest, and stops once `limit` calls
    are found. The log is written in time order, so DuckDB skips the row groups outside each window (its min/max of
    `created_at`); a match from today costs a day of bodies, not the whole log. The windows start at `before`'s time.

    With `budget_s` (a page that must draw within a second), it does not start a window that, at the pace of the
    last one, would end past the budget: it returns what it found and the time it read back to, and the caller asks
    again from there (`before` = that time, any id) for older calls."""
    started = time.monotonic()
    found = Rows([], [], [])
    upper = scope.until
    newest = datetime.now(UTC) if upper is None else upper
    if before is not None:
        newest = min(newest, before[0] + timedelta(microseconds=1))  # the cursor's own time may hold older ids
    windows = [*SEARCH_WINDOWS, None]
    for number, window in enumerate(windows):
        lower = None if window is None else newest - window
        if scope.since is not None and (lower is None or lower <= scope.since):
            lower = scope.since
        window_started = time.monotonic()
        part = _latest_calls(log, replace(scope, since=lower, until=upper), limit - len(found), compact, before,
                             None, wide)
        found = Rows(part.columns, part.types, [*found.rows, *part.rows])
        if len(found) >= limit or lower is None or lower == scope.since:
            return found, None
        if budget_s is not None:
            # The bodies read cost about the same per call: the next window's calls (counted from the time index,
            # no body read) at this window's pace per call say whether it would end past the budget.
            unfiltered = replace(scope, text=None)
            read = count_calls(log, replace(unfiltered, since=lower, until=upper)) or 0
            pace_s = (time.monotonic() - window_started) / read if read >= PACE_SAMPLE else SEARCH_PACE_S
            following = windows[number + 1]
            next_lower = None if following is None else newest - following
            if scope.since is not None and (next_lower is None or next_lower < scope.since):
                next_lower = scope.since
            ahead = count_calls(log, replace(unfiltered, since=next_lower, until=lower)) or 0
            left_s = budget_s - (time.monotonic() - started)
            if ahead and pace_s * ahead > left_s:
                # Only the part of the next window the budget still covers (calls spread evenly over it, as near
                # enough), so that every page reads about a budget's worth of bodies.
                reach = (lower - (next_lower or lower - REST_GUESS)) * max(0.0, left_s / (pace_s * ahead))
                if reach < MIN_SEARCH_STEP:
                    return found, lower
                part = _latest_calls(log, replace(scope, since=lower - reach, until=lower), limit - len(found),
                                     compact, before, None, wide)
                found = Rows(part.columns, part.types, [*found.rows, *part.rows])
                return found, (None if len(found) >= limit else lower - reach)
        upper = lower
    return found, None  # not reached: the last window has no lower bound


def _latest_calls(log: Path, scope: Scope, limit: int, compact: bool, before: Cursor | None = None,
                  after: Cursor | None = None, wide: bool = False) -> Rows:
    calls, params = scoped(scope)
    time, request_id = ("strftime(created_at, '%m-%d %H:%M')", "left(request_id, 8)") if compact else (
        "created_at", "request_id")
    # The plain `created_at <=`/`>=` lets DuckDB skip row groups by their min/max time; the OR picks the exact place.
    keyset, cursor = "true", []
    if before is not None:
        keyset = "created_at <= ? AND (created_at < ? OR request_id < ?)"
        cursor = [before[0], before[0], before[1]]
    elif after is not None:
        keyset = "created_at >= ? AND (created_at > ? OR request_id > ?)"
        cursor = [after[0], after[0], after[1]]
    # Newer than `after`: the `limit` calls just above it, then newest first like every page.
    order = "ASC" if after is not None else "DESC"
    return run(log, f"""
        WITH {calls}, page AS (
            SELECT created_at AS sort_at, request_id AS sort_id, {time} AS time, {request_id} AS id,
                   {PAGE_COLUMNS if wide else LOG_COLUMNS}
            FROM calls WHERE {keyset} ORDER BY created_at {order}, request_id {order} LIMIT ?)
        SELECT * EXCLUDE (sort_at, sort_id) FROM page ORDER BY sort_at DESC, sort_id DESC""", [*params, *cursor, limit])


def count_calls(log: Path, scope: Scope) -> int | None:
    """How many calls the scope holds (the "of 1,234,567" under a page of calls); None with a text search, which
    would read every body in the scope to count them."""
    if scope.text:
        return None
    calls, params = scoped(scope)
    return int(run(log, f"WITH {calls} SELECT count(*) AS calls FROM calls", params).rows[0][0])


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
