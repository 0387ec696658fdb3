"""What every page asks: whether new calls have landed since it last looked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...analytics import queries
from ..api import Request, endpoint


@endpoint("seq")
def seq(log: Path, request: Request) -> dict[str, Any]:
    """`{"seq": N}`: where the log ends now (the last row's sequence number, -1 when empty). A page polls it and
    refreshes when it moves."""
    return {"seq": queries.last_seq(log)}
