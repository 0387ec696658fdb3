"""Blocking budgets (`alerts` rules with `action: block`) through a real gateway and the openai SDK: the call over a
budget gets 429 naming the budget, calls pass again in the next window, a restart forgets no spend (budgets and
`u=cents` rate-limit policies alike), and many concurrent calls at a budget's edge get no more than it allows.
(A calendar day's boundary, with clocks moved by hand: tests/unit/test_budgets_unit.py.)"""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import openai
import pytest
import yaml

from conftest import shared_gateway

# gpt-4o input is $2.50 per million tokens: 4,000 prompt tokens (and no output) cost exactly one cent.
ONE_CENT = {"model": "gpt-4o", "usage": {"prompt_tokens": 4000, "completion_tokens": 0}}


def budget(name: str, metric: str, window: str, threshold: float, **more) -> dict:
    return {"name": name, "metric": metric, "window": window, "threshold": threshold, "action": "block", **more}


budgets_gateway = shared_gateway({"alerts": [
    budget("calls-per-user", "requests", "3s", 3, scope="user", where={"property:suite": "rolling"}),
    budget("spend-per-workflow", "spend_usd", "1h", 0.01, scope="property:Workflow", where={"property:suite": "spend"}),
    budget("red-team-calls", "requests", "1h", 2, where={"property:team": "red"}),
    budget("crowd-calls", "requests", "1h", 10, scope="user", where={"user": "crowd"}),
    budget("crowd-spend", "spend_usd", "1h", 0.5, scope="user", where={"user": "crowd-spender"}),
    budget("monthly-spend", "spend_usd", "month", 0.02, scope="user", where={"user": ["spender", "saver"]}),
]})


def chat(gateway, headers: dict, model: str = "gpt-4o-mini", api_key: str = "k", **params):
    """One call; its response headers when answered."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key=api_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "budget"}], extra_headers=headers, **params)
    return raw.headers


def refused(gateway, headers: dict, **kw) -> openai.RateLimitError:
    with pytest.raises(openai.RateLimitError) as caught:
        chat(gateway, headers, **kw)
    return caught.value


def test_a_request_budget_refuses_the_next_call_naming_the_budget_until_the_window_rolls(budgets_gateway):
    gateway, ann = budgets_gateway, {"Helicone-User-Id": "ann", "Helicone-Property-Suite": "rolling"}
    for _ in range(3):
        chat(gateway, ann)
    error = refused(gateway, ann)
    assert error.body["type"] == "llmtap_budget_exceeded" and error.body["budget"] == "calls-per-user"
    message = error.body["message"]
    assert message.startswith("budget 'calls-per-user' reached for user 'ann': 3 requests used of 3 requests "
                              "in the last 3s; frees as usage leaves the window, in ")
    retry_after_s = int(error.response.headers["retry-after"])
    assert 1 <= retry_after_s <= 3
    row = gateway.row(error.response.headers["helicone-id"])
    assert row["status"] == 429 and row["attempts"] == 0 and row["error"] == f"llmtap_budget_exceeded: {message}"
    chat(gateway, {**ann, "Helicone-User-Id": "bob"})  # per user: bob has his own budget
    refused_at = time.monotonic()
    while True:  # the window rolls: the first call leaves it within 3 s
        try:
            chat(gateway, ann)
            break
        except openai.RateLimitError:
            assert time.monotonic() - refused_at < 3.5, "the budget did not free when its window rolled"
            time.sleep(0.1)


def test_a_spend_budget_per_property_value_refuses_once_spent(budgets_gateway, mock_provider):
    gateway = budgets_gateway
    mock_provider.script(ONE_CENT)
    suite = {"Helicone-Property-Suite": "spend"}
    research = {**suite, "Helicone-Property-WORKFLOW": "research"}  # the header's name in any case
    first = chat(gateway, research, model="gpt-4o")
    assert gateway.row(first["helicone-id"])["cost_usd"] == Decimal("0.01")
    error = refused(gateway, {**suite, "helicone-property-workflow": "research"}, model="gpt-4o")
    assert error.body["budget"] == "spend-per-workflow"
    assert error.body["message"].startswith(
        "budget 'spend-per-workflow' reached for workflow 'research': $0.01 used or reserved of $0.01 in the last 1h; ")
    assert 3590 <= int(error.response.headers["retry-after"]) <= 3600  # when the spend leaves the rolling hour
    chat(gateway, {**suite, "Helicone-Property-Workflow": "chat"}, model="gpt-4o")  # another value: its own budget
    assert len([r for r in mock_provider.requests() if r["body"]["model"] == "gpt-4o"]) == 2


def test_where_selects_the_calls_a_budget_counts(budgets_gateway):
    gateway = budgets_gateway
    for _ in range(3):
        chat(gateway, {"Helicone-Property-Team": "blue"})  # not counted
    chat(gateway, {"Helicone-Property-Team": "red"})
    chat(gateway, {"Helicone-Property-Team": "red"})
    assert refused(gateway, {"Helicone-Property-Team": "red"}).body["budget"] == "red-team-calls"
    chat(gateway, {"Helicone-Property-Team": "blue"})


def statuses_of_30_at_once(gateway, headers: dict, **params) -> list[int]:
    """The statuses of 30 concurrent calls with these headers, sorted."""
    def call(_):
        try:
            chat(gateway, headers, **params)
            return 200
        except openai.RateLimitError as e:
            return e.status_code

    with ThreadPoolExecutor(max_workers=30) as pool:
        return sorted(pool.map(call, range(30)))


def test_30_concurrent_calls_at_a_request_budget_of_10_get_exactly_10_answers(budgets_gateway):
    assert statuses_of_30_at_once(budgets_gateway, {"Helicone-User-Id": "crowd"}) == [200] * 10 + [429] * 20


def test_concurrent_calls_at_a_spend_budget_stay_within_it_when_estimates_are_honest(budgets_gateway, mock_provider):
    """Each call costs ~15¢ (15,000 gpt-4o output tokens at $10/M) and asks for at most 16,000 output tokens, so it
    reserves ~16¢: three reservations fit a 50¢ budget, a fourth does not, and what is spent stays within the budget
    (the documented bound: the budget, plus one call let into an empty window, plus what real costs exceed their
    estimates by, which is nothing here)."""
    mock_provider.script(*[{"model": "gpt-4o", "usage": {"completion_tokens": 15_000}}] * 30)

    statuses = statuses_of_30_at_once(budgets_gateway, {"Helicone-User-Id": "crowd-spender"}, model="gpt-4o",
                                      max_tokens=16_000)
    assert statuses == [200] * 3 + [429] * 27
    rows = budgets_gateway.rows("user_id = 'crowd-spender'", count=30)
    spent_usd = sum(r["cost_usd"] for r in rows if r["status"] == 200)
    assert Decimal("0.45") <= spent_usd <= Decimal("0.50")


def test_a_restart_keeps_budget_spend_and_cents_policies(budgets_gateway, mock_provider):
    """The user's report: a 10¢-a-day policy let 20¢ through after one restart. Budgets and policies now start from
    the log, before the gateway admits its first call. (The module's last test on its gateway: it restarts it.)"""
    gateway = budgets_gateway
    spender = {"Helicone-User-Id": "spender"}
    mock_provider.script(ONE_CENT, ONE_CENT)
    chat(gateway, spender, model="gpt-4o", max_tokens=1)
    chat(gateway, spender, model="gpt-4o", max_tokens=1)
    assert refused(gateway, spender, model="gpt-4o").body["budget"] == "monthly-spend"
    daily = {"Helicone-RateLimit-Policy": "10;w=86400;u=cents"}
    mock_provider.script({**ONE_CENT, "usage": {"prompt_tokens": 44_000, "completion_tokens": 0}})  # 11¢
    chat(gateway, daily, model="gpt-4o", api_key="tenant-key")
    assert refused(gateway, daily, model="gpt-4o", api_key="tenant-key").body["type"] == "llmtap_rate_limited"

    gateway.restart()
    error = refused(gateway, spender, model="gpt-4o")
    assert error.body["budget"] == "monthly-spend" and "$0.02 used or reserved of $0.02" in error.body["message"]
    assert refused(gateway, daily, model="gpt-4o", api_key="tenant-key").body["type"] == "llmtap_rate_limited"
    chat(gateway, daily, model="gpt-4o", api_key="another-key")  # a header policy counts per paying key
    chat(gateway, {"Helicone-User-Id": "saver"}, model="gpt-4o")
    # Seeded before either listener of the restarted gateway opened: before its first call could arrive.
    restarted = gateway.output().rsplit("budgets and rate limits start from the log: ", 1)[1]
    assert "HTTP(S) proxy listening at" in restarted and "reverse proxy to http://llmtap.gateway listening at" in restarted
    assert len([r for r in mock_provider.requests() if r["body"]["model"] == "gpt-4o"]) == 5


def test_a_bad_budget_stops_llmtap_start_naming_the_rule_and_field(tmp_path):
    config = tmp_path / "llmtap.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"path": str(tmp_path / "llmtap.duckdb")}, "certs": str(tmp_path / "certs"),
        "alerts": [budget("slow-calls", "p95_latency_ms", "1h", 2000)]}))
    result = subprocess.run([sys.executable, "-m", "llmtap.cli", "start", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "slow-calls" in line]
    assert len(lines) == 1 and "alerts[0] (rule 'slow-calls'): action: block is for spend_usd and requests" in lines[0]
