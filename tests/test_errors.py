"""Errors a user can act on, end to end: what the official SDKs show of llmtap's own answers (an unreachable provider,
a malformed Helicone header, a body that is not JSON, an unknown endpoint or model), on both ways in, and the row
each call still gets."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import anthropic
import openai
import pytest

from conftest import curl, free_port, shared_gateway

CLOSED_PORT = free_port()  # nothing listens here: a provider llmtap cannot reach
UNREACHABLE = f"http://127.0.0.1:{CLOSED_PORT}"
FAST_RETRY = {"Helicone-Retry-Enabled": "true", "Helicone-Retry-Num": "1", "Helicone-Retry-Min-Timeout": "0",
              "Helicone-Retry-Max-Timeout": "0"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}

gateway = shared_gateway()
unreachable = shared_gateway({"providers": {"openai": {"upstream": UNREACHABLE},
                                            "anthropic": {"upstream": UNREACHABLE}}})


def openai_client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="sk-client", max_retries=0)


def anthropic_client(gw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key="sk-ant-client", max_retries=0)


def run_through_proxy(gw, program: str) -> dict:
    """Run `program` in a fresh Python with only the proxy environment (the app is unchanged); it prints JSON."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(program)], env=gw.proxy_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- an unreachable provider ---

@pytest.mark.parametrize("retry", [{}, FAST_RETRY], ids=["no-retries", "retries"])
def test_unreachable_provider_is_a_json_502_naming_the_upstream_for_the_openai_sdk(unreachable, retry):
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client(unreachable).chat.completions.create(**CHAT, extra_headers=retry)
    error = caught.value
    assert error.status_code == 502 and error.type == "llmtap_upstream_unreachable"
    assert f"llmtap could not reach openai at {UNREACHABLE}: connection refused" in error.message
    row = unreachable.row(error.response.headers["helicone-id"])
    assert row["status"] == 502 and row["way"] == "gateway"
    assert row["error"].startswith(f"llmtap_upstream_unreachable: llmtap could not reach openai at {UNREACHABLE}")
    assert row["attempts"] == (2 if retry else 0) and row["cost_usd"] == 0


def test_an_unreachable_primary_with_a_keyless_fallback_names_the_primarys_failure(unreachable):
    with pytest.raises(openai.InternalServerError) as caught:  # groq has no key here: its fallback is skipped
        openai_client(unreachable).chat.completions.create(
            **CHAT, extra_headers={"Helicone-Fallback-Model": "llama-3.3-70b-versatile"})
    assert f"llmtap could not reach openai at {UNREACHABLE}: connection refused (" in caught.value.message
    row = unreachable.row(caught.value.response.headers["helicone-id"])
    assert [(a["provider"], a["error"].split(":")[0]) for a in row["attempt_log"]] == [
        ("openai", "ClientConnectorError"), ("groq", "skipped")]


@pytest.mark.parametrize("retry", [{}, FAST_RETRY], ids=["no-retries", "retries"])
def test_unreachable_provider_is_a_json_502_in_anthropics_shape_for_the_anthropic_sdk(unreachable, retry):
    with pytest.raises(anthropic.InternalServerError) as caught:
        anthropic_client(unreachable).messages.create(
            model="claude-3-5-haiku-latest", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
            extra_headers=retry)
    error = caught.value
    assert error.status_code == 502
    assert error.body == {"type": "error", "error": {  # Anthropic's shape, which its SDK keeps whole
        "type": "api_error", "llmtap_type": "llmtap_upstream_unreachable", "message": error.body["error"]["message"]}}
    assert f"llmtap could not reach anthropic at {UNREACHABLE}: connection refused" in error.message
    row = unreachable.row(error.response.headers["helicone-id"])
    assert row["status"] == 502 and row["error"].startswith("llmtap_upstream_unreachable: llmtap could not reach")


@pytest.mark.parametrize("retry", [{}, FAST_RETRY], ids=["no-retries", "retries"])
def test_unreachable_provider_through_the_proxy_is_the_same_json_502(unreachable, retry):
    out = run_through_proxy(unreachable, f"""
        import json, openai, anthropic
        result = {{}}
        try:
            openai.OpenAI(api_key="sk-own", max_retries=0).chat.completions.create(
                model="gpt-4o-mini", messages=[{{"role": "user", "content": "hi"}}], extra_headers={retry!r})
        except openai.APIStatusError as e:
            result["openai"] = [e.status_code, e.message, e.type, e.response.headers.get("helicone-id")]
        try:
            anthropic.Anthropic(api_key="sk-ant-own", max_retries=0).messages.create(
                model="claude-3-5-haiku-latest", max_tokens=10, messages=[{{"role": "user", "content": "hi"}}],
                extra_headers={retry!r})
        except anthropic.APIStatusError as e:
            result["anthropic"] = [e.status_code, e.message, e.body["error"]["type"],
                                   e.response.headers.get("helicone-id")]
        print(json.dumps(result))
    """)
    for provider, expected_type in (("openai", "llmtap_upstream_unreachable"), ("anthropic", "api_error")):
        status, message, error_type, request_id = out[provider]
        assert status == 502 and error_type == expected_type
        assert f"llmtap could not reach {provider} at {UNREACHABLE}: connection refused" in message
        row = unreachable.row(request_id)
        assert row["status"] == 502 and row["way"] == "proxy"
        assert row["error"].startswith(f"llmtap_upstream_unreachable: llmtap could not reach {provider}")


def test_the_connection_stays_usable_after_an_unreachable_answer(unreachable, gateway):
    """The JSON answer ends its response properly: a keep-alive client's next call on the same connection works."""
    client = openai_client(unreachable)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(**CHAT)
    assert len(unreachable.rows("status = 502 AND attempts = 0", count=2)) >= 2


def test_an_unresolvable_upstream_says_the_dns_lookup_failed(fresh_gateway):
    gw = fresh_gateway({"providers": {"openai": {"upstream": "http://llmtap-no-such-host.invalid:8080"}}})
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client(gw).chat.completions.create(**CHAT)
    assert ("llmtap could not reach openai at http://llmtap-no-such-host.invalid:8080: DNS lookup failed"
            in caught.value.message)


def test_a_failed_tls_handshake_with_the_upstream_says_so(fresh_gateway, mock_provider):
    https_to_plain_http = mock_provider.url.replace("http://", "https://")  # the mock speaks no TLS
    gw = fresh_gateway({"providers": {"openai": {"upstream": https_to_plain_http}}})
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client(gw).chat.completions.create(**CHAT)
    assert f"llmtap could not reach openai at {https_to_plain_http}: TLS handshake failed" in caught.value.message
    assert gw.row(caught.value.response.headers["helicone-id"])["status"] == 502


short_timeout = shared_gateway({"retries": {"upstream_timeout_s": 0.5}})


@pytest.mark.parametrize("retry", [{}, FAST_RETRY], ids=["no-retries", "retries"])
def test_a_silent_upstream_is_a_json_502_after_the_upstream_timeout(short_timeout, mock_provider, retry):
    mock_provider.script({"hang": True}, {"hang": True})
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client(short_timeout).chat.completions.create(**CHAT, extra_headers=retry)
    assert caught.value.status_code == 502 and caught.value.type == "llmtap_upstream_unreachable"
    assert f"llmtap could not reach openai at {mock_provider.url}: timed out" in caught.value.message
    if not retry:  # mitmproxy sent it: llmtap's silence timer closed the connection
        assert caught.value.message.endswith("timed out: no answer in 0.5 s (retries.upstream_timeout_s)")
    row = short_timeout.row(caught.value.response.headers["helicone-id"])
    assert row["status"] == 502 and "timed out" in row["error"] and row["latency_ms"] >= 500


@pytest.fixture
def unanswered_listener() -> Iterator[str]:
    """A loopback port whose listen queue is full: a connect to it neither succeeds nor fails, it waits (for minutes,
    as the system retries its SYN), as an overloaded or firewalled provider does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):  # fill the queue; later connects hang
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    for sock in [*fillers, listener]:
        sock.close()


def test_an_upstream_that_never_accepts_the_connection_is_a_json_502_after_the_upstream_timeout(
        fresh_gateway, unanswered_listener):
    gw = fresh_gateway({"providers": {"openai": {"upstream": unanswered_listener}},
                        "retries": {"upstream_timeout_s": 1}})
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client(gw).with_options(timeout=30).chat.completions.create(**CHAT)
    assert time.monotonic() - started < 10  # not the system's minutes, nor the client's own 30 s
    assert caught.value.status_code == 502 and caught.value.type == "llmtap_upstream_unreachable"
    assert caught.value.message.endswith(
        f"llmtap could not reach openai at {unanswered_listener}: timed out: no answer in 1 s (retries.upstream_timeout_s)")
    row = gw.row(caught.value.response.headers["helicone-id"])
    assert row["status"] == 502 and "timed out" in row["error"]


# --- answers in the client's SDK shape ---

def test_llmtap_errors_on_the_anthropic_endpoint_are_in_anthropics_shape(gateway):
    with pytest.raises(anthropic.BadRequestError) as caught:
        anthropic_client(gateway).messages.create(model="no-such-model", max_tokens=10,
                                                  messages=[{"role": "user", "content": "hi"}])
    error = caught.value.body["error"]  # type: ignore[index]
    assert error["type"] == "invalid_request_error" and error["llmtap_type"] == "llmtap_unroutable_model"
    assert "model 'no-such-model' matches no provider" in caught.value.message
    row = gateway.row(caught.value.response.headers["helicone-id"])
    assert row["status"] == 400 and row["error"].startswith("llmtap_unroutable_model: model 'no-such-model'")


def test_a_refusal_before_the_body_is_read_is_in_anthropics_shape_too(gateway):
    result = curl(f"{gateway.base_url}/messages", "-H", "Helicone-Retry-Num: lots", "-H", "content-type: application/json",
                  "-d", '{"model": "claude-3-5-haiku-latest", "max_tokens": 5, "messages": []}')
    assert result.status == 400
    assert result.json() == {"type": "error", "error": {
        "type": "invalid_request_error", "llmtap_type": "llmtap_invalid_header", "header": "Helicone-Retry-Num",
        "message": "Helicone-Retry-Num: expected a whole number from 0 to 20, got 'lots'"}}
    assert gateway.row(result.headers["helicone-id"])["status"] == 400


def test_llmtap_errors_on_openai_endpoints_keep_openais_shape(gateway):
    result = curl(f"{gateway.base_url}/images/generations", "-d", "{}")
    assert result.status == 404
    assert result.json()["error"]["type"] == "llmtap_unknown_endpoint"
    assert set(result.json()) == {"error"}


# --- malformed Helicone headers ---

def test_a_malformed_helicone_header_is_named_in_the_message_the_sdk_shows(gateway, mock_provider):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client(gateway).chat.completions.create(**CHAT, extra_headers={"Helicone-Cache-Enabled": "maybe"})
    # The header is named as the client sent it (httpx sends names lower-cased).
    assert str(caught.value) == "Error code: 400 - helicone-cache-enabled: expected true or false, got 'maybe'"
    row = gateway.row(caught.value.response.headers["helicone-id"])
    assert row["status"] == 400
    assert row["error"] == "llmtap_invalid_header: helicone-cache-enabled: expected true or false, got 'maybe'"
    assert mock_provider.requests() == []


@pytest.mark.parametrize("headers", [
    ["-H", "Helicone-User-Id: alice", "-H", "Helicone-Property-UserId: bob"],
    ["-H", "Helicone-Retry-Num: 1", "-H", "helicone-retry-num: 2"],
], ids=["two-spellings", "sent-twice"])
def test_conflicting_values_of_one_header_are_a_400(gateway, mock_provider, headers):
    result = curl(f"{gateway.base_url}/chat/completions", *headers, "-d", json.dumps(CHAT))
    assert result.status == 400 and result.json()["error"]["type"] == "llmtap_invalid_header"
    assert "alice" in result.json()["error"]["message"] or "twice" in result.json()["error"]["message"]
    assert gateway.row(result.headers["helicone-id"])["status"] == 400
    assert mock_provider.requests() == []


def test_unknown_helicone_headers_are_removed_and_noted_on_the_row(gateway, mock_provider):
    raw = openai_client(gateway).chat.completions.with_raw_response.create(**CHAT, extra_headers={
        "Helicone-Cache-Enabeld": "true", "Helicone-Posthog-Key": "phc", "Helicone-User-Id": "alice"})
    assert raw.status_code == 200
    row = gateway.row(raw.headers["helicone-id"])
    assert row["notes"] == ["ignored unknown header helicone-cache-enabeld",  # as sent: httpx lower-cases names
                            "ignored unknown header helicone-posthog-key"]
    assert row["user_id"] == "alice" and row["cache_status"] is None
    assert not [name for name in mock_provider.requests()[-1]["headers"] if name.startswith("helicone-")]


# --- bodies that are not JSON ---

@pytest.mark.parametrize(("body", "message"), [
    (b'{"model": "caf\xe9"}', "the request body is not UTF-8: byte 0xe9 at byte 14 (invalid continuation byte)"),
    (b'{"model": "gpt-4o-mini", "messages": [', "the request body is cut off: its JSON ends at byte 38 before"),
    (b'{"model": "gpt-4o-mini",\n "stream": tru}',
     "the request body is not valid JSON: Expecting value at line 2 column 12 (byte 36)"),
    (b'[{"model": "gpt-4o-mini"}]', "the request body must be a JSON object, got a list"),
    (b'"hello"', "the request body must be a JSON object, got a string"),
    (b"[" * 5000 + b"]" * 5000, "the request body's JSON is nested 5,000 levels deep"),
], ids=["not-utf8", "cut-off", "invalid", "list", "string", "too-deep"])
def test_a_body_that_is_not_a_json_object_says_why(gateway, mock_provider, tmp_path, body, message):
    sent = tmp_path / "body"
    sent.write_bytes(body)
    result = curl(f"{gateway.base_url}/chat/completions", "-H", "content-type: application/json",
                  "--data-binary", f"@{sent}")
    assert result.status == 400 and result.json()["error"]["type"] == "llmtap_invalid_body"
    assert result.json()["error"]["message"].startswith(message)
    row = gateway.row(result.headers["helicone-id"])
    assert row["status"] == 400 and row["error"].startswith(f"llmtap_invalid_body: {message}")
    assert mock_provider.requests() == []
