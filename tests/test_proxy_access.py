"""A proxy listener other machines can reach asks every client for a gateway key, with no code change in the app:
the key is the password in its proxy URL. (The listener binds 0.0.0.0; the tests reach it on loopback only.)"""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import curl

GATEWAY_KEY = "gk-proxy-access-0123456789"
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "through an exposed proxy"}]})


@pytest.fixture
def exposed(fresh_gateway):
    return fresh_gateway({"gateway": {"keys": [{"owner": "team-a", "key": GATEWAY_KEY}]}}, proxy_bind="0.0.0.0")


def call_through(gateway, proxy_url: str) -> "object":
    return curl("--proxy", proxy_url, "--cacert", str(gateway.ca_cert), "https://api.openai.com/v1/chat/completions",
                "-H", "Authorization: Bearer sk-client-own-key", "-H", "Content-Type: application/json", "-d", CHAT)


def test_an_exposed_proxy_refuses_a_client_without_a_gateway_key_with_407(exposed, mock_provider):
    mock_provider.reset()
    with pytest.raises(subprocess.CalledProcessError):  # curl fails the CONNECT: no tunnel is opened
        call_through(exposed, exposed.proxy_url)
    result = curl("--proxy", exposed.proxy_url, "http://api.openai.com/v1/chat/completions", "-d", CHAT)

    assert result.status == 407 and "proxy-authenticate" in result.headers
    assert result.json()["error"]["type"] == "llmtap_proxy_auth_required"
    assert mock_provider.requests() == []
    row = exposed.row(result.headers["helicone-id"])  # a refused call to a provider host is still logged
    assert row["status"] == 407 and row["request_body"] is None


def test_an_exposed_proxy_refuses_a_wrong_gateway_key(exposed, mock_provider):
    mock_provider.reset()
    result = curl("--proxy", f"http://me:not-the-key@127.0.0.1:{exposed.proxy_port}",
                  "http://api.openai.com/v1/chat/completions", "-d", CHAT)

    assert result.status == 407
    assert mock_provider.requests() == []


def test_an_exposed_proxy_lets_a_key_holder_in_and_the_client_keeps_its_own_provider_key(exposed, mock_provider):
    mock_provider.reset()
    result = call_through(exposed, f"http://me:{GATEWAY_KEY}@127.0.0.1:{exposed.proxy_port}")

    assert result.status == 200
    (received,) = mock_provider.requests()
    assert received["headers"]["authorization"] == "Bearer sk-client-own-key"
    assert "proxy-authorization" not in received["headers"]
    row = exposed.row(result.headers["helicone-id"])
    assert row["way"] == "proxy" and row["key_owner"] == "team-a" and row["status"] == 200
