"""OpenAI's Embeddings (`POST /v1/embeddings`): one vector per input (a string, a list of strings, token ids or lists
of them), as floats or, when `encoding_format` is "base64" (what the openai SDK asks for unless told otherwise), as
base64 of little-endian float32s. Never streamed. Vectors have `dimensions` entries (1,536 unless the request says),
the same for the same input; usage counts an input's words (or its token ids) as tokens.

Azure's form is served too: `POST /openai/deployments/{deployment}/embeddings?api-version=...` with an `api-key`
header; the deployment names the model when the body does not.
"""

from __future__ import annotations

import base64
import hashlib
import re
import struct
from dataclasses import dataclass

from .base import (
    Call,
    MockApi,
    deep_merge,
    item_tokens,
    openai_error,
    openai_limit_headers,
    text_or_token_items,
    text_or_token_problem,
)

PATHS = frozenset({"/v1/embeddings", "/embeddings"})
AZURE_PATH = re.compile(r"/openai/deployments/([^/?]+)/embeddings")
DEFAULT_DIMENSIONS = 1536
# deployment -> the model it runs, as Azure names it in its answers (other deployments are named after their model)
AZURE_DEPLOYMENTS = {"prod-embed": "text-embedding-3-small"}


@dataclass(frozen=True)
class EmbeddingsApi(MockApi):
    def serves(self, method: str, path: str) -> bool:
        return super().serves(method, path) or (method == self.method and AZURE_PATH.fullmatch(path) is not None)

    def model(self, call: Call, request) -> str | None:
        return model_of(call, request)


def model_of(call: Call, request) -> str | None:
    """The body's model, else (Azure) the deployment the path names."""
    if isinstance(request, dict) and isinstance(request.get("model"), str):
        return request["model"]
    deployment = AZURE_PATH.match(call.path)
    return deployment.group(1) if deployment else None


def problem(call: Call, request):
    if AZURE_PATH.match(call.path) and call.headers.get("api-key") and isinstance(request, dict):
        request = {"model": model_of(call, request), **request}  # Azure's key header, its model in the path
        return text_or_token_problem(call, request, "input", authorized=True)
    return text_or_token_problem(call, request, "input")


def answer(call: Call, request: dict, usage_extra: dict, extra_headers: dict) -> None:
    inputs = text_or_token_items(request["input"])
    dimensions = request.get("dimensions") or DEFAULT_DIMENSIONS
    as_base64 = request.get("encoding_format") == "base64"
    data = [{"object": "embedding", "index": index, "embedding": encoded(vector_for(item, dimensions), as_base64)}
            for index, item in enumerate(inputs)]
    tokens = item_tokens(inputs)
    usage = deep_merge({"prompt_tokens": tokens, "total_tokens": tokens}, usage_extra)
    headers = {**call.limit_headers(usage["prompt_tokens"]), **extra_headers}
    # OpenAI's order: the vectors first, the model and usage after them.
    answered_by = AZURE_DEPLOYMENTS.get(model_of(call, request), model_of(call, request))  # Azure: the deployment's
    call.send_json(200, {"object": "list", "data": data, "model": answered_by, "usage": usage}, headers)


def vector_for(item, dimensions: int) -> list[float]:
    """A vector that depends only on the input: values in [-1, 1), each exactly a float32 (base64 loses nothing)."""
    seed = hashlib.sha256(str(item).encode()).digest()
    return [(seed[i % len(seed)] ^ (i * 7 % 256)) / 128 - 1 for i in range(dimensions)]


def encoded(vector: list[float], as_base64: bool):
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if as_base64 else vector


API = EmbeddingsApi("openai_embeddings", PATHS, openai_error, problem, answer, openai_limit_headers)
