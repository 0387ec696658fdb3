"""What OpenAI's two chunked streams share (Chat Completions and the legacy Completions): a stream is a series of
`data:` chunks holding `choices` by index, usage comes in a last chunk with no choices only when the request says
`stream_options.include_usage`, and `data: [DONE]` ends it. Each format says how one choice grows and reads back.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from .base import StreamAssembler, index_of, sse_bytes
from .sse import SseEvent

# The fields every chunk repeats, which the unstreamed answer carries once.
HEAD_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier")


def ask_for_stream_usage(body: dict[str, Any]) -> bool:
    """Make a streamed request report usage in its last chunk; True when the body was changed to do so."""
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return False
    body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return True


def replay_ending(head: dict[str, Any], answer: dict[str, Any], request: dict[str, Any]) -> list[bytes]:
    """The end of a replayed stream: the usage chunk when the request asked for one, then `[DONE]`."""
    events = []
    options = request.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") and answer.get("usage"):
        events.append(sse_bytes({**head, "choices": [], "usage": answer["usage"]}))
    events.append(sse_bytes("[DONE]"))
    return events


class ChoiceChunksAssembler(StreamAssembler):
    """Gathers chunks of choices into the unstreamed answer; a format supplies how one choice's delta adds up."""

    answer_object: str  # the unstreamed answer's `object`

    def __init__(self) -> None:
        self._head: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: dict[str, Any] | None = None
        self._error: Any = None

    @abstractmethod
    def _new_choice(self) -> dict[str, Any]:
        """The empty slot one choice's deltas add up in."""

    @abstractmethod
    def _add_choice(self, slot: dict[str, Any], choice: dict[str, Any]) -> None:
        """Add one chunk's `choice` to its `slot`."""

    @abstractmethod
    def _choice_of(self, index: int, slot: dict[str, Any]) -> dict[str, Any]:
        """The choice of the unstreamed answer that a full `slot` makes."""

    def add(self, event: SseEvent) -> None:
        if event.data == "[DONE]":
            self.complete = self._error is None
            return
        chunk = event.json
        if chunk is None:
            return
        if "error" in chunk and "choices" not in chunk:
            self._error = chunk["error"]
            self.complete = False
            return
        for key in HEAD_FIELDS:
            if chunk.get(key) is not None:
                self._head[key] = chunk[key]
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if isinstance(choice, dict):
                slot = self._choices.setdefault(index_of(choice.get("index")), self._new_choice())
                self._add_choice(slot, choice)

    def is_usage_only(self, event: SseEvent) -> bool:
        chunk = event.json
        return chunk is not None and not chunk.get("choices") and isinstance(chunk.get("usage"), dict)

    def result(self) -> dict[str, Any] | None:
        if not self._head and not self._choices:
            return {"error": self._error} if self._error is not None else None
        choices = [self._choice_of(index, slot) for index, slot in sorted(self._choices.items())]
        answer = {**self._head, "object": self.answer_object, "choices": choices}
        if self._usage is not None:
            answer["usage"] = self._usage
        if self._error is not None:
            answer["error"] = self._error
        return answer
