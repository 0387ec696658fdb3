"""Keys go only where they belong: a proxy call never spends llmtap's own provider keys, and no key is shown in
mitmweb, in mitmdump's output at any verbosity, or in any file a run leaves behind."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
import urllib.request

import openai
from mitmproxy import io

from conftest import ANTHROPIC_ENV_KEY, OPENAI_ENV_KEY, curl, free_port, shared_gateway

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


keyed = shared_gateway({"gateway": {"keys": [{"owner": "ci", "key": GATEWAY_KEY}]}})


def test_a_proxy_fallback_to_another_provider_never_gets_llmtaps_own_key(keyed, mock_provider):
    mock_provider.script({"model": "gpt-4o", "status": 503})
    fallbacks = json.dumps([{"target-url": "https://api.anthropic.com", "bodyKeyOverride": {"model": "claude-haiku-4-5"}}])

    result = proxy_call(keyed, f"Helicone-Fallbacks: {fallbacks}")

    assert result.status == 400 and result.json()["error"]["type"] == "llmtap_invalid_fallback"
    assert "proxy way in" in result.json()["error"]["message"]
    assert env_keys_seen(mock_provider) == [] and mock_provider.requests() == []
    assert keyed.row(result.headers["helicone-id"])["status"] == 400


def test_a_proxy_fallback_with_its_own_key_for_the_other_provider_uses_exactly_that_key(keyed, mock_provider):
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
    mock_provider.script({"model": "gpt-4o", "status": 503})

    result = proxy_call(keyed, "Helicone-Fallback-Model: gpt-4o-mini")

    assert result.status == 200
    assert [r["headers"]["authorization"] for r in mock_provider.requests()] == ["Bearer sk-client-openai-key"] * 2
    assert env_keys_seen(mock_provider) == []


# --- no key in anything a run leaves behind ---------------------------------------------------------------------

CLIENT_BEARER = "sk-secretgrep-bearer-7f3a9c2e41d8"
CLIENT_X_API_KEY = "sk-ant-secretgrep-xapikey-5b1e8d"
CLIENT_BASIC_PASSWORD = "secretgrep-basic-pw-9d4c2a71"
GEMINI_KEY = "AIzaSecretGrepGeminiKey-3e8f1b6c"
SECRETS = (GATEWAY_KEY, OPENAI_ENV_KEY, ANTHROPIC_ENV_KEY, CLIENT_BEARER, CLIENT_X_API_KEY, CLIENT_BASIC_PASSWORD,
           GEMINI_KEY, base64.b64encode(f"me:{CLIENT_BASIC_PASSWORD}".encode()).decode())
FRAGMENT_CHARS = 9  # credentials.mask keeps 3 + 4 characters of a key; any 9 in a row is a leak


def leaks(text: str) -> list[str]:
    """The secrets (or 9-character runs of one) that `text` contains."""
    return [secret for secret in SECRETS
            if any(secret[i:i + FRAGMENT_CHARS] in text for i in range(len(secret) - FRAGMENT_CHARS + 1))]


def every_kind_of_call(gateway, mock_provider) -> None:
    """Calls of every kind, each with a distinctive key: injected, Bearer, x-api-key, Basic, Gemini ?key=, an
    unreachable upstream, a retried call, a cached one and a fallback."""
    gateway_headers = ("-H", f"Authorization: Bearer {GATEWAY_KEY}", "-H", "Content-Type: application/json")
    url = f"http://127.0.0.1:{gateway.gateway_port}/v1/chat/completions"
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "grep me"}]})
    assert curl(url, *gateway_headers, "-d", body).status == 200
    mock_provider.script({"status": 503})
    assert curl(url, *gateway_headers, "-H", "Helicone-Retry-Enabled: true", "-H", "Helicone-Retry-Min-Timeout: 10",
                "-d", body).status == 200
    mock_provider.script({"model": "gpt-4o", "status": 503})
    assert curl(url, *gateway_headers, "-H", "Helicone-Fallback-Model: gpt-4o-mini",
                "-d", body.replace("gpt-4o-mini", "gpt-4o")).status == 200
    for _ in range(2):
        assert curl(url, *gateway_headers, "-H", "Helicone-Cache-Enabled: true", "-d", body).status == 200
    via_proxy = ("--proxy", gateway.proxy_url, "--cacert", str(gateway.ca_cert), "-H", "Content-Type: application/json")
    assert curl(*via_proxy, "https://api.openai.com/v1/chat/completions", "-H", f"Authorization: Bearer {CLIENT_BEARER}",
                "-d", body).status == 200
    assert curl(*via_proxy, "https://api.openai.com/v1/chat/completions", "-u", f"me:{CLIENT_BASIC_PASSWORD}",
                "-d", body).status in (200, 401)
    assert curl(*via_proxy, "https://api.anthropic.com/v1/messages", "-H", f"x-api-key: {CLIENT_X_API_KEY}",
                "-H", "anthropic-version: 2023-06-01",
                "-d", json.dumps({"model": "claude-haiku-4-5", "max_tokens": 16,
                                  "messages": [{"role": "user", "content": "grep me"}]})).status == 200
    # Google's upstream is the real host, which cannot be reached here: an error flow with the key in its URL.
    curl(*via_proxy, f"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent"
                     f"?key={GEMINI_KEY}", "-d", "{}", "--max-time", "20")


def test_no_key_in_any_artefact_of_a_run_at_the_highest_verbosity(fresh_gateway, mock_provider, tmp_path):
    saved = tmp_path / "saved.flows"
    gateway = fresh_gateway({"gateway": {"keys": [{"owner": "ci", "key": GATEWAY_KEY}]}},
                            args=("--", "--set", "flow_detail=4", "--set", f"save_stream_file={saved}"))
    every_kind_of_call(gateway, mock_provider)
    gateway.rows(count=9)
    in_duckdb = json.dumps([list(map(str, row)) for row in gateway.query("SELECT * FROM requests")])
    assert gateway.stop() == 0

    assert leaks(in_duckdb) == []
    assert "Addon error" not in gateway.output()
    with saved.open("rb") as flows:  # saved flows are whole (llmtap's live state is gone before they are written)
        assert len(list(io.FlowReader(flows).stream())) >= 9
    received = json.dumps(mock_provider.requests())
    assert OPENAI_ENV_KEY in received and CLIENT_BEARER in received, "the keys did reach the provider"
    artefacts = [gateway.log_path, saved, *(p for p in (gateway.workdir / "data").rglob("*") if p.is_file())]
    assert len(artefacts) > 3
    for path in artefacts:
        text = path.read_bytes().decode("latin-1")
        assert leaks(text) == [], f"{path} holds a key"


def test_mitmweb_never_shows_the_injected_key_in_flight_nor_any_key_after(fresh_gateway, mock_provider):
    web_port, password = free_port(), "web-pass-for-keys-test"
    gateway = fresh_gateway({"gateway": {"keys": [{"owner": "ci", "key": GATEWAY_KEY}]}},
                            args=("--web", "--", "--set", f"web_port={web_port}", "--set", "web_host=127.0.0.1",
                                  "--set", f"web_password={password}"))

    def shown() -> str:
        request = urllib.request.Request(f"http://127.0.0.1:{web_port}/flows",
                                         headers={"Authorization": f"Bearer {password}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()

    mock_provider.script({"delay_ms": 3000})  # the provider thinks before it answers: the call is in flight
    client = openai.OpenAI(base_url=gateway.base_url, api_key=GATEWAY_KEY, max_retries=0)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(client.chat.completions.create, model="gpt-4o-mini",
                             messages=[{"role": "user", "content": "a slow answer to watch"}])
        deadline = time.monotonic() + 10
        while not mock_provider.requests() and time.monotonic() < deadline:
            time.sleep(0.05)
        in_flight = shown()
        answer.result()

    assert "/v1/chat/completions" in in_flight or "attempts" in in_flight, "the call was not in mitmweb yet"
    assert OPENAI_ENV_KEY not in in_flight
    gateway.rows(count=1)
    assert leaks(shown()) == []
    assert mock_provider.requests()[-1]["headers"]["authorization"] == f"Bearer {OPENAI_ENV_KEY}"
