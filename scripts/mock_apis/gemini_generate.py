"""Google Gemini's native API (`POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent`; `/v1/...`
too): a GenerateContentResponse, or with `?alt=sse` a stream of its chunks (without it, one JSON array of them), as
Google answers. The model is in the path; the key in `?key=` or `x-goog-api-key`. Usage (`usageMetadata`) is on every
chunk of a stream with the counts so far, the last with the final counts; a scripted `usage` is merged into them
(`thoughtsTokenCount` and `cachedContentTokenCount` count in `totalTokenCount` as Google counts them).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .base import Call, MockApi, count_words, deep_merge, pieces

ENDPOINT = re.compile(r"^/(v1beta|v1)/models/(?P<model>[^:]+):(?P<method>generateContent|streamGenerateContent)$")
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


@dataclass(frozen=True)
class GeminiApi(MockApi):
    """Its endpoints carry the model in the path: served by pattern, the model read from the path."""

    def serves(self, method: str, path: str) -> bool:
        return method == self.method and ENDPOINT.match(path) is not None

    def model(self, call: Call, request: Any) -> str | None:
        found = ENDPOINT.match(urlsplit(call.path).path)
        return unquote(found["model"]) if found else None


def error(status: int, message: str) -> dict:
    return {"error": {"code": status, "message": message,
                      "status": STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")}}


def problem(call: Call, request):
    """(status, message) if Google would refuse the call, else None."""
    if not call.headers.get("x-goog-api-key") and not parse_qs(urlsplit(call.path).query).get("key"):
        return 403, ("Method doesn't allow unregistered callers (callers without established identity). "
                     "Please use API Key or other form of API consumer identity to call this API.")
    if request is None:
        return 400, "Invalid JSON payload received."
    if not isinstance(request.get("contents"), list) or not request["contents"]:
        return 400, "* GenerateContentRequest.contents: contents is not specified"
    return None


def text_of(content: Any) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    return " ".join(p["text"] for p in parts or [] if isinstance(p, dict) and isinstance(p.get("text"), str))


def answer(call: Call, request: dict, usage_extra: dict, extra_headers: dict) -> None:
    contents = [c for c in request["contents"] if isinstance(c, dict)]
    users = [c for c in contents if c.get("role", "user") == "user"]
    reply = "Mock reply to: " + (text_of(users[-1]) if users else "")[:60]
    words = sum(count_words(text_of(c)) for c in contents) + count_words(text_of(request.get("systemInstruction")))
    prompt = words + 4 * len(contents)
    found = ENDPOINT.match(urlsplit(call.path).path)
    assert found is not None
    model = unquote(found["model"])
    head = {"modelVersion": model, "responseId": f"mock-gemini-{call.number}"}
    final = usage(prompt, count_words(reply), usage_extra)
    headers = {"x-goog-request-id": f"mock{call.number}", **extra_headers}
    if found["method"] == "generateContent":
        return call.send_json(200, {"candidates": [candidate(reply, "STOP")], "usageMetadata": final, **head}, headers)
    words_out = pieces(reply)
    chunks = [{"candidates": [candidate(piece, "STOP" if i == len(words_out) - 1 else None)],
               "usageMetadata": final if i == len(words_out) - 1 else usage(prompt, i + 1, {}), **head}
              for i, piece in enumerate(words_out)]
    if parse_qs(urlsplit(call.path).query).get("alt") == ["sse"]:
        # Google ends each event with CRLF CRLF.
        return call.stream([f"data: {json.dumps(chunk)}\r\n\r\n".encode() for chunk in chunks], headers)
    call.send_json(200, chunks, headers)  # without alt=sse: one JSON array of the chunks


def candidate(text: str, finish_reason: str | None) -> dict:
    found = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    return {**found, "finishReason": finish_reason} if finish_reason else found


def usage(prompt: int, candidates: int, extra: dict) -> dict:
    counts = {"promptTokenCount": prompt, "candidatesTokenCount": candidates,
              "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}
    deep_merge(counts, extra)
    if "totalTokenCount" not in extra:  # thoughts count in the total, as Google counts them; cached ones are prompt
        counts["totalTokenCount"] = (counts["promptTokenCount"] + counts["candidatesTokenCount"]
                                     + counts.get("thoughtsTokenCount", 0))
    return counts


def limit_headers(number: int, tokens: int, started: float) -> dict:
    return {}  # Google's API reports no rate limits in headers: a 429 says RESOURCE_EXHAUSTED


API = GeminiApi("gemini_generate", frozenset(), error, problem, answer, limit_headers)
