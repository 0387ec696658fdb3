"""Provider wire formats. Each module knows one API's JSON and SSE shapes: the model and stream flag of a request,
the usage of a response, how a stream assembles into the equivalent JSON answer, and how to show a call to a person.
Nothing outside this package branches on a provider's format.
"""

from __future__ import annotations

from typing import Any

from mitmproxy import http

from ..bodies import parse_json_or_text
from .anthropic_messages import AnthropicMessages
from .base import StreamAssembler, WireFormat
from .openai_chat import OpenAIChat
from .openai_responses import OpenAIResponses

FORMATS: tuple[WireFormat, ...] = (OpenAIChat(), AnthropicMessages(), OpenAIResponses())


def format_for_path(path: str) -> WireFormat | None:
    """The wire format of a request to `path` (query string ignored), or None for an API llmtap does not read."""
    path = path.split("?", 1)[0].rstrip("/")
    return next((f for f in FORMATS if f.matches(path)), None)


def format_named(name: str) -> WireFormat:
    return next(f for f in FORMATS if f.name == name)


def read_body(message: http.Message) -> Any:
    """A request's or response's body as JSON when it is JSON, else its text (None when empty)."""
    return parse_json_or_text(message.get_content(strict=False) or b"")


__all__ = ["FORMATS", "StreamAssembler", "WireFormat", "format_for_path", "format_named", "read_body"]
