"""The rate limits and cache page: throttling and providers' headroom, and what the cache answered and saved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...analytics import queries
from ..api import Request, endpoint
from .overview import chart_step_s

CACHE_COLUMNS = ("bucket", "cache_hits", "cache_misses", "cache_hit_pct", "saved_usd")


@endpoint("limits")
def limits(log: Path, request: Request) -> dict[str, Any]:
    """`{"step_s", "summary", "limits", "headroom", "cache"}`: the cache's totals, throttling per provider, model and
    key, and per bucket (`step_s` wide) the 429s and the lowest budget left, and the cache's hits and savings."""
    scope = request.scope()
    summary = queries.summary(log, scope).only(("requests", "cache_hits", "cache_misses", "cache_hit_pct",
                                                "saved_usd", "first_call"))
    step_s = chart_step_s(scope, summary.dicts()[0]["first_call"])
    header_names = queries.ratelimit_headers(log, scope)  # looked up once for both
    return {"step_s": step_s, "summary": summary, "limits": queries.limits(log, scope, header_names),
            "headroom": queries.headroom_series(log, scope, step_s, header_names),
            "cache": queries.series(log, scope, step_s).only(CACHE_COLUMNS)}
