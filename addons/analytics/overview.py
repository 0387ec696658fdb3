"""The scope at a glance and over time: the dashboard's overview cards and charts.

Buckets are `step_s` wide, aligned to the UTC epoch and gap-filled (buckets.py), so `series` and `spend_by_model`
over one scope and step have the same buckets. Money follows the query layer's rule: `cost_usd` sums the priced calls
and is NULL when none in a bucket has a price (a bucket without calls spent $0); `unpriced` counts the others.
"""

from __future__ import annotations

from pathlib import Path

from .buckets import bucket_of, bucket_time, buckets
from .dimensions import DIMENSIONS
from .limits import THROTTLED
from .rows import Rows, run, scoped
from .scope import Scope
from .spend import totals

SUMMARY_COLUMNS = ("requests", "errors", "error_pct", "cost_usd", "avg_cost_usd", "unpriced", "p50_latency_ms",
                   "p95_latency_ms", "p50_ttft_ms", "p95_ttft_ms", "input_tokens", "output_tokens", "cache_hits",
                   "cache_misses", "cache_hit_pct", "saved_usd", "first_call")
OTHER_MODELS = "other"


def summary(log: Path, scope: Scope) -> Rows:
    """One row: requests, errors and their share, total and average cost of the priced calls (NULL when none is
    priced) and how many are not, median and p95 latency and time to first token (streamed calls), tokens in and
    out, cache hits, misses, hit rate and dollars saved, and the first call's time (spend.totals' figures)."""
    return totals(log, scope).only(SUMMARY_COLUMNS)


def series(log: Path, scope: Scope, step_s: int) -> Rows:
    """Per bucket, every bucket of the scope: requests, errors (400 and up, or no answer), `rate_limited` (the 429s
    providers sent, retried tries included, as `limits` counts them), cost of the priced calls and how many are not,
    median and p95 latency, cache hits, misses, hit rate (NULL without either) and dollars saved. No rows when the
    scope has no calls."""
    calls, params = scoped(scope)
    filled, fill_params = buckets(scope, step_s)
    return run(log, f"""
        WITH {calls},
        {THROTTLED},
        {filled},
        per_bucket AS (  -- the calls summed per bucket first: the gap-filling join is then small
            SELECT {bucket_of("created_at", step_s)} AS b, count(*) AS requests,
                   count(*) FILTER (WHERE status IS NULL OR status >= 400) AS errors,
                   sum(cost_usd) AS cost_usd, count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced,
                   quantile_cont(latency_ms, 0.5) AS p50_latency_ms,
                   quantile_cont(latency_ms, 0.95) AS p95_latency_ms,
                   count(*) FILTER (WHERE cache_status = 'HIT') AS cache_hits,
                   count(*) FILTER (WHERE cache_status = 'MISS') AS cache_misses,
                   coalesce(sum(cost_saved_usd), 0) AS saved_usd
            FROM calls GROUP BY 1),
        throttled_per_bucket AS (
            SELECT {bucket_of("created_at", step_s)} AS b, count(*) AS rate_limited FROM throttled GROUP BY 1)
        SELECT {bucket_time("k.b", step_s)} AS bucket,
               coalesce(c.requests, 0) AS requests, coalesce(c.errors, 0) AS errors,
               coalesce(t.rate_limited, 0) AS rate_limited,
               CASE WHEN c.requests IS NULL THEN 0 ELSE c.cost_usd END AS cost_usd,  -- no calls spent $0
               coalesce(c.unpriced, 0) AS unpriced, c.p50_latency_ms, c.p95_latency_ms,
               coalesce(c.cache_hits, 0) AS cache_hits, coalesce(c.cache_misses, 0) AS cache_misses,
               round(100 * c.cache_hits / nullif(c.cache_hits + c.cache_misses, 0), 2) AS cache_hit_pct,
               coalesce(c.saved_usd, 0) AS saved_usd
        FROM buckets k LEFT JOIN per_bucket c ON c.b = k.b LEFT JOIN throttled_per_bucket t ON t.b = k.b
        ORDER BY k.b""", [*params, *fill_params])


def spend_by_model(log: Path, scope: Scope, step_s: int, top: int = 8) -> Rows:
    """Per bucket and model, the buckets with calls only: requests, cost of the priced calls (NULL when none is
    priced) and how many are not. The `top` models by the scope's cost (then by calls) by name, `rank` 1 to `top`;
    the rest as one `other` row a bucket, `rank` top + 1. In time order, then by rank."""
    calls, params = scoped(scope)
    model = DIMENSIONS["model"]  # the model a report names, as `costs --by model` does
    return run(log, f"""
        WITH {calls},
        per_model AS (
            SELECT {bucket_of("created_at", step_s)} AS b, {model} AS model, count(*) AS requests,
                   sum(cost_usd) AS cost_usd, count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced
            FROM calls GROUP BY ALL),
        ranked AS (
            SELECT model, row_number() OVER (ORDER BY sum(cost_usd) DESC NULLS LAST, sum(requests) DESC,
                                                      model NULLS LAST) AS rank
            FROM per_model GROUP BY model)
        SELECT {bucket_time("p.b", step_s)} AS bucket,
               CASE WHEN r.rank <= ? THEN p.model ELSE ? END AS model, least(r.rank, ? + 1) AS rank,
               sum(p.requests)::BIGINT AS requests, sum(p.cost_usd) AS cost_usd, sum(p.unpriced)::BIGINT AS unpriced
        FROM per_model p JOIN ranked r ON r.model IS NOT DISTINCT FROM p.model
        GROUP BY p.b, 2, 3
        ORDER BY p.b, rank""", [*params, top, OTHER_MODELS, top])
