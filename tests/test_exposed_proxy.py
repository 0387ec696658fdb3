"""A proxy listener reachable from other machines forwards plain HTTP only to provider hosts; on loopback, as before.

(The exposed listener binds 0.0.0.0 for a few seconds; the test talks to it over 127.0.0.1 only.)
"""

from __future__ import annotations

import os

import pytest
import yaml
from mitmproxy.test import tflow

from llmtap.config import load_config
from llmtap.exposed_proxy import ExposedProxyGuard
from llmtap.settings import Settings

from conftest import ANTHROPIC_ENV_KEY, OPENAI_ENV_KEY, Gateway, curl, free_port

GATEWAY_KEY = "llmtap-exposed-test-key"


@pytest.fixture(scope="module")
def exposed_gateway(tmp_path_factory, mock_provider):
    """A gateway whose proxy listener is bound to every interface (gateway keys set, as config then requires)."""
    workdir = tmp_path_factory.mktemp("exposed")
    proxy_port, gateway_port = free_port(), free_port()
    config_path = workdir / "llmtap.yaml"
    config_path.write_text(yaml.safe_dump({
        "listen": {"proxy": f"0.0.0.0:{proxy_port}", "gateway": f"127.0.0.1:{gateway_port}"},
        "gateway": {"keys": [{"owner": "tests", "key": GATEWAY_KEY}]},
        "certs": "certs", "storage": {"path": "data/llmtap.duckdb"},
        "providers": {"openai": {"upstream": mock_provider.url}, "anthropic": {"upstream": mock_provider.url}},
    }))
    env = {**os.environ, "OPENAI_API_KEY": OPENAI_ENV_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_ENV_KEY}
    gw = Gateway(None, workdir, config_path, proxy_port, gateway_port, workdir / "data" / "llmtap.duckdb",
                 workdir / "gateway.log", env)
    gw.launch()
    yield gw
    gw.stop()


def received(mock, path: str) -> bool:
    return any(r["path"] == path for r in mock.requests())


def test_an_exposed_proxy_refuses_plain_http_to_other_hosts(exposed_gateway, mock_provider):
    probe = "/v1/models?probe=exposed-proxy"
    result = curl("--proxy", exposed_gateway.proxy_url, mock_provider.url + probe)
    assert result.status == 403
    error = result.json()["error"]
    assert error["type"] == "llmtap_host_not_allowed" and error["host"] == "127.0.0.1"
    assert "api.openai.com" in error["message"]
    assert not received(mock_provider, probe)


def test_an_exposed_proxy_still_serves_provider_hosts(exposed_gateway, mock_provider):
    plain = curl("--proxy", exposed_gateway.proxy_url, "http://api.openai.com/v1/chat/completions",
                 "-H", "authorization: Bearer sk-client-own-key", "-H", "content-type: application/json",
                 "-d", '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "plain via exposed"}]}')
    assert plain.status == 200, plain.body
    assert plain.json()["choices"][0]["message"]["content"] == "Mock reply to: plain via exposed"
    tls = curl("--proxy", exposed_gateway.proxy_url, "--cacert", str(exposed_gateway.ca_cert),
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
    return ExposedProxyGuard(settings)


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
