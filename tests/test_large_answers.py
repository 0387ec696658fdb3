"""Answers of any size or shape reach the client whole while llmtap keeps at most its cap of them.

Unit tests drive the SSE parser, the assemblers and the taps directly; end-to-end tests send 16 MB unterminated
events, a deeply nested event and 100 MB answers (JSON with and without a length, and SSE) through a real gateway and
watch its resident memory in /proc.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from llmtap.callstate import BodyTapState, CallState, Route, StreamTapState, attach_state
from llmtap.config import load_config
from llmtap.recorder import build_record
from llmtap.settings import Settings
from llmtap.streaming import cut_answer, pass_body_on, pass_on
from llmtap.wire.anthropic_messages import AnthropicMessages
from llmtap.wire.base import sse_bytes
from llmtap.wire.openai_chat import OpenAIChat
from llmtap.wire.openai_responses import OpenAIResponses
from llmtap.wire.sse import SseEvent, SseParser
from mitmproxy.test.tflow import tflow
from mitmproxy.test.tutils import tresp

MiB = 1024 * 1024
DEEP = "[" * 100_000


# --- the SSE parser: linear work, bounded events ---


def test_an_unterminated_event_is_scanned_once_and_passed_on_unread():
    parser = SseParser(max_event_bytes=4 * MiB)
    stream = b"data: " + b"~" * (16 * MiB)
    chunk_bytes = 4096

    started = time.monotonic()
    pieces = [event for i in range(0, len(stream), chunk_bytes) for event in parser.feed(stream[i:i + chunk_bytes])]
    took_s = time.monotonic() - started

    chunks = -(-len(stream) // chunk_bytes)
    assert parser.bytes_scanned <= len(stream) + 3 * chunks  # each byte once, plus the overlap where an end may split
    assert took_s < 5  # was 29 s; a generous bound for a busy machine (it takes ~0.1 s)
    assert all(piece.too_large for piece in pieces)
    assert b"".join(piece.raw for piece in pieces) + parser.rest() == stream
    assert parser.too_large_events == 1


def test_the_stream_goes_on_after_a_too_large_event_ends():
    parser = SseParser(max_event_bytes=100)
    stream = b"data: " + b"x" * 1000 + b"\n\n" + sse_bytes({"ok": 1}) + b"data: [DONE]\n\n"

    events = [event for i in range(0, len(stream), 7) for event in parser.feed(stream[i:i + 7])]

    assert b"".join(event.raw for event in events) == stream
    readable = [event for event in events if not event.too_large]
    assert [event.json for event in readable] == [{"ok": 1}, None]
    assert readable[-1].data == "[DONE]"


def test_the_tap_passes_every_byte_of_a_too_large_event_on_even_while_picking_events():
    tap = StreamTapState(SseParser(max_event_bytes=1000), OpenAIChat().new_assembler(), drop_usage_only_events=True)
    usage = sse_bytes({"id": "c", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    stream = sse_bytes({"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}]}) + b"data: " + b"~" * 50_000
    stream += b"\n\n" + usage + b"data: [DONE]\n\n"

    out = [piece for i in range(0, len(stream), 333) for piece in pass_on(tap, stream[i:i + 333])] + pass_on(tap, b"")

    assert b"".join(out) == stream.replace(usage, b"")
    assert tap.assembler.cut and not tap.assembler.complete  # never cached as a whole answer
    assert tap.assembler.result()["usage"]["completion_tokens"] == 2


def test_a_deeply_nested_event_is_unreadable_not_an_error():
    event = SseEvent(None, DEEP, b"")
    assert event.json is None
    for wire in (OpenAIChat(), AnthropicMessages(), OpenAIResponses()):
        assembler = wire.new_assembler()
        assembler.add(event)
        assembler.result()
    tap = StreamTapState(SseParser(), OpenAIChat().new_assembler(), drop_usage_only_events=True)
    stream = f"data: {DEEP}\n\n".encode() + b"data: [DONE]\n\n"
    assert b"".join(pass_on(tap, stream) + pass_on(tap, b"")) == stream


def test_a_stream_the_tap_cannot_read_still_reaches_the_client_byte_for_byte():
    class BrokenAssembler(type(OpenAIChat().new_assembler())):  # stands for a bug nobody has found yet
        def add(self, event):
            raise KeyError("a bug")

    tap = StreamTapState(SseParser(), BrokenAssembler(), drop_usage_only_events=True)
    stream = b"data: {\"a\": 1}\n\ndata: {\"b\": 2}\n\ndata: [DONE]\n\n"
    chunks = [stream[i:i + 5] for i in range(0, len(stream), 5)]

    out = [piece for chunk in chunks for piece in pass_on(tap, chunk)] + pass_on(tap, b"")

    assert b"".join(out) == stream and b"" not in out
    assert tap.assembler.cut


# --- assemblers keep at most the cap of generated content ---


@pytest.mark.parametrize("wire", [OpenAIChat(), AnthropicMessages(), OpenAIResponses()], ids=lambda w: w.name)
def test_an_assembler_keeps_at_most_its_cap_of_text_and_still_counts_usage(wire):
    assembler = wire.new_assembler()
    assembler.max_kept_bytes = 1000
    for event in _text_stream(wire, pieces=100, piece="é" * 50):  # 100 bytes a piece
        assembler.add(event)

    answer = assembler.result()

    text = json.dumps(answer, ensure_ascii=False)
    assert text.count("é") == 500  # 1000 bytes of 2-byte characters, never half a character
    assert wire.extract_usage(answer).output_tokens == 5000
    assert assembler.cut and not assembler.complete


def _text_stream(wire, pieces: int, piece: str) -> list[SseEvent]:
    parser = SseParser()
    if isinstance(wire, OpenAIChat):
        events = [sse_bytes({"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": piece}}]})] * pieces
        events += [sse_bytes({"id": "c", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 5000}}),
                   b"data: [DONE]\n\n"]
    elif isinstance(wire, AnthropicMessages):
        events = [sse_bytes({"type": "message_start", "message": {"id": "m", "model": "m", "usage": {
            "input_tokens": 1, "output_tokens": 1}}})]
        events += [sse_bytes({"type": "content_block_delta", "index": 0,
                              "delta": {"type": "text_delta", "text": piece}})] * pieces
        events += [sse_bytes({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 5000}}),
                   sse_bytes({"type": "message_stop"})]
    else:
        start = {"id": "r", "model": "m", "status": "in_progress", "output": []}
        events = [sse_bytes({"type": "response.created", "response": start})]
        events += [sse_bytes({"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
                              "delta": piece})] * pieces
        events += [sse_bytes({"type": "response.incomplete", "response": {
            **start, "status": "incomplete", "usage": {"input_tokens": 1, "output_tokens": 5000}}})]
    return parser.feed(b"".join(events))


def test_a_responses_stream_past_the_cap_is_whole_when_its_final_response_comes():
    wire = OpenAIResponses()
    assembler = wire.new_assembler()
    assembler.max_kept_bytes = 100
    text = "word " * 100
    final = {"id": "r", "model": "m", "status": "completed", "usage": {"input_tokens": 1, "output_tokens": 100},
             "output": [{"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}]}
    stream = [sse_bytes({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "delta": "word "})
              for _ in range(100)] + [sse_bytes({"type": "response.completed", "response": final})]
    for event in SseParser().feed(b"".join(stream)):
        assembler.add(event)

    assert assembler.result() == final and assembler.complete  # the final event holds it all: cacheable


def test_a_row_says_when_an_answer_was_too_large_to_read_usage_from():
    settings = Settings()
    settings.config = load_config(None)
    flow = tflow(resp=True)
    flow.request.method, flow.request.path = "POST", "/v1/chat/completions"  # an LLM call, billed by its usage
    route = Route(provider=settings.config.providers[0], wire=OpenAIChat())
    state = attach_state(flow, CallState(way="gateway", route=route))
    state.outcome.body_tap = BodyTapState(max_kept_bytes=10, holding=False, head=bytearray(b'{"id": "x", '),
                                          total_bytes=5000)

    row = build_record(flow, state, settings)

    assert row.cost_usd is None and row.price_error is not None and "too large" in row.price_error
    stored = json.loads(row.response_body or "")  # marked as cut the same way as any body over the cap
    assert stored["llmtap_truncated"] is True and stored["bytes"] == 5000


# --- non-SSE answers: held while small, streamed once large ---


def _Response():
    """A response as mitmproxy streams it: headers read, no content yet."""
    response = tresp()
    response.data.content = None
    return response


def test_a_small_answer_without_a_length_is_held_and_read_whole():
    response, tap = _Response(), BodyTapState(max_kept_bytes=100, holding=True)

    out = pass_body_on(response, tap, b'{"a": ') + pass_body_on(response, tap, b"1}") + pass_body_on(response, tap, b"")

    assert out == [b'{"a": 1}'] and response.data.content == b'{"a": 1}' and not tap.cut


def test_a_large_answer_streams_on_and_keeps_its_ends():
    response, tap = _Response(), BodyTapState(max_kept_bytes=100, holding=True)
    body = b'{"model": "gpt-x", "text": "' + b"~" * 10_000 + b'", "usage": {"prompt_tokens": 3, "completion_tokens": 9}}'
    chunks = [body[i:i + 64] for i in range(0, len(body), 64)]

    out = [piece for chunk in chunks for piece in pass_body_on(response, tap, chunk)] + pass_body_on(response, tap, b"")

    assert b"".join(out) == body
    assert tap.cut and len(tap.head) == 100 and response.data.content is None
    kept = cut_answer(tap, "")
    assert kept["model"] == "gpt-x" and kept["usage"] == {"prompt_tokens": 3, "completion_tokens": 9}
    assert OpenAIChat().extract_usage(kept).output_tokens == 9


# --- end to end: the real gateway ---


def _resident_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


class _PeakRss:
    """The highest resident memory of a process while a block runs, sampled every 5 ms."""

    def __init__(self, pid: int):
        self.pid, self.peak_kib, self._stop = pid, 0, threading.Event()

    def __enter__(self):
        self.before_kib = _resident_kib(self.pid)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, _resident_kib(self.pid))
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak_kib - self.before_kib) / 1024


def _call(gateway, tmp_path: Path, body: dict, request_id: str) -> tuple[int, int, Path]:
    """POST a chat call with curl; (status, bytes received, where the body is)."""
    out = tmp_path / f"{request_id}.body"
    result = subprocess.run(
        ["curl", "-s", "-o", str(out), "-w", "%{http_code} %{size_download}", "--max-time", "120",
         "-H", "content-type: application/json", "-H", f"Helicone-Request-Id: {request_id}",
         "-d", json.dumps(body), gateway.base_url + "/chat/completions"],
        capture_output=True, text=True, check=True, timeout=130,
    )
    status, size = result.stdout.split()
    return int(status), int(size), out


def _count(path: Path, byte: bytes = b"~") -> int:
    count = 0
    with path.open("rb") as f:
        while block := f.read(MiB):
            count += block.count(byte)
    return count


def _chat(stream: bool) -> dict:
    return {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "say a lot"}]}


def test_an_unterminated_16_mb_event_reaches_the_client_whole_and_fast(gateway, mock_provider, tmp_path):
    mock_provider.script({"insert_raw": "~" * 65536, "insert_raw_times": 256})  # 16 MiB, no event end
    request_id = str(uuid.uuid4())

    started = time.monotonic()
    status, size, body = _call(gateway, tmp_path, _chat(stream=True), request_id)
    took_s = time.monotonic() - started

    assert status == 200 and _count(body) == 16 * MiB
    assert body.read_bytes().endswith(b"data: [DONE]\n\n")
    assert took_s < 10  # was 29 s of rescanning, with the whole gateway stalled
    row = gateway.row(request_id)
    assert row["status"] == 200
    assert "grew past" in gateway.output()


def test_a_deeply_nested_event_reaches_the_client_and_the_row_is_written(gateway, mock_provider, tmp_path):
    nested = f"data: {DEEP}\n\n"
    mock_provider.script({"insert_raw": nested})
    request_id = str(uuid.uuid4())

    status, size, body = _call(gateway, tmp_path, _chat(stream=True), request_id)

    assert status == 200 and nested.encode() in body.read_bytes()
    assert body.read_bytes().endswith(b"data: [DONE]\n\n")
    row = gateway.row(request_id)
    assert row["status"] == 200 and row["output_tokens"] is not None  # the events around it were read
    assert "RecursionError" not in gateway.output()


HUGE_BYTES = 100 * 1000 * 1000


@pytest.mark.parametrize("stream, chunked", [(False, False), (False, True), (True, False)],
                         ids=["json-with-length", "json-chunked", "sse"])
def test_a_100_mb_answer_reaches_the_client_whole_in_bounded_memory(gateway, mock_provider, tmp_path, stream, chunked):
    mock_provider.script({"huge_body_bytes": HUGE_BYTES, "chunked": chunked})
    request_id = str(uuid.uuid4())

    with _PeakRss(gateway.process.pid) as rss:
        status, size, body = _call(gateway, tmp_path, _chat(stream), request_id)

    assert status == 200 and _count(body) == HUGE_BYTES and size == body.stat().st_size
    assert size > HUGE_BYTES
    assert rss.growth_mib < 100, f"the gateway grew by {rss.growth_mib:.0f} MiB for a {HUGE_BYTES / MiB:.0f} MiB answer"
    row = gateway.row(request_id)
    assert row["status"] == 200
    assert row["output_tokens"] == HUGE_BYTES // 4  # usage read from the answer's end, past what is kept
    assert len(row["response_body"]) < 2 * MiB
