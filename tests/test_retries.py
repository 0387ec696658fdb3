"""Retries and model fallbacks: calls that survive a provider's bad minute, through both ways in."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import openai
import pytest

from conftest import ANTHROPIC_ENV_KEY, shared_gateway

FAST_RETRIES = {"Helicone-Retry-Enabled": "true", "Helicone-Retry-Min-Timeout": "100",
                "Helicone-Retry-Max-Timeout": "1000", "Helicone-Retry-Factor": "2"}


def chat(gateway, content: str, headers: dict, model: str = "gpt-4o-mini"):
    """One call with the SDK's own retries off; returns (completion, response headers)."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}], extra_headers=headers)
    return raw.parse(), raw.headers


def seen(mock_provider, content: str) -> list[dict]:
    return [r for r in mock_provider.requests()
            if isinstance(r["body"], dict) and r["body"].get("messages", [{}])[-1].get("content") == content]


def asked(mock_provider, prefix: str) -> list[dict]:
    """The provider requests whose last message starts with `prefix`."""
    return [r for r in mock_provider.requests()
            if isinstance(r["body"], dict)
            and str(r["body"].get("messages", [{}])[-1].get("content")).startswith(prefix)]


def wait_until(condition, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_429_then_503_then_200_is_one_success_after_backoff(gateway, mock_provider):
    mock_provider.script({"status": 429}, {"status": 503})
    completion, headers = chat(gateway, "flaky provider", FAST_RETRIES)
    assert completion.choices[0].message.content == "Mock reply to: flaky provider"
    tries = seen(mock_provider, "flaky provider")
    assert len(tries) == 3
    gaps = [later["time"] - earlier["time"] for earlier, later in itertools.pairwise(tries)]
    # min 100 ms, factor 2: about 100 ms, then about 200 ms (±10% jitter, plus a little for the round trip)
    assert 0.09 <= gaps[0] <= 0.3 and 0.18 <= gaps[1] <= 0.4, gaps
    row = gateway.row(headers["helicone-id"])
    assert row["status"] == 200 and row["attempts"] == 3 and row["retries"] == 2 and row["cost_usd"] > 0
    assert [a["status"] for a in row["attempt_log"]] == [429, 503, 200]
    assert 90 <= row["attempt_log"][0]["wait_ms"] <= 110 and 180 <= row["attempt_log"][1]["wait_ms"] <= 220


def test_retry_after_from_the_provider_is_honoured(gateway, mock_provider):
    mock_provider.script({"status": 429, "headers": {"retry-after": "0.4"}}, {"status": 429, "headers": {"retry-after-ms": "150"}})
    _, headers = chat(gateway, "wait as told", {**FAST_RETRIES, "Helicone-Retry-Min-Timeout": "10"})
    tries = seen(mock_provider, "wait as told")
    assert 0.38 <= tries[1]["time"] - tries[0]["time"] <= 0.55
    assert 0.14 <= tries[2]["time"] - tries[1]["time"] <= 0.3
    log = gateway.row(headers["helicone-id"])["attempt_log"]
    assert [a["retry_after_s"] for a in log[:2]] == [0.4, 0.15] and [a["wait_ms"] for a in log[:2]] == [400, 150]


def test_retry_after_is_capped_by_the_max_timeout(gateway, mock_provider):
    mock_provider.script({"status": 429, "headers": {"retry-after": "30"}})
    started = time.monotonic()
    chat(gateway, "capped wait", {**FAST_RETRIES, "Helicone-Retry-Max-Timeout": "300"})
    assert time.monotonic() - started < 2


def test_exhausted_retries_return_the_providers_last_answer(gateway, mock_provider):
    mock_provider.script(*[{"status": 429, "headers": {"retry-after": "0.05"}}] * 3)
    with pytest.raises(openai.RateLimitError) as caught:
        chat(gateway, "always busy", {**FAST_RETRIES, "Helicone-Retry-Num": "2"})
    assert caught.value.body["type"] == "rate_limit_error"  # the provider's own error body
    assert caught.value.response.headers["retry-after"] == "0.05"
    row = gateway.row(caught.value.response.headers["helicone-id"])
    assert row["status"] == 429 and row["attempts"] == 3 and row["retries"] == 2 and row["cost_usd"] == 0


short_upstream_timeout = shared_gateway({"retries": {"upstream_timeout_s": 0.5}})


def test_reset_and_hanging_upstreams_are_retried_and_logged(short_upstream_timeout, mock_provider):
    gateway = short_upstream_timeout
    mock_provider.script({"reset": True}, {"hang": True})
    completion, headers = chat(gateway, "bad network", FAST_RETRIES)
    assert completion.choices[0].message.content == "Mock reply to: bad network"
    log = gateway.row(headers["helicone-id"])["attempt_log"]
    assert [a["status"] for a in log] == [None, None, 200]
    assert "reset" in log[0]["error"].lower() or "disconnect" in log[0]["error"].lower()
    assert "timeout" in log[1]["error"].lower() and log[1]["latency_ms"] >= 500


def test_no_provider_answering_is_a_json_502(short_upstream_timeout, mock_provider):
    gateway = short_upstream_timeout
    mock_provider.script(*[{"hang": True}] * 2)
    with pytest.raises(openai.APIStatusError) as caught:
        chat(gateway, "nobody home", {**FAST_RETRIES, "Helicone-Retry-Num": "1"})
    assert caught.value.status_code == 502 and caught.value.body["type"] == "llmtap_upstream_unreachable"
    row = gateway.row(caught.value.response.headers["helicone-id"])
    assert row["status"] == 502 and row["attempts"] == 2 and row["cost_usd"] == 0


def test_fallback_on_503_answers_from_the_fallback_model(gateway, mock_provider):
    mock_provider.script({"model": "gpt-4o", "status": 503})
    completion, headers = chat(gateway, "Analyze this data", model="gpt-4o", headers={
        "Helicone-Fallback-Model": "gpt-4o-mini", "Helicone-Fallback-OnCodes": "429,500,503"})
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert [r["body"]["model"] for r in seen(mock_provider, "Analyze this data")] == ["gpt-4o", "gpt-4o-mini"]
    row = gateway.row(headers["helicone-id"])
    assert row["model"] == "gpt-4o-mini-2024-07-18" and row["fallback_from"] == "gpt-4o" and row["attempts"] == 2
    # gpt-4o-mini's price, not gpt-4o's
    assert row["cost_usd"] * 10**6 == row["input_tokens"] * Decimal("0.15") + row["output_tokens"] * Decimal("0.6")


def test_a_code_not_in_oncodes_does_not_fall_back(gateway, mock_provider):
    mock_provider.script({"model": "gpt-4o", "status": 400})
    with pytest.raises(openai.BadRequestError) as caught:
        chat(gateway, "bad request stays bad", model="gpt-4o", headers={
            "Helicone-Fallback-Model": "gpt-4o-mini", "Helicone-Fallback-OnCodes": "429,500,503"})
    assert len(seen(mock_provider, "bad request stays bad")) == 1
    row = gateway.row(caught.value.response.headers["helicone-id"])
    assert row["status"] == 400 and row["fallback_from"] is None


def test_fallback_chain_crosses_providers_with_each_providers_key(gateway, mock_provider):
    mock_provider.script({"model": "gpt-4o", "status": 500}, {"model": "gpt-4o-mini", "status": 429})
    completion, headers = chat(gateway, "any provider will do", model="gpt-4o", headers={
        "Helicone-Fallback-Model": "gpt-4o-mini, claude-sonnet-4-6"})
    assert completion.model == "claude-sonnet-4-6"
    last = seen(mock_provider, "any provider will do")[-1]
    assert last["headers"]["authorization"] == f"Bearer {ANTHROPIC_ENV_KEY}" and last["path"] == "/v1/chat/completions"
    row = gateway.row(headers["helicone-id"])
    assert row["provider"] == "anthropic" and row["fallback_from"] == "gpt-4o"
    assert [(a["provider"], a["status"]) for a in row["attempt_log"]] == [("openai", 500), ("openai", 429), ("anthropic", 200)]


def test_retries_apply_to_each_model_before_falling_back(gateway, mock_provider):
    mock_provider.script(*[{"model": "gpt-4o", "status": 503}] * 2)
    completion, headers = chat(gateway, "retry then fall back", model="gpt-4o", headers={
        **FAST_RETRIES, "Helicone-Retry-Num": "1", "Helicone-Fallback-Model": "gpt-4o-mini"})
    assert [r["body"]["model"] for r in seen(mock_provider, "retry then fall back")] == ["gpt-4o", "gpt-4o", "gpt-4o-mini"]
    assert gateway.row(headers["helicone-id"])["retries"] == 1


def test_helicone_fallbacks_json_form(gateway, mock_provider):
    mock_provider.script({"model": "gpt-4o", "status": 503})
    fallbacks = json.dumps([{"target-url": "https://api.anthropic.com", "bodyKeyOverride": {"model": "claude-haiku-4-5"}}])
    completion, headers = chat(gateway, "json fallbacks", model="gpt-4o", headers={"Helicone-Fallbacks": fallbacks})
    assert completion.model == "claude-haiku-4-5"
    assert gateway.row(headers["helicone-id"])["provider"] == "anthropic"


def test_fallback_to_an_unconfigured_host_is_refused(gateway, mock_provider):
    fallbacks = json.dumps([{"target-url": "https://evil.example", "bodyKeyOverride": {"model": "gpt-4o-mini"}}])
    with pytest.raises(openai.BadRequestError) as caught:
        chat(gateway, "no key leaves", model="gpt-4o", headers={"Helicone-Fallbacks": fallbacks})
    assert caught.value.body["type"] == "llmtap_invalid_fallback" and "evil.example" in caught.value.body["message"]
    assert seen(mock_provider, "no key leaves") == []


def test_streams_are_retried_before_they_begin(gateway, mock_provider):
    mock_provider.script({"status": 429, "headers": {"retry-after": "0.05"}})
    client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "retry my stream"}],
        extra_headers=FAST_RETRIES,
    ) as response:
        request_id = response.headers["helicone-id"]
        text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
                       for line in response.iter_lines() if line.startswith("data: {") and '"choices": []' not in line)
    assert text == "Mock reply to: retry my stream"
    row = gateway.row(request_id)
    assert row["stream"] is True and row["attempts"] == 2 and row["cost_usd"] > 0
    assert row["output_tokens"] == len(text.split())


def test_retries_through_the_proxy_way_in(gateway, mock_provider):
    mock_provider.script({"status": 503})
    program = textwrap.dedent(f"""
        import json, openai
        raw = openai.OpenAI(api_key="sk-proxy-client", max_retries=0).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{{"role": "user", "content": "proxy retry"}}], extra_headers={FAST_RETRIES!r})
        print(json.dumps({{"id": raw.headers["helicone-id"], "text": raw.parse().choices[0].message.content}}))
    """)
    result = subprocess.run([sys.executable, "-c", program], env=gateway.proxy_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    tries = seen(mock_provider, "proxy retry")
    assert len(tries) == 2 and all(t["headers"]["authorization"] == "Bearer sk-proxy-client" for t in tries)
    row = gateway.row(out["id"])
    assert row["way"] == "proxy" and row["attempts"] == 2 and out["text"] == "Mock reply to: proxy retry"


def test_retry_defaults_from_config(fresh_gateway, mock_provider):
    gateway = fresh_gateway({"retries": {"enabled": True, "min_timeout_ms": 50, "max_timeout_ms": 200},
                             "fallbacks": {"models": {"gpt-4o": ["gpt-4o-mini"]}}})
    # retries (3 by default) apply to gpt-4o before its fallback: four 503s exhaust it
    mock_provider.script({"status": 500}, *[{"model": "gpt-4o", "status": 503}] * 4)
    _, headers = chat(gateway, "configured retries", {})
    assert gateway.row(headers["helicone-id"])["attempts"] == 2
    completion, headers = chat(gateway, "configured fallback", {}, model="gpt-4o")
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert gateway.row(headers["helicone-id"])["fallback_from"] == "gpt-4o"


def test_flows_waiting_to_retry_do_not_slow_the_others(gateway, mock_provider):
    mock_provider.script(*[{"model": "gpt-4o", "status": 429, "headers": {"retry-after": "3"}}] * 10)
    slow_headers = {**FAST_RETRIES, "Helicone-Retry-Max-Timeout": "4000"}
    client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
    with ThreadPoolExecutor(max_workers=20) as pool:
        retrying = [pool.submit(chat, gateway, f"patient {i}", slow_headers, "gpt-4o") for i in range(10)]
        wait_until(lambda: len(asked(mock_provider, "patient ")) == 10)  # all ten now wait out their retry-after
        quick = [client.chat.completions.create(model="gpt-4o-mini",
                                                messages=[{"role": "user", "content": f"quick {i}"}])
                 for i in range(10)]
        # Ten calls one after another, all done while the ten others still wait out their 3 s retry-after. (Waits
        # that held up the gateway would hold the quick calls until after the retried ones.)
        retried_before_quick_ended = [f.done() for f in retrying]
        results = [f.result() for f in retrying]
    assert not any(retried_before_quick_ended)
    assert [c.choices[0].message.content for c in quick] == [f"Mock reply to: quick {i}" for i in range(10)]
    patients = sorted(c.choices[0].message.content for c, _ in results)
    assert patients == [f"Mock reply to: patient {i}" for i in range(10)]
    assert len(asked(mock_provider, "patient ")) == 20  # each one 429 and one retry


def test_a_stream_that_has_begun_is_never_retried(gateway, mock_provider):
    mock_provider.script({"cut_after": 3})
    client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "cut me off"}],
            extra_headers={**FAST_RETRIES, "Helicone-Property-Case": "cut-stream"},
        ):
            received.append(chunk)
    assert received  # the client had part of the answer...
    assert len(seen(mock_provider, "cut me off")) == 1  # ...so it was not sent again
    (row,) = gateway.rows("properties['case'] = 'cut-stream'")
    assert row["stream"] is True and row["attempts"] == 1 and row["error"]


def test_fallback_through_the_proxy_way_in(gateway, mock_provider):
    mock_provider.script({"model": "gpt-4o", "status": 503})
    program = textwrap.dedent("""
        import json, openai
        raw = openai.OpenAI(api_key="sk-proxy-fb", max_retries=0).chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": "proxy fallback"}],
            extra_headers={"Helicone-Fallback-Model": "gpt-4o-mini"})
        print(json.dumps({"id": raw.headers["helicone-id"], "model": raw.parse().model}))
    """)
    result = subprocess.run([sys.executable, "-c", program], env=gateway.proxy_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["model"] == "gpt-4o-mini-2024-07-18"
    tries = seen(mock_provider, "proxy fallback")
    assert [t["body"]["model"] for t in tries] == ["gpt-4o", "gpt-4o-mini"]
    assert all(t["headers"]["authorization"] == "Bearer sk-proxy-fb" for t in tries)  # the client's own key
    assert gateway.row(out["id"])["fallback_from"] == "gpt-4o"
