"""Bad or unusual input, and the paths where a key could go astray: each case a user could hit, end to end."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from conftest import ANTHROPIC_ENV_KEY, OPENAI_ENV_KEY, curl, shared_gateway

no_anthropic_key = shared_gateway(env={"ANTHROPIC_API_KEY": ""})
# The Gemini provider beside OpenAI, and rate-limit rules for two users (no other test here names those users).
gemini_and_user_rules = shared_gateway(lambda mock: {
    "providers": {"google": {"upstream": mock.url}, "openai": {"upstream": mock.url}},
    "ratelimit": {"policies": [{"policy": "1;w=60", "user": "alice"}, {"policy": "1;w=60", "user": "bob"}]},
})


def chat(gateway, content, headers=None, model="gpt-4o-mini", api_key="k", **kw):
    client = openai.OpenAI(base_url=gateway.base_url, api_key=api_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], extra_headers=headers or {}, **kw)
    return raw.parse(), raw.headers


def test_fallback_to_a_provider_without_a_key_is_skipped_and_no_key_crosses_over(no_anthropic_key, mock_provider):
    gateway = no_anthropic_key
    mock_provider.script({"model": "gpt-4o", "status": 500})
    with pytest.raises(openai.InternalServerError) as caught:
        chat(gateway, "crossing keys", {"Helicone-Fallback-Model": "claude-haiku-4-5"}, model="gpt-4o")
    assert [(r["body"]["model"], r["headers"]["authorization"]) for r in mock_provider.requests()] == [
        ("gpt-4o", f"Bearer {OPENAI_ENV_KEY}")]  # the OpenAI key never goes to Anthropic
    log = gateway.row(caught.value.response.headers["helicone-id"])["attempt_log"]
    assert log[1]["provider"] == "anthropic" and log[1]["error"] == "skipped: ANTHROPIC_API_KEY is not set"


def test_retried_calls_with_large_bodies_go_through(gateway):
    big = "word " * 420_000  # about 2 MiB
    completion, headers = chat(gateway, big, {"Helicone-Retry-Enabled": "true"})
    assert completion.choices[0].message.content.startswith("Mock reply to: word")
    assert gateway.row(headers["helicone-id"])["attempts"] == 1


def test_passed_through_anthropic_keys_never_share_cache_entries(no_anthropic_key, mock_provider):
    gateway = no_anthropic_key
    statuses = []
    for key in ("sk-ant-tenant-one", "sk-ant-tenant-two"):
        client = anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=key, max_retries=0)
        raw = client.messages.with_raw_response.create(
            model="claude-haiku-4-5", max_tokens=50, messages=[{"role": "user", "content": "my own key"}],
            extra_headers={"Helicone-Cache-Enabled": "true"})
        statuses.append(raw.headers["helicone-cache"])
    assert statuses == ["MISS", "MISS"]


def test_gateway_key_works_from_the_anthropic_sdk(fresh_gateway, mock_provider):
    gateway = fresh_gateway({"gateway": {"keys": [{"owner": "ann", "key": "gw-ann-key"}]}})
    client = anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key="gw-ann-key", max_retries=0)
    raw = client.messages.with_raw_response.create(model="claude-haiku-4-5", max_tokens=50,
                                                   messages=[{"role": "user", "content": "gateway key"}])
    assert gateway.row(raw.headers["helicone-id"])["key_owner"] == "ann"
    assert mock_provider.requests()[-1]["headers"]["x-api-key"] == ANTHROPIC_ENV_KEY


def test_gemini_query_keys_never_reach_the_log(gemini_and_user_rules, mock_provider):
    gateway = gemini_and_user_rules
    result = curl("--proxy", gateway.proxy_url, "--cacert", str(gateway.ca_cert),
                  "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
                  "?key=AIzaSECRET-gemini-key&alt=json", "-H", "Helicone-Property-Case: gemini-key", "-d", "{}")
    assert result.status == 400  # Google refuses a request with no contents; the call is logged all the same
    (row,) = gateway.rows("properties['case'] = 'gemini-key'")  # HTTP/2 sends header names in lower case
    assert "AIzaSECRET" not in json.dumps(row, default=str)
    assert row["path"].endswith("?key=redacted&alt=json") and row["key_hash"].startswith("sha256:")


def test_config_rules_for_different_users_keep_separate_windows(gemini_and_user_rules):
    gateway = gemini_and_user_rules
    chat(gateway, "alice", {"Helicone-User-Id": "alice"})
    chat(gateway, "bob", {"Helicone-User-Id": "bob"})  # bob's own quota, untouched by alice's call
    with pytest.raises(openai.RateLimitError):
        chat(gateway, "alice again", {"Helicone-User-Id": "alice"})


def test_omit_flags_hold_even_when_another_header_is_malformed(gateway):
    result = curl(f"{gateway.base_url}/chat/completions", "-H", "Helicone-Omit-Request: true",
                  "-H", "Helicone-Cache-Enabled: yes", "-H", "Helicone-User-Id: omitter",
                  "-d", '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "my secret"}]}')
    assert result.status == 400
    row = gateway.row(result.headers["helicone-id"])
    assert row["request_body"] is None and row["user_id"] == "omitter"


def test_usage_genai_prices_cannot_price_still_gets_its_row(gateway, mock_provider):
    mock_provider.script({"usage": {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 50}}})
    _, headers = chat(gateway, "odd usage")
    row = gateway.row(headers["helicone-id"])
    assert row["status"] == 200 and row["cost_usd"] is None and "cannot price" in row["price_error"]


def test_retries_on_the_proxy_way_in_do_not_need_a_json_object(gateway, mock_provider):
    result = curl("--proxy", gateway.proxy_url, "--cacert", str(gateway.ca_cert),
                  "https://api.openai.com/v1/chat/completions", "-H", "Authorization: Bearer sk-x",
                  "-H", "Helicone-Retry-Enabled: true", "-H", "Helicone-Property-Case: list-body", "-d", "[1, 2]")
    assert result.status == 400 and result.json()["error"]["type"] == "invalid_request_error"  # the provider's answer
    (row,) = gateway.rows("properties['case'] = 'list-body'")  # HTTP/2 sends header names in lower case
    assert row["attempts"] == 1 and row["status"] == 400


def test_deeply_nested_json_is_logged_and_its_helicone_headers_still_removed(gateway, mock_provider):
    result = curl("--proxy", gateway.proxy_url, "--cacert", str(gateway.ca_cert),
                  "https://api.openai.com/v1/chat/completions", "-H", "Authorization: Bearer sk-x",
                  "-H", "Helicone-Property-Case: deep", "-d", "[" * 5000)
    assert result.status == 400
    (seen,) = mock_provider.requests()
    assert not [name for name in seen["headers"] if name.startswith("helicone-")]
    (row,) = gateway.rows("properties['case'] = 'deep'")  # HTTP/2 sends header names in lower case
    assert row["status"] == 400


def test_a_lone_surrogate_in_the_body_is_cached_and_logged(gateway):
    body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "odd \\ud800 text"}]}'
    for expected in ("MISS", "HIT"):
        result = curl(f"{gateway.base_url}/chat/completions", "-H", "Helicone-Cache-Enabled: true", "-d", body)
        assert result.status == 200 and result.headers["helicone-cache"] == expected
        row = gateway.row(result.headers["helicone-id"])
        assert json.loads(row["request_body"])["messages"][0]["content"] == "odd \ufffd text"  # stored as U+FFFD


def test_cache_control_without_max_age_does_not_refuse_the_call(gateway):
    _, headers = chat(gateway, "no-cache from a client", {"Helicone-Cache-Enabled": "true", "Cache-Control": "no-cache"})
    assert headers["helicone-cache"] == "MISS"


def test_helicone_fallbacks_oncodes_ranges(gateway, mock_provider):
    mock_provider.script({"model": "gpt-4o", "status": 502})
    fallbacks = json.dumps([{"bodyKeyOverride": {"model": "gpt-4o-mini"}}])
    completion, _ = chat(gateway, "ranges", {"Helicone-Fallbacks": fallbacks,
                                             "Helicone-Fallback-OnCodes": "502"}, model="gpt-4o")
    assert completion.model == "gpt-4o-mini-2024-07-18"
    mock_provider.script({"model": "gpt-4o", "status": 503})
    ranged = json.dumps([{"bodyKeyOverride": {"model": "gpt-4o-mini"}, "onCodes": [{"from": 500, "to": 599}]}])
    completion, _ = chat(gateway, "ranges two", {"Helicone-Fallbacks": ranged}, model="gpt-4o")
    assert completion.model == "gpt-4o-mini-2024-07-18"
    sent = [(r["body"]["model"], r["headers"]["authorization"]) for r in mock_provider.requests()]
    own_key = f"Bearer {OPENAI_ENV_KEY}"  # the gateway's own key paid for every attempt, fallbacks included
    assert sent == [("gpt-4o", own_key), ("gpt-4o-mini", own_key)] * 2
