"""What every mock API is (`MockApi`), and what the APIs share: the mock's words and tokens, the providers' error
bodies, credential checks and rate-limit headers.

The reply is always "Mock reply to: " + the first 60 characters of the last user message; tokens are counted as
whitespace-separated words (+4 per prompt message).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

MODEL_SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}


class Call(Protocol):
    """The call an API answers (mock_provider's handler): what was asked, and the ways to answer it."""

    path: str  # with its query string
    headers: Any  # the request's headers (case-insensitive)
    number: int  # the call's number in this mock's life: ids and remaining-request counts
    action: dict  # the test's scripted action for this call ({} when none)

    def send_json(self, status: int, obj: Any, headers: dict | None = None) -> None: ...
    def send_huge_json(self, answer: dict, huge_bytes: int, headers: dict) -> None: ...
    def stream(self, events: list[bytes], headers: dict) -> None: ...
    def limit_headers(self, tokens: int) -> dict: ...


@dataclass(frozen=True)
class MockApi:
    name: str
    paths: frozenset[str]  # the endpoints, with and without /v1 as SDKs' base URLs make them
    error: Callable[[int, str], dict]  # the provider's error body for (status, message)
    problem: Callable[[Call, Any], tuple[int, str] | None]  # (status, message) when the provider refuses the call
    answer: Callable[[Call, dict, dict, dict], None]  # (call, request, usage to merge, extra headers)
    limit_headers: Callable[[int, int, float], dict]  # (call number, tokens, when the call came) -> rate-limit headers
    method: str = "POST"

    def serves(self, method: str, path: str) -> bool:
        return method == self.method and path in self.paths

    def model(self, call: Call, request: Any) -> str | None:
        """The model a call asks for (a scripted action may apply to one model only)."""
        return request.get("model") if isinstance(request, dict) else None


# ---------------------------------------------------------------- content

def text_of(content) -> str:
    """Text of a message content: a string or a list of {"type": "text"} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content
                        if isinstance(p, dict) and p.get("type") == "text")
    return ""


def text_or_token_items(value) -> list:
    """The items of an OpenAI `input` or `prompt`: each a string or a list of token ids ([] when `value` is none of
    the forms the API accepts)."""
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(t, int) for t in value)):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str | list) for v in value):
        return value
    return []


def item_tokens(items: list) -> int:
    """The tokens of `text_or_token_items`: a text's words, a token list's length."""
    return sum(len(item) if isinstance(item, list) else count_words(item) for item in items)


def count_words(text: str) -> int:
    return len(text.split())


def prompt_tokens(messages: list, system=None) -> int:
    words = sum(count_words(text_of(m.get("content"))) for m in messages if isinstance(m, dict))
    return words + 4 * len(messages) + count_words(text_of(system))


def reply_for(messages: list) -> str:
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    last = text_of(users[-1].get("content")) if users else ""
    return "Mock reply to: " + last[:60]


def pieces(reply: str) -> list:
    """One piece per word, each keeping its trailing whitespace ("".join == reply)."""
    return re.findall(r"\S+\s*", reply)


def deep_merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def sse(event, data) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(data)}\n\n".encode()


# ---------------------------------------------------------------- refusals and errors

def has_bearer(headers) -> bool:
    auth = headers.get("Authorization", "")
    return auth.startswith("Bearer ") and bool(auth[7:].strip())


def openai_error(status: int, message: str) -> dict:
    kind = ("rate_limit_error" if status == 429 else
            "server_error" if status >= 500 else "invalid_request_error")
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def openai_problem(call: Call, request, required=("model", "messages"), authorized: bool = False):
    """(status, message) if the OpenAI request (chat, or another endpoint with its own `required`) must be refused."""
    if not authorized and not has_bearer(call.headers):
        return 401, "Incorrect API key provided. You must pass 'Authorization: Bearer <key>'."
    if request is None:
        return 400, "We could not parse the JSON body of your request."
    for field in required:
        if field not in request:
            return 400, f"Missing required parameter: '{field}'."
    if "messages" in required and not isinstance(request["messages"], list):
        return 400, "Invalid type for 'messages': expected an array."
    return None


def text_or_token_problem(call: Call, request, field: str, authorized: bool = False):
    """(status, message) if an OpenAI request whose `field` holds text or token ids (embeddings' `input`, legacy
    completions' `prompt`) must be refused; `authorized` when its key was checked already (Azure's `api-key`)."""
    found = openai_problem(call, request, ("model", field), authorized)
    if found is None and not text_or_token_items(request[field]):
        return 400, f"Invalid type for '{field}': expected a string, an array of strings, or token arrays."
    return found


# ---------------------------------------------------------------- rate-limit headers

def rfc3339(seconds_from_now: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def openai_limit_headers(number: int, tokens: int, started: float) -> dict:
    return {"x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": str(max(0, 10000 - number)),
            "x-ratelimit-reset-requests": "6ms", "x-ratelimit-limit-tokens": "200000",
            "x-ratelimit-remaining-tokens": str(max(0, 200000 - tokens)),
            "x-ratelimit-reset-tokens": "1ms", "x-request-id": f"req_{uuid.uuid4().hex}",
            "openai-processing-ms": str(int((time.monotonic() - started) * 1000))}
