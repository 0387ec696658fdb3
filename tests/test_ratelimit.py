"""Rate-limit policies enforced before calls leave, and the provider's throttling made queryable."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import openai
import pytest

from conftest import curl


def chat(gateway, content: str, headers: dict, api_key: str = "k", model: str = "gpt-4o-mini"):
    client = openai.OpenAI(base_url=gateway.base_url, api_key=api_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], extra_headers=headers)
    return raw.headers


def refused(gateway, content: str, headers: dict, **kw) -> openai.RateLimitError:
    with pytest.raises(openai.RateLimitError) as caught:
        chat(gateway, content, headers, **kw)
    return caught.value


def test_request_quota_per_user(gateway, mock_provider):
    policy = {"Helicone-RateLimit-Policy": "3;w=60;s=user"}
    remaining = [chat(gateway, "per user", {**policy, "Helicone-User-Id": "ann"})["helicone-ratelimit-remaining"]
                 for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    error = refused(gateway, "per user", {**policy, "Helicone-User-Id": "ann"})
    assert error.body["type"] == "llmtap_rate_limited" and "'ann'" in error.body["message"]
    headers = error.response.headers
    assert (headers["helicone-ratelimit-limit"], headers["helicone-ratelimit-remaining"]) == ("3", "0")
    assert headers["helicone-ratelimit-policy"] == "3;w=60;s=user" and 1 <= int(headers["retry-after"]) <= 60
    assert chat(gateway, "per user", {**policy, "Helicone-User-Id": "bob"})["helicone-ratelimit-remaining"] == "2"
    row = gateway.row(headers["helicone-id"])
    assert row["status"] == 429 and row["attempts"] == 0 and "llmtap_rate_limited" in row["error"]
    # The window rolling over is tested with a fake clock in test_ratelimit_windows.py.
    provider_calls = [r for r in mock_provider.requests() if r["body"].get("messages", [{}])[-1].get("content") == "per user"]
    assert len(provider_calls) == 4  # ann 3 + bob 1; the refused call never left


def test_request_quota_per_property_value(gateway):
    policy = {"Helicone-RateLimit-Policy": "2;w=60;s=Feature"}
    for _ in range(2):
        chat(gateway, "per feature", {**policy, "Helicone-Property-Feature": "search"})
    refused(gateway, "per feature", {**policy, "Helicone-Property-Feature": "search"})
    assert chat(gateway, "per feature", {**policy, "Helicone-Property-Feature": "chat"})["helicone-ratelimit-remaining"] == "1"


def test_cents_quota_counts_the_priced_cost_of_finished_calls(gateway, mock_provider):
    policy = {"Helicone-RateLimit-Policy": "1;w=60;u=cents;s=user", "Helicone-User-Id": "spender"}
    # gpt-4o input is $2.50 per million tokens: 4,000 prompt tokens (and no output) cost exactly one cent.
    mock_provider.script({"model": "gpt-4o", "usage": {"prompt_tokens": 4000, "completion_tokens": 0}})
    first = chat(gateway, "spend a cent", policy, model="gpt-4o")
    assert first["helicone-ratelimit-remaining"] == "1"  # nothing spent before this call
    assert gateway.row(first["helicone-id"])["cost_usd"] == Decimal("0.01")
    error = refused(gateway, "spend a cent", policy, model="gpt-4o")
    assert error.response.headers["helicone-ratelimit-remaining"] == "0"
    spent = [r for r in mock_provider.requests() if r["body"].get("messages", [{}])[-1].get("content") == "spend a cent"]
    assert len(spent) == 1


def test_config_policy_for_one_key_owner(fresh_gateway):
    gateway = fresh_gateway({
        "gateway": {"keys": [{"owner": "alice", "key": "gw-alice"}, {"owner": "bob", "key": "gw-bob"}]},
        "ratelimit": {"policies": [{"policy": "2;w=60", "key_owner": "alice"}]},
    })
    chat(gateway, "config policy", {}, api_key="gw-alice")
    chat(gateway, "config policy", {}, api_key="gw-alice")
    error = refused(gateway, "config policy", {}, api_key="gw-alice")
    assert error.response.headers["helicone-ratelimit-policy"] == "2;w=60"
    assert "helicone-ratelimit-limit" not in chat(gateway, "config policy", {}, api_key="gw-bob")


def test_policy_through_the_proxy_way_in(gateway):
    program = textwrap.dedent("""
        import json, openai
        client = openai.OpenAI(api_key="sk-proxy", max_retries=0)
        statuses = []
        for _ in range(3):
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "proxy policy"}],
                                               extra_headers={"Helicone-RateLimit-Policy": "2;w=60;s=user",
                                                              "Helicone-User-Id": "proxy-user"})
                statuses.append(200)
            except openai.RateLimitError as e:
                statuses.append(e.status_code)
        print(json.dumps(statuses))
    """)
    result = subprocess.run([sys.executable, "-c", program], env=gateway.proxy_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [200, 200, 429]


def test_malformed_policy_is_a_400_naming_the_header(gateway):
    result = curl(f"{gateway.base_url}/chat/completions", "-H", "Helicone-RateLimit-Policy: 10;w=soon",
                  "-d", '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}')
    assert result.status == 400 and result.json()["error"]["header"] == "Helicone-RateLimit-Policy"


def test_provider_throttling_is_one_query(gateway, mock_provider):
    mock_provider.script(
        {"status": 429, "headers": {"retry-after": "0.05"}},  # retried, then answered
        {"model": "gpt-4o", "headers": {"x-ratelimit-remaining-requests": "12"}},  # 12 of 10,000 left
    )
    retried = chat(gateway, "throttled", {"Helicone-Retry-Enabled": "true", "Helicone-Retry-Min-Timeout": "10"})
    near = chat(gateway, "nearly out", {}, model="gpt-4o")
    policy = {"Helicone-RateLimit-Policy": "1;w=60;s=user", "Helicone-User-Id": "own-limit"}
    chat(gateway, "llmtap's own limit", policy)
    own = refused(gateway, "llmtap's own limit", policy).response.headers
    for request_id in (retried["helicone-id"], near["helicone-id"], own["helicone-id"]):
        gateway.row(request_id)
    events = gateway.query(
        "SELECT request_id, event, provider, model, status, retry_after_s, requests_remaining FROM throttling "
        f"WHERE request_id IN ('{retried['helicone-id']}', '{near['helicone-id']}', '{own['helicone-id']}')")
    assert sorted(events, key=lambda e: e[1]) == [
        (near["helicone-id"], "near_limit", "openai", "gpt-4o-2024-08-06", 200, None, 12.0),
        (retried["helicone-id"], "rate_limited", "openai", "gpt-4o-mini", 429, 0.05, None),
    ]
    per_provider = gateway.query("SELECT provider, count(*) FROM throttling WHERE request_id IN "
                                 f"('{retried['helicone-id']}', '{near['helicone-id']}') GROUP BY provider")
    assert per_provider == [("openai", 2)]


@pytest.mark.parametrize("quota_cents, let_through", [(5, 1), (50, 3)])
def test_cents_quota_holds_under_100_concurrent_expensive_calls(gateway, mock_provider, quota_cents, let_through):
    """Each call really costs ~15¢ (15,000 gpt-4o output tokens at $10/M) and asks for at most 16,000 output tokens,
    so llmtap reserves ~16¢ a call: the calls let through are those whose reservations fit (one always fits an empty
    window), and their recorded cost stays within the quota plus the documented bound (that one first call)."""
    user = f"big-spender-{quota_cents}"
    policy = {"Helicone-RateLimit-Policy": f"{quota_cents};w=60;u=cents;s=user", "Helicone-User-Id": user}
    mock_provider.script(*[{"model": "gpt-4o", "usage": {"completion_tokens": 15_000}}] * 100)

    def call(_):
        client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
        try:
            client.chat.completions.create(model="gpt-4o", max_tokens=16_000, extra_headers=policy,
                                           messages=[{"role": "user", "content": f"spend {quota_cents}"}])
            return 200
        except openai.RateLimitError as e:
            return e.status_code

    with ThreadPoolExecutor(max_workers=100) as pool:  # the answers no call consumed are dropped after the test
        statuses = list(pool.map(call, range(100)))
    assert sorted(statuses) == [200] * let_through + [429] * (100 - let_through)
    rows = gateway.rows("user_id = ?", [user], count=100)
    answered = [r for r in rows if r["status"] == 200]
    assert len(rows) == 100 and len(answered) == let_through
    for row in answered:  # the mock's usage was priced: the test measures real cost
        assert row["output_tokens"] == 15_000
        assert row["cost_usd"] == Decimal("0.15") + row["input_tokens"] * Decimal("0.0000025")  # $10/M out, $2.50/M in
    spent_cents = sum(r["cost_usd"] for r in answered) * 100
    one_call_estimate_cents = 16_000 * 10 / 1_000_000 * 100 + 1  # output limit at $10/M, plus a small prompt
    assert spent_cents <= quota_cents + (one_call_estimate_cents if quota_cents < one_call_estimate_cents else 0)
