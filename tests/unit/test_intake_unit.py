"""What Intake refuses before a call leaves, on llmtap's real pipeline: each refusal is a JSON error the client can
read, the call never reaches the provider, and its row is still written, without a body. (Through a real process,
with memory measured: test_intake_limits.py.)"""

from __future__ import annotations

import gzip
import json
import uuid

import pytest
from mitmproxy import http

from .conftest import chat_body


def refusal(flow: http.HTTPFlow) -> tuple[int, dict]:
    assert flow.response is not None
    return flow.response.status_code, json.loads(flow.response.content or b"{}")["error"]


def assert_logged_without_body(pipeline, flow: http.HTTPFlow, status: int) -> None:
    assert flow.response is not None
    (row,) = [r for r in pipeline.rows() if r["request_id"] == flow.response.headers["helicone-id"]]
    assert row["status"] == status and row["request_body"] is None and row["attempts"] == 0


@pytest.mark.parametrize("headers", [
    {f"x-extra-{i}": "v" for i in range(20)},  # 20 + 2 headers over a count of 16
    {"x-large": "v" * 2000},  # over 1 KiB of headers
], ids=["count", "bytes"])
def test_too_many_or_too_large_headers_get_431(llmtap, headers):
    pipeline = llmtap({"limits": {"max_header_count": 16, "max_header_bytes": 1024}})
    flow = pipeline.call(headers=headers)
    status, error = refusal(flow)
    assert status == 431 and error["type"] == "llmtap_headers_too_large"
    assert "limits.max_header_count, max_header_bytes" in error["message"]
    assert pipeline.provider_requests == []
    assert_logged_without_body(pipeline, flow, 431)


def test_headers_within_the_limits_go_through(llmtap):
    pipeline = llmtap({"limits": {"max_header_count": 16, "max_header_bytes": 1024}})
    flow = pipeline.call(headers={f"x-extra-{i}": "v" for i in range(14)})  # 14 + 2 headers: exactly 16
    assert flow.response.status_code == 200 and len(pipeline.provider_requests) == 1


def test_a_body_declared_over_the_limit_gets_413_naming_the_limit(llmtap):
    pipeline = llmtap({"limits": {"max_request_bytes": "64 KiB"}})
    flow = pipeline.call(chat_body("x" * 100_000))
    status, error = refusal(flow)
    assert status == 413 and error["type"] == "llmtap_request_too_large" and "65,536 bytes" in error["message"]
    assert pipeline.provider_requests == []
    assert_logged_without_body(pipeline, flow, 413)


def test_a_compressed_body_that_grows_past_the_limit_gets_413(llmtap):
    pipeline = llmtap({"limits": {"max_request_bytes": "64 KiB"}})
    bomb = gzip.compress(json.dumps(chat_body("a" * 1_000_000)).encode())
    assert len(bomb) < 64 * 1024  # the declared length is within the limit; only the decoded body is not
    flow = pipeline.call(raw_body=bomb, headers={"content-encoding": "gzip"})
    status, error = refusal(flow)
    assert status == 413 and "max_request_bytes" in error["message"]
    assert pipeline.provider_requests == []
    assert_logged_without_body(pipeline, flow, 413)


def test_a_compressed_body_within_the_limit_is_read(llmtap):
    pipeline = llmtap()
    flow = pipeline.call(raw_body=gzip.compress(json.dumps(chat_body("zipped")).encode()),
                         headers={"content-encoding": "gzip"})
    assert flow.response.status_code == 200
    assert json.loads(flow.response.content)["choices"][0]["message"]["content"] == "Mock reply to: zipped"


def test_an_unknown_content_encoding_gets_415(llmtap):
    pipeline = llmtap()
    status, error = refusal(pipeline.call(raw_body=b"\x00\x01", headers={"content-encoding": "lzma"}))
    assert status == 415 and error["type"] == "llmtap_unsupported_encoding" and "lzma" in error["message"]
    assert pipeline.provider_requests == []


def test_a_malformed_helicone_header_gets_400_naming_it(llmtap):
    pipeline = llmtap()
    flow = pipeline.call(headers={"Helicone-RateLimit-Policy": "10;w=soon", "Helicone-User-Id": "kept"})
    status, error = refusal(flow)
    assert status == 400 and error["type"] == "llmtap_invalid_header"
    assert error["header"] == "Helicone-RateLimit-Policy"
    assert pipeline.provider_requests == []
    (row,) = pipeline.rows()
    assert row["status"] == 400 and row["user_id"] == "kept"  # the row keeps its tags


def test_a_repeated_request_id_gets_409(llmtap):
    pipeline = llmtap()
    request_id = str(uuid.uuid4())
    first = pipeline.call(headers={"Helicone-Request-Id": request_id})
    assert first.response.status_code == 200 and first.response.headers["helicone-id"] == request_id
    again = pipeline.call(headers={"Helicone-Request-Id": request_id})
    status, error = refusal(again)
    assert status == 409 and error["type"] == "llmtap_duplicate_request_id" and error["header"] == "Helicone-Request-Id"
    assert again.response.headers["helicone-id"] != request_id and len(pipeline.provider_requests) == 1
    assert [r["status"] for r in pipeline.rows()] == [200, 409]


def test_without_a_gateway_key_a_call_gets_401_and_no_helicone_header_leaves(llmtap):
    pipeline = llmtap({"gateway": {"keys": [{"owner": "ci", "key": "gk-unit"}]}})
    status, error = refusal(pipeline.call(headers={"Authorization": "Bearer not-a-key"}))
    assert status == 401 and error["type"] == "llmtap_unauthorized" and pipeline.provider_requests == []
    answered = pipeline.call(headers={"Authorization": "Bearer gk-unit", "Helicone-Property-Team": "a"})
    assert answered.response.status_code == 200
    (sent,) = pipeline.provider_requests
    assert sent.headers["authorization"] == "Bearer sk-llmtap-unit-openai-key"  # llmtap's own provider key
    assert not [name for name in sent.headers if name.lower().startswith("helicone-")]
    assert [r["key_owner"] for r in pipeline.rows()] == [None, "ci"]


@pytest.mark.parametrize("name", ["$decimal", "$datetime"])
def test_a_property_named_like_the_spools_tags_is_logged_as_sent(llmtap, name):
    """The spool tags a Decimal or datetime as a one-key object ({"$decimal": ...}); a property map of one such key,
    sent by a client, is the client's text all the same, and the calls after it are logged too."""
    pipeline = llmtap()
    assert pipeline.call(headers={f"Helicone-Property-{name}": "not a number or a date"}).response.status_code == 200
    assert pipeline.call(headers={f"Helicone-Property-{name}": "1.5"}).response.status_code == 200
    assert pipeline.call().response.status_code == 200
    assert [row["properties"] for row in pipeline.rows()] == [{name: "not a number or a date"}, {name: "1.5"}, {}]


def test_the_unit_tiers_rows_come_in_call_order_while_the_test_clock_stands_still(llmtap):
    """Tests here read `rows()` in call order ([200, 409] above); calls made without moving the wall clock share one
    `created_at`, and DuckDB orders ties as it likes."""
    pipeline = llmtap()
    for number in range(40):
        pipeline.call(headers={"Helicone-Property-Number": str(number)})
    assert [int(row["properties"]["number"]) for row in pipeline.rows()] == list(range(40))
