"""Keys go only where they belong: a proxy call never spends llmtap's own provider keys, and no key is shown in
mitmweb, in mitmdump's output at any verbosity, or in any file a run leaves behind."""

from __future__ import annotations

import json

import pytest

from conftest import ANTHROPIC_ENV_KEY, OPENAI_ENV_KEY, curl

GATEWAY_KEY = "gk-keys-test-0123456789"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "keys stay home"}]}


def proxy_call(gateway, *headers: str, body: dict | None = None):
    extra = [arg for header in headers for arg in ("-H", header)]
    return curl("--proxy", gateway.proxy_url, "--cacert", str(gateway.ca_cert),
                "https://api.openai.com/v1/chat/completions", "-H", "Authorization: Bearer sk-client-openai-key",
                "-H", "Content-Type: application/json", *extra, "-d", json.dumps(body or CHAT))


def env_keys_seen(mock_provider) -> list[str]:
    """Any of llmtap's own provider keys the provider received, in any header."""
    return [value for request in mock_provider.requests() for value in request["headers"].values()
            if OPENAI_ENV_KEY in value or ANTHROPIC_ENV_KEY in value]


@pytest.fixture
def keyed(fresh_gateway):
    return fresh_gateway({"gateway": {"keys": [{"owner": "ci", "key": GATEWAY_KEY}]}})


def test_a_proxy_fallback_to_another_provider_never_gets_llmtaps_own_key(keyed, mock_provider):
    mock_provider.reset()
    mock_provider.script({"model": "gpt-4o", "status": 503})
    fallbacks = json.dumps([{"target-url": "https://api.anthropic.com", "bodyKeyOverride": {"model": "claude-haiku-4-5"}}])

    result = proxy_call(keyed, f"Helicone-Fallbacks: {fallbacks}")

    assert result.status == 400 and result.json()["error"]["type"] == "llmtap_invalid_fallback"
    assert "proxy way in" in result.json()["error"]["message"]
    assert env_keys_seen(mock_provider) == [] and mock_provider.requests() == []
    assert keyed.row(result.headers["helicone-id"])["status"] == 400


def test_a_proxy_fallback_with_its_own_key_for_the_other_provider_uses_exactly_that_key(keyed, mock_provider):
    mock_provider.reset()
    mock_provider.script({"model": "gpt-4o", "status": 503})
    fallbacks = json.dumps([{"target-url": "https://api.anthropic.com", "headers": {"Authorization": "Bearer sk-ant-client-own"},
                             "bodyKeyOverride": {"model": "claude-haiku-4-5"}}])

    result = proxy_call(keyed, f"Helicone-Fallbacks: {fallbacks}")

    assert result.status == 200
    first, second = mock_provider.requests()
    assert first["headers"]["authorization"] == "Bearer sk-client-openai-key"
    assert second["headers"]["authorization"] == "Bearer sk-ant-client-own", "the client's OpenAI key crossed over"
    assert env_keys_seen(mock_provider) == []
    assert keyed.row(result.headers["helicone-id"])["fallback_from"] == "gpt-4o"


def test_a_proxy_fallback_chain_of_models_stays_with_the_clients_provider_and_key(keyed, mock_provider):
    mock_provider.reset()
    mock_provider.script({"model": "gpt-4o", "status": 503})

    result = proxy_call(keyed, "Helicone-Fallback-Model: gpt-4o-mini")

    assert result.status == 200
    assert [r["headers"]["authorization"] for r in mock_provider.requests()] == ["Bearer sk-client-openai-key"] * 2
    assert env_keys_seen(mock_provider) == []
