"""One logged call as a person reads it: its conversation and its answer as (role, text) turns, in the wire format's
own transcript (tool calls and images as the format shows them). `llmtap logs show` and the dashboard's call view
both read a call through `call_turns`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import format_for_path


@dataclass(frozen=True)
class CallTurns:
    """What a call said: `conversation` (the request's turns) and `answer` (the response's). For an API llmtap does
    not read (`known_format` False), each is one ("body", raw JSON text) turn."""

    conversation: list[tuple[str, str]]
    answer: list[tuple[str, str]]
    known_format: bool


def call_turns(path: str | None, request_body: Any, response_body: Any) -> CallTurns:
    """The turns of a call to `path` whose logged bodies are `request_body` and `response_body` (JSON columns, as
    DuckDB hands them over: text)."""
    request, response = json_value(request_body), json_value(response_body)
    wire = format_for_path(path or "")
    if wire is None:
        return CallTurns([("body", raw_text(request))], [("body", raw_text(response))], False)
    conversation = wire.transcript(request, None) or [("", "(no messages logged)")]
    answer = wire.transcript(None, response)
    if not answer:
        answer = [("", "(no answer logged)" if response is None else raw_text(response))]
    return CallTurns(conversation, answer, True)


def json_value(value: Any) -> Any:
    """A JSON column's value as Python data (DuckDB hands JSON columns over as text); text that is not JSON as it
    is."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def raw_text(body: Any) -> str:
    """A body as a person reads it raw: pretty-printed JSON, text as it is, "(not logged)" for none."""
    if body is None:
        return "(not logged)"
    return body if isinstance(body, str) else json.dumps(body, indent=2, ensure_ascii=False)
