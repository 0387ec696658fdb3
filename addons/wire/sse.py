"""An incremental parser for server-sent events, fed the bytes of a response as they arrive.

Only complete events (ended by a blank line) come out; a partial event waits for its next chunk. Each event keeps
its raw bytes, so a tap can pass events on untouched or leave one out.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass
class SseEvent:
    name: str | None
    data: str
    raw: bytes

    @cached_property
    def json(self) -> dict[str, Any] | None:
        """The event's data as a JSON object, or None (no data, `[DONE]`, or not an object)."""
        if not self.data or self.data == "[DONE]":
            return None
        try:
            value = json.loads(self.data)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None


class SseParser:
    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Events completed by `chunk`, in order."""
        buffer = self._pending + chunk
        events = []
        start = 0
        for match in _EVENT_END.finditer(buffer):
            raw = buffer[start:match.end()]
            start = match.end()
            events.append(parse_event(raw))
        self._pending = buffer[start:]
        return events

    def rest(self) -> bytes:
        """Bytes of an event the stream never finished."""
        rest, self._pending = self._pending, b""
        return rest


def parse_event(raw: bytes) -> SseEvent:
    name = None
    data_lines = []
    for line in raw.decode("utf-8", errors="replace").splitlines():
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data_lines.append(value)
    return SseEvent(name, "\n".join(data_lines), raw)
