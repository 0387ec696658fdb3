"""Property tests (hypothesis) for the parsers that read what clients and providers send: Helicone headers, rate-limit
policies, server-sent events and usage. Whatever arrives, they answer as documented or refuse with their own error;
nothing else escapes into mitmproxy.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from llmtap.headers import HeaderError, parse_helicone_headers, tags_only
from llmtap.ratelimit_policy import parse_ratelimit_policy
from llmtap.wire.anthropic_messages import AnthropicMessages
from llmtap.wire.openai_chat import OpenAIChat
from llmtap.wire.openai_responses import OpenAIResponses
from llmtap.wire.sse import SseEvent, SseParser

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WIRES = (OpenAIChat(), AnthropicMessages(), OpenAIResponses())

# --- Helicone headers ---

HELICONE_NAMES = [
    "Helicone-User-Id", "Helicone-Session-Id", "Helicone-Session-Path", "Helicone-Session-Name", "Helicone-Request-Id",
    "Helicone-Prompt-Id", "Helicone-Omit-Request", "Helicone-Omit-Response", "Helicone-Auth", "Helicone-Cache-Enabled",
    "Helicone-Cache-Bucket-Max-Size", "Helicone-Cache-Seed", "Helicone-Cache-Ignore-Keys", "Helicone-Retry-Enabled",
    "Helicone-Retry-Num", "Helicone-Retry-Factor", "Helicone-Retry-Min-Timeout", "Helicone-Retry-Max-Timeout",
    "Helicone-Fallback-Model", "Helicone-Fallback-OnCodes", "Helicone-Fallbacks", "Helicone-RateLimit-Policy",
    "Helicone-Property-Dup", "Helicone-Property-", "Helicone-Property-UserId", "Cache-Control", "Authorization",
]


def _case_twins(name: str) -> st.SearchStrategy[str]:
    return st.sampled_from([name, name.lower(), name.upper(), name.swapcase()])


header_names = st.one_of(
    st.sampled_from(HELICONE_NAMES).flatmap(_case_twins),
    st.builds(lambda prop: "Helicone-Property-" + prop, st.text(min_size=0, max_size=8)),
    st.text(min_size=0, max_size=20),
)
header_values = st.one_of(
    st.sampled_from(["true", "false", "TRUE", "", " ", "0", "3", "1.5", "nan", "inf", "-1", "/a/b", "Bearer k",
                     "Bearer ", "[]", "[{}]", "[1]", "{}", "[" * 5000, "max-age=10", "429,500", "a,,b",
                     "10;w=60", "5;w=60;u=cents;s=user", "00000000-0000-0000-0000-000000000000"]),
    st.text(max_size=40),
    st.from_regex(r"\A[0-9]{1,12}\Z"),
)
header_lists = st.lists(st.tuples(header_names, header_values), max_size=12)


@FAST
@given(header_lists)
@example([("Helicone-Property-Dup", "a"), ("helicone-property-dup", "b")])
@example([("Helicone-Cache-Enabled", "true"), ("helicone-cache-enabled", "false")])
def test_parse_helicone_headers_raises_only_header_errors(fields):
    try:
        options = parse_helicone_headers(fields)
    except HeaderError:
        return
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in options.properties.items())


@FAST
@given(header_lists)
@example([("Helicone-Property-Dup", "a"), ("helicone-property-dup", "b")])
def test_tags_only_never_raises(fields):
    options = tags_only(fields)
    assert set(options.properties) <= {name[len("Helicone-Property-"):].lower() for name, _ in fields}


LONG_NUMBER = "9" * 5000  # past Python's 4300-digit limit on int(str), which raises a bare ValueError


@pytest.mark.parametrize("fields", [
    [("Helicone-Retry-Num", LONG_NUMBER)],
    [("Helicone-Fallback-OnCodes", LONG_NUMBER)],
], ids=["retry-num", "oncodes"])
def test_a_number_too_long_for_int_is_a_header_error(fields):
    with pytest.raises(HeaderError):
        parse_helicone_headers(fields)


def test_a_max_age_too_long_for_int_is_capped_at_a_year():
    options = parse_helicone_headers([("Helicone-Cache-Enabled", "true"), ("Cache-Control", "max-age=" + LONG_NUMBER)])

    assert options.cache.max_age_s == 365 * 24 * 3600


# --- rate-limit policies ---

policies = st.builds(
    lambda quota, window, unit, segment: ";".join(
        [str(quota), f"w={window}"] + ([f"u={unit}"] if unit else []) + ([f"s={segment}"] if segment else [])),
    st.integers(1, 10**9), st.integers(1, 10**7), st.sampled_from([None, "request", "cents"]),
    st.one_of(st.none(), st.just("user"), st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,10}\Z")),
)


@FAST
@given(policies)
def test_a_valid_policy_round_trips(text):
    policy = parse_ratelimit_policy(text)
    again = parse_ratelimit_policy(policy.text)
    assert again == policy
    quota, window, *rest = text.split(";")
    params = dict(part.split("=", 1) for part in rest)
    assert (policy.quota, policy.window_s) == (int(quota), int(window.removeprefix("w=")))
    assert policy.unit == params.get("u", "request")
    assert policy.segment == params.get("s")


@FAST
@given(st.one_of(st.text(max_size=60), policies.map(lambda p: p + ";x=1"), policies.flatmap(
    lambda p: st.integers(0, len(p)).map(lambda i: p[:i] + "\x00" + p[i:]))))
@example("1;w=" + "9" * 5000)
@example("9" * 5000 + ";w=60")
def test_policy_parser_raises_only_value_error(text):
    try:
        parse_ratelimit_policy(text)
    except ValueError:
        pass


# --- server-sent events ---

sse_lines = st.one_of(
    st.sampled_from(["data: [DONE]", "event: message_start", ": comment", "data:", "id: 1", "retry: 10", ""]),
    st.builds(lambda d: "data: " + json.dumps(d), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=20),
)
line_ends = st.sampled_from(["\n", "\r\n", "\r"])
sse_streams = st.lists(st.tuples(sse_lines, line_ends), max_size=20).map(
    lambda parts: "".join(line + end for line, end in parts).encode())


@FAST
@given(sse_streams, st.lists(st.integers(1, 50), min_size=1, max_size=20), st.sampled_from([4, 64, 1 << 20]))
def test_sse_events_are_the_same_however_the_stream_is_split(stream, sizes, max_event_bytes):
    whole = SseParser(max_event_bytes)
    expected = whole.feed(stream)
    expected_rest = whole.rest()

    split, events, at = SseParser(max_event_bytes), [], 0
    while at < len(stream):
        size = sizes[len(events) % len(sizes)]
        events += split.feed(stream[at:at + size])
        at += size

    readable = [(e.name, e.data, e.raw) for e in events if not e.too_large]
    assert readable == [(e.name, e.data, e.raw) for e in expected if not e.too_large]
    assert b"".join(e.raw for e in events) + split.rest() == b"".join(e.raw for e in expected) + expected_rest == stream


# --- usage readers and stream assemblers ---

json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False),
              st.text(max_size=10)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=20,
)
KEYS = ["type", "index", "delta", "choices", "usage", "message", "content_block", "response", "item", "output_index",
        "content_index", "error", "text", "partial_json", "tool_calls", "function", "arguments", "content", "model",
        "prompt_tokens", "completion_tokens", "input_tokens", "output_tokens", "role", "finish_reason"]
TYPES = ["message_start", "content_block_start", "content_block_delta", "message_delta", "message_stop", "error",
         "text_delta", "thinking_delta", "input_json_delta", "response.created", "response.completed",
         "response.output_text.delta", "response.output_item.done", "response.function_call_arguments.delta"]
shaped = st.recursive(
    st.one_of(json_values, st.sampled_from(TYPES)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.sampled_from(KEYS), children, max_size=5)),
    max_leaves=25,
)


@FAST
@given(st.lists(st.one_of(shaped, json_values), max_size=8), st.integers(0, 200))
def test_assemblers_and_usage_readers_never_raise(datas, max_kept_bytes):
    for wire in WIRES:
        assembler = wire.new_assembler()
        assembler.max_kept_bytes = max_kept_bytes
        for data in datas:
            text = data if isinstance(data, str) else json.dumps(data)
            event = SseEvent(None, text, text.encode("utf-8", "replace"))
            assembler.add(event)
            assembler.is_usage_only(event)
        answer = assembler.result()
        wire.extract_usage(answer)
        for data in datas:
            wire.extract_usage(data)


@FAST
@given(shaped)
def test_extract_usage_reads_any_answer_without_raising(answer):
    for wire in WIRES:
        wire.extract_usage(answer)
        wire.extract_usage({"model": "gpt-4o", "usage": answer})
