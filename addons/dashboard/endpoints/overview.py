"""The overview page: the scope's figures at a glance and over time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...analytics import queries
from ...analytics.scope import Scope
from ..api import Request, endpoint


def chart_step_s(scope: Scope, first_call: datetime | None) -> int:
    """The bucket width for the scope's charts: from its start, else its first call (else any: nothing to draw)."""
    now = datetime.now(UTC)
    return queries.step_for(scope.since or first_call or now, scope.until, now)


@endpoint("overview")
def overview(log: Path, request: Request) -> dict[str, Any]:
    """`{"step_s", "summary", "series", "spend_by_model"}`: the scope's totals, its figures per bucket (`step_s`
    wide) and its spend per bucket by model (the top 8 by cost, the rest as `other`)."""
    scope = request.scope()
    summary = queries.summary(log, scope)
    step_s = chart_step_s(scope, summary.dicts()[0]["first_call"])
    return {"step_s": step_s, "summary": summary, "series": queries.series(log, scope, step_s),
            "spend_by_model": queries.spend_by_model(log, scope, step_s)}
