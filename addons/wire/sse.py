"""An incremental parser for server-sent events, fed the bytes of a response as they arrive.

Only complete events (ended by a blank line) come out; a partial event waits for its next chunk. Each event keeps
its raw bytes, so a tap can pass events on untouched or leave one out.

Feeding costs O(bytes fed): each chunk is scanned once for an event end (plus the 3 bytes before it, where an end
split across chunks may begin), never the whole pending event again. An event that grows past `max_event_bytes`
without ending is no longer kept for parsing: its bytes come out at once as `too_large` pieces (so a tap still passes
every byte on), and the event is never read. So that the events read never depend on how a stream was split into
chunks, an event longer than the bound is never read even when it arrives whole.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_EVENT_END_OVERLAP = 3  # an event end is at most 4 bytes: its first 3 may have come with the previous chunk

# A few MiB: far beyond any event a provider sends (a whole Responses answer is one event), small enough that a stream
# that never ends an event cannot make llmtap hold it. StreamTap sets 4 × limits.max_logged_body_bytes.
DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024


@dataclass
class SseEvent:
    name: str | None
    data: str
    raw: bytes
    too_large: bool = False  # a piece of an event that outgrew the parser's bound: raw bytes only, never read

    @cached_property
    def json(self) -> dict[str, Any] | None:
        """The event's data as a JSON object, or None (no data, `[DONE]`, not an object, or unreadable)."""
        return parse_json_object(self.data) if self.data and self.data != "[DONE]" else None


def parse_json_object(text: str | bytes) -> dict[str, Any] | None:
    """`text` as a JSON object, or None: never raises, whatever a provider sent (not JSON, nested deeper than Python
    parses, not an object)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


class SseParser:
    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        self._pending = bytearray()
        self._scanned = 0  # bytes at the start of _pending already searched for an event end
        self._too_large = False  # the event under way outgrew the bound: _pending holds only its last bytes, passed on
        self.bytes_scanned = 0  # work done, for tests and benchmarks
        self.too_large_events = 0

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Events completed by `chunk`, in order (with `too_large` pieces of an event that outgrew the bound)."""
        if not chunk:
            return []
        if self._too_large:
            return self._skip_too_large(chunk)
        self._pending += chunk
        return self._take_events()

    def rest(self) -> bytes:
        """Bytes of an event the stream never finished (that did not already come out as `too_large` pieces)."""
        rest = b"" if self._too_large else bytes(self._pending)
        self._pending.clear()
        self._scanned, self._too_large = 0, False
        return rest

    def _take_events(self) -> list[SseEvent]:
        events = []
        start = 0
        scan_from = max(0, self._scanned - _EVENT_END_OVERLAP)
        self.bytes_scanned += len(self._pending) - scan_from
        for match in _EVENT_END.finditer(self._pending, scan_from):
            raw = bytes(self._pending[start:match.end()])
            # Past the bound an event is never read, however it arrived (whole in one chunk, or piece by piece).
            events.append(parse_event(raw) if len(raw) <= self.max_event_bytes else SseEvent(None, "", raw, True))
            start = match.end()
        del self._pending[:start]
        self._scanned = len(self._pending)
        if len(self._pending) > self.max_event_bytes:
            events.append(SseEvent(None, "", bytes(self._pending), too_large=True))
            del self._pending[:-_EVENT_END_OVERLAP]
            self._too_large = True
            self.too_large_events += 1
        return events

    def _skip_too_large(self, chunk: bytes) -> list[SseEvent]:
        already_out = len(self._pending)  # the last bytes of the event, kept only to find an end split across chunks
        self._pending += chunk
        self.bytes_scanned += len(self._pending)
        match = _EVENT_END.search(self._pending)
        if match is None:
            del self._pending[:-_EVENT_END_OVERLAP]
            return [SseEvent(None, "", bytes(chunk), too_large=True)]
        piece = SseEvent(None, "", bytes(self._pending[already_out:match.end()]), too_large=True)
        del self._pending[:match.end()]
        self._scanned, self._too_large = 0, False
        return [piece, *self._take_events()]


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
