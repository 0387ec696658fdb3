"""Honest numbers in the log: what costs nothing says why, `host` is where the client sent the call and `upstream`
where it really went, and `llmtap sql --format json` keeps bodies as JSON and money exact."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal

import openai
import pytest
from llmtap.config import ConfigError, parse_config
from llmtap.money import exact_decimal_text, format_usd
from llmtap.pricing import is_billed_endpoint

from conftest import ANTHROPIC_ENV_KEY, Gateway, MockProvider, curl, start_gateway, start_mock_provider, stop


@pytest.fixture(scope="module")
def second_mock() -> Iterator[MockProvider]:
    """Another provider's server, so that a fallback's `upstream` differs from the primary's."""
    mock = start_mock_provider()
    yield mock
    stop(mock.process)


@pytest.fixture(scope="module")
def gw(tmp_path_factory, mock_provider, second_mock) -> Iterator[Gateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("gateway"), mock_provider, {
        "providers": {
            "openai": {"upstream": mock_provider.url},
            "anthropic": {"upstream": second_mock.url},
            # A self-hosted model server (Ollama, vLLM): its calls cost 0 by design.
            "local": {"upstream": mock_provider.url, "models": ["llama*"], "free": True},
        },
        "fallbacks": {"models": {"gpt-4o": ["claude-3-5-haiku-latest"]}},
    })
    yield gateway
    gateway.stop()


def run_client(gateway: Gateway, program: str) -> dict:
    """Run `program` in a fresh Python with the proxy environment (the no-code-change way in); it prints JSON."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(program)], env=gateway.proxy_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def llmtap_sql(gateway: Gateway, query: str, output_format: str) -> str:
    result = subprocess.run([sys.executable, "-m", "llmtap.cli", "sql", query, "--config", str(gateway.config_path),
                             "--format", output_format], cwd=gateway.workdir, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


# ------------------------------------------------------------------------------------------------ not billed

def test_listing_models_and_uploading_a_file_through_the_proxy_are_not_billed(gw, mock_provider):
    out = run_client(gw, """
        import json, openai
        client = openai.OpenAI(api_key="sk-app-own-key", max_retries=0)
        listed = client.models.with_raw_response.list()
        uploaded = client.files.with_raw_response.create(file=("notes.jsonl", b'{"a": 1}\\n'), purpose="batch")
        print(json.dumps({"models": [m.id for m in listed.parse().data], "list_id": listed.headers["helicone-id"],
                          "file": uploaded.parse().filename, "upload_id": uploaded.headers["helicone-id"]}))
    """)
    assert "gpt-4o-mini" in out["models"] and out["file"] == "notes.jsonl"
    for request_id, method, path in ((out["list_id"], "GET", "/v1/models"), (out["upload_id"], "POST", "/v1/files")):
        row = gw.row(request_id)
        assert (row["method"], row["path"], row["status"]) == (method, path, 200)
        assert row["price_source"] == "not-billed" and row["cost_usd"] == 0 and row["price_error"] is None
        assert row["way"] == "proxy" and row["host"] == "api.openai.com" and row["upstream"] == mock_provider.url


def test_an_llm_answer_without_usage_stays_unpriced_with_its_reason(gw, mock_provider):
    answer = {"id": "chatcmpl-x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}
    mock_provider.script({"status": 200, "body": answer})
    result = curl("-x", gw.proxy_url, "--cacert", str(gw.ca_cert), "https://api.openai.com/v1/chat/completions",
                  "-H", "authorization: Bearer sk-app", "-H", "content-type: application/json",
                  "-d", json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "no usage"}]}))
    assert result.status == 200
    row = gw.row(result.headers["helicone-id"])
    assert row["cost_usd"] is None and row["price_source"] is None
    assert row["price_error"] == "the answer reported no token usage"


@pytest.mark.parametrize(("method", "path", "billed"), [
    ("POST", "/v1/chat/completions", True),
    ("GET", "/v1/models", False),
    ("GET", "/v1/chat/completions", False),  # listing stored completions
    ("DELETE", "/v1/files/file-1", False),
    ("POST", "/v1/files", False),
    ("POST", "/v1/uploads/upload-1/parts", False),
    ("POST", "/v1/messages/count_tokens", False),
    ("POST", "/v1/batches/batch-1/cancel", False),
    ("POST", "/v1/images/generations", None),  # billed, but llmtap does not read its usage: NULL with a reason
    ("POST", "/v1beta/models/gemini-2.0-flash:countTokens", False),
    ("GET", "/v1/realtime", None),  # a Realtime session: a GET upgraded to a WebSocket, billed
])
def test_which_endpoints_providers_bill(method, path, billed):
    reads_usage = path in ("/v1/chat/completions", "/v1/messages")
    assert is_billed_endpoint(method, path, reads_usage) is billed


# ------------------------------------------------------------------------------------------------ free providers

def test_a_provider_marked_free_costs_zero_by_design_with_its_tokens_counted(gw):
    client = openai.OpenAI(base_url=gw.base_url, api_key="ollama", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="llama3.2", messages=[{"role": "user", "content": "a local model answers"}])
    usage = raw.parse().usage
    row = gw.row(raw.headers["helicone-id"])
    assert row["provider"] == "local" and row["model"] == "llama3.2"
    assert row["cost_usd"] == 0 and row["price_source"] == "free" and row["price_error"] is None
    assert (row["input_tokens"], row["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens) != (0, 0)


def test_free_takes_only_true_or_false():
    with pytest.raises(ConfigError, match="providers.local.free"):
        parse_config({"providers": {"local": {"upstream": "http://127.0.0.1:11434", "free": "yes"}}}, None)
    config = parse_config({"providers": {"local": {"upstream": "http://127.0.0.1:11434", "free": True}}}, None)
    assert config.provider_named("local").free and not config.provider_named("openai").free


# ------------------------------------------------------------------------------------------------ host, upstream

def test_gateway_rows_name_the_gateway_as_host_and_the_provider_as_upstream(gw, mock_provider):
    client = openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "where did I go"}])
    row = gw.row(raw.headers["helicone-id"])
    assert row["way"] == "gateway" and row["host"] == f"127.0.0.1:{gw.gateway_port}"
    assert row["upstream"] == mock_provider.url


def test_a_fallback_row_names_the_provider_that_answered_as_upstream(gw, mock_provider, second_mock):
    mock_provider.script({"status": 503, "model": "gpt-4o"})
    client = openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "fall back"}],
        extra_headers={"Helicone-Property-Step": "fallback"})
    row = gw.row(raw.headers["helicone-id"])
    assert row["fallback_from"] == "gpt-4o" and row["provider"] == "anthropic"
    assert row["host"] == f"127.0.0.1:{gw.gateway_port}" and row["upstream"] == second_mock.url
    assert second_mock.requests()[-1]["headers"]["authorization"] == f"Bearer {ANTHROPIC_ENV_KEY}"


def test_proxy_rows_name_the_provider_host_and_where_it_was_sent(gw, second_mock):
    result = curl("-x", gw.proxy_url, "--cacert", str(gw.ca_cert), "https://api.anthropic.com/v1/messages",
                  "-H", "x-api-key: sk-ant-app", "-H", "anthropic-version: 2023-06-01",
                  "-H", "content-type: application/json",
                  "-d", json.dumps({"model": "claude-3-5-haiku-latest", "max_tokens": 20,
                                    "messages": [{"role": "user", "content": "through the proxy"}]}))
    assert result.status == 200
    row = gw.row(result.headers["helicone-id"])
    assert row["way"] == "proxy" and row["host"] == "api.anthropic.com" and row["upstream"] == second_mock.url


def test_calls_llmtap_answers_itself_have_no_upstream(gw):
    client = openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
    question = [{"role": "user", "content": "cache me"}]
    ids = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=question, extra_headers={"Helicone-Cache-Enabled": "true"})
        ids.append(raw.headers["helicone-id"])
    miss, hit = gw.row(ids[0]), gw.row(ids[1])
    assert (miss["cache_status"], hit["cache_status"]) == ("MISS", "HIT")
    assert miss["upstream"] is not None and hit["upstream"] is None
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="no-such-model", messages=question)
    row = gw.row(refused.value.response.headers["helicone-id"])
    assert row["host"] == f"127.0.0.1:{gw.gateway_port}" and row["upstream"] is None


# ------------------------------------------------------------------------------------------------ llmtap sql

def test_sql_json_keeps_bodies_as_json_and_money_exact(gw, mock_provider):
    mock_provider.script({"status": 503, "model": "gpt-4o"})
    client = openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "keep me as JSON"}],
        extra_headers={"Helicone-Property-Step": "json"})
    request_id = raw.headers["helicone-id"]
    cost = gw.row(request_id)["cost_usd"]
    assert isinstance(cost, Decimal) and 0 < cost < Decimal("0.0001")  # small enough that a float prints 1e-05
    query = ("SELECT request_id, cost_usd, sum(cost_usd) OVER () AS total_cost_usd, request_body, response_body, "
             f"attempt_log, properties, notes, created_at FROM requests WHERE request_id = '{request_id}'")

    line = llmtap_sql(gw, query, "json").strip()
    money = dict(re.findall(r'"(cost_usd|total_cost_usd)": ([^,}]+)', line))
    assert set(money) == {"cost_usd", "total_cost_usd"}
    assert not any("e" in text.lower() for text in money.values()), money  # no exponent, no float noise
    row = json.loads(line, parse_float=Decimal)
    assert row["cost_usd"] == cost and row["total_cost_usd"] == cost
    assert f'"cost_usd": {exact_decimal_text(cost)},' in line
    assert row["request_body"]["messages"] == [{"role": "user", "content": "keep me as JSON"}]
    assert row["response_body"]["choices"][0]["message"]["content"] == "Mock reply to: keep me as JSON"
    assert [a["status"] for a in row["attempt_log"]] == [503, 200]
    assert row["properties"] == {"step": "json"} and row["notes"] is None
    assert row["created_at"].startswith("20")

    (csv_row,) = list(csv.DictReader(io.StringIO(llmtap_sql(gw, query, "csv"))))
    assert csv_row["cost_usd"] == exact_decimal_text(cost)  # the same exact text as JSON
    assert json.loads(csv_row["request_body"]) == row["request_body"] and json.loads(csv_row["attempt_log"])

    table = llmtap_sql(gw, f"SELECT cost_usd FROM requests WHERE request_id = '{request_id}'", "table")
    assert format_usd(cost) in table  # a person's table shows money as mitmweb does


def test_sql_table_shows_money_as_everywhere_else(gw):
    table = llmtap_sql(gw, "SELECT 0.000115::DECIMAL(18, 10) AS cost_usd, 1234.5::DECIMAL(18, 10) AS spent_usd, "
                           "avg(x) AS avg_cost, 0.000115::DECIMAL(18, 10) AS ratio "
                           "FROM (VALUES (0.0000115::DOUBLE), (0.0000116::DOUBLE)) AS t(x)", "table")
    assert "$0.000115" in table and "$1,234.50" in table and "$0.0000116" in table and "e-05" not in table
    assert "0.000115 " in table.replace("$0.000115", "")  # not money: the exact decimal


# ------------------------------------------------------------------------------------------------ properties as sent

def test_a_property_named_like_the_spools_own_tags_is_logged_as_sent_and_logging_goes_on(gw):
    """The spool marks a date or a Decimal as a one-key object ({"$decimal": ...}); a client's property of that name
    once read back as one, and the writer failed on it for good: no call was logged after it."""
    client = openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
    ids = []
    for headers in ({"Helicone-Property-$decimal": "not a number"}, {"Helicone-Property-$datetime": "1.5"}, {}):
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "tagged"}], extra_headers=headers)
        ids.append(raw.headers["helicone-id"])
    assert [gw.row(request_id)["properties"] for request_id in ids] == [
        {"$decimal": "not a number"}, {"$datetime": "1.5"}, {}]
