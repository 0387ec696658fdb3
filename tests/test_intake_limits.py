"""What a call may cost llmtap before it is let in (issue 8): bounded headers and bodies, the gateway key checked
before the body is read, header case twins, repeated request ids, and rows that keep at most a capped body.

Every case goes through the real gateway process; the refused calls are still logged.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import http.client
import json
import time
import uuid
from pathlib import Path

import openai
import pytest

from conftest import curl, shared_gateway

GATEWAY_KEY = "gk-intake-limits-0123456789"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


def post(gateway, body: bytes, headers: dict[str, str], path: str = "/v1/chat/completions",
         header_list: list[tuple[str, str]] | None = None) -> tuple[int, dict[str, str], dict]:
    """A raw HTTP/1.1 POST to the gateway listener: status, headers (lower-cased) and the JSON answer."""
    connection = http.client.HTTPConnection("127.0.0.1", gateway.gateway_port, timeout=60)
    try:
        connection.putrequest("POST", path)
        for name, value in [*headers.items(), *(header_list or [])]:
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(response.read())
    finally:
        connection.close()


def call_through_proxy(gateway, *headers: str):
    """curl through the proxy way in to OpenAI, with a Helicone-Auth that must never reach the provider."""
    extra = [arg for header in headers for arg in ("-H", header)]
    return curl("--proxy", gateway.proxy_url, "--cacert", str(gateway.ca_cert),
                "https://api.openai.com/v1/chat/completions", "-H", "Authorization: Bearer sk-twins",
                "-H", "Content-Type: application/json", "-H", "Helicone-Auth: Bearer gk-secret-twin", *extra,
                "-d", json.dumps(CHAT))


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


keyed_gateway = shared_gateway({"gateway": {"keys": [{"owner": "ci", "key": GATEWAY_KEY}]}})
# Small limits, for the tests of what is refused or cut: 4 MiB a request body, 4 KiB of each body in a row.
limited_gateway = shared_gateway({"limits": {"max_request_bytes": "4 MiB", "max_logged_body_bytes": "4 KiB"}})


def test_a_header_flood_gets_431_at_once_and_never_holds_up_other_calls(gateway):
    flood = [(f"Helicone-Property-P{i}", "x") for i in range(10_000)]
    answers: dict[str, float] = {}

    def flood_call():
        status, headers, body = post(gateway, json.dumps(CHAT).encode(), {"Content-Type": "application/json"}, header_list=flood)
        answers["flood"] = status
        return headers, body

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        flooding = pool.submit(flood_call)
        started = time.monotonic()
        client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "beside a flood"}])
        beside_s = time.monotonic() - started
        headers, body = flooding.result()

    assert answers["flood"] == 431
    assert body["error"]["type"] == "llmtap_headers_too_large"
    assert beside_s < 3, f"a normal call took {beside_s:.1f} s beside a 10,000-header request"
    row = gateway.row(headers["helicone-id"])
    assert row["status"] == 431 and row["request_body"] is None and row["attempts"] == 0


def test_a_caller_without_a_key_gets_401_before_its_compressed_body_is_opened(keyed_gateway, mock_provider):
    bomb = gzip.compress(b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"a" * 200_000_000)
    assert len(bomb) < 300_000
    before = resident_kib(keyed_gateway.process.pid)

    status, headers, body = post(keyed_gateway, bomb, {"Content-Type": "application/json", "Content-Encoding": "gzip",
                                                       "Authorization": "Bearer not-a-gateway-key"})

    assert status == 401 and body["error"]["type"] == "llmtap_unauthorized"
    assert resident_kib(keyed_gateway.process.pid) - before < 50_000, "the refused body was decompressed"
    row = keyed_gateway.row(headers["helicone-id"])
    assert row["status"] == 401 and row["request_body"] is None and row["key_owner"] is None
    assert mock_provider.requests() == []


def test_a_compressed_body_that_grows_past_the_limit_gets_413_and_is_never_stored(keyed_gateway, mock_provider):
    bomb = gzip.compress(b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"a" * 200_000_000)
    before = resident_kib(keyed_gateway.process.pid)

    status, headers, body = post(keyed_gateway, bomb, {"Content-Type": "application/json", "Content-Encoding": "gzip",
                                                       "Authorization": f"Bearer {GATEWAY_KEY}"})

    assert status == 413 and body["error"]["type"] == "llmtap_request_too_large"
    assert "max_request_bytes" in body["error"]["message"]
    assert resident_kib(keyed_gateway.process.pid) - before < 150_000, "the body was decompressed without a bound"
    row = keyed_gateway.row(headers["helicone-id"])
    assert row["status"] == 413 and row["request_body"] is None and row["key_owner"] == "ci"
    assert mock_provider.requests() == []


def test_a_compressed_body_within_the_limit_is_read_and_forwarded(keyed_gateway):
    body = gzip.compress(json.dumps({**CHAT, "messages": [{"role": "user", "content": "zipped hello"}]}).encode())

    status, headers, answer = post(keyed_gateway, body, {"Content-Type": "application/json", "Content-Encoding": "gzip",
                                                         "Authorization": f"Bearer {GATEWAY_KEY}"})

    assert status == 200 and answer["choices"][0]["message"]["content"] == "Mock reply to: zipped hello"
    row = keyed_gateway.row(headers["helicone-id"])
    assert row["model_requested"] == "gpt-4o-mini" and "zipped hello" in row["request_body"]


def test_a_body_declared_over_the_limit_gets_413_with_the_limit_named(limited_gateway, mock_provider):
    gateway = limited_gateway
    big = json.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 5_000_000}]}).encode()

    status, headers, body = post(gateway, big, {"Content-Type": "application/json"})

    assert status == 413 and "4,194,304 bytes" in body["error"]["message"]
    assert gateway.row(headers["helicone-id"])["request_body"] is None
    assert mock_provider.requests() == []


def test_an_unknown_content_encoding_gets_415(gateway):
    status, headers, body = post(gateway, b"\x00\x01", {"Content-Type": "application/json", "Content-Encoding": "lzma"})

    assert status == 415 and "lzma" in body["error"]["message"]
    assert gateway.row(headers["helicone-id"])["status"] == 415


def test_header_case_twins_with_different_values_get_400_and_nothing_reaches_the_provider(gateway, mock_provider):
    result = call_through_proxy(gateway, "Helicone-Property-Dup: a", "helicone-property-dup: b")

    assert result.status == 400 and result.json()["error"]["header"].lower() == "helicone-property-dup"
    assert mock_provider.requests() == []
    row = gateway.row(result.headers["helicone-id"])
    assert row["status"] == 400 and row["way"] == "proxy"


def test_header_case_twins_that_agree_are_one_tag_and_no_helicone_header_reaches_the_provider(gateway, mock_provider):
    result = call_through_proxy(gateway, "Helicone-Property-Twin: same", "helicone-property-TWIN: same")

    assert result.status == 200
    (received,) = mock_provider.requests()
    assert not [name for name in received["headers"] if name.startswith("helicone-")]
    assert gateway.row(result.headers["helicone-id"])["properties"] == {"twin": "same"}


def test_a_repeated_request_id_is_refused_with_409_and_the_first_row_stays_the_only_one(gateway):
    request_id = str(uuid.uuid4())
    client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
    first = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "first"}],
        extra_headers={"Helicone-Request-Id": request_id})
    assert first.headers["helicone-id"] == request_id

    with pytest.raises(openai.ConflictError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}],
                                       extra_headers={"Helicone-Request-Id": request_id})

    assert caught.value.body["type"] == "llmtap_duplicate_request_id"
    refused_id = caught.value.response.headers["helicone-id"]
    assert refused_id != request_id and gateway.row(refused_id)["status"] == 409
    assert len(gateway.rows("request_id = ?", [request_id])) == 1


def test_a_row_keeps_at_most_the_logged_body_cap_and_says_it_was_cut(limited_gateway):
    gateway = limited_gateway
    client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "long " * 10_000}])

    assert raw.parse().choices[0].message.content.startswith("Mock reply to: long")
    row = gateway.row(raw.headers["helicone-id"])
    stored = json.loads(row["request_body"])
    assert stored["llmtap_truncated"] is True and stored["bytes"] > 50_000 and len(stored["head"]) == 4096
    assert row["input_tokens"] > 0 and row["cost_usd"] > 0  # usage and cost are read from the whole call


def stream_post(gateway, headers: dict[str, str], total_bytes: int, chunked: bool) -> tuple[int, dict[str, str], dict]:
    """POST `total_bytes` of a JSON-looking body, sent 1 MiB at a time (never held whole by the client either)."""
    chunk = b"a" * (1024 * 1024)

    def body():
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(total_bytes // len(chunk)):
            yield chunk
        yield b'"}]}'

    connection = http.client.HTTPConnection("127.0.0.1", gateway.gateway_port, timeout=120)
    try:
        connection.putrequest("POST", "/v1/chat/completions")
        for name, value in headers.items():
            connection.putheader(name, value)
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for part in body():
                connection.send(b"%x\r\n%s\r\n" % (len(part), part))
            connection.send(b"0\r\n\r\n")
        else:
            connection.putheader("Content-Length", str(sum(len(part) for part in body())))
            connection.endheaders()
            for part in body():
                connection.send(part)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(response.read())
    finally:
        connection.close()


def test_a_caller_without_a_key_cannot_make_llmtap_hold_its_large_body(keyed_gateway, mock_provider):
    before = resident_kib(keyed_gateway.process.pid)

    status, headers, body = stream_post(keyed_gateway, {"Content-Type": "application/json"}, 200 * 1024 * 1024,
                                        chunked=False)

    assert status == 401 and body["error"]["type"] == "llmtap_unauthorized"
    assert resident_kib(keyed_gateway.process.pid) - before < 50_000, "the refused body was held in memory"
    assert keyed_gateway.row(headers["helicone-id"])["request_body"] is None
    assert mock_provider.requests() == []


def test_a_chunked_body_that_grows_past_the_limit_gets_413_and_is_never_held(limited_gateway, mock_provider):
    gateway = limited_gateway
    before = resident_kib(gateway.process.pid)

    status, headers, body = stream_post(gateway, {"Content-Type": "application/json"}, 200 * 1024 * 1024, chunked=True)

    assert status == 413 and "4,194,304 bytes" in body["error"]["message"]
    assert resident_kib(gateway.process.pid) - before < 50_000, "the chunked body was held in memory"
    row = gateway.row(headers["helicone-id"])
    assert row["status"] == 413 and row["request_body"] is None
    assert mock_provider.requests() == []

    status, headers, body = stream_post(gateway, {"Content-Type": "application/json"}, 2 * 1024 * 1024, chunked=True)
    assert status == 200, "a chunked body within the limit goes to the provider as before"
    assert gateway.row(headers["helicone-id"])["model_requested"] == "gpt-4o-mini"


@pytest.mark.parametrize("http_version", ["--http1.1", "--http2"])  # HTTP/2 sends no length at all here
def test_a_body_of_unknown_length_within_the_limit_keeps_every_header_on_the_proxy_way_in(
        gateway, mock_provider, tmp_path, http_version):
    body = tmp_path / "body.json"
    body.write_text(json.dumps({**CHAT, "messages": [{"role": "user", "content": "chunked through the proxy"}]}))

    result = curl("--proxy", gateway.proxy_url, "--cacert", str(gateway.ca_cert), http_version,
                  "https://api.openai.com/v1/chat/completions", "-H", "Authorization: Bearer sk-chunked-client",
                  "-H", "Content-Type: application/json", "-H", "Transfer-Encoding: chunked",
                  "--data-binary", f"@{body}")

    assert result.status == 200
    (received,) = mock_provider.requests()
    assert received["headers"]["authorization"] == "Bearer sk-chunked-client"
    assert received["body"]["messages"][0]["content"] == "chunked through the proxy"
