"""Answers llmtap gives itself, instead of a provider: always JSON, in the shape OpenAI-compatible clients read."""

from __future__ import annotations

import json
from typing import Any

from mitmproxy import http

from .callstate import get_state


def reply_with_error(
    flow: http.HTTPFlow, status: int, error_type: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> None:
    """Answer `flow` with `{"error": {"type", "message", ...}}`; the call is still recorded, with this error."""
    body = {"error": {"type": error_type, "message": message, **extra}}
    response = http.Response.make(status, json.dumps(body).encode(), {"content-type": "application/json"})
    for name, value in (headers or {}).items():
        response.headers[name] = value
    state = get_state(flow)
    if state is not None:
        state.outcome.error = f"{error_type}: {message}"
        response.headers["helicone-id"] = state.request_id
    flow.response = response
