"""Providers the gateway has no key for: said once at start-up, and a fallback to one is skipped, not the whole call."""

from __future__ import annotations

import openai
import pytest
from llmtap.config import parse_config
from llmtap.provider_keys import keyless_provider_lines

from conftest import ANTHROPIC_ENV_KEY, OPENAI_ENV_KEY, shared_gateway

NO_KEYS_BUT_OPENAI_AND_ANTHROPIC = {name: "" for name in (
    "GROQ_API_KEY", "MISTRAL_API_KEY", "GEMINI_API_KEY", "DEEPSEEK_API_KEY", "XAI_API_KEY", "TOGETHER_API_KEY",
    "FIREWORKS_API_KEY", "OPENROUTER_API_KEY")}
GROQ_LINE = ("llmtap: provider groq: GROQ_API_KEY is not set; gateway calls routed to groq will fail unless the app "
             "sends its own key and fallbacks to it are skipped (proxy calls carry their own key)")
# Ten providers are built in: the line says what it means first and lists them last, however many they are.
BUILT_IN_LINE = ("llmtap: no key for 7 built-in providers, so gateway calls routed to them will fail unless the app "
                 "sends its own key (proxy calls carry their own key): mistral (MISTRAL_API_KEY), google "
                 "(GEMINI_API_KEY), deepseek (DEEPSEEK_API_KEY), xai (XAI_API_KEY), together (TOGETHER_API_KEY), "
                 "fireworks (FIREWORKS_API_KEY), openrouter (OPENROUTER_API_KEY)")


def groq_on(mock) -> dict:
    return {"providers": {"openai": {"upstream": mock.url}, "anthropic": {"upstream": mock.url},
                          "groq": {"upstream": mock.url}}}


groq_without_key = shared_gateway(groq_on, env=NO_KEYS_BUT_OPENAI_AND_ANTHROPIC)


def groq_and_a_local_server_behind_gateway_keys(mock) -> dict:
    providers = groq_on(mock)["providers"] | {"local": {"upstream": mock.url, "models": ["local-*"]}}  # no key variable
    return {"providers": providers, "gateway": {"keys": [{"owner": "ann", "key": "gw-ann"}]}}


groq_behind_gateway_keys = shared_gateway(groq_and_a_local_server_behind_gateway_keys,
                                          env=NO_KEYS_BUT_OPENAI_AND_ANTHROPIC)


def chat(gateway, content, fallbacks, model="gpt-4o"):
    client = openai.OpenAI(base_url=gateway.base_url, api_key="the-apps-key", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}],
        extra_headers={"Helicone-Fallback-Model": fallbacks})
    return raw.parse(), raw.headers


def seen(mock, content):
    return [r for r in mock.requests() if content in str(r.get("body"))]


def keyless_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("llmtap: ") and "not set" in line
            or line.startswith("llmtap: no key")]


def test_start_up_says_once_which_providers_have_no_key(groq_without_key):
    assert keyless_lines(groq_without_key.output()) == [GROQ_LINE, BUILT_IN_LINE]


def test_mitmweb_start_up_says_it_too(fresh_gateway, mock_provider):
    gateway = fresh_gateway(groq_on(mock_provider), env=NO_KEYS_BUT_OPENAI_AND_ANTHROPIC, args=("--web",))
    assert keyless_lines(gateway.output()) == [GROQ_LINE, BUILT_IN_LINE]


def test_a_primary_that_answers_never_needs_the_keyless_fallback(groq_without_key, mock_provider):
    completion, headers = chat(groq_without_key, "primary answers", "llama-3.3-70b-versatile, claude-haiku-4-5")
    assert completion.choices[0].message.content == "Mock reply to: primary answers"
    assert [r["body"]["model"] for r in seen(mock_provider, "primary answers")] == ["gpt-4o"]
    row = groq_without_key.row(headers["helicone-id"])
    assert row["status"] == 200 and row["attempts"] == 1 and row["fallback_from"] is None
    assert [(a["provider"], a["status"]) for a in row["attempt_log"]] == [("openai", 200)]


def test_a_failing_primary_skips_the_keyless_fallback_and_the_next_keyed_one_answers(groq_without_key, mock_provider):
    mock_provider.script({"model": "gpt-4o", "status": 500})
    completion, headers = chat(groq_without_key, "skip groq", "llama-3.3-70b-versatile, claude-haiku-4-5")
    assert completion.model == "claude-haiku-4-5"
    sent = seen(mock_provider, "skip groq")
    assert [(r["path"], r["body"]["model"]) for r in sent] == [
        ("/v1/chat/completions", "gpt-4o"), ("/v1/chat/completions", "claude-haiku-4-5")]  # never Groq's path
    assert [r["headers"]["authorization"] for r in sent] == [f"Bearer {OPENAI_ENV_KEY}", f"Bearer {ANTHROPIC_ENV_KEY}"]
    row = groq_without_key.row(headers["helicone-id"])
    assert row["provider"] == "anthropic" and row["fallback_from"] == "gpt-4o" and row["attempts"] == 2
    assert [(a["provider"], a["model"], a["status"], a["error"]) for a in row["attempt_log"]] == [
        ("openai", "gpt-4o", 500, row["attempt_log"][0]["error"]),
        ("groq", "llama-3.3-70b-versatile", None, "skipped: GROQ_API_KEY is not set"),
        ("anthropic", "claude-haiku-4-5", 200, None),
    ]


def test_when_every_fallback_is_keyless_the_client_gets_the_primarys_own_answer(groq_without_key, mock_provider):
    mock_provider.script({"model": "gpt-4o", "status": 500})
    with pytest.raises(openai.InternalServerError) as caught:
        chat(groq_without_key, "only groq left", "llama-3.3-70b-versatile")
    assert caught.value.status_code == 500 and caught.value.body["type"] == "server_error"  # the provider's answer
    row = groq_without_key.row(caught.value.response.headers["helicone-id"])
    assert row["status"] == 500 and row["attempts"] == 1
    assert [(a["provider"], a["status"], a["error"]) for a in row["attempt_log"]][1:] == [
        ("groq", None, "skipped: GROQ_API_KEY is not set")]


def test_a_keyless_primary_behind_gateway_keys_is_skipped_for_its_keyed_fallback(groq_behind_gateway_keys,
                                                                                    mock_provider):
    client = openai.OpenAI(base_url=groq_behind_gateway_keys.base_url, api_key="gw-ann", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": "groq has no key"}],
        extra_headers={"Helicone-Fallback-Model": "claude-haiku-4-5"})
    assert raw.parse().model == "claude-haiku-4-5"
    assert [(r["body"]["model"], r["headers"]["authorization"]) for r in seen(mock_provider, "groq has no key")] == [
        ("claude-haiku-4-5", f"Bearer {ANTHROPIC_ENV_KEY}")]  # the gateway key goes to no provider
    row = groq_behind_gateway_keys.row(raw.headers["helicone-id"])
    assert row["provider"] == "anthropic" and row["fallback_from"] == "llama-3.3-70b-versatile" and row["attempts"] == 1
    assert [(a["provider"], a["status"], a["error"]) for a in row["attempt_log"]] == [
        ("groq", None, "skipped: GROQ_API_KEY is not set"), ("anthropic", 200, None)]


def test_when_every_model_is_keyless_the_client_gets_a_clear_json_error_and_the_row(groq_behind_gateway_keys,
                                                                                     mock_provider):
    client = openai.OpenAI(base_url=groq_behind_gateway_keys.base_url, api_key="gw-ann", max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"Helicone-Fallback-Model": "mistral-small-latest"})
    assert caught.value.body["type"] == "llmtap_missing_provider_key"
    assert caught.value.body["message"] == ("the gateway has no key for any model this call may use: "
                                            "llama-3.3-70b-versatile (GROQ_API_KEY is not set), "
                                            "mistral-small-latest (MISTRAL_API_KEY is not set)")
    assert mock_provider.requests() == []
    row = groq_behind_gateway_keys.row(caught.value.response.headers["helicone-id"])
    assert row["status"] == 500 and "GROQ_API_KEY" in row["error"] and row["key_owner"] == "ann"
    assert row["attempts"] == 0 and [a["provider"] for a in row["attempt_log"]] == ["groq", "mistral"]


def test_without_fallbacks_a_keyless_provider_behind_gateway_keys_is_refused_as_before(groq_behind_gateway_keys,
                                                                                        mock_provider):
    client = openai.OpenAI(base_url=groq_behind_gateway_keys.base_url, api_key="gw-ann")  # the SDK's own retries on
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="llama-3.3-70b-versatile", messages=[{"role": "user", "content": "x"}],
                                       extra_headers={"Helicone-Session-Id": "no-retries-please"})
    assert caught.value.body["type"] == "llmtap_missing_provider_key" and "GROQ_API_KEY" in caught.value.body["message"]
    assert mock_provider.requests() == []
    # Only config can fix it: the SDK is told not to retry, so the app fails at once and the log has one row, not three.
    groq_behind_gateway_keys.row(caught.value.response.headers["helicone-id"])
    assert groq_behind_gateway_keys.query(
        "SELECT count(*) FROM requests WHERE session_id = 'no-retries-please'") == [(1,)]


def test_a_provider_without_a_key_variable_gets_no_key_and_never_the_gateway_key(groq_behind_gateway_keys,
                                                                                  mock_provider):
    client = openai.OpenAI(base_url=groq_behind_gateway_keys.base_url, api_key="gw-ann", max_retries=0)
    with pytest.raises(openai.AuthenticationError):  # the mock asks every call for a key; a local server would not
        client.chat.completions.create(model="local-model", messages=[{"role": "user", "content": "local"}])
    [sent] = seen(mock_provider, "local")
    assert sent["body"]["model"] == "local-model" and "authorization" not in sent["headers"]
    assert not any("gw-ann" in value for value in sent["headers"].values())


def test_only_providers_the_config_uses_get_a_line_of_their_own(monkeypatch):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", *NO_KEYS_BUT_OPENAI_AND_ANTHROPIC):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-set")
    monkeypatch.setenv("XAI_API_KEY", "xai-set")
    config = parse_config({"fallbacks": {"models": {"gpt-4o": ["mistral-small-latest"]}}}, source=None)
    lines = keyless_provider_lines(config)
    assert [line.split(":")[1].strip() for line in lines] == [
        "provider mistral", "no key for 7 built-in providers, so gateway calls routed to them will fail unless the app "
        "sends its own key (proxy calls carry their own key)"]
    assert lines[1].endswith(": anthropic (ANTHROPIC_API_KEY), groq (GROQ_API_KEY), google (GEMINI_API_KEY), deepseek "
                             "(DEEPSEEK_API_KEY), together (TOGETHER_API_KEY), fireworks (FIREWORKS_API_KEY), "
                             "openrouter (OPENROUTER_API_KEY)")
    assert keyless_provider_lines(parse_config({"listen": {"gateway": "off"}}, source=None)) == []
    local = parse_config({"providers": {"ollama": {"upstream": "http://127.0.0.1:11434", "models": ["qwen*"]}}}, None)
    assert not any("ollama" in line for line in keyless_provider_lines(local))  # no key variable: needs no key
