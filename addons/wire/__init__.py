"""Provider wire formats. Each module knows one API's JSON and SSE shapes: the model and stream flag of a request,
the usage of a response, how a stream assembles into the equivalent JSON answer, and how to show a call to a person.
Nothing outside this package branches on a provider's format.
"""

from __future__ import annotations

from .anthropic_messages import AnthropicMessages
from .base import StreamAssembler, WireFormat
from .openai_chat import OpenAIChat

FORMATS: tuple[WireFormat, ...] = (OpenAIChat(), AnthropicMessages())


def format_for_path(path: str) -> WireFormat | None:
    """The wire format of a request to `path` (query string ignored), or None for an API llmtap does not read."""
    path = path.split("?", 1)[0].rstrip("/")
    return next((f for f in FORMATS if f.matches(path)), None)


def format_named(name: str) -> WireFormat:
    return next(f for f in FORMATS if f.name == name)


__all__ = ["FORMATS", "StreamAssembler", "WireFormat", "format_for_path", "format_named"]
