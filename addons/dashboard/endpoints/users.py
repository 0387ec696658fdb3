"""The Users page: who spent what (`llmtap users`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...analytics import queries
from ..api import Request, endpoint


@endpoint("users")
def users(log: Path, request: Request) -> dict[str, Any]:
    """`{"users": Rows}`: one row per user in the URL's scope (queries.users), the calls without a user as a row
    whose user is null."""
    return {"users": queries.users(log, request.scope())}
