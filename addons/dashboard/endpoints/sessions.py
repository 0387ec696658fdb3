"""The Sessions page: the sessions in the scope (`llmtap sessions`) and one session as a trace (`llmtap trace`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...analytics import queries
from ..api import ApiError, Request, endpoint

DEFAULT_SESSIONS = 100
MAX_SESSIONS = 5000


@endpoint("sessions")
def sessions(log: Path, request: Request) -> dict[str, Any]:
    """`/api/sessions?<scope>&limit=N`: `{"sessions": Rows, "limit": N}`, the newest N sessions (default 100).
    `/api/sessions/<id or unique prefix>`: `{"session": its totals row, "trace": Rows}`, its calls in arrival order
    (queries.trace); 404 when no session matches, 409 when a prefix matches several."""
    if request.item is None:
        limit = request.int_arg("limit", DEFAULT_SESSIONS, 1, MAX_SESSIONS)
        return {"sessions": queries.sessions(log, request.scope(), limit), "limit": limit}
    matching = [row[0] for row in queries.sessions_matching(log, request.item).rows]
    if not matching:
        raise ApiError(404, f"no session {request.item!r} in the log")
    if len(matching) > 1:
        raise ApiError(409, f"{request.item!r} starts more than one session id ({', '.join(matching)}, ...): "
                            "give more of it")
    session_id = matching[0]
    return {"session": queries.session_totals(log, session_id), "trace": queries.trace(log, session_id)}
