"""`llmtap costs --as MODEL`: the logged calls re-priced as if MODEL had answered them with the same tokens, beside
what they really cost. Calls go through a real gateway (SDKs against the mock provider, usage scripted); the report
runs as a user runs it; what-if costs are checked against hand-computed values from the target model's published
per-million prices."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import anthropic
import openai
import pytest
from llmtap.money import format_usd

from conftest import Gateway, shared_gateway

MTOK = Decimal(10**6)
SMALL = {"Helicone-Property-Workflow": "small"}
CACHE_ON = {"Helicone-Cache-Enabled": "true", **SMALL}
# A model only the config's `pricing` knows, with its prices (USD per million tokens).
TUNED = {"model": "acme-tuned", "input_per_mtok": 3, "output_per_mtok": 12, "cached_input_per_mtok": "0.3"}

costs_gateway = shared_gateway(lambda mock: {
    "pricing": [TUNED],
    # A local server whose streamed answers carry no usage (llmtap does not ask for it): calls with unknown tokens.
    "providers": {"openai": {"upstream": mock.url}, "anthropic": {"upstream": mock.url},
                  "local": {"upstream": mock.url, "models": ["local-*"], "api_key_env": "",
                            "inject_stream_usage": False}},
})


def llmtap(gw: Gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--config", str(gw.config_path)],
                          cwd=gw.workdir, capture_output=True, text=True, timeout=60)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line, parse_float=Decimal) for line in text.splitlines()]


@pytest.fixture(scope="module")
def workload(costs_gateway, mock_provider) -> dict[str, dict[str, Any]]:
    """Workflow `small`, four calls with known tokens: gpt-4o-mini (1,000 input of which 200 cached, 500 output), the
    same call again as a cache hit, claude-3-5-haiku-latest (2,000 input + 400 cache read + 100 cache write, 100
    output), and a streamed call to a local model that reported no usage. Workflow `big`: three gpt-4o calls of
    150,000, 150,000 and 250,000 input and 1,000 output tokens each. Returns the rows by name."""
    gw = costs_gateway
    chat = openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
    mock_provider.script({"model": "gpt-4o-mini", "usage": {
        "prompt_tokens": 1000, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 200}}})
    ids = {}
    for name in ("gpt", "hit"):
        raw = chat.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "re-price me"}], extra_headers=CACHE_ON)
        ids[name] = raw.headers["helicone-id"]
    mock_provider.script({"model": "claude-3-5-haiku-latest", "usage": {
        "input_tokens": 2000, "output_tokens": 100, "cache_read_input_tokens": 400,
        "cache_creation_input_tokens": 100}})
    raw_message = anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key="k", max_retries=0) \
        .messages.with_raw_response.create(model="claude-3-5-haiku-latest", max_tokens=50, extra_headers=SMALL,
                                           messages=[{"role": "user", "content": "re-price claude"}])
    ids["claude"] = raw_message.headers["helicone-id"]
    raw_stream = chat.chat.completions.with_raw_response.create(
        model="local-llm", stream=True, messages=[{"role": "user", "content": "no usage"}], extra_headers=SMALL)
    list(raw_stream.parse())
    ids["local"] = raw_stream.headers["helicone-id"]
    for name, prompt_tokens in (("big1", 150_000), ("big2", 150_000), ("big3", 250_000)):
        mock_provider.script({"model": "gpt-4o", "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 1000}})
        raw = chat.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": name}],
            extra_headers={"Helicone-Property-Workflow": "big"})
        ids[name] = raw.headers["helicone-id"]
    return {name: gw.row(request_id) for name, request_id in ids.items()}


def test_the_workload_has_the_tokens_the_expected_costs_are_computed_from(workload):
    tokens = {name: (row["input_tokens"], row["cached_input_tokens"], row["cache_write_input_tokens"],
                     row["output_tokens"], row["price_source"]) for name, row in workload.items()}
    assert tokens == {"gpt": (1000, 200, 0, 500, "genai-prices"), "hit": (1000, 200, 0, 500, "cache-hit"),
                      "claude": (2500, 400, 100, 100, "genai-prices"),
                      "local": (None, None, None, None, None),
                      "big1": (150_000, 0, 0, 1000, "genai-prices"), "big2": (150_000, 0, 0, 1000, "genai-prices"),
                      "big3": (250_000, 0, 0, 1000, "genai-prices")}
    assert workload["local"]["cost_usd"] is None


# claude-haiku-4-5 (genai-prices, anthropic): $1 input, $0.10 cache read, $1.25 cache write, $5 output per million.
HAIKU_GPT = (800 * Decimal(1) + 200 * Decimal("0.1") + 500 * Decimal(5)) / MTOK  # 0.00332
HAIKU_CLAUDE = (2000 * Decimal(1) + 400 * Decimal("0.1") + 100 * Decimal("1.25") + 100 * Decimal(5)) / MTOK
# gpt-4.1-mini (genai-prices, openai): $0.40 input, $0.10 cached input, $1.60 output per million; it has no
# cache-write price, so genai-prices charges those tokens as input.
MINI_GPT = (800 * Decimal("0.4") + 200 * Decimal("0.1") + 500 * Decimal("1.6")) / MTOK
MINI_CLAUDE = (2100 * Decimal("0.4") + 400 * Decimal("0.1") + 100 * Decimal("1.6")) / MTOK
# grok-3-mini (genai-prices, x-ai): $0.30 input, $0.075 cached input, $0.50 output per million; no cache-write price.
GROK_GPT = (800 * Decimal("0.3") + 200 * Decimal("0.075") + 500 * Decimal("0.5")) / MTOK
GROK_CLAUDE = (2100 * Decimal("0.3") + 400 * Decimal("0.075") + 100 * Decimal("0.5")) / MTOK
# command-r (genai-prices, cohere): $0.15 input, $0.60 output per million; no cached or cache-write price, so every
# input token is charged at the input price.
COMMAND_R_GPT = (1000 * Decimal("0.15") + 500 * Decimal("0.6")) / MTOK
COMMAND_R_CLAUDE = (2500 * Decimal("0.15") + 100 * Decimal("0.6")) / MTOK
# acme-tuned (config `pricing`): $3 input, $0.30 cached input, $12 output; cache writes are input.
TUNED_GPT = (800 * Decimal(3) + 200 * Decimal("0.3") + 500 * Decimal(12)) / MTOK
TUNED_CLAUDE = (2100 * Decimal(3) + 400 * Decimal("0.3") + 100 * Decimal(12)) / MTOK


def change_pct(as_usd: Decimal, real_usd: Decimal) -> Decimal:
    """The change from `real_usd` to `as_usd` in percent, to the hundredth (as JSON reads it with exact decimals)."""
    return (100 * (as_usd / real_usd - 1)).quantize(Decimal("0.01"), ROUND_HALF_UP)


@pytest.mark.parametrize("model, gpt_usd, claude_usd", [
    ("claude-haiku-4-5", HAIKU_GPT, HAIKU_CLAUDE),  # a bare name: the provider the gateway routes it to
    ("openai/gpt-4.1-mini", MINI_GPT, MINI_CLAUDE),
    ("grok-3-mini", GROK_GPT, GROK_CLAUDE),  # a bare name the built-in xai provider's `grok-*` routes
    ("command-r", COMMAND_R_GPT, COMMAND_R_CLAUDE),  # a bare name no provider routes: genai-prices finds cohere
    ("acme-tuned", TUNED_GPT, TUNED_CLAUDE),  # known only from the config's `pricing`
])
def test_costs_as_reprices_every_call_with_its_own_tokens(costs_gateway, workload, model, gpt_usd, claude_usd):
    result = llmtap(costs_gateway, "costs", "--as", model, "--property", "workflow=small", "--json")
    assert result.returncode == 0, result.stderr
    groups = {row["model"]: row for row in json_lines(result.stdout)}
    # The mock answers gpt-4o-mini as its snapshot, as OpenAI does.
    assert set(groups) == {"gpt-4o-mini-2024-07-18", "claude-3-5-haiku-latest", "local-llm"}
    gpt, claude, local = groups["gpt-4o-mini-2024-07-18"], groups["claude-3-5-haiku-latest"], groups["local-llm"]
    # The cache hit cost nothing, and would have cost nothing on the target either.
    assert (gpt["requests"], gpt["as_cost_usd"], gpt["not_repriced"]) == (2, gpt_usd, 0)
    assert gpt["cost_usd"] == workload["gpt"]["cost_usd"]
    assert gpt["change_pct"] == change_pct(gpt_usd, workload["gpt"]["cost_usd"])
    assert (claude["as_cost_usd"], claude["not_repriced"]) == (claude_usd, 0)
    assert claude["change_pct"] == change_pct(claude_usd, workload["claude"]["cost_usd"])
    # No tokens recorded: not re-priced, and not priced $0.
    assert (local["as_cost_usd"], local["change_pct"], local["not_repriced"]) == (None, None, 1)
    assert "1 call recorded no tokens" in result.stderr


def test_costs_as_table_shows_the_total_on_the_target_beside_the_real_one(costs_gateway, workload):
    result = llmtap(costs_gateway, "costs", "--as", "anthropic/claude-haiku-4-5", "--property", "workflow=small")
    assert result.returncode == 0, result.stderr
    assert "as if every call had used anthropic/claude-haiku-4-5" in result.stdout
    total = next(line for line in result.stdout.splitlines() if line.startswith("total"))
    real = workload["gpt"]["cost_usd"] + workload["claude"]["cost_usd"]
    assert format_usd(HAIKU_GPT + HAIKU_CLAUDE) in total
    assert f"{change_pct(HAIKU_GPT + HAIKU_CLAUDE, real):+.1f}%" in total
    assert "1 call recorded no tokens, so is not in the cost on anthropic/claude-haiku-4-5" in result.stdout


def test_costs_as_keeps_the_report_scope(costs_gateway, workload):
    result = llmtap(costs_gateway, "costs", "--as", "claude-haiku-4-5", "--by", "provider", "--then", "model",
                    "--property", "workflow=small", "--csv")
    assert result.returncode == 0, result.stderr
    header, *lines = result.stdout.splitlines()
    names = header.split(",")
    assert names[:2] == ["provider", "model"] and {"as_cost_usd", "change_pct", "not_repriced"} <= set(names)
    by_model = {line.split(",")[1]: dict(zip(names, line.split(","), strict=True)) for line in lines}
    assert by_model["claude-3-5-haiku-latest"]["provider"] == "anthropic"
    assert Decimal(by_model["claude-3-5-haiku-latest"]["as_cost_usd"]) == HAIKU_CLAUDE
    assert by_model["local-llm"]["as_cost_usd"] == "" and by_model["local-llm"]["not_repriced"] == "1"


def test_costs_as_prices_each_call_at_its_own_tier(costs_gateway, workload):
    # gemini-2.5-pro (genai-prices, google): $1.25 input and $10 output per million tokens for a call of up to
    # 200,000 input tokens, $2.50 and $15 for a larger one: each call's own size decides, not the group's sum.
    small = (150_000 * Decimal("1.25") + 1000 * Decimal(10)) / MTOK
    large = (250_000 * Decimal("2.5") + 1000 * Decimal(15)) / MTOK
    result = llmtap(costs_gateway, "costs", "--as", "google/gemini-2.5-pro", "--by", "property:workflow",
                    "--property", "workflow=big", "--json")
    assert result.returncode == 0, result.stderr
    [big] = json_lines(result.stdout)
    assert (big["workflow"], big["requests"], big["as_cost_usd"]) == ("big", 3, 2 * small + large)
    real = sum(workload[name]["cost_usd"] for name in ("big1", "big2", "big3"))
    assert (big["cost_usd"], big["change_pct"]) == (real, change_pct(2 * small + large, real))


def test_costs_as_an_unknown_model_is_a_command_line_error(costs_gateway, workload):
    result = llmtap(costs_gateway, "costs", "--as", "no-such-model-9000")
    assert result.returncode == 2
    assert "'--as'" in result.stderr and "no-such-model-9000" in result.stderr
    assert "Traceback" not in result.stderr
