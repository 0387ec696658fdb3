"""Time buckets for charts: how wide a bucket is for a time range, and the gap-filled buckets of a scope.

A bucket is `step_s` seconds wide and aligned to the UTC epoch (its index is `epoch_us // step_us`), so the buckets of
two queries over the same scope and step meet exactly. Every bucket from the scope's start (else its first call) to
its end (else now) is present, those without calls too, as `trends` fills its periods (spend.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .scope import Scope, ScopeError

# (longest range, bucket width): at most ~180 points a chart, and more than a few.
STEPS_S = ((timedelta(hours=1), 60), (timedelta(days=1), 900), (timedelta(days=7), 3600),
           (timedelta(days=30), 21600))
LONGEST_STEP_S = 86400
MAX_BUCKETS = 5000  # a range and step a chart cannot show: refused rather than read


def step_for(since: datetime, until: datetime | None, now: datetime) -> int:
    """The bucket width in seconds for a chart of the range `since` to `until` (else `now`): 1 h → 60 s, 24 h →
    15 min, 7 d → 1 h, 30 d → 6 h, longer → 1 day."""
    span = (until or now) - since
    # 5% slack: `since=7d` is a little over 7 days by the time the step is chosen, and still a 7-day chart
    return next((step_s for longest, step_s in STEPS_S if span <= longest * 1.05), LONGEST_STEP_S)


def bucket_of(column: str, step_s: int) -> str:
    """The SQL for the index of the bucket a time column falls in."""
    return f"(epoch_us({column}) // {_step_us(step_s)})"


def bucket_time(index: str, step_s: int) -> str:
    """The SQL for a bucket's start (TIMESTAMPTZ) from its index."""
    return f"to_timestamp({index} * {int(step_s)})"


def buckets(scope: Scope, step_s: int) -> tuple[str, list[Any]]:
    """`buckets(b)`: a CTE of every bucket index of the scope (after the `calls` CTE), gap-filled; no rows when the
    scope has no calls. Its parameters come after `calls`'s."""
    step_us = _step_us(step_s)
    if scope.since is not None:
        end = scope.until or datetime.now(scope.since.tzinfo)
        if (end - scope.since) / timedelta(seconds=step_s) > MAX_BUCKETS:
            raise ScopeError(f"a {step_s} s step over this range makes more than {MAX_BUCKETS} buckets")
    # `until` is exclusive: a range ending on a bucket's edge does not show the next bucket
    return f"""bounds AS (
            SELECT epoch_us(coalesce(?::TIMESTAMPTZ, min(created_at))) // {step_us} AS first,
                   epoch_us(coalesce(?::TIMESTAMPTZ - INTERVAL 1 microsecond, greatest(now(), max(created_at))))
                       // {step_us} AS last
            FROM calls HAVING count(*) > 0),
        buckets AS (SELECT b FROM bounds, range(first, last + 1) AS r(b))""", [scope.since, scope.until]


def _step_us(step_s: int) -> int:
    if not isinstance(step_s, int) or step_s <= 0:
        raise ScopeError(f"expected a bucket width as a whole number of seconds above 0, got {step_s!r}")
    return step_s * 1_000_000
