"""OpenAI's Chat Completions (`POST /v1/chat/completions`), as OpenAI answers it: JSON, or an SSE stream of
chat.completion.chunk events with usage last when the client asked for it (`stream_options.include_usage`).

Action keys of its own: {"huge_body_bytes": N} (the reply is N "~": JSON written 1 MiB at a time, or a stream of
16 KiB deltas; usage says N // 4 completion tokens) and {"chunked": true} (with it, JSON without Content-Length).

The same API at the OpenAI-compatible providers' paths (Groq's, Fireworks', OpenRouter's), and at Azure OpenAI's
deployment URLs (`/openai/deployments/{deployment}/chat/completions?api-version=...`), where, as Azure does, the key
comes in `api-key`, the query must name an api-version, and the answer names the model the deployment runs (the
body's `model` is only the deployment's name).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from .base import (
    MODEL_SNAPSHOTS,
    Call,
    MockApi,
    count_words,
    deep_merge,
    openai_error,
    openai_limit_headers,
    openai_problem,
    pieces,
    prompt_tokens,
    reply_for,
    sse,
)

PATHS = frozenset({"/v1/chat/completions", "/chat/completions", "/openai/v1/chat/completions",
                   "/inference/v1/chat/completions", "/api/v1/chat/completions",
                   "/v1beta/openai/chat/completions"})
AZURE_PATH = re.compile(r"/openai/deployments/(?P<deployment>[^/?]+)/chat/completions")
# deployment -> the model it runs, as Azure names it
AZURE_DEPLOYMENTS = {"prod-chat": "gpt-4o-mini-2024-07-18", "prod-4o": "gpt-4o-2024-08-06"}
# Azure's stream opens with its content filter's verdict on the prompt: no id, no model, no choices.
AZURE_PROMPT_FILTER_CHUNK = {"choices": [], "created": 0, "id": "", "model": "", "object": "",
                             "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}


def azure_deployment(call: Call) -> str | None:
    """The deployment an Azure-form call names, or None for the other paths."""
    found = AZURE_PATH.fullmatch(call.path.split("?", 1)[0])
    return found["deployment"] if found else None


def problem(call: Call, request) -> tuple[int, str] | None:
    deployment = azure_deployment(call)
    if deployment is None:
        return openai_problem(call, request)
    if not call.headers.get("api-key"):
        return 401, ("Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a "
                     "valid key for an active subscription and use a correct regional API endpoint for your resource.")
    if "api-version=" not in call.path:
        return 404, "Resource not found"
    if deployment not in AZURE_DEPLOYMENTS:
        return 404, "The API deployment for this resource does not exist."
    return openai_problem(call, request, authorized=True)


def answer(call: Call, request: dict, usage_extra: dict, extra_headers: dict) -> None:
    if (deployment := azure_deployment(call)) is not None:
        request = {**request, "model": AZURE_DEPLOYMENTS[deployment]}
    messages = request["messages"]
    reply = reply_for(messages)
    huge_bytes = call.action.get("huge_body_bytes")
    completion = huge_bytes // 4 if huge_bytes else count_words(reply)
    usage = openai_usage(prompt_tokens(messages), completion, usage_extra)
    headers = {**call.limit_headers(usage["prompt_tokens"]), **extra_headers}
    base = {"id": f"chatcmpl-mock{call.number}", "object": "chat.completion",
            "created": int(time.time()),
            "model": MODEL_SNAPSHOTS.get(request["model"], request["model"]),
            "system_fingerprint": "fp_mock"}
    if not request.get("stream"):
        message = {"role": "assistant", "content": "~" if huge_bytes else reply, "refusal": None}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
        json_answer = {**base, "choices": [choice], "usage": usage, "service_tier": "default"}
        if huge_bytes:
            return call.send_huge_json(json_answer, huge_bytes, headers)
        return call.send_json(200, json_answer, headers)
    include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
    if huge_bytes:
        reply = "~" * huge_bytes
    events = [sse(None, data) for data in
              openai_chunks(base, reply, usage if include_usage else None, 16384 if huge_bytes else None)]
    if azure_deployment(call) is not None:
        events.insert(0, sse(None, AZURE_PROMPT_FILTER_CHUNK))
    call.stream(events + [b"data: [DONE]\n\n"], headers)


def openai_usage(prompt, completion, extra) -> dict:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion,
             "total_tokens": prompt + completion,
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0,
                                           "rejected_prediction_tokens": 0}}
    deep_merge(usage, extra)
    if "total_tokens" not in extra:
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage


def openai_chunks(base, reply, usage, piece_chars=None):
    """chat.completion.chunk objects; usage=None means include_usage was not requested. The reply comes word by
    word, or in pieces of `piece_chars`."""
    def chunk(delta, finish_reason=None):
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data = {**base, "object": "chat.completion.chunk", "choices": [choice]}
        return {**data, "usage": None} if usage else data

    chunks = [chunk({"role": "assistant", "content": ""})]
    parts = pieces(reply) if piece_chars is None else [reply[i:i + piece_chars]
                                                         for i in range(0, len(reply), piece_chars)]
    chunks += [chunk({"content": piece}) for piece in parts]
    chunks.append(chunk({}, "stop"))
    if usage:
        chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    return chunks


@dataclass(frozen=True)
class ChatApi(MockApi):
    def serves(self, method: str, path: str) -> bool:
        return super().serves(method, path) or (method == self.method and AZURE_PATH.fullmatch(path) is not None)


API = ChatApi("openai_chat", PATHS, openai_error, problem, answer, openai_limit_headers)
