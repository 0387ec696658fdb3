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

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
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

    def only(self, names: Iterable[str]) -> Rows:
        """These rows with only the columns `names`, in that order (what a narrow view shows)."""
        keep = [self.columns.index(name) for name in names]
        return Rows([self.columns[i] for i in keep], [self.types[i] for i in keep],
                    [tuple(row[i] for i in keep) for row in self.rows])


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
REPORT_COLUMNS = {"requests", "input_tokens", "output_tokens", "cost_usd", "avg_cost_usd", "saved_usd", "share_pct",
                  "unpriced", "kind", "period_requests", "period_cost_usd"}  # what costs and trends add to a group
PROPERTY = "property:"


def dimension(text: str) -> Dimension:
    """`model`, `provider`, `user`, `key`, `session`, `status`, `hour`, `day`, `week`, `month` or `property:NAME`
    (the name matched case-insensitively) as a `Dimension`; anything else raises ScopeError."""
    cleaned = text.strip().lower()
    if cleaned.startswith(PROPERTY) and cleaned[len(PROPERTY):].strip():
        name = cleaned[len(PROPERTY):].strip()
        if '"' in name:  # the column's quoted name; no header name holds a quote
            raise ScopeError(f"a property name has no quote (\"), got {text!r}")
        # A property named like another dimension or a report's own column (`user`, `kind`, `requests`) keeps
        # `property:` in its column name: two columns of one name would lose one of them in JSON.
        column = f"{PROPERTY}{name}" if name in DIMENSIONS or name in REPORT_COLUMNS else name
        return Dimension(column, "properties[?]", (name,))
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
# `llmtap costs`, `llmtap users`, `llmtap trends`: what was spent, by whom, and how it moves over time.

def costs(log: Path, scope: Scope, by: Dimension, then: Dimension | None = None) -> Rows:
    """Cost per group of `by`: requests, tokens, total cost of the priced calls (`cost_usd`, NULL when none has a
    price), average cost per priced call, what the cache saved, the share of the scope's total cost (`share_pct`,
    0-100) and how many calls have no price. `kind` says what a row is: `group`, with `then` a `subtotal` of a `by`
    group followed by its `group` rows (one per value of `then`), and last the `total` (its group columns NULL).
    A group whose calls have no value (no user, no such property) has a NULL value. Periods come in time order,
    other groups by cost, most first (a `then` group within its `by` group)."""
    if then is not None and then.name == by.name:
        raise ScopeError(f"--then must name another dimension than --by, both are {by.name!r}")
    calls, params = scoped(scope)
    dimensions = [by] if then is None else [by, then]
    names = ", ".join(f'"{d.name}"' for d in dimensions)
    # A `by` group's rows (its subtotal and its `then` groups) share a partition; the subtotal is its largest row.
    outer_group = f'(PARTITION BY grouping("{by.name}"), "{by.name}")'
    outer = f'"{by.name}" NULLS LAST' if by.name in PERIODS else (
        f'max(sum(cost_usd)) OVER {outer_group} DESC NULLS LAST, max(count(*)) OVER {outer_group} DESC, '
        f'"{by.name}" NULLS LAST')
    inner = "" if then is None else f', kind DESC, "{then.name}" NULLS LAST' if then.name in PERIODS else (
        f', kind DESC, cost_usd DESC NULLS LAST, requests DESC, "{then.name}" NULLS LAST')  # subtotal first
    return run(log, f"""
        WITH {calls},
        grouped AS (
            SELECT {", ".join(f'{d.sql} AS "{d.name}"' for d in dimensions)},
                   cost_usd, input_tokens, output_tokens, cost_saved_usd
            FROM calls)
        SELECT {names},
               count(*) AS requests,
               coalesce(sum(input_tokens), 0)::BIGINT AS input_tokens,
               coalesce(sum(output_tokens), 0)::BIGINT AS output_tokens,
               sum(cost_usd) AS cost_usd,
               (sum(cost_usd) / count(cost_usd))::DECIMAL(18, 10) AS avg_cost_usd,
               coalesce(sum(cost_saved_usd), 0) AS saved_usd,
               round(100 * sum(cost_usd)::DOUBLE / nullif((SELECT sum(cost_usd) FROM calls), 0)::DOUBLE, 2)
                   AS share_pct,
               count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced,
               CASE grouping({names}) WHEN 0 THEN 'group' WHEN {2 ** len(dimensions) - 1} THEN 'total'
                                      ELSE 'subtotal' END AS kind
        FROM grouped
        GROUP BY ROLLUP ({names})
        HAVING count(*) > 0  -- an empty scope has no rows, not a total of nothing
        ORDER BY kind = 'total', {outer}{inner}""",
               [*params, *[p for d in dimensions for p in d.params]])


def users(log: Path, scope: Scope) -> Rows:
    """Per user (`user_id`; NULL for the calls that named none): requests, total cost of the priced calls, how many
    have no price, average and 95th-percentile latency, the share of calls that failed (`error_pct`: 400 and up, or
    no answer), the models used as one text (`gpt-4o-mini 67%, claude-haiku-4-5 33%`, most used first) and the
    last call's time. Most spent first, then most calls."""
    calls, params = scoped(scope)
    # One pass over the calls: each user's models as a histogram, written out as text (most used first) afterwards.
    return run(log, f"""
        WITH {calls},
        per_user AS (
            SELECT user_id AS "user",
                   count(*) AS requests,
                   sum(cost_usd) AS cost_usd,
                   count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced,
                   avg(latency_ms) AS avg_latency_ms,
                   quantile_cont(latency_ms, 0.95) AS p95_latency_ms,
                   round(100 * count(*) FILTER (WHERE status IS NULL OR status >= 400) / count(*), 2) AS error_pct,
                   histogram(coalesce(model, model_requested, '(no model)')) AS per_model,
                   max(created_at) AS last_seen
            FROM calls GROUP BY user_id)
        SELECT "user", requests, cost_usd, unpriced, avg_latency_ms, p95_latency_ms, error_pct,
               array_to_string(list_transform(
                   list_sort(list_transform(map_entries(per_model),
                                            lambda e: {{'fewer': -(e.value::BIGINT), 'model': e.key}})),
                   lambda e: e.model || ' ' || round(-100 * e.fewer / requests)::INT || '%'), ', ') AS models,
               last_seen
        FROM per_user
        ORDER BY cost_usd DESC NULLS LAST, requests DESC, "user" NULLS LAST""", params)


def trends(log: Path, scope: Scope, every: str, by: Dimension | None = None) -> Rows:
    """Requests and spend per period (`every`: hour, day, week or month; UTC), every period from the scope's start
    (else the first call) to its end (else now) present, those without calls with 0 requests and $0. With `by`, each
    period is split by its groups (a period without calls has one row, its group NULL), and every row carries its
    period's totals (`period_requests`, `period_cost_usd`). `cost_usd` sums the priced calls (NULL when none of a
    period's calls has a price); `unpriced` counts the others. No rows when the scope has no calls."""
    if every not in PERIODS:
        raise ScopeError(f"expected a period as one of {', '.join(PERIODS)}, got {every!r}")
    calls, params = scoped(scope)
    period = DIMENSIONS[every]  # the same buckets as `--by day`, so trends and costs agree
    cast = "" if every == "hour" else "::DATE"
    group = "" if by is None else f', {by.sql} AS "{by.name}"'
    group_name = "" if by is None else f', "{by.name}"'
    cost = "CASE WHEN c.requests IS NULL THEN 0 ELSE c.cost_usd END"  # no calls spent $0; unpriced ones: unknown
    period_totals = "" if by is None else f""",
               coalesce(sum(c.requests) OVER (PARTITION BY p.period), 0)::BIGINT AS period_requests,
               sum({cost}) OVER (PARTITION BY p.period) AS period_cost_usd"""
    return run(log, f"""
        WITH {calls},
        bounds AS (  -- `until` is exclusive: a range ending at midnight does not show the next day
            SELECT date_trunc('{every}', timezone('UTC', coalesce(?::TIMESTAMPTZ, min(created_at)))) AS first,
                   date_trunc('{every}', timezone('UTC', coalesce(?::TIMESTAMPTZ - INTERVAL 1 microsecond,
                                                                  greatest(now(), max(created_at))))) AS last
            FROM calls HAVING count(*) > 0),
        periods AS (
            SELECT period{cast} AS period
            FROM bounds, range(first, last + INTERVAL 1 {every}, INTERVAL 1 {every}) AS r(period)),
        bucketed AS (  -- the calls summed per period (and group) first: the gap-filling join is then small
            SELECT {period} AS period{group}, count(*) AS requests, sum(cost_usd) AS cost_usd,
                   count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced
            FROM calls GROUP BY ALL)
        SELECT p.period AS "{every}"{group_name},
               coalesce(c.requests, 0) AS requests,
               {cost} AS cost_usd,
               coalesce(c.unpriced, 0) AS unpriced{period_totals}
        FROM periods p LEFT JOIN bucketed c ON c.period = p.period
        ORDER BY p.period{", cost_usd DESC NULLS LAST, requests DESC" + group_name + " NULLS LAST" if by else ""}""",
               [*params, scope.since, scope.until, *(by.params if by else ())])


# ---------------------------------------------------------------------------------------------- logs, tail, export
# `llmtap logs`, `logs show`, `tail`, `export`: calls one by one, newest first or as they land, and the log as files.

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


def limits(log: Path, scope: Scope) -> Rows:
    """Throttling per provider, model and key (a gateway key's owner, else the key's fingerprint), most throttled
    first: the 429s providers sent (every try, retried ones included, as the `throttling` view counts them) and
    the latest retry-after asked for; the lowest remaining requests and tokens any answer reported, against their
    limits; and the latest answer's remaining budget (how close to the limit it is now) with when it was seen.
    `…_left_…_pct` is remaining / limit, 0–100."""
    calls, params = scoped(scope)
    header_names = [row[0] for row in run(log, f"""
        WITH {calls} SELECT DISTINCT unnest(map_keys(ratelimit)) FROM calls""", params).rows]
    budgets = {f"{kind}_{quantity}": _budget(header_names, quantity, kind)  # in the order the SQL names them
               for kind in ("requests", "tokens") for quantity in ("remaining", "limit")}
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
                   {", ".join(f"{sql} AS {name}" for name, (sql, _) in budgets.items())}
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
                 provider NULLS LAST, model NULLS LAST, key NULLS LAST""",
               [*params, *(name for sql, names in budgets.values() for name in names)])
