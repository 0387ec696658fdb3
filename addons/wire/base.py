"""What every wire format provides; see openai_chat.py and anthropic_messages.py.

A wire format is the only home of what llmtap knows about one provider API: its endpoints, where a request names its
model and asks to stream (body or URL), the headers that carry a key, the rate-limit headers its answers carry, the
request headers that change an answer (cache key) or mean something to its provider only, and how its JSON and SSE
answers read. A provider's config maps wire formats to its paths (providers.yaml).
"""

from __future__ import annotations

import functools
import json
import re
from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import unquote

from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot

from .sse import SseEvent


class StreamAssembler(ABC):
    """Builds, from a response's SSE events, the JSON answer the same call would have returned unstreamed."""

    first_token_seen = False  # becomes True at the first event that carries generated content
    max_kept_bytes = 1024 * 1024  # generated text and arguments kept for the result (StreamTap sets the config's)
    cut = False  # becomes True when generated content past max_kept_bytes (or an unread event) was left out
    _kept_bytes = 0
    _ended_whole = False

    @property
    def complete(self) -> bool:
        """True when the stream ended as the provider ends a whole answer, and the result holds all of it."""
        return self._ended_whole and not self.cut

    @complete.setter
    def complete(self, ended_whole: bool) -> None:
        self._ended_whole = ended_whole

    @abstractmethod
    def add(self, event: SseEvent) -> None: ...

    @abstractmethod
    def result(self) -> dict[str, Any] | None: ...

    def keep(self, text: Any, *, cut_when_full: bool = True) -> str:
        """The part of a piece of generated `text` that still fits in max_kept_bytes ("" once full): a huge answer
        costs llmtap no more than its cap, while counts (usage) are read from the events as before. Leaving text
        out makes the result `cut`, unless the caller will know whether the text was needed (`cut_when_full`)."""
        if not isinstance(text, str) or not text:
            return ""
        room = self.max_kept_bytes - self._kept_bytes
        size = len(text) if text.isascii() else len(text.encode())
        if size <= room:
            self._kept_bytes += size
            return text
        self.cut = self.cut or cut_when_full
        self._kept_bytes = self.max_kept_bytes
        return text.encode()[:max(room, 0)].decode("utf-8", errors="ignore")

    def is_usage_only(self, event: SseEvent) -> bool:
        """True for an event that only reports usage (one llmtap asked for and the client did not)."""
        return False


class WireFormat(ABC):
    name: str
    description: str  # what it is, for a person choosing an endpoint
    gateway_paths: tuple[str, ...]  # the gateway's endpoints for this API (with /v1 and without, as Helicone's are)
    usage_provider_id: str  # whose extractor in genai-prices reads this format's usage
    usage_flavor: str
    # Whether other providers' entries in genai-prices name this API's usage by the same flavor, so that the
    # answering provider's own extractor reads it when it has one (xAI counts reasoning tokens apart from
    # completion tokens, and bills both as output).
    usage_flavor_shared = False
    ratelimit_header_prefixes: tuple[str, ...] = ()  # the rate-limit headers its answers carry, logged with each call
    ratelimit_headers: tuple[str, ...] = ("retry-after",)
    provider_header_prefixes: tuple[str, ...] = ()  # request headers that mean something to its provider only
    cache_key_headers: tuple[str, ...] = ()  # request headers that change the answer, so belong to the cache key
    # The keys a JSON answer names its usage and its model under: what llmtap reads from the ends of an answer too
    # large to keep (streaming.cut_answer).
    usage_key = "usage"
    model_key = "model"

    @abstractmethod
    def matches(self, path: str) -> bool:
        """Whether a request to `path` (query string and trailing slash removed) speaks this API."""

    def serves_gateway_path(self, path: str) -> bool:
        """Whether `path` (query string and trailing slash removed) is one of the gateway's endpoints for this API
        (here: one of `gateway_paths`; an API with the model in its path matches a pattern)."""
        return path in self.gateway_paths

    @abstractmethod
    def new_assembler(self) -> StreamAssembler: ...

    def auth_headers(self, key: str) -> dict[str, str]:
        """Headers that carry a provider key for this API (gateway mode injects them): a bearer token, unless the
        format says otherwise."""
        return {"authorization": f"Bearer {key}"}

    @abstractmethod
    def transcript(self, request: Any, response: Any) -> list[tuple[str, str]]:
        """(role, text) turns of a call, for people reading it in mitmweb."""

    def model(self, path: str, body: Any) -> str | None:
        """The model a request to `path` with `body` asks for (here: the body's `model`)."""
        model = body.get("model") if isinstance(body, dict) else None
        return model if isinstance(model, str) else None

    def is_stream(self, path: str, body: Any) -> bool:
        """Whether the request asks for a streamed answer (here: the body's `stream: true`)."""
        return isinstance(body, dict) and body.get("stream") is True

    def with_model(self, path: str, body: dict[str, Any], model: str) -> tuple[str, dict[str, Any]]:
        """The path and body of the same request for another model; `body` itself is left as it is."""
        return path, {**body, "model": model}

    def upstream_path(self, provider_path: str, client_path: str) -> str:
        """Where a call the client sent to `client_path` goes at a provider whose endpoint for this API is
        `provider_path` (here: that endpoint, whatever the client's path)."""
        return provider_path

    def cache_path(self, path: str) -> str:
        """The request path (query string included) as the cache key counts it: here as it is; a format whose path
        says whether to stream leaves that out, as the cache leaves out a body's `stream`."""
        return path

    def answer_model(self, answer: Any) -> str | None:
        """The model an answer says answered it (its `model_key`)."""
        return model_named_in(answer, self.model_key)

    def error_body(self, status: int, error_type: str, message: str, **extra: Any) -> dict[str, Any]:
        """The JSON of an answer llmtap gives itself (`status`, llmtap's own `error_type`), in the shape this API's
        clients parse. Here OpenAI's, which OpenAI-compatible SDKs read: `{"error": {"type", "message", ...}}`."""
        return openai_error_body(error_type, message, **extra)

    @abstractmethod
    def replay_stream(self, answer: dict[str, Any], request: dict[str, Any]) -> bytes:
        """The SSE stream, in this API's event format, that delivers the JSON `answer` to a client that sent
        `request` (which says, e.g., whether it asked for usage)."""

    def replay(self, answer: dict[str, Any], request: dict[str, Any], path: str) -> tuple[bytes, str]:
        """A cached `answer` as the stream a client that sent `request` to `path` (query string included) reads, and
        its content type: here the SSE stream of replay_stream."""
        return self.replay_stream(answer, request), "text/event-stream; charset=utf-8"

    def cacheable_answer(self, answer: Any) -> dict[str, Any] | None:
        """A provider's whole answer as the cache keeps it, one JSON object (None: nothing to keep)."""
        return answer if isinstance(answer, dict) else None

    def ask_for_stream_usage(self, body: dict[str, Any]) -> bool:
        """Make a streamed request report usage; True when the body was changed to do so."""
        return False

    def extract_usage(self, response: Any, prices_provider: str | None = None) -> Usage | None:
        """Token usage of a JSON answer, or None when it reports none (or in a shape genai-prices does not read).
        `prices_provider` (a genai-prices id) answered it: its own extractor reads it, if it has one for this API."""
        provider_id = self.usage_provider_id
        if self.usage_flavor_shared and prices_provider and _has_extractor(prices_provider, self.usage_flavor):
            provider_id = prices_provider
        root = _usage_root(provider_id, self.usage_flavor)
        if root is None:  # a path through lists: genai-prices reads the whole answer
            return _read_usage(provider_id, self.usage_flavor, response)
        found = response
        for key in root:
            found = found.get(key) if isinstance(found, dict) else None
        if not isinstance(found, dict):
            return None
        try:
            usage_text = json.dumps(found, sort_keys=True)
        except (TypeError, ValueError, RecursionError):
            return None
        return _usage(provider_id, self.usage_flavor, usage_text)


@functools.cache
def _has_extractor(provider_id: str, flavor: str) -> bool:
    """Whether genai-prices knows `provider_id` and reads its answers of `flavor` itself."""
    try:
        provider = get_snapshot().find_provider(None, provider_id, None)
    except LookupError:  # a provider of the user's own (a local server) that genai-prices does not know
        return False
    return any(e.api_flavor == flavor for e in provider.extractors or ())


class OpenAIFormat(WireFormat):
    """One of OpenAI's APIs (spoken by OpenAI-compatible providers too): OpenAI's rate-limit headers, its usage read
    by genai-prices' OpenAI extractors, and Azure's deployment URLs of it (`/openai/deployments/{d}/embeddings`)."""

    ratelimit_header_prefixes: tuple[str, ...] = ("x-ratelimit-",)
    ratelimit_headers: tuple[str, ...] = ("retry-after", "retry-after-ms")
    provider_header_prefixes: tuple[str, ...] = ("openai-",)
    usage_provider_id = "openai"

    def serves_gateway_path(self, path: str) -> bool:
        # Azure's deployment URLs too, as openai.AzureOpenAI(azure_endpoint=<the gateway>) sends them.
        return super().serves_gateway_path(path) or self.azure_deployment(path) is not None

    def model(self, path: str, body: Any) -> str | None:
        """At an Azure deployment URL, the deployment: Azure answers by it, whatever the body's `model` says (the
        app's, often the model the deployment runs), so a provider's `models` patterns route the deployment."""
        deployment = self.azure_deployment(path)
        return deployment if deployment is not None else super().model(path, body)

    def azure_deployment(self, path: str) -> str | None:
        """The deployment an Azure deployment URL of this API names, or None for any other path."""
        found = AZURE_DEPLOYMENT_PATH.fullmatch(path.partition("?")[0])
        return unquote(found["deployment"]) if found and found["endpoint"] in self.gateway_paths else None


# Azure's form of OpenAI's endpoints: the deployment, then the endpoint as OpenAI's has it without /v1.
AZURE_DEPLOYMENT_PATH = re.compile(r"/openai/deployments/(?P<deployment>[^/]+)(?P<endpoint>/.+)")


@functools.cache
def _usage_root(provider_id: str, flavor: str) -> tuple[str, ...] | None:
    """The keys leading to the object genai-prices reads usage from for this API (`usage` for OpenAI's and
    Anthropic's), or None when the way goes through lists."""
    provider = get_snapshot().find_provider(None, provider_id, None)
    extractor = next(e for e in provider.extractors or () if e.api_flavor == flavor)
    root = [extractor.root] if isinstance(extractor.root, str) else list(extractor.root)
    return tuple(key for key in root if isinstance(key, str)) if all(isinstance(k, str) for k in root) else None


@functools.lru_cache(maxsize=4096)
def _usage(provider_id: str, flavor: str, usage_text: str) -> Usage | None:
    # genai-prices reads usage from one object of the answer (its extractor's root) and takes ~0.1 ms to do it;
    # answers repeat the same usage often, so each distinct one is read once. The Usage is shared between calls:
    # nothing changes it after it is made.
    answer: Any = json.loads(usage_text)
    for key in reversed(_usage_root(provider_id, flavor) or ()):
        answer = {key: answer}
    return _read_usage(provider_id, flavor, answer)


def _read_usage(provider_id: str, flavor: str, answer: Any) -> Usage | None:
    provider = get_snapshot().find_provider(None, provider_id, None)
    try:
        _, usage = provider.extract_usage(answer, api_flavor=flavor)
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError):
        return None  # usage in a shape genai-prices does not read: the row says so, the call goes on
    return usage


def model_named_in(answer: Any, key: str = "model") -> str | None:
    """The model a JSON answer names under `key`, if any (`model`: how OpenAI's and Anthropic's answers name it)."""
    model = answer.get(key) if isinstance(answer, dict) else None
    return model if isinstance(model, str) else None


def openai_error_body(error_type: str, message: str, **extra: Any) -> dict[str, Any]:
    """OpenAI's error shape, `{"error": {"type", "message", ...}}`: what llmtap answers when it cannot tell which API
    a client speaks."""
    return {"error": {"type": error_type, "message": message, **extra}}


def index_of(value: Any) -> int:
    """A stream event's `index`-like field as an int (0 when a provider sent something else)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def as_dict(value: Any) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one: a stream's fields are read as the format documents
    them, and anything else is skipped rather than trusted."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """`value` when it is a JSON array, else an empty one (as `as_dict`, for the fields a format documents as
    arrays)."""
    return value if isinstance(value, list) else []


def sse_bytes(data: Any, event: str | None = None) -> bytes:
    """One server-sent event."""
    payload = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {payload}\n\n".encode()


def text_of(content: Any) -> str:
    """Plain text of a message content: a string, or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    parts.append(part["text"])
                elif "image" in str(part.get("type")):  # image_url, input_image, image: the picture is not text
                    parts.append("[image]")
                elif part.get("type"):
                    parts.append(f"[{part['type']}]")
        return "\n".join(parts)
    return "" if content is None else json.dumps(content)


def texts_of_prompts(value: Any) -> list[str]:
    """The texts of an OpenAI `input` or `prompt` (a string, a list of them, token ids or lists of them), to show a
    person: each string as it is, "[N tokens]" for token ids."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return []
    if all(isinstance(token, int) for token in value):
        return [f"[{len(value)} tokens]"]
    # One level down only: that is all the APIs accept, and a body nested deeper must not cost a deep recursion.
    return [part if isinstance(part, str) else f"[{len(part)} tokens]"
            for part in value if isinstance(part, str | list)]
