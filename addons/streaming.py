"""The `StreamTap` addon: answers stream to the client as they arrive, while llmtap reads them on the way.

SSE answers: each event passes through at once (never buffered); a copy is assembled into the JSON answer the same call
would have returned unstreamed, so a streamed call's row has the same tokens, cost and response as an unstreamed one.
For an OpenAI-format stream whose client did not ask for usage, llmtap asks the provider for it and leaves that one
extra event out, so the client sees only what it asked for.

What llmtap keeps of an answer is bounded by `limits.max_logged_body_bytes` (the cap), whatever its size:
- an SSE answer keeps at most the cap of generated text and arguments (usage and other counts are still read from
  every event), and an event that grows past 4 × the cap without ending passes on unread;
- a non-SSE answer announced larger than the cap streams on as it arrives; one with no length is held back as
  mitmproxy would buffer it, and streams on once it outgrows the cap. Only its first cap bytes and last
  `TAIL_BYTES` (where JSON answers put usage) stay for the log.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from mitmproxy import http

from .bodies import TRUNCATED_KEY
from .callstate import BodyTapState, CallState, StreamTapState, get_state
from .config import Limits
from .settings import Settings
from .wire import read_body
from .wire.base import WireFormat
from .wire.sse import SseParser

logger = logging.getLogger(__name__)

TAIL_BYTES = 64 * 1024  # what is kept of the end of a too-large answer: its usage, in JSON answers
EVENT_BOUND_TIMES_CAP = 4  # an SSE event may grow to this many times the cap before it is passed on unread


class StreamTap:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings

    def request(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if flow.response or flow.error or state is None or not state.request.stream:
            return
        route = state.route
        if route.wire is None or route.provider is None or not route.provider.inject_stream_usage:
            return
        if not isinstance(state.request.body, dict):
            return
        body = dict(route.outgoing_body or state.request.body)  # a copy: the client's body stays as it was sent
        if route.wire.ask_for_stream_usage(body):
            route.outgoing_body = body
            route.stream_usage_requested_by_llmtap = True

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if state is None or flow.response is None or state.cache.answer is not None:
            return  # not a call llmtap handles, or llmtap's own answer (a cache hit's replay)
        cap_bytes = self._limits().max_logged_body_bytes
        if not flow.response.headers.get("content-type", "").startswith("text/event-stream"):
            tap_large_body(flow, state, cap_bytes)
            return
        state.outcome.streamed = True
        if state.route.wire is None:
            flow.response.stream = True  # an API llmtap does not read: stream it on, untouched
            return
        assembler = state.route.wire.new_assembler()
        assembler.max_kept_bytes = cap_bytes
        tap = state.outcome.tap = StreamTapState(
            parser=SseParser(max_event_bytes=EVENT_BOUND_TIMES_CAP * cap_bytes),
            assembler=assembler,
            drop_usage_only_events=state.route.stream_usage_requested_by_llmtap,
            request_id=state.request_id,
        )
        flow.response.stream = lambda chunk: pass_on(tap, chunk)

    def _limits(self) -> Limits:
        config = self.settings.config if self.settings is not None else None
        return config.limits if config is not None else Limits()


def pass_on(tap: StreamTapState, chunk: bytes) -> list[bytes]:
    """Read `chunk` into the tap; return the chunks the client gets now (b"" in marks the end of the stream).

    Never an empty chunk out: mitmproxy would send it as a chunked body's last chunk, ending the stream early. Never
    an exception out either: it would end the client's connection, so an answer llmtap cannot read still goes on.
    """
    if not chunk:
        rest = tap.parser.rest()  # an unfinished last event: already passed on, unless events are being picked
        return [rest] if rest and tap.drop_usage_only_events else []
    events = tap.parser.feed(chunk)
    try:
        for event in events:
            if event.too_large:
                _note_too_large_event(tap)
            else:
                tap.assembler.add(event)
        if tap.first_token_at is None and tap.assembler.first_token_seen:
            tap.first_token_at = time.monotonic()
        if not tap.drop_usage_only_events:
            return [chunk]
        kept = b"".join(event.raw for event in events if event.too_large or not tap.assembler.is_usage_only(event))
    except Exception:  # a bug or an event nobody foresaw: pass every byte on, stop reading this stream
        logger.exception(f"llmtap: reading the stream of {tap.request_id} failed; passing the rest on unread")
        tap.assembler.cut = True
        unsent = b"".join(event.raw for event in events) + tap.parser.rest() if tap.drop_usage_only_events else chunk
        tap.drop_usage_only_events = False
        tap.parser = _PassThrough()
        return [unsent] if unsent else []
    return [kept] if kept else []


def _note_too_large_event(tap: StreamTapState) -> None:
    if not tap.assembler.cut:
        logger.warning(f"llmtap: an SSE event of {tap.request_id} grew past {tap.parser.max_event_bytes} bytes "
                       "without ending; it is passed on unread and the row lacks what it held")
    tap.assembler.cut = True


class _PassThrough(SseParser):
    """The parser of a stream llmtap stopped reading: every byte is an unread piece, passed on as it came."""

    def feed(self, chunk: bytes) -> list[Any]:
        return []

    def rest(self) -> bytes:
        return b""


def tap_large_body(flow: http.HTTPFlow, state: CallState, cap_bytes: int) -> None:
    """Stream a non-SSE answer on when it is (or may be) larger than `cap_bytes`, keeping only its ends for the log."""
    assert flow.response is not None
    length = _content_length(flow.response)
    if length is not None and length <= cap_bytes:
        return  # read whole, as any answer
    tap = state.outcome.body_tap = BodyTapState(max_kept_bytes=cap_bytes, holding=length is None)
    response = flow.response
    flow.response.stream = lambda chunk: pass_body_on(response, tap, chunk)


def _content_length(response: http.Response) -> int | None:
    """The body size a response announced, or None (chunked, read until close, or a length that is not one)."""
    if "chunked" in response.headers.get("transfer-encoding", "").lower():
        return None
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def pass_body_on(response: http.Response, tap: BodyTapState, chunk: bytes) -> list[bytes]:
    """Keep the ends of `chunk` in the tap; return the chunks the client gets now (b"" in marks the end)."""
    if not chunk:
        if tap.holding:  # it all fit: it becomes the response's content, as if mitmproxy had read it whole
            response.data.content = bytes(tap.head)
            return [response.data.content] if tap.head else []
        return []
    held_bytes = tap.total_bytes
    tap.total_bytes += len(chunk)
    if (room := tap.max_kept_bytes - len(tap.head)) > 0:
        tap.head += chunk[:room]
    tap.tail = chunk[-TAIL_BYTES:] if len(chunk) >= TAIL_BYTES else (tap.tail + chunk)[-TAIL_BYTES:]
    if not tap.holding:
        return [chunk]
    if not tap.cut:
        return []
    tap.holding = False  # it outgrew the cap: what was held, then everything as it comes
    return [bytes(tap.head[:held_bytes]) + chunk]


def read_answer(response: http.Response | None, state: CallState) -> Any:
    """The call's answer as JSON, read once however it came (the cache and the recorder both need it): the cache
    hit's, assembled from a stream's events, the ends of one too large to keep, or the body parsed."""
    outcome = state.outcome
    if not outcome.answer_read and response is not None:
        if state.cache.answer is not None:
            outcome.answer = state.cache.answer
        elif outcome.tap is not None:
            outcome.answer = outcome.tap.assembler.result()
        elif outcome.body_tap is not None and outcome.body_tap.cut:  # too large to keep: its ends, streamed on
            outcome.answer = cut_answer(outcome.body_tap, response.headers.get("content-encoding", ""),
                                        state.route.wire)
        else:
            outcome.answer = read_body(response)
        outcome.answer_read = True
    return outcome.answer


def cut_answer(tap: BodyTapState, content_encoding: str, wire: WireFormat | None = None) -> dict[str, Any]:
    """What the log keeps of a non-SSE answer larger than the cap: its first bytes as text (unless compressed), and
    the model and usage read from its first and last bytes when they are there (JSON answers put usage last; an
    embeddings answer puts its model there too, after the vectors), under the keys `wire` names them by (OpenAI's
    when none; the last usage of a JSON array of stream chunks is the whole answer's)."""
    keys = wire or WireFormat
    answer: dict[str, Any] = {TRUNCATED_KEY: True, "bytes": tap.total_bytes}  # the mark every cut body carries
    if content_encoding.strip().lower() not in ("", "identity"):
        return answer  # compressed: its first bytes say nothing readable
    answer["head"] = tap.head.decode("utf-8", errors="replace")
    model_pattern = re.compile(rb'"%s"\s*:\s*"([^"\\]{1,200})"' % re.escape(keys.model_key.encode()))
    if (model := model_pattern.search(tap.head) or model_pattern.search(tap.tail)) is not None:
        answer[keys.model_key] = model.group(1).decode("utf-8", errors="replace")
    if (usage := _last_object(tap.tail, keys.usage_key)) is not None:
        answer[keys.usage_key] = usage
    return answer


def _last_object(tail: bytes, key: str) -> dict[str, Any] | None:
    """The last `"<key>": {...}` object in `tail`, or None."""
    for match in reversed(list(re.finditer(rb'"%s"\s*:\s*' % re.escape(key.encode()), tail))):
        try:
            value, _ = json.JSONDecoder().raw_decode(tail[match.end():].decode("utf-8", errors="replace"))
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return value
    return None


