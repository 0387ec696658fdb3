"""Answers llmtap gives itself, instead of a provider: always JSON, errors in the error shape the client's SDK parses.

The shape is the wire format's knowledge (`WireFormat.error_body`): Anthropic's `{"type": "error", "error": {...}}` on
`/v1/messages`, OpenAI's `{"error": {"type", "message", ...}}` on OpenAI-format endpoints and wherever the API is not
known. llmtap's own error type (`llmtap_unknown_endpoint`, ...) is always in the body, and the row's `error` column
reads `<llmtap type>: <message>`.
"""

from __future__ import annotations

import json
from typing import Any

from mitmproxy import http

from .callstate import get_state
from .wire import WireFormat, format_for_path
from .wire.base import openai_error_body

# The official SDKs (Stainless-generated: openai, anthropic) retry 5xx answers unless this header says not to. An
# answer that only a change of llmtap's config can fix is the same on every retry, and each retry would be one more row.
NOT_RETRYABLE = {"x-should-retry": "false"}


def reply_with_error(
    flow: http.HTTPFlow, status: int, error_type: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> None:
    """Answer `flow` with an error in its API's shape (see `error_json`); the call is still recorded, with this
    error."""
    state = get_state(flow)
    if state is not None:
        state.outcome.error = f"{error_type}: {message}"
    _answer(flow, status, error_json(client_wire(flow), status, error_type, message, **extra), headers)


def reply_with_json(flow: http.HTTPFlow, body: Any) -> None:
    """Answer `flow` with llmtap's own JSON `body` (200: a model listing, no error); the call is still recorded, as
    one no provider saw and none bills."""
    state = get_state(flow)
    if state is not None:
        state.outcome.served_by_llmtap = True
    _answer(flow, 200, json.dumps(body).encode(), None)


def _answer(flow: http.HTTPFlow, status: int, body: bytes, headers: dict[str, str] | None) -> None:
    response = http.Response.make(status, body, {"content-type": "application/json"})
    for name, value in (headers or {}).items():
        response.headers[name] = value
    state = get_state(flow)
    if state is not None:
        response.headers["helicone-id"] = state.request_id
    flow.response = response


def error_json(wire: WireFormat | None, status: int, error_type: str, message: str, **extra: Any) -> bytes:
    """The body of an error answer in `wire`'s shape (OpenAI's when `wire` is None)."""
    body = wire.error_body(status, error_type, message, **extra) if wire else openai_error_body(
        error_type, message, **extra)
    return json.dumps(body).encode()


def client_wire(flow: http.HTTPFlow) -> WireFormat | None:
    """The API the client speaks: as routed, else as its path says (before routing, or a refused call)."""
    state = get_state(flow)
    if state is not None and state.route.wire is not None:
        return state.route.wire
    path = state.request.client_path if state is not None and state.request.client_path else flow.request.path
    return format_for_path(path)
