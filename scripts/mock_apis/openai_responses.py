"""OpenAI's Responses API (`POST /v1/responses`): a response object, or its stream of typed events, word by word."""

from __future__ import annotations

import time

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

PATHS = frozenset({"/v1/responses", "/responses"})


def problem(call: Call, request):
    return openai_problem(call, request, ("model", "input"))


def answer(call: Call, request: dict, usage_extra: dict, extra_headers: dict) -> None:
    messages = responses_messages(request)
    reply = reply_for(messages)
    usage = deep_merge({"input_tokens": prompt_tokens(messages, request.get("instructions")),
                        "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens": count_words(reply),
                        "output_tokens_details": {"reasoning_tokens": 0}}, usage_extra)
    usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
    headers = {**call.limit_headers(usage["input_tokens"]), **extra_headers}
    item = {"id": f"msg_mock{call.number}", "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": reply, "annotations": []}]}
    response = {"id": f"resp_mock{call.number}", "object": "response", "created_at": int(time.time()),
                "status": "completed", "model": MODEL_SNAPSHOTS.get(request["model"], request["model"]),
                "output": [item], "usage": usage, "error": None, "incomplete_details": None,
                "instructions": request.get("instructions"), "parallel_tool_calls": True,
                "tool_choice": "auto", "tools": [], "text": {"format": {"type": "text"}}, "metadata": {}}
    if not request.get("stream"):
        return call.send_json(200, response, headers)
    call.stream([sse(data["type"], data) for data in responses_events(response, reply)], headers)


def responses_messages(request):
    """The Responses `input` (a string or a list of items) as chat-style messages."""
    items = request["input"]
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    return [i for i in items if isinstance(i, dict) and i.get("role")] if isinstance(items, list) else []


def responses_events(response, reply):
    """The Responses streaming event sequence for a finished response, word by word."""
    item = response["output"][0]
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    start = {**response, "status": "in_progress", "output": [], "usage": None}
    events = [{"type": "response.created", "response": start},
              {"type": "response.in_progress", "response": start},
              {"type": "response.output_item.added", "output_index": 0,
               "item": {**item, "status": "in_progress", "content": []}},
              {"type": "response.content_part.added", **where,
               "part": {"type": "output_text", "text": "", "annotations": []}}]
    events += [{"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
               for piece in pieces(reply)]
    events += [{"type": "response.output_text.done", **where, "text": reply, "logprobs": []},
               {"type": "response.content_part.done", **where, "part": item["content"][0]},
               {"type": "response.output_item.done", "output_index": 0, "item": item},
               {"type": "response.completed", "response": response}]
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


API = MockApi("openai_responses", PATHS, openai_error, problem, answer, openai_limit_headers)
