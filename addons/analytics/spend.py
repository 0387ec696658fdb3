"""What was spent, by whom, and how it moves over time: `llmtap costs`, `users`, `trends`, and the totals and unpriced
calls every view shows beside them."""

from __future__ import annotations

from pathlib import Path

from .dimensions import DIMENSIONS, PERIODS, Dimension
from .rows import Rows, run, scoped
from .scope import Scope, ScopeError


def totals(log: Path, scope: Scope) -> Rows:
    """One row for the whole scope: requests, errors, cache hits and misses, tokens, total cost (priced calls only),
    how many calls have no price, what the cache saved, and the time of the first and last call; then the shares
    and typical figures beside them: `error_pct`, `avg_cost_usd` (per priced call), `cache_hit_pct` (hits of hits
    and misses), median and 95th-percentile latency, and time to first token of the streamed calls that have one."""
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
               min(created_at) AS first_call, max(created_at) AS last_call,
               round(100 * count(*) FILTER (WHERE status IS NULL OR status >= 400) / nullif(count(*), 0), 2)
                   AS error_pct,
               (sum(cost_usd) / count(cost_usd))::DECIMAL(18, 10) AS avg_cost_usd,
               round(100 * cache_hits / nullif(cache_hits + cache_misses, 0), 2) AS cache_hit_pct,
               quantile_cont(latency_ms, 0.5) AS p50_latency_ms,
               quantile_cont(latency_ms, 0.95) AS p95_latency_ms,
               quantile_cont(ttft_ms, 0.5) FILTER (WHERE stream) AS p50_ttft_ms,
               quantile_cont(ttft_ms, 0.95) FILTER (WHERE stream) AS p95_ttft_ms
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


# What a call's tokens would be worth on another model: `none` for cache hits and calls no provider billed (nothing on
# any model), `unknown` for calls that recorded no usage, else `tokens`.
TOKEN_WORTH = """CASE WHEN price_source IN ('cache-hit', 'not-billed') THEN 'none'
                      WHEN input_tokens IS NULL AND output_tokens IS NULL THEN 'unknown' ELSE 'tokens' END"""
TOKEN_COLUMNS = ("input_tokens", "cached_input_tokens", "cache_write_input_tokens", "output_tokens")


def token_mix(log: Path, scope: Scope, by: Dimension, then: Dimension | None = None,
              tier_starts: tuple[int, ...] = ()) -> Rows:
    """The token counts of each group of `by` (and `then`, as `costs` groups them), summed, for pricing them as
    another model's (repricing.py). Per group, `usage` (`tokens`; `none`: a cache hit or a call no provider billed;
    `unknown`: no usage recorded), `priced` (whether the calls have a real price) and `tier` (how many of
    `tier_starts`, input-token counts, a call's input is above: a tiered price's rates change there): the token sums
    (`input_tokens` every input token, `cached_input_tokens`, `cache_write_input_tokens`, `output_tokens` reasoning
    included; NULL unless `usage` is `tokens`), `calls`, and their real cost (`cost_usd`)."""
    calls, params = scoped(scope)
    dimensions = [by] if then is None else [by, then]
    names = ", ".join(f'"{d.name}"' for d in dimensions)
    tier = " + ".join(f"(input_tokens > {int(start)})::INTEGER" for start in tier_starts) or "0"
    counts = ", ".join(f"CASE WHEN usage = 'tokens' THEN coalesce({name}, 0) END AS {name}" for name in TOKEN_COLUMNS)
    return run(log, f"""
        WITH {calls},
        worth AS (
            SELECT {", ".join(f'{d.sql} AS "{d.name}"' for d in dimensions)}, {TOKEN_WORTH} AS usage,
                   cost_usd IS NOT NULL AS priced, coalesce({tier}, 0) AS tier, {", ".join(TOKEN_COLUMNS)}, cost_usd
            FROM calls),
        counted AS (SELECT {names}, usage, priced, tier, {counts}, cost_usd FROM worth)
        SELECT {names}, usage, priced, tier, {", ".join(f"sum({name})::BIGINT AS {name}" for name in TOKEN_COLUMNS)},
               count(*) AS calls, sum(cost_usd) AS cost_usd
        FROM counted
        GROUP BY ALL""", [*params, *[p for d in dimensions for p in d.params]])


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
