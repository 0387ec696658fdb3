"""llmtap's own error answers, in one process: the shape each wire format's clients parse, and an unreachable
provider answered in JSON from the `error` hook (upstream_failure.py)."""

from __future__ import annotations

import json

import pytest
from llmtap.unreachable import connection_error_text, upstream_unreachable_message, why_unreachable
from llmtap.upstream_failure import UpstreamFailure
from llmtap.wire.anthropic_messages import AnthropicMessages
from llmtap.wire.openai_chat import OpenAIChat
from llmtap.wire.openai_responses import OpenAIResponses

from .conftest import chat_body

REFUSED = "[Errno 111] Connect call failed ('127.0.0.1', 9)"


class Timer:
    """What the silence timer's `call_later` returns, in a test."""

    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@pytest.mark.parametrize("wire", [OpenAIChat(), OpenAIResponses()])
def test_openai_formats_answer_in_openais_error_shape(wire):
    assert wire.error_body(404, "llmtap_unknown_endpoint", "no such endpoint", header="x") == {
        "error": {"type": "llmtap_unknown_endpoint", "message": "no such endpoint", "header": "x"}}


@pytest.mark.parametrize(("status", "anthropic_type"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (404, "not_found_error"),
    (409, "invalid_request_error"), (413, "request_too_large"), (429, "rate_limit_error"), (502, "api_error"),
    (503, "overloaded_error"),
])
def test_anthropic_messages_answers_in_anthropics_shape_keeping_llmtaps_type(status, anthropic_type):
    assert AnthropicMessages().error_body(status, "llmtap_x", "why") == {
        "type": "error", "error": {"type": anthropic_type, "message": "why", "llmtap_type": "llmtap_x"}}


@pytest.mark.parametrize(("error", "reason"), [
    (REFUSED, "connection refused"),
    ("ClientConnectorError: [Errno 111] Cannot connect to host 127.0.0.1:9 ssl:default [Connect call failed]",
     "connection refused"),
    # asyncio says "Connect call failed" and aiohttp "ssl:default" whatever the cause: the errno decides
    ("[Errno 110] Connect call failed ('10.0.0.1', 443)", "timed out"),
    ("[Errno 113] Connect call failed ('10.0.0.1', 443)", "network unreachable"),
    ("ClientConnectorError: [Errno 101] Cannot connect to host x:443 ssl:default [Network is unreachable]",
     "network unreachable"),
    ("ClientOSError: [Errno 104] Cannot connect to host x:443 ssl:default [Connection reset by peer]",
     "the connection closed before an answer"),
    ("[Errno -2] Name or service not known", "DNS lookup failed"),
    ("Cannot connect to host nowhere.invalid:443 ssl:default [Name or service not known]", "DNS lookup failed"),
    ("TLS handshake failed: [SSL: WRONG_VERSION_NUMBER] wrong version number", "TLS handshake failed"),
    ("TimeoutError", "timed out"),
    ("ServerDisconnectedError: Server disconnected", "the connection closed before an answer"),
])
def test_why_a_provider_was_unreachable_is_said_plainly_with_the_original_words(error, reason):
    assert why_unreachable(error) == f"{reason} ({error})"


def test_the_relays_connection_errors_keep_their_errno_for_the_reason():
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 9)")
    assert connection_error_text(refused) == "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 9)"
    assert connection_error_text(TimeoutError()) == "TimeoutError"


def test_an_unreachable_message_names_provider_upstream_and_reason():
    assert upstream_unreachable_message("openai", "https://api.openai.com:443", why_unreachable(REFUSED)) == (
        f"llmtap could not reach openai at https://api.openai.com:443: connection refused ({REFUSED})")


@pytest.mark.parametrize(("path", "body", "error_of"), [
    ("/v1/chat/completions", chat_body(), lambda answer: answer["error"]),
    ("/v1/messages", chat_body(model="claude-3-5-haiku-latest", max_tokens=5), lambda answer: answer["error"]),
])
def test_an_unreachable_provider_is_answered_in_json_and_logged_as_such(llmtap, path, body, error_of):
    pipeline = llmtap()
    flow = pipeline.call(body, path=path, upstream_error=REFUSED)

    assert flow.response is not None and flow.response.status_code == 502
    error = error_of(json.loads(flow.response.content or b""))
    expected = f"llmtap could not reach {'anthropic' if 'messages' in path else 'openai'} at http://127.0.0.1:9: "
    assert error["message"] == expected + f"connection refused ({REFUSED})"
    assert "llmtap_upstream_unreachable" in (error["type"], error.get("llmtap_type"))
    (row,) = pipeline.rows()
    assert row["status"] == 502 and row["error"] == f"llmtap_upstream_unreachable: {error['message']}"
    assert flow.response.headers["helicone-id"] == row["request_id"]


def test_the_silence_timer_runs_on_the_upstream_timeout_and_claims_nothing_it_did_not_do(llmtap):
    """The timer is set to `retries.upstream_timeout_s`; here it fires at once (no sleep). With no connection of its
    own to close (a test has no proxy server), the call ends as its upstream error says, not as "timed out".
    Closing real connections, open or still connecting, is tested end to end (tests/test_errors.py)."""
    pipeline = llmtap({"retries": {"upstream_timeout_s": 30}})
    failure = next(a for a in pipeline.addons if isinstance(a, UpstreamFailure))
    timers_s: list[float] = []

    def fire_at_once(delay_s, fire):
        timers_s.append(delay_s)
        fire()
        return Timer()

    failure._call_later = fire_at_once
    flow = pipeline.call(upstream_error="Server disconnected")

    assert timers_s == [30]
    error = json.loads(flow.response.content or b"")["error"]  # type: ignore[union-attr]
    assert error["message"] == ("llmtap could not reach openai at http://127.0.0.1:9: "
                                "the connection closed before an answer (Server disconnected)")
    assert pipeline.rows()[0]["status"] == 502


def test_an_answer_in_time_stops_the_silence_timer(llmtap):
    pipeline = llmtap()
    failure = next(a for a in pipeline.addons if isinstance(a, UpstreamFailure))
    timer = Timer()
    failure._call_later = lambda delay_s, fire: timer
    flow = pipeline.call()

    assert flow.response is not None and flow.response.status_code == 200 and timer.cancelled
