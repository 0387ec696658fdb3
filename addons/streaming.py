"""The `StreamTap` addon: SSE answers stream to the client as they arrive, while llmtap reads them on the way.

Each event passes through at once (never buffered); a copy is assembled into the JSON answer the same call would
have returned unstreamed, so a streamed call's row has the same tokens, cost and response as an unstreamed one.
For an OpenAI-format stream whose client did not ask for usage, llmtap asks the provider for it and leaves that
one extra event out, so the client sees only what it asked for.
"""

from __future__ import annotations

import json
import time

from mitmproxy import http

from .callstate import StreamTapState, get_state
from .wire.sse import SseParser


class StreamTap:
    def request(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if flow.response or flow.error or state is None or not state.stream or state.wire is None:
            return
        if state.provider is None or not state.provider.inject_stream_usage or not isinstance(state.request_body, dict):
            return
        body = json.loads(flow.request.get_content() or b"{}")
        if isinstance(body, dict) and state.wire.ask_for_stream_usage(body):
            flow.request.set_content(json.dumps(body).encode())
            state.stream_usage_requested_by_llmtap = True

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if state is None or flow.response is None:
            return
        content_type = flow.response.headers.get("content-type", "")
        if state.cached_answer is not None or not content_type.startswith("text/event-stream"):
            return  # not a stream, or llmtap's own (a cache hit's replay)
        state.stream = True
        if state.wire is None:
            flow.response.stream = True  # an API llmtap does not read: stream it on, untouched
            return
        tap = state.tap = StreamTapState(
            parser=SseParser(),
            assembler=state.wire.new_assembler(),
            drop_usage_only_events=state.stream_usage_requested_by_llmtap,
        )
        flow.response.stream = lambda chunk: pass_on(tap, chunk)


def pass_on(tap: StreamTapState, chunk: bytes) -> list[bytes]:
    """Read `chunk` into the tap; return the chunks the client gets now (b"" in marks the end of the stream).

    Never an empty chunk out: mitmproxy would send it as a chunked body's last chunk, ending the stream early.
    """
    if not chunk:
        rest = tap.parser.rest()  # an unfinished last event: already passed on, unless events are being picked
        return [rest] if rest and tap.drop_usage_only_events else []
    events = tap.parser.feed(chunk)
    for event in events:
        tap.assembler.add(event)
    if tap.first_token_at is None and tap.assembler.first_token_seen:
        tap.first_token_at = time.monotonic()
    if not tap.drop_usage_only_events:
        return [chunk]
    kept = b"".join(event.raw for event in events if not tap.assembler.is_usage_only(event))
    return [kept] if kept else []
