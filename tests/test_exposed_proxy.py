"""A proxy listener reachable from other machines asks every client for a gateway key — with no code change in the
app: the key is the password in its proxy URL — and forwards plain HTTP only to provider hosts; on loopback, as before.

(The exposed listener binds 0.0.0.0 for a few seconds; the test talks to it over 127.0.0.1 only.)
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml
from llmtap.config import load_config
from llmtap.exposed_proxy import ExposedProxyGuard
from llmtap.refusals import RefusalSink
from llmtap.settings import Settings
from mitmproxy.test import tflow

from conftest import Gateway, curl, start_gateway

GATEWAY_KEY = "llmtap-exposed-test-key"


@pytest.fixture(scope="module")
def exposed_gateway(tmp_path_factory, mock_provider):
    """A gateway whose proxy listener is bound to every interface (gateway keys set, as config then requires)."""
    gw = start_gateway(tmp_path_factory.mktemp("exposed"), mock_provider,
                       {"gateway": {"keys": [{"owner": "tests", "key": GATEWAY_KEY}]}}, proxy_bind="0.0.0.0")
    yield gw
    gw.stop()


def keyed_proxy(gateway: Gateway, key: str = GATEWAY_KEY) -> str:
    """The proxy URL with a gateway key as its password, as a client of an exposed listener sets HTTPS_PROXY."""
    return f"http://me:{key}@127.0.0.1:{gateway.proxy_port}"


def received(mock, path: str) -> bool:
    return any(r["path"] == path for r in mock.requests())


def test_an_exposed_proxy_refuses_plain_http_to_other_hosts(exposed_gateway, mock_provider):
    probe = "/v1/models?probe=exposed-proxy"
    result = curl("--proxy", keyed_proxy(exposed_gateway), mock_provider.url + probe)
    assert result.status == 403
    error = result.json()["error"]
    assert error["type"] == "llmtap_host_not_allowed" and error["host"] == "127.0.0.1"
    assert "api.openai.com" in error["message"]
    assert not received(mock_provider, probe)


def test_an_exposed_proxy_still_serves_provider_hosts(exposed_gateway, mock_provider):
    plain = curl("--proxy", keyed_proxy(exposed_gateway), "http://api.openai.com/v1/chat/completions",
                 "-H", "authorization: Bearer sk-client-own-key", "-H", "content-type: application/json",
                 "-d", '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "plain via exposed"}]}')
    assert plain.status == 200, plain.body
    assert plain.json()["choices"][0]["message"]["content"] == "Mock reply to: plain via exposed"
    tls = curl("--proxy", keyed_proxy(exposed_gateway), "--cacert", str(exposed_gateway.ca_cert),
               "https://api.openai.com/v1/chat/completions",
               "-H", "authorization: Bearer sk-client-own-key", "-H", "content-type: application/json",
               "-d", '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "tls via exposed"}]}')
    assert tls.status == 200, tls.body
    rows = exposed_gateway.rows("way = 'proxy'", count=2)
    assert [r["status"] for r in rows] == [200, 200]


def test_a_loopback_proxy_forwards_plain_http_as_before(gateway, mock_provider):
    probe = "/v1/models?probe=loopback-proxy"
    result = curl("--proxy", gateway.proxy_url, mock_provider.url + probe)
    assert result.status == 200 and received(mock_provider, probe)


def guard(tmp_path, listen_proxy: str) -> ExposedProxyGuard:
    config_path = tmp_path / "llmtap.yaml"
    config_path.write_text(yaml.safe_dump({"listen": {"proxy": listen_proxy},
                                           "gateway": {"keys": [{"owner": "tests", "key": GATEWAY_KEY}]}}))
    settings = Settings()
    settings.config = load_config(config_path)
    return ExposedProxyGuard(settings, RefusalSink())


@pytest.mark.parametrize("host, refused", [("example.com", True), ("api.openai.com", False),
                                           ("API.OPENAI.COM", False), ("llmtap.gateway", True)])
def test_exposed_guard_refuses_exactly_the_hosts_that_are_not_providers(tmp_path, host, refused):
    flow = tflow.tflow()
    flow.request.host = host
    guard(tmp_path, "0.0.0.0:8080").requestheaders(flow)
    assert (flow.response is not None and flow.response.status_code == 403) is refused


def test_loopback_guard_refuses_nothing(tmp_path):
    flow = tflow.tflow()
    flow.request.host = "example.com"
    guard(tmp_path, "127.0.0.1:8080").requestheaders(flow)
    assert flow.response is None


CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "through an exposed proxy"}]})


def call_through(gateway: Gateway, proxy_url: str):
    return curl("--proxy", proxy_url, "--cacert", str(gateway.ca_cert), "https://api.openai.com/v1/chat/completions",
                "-H", "Authorization: Bearer sk-client-own-key", "-H", "Content-Type: application/json", "-d", CHAT)


def test_an_exposed_proxy_refuses_a_client_without_a_gateway_key_with_407(exposed_gateway, mock_provider):
    with pytest.raises(subprocess.CalledProcessError):  # curl fails the CONNECT: no tunnel is opened
        call_through(exposed_gateway, exposed_gateway.proxy_url)
    result = curl("--proxy", exposed_gateway.proxy_url, "http://api.openai.com/v1/chat/completions", "-d", CHAT)

    assert result.status == 407 and "proxy-authenticate" in result.headers
    assert result.json()["error"]["type"] == "llmtap_proxy_auth_required"
    assert mock_provider.requests() == []
    row = exposed_gateway.row(result.headers["helicone-id"])  # a refused call to a provider host is still logged
    assert row["status"] == 407 and row["request_body"] is None


def test_an_exposed_proxy_refuses_a_wrong_gateway_key(exposed_gateway, mock_provider):
    result = curl("--proxy", keyed_proxy(exposed_gateway, "not-the-key"), "http://api.openai.com/v1/chat/completions",
                  "-d", CHAT)

    assert result.status == 407
    assert mock_provider.requests() == []


def test_a_key_holder_keeps_its_own_provider_key_and_is_the_calls_key_owner(exposed_gateway, mock_provider):
    result = call_through(exposed_gateway, keyed_proxy(exposed_gateway))

    assert result.status == 200
    (received_call,) = mock_provider.requests()
    assert received_call["headers"]["authorization"] == "Bearer sk-client-own-key"
    assert "proxy-authorization" not in received_call["headers"]
    row = exposed_gateway.row(result.headers["helicone-id"])
    assert row["way"] == "proxy" and row["key_owner"] == "tests" and row["status"] == 200
