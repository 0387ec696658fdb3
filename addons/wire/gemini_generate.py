"""Google Gemini's native API: `POST /v1beta/models/{model}:generateContent`, and `:streamGenerateContent` (with
`?alt=sse` a stream of server-sent events, each a whole GenerateContentResponse chunk; without it one JSON array of
them). `/v1/models/...` is the same API. The model is in the path, not the body; usage is the answer's
`usageMetadata`, which each stream chunk repeats with the counts so far, the last with the final ones.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote, unquote

from genai_prices import Usage

from .base import StreamAssembler, WireFormat, as_dict, as_list, index_of, sse_bytes, text_of
from .sse import SseEvent

# `.../models/<model>:<method>`; a model may hold a slash (`google/gemini-2.0-flash`, as a gateway caller writes it).
ENDPOINT = re.compile(r"/models/(?P<model>[^:]+):(?P<method>generateContent|streamGenerateContent)$")
STREAM_METHOD = "streamGenerateContent"
SSE_QUERY = "alt=sse"  # a stream's query asking for server-sent events rather than one JSON array

# Google's canonical error codes (google.rpc.Code) by HTTP status: its SDKs show them, users branch on them.
STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ABORTED",
    413: "INVALID_ARGUMENT", 415: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 431: "INVALID_ARGUMENT",
    499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class GeminiGenerate(WireFormat):
    name = "gemini_generate"
    description = "Google Gemini"
    gateway_paths = ("/v1beta/models/{model}:generateContent", "/v1beta/models/{model}:streamGenerateContent")
    provider_header_prefixes = ("x-goog-",)
    usage_provider_id = "google"
    usage_flavor = "default"
    usage_key = "usageMetadata"
    model_key = "modelVersion"

    def matches(self, path: str) -> bool:
        return ENDPOINT.search(path) is not None

    def serves_gateway_path(self, path: str) -> bool:
        return self.matches(path)

    def model(self, path: str, body: Any) -> str | None:
        found = ENDPOINT.search(path)
        return unquote(found["model"]).removeprefix("models/") if found else None

    def is_stream(self, path: str, body: Any) -> bool:
        found = ENDPOINT.search(path)
        return found is not None and found["method"] == STREAM_METHOD

    def with_model(self, path: str, body: dict[str, Any], model: str) -> tuple[str, dict[str, Any]]:
        """The path names the model; a body's `model` (a fallback's override) is left out: Google refuses a field it
        does not know."""
        found = ENDPOINT.search(path)
        body = {key: value for key, value in body.items() if key != "model"}
        if found is None:
            return path, body
        return path[:found.start("model")] + quote(model, safe="") + path[found.end("model"):], body

    def upstream_path(self, provider_path: str, client_path: str) -> str:
        """The provider's endpoint, with the method the client called: one provider path serves both."""
        provider, client = ENDPOINT.search(provider_path), ENDPOINT.search(client_path)
        if provider is None or client is None:
            return provider_path
        return provider_path[:provider.start("method")] + client["method"] + provider_path[provider.end("method"):]

    def cache_path(self, path: str) -> str:
        """A stream and a whole answer of the same call share cache entries: `:streamGenerateContent` counts as
        `:generateContent`, and `alt=sse` not at all."""
        base, _, query = path.partition("?")
        found = ENDPOINT.search(base)
        if found is None:
            return path
        kept = "&".join(pair for pair in query.split("&") if pair and pair != SSE_QUERY)
        return base[:found.start("method")] + "generateContent" + (f"?{kept}" if kept else "")

    def answer_model(self, answer: Any) -> str | None:
        return super().answer_model(assembled(answer))

    def new_assembler(self) -> StreamAssembler:
        return GenerateStreamAssembler()

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}

    def error_body(self, status: int, error_type: str, message: str, **extra: Any) -> dict[str, Any]:
        """Google's shape, `{"error": {"code", "message", "status"}}`, with Google's status name for the HTTP
        status; llmtap's own type stays findable in `error.llmtap_type`."""
        name = STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        return {"error": {"code": status, "message": message, "status": name, "llmtap_type": error_type, **extra}}

    def extract_usage(self, response: Any, prices_provider: str | None = None) -> Usage | None:
        return super().extract_usage(assembled(response), prices_provider)

    def replay(self, answer: dict[str, Any], request: dict[str, Any], path: str) -> tuple[bytes, str]:
        """Server-sent events for a stream with `alt=sse`; without it, Google's one JSON array of the same chunks."""
        if SSE_QUERY in path.partition("?")[2].split("&"):
            return super().replay(answer, request, path)
        return json.dumps(_replayed_chunks(answer)).encode(), "application/json"

    def cacheable_answer(self, answer: Any) -> dict[str, Any] | None:
        """A stream read without `alt=sse` (a JSON array of chunks) is kept as the whole answer it stands for, when it
        is one (it ends with a finish reason, and no error)."""
        if not isinstance(answer, list):
            return super().cacheable_answer(answer)
        assembler = _assembler_of(answer)
        return assembler.result() if assembler.complete else None

    def replay_stream(self, answer: dict[str, Any], request: dict[str, Any]) -> bytes:
        return b"".join(sse_bytes(event) for event in _replayed_chunks(answer))

    def transcript(self, request: Any, response: Any) -> list[tuple[str, str]]:
        turns = []
        if isinstance(request, dict):
            if isinstance(request.get("systemInstruction"), dict):
                turns.append(("system", _parts_text(request["systemInstruction"].get("parts"))))
            for content in as_list(request.get("contents")):
                if isinstance(content, dict):
                    turns.append((str(content.get("role") or "user"), _parts_text(content.get("parts"))))
        response = assembled(response) if response is not None else None
        if isinstance(response, dict):
            for candidate in as_list(response.get("candidates")):
                content = as_dict(as_dict(candidate).get("content"))
                turns.append((str(content.get("role") or "model"), _parts_text(content.get("parts"))))
            if isinstance(response.get("error"), dict):
                turns.append(("error", str(response["error"].get("message", response["error"]))))
        return turns


def assembled(response: Any) -> dict[str, Any]:
    """A Gemini answer as one GenerateContentResponse: a stream read without `alt=sse` is a JSON array of chunks."""
    return (_assembler_of(response).result() or {}) if isinstance(response, list) else as_dict(response)


def _assembler_of(chunks: list[Any]) -> GenerateStreamAssembler:
    assembler = GenerateStreamAssembler()
    for chunk in chunks:
        assembler.add_chunk(as_dict(chunk))
    return assembler


def _replayed_chunks(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream chunks that deliver `answer`: one per part of each candidate, the last carrying its finish reason
    and the answer's usage."""
    head: dict[str, Any] = {k: answer[k] for k in ("modelVersion", "responseId") if k in answer}
    events: list[dict[str, Any]] = []
    for candidate in as_list(answer.get("candidates")):
        if not isinstance(candidate, dict):
            continue
        content = as_dict(candidate.get("content"))
        parts = as_list(content.get("parts")) or [{"text": ""}]
        for number, part in enumerate(parts):
            chunk: dict[str, Any] = {"content": {**content, "parts": [part]}, "index": candidate.get("index", 0)}
            if number == len(parts) - 1:
                chunk.update({k: v for k, v in candidate.items() if k not in ("content", "index")})
            events.append({"candidates": [chunk], **head})
    if not events:
        events.append({"candidates": [], **head})
    for key in ("usageMetadata", "promptFeedback"):
        if key in answer:
            events[-1][key] = answer[key]
    return events


def _parts_text(parts: Any) -> str:
    lines = []
    for part in as_list(parts):
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            lines.append(f"(thinking) {part['text']}" if part.get("thought") else part["text"])
        elif isinstance(part.get("functionCall"), dict):
            call = part["functionCall"]
            lines.append(f"→ {call.get('name')}({text_of(call.get('args'))})")
        elif isinstance(part.get("functionResponse"), dict):
            lines.append(f"← {text_of(part['functionResponse'].get('response'))}")
        elif "inlineData" in part or "fileData" in part:
            lines.append("[file]")
        else:
            lines.append(f"[{next(iter(part), 'part')}]")
    return "\n".join(lines).strip()


class GenerateStreamAssembler(StreamAssembler):
    """Each chunk is a GenerateContentResponse holding the next parts of each candidate: text parts in a row join
    into one (thought text apart from answer text), other parts (function calls) are kept whole; the last chunk's
    `usageMetadata` and finish reasons are the answer's."""

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._candidates: dict[int, dict[str, Any]] = {}
        self._parts: dict[int, list[dict[str, Any]]] = {}
        self._error: Any = None

    def add(self, event: SseEvent) -> None:
        chunk = event.json
        if chunk is not None:
            self.add_chunk(chunk)

    def add_chunk(self, chunk: dict[str, Any]) -> None:
        if isinstance(chunk.get("error"), dict):
            self._error = chunk["error"]
            self.complete = False
            return
        for key, value in chunk.items():
            if key != "candidates" and value is not None:
                self._head[key] = value
        for candidate in as_list(chunk.get("candidates")):
            if isinstance(candidate, dict):
                self._add_candidate(candidate)

    def _add_candidate(self, candidate: dict[str, Any]) -> None:
        index = index_of(candidate.get("index"))
        slot = self._candidates.setdefault(index, {"role": "model"})
        content = as_dict(candidate.get("content"))
        if isinstance(content.get("role"), str):
            slot["role"] = content["role"]
        for key, value in candidate.items():
            if key not in ("content", "index") and value is not None:
                slot[key] = value
        parts = self._parts.setdefault(index, [])
        for part in as_list(content.get("parts")):
            if isinstance(part, dict):
                self.first_token_seen = True
                self._add_part(parts, part)
        if candidate.get("finishReason"):
            self.complete = self._error is None

    def _add_part(self, parts: list[dict[str, Any]], part: dict[str, Any]) -> None:
        text = part.get("text")
        if not isinstance(text, str):
            parts.append(part)
            return
        last = parts[-1] if parts else None
        if last is not None and "pieces" in last and bool(last.get("thought")) == bool(part.get("thought")):
            last["pieces"].append(self.keep(text))
            last.update({k: v for k, v in part.items() if k != "text"})  # a thought signature comes with a piece
        else:
            parts.append({**{k: v for k, v in part.items() if k != "text"}, "pieces": [self.keep(text)]})

    def result(self) -> dict[str, Any] | None:
        if not self._head and not self._candidates:
            return {"error": self._error} if self._error is not None else None
        candidates = []
        for index, slot in sorted(self._candidates.items()):
            parts = [_joined(part) for part in self._parts.get(index, [])]
            fields = {k: v for k, v in slot.items() if k != "role"}
            candidates.append({"content": {"role": slot["role"], "parts": parts}, **fields, "index": index})
        answer = {"candidates": candidates, **self._head}
        if self._error is not None:
            answer["error"] = self._error
        return answer


def _joined(part: dict[str, Any]) -> dict[str, Any]:
    """A text part gathered piece by piece (a list, not repeated string copies), as one part."""
    if "pieces" not in part:
        return part
    return {"text": "".join(part["pieces"]), **{k: v for k, v in part.items() if k != "pieces"}}
