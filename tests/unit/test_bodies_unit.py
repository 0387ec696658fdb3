"""Why a request body is not JSON, said so a client can fix it (bodies.parse_json_body), without a proxy."""

from __future__ import annotations

import pytest
from llmtap.bodies import json_kind, parse_json_body


def test_a_json_body_parses_with_no_problem():
    assert parse_json_body(b'{"model": "gpt-4o"}') == ({"model": "gpt-4o"}, None)


@pytest.mark.parametrize(("content", "problem"), [
    (b"", "the request body is empty"),
    (b"  \n", "the request body is empty (only whitespace)"),
    (b'{"model": "caf\xe9"}',
     "the request body is not UTF-8: byte 0xe9 at byte 14 (invalid continuation byte)"),
    (b'{"model": "gpt-4o", "messages": [',
     "the request body is cut off: its JSON ends at byte 33 before it is complete "
     "(Expecting value at line 1 column 34)"),
    (b'{"model": "gpt-4o", "messages": "hel',
     "the request body is cut off: its JSON ends at byte 36 before it is complete "
     "(Unterminated string starting at line 1 column 33)"),
    (b'{"model": "gpt-4o",\n "stream": tru}',
     "the request body is not valid JSON: Expecting value at line 2 column 12 (byte 31)"),
    (b'{"model": "\xc3\xa9" "x"}',
     "the request body is not valid JSON: Expecting ',' delimiter at line 1 column 15 (byte 15)"),
])
def test_a_body_that_is_not_json_says_why(content, problem):
    parsed, why = parse_json_body(content)

    assert why == problem
    assert parsed == (content.decode("utf-8", errors="replace") if content else None)  # the row keeps its text


def test_a_body_nested_deeper_than_the_parser_reads_says_how_deep_it_is():
    content = b'{"messages": "[[[ not counted", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    _, why = parse_json_body(content)

    assert why == ("the request body's JSON is nested 100,001 levels deep, deeper than llmtap's JSON reader goes "
                   "(about 1,000 levels)")


@pytest.mark.parametrize(("value", "kind"), [
    ([1], "a list"), ("hi", "a string"), (3, "a number"), (1.5, "a number"), (None, "null"), (True, "true"),
    ({}, "an object"),
])
def test_json_kinds_are_named_for_a_person(value, kind):
    assert json_kind(value) == kind
