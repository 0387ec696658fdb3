"""Anthropic's Messages API (`POST /v1/messages`): a message, or its stream of typed events; Anthropic's error
bodies and rate-limit headers."""

from __future__ import annotations

import uuid

from .base import Call, MockApi, count_words, deep_merge, has_bearer, pieces, prompt_tokens, reply_for, rfc3339, sse

PATHS = frozenset({"/v1/messages", "/messages"})


def error(status: int, message: str) -> dict:
    kinds = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
             413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}
    kind = kinds.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


def problem(call: Call, request):
    """(status, message) if the Anthropic request must be refused, else None."""
    if not call.headers.get("x-api-key") and not has_bearer(call.headers):
        return 401, "invalid x-api-key"
    if request is None:
        return 400, "The request body is not valid JSON."
    for field in ("model", "max_tokens", "messages"):
        if field not in request:
            return 400, f"{field}: Field required"
    if not isinstance(request["messages"], list):
        return 400, "messages: Input should be a valid list"
    return None


def answer(call: Call, request: dict, usage_extra: dict, extra_headers: dict) -> None:
    messages = request["messages"]
    reply = reply_for(messages)
    usage = deep_merge({"input_tokens": prompt_tokens(messages, request.get("system")),
                        "output_tokens": count_words(reply),
                        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
                       usage_extra)
    headers = {**call.limit_headers(usage["input_tokens"]), **extra_headers}
    message = {"id": f"msg_mock{call.number}", "type": "message", "role": "assistant",
               "model": request["model"], "content": [{"type": "text", "text": reply}],
               "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}
    if not request.get("stream"):
        return call.send_json(200, message, headers)
    call.stream([sse(data["type"], data) for data in anthropic_events(message)], headers)


def anthropic_events(message):
    """The Messages streaming event sequence for a finished message."""
    start_usage = {**message["usage"], "output_tokens": 1}
    start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
    events = [{"type": "message_start", "message": start},
              {"type": "content_block_start", "index": 0,
               "content_block": {"type": "text", "text": ""}},
              {"type": "ping"}]
    events += [{"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": piece}}
               for piece in pieces(message["content"][0]["text"])]
    events += [{"type": "content_block_stop", "index": 0},
               {"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]}},
               {"type": "message_stop"}]
    return events


def limit_headers(number: int, tokens: int, started: float) -> dict:
    headers = {"request-id": f"req_mock{uuid.uuid4().hex[:24]}",
               "anthropic-ratelimit-requests-limit": "10000",
               "anthropic-ratelimit-requests-remaining": str(max(0, 10000 - number)),
               "anthropic-ratelimit-requests-reset": rfc3339(1)}
    for name, limit, used in (("tokens", 400000, tokens), ("input-tokens", 200000, tokens),
                              ("output-tokens", 80000, 0)):
        headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
        headers[f"anthropic-ratelimit-{name}-remaining"] = str(max(0, limit - used))
        headers[f"anthropic-ratelimit-{name}-reset"] = rfc3339(1)
    return headers


API = MockApi("anthropic_messages", PATHS, error, problem, answer, limit_headers)
