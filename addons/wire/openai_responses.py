"""OpenAI Responses (`POST /v1/responses`), OpenAI's newer API: `input` in, `output` items out, usage always reported
(in the final `response.completed` event of a stream)."""

from __future__ import annotations

from typing import Any

from .base import OpenAIFormat, StreamAssembler, index_of, sse_bytes, text_of
from .sse import SseEvent

FINAL_EVENTS = ("response.completed", "response.failed", "response.incomplete")


class OpenAIResponses(OpenAIFormat):
    name = "openai_responses"
    description = "OpenAI"
    gateway_paths = ("/v1/responses", "/responses")
    usage_flavor = "responses"

    def matches(self, path: str) -> bool:
        return path.endswith("/responses")

    def new_assembler(self) -> StreamAssembler:
        return ResponsesStreamAssembler()

    def replay_stream(self, answer: dict[str, Any], request: dict[str, Any]) -> bytes:
        events: list[tuple[str, dict[str, Any]]] = []
        start = {**answer, "status": "in_progress", "output": [], "usage": None}
        events += [("response.created", {"response": start}), ("response.in_progress", {"response": start})]
        for index, item in enumerate(answer.get("output") or []):
            events += _item_events(index, item)
        final = "response.completed" if answer.get("status", "completed") == "completed" else "response.incomplete"
        events.append((final, {"response": answer}))
        return b"".join(sse_bytes({"type": kind, "sequence_number": number, **data}, kind)
                        for number, (kind, data) in enumerate(events))

    def transcript(self, request: Any, response: Any) -> list[tuple[str, str]]:
        turns = []
        if isinstance(request, dict):
            if request.get("instructions"):
                turns.append(("system", str(request["instructions"])))
            items = request.get("input")
            for item in [{"role": "user", "content": items}] if isinstance(items, str) else items or []:
                if isinstance(item, dict):
                    turns.append((str(item.get("role") or item.get("type") or "?"), _item_text(item)))
        if isinstance(response, dict):
            for item in response.get("output") or []:
                if isinstance(item, dict):
                    turns.append((str(item.get("role") or item.get("type") or "assistant"), _item_text(item)))
            if isinstance(response.get("error"), dict):
                turns.append(("error", str(response["error"].get("message", response["error"]))))
        return turns


def _item_text(item: dict[str, Any]) -> str:
    kind = item.get("type")
    if kind == "function_call":
        return f"→ {item.get('name')}({item.get('arguments', '')})"
    if kind == "function_call_output":
        return f"← {item.get('output', '')}"
    if kind == "reasoning":
        summary = [text_of(s.get("text")) for s in item.get("summary") or [] if isinstance(s, dict)]
        return "(reasoning) " + " ".join(summary)
    return text_of(item.get("content")).strip()


def _item_events(index: int, item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The events that deliver one finished output item."""
    item_id = item.get("id")
    events: list[tuple[str, dict[str, Any]]] = []
    if item.get("type") == "message":
        events.append(("response.output_item.added",
                       {"output_index": index, "item": {**item, "status": "in_progress", "content": []}}))
        for part_index, part in enumerate(item.get("content") or []):
            where = {"item_id": item_id, "output_index": index, "content_index": part_index}
            text = part.get("text", "")
            events.append(("response.content_part.added", {**where, "part": {**part, "text": ""}}))
            if part.get("type") == "output_text":
                events.append(("response.output_text.delta", {**where, "delta": text, "logprobs": []}))
                events.append(("response.output_text.done", {**where, "text": text, "logprobs": []}))
            events.append(("response.content_part.done", {**where, "part": part}))
    elif item.get("type") == "function_call":
        events.append(("response.output_item.added",
                       {"output_index": index, "item": {**item, "status": "in_progress", "arguments": ""}}))
        where = {"item_id": item_id, "output_index": index}
        events.append(("response.function_call_arguments.delta", {**where, "delta": item.get("arguments", "")}))
        events.append(("response.function_call_arguments.done", {**where, "arguments": item.get("arguments", "")}))
    else:
        events.append(("response.output_item.added", {"output_index": index, "item": item}))
    events.append(("response.output_item.done", {"output_index": index, "item": item}))
    return events


class ResponsesStreamAssembler(StreamAssembler):
    def __init__(self) -> None:
        self._response: dict[str, Any] | None = None
        self._text: dict[tuple[int, int], list[str]] = {}
        self._items: dict[int, dict[str, Any]] = {}
        self._item_bytes = 0
        self._left_out = False  # deltas or items past the cap; they matter only if the final response never comes
        self._error: Any = None

    def add(self, event: SseEvent) -> None:
        data = event.json
        if data is None:
            return
        kind = data.get("type") or event.name or ""
        kind = kind if isinstance(kind, str) else ""
        if isinstance(data.get("response"), dict):
            self._response = data["response"]
            if kind == "response.completed":
                self.complete = self._error is None
        elif kind.endswith(".delta"):
            self.first_token_seen = True
            if kind == "response.output_text.delta":
                key = (index_of(data.get("output_index")), index_of(data.get("content_index")))
                delta = data.get("delta")
                kept = self.keep(delta, cut_when_full=False)
                self._left_out = self._left_out or kept != (delta if isinstance(delta, str) else "")
                self._text.setdefault(key, []).append(kept)
        elif kind == "response.output_item.done" and isinstance(data.get("item"), dict):
            # An item repeats its deltas whole; the final response repeats the items. Keep items up to the cap.
            if self._item_bytes + len(event.raw) <= self.max_kept_bytes:
                self._item_bytes += len(event.raw)
                self._items[index_of(data.get("output_index"))] = data["item"]
            else:
                self._left_out = True
        elif kind == "error":
            self._error = {k: v for k, v in data.items() if k not in ("type", "sequence_number")}
            self.complete = False

    def result(self) -> dict[str, Any] | None:
        if self._response is None:
            return {"error": self._error} if self._error is not None else None
        answer = dict(self._response)
        if not answer.get("output") and (self._items or self._text):  # a stream that never finished
            self.cut = self.cut or self._left_out
            answer["output"] = [self._items[i] for i in sorted(self._items)] or [
                {"type": "message", "role": "assistant",
                 "content": [{"type": "output_text", "text": "".join(parts)}
                             for _, parts in sorted(self._text.items())]}
            ]
        if self._error is not None:
            answer["error"] = self._error
        return answer

