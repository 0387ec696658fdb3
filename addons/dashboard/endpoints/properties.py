"""The Properties page: cost by a property's values, and by a second property within each (`llmtap costs --by
property:NAME --then property:NAME2`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...analytics import queries
from ..api import ApiError, Request, endpoint


@endpoint("properties")
def properties(log: Path, request: Request) -> dict[str, Any]:
    """`{"names": Rows, "by", "then", "costs": Rows | null, "columns": {"by", "then"}}`: the property names the
    scope's calls carry (most used first, with their call counts: what the page's pickers offer) and the costs by
    `by` (default: the most used name), then by `then` within each value when given; `columns` names the costs'
    value columns. With no property in the scope, `by` and `costs` are null."""
    scope = request.scope()
    names = queries.property_names(log, scope)
    by = (request.arg("by") or (names.rows[0][0] if names.rows else "")).lower()
    then = (request.arg("then") or "").lower() or None
    if not by:
        if then:
            raise ApiError(400, "then: needs a property to group by first (by=NAME)")
        return {"names": names, "by": None, "then": None, "costs": None}
    if then == by:
        raise ApiError(400, f"then: name another property than by, both are {by!r}")
    costs = queries.costs(log, scope, queries.dimension(queries.PROPERTY + by),
                          queries.dimension(queries.PROPERTY + then) if then else None)
    # The value columns as costs names them (a property called like a report column keeps its `property:` prefix).
    return {"names": names, "by": by, "then": then, "costs": costs,
            "columns": {"by": costs.columns[0], "then": costs.columns[1] if then else None}}
