"""Provider wire formats and the stream tap: SSE parsing, stream assembly, usage, and what the client receives."""

from __future__ import annotations

import base64
import json
import struct

import pytest
from genai_prices import Usage
from llmtap.callstate import StreamTapState
from llmtap.streaming import pass_on
from llmtap.wire import format_for_path, format_named
from llmtap.wire.anthropic_messages import AnthropicMessages
from llmtap.wire.openai_chat import OpenAIChat
from llmtap.wire.sse import SseEvent, SseParser, parse_event


def sse(data: dict | str, event: str | None = None, newline: str = "\n") -> bytes:
    lines = ([f"event: {event}"] if event else []) + [f"data: {data if isinstance(data, str) else json.dumps(data)}"]
    return (newline.join(lines) + newline + newline).encode()


def chat_chunk(delta: dict, finish_reason: str | None = None) -> bytes:
    return sse({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_1",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}], "usage": None,
    })


OPENAI_USAGE_EVENT = sse({
    "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-4o-mini-2024-07-18",
    "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
})
OPENAI_DONE = b"data: [DONE]\n\n"
OPENAI_STREAM = b"".join([
    chat_chunk({"role": "assistant", "content": ""}),
    chat_chunk({"content": "Hel"}),
    b": keep-alive\n\n",
    chat_chunk({"content": "lo!"}),
    chat_chunk({}, finish_reason="stop"),
    OPENAI_USAGE_EVENT,
    OPENAI_DONE,
])

OPENAI_TOOL_STREAM = [
    chat_chunk({"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
    ]}),
    chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]}),
    chat_chunk({"tool_calls": [
        {"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]}),
    chat_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]}),
    chat_chunk({}, finish_reason="tool_calls"),
]


def anthropic_stream(newline: str = "\n") -> bytes:
    events = [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-20241022",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 25, "cache_read_input_tokens": 10, "output_tokens": 1},
        }}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Let me "}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "check."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": '{"city": "Par'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": 'is", "days": 2}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"output_tokens": 42}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(sse(data, event=name, newline=newline) for name, data in events)


def events_of(chunks: list[bytes]) -> list[SseEvent]:
    parser = SseParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


def assemble(wire, stream: bytes) -> dict:
    assembler = wire.new_assembler()
    for event in events_of([stream]):
        assembler.add(event)
    return assembler.result()


# --- SSE parser ---


def test_sse_parser_yields_an_event_only_once_it_is_complete():
    parser = SseParser()

    assert parser.feed(b'data: {"a": 1}\n') == []
    [event] = parser.feed(b"\ndata: {")

    assert event.json == {"a": 1}
    assert event.raw == b'data: {"a": 1}\n\n'
    assert parser.rest() == b"data: {"


def test_sse_parser_gives_the_same_events_wherever_the_stream_is_split():
    whole = events_of([OPENAI_STREAM])
    assert len(whole) == 7
    assert b"".join(event.raw for event in whole) == OPENAI_STREAM

    for offset in range(len(OPENAI_STREAM) + 1):
        split = events_of([OPENAI_STREAM[:offset], OPENAI_STREAM[offset:]])
        assert split == whole, f"split at byte {offset}"


def test_sse_parser_gives_the_same_events_fed_one_byte_at_a_time():
    stream = anthropic_stream()

    one_by_one = events_of([stream[i:i + 1] for i in range(len(stream))])

    assert one_by_one == events_of([stream])


def test_sse_parser_reads_crlf_line_endings_like_lf():
    crlf = events_of([anthropic_stream(newline="\r\n")])
    lf = events_of([anthropic_stream()])

    assert len(crlf) == len(lf) == 13
    assert [(e.name, e.data) for e in crlf] == [(e.name, e.data) for e in lf]


def test_sse_parser_reads_crlf_events_split_between_cr_and_lf():
    stream = anthropic_stream(newline="\r\n")
    expected = [(e.name, e.data) for e in events_of([stream])]

    for offset in range(len(stream) + 1):
        split = events_of([stream[:offset], stream[offset:]])
        assert [(e.name, e.data) for e in split] == expected, f"split at byte {offset}"


def test_sse_comment_lines_are_not_data():
    event = parse_event(b': ping\nevent: message_delta\n: more\ndata: {"type": "message_delta"}\n\n')

    assert event.name == "message_delta"
    assert event.json == {"type": "message_delta"}


def test_sse_comment_only_event_has_no_json():
    assert parse_event(b": keep-alive\n\n").json is None


def test_sse_done_marker_has_no_json():
    event = parse_event(OPENAI_DONE)

    assert event.data == "[DONE]"
    assert event.json is None


# --- OpenAI chat ---


def test_openai_stream_assembles_into_a_chat_completion():
    answer = assemble(OpenAIChat(), OPENAI_STREAM)

    assert answer == {
        "id": "chatcmpl-1",
        "created": 1700000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }


def test_openai_stream_tool_calls_are_merged_by_index():
    answer = assemble(OpenAIChat(), b"".join(OPENAI_TOOL_STREAM))

    [choice] = answer["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]


def test_openai_first_token_is_seen_at_the_first_content_not_the_role_chunk():
    assembler = OpenAIChat().new_assembler()
    role, hel, *_ = events_of([OPENAI_STREAM])

    assembler.add(role)
    assert assembler.first_token_seen is False
    assembler.add(hel)
    assert assembler.first_token_seen is True


def test_openai_first_token_is_seen_at_the_first_tool_call():
    assembler = OpenAIChat().new_assembler()

    assembler.add(events_of([OPENAI_TOOL_STREAM[0]])[0])

    assert assembler.first_token_seen is True


@pytest.mark.parametrize(
    "raw, usage_only",
    [
        (OPENAI_USAGE_EVENT, True),
        (chat_chunk({"content": "Hel"}), False),
        (OPENAI_DONE, False),
        (b": keep-alive\n\n", False),
        (sse({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 1}}), False),
    ],
    ids=["usage chunk", "content chunk", "done", "comment", "last choice carrying usage"],
)
def test_openai_usage_only_event_is_recognised(raw, usage_only):
    assert OpenAIChat().new_assembler().is_usage_only(parse_event(raw)) is usage_only


def test_ask_for_stream_usage_adds_include_usage_keeping_other_stream_options():
    body = {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_obfuscation": False}}

    assert OpenAIChat().ask_for_stream_usage(body) is True
    assert body["stream_options"] == {"include_obfuscation": False, "include_usage": True}


def test_ask_for_stream_usage_changes_nothing_when_the_client_already_asked():
    body = {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True}}

    assert OpenAIChat().ask_for_stream_usage(body) is False
    assert body == {"model": "gpt-4o-mini", "stream": True, "stream_options": {"include_usage": True}}


# --- Anthropic messages ---


def test_anthropic_stream_assembles_into_a_message():
    answer = assemble(AnthropicMessages(), anthropic_stream())

    assert answer["id"] == "msg_1"
    assert answer["model"] == "claude-3-5-haiku-20241022"
    assert answer["stop_reason"] == "tool_use"
    assert answer["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris", "days": 2}},
    ]


def test_anthropic_stream_usage_merges_message_start_and_message_delta():
    answer = assemble(AnthropicMessages(), anthropic_stream())

    assert answer["usage"] == {"input_tokens": 25, "cache_read_input_tokens": 10, "output_tokens": 42}


def test_anthropic_first_token_is_seen_at_the_first_content_delta():
    assembler = AnthropicMessages().new_assembler()
    events = events_of([anthropic_stream()])

    for event in events[:3]:  # message_start, content_block_start, ping
        assembler.add(event)
    assert assembler.first_token_seen is False
    assembler.add(events[3])
    assert assembler.first_token_seen is True


# --- paths and usage ---


@pytest.mark.parametrize(
    "path, name",
    [
        ("/v1/chat/completions", "openai_chat"),
        ("/chat/completions", "openai_chat"),
        ("/openai/v1/chat/completions", "openai_chat"),
        ("/v1/chat/completions?api-version=1", "openai_chat"),
        ("/v1/messages", "anthropic_messages"),
        ("/v1/embeddings", "openai_embeddings"),
        ("/openai/deployments/my-embedder/embeddings?api-version=2024-10-21", "openai_embeddings"),
        ("/v1/completions", "openai_completions"),
        ("/completions/", "openai_completions"),
    ],
)
def test_format_for_path_picks_the_wire_format(path, name):
    assert format_for_path(path).name == name


@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/models"])
def test_format_for_path_is_none_for_apis_llmtap_does_not_read(path):
    assert format_for_path(path) is None


def test_openai_usage_is_extracted_with_cached_and_reasoning_tokens():
    answer = {
        "model": "o4-mini",
        "usage": {
            "prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
            "prompt_tokens_details": {"cached_tokens": 40}, "completion_tokens_details": {"reasoning_tokens": 20},
        },
    }

    usage = OpenAIChat().extract_usage(answer)

    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.output_reasoning_tokens) == (
        100, 50, 40, 20,
    )


def test_anthropic_usage_counts_cache_reads_and_writes_as_input():
    answer = {
        "model": "claude-3-5-haiku-20241022",
        "usage": {
            "input_tokens": 100, "output_tokens": 50,
            "cache_read_input_tokens": 30, "cache_creation_input_tokens": 10,
        },
    }

    usage = AnthropicMessages().extract_usage(answer)

    assert usage == Usage(input_tokens=140, output_tokens=50, cache_read_tokens=30, cache_write_tokens=10)


def test_usage_of_an_assembled_stream_is_extracted_like_an_unstreamed_answer():
    assert OpenAIChat().extract_usage(assemble(OpenAIChat(), OPENAI_STREAM)) == Usage(input_tokens=9, output_tokens=3)
    assert AnthropicMessages().extract_usage(assemble(AnthropicMessages(), anthropic_stream())) == Usage(
        input_tokens=35, output_tokens=42, cache_read_tokens=10
    )


@pytest.mark.parametrize("wire", [OpenAIChat(), AnthropicMessages()], ids=lambda w: w.name)
@pytest.mark.parametrize("answer", [{"id": "x"}, {"usage": None}, None, "not json"])
def test_usage_is_none_when_the_answer_reports_none(wire, answer):
    assert wire.extract_usage(answer) is None


# --- stream tap: what the client receives ---


def run_tap(chunks: list[bytes], drop_usage_only_events: bool) -> tuple[list[bytes], list[bytes]]:
    """Chunks the client gets while the stream runs, and at its end."""
    tap = StreamTapState(SseParser(), OpenAIChat().new_assembler(), drop_usage_only_events)
    running = [out for chunk in chunks for out in pass_on(tap, chunk)]
    return running, pass_on(tap, b"")


@pytest.mark.parametrize("size", [1, 7, 100, len(OPENAI_STREAM)])
def test_tap_leaves_out_only_the_usage_event_llmtap_asked_for(size):
    chunks = [OPENAI_STREAM[i:i + size] for i in range(0, len(OPENAI_STREAM), size)]

    running, end = run_tap(chunks, drop_usage_only_events=True)

    assert b"".join(running + end) == OPENAI_STREAM.replace(OPENAI_USAGE_EVENT, b"")
    assert b"".join(running).endswith(OPENAI_DONE)


def test_tap_never_hands_the_client_an_empty_chunk():
    for drop in (True, False):
        for offset in range(1, len(OPENAI_STREAM)):
            running, end = run_tap([OPENAI_STREAM[:offset], OPENAI_STREAM[offset:]], drop)
            assert b"" not in running + end, f"drop={drop}, split at byte {offset}"
        running, end = run_tap([OPENAI_STREAM[i:i + 1] for i in range(len(OPENAI_STREAM))], drop)
        assert b"" not in running + end, f"drop={drop}, one byte at a time"


def test_tap_passes_every_chunk_through_byte_identical_when_not_dropping():
    tap = StreamTapState(SseParser(), OpenAIChat().new_assembler(), drop_usage_only_events=False)
    chunks = [OPENAI_STREAM[i:i + 13] for i in range(0, len(OPENAI_STREAM), 13)]

    for chunk in chunks:
        assert pass_on(tap, chunk) == [chunk]
    assert pass_on(tap, b"") == []


def test_tap_end_hands_over_an_unfinished_last_event_only_when_dropping():
    unfinished = b'data: {"choices": [{"index": 0, "delta": {"content": "cut of'
    stream = chat_chunk({"content": "Hel"}) + unfinished

    dropping, dropping_end = run_tap([stream], drop_usage_only_events=True)
    passing, passing_end = run_tap([stream], drop_usage_only_events=False)

    assert dropping == [chat_chunk({"content": "Hel"})]
    assert dropping_end == [unfinished]
    assert passing == [stream]
    assert passing_end == []


def test_tap_records_first_token_time_at_the_first_content_chunk():
    role, hel, *_ = [event.raw for event in events_of([OPENAI_STREAM])]
    tap = StreamTapState(SseParser(), OpenAIChat().new_assembler(), drop_usage_only_events=False)

    pass_on(tap, role)
    assert tap.first_token_at is None
    pass_on(tap, hel)
    assert tap.first_token_at is not None


@pytest.mark.parametrize("name, answer", [
    ("openai_chat", {"id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi there"},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
    ("anthropic_messages", {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
                            "content": [{"type": "text", "text": "hi"},
                                        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}],
                            "stop_reason": "tool_use", "stop_sequence": None,
                            "usage": {"input_tokens": 5, "output_tokens": 7}}),
    ("openai_responses", {"id": "resp_1", "object": "response", "status": "completed", "model": "gpt-4o-mini",
                          "output": [{"id": "msg_1", "type": "message", "status": "completed", "role": "assistant",
                                      "content": [{"type": "output_text", "text": "hello", "annotations": []}]},
                                     {"id": "fc_1", "type": "function_call", "call_id": "c", "name": "f",
                                      "arguments": "{}", "status": "completed"}],
                          "usage": {"input_tokens": 4, "output_tokens": 2, "total_tokens": 6}}),
    ("openai_completions", {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "davinci-002",
                            "choices": [{"index": 0, "text": "one", "logprobs": None, "finish_reason": "stop"},
                                        {"index": 1, "text": "two", "logprobs": None, "finish_reason": "length"}],
                            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}),
    ("openai_embeddings", {"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -1.0]}],
                           "model": "text-embedding-3-small", "usage": {"prompt_tokens": 2, "total_tokens": 2}}),
])
def test_a_replayed_stream_assembles_back_into_the_answer_it_came_from(name, answer):
    from llmtap.wire import format_named

    wire = format_named(name)
    assembler = wire.new_assembler()
    for event in SseParser().feed(wire.replay_stream(answer, {"stream_options": {"include_usage": True}})):
        assembler.add(event)
    assert assembler.complete and assembler.result() == answer


def completion_chunk(index: int, text: str, finish_reason: str | None = None) -> bytes:
    return sse({"id": "cmpl-1", "object": "text_completion", "created": 1700000000, "model": "gpt-3.5-turbo-instruct",
                "choices": [{"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}]})


def test_completion_stream_concatenates_text_per_choice_and_keeps_the_usage():
    assembler = format_named("openai_completions").new_assembler()
    stream = [completion_chunk(0, "Hel"), completion_chunk(1, "Wor"), completion_chunk(0, "lo"),
              completion_chunk(1, "ld"), completion_chunk(0, "", "stop"), completion_chunk(1, "", "length"),
              sse({"id": "cmpl-1", "object": "text_completion", "created": 1700000000,
                   "model": "gpt-3.5-turbo-instruct", "choices": [],
                   "usage": {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}}), OPENAI_DONE]
    events = SseParser().feed(b"".join(stream))
    assert not assembler.first_token_seen
    for event in events:
        assembler.add(event)
    answer = assembler.result()
    assert assembler.complete and assembler.first_token_seen
    assert [(c["text"], c["finish_reason"]) for c in answer["choices"]] == [("Hello", "stop"), ("World", "length")]
    assert answer["object"] == "text_completion" and answer["usage"]["total_tokens"] == 8
    assert [assembler.is_usage_only(event) for event in events] == [False] * 6 + [True, False]


def test_embeddings_never_stream_whatever_the_request_says():
    wire = format_named("openai_embeddings")
    assert wire.is_stream("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x", "stream": True}) is False
    assert wire.ask_for_stream_usage({"input": "x"}) is False


def test_embeddings_transcript_shows_the_inputs_briefly_and_the_vectors_by_size():
    wire = format_named("openai_embeddings")
    request = {"model": "text-embedding-3-small", "input": ["short", "y" * 500, [1, 2, 3], "d", "e", "f", "g"]}
    turns = wire.transcript(request, None)
    assert turns[0] == ("input", "short") and turns[1][1].startswith("y" * 200 + "…") and len(turns[1][1]) < 230
    assert turns[2] == ("input", "[3 tokens]") and turns[-1] == ("input", "… and 2 more inputs")
    packed = base64.b64encode(struct.pack("<4f", 0, 1, 2, 3)).decode()
    answer = {"data": [{"embedding": packed}, {"embedding": packed}], "usage": {"prompt_tokens": 2}}
    assert wire.transcript(None, answer) == [("embeddings", "2 vectors of 4 dimensions")]
    cut = {"llmtap_truncated": True, "bytes": 2_000_000, "head": '{"object": "list", "data": [{"embedding": [0.1, '}
    assert wire.transcript(None, cut) == [("embeddings", "2,000,000 bytes of vectors, too many to keep")]


def test_completions_transcript_shows_prompts_and_completions():
    wire = format_named("openai_completions")
    assert wire.transcript({"prompt": ["a", [5, 6]]}, {"choices": [{"text": "b"}]}) == [
        ("prompt", "a"), ("prompt", "[2 tokens]"), ("completion", "b")]
    deep: list = []
    for _ in range(5000):  # deeper than Python recurses: a bad body still reads
        deep = [deep]
    assert wire.transcript({"prompt": [deep, "x", 7]}, None) == [("prompt", "[1 tokens]"), ("prompt", "x")]
