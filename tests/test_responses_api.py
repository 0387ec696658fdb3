"""OpenAI's Responses API through llmtap: logged with its tokens and cost, streamed, cached, both ways in."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal

import openai
import pytest


def client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)


def test_responses_call_is_logged_with_tokens_and_cost(gateway):
    raw = client(gateway).responses.with_raw_response.create(
        model="gpt-4o-mini", instructions="Be brief.", input="What is an AI gateway?",
        extra_headers={"Helicone-Property-Api": "responses"})
    response = raw.parse()
    assert response.output_text == "Mock reply to: What is an AI gateway?"
    row = gateway.row(raw.headers["helicone-id"])
    assert row["provider"] == "openai" and row["path"] == "/v1/responses" and row["model"] == "gpt-4o-mini-2024-07-18"
    assert (row["input_tokens"], row["output_tokens"]) == (response.usage.input_tokens, response.usage.output_tokens)
    assert row["cost_usd"] == (Decimal(row["input_tokens"]) * Decimal("0.15") + Decimal(row["output_tokens"]) * Decimal("0.6")) / 10**6


def test_streamed_responses_are_assembled_for_the_row(gateway):
    with client(gateway).responses.stream(model="gpt-4o-mini", input="stream a response",
                                          extra_headers={"Helicone-Property-Case": "responses-stream"}) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Mock reply to: stream a response"
    (row,) = gateway.rows("properties['case'] = 'responses-stream'")
    assert row["stream"] is True and row["output_tokens"] == final.usage.output_tokens
    assert json.loads(row["response_body"])["output"][0]["content"][0]["text"] == final.output_text
    assert row["ttft_ms"] <= row["latency_ms"] and row["cost_usd"] > 0


def test_a_cached_response_replays_as_a_responses_stream(gateway, mock_provider):
    question = "cache my response"
    headers = {"Helicone-Cache-Enabled": "true"}
    first = client(gateway).responses.create(model="gpt-4o-mini", input=question, extra_headers=headers)
    with client(gateway).responses.stream(model="gpt-4o-mini", input=question, extra_headers=headers) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert final.output_text == first.output_text and final.usage.output_tokens == first.usage.output_tokens
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert len([r for r in mock_provider.requests() if r["path"] == "/v1/responses" and r["body"]["input"] == question]) == 1


def test_responses_through_the_proxy_way_in(gateway):
    program = textwrap.dedent("""
        import json, openai
        raw = openai.OpenAI(api_key="sk-own", max_retries=0).responses.with_raw_response.create(
            model="gpt-4o", input="proxy responses")
        print(json.dumps({"id": raw.headers["helicone-id"], "text": raw.parse().output_text}))
    """)
    result = subprocess.run([sys.executable, "-c", program], env=gateway.proxy_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    row = gateway.row(out["id"])
    assert row["way"] == "proxy" and row["model"] == "gpt-4o-2024-08-06" and row["cost_usd"] > 0


def test_responses_for_a_provider_without_the_api_is_a_400(gateway):
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway).responses.create(model="claude-haiku-4-5", input="no such API there")
    assert caught.value.body["type"] == "llmtap_unroutable_model" and "anthropic" in caught.value.body["message"]
