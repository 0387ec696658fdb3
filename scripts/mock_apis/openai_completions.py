"""OpenAI's legacy Completions (`POST /v1/completions`): one choice per prompt (a string, a list of strings, token
ids or lists of them), its text "Mock reply to: " + the prompt's first 60 characters; JSON, or an SSE stream of
`text_completion` chunks word by word, usage last when the client asked for it (`stream_options.include_usage`),
then `data: [DONE]`.
"""

from __future__ import annotations

import time

from .base import (
    Call,
    MockApi,
    count_words,
    item_tokens,
    openai_error,
    openai_limit_headers,
    pieces,
    reply_for,
    sse,
    text_or_token_items,
    text_or_token_problem,
)
from .openai_chat import openai_usage

PATHS = frozenset({"/v1/completions", "/completions"})


def answer(call: Call, request: dict, usage_extra: dict, extra_headers: dict) -> None:
    prompts = text_or_token_items(request["prompt"])
    replies = [reply_for([{"role": "user", "content": prompt_text(p)}]) for p in prompts]
    prompt_tokens = item_tokens(prompts)
    usage = openai_usage(prompt_tokens, sum(count_words(r) for r in replies), usage_extra)
    headers = {**call.limit_headers(usage["prompt_tokens"]), **extra_headers}
    base = {"id": f"cmpl-mock{call.number}", "object": "text_completion", "created": int(time.time()),
            "model": request["model"]}
    if not request.get("stream"):
        choices = [{"text": reply, "index": i, "logprobs": None, "finish_reason": "stop"}
                   for i, reply in enumerate(replies)]
        return call.send_json(200, {**base, "choices": choices, "usage": usage}, headers)
    include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
    chunks = [{**base, "choices": [{"text": piece, "index": i, "logprobs": None, "finish_reason": None}]}
              for i, reply in enumerate(replies) for piece in pieces(reply)]
    chunks += [{**base, "choices": [{"text": "", "index": i, "logprobs": None, "finish_reason": "stop"}]}
               for i in range(len(replies))]
    if include_usage:
        chunks = [{**chunk, "usage": None} for chunk in chunks] + [{**base, "choices": [], "usage": usage}]
    call.stream([sse(None, chunk) for chunk in chunks] + [b"data: [DONE]\n\n"], headers)


def prompt_text(prompt) -> str:
    return prompt if isinstance(prompt, str) else f"[{len(prompt)} tokens]"


def problem(call: Call, request):
    return text_or_token_problem(call, request, "prompt")


API = MockApi("openai_completions", PATHS, openai_error, problem, answer, openai_limit_headers)
