"""Provider wire formats. Each module knows one API (see base.py for what a format owns): its endpoints and headers,
the model and stream flag of a request, the usage of a response, how a stream assembles into the equivalent JSON
answer, and how to show a call to a person. Nothing outside this package branches on a provider's format: adding one
is a module here and a line in `FORMATS`.
"""

from __future__ import annotations

from typing import Any

from mitmproxy import http

from ..bodies import parse_json_or_text
from .anthropic_messages import AnthropicMessages
from .base import StreamAssembler, WireFormat
from .gemini_generate import GeminiGenerate
from .openai_chat import OpenAIChat
from .openai_completions import OpenAICompletions
from .openai_embeddings import OpenAIEmbeddings
from .openai_responses import OpenAIResponses

FORMATS: tuple[WireFormat, ...] = (
    OpenAIChat(), AnthropicMessages(), OpenAIResponses(), OpenAIEmbeddings(), OpenAICompletions(), GeminiGenerate(),
)


def endpoint_path(path: str) -> str:
    """A request path as the formats match it: no query string, no trailing slash."""
    return path.split("?", 1)[0].rstrip("/")


def format_for_path(path: str) -> WireFormat | None:
    """The wire format of a request to `path` (query string ignored), or None for an API llmtap does not read."""
    path = endpoint_path(path)
    return next((f for f in FORMATS if f.matches(path)), None)


def format_named(name: str) -> WireFormat:
    return next(f for f in FORMATS if f.name == name)


def format_for_gateway_path(path: str) -> WireFormat | None:
    """The wire format of the gateway endpoint `path` (query string ignored), or None when it is not one."""
    path = endpoint_path(path)
    return next((f for f in FORMATS if f.serves_gateway_path(path)), None)


def gateway_endpoints() -> str:
    """The gateway's endpoints, for a person: "POST /v1/chat/completions (OpenAI-compatible, any provider), ..."."""
    named = [f"POST {f.gateway_paths[0]} ({f.description})" for f in FORMATS]
    return ", ".join(named[:-1]) + " or " + named[-1]


RATELIMIT_HEADER_PREFIXES = tuple(dict.fromkeys(p for f in FORMATS for p in f.ratelimit_header_prefixes))
RATELIMIT_HEADERS = frozenset(h for f in FORMATS for h in f.ratelimit_headers)
PROVIDER_HEADER_PREFIXES = tuple(dict.fromkeys(p for f in FORMATS for p in f.provider_header_prefixes))


def is_ratelimit_header(name: str) -> bool:
    """Whether an answer's header (lower-cased name) reports a provider's rate limits. Any format's count: a
    provider's compatible endpoint answers with that provider's own headers."""
    return name.startswith(RATELIMIT_HEADER_PREFIXES) or name in RATELIMIT_HEADERS


def belongs_to_one_provider(name: str) -> bool:
    """Whether a request header (lower-cased name) means something to one provider only, so it does not go along
    when a call falls back to another provider."""
    return name.startswith(PROVIDER_HEADER_PREFIXES)


def read_body(message: http.Message) -> Any:
    """A request's or response's body as JSON when it is JSON, else its text (None when empty)."""
    return parse_json_or_text(message.get_content(strict=False) or b"")


__all__ = [
    "FORMATS", "StreamAssembler", "WireFormat", "belongs_to_one_provider", "endpoint_path", "format_for_gateway_path",
    "format_for_path", "format_named", "gateway_endpoints", "is_ratelimit_header", "read_body",
]
