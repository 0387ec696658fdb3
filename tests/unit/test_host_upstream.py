"""`host` is where the client sent a call, as it wrote it; `upstream` is where the call really went."""

from __future__ import annotations

from llmtap.callstate import CallState
from llmtap.intake import client_host
from llmtap.record import AttemptRecord
from llmtap.recorder import upstream_origin
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test.tflow import tflow


def gateway_flow(host_header: str | None):
    flow = tflow()
    flow.client_conn.proxy_mode = ProxyMode.parse("reverse:http://llmtap.gateway@127.0.0.1:8787")
    flow.client_conn.sockname = ("127.0.0.1", 8787)
    flow.request.scheme = "http"
    if host_header is None:
        flow.request.headers.pop("host", None)
        flow.request.authority = ""
    else:
        flow.request.headers["host"] = host_header
    return flow


def test_the_gateway_host_is_the_address_the_client_wrote():
    assert client_host(gateway_flow("127.0.0.1:8787")) == "127.0.0.1:8787"
    assert client_host(gateway_flow("localhost:8787")) == "localhost:8787"
    assert client_host(gateway_flow(None)) == "127.0.0.1:8787"  # no Host header: the address it connected to


def test_a_proxy_host_leaves_out_the_default_port():
    flow = tflow()
    flow.request.scheme, flow.request.port = "https", 443
    flow.request.headers["host"] = "api.openai.com:443"
    assert client_host(flow) == "api.openai.com"
    flow.request.headers["host"] = "api.openai.com"
    assert client_host(flow) == "api.openai.com"


def test_upstream_is_the_endpoint_that_answered():
    flow, state = tflow(resp=True), CallState(way="gateway")
    flow.request.scheme, flow.request.host, flow.request.port = "http", "127.0.0.1", 9000
    assert upstream_origin(flow, state) == "http://127.0.0.1:9000"
    flow.request.scheme, flow.request.host, flow.request.port = "https", "api.openai.com", 443
    assert upstream_origin(flow, state) == "https://api.openai.com"
    # Sent to llmtap's relay, answered after a fallback: where the answer came from, not the relay.
    flow.request.scheme, flow.request.host, flow.request.port = "http", "127.0.0.1", 41234
    state.attempts.log = [AttemptRecord("openai", "gpt-4o", 503), AttemptRecord("anthropic", "claude", 200)]
    state.attempts.answered_url = "https://api.anthropic.com/v1/chat/completions"
    assert upstream_origin(flow, state) == "https://api.anthropic.com"


def test_calls_llmtap_answered_itself_have_no_upstream():
    flow = tflow(resp=True)
    refused = CallState(way="gateway")
    refused.outcome.error = "llmtap_unauthorized: a valid llmtap gateway key is required"
    hit = CallState(way="gateway")
    hit.cache.status = "HIT"
    unanswered = CallState(way="gateway")  # the relay tried, no provider answered, it answered 502 itself
    unanswered.attempts.log = [AttemptRecord("openai", "gpt-4o", None, error="ClientConnectorError")]
    assert [upstream_origin(flow, s) for s in (refused, hit, unanswered)] == [None, None, None]
