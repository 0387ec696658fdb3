"""OpenAI's Embeddings (`/embeddings`, also Azure's `/openai/deployments/{deployment}/embeddings` and the compatible
endpoints of other providers): `input` (a string, a list of them, or token ids) becomes `data[].embedding` vectors,
floats or base64; usage counts input tokens only.

Embeddings never stream: a request's `stream` means nothing here, so the call is read as one JSON answer. Should an
endpoint answer with events anyway, the last JSON object among them is taken for the answer.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from ..bodies import TRUNCATED_KEY
from .base import OpenAIFormat, StreamAssembler, sse_bytes, texts_of_prompts
from .sse import SseEvent

SHOWN_INPUTS = 5  # a transcript shows the first few inputs of a batch, each cut to SHOWN_CHARS
SHOWN_CHARS = 200
FLOAT32_BYTES = 4  # a base64 embedding is little-endian float32s


class OpenAIEmbeddings(OpenAIFormat):
    name = "openai_embeddings"
    description = "OpenAI-compatible embeddings"
    gateway_paths = ("/v1/embeddings", "/embeddings")
    provider_header_prefixes = ("openai-", "x-goog-")  # OpenAI's, and Google's compatible endpoint's
    usage_flavor = "embeddings"

    def matches(self, path: str) -> bool:
        return path.endswith("/embeddings")

    def is_stream(self, path: str, body: Any) -> bool:
        return False

    def new_assembler(self) -> StreamAssembler:
        return LastObjectAssembler()

    def replay_stream(self, answer: dict[str, Any], request: dict[str, Any]) -> bytes:
        return sse_bytes(answer) + sse_bytes("[DONE]")  # what LastObjectAssembler reads back; no client asks for it

    def transcript(self, request: Any, response: Any) -> list[tuple[str, str]]:
        turns = []
        if isinstance(request, dict):
            texts = texts_of_prompts(request.get("input"))
            turns += [("input", _shortened(text)) for text in texts[:SHOWN_INPUTS]]
            if len(texts) > SHOWN_INPUTS:
                turns.append(("input", f"… and {len(texts) - SHOWN_INPUTS} more inputs"))
        if isinstance(response, dict):
            if isinstance(response.get("data"), list):
                turns.append(("embeddings", _vectors_summary(response["data"])))
            elif response.get(TRUNCATED_KEY) is True:  # the row kept the first bytes of the vectors: no use to read
                turns.append(("embeddings", f"{response.get('bytes', 0):,} bytes of vectors, too many to keep"))
            if isinstance(response.get("error"), dict):
                turns.append(("error", str(response["error"].get("message", response["error"]))))
        return turns


def _shortened(text: str) -> str:
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + f"… ({len(text):,} characters)"


def _vectors_summary(data: list[Any]) -> str:
    """What the vectors are, not their numbers: "3 vectors of 1,536 dimensions"."""
    sizes = sorted({size for item in data if isinstance(item, dict) and (size := _dimensions(item.get("embedding")))})
    shown = ", ".join(f"{size:,}" for size in sizes) or "unknown"
    return f"{len(data)} vector{'s' if len(data) != 1 else ''} of {shown} dimensions"


def _dimensions(embedding: Any) -> int | None:
    if isinstance(embedding, list):
        return len(embedding)
    if isinstance(embedding, str):
        try:
            return len(base64.b64decode(embedding, validate=True)) // FLOAT32_BYTES
        except (binascii.Error, ValueError):
            return None
    return None


class LastObjectAssembler(StreamAssembler):
    """The answer of an API that does not stream, should it come as events: the last JSON object among them."""

    def __init__(self) -> None:
        self._answer: dict[str, Any] | None = None

    def add(self, event: SseEvent) -> None:
        if event.data == "[DONE]":
            self.complete = self._answer is not None
        elif event.json is not None:
            self._answer = event.json

    def result(self) -> dict[str, Any] | None:
        return self._answer
