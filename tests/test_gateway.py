"""The base-URL way in, end to end: official SDKs and curl -> `llmtap start` -> mock provider -> DuckDB row."""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal

import anthropic
import openai
import pytest

from conftest import ANTHROPIC_ENV_KEY, OPENAI_ENV_KEY, curl, free_port


def openai_client(gateway, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=kw.pop("api_key", "your-helicone-api-key"), max_retries=0, **kw)


def anthropic_client(gateway, **kw) -> anthropic.Anthropic:
    # The Anthropic SDK appends /v1/messages itself, so its base URL is the gateway root.
    return anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key="unused", max_retries=0, **kw)


def test_chat_call_is_logged_with_tokens_cost_and_tags(gateway):
    client = openai_client(gateway)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "What is an AI gateway?"}],
        extra_headers={
            "Helicone-Property-Feature": "document-summary",
            "Helicone-Property-Environment": "production",
            "Helicone-User-Id": "user_42",
            "Helicone-Session-Id": "s-1",
            "Helicone-Session-Path": "/research/step1",
            "Helicone-Session-Name": "Research run",
        },
    )
    completion = raw.parse()
    request_id = raw.headers["helicone-id"]
    row = gateway.row(request_id)
    assert completion.choices[0].message.content == "Mock reply to: What is an AI gateway?"
    assert row["way"] == "gateway" and row["provider"] == "openai" and row["status"] == 200
    assert row["model_requested"] == "gpt-4o-mini" and row["model"] == "gpt-4o-mini-2024-07-18"
    assert (row["input_tokens"], row["output_tokens"]) == (completion.usage.prompt_tokens, completion.usage.completion_tokens)
    assert row["total_tokens"] == completion.usage.total_tokens
    # gpt-4o-mini: $0.15 / $0.60 per million tokens
    expected = (Decimal(row["input_tokens"]) * Decimal("0.15") + Decimal(row["output_tokens"]) * Decimal("0.6")) / 10**6
    assert row["cost_usd"] == expected and row["price_source"] == "genai-prices"
    # The Python SDKs send header names in lower case, so that is the case the properties arrive in.
    assert row["properties"] == {"feature": "document-summary", "environment": "production"}
    assert (row["user_id"], row["session_id"], row["session_path"], row["session_name"]) == (
        "user_42", "s-1", "/research/step1", "Research run")
    assert row["latency_ms"] > 0 and row["ttft_ms"] > 0 and row["stream"] is False
    assert json.loads(row["request_body"])["messages"][0]["content"] == "What is an AI gateway?"
    assert json.loads(row["response_body"])["choices"][0]["message"]["content"] == completion.choices[0].message.content


def test_ratelimit_headers_are_queryable(gateway):
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "rate limits please"}])
    request_id = raw.headers["helicone-id"]
    gateway.row(request_id)
    (remaining, limit), = gateway.query(
        "SELECT ratelimit['x-ratelimit-remaining-tokens'], ratelimit['x-ratelimit-limit-requests'] "
        f"FROM requests WHERE request_id = '{request_id}'")
    assert remaining == raw.headers["x-ratelimit-remaining-tokens"] and limit == "10000"


def test_provider_key_is_injected_and_helicone_headers_never_reach_the_provider(gateway, mock_provider):
    openai_client(gateway, api_key="client-sent-key").chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "strip"}],
        extra_headers={"Helicone-Property-Secret": "x", "helicone-user-id": "u", "Helicone-Cache-Enabled": "false"},
    )
    (seen,) = mock_provider.requests()
    assert seen["headers"]["authorization"] == f"Bearer {OPENAI_ENV_KEY}"
    assert not [name for name in seen["headers"] if name.startswith("helicone-")]


def test_no_key_or_auth_header_reaches_the_database(gateway):
    raw = openai_client(gateway, api_key="sk-client-secret-123").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "secrets"}])
    row = gateway.row(raw.headers["helicone-id"])
    everything = json.dumps(row, default=str)
    assert "sk-client-secret-123" not in everything and OPENAI_ENV_KEY not in everything
    assert row["key_hash"].startswith("sha256:")


def test_streamed_chat_reaches_the_client_and_is_logged_with_exact_usage(gateway, mock_provider):
    client = openai_client(gateway)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "stream me a reply"}],
    ) as response:
        request_id = response.headers["helicone-id"]
        chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Mock reply to: stream me a reply"
    # The client did not ask for usage, so it sees no usage chunk; llmtap asked the provider for it anyway.
    assert all(c["choices"] for c in chunks)
    assert mock_provider.requests()[-1]["body"]["stream_options"] == {"include_usage": True}
    row = gateway.row(request_id)
    assert row["stream"] is True and row["input_tokens"] > 0 and row["output_tokens"] == len(text.split())
    assert row["cost_usd"] > 0 and row["ttft_ms"] <= row["latency_ms"]
    assert json.loads(row["response_body"])["choices"][0]["message"]["content"] == text


def test_stream_that_asked_for_usage_keeps_its_usage_chunk(gateway):
    stream = openai_client(gateway).chat.completions.create(
        model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "with usage"}],
    )
    chunks = list(stream)
    # "Mock reply to: with usage": five words
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_stream_arrives_as_it_is_generated_not_buffered(fresh_gateway, slow_mock_provider):
    gateway = fresh_gateway(mock=slow_mock_provider)
    started = time.monotonic()
    arrivals = []
    for chunk in openai_client(gateway).chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "one two three four five"}],
    ):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    # 8 words, 150 ms apart at the provider: a buffering gateway would deliver them all at once.
    assert len(arrivals) == 8 and arrivals[-1] - arrivals[0] > 0.8


def test_anthropic_messages_through_the_gateway(gateway, mock_provider):
    client = anthropic_client(gateway)
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, system="Be brief.",
        messages=[{"role": "user", "content": "hello claude"}],
    )
    message = raw.parse()
    assert message.content[0].text == "Mock reply to: hello claude"
    assert mock_provider.requests()[-1]["headers"]["x-api-key"] == ANTHROPIC_ENV_KEY
    row = gateway.row(raw.headers["helicone-id"])
    assert row["provider"] == "anthropic" and row["path"] == "/v1/messages"
    assert (row["input_tokens"], row["output_tokens"]) == (message.usage.input_tokens, message.usage.output_tokens)
    # claude-sonnet-4-6: $3 / $15 per million tokens
    assert row["cost_usd"] == (Decimal(row["input_tokens"]) * 3 + Decimal(row["output_tokens"]) * 15) / 10**6
    assert row["ratelimit"]["anthropic-ratelimit-requests-limit"] == "10000"


def test_anthropic_stream_helper_and_cache_read_and_write_tokens_are_priced(gateway, mock_provider):
    mock_provider.script({"usage": {"cache_read_input_tokens": 1000, "cache_creation_input_tokens": 400}})
    with anthropic_client(gateway).messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": "stream claude"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        request_id = stream.response.headers["helicone-id"]
    assert text == "Mock reply to: stream claude"
    row = gateway.row(request_id)
    assert row["stream"] is True and (row["cached_input_tokens"], row["cache_write_input_tokens"]) == (1000, 400)
    assert row["output_tokens"] == final.usage.output_tokens
    # Anthropic's input_tokens leave cache reads and writes out; the row's input_tokens counts them all.
    assert row["input_tokens"] == final.usage.input_tokens + 1000 + 400
    # claude-sonnet-4-6: input $3, cache read $0.30 (0.1x), cache write $3.75 (1.25x), output $15 per million
    expected = (Decimal(final.usage.input_tokens) * 3 + 1000 * Decimal("0.3") + 400 * Decimal("3.75")
                + Decimal(row["output_tokens"]) * 15) / 10**6
    assert row["cost_usd"] == expected


def test_anthropic_cache_read_and_write_tokens_are_priced_apart(gateway, mock_provider):
    mock_provider.script({"usage": {"input_tokens": 30, "output_tokens": 20, "cache_read_input_tokens": 5000,
                                    "cache_creation_input_tokens": 2000}})
    raw = anthropic_client(gateway).messages.with_raw_response.create(
        model="claude-3-5-haiku-latest", max_tokens=100, messages=[{"role": "user", "content": "cached claude"}])
    assert raw.parse().usage.cache_read_input_tokens == 5000
    row = gateway.row(raw.headers["helicone-id"])
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_input_tokens"]) == (7030, 5000, 2000)
    # claude-3-5-haiku: input $0.80, cache read $0.08, cache write $1, output $4 per million tokens
    expected = (30 * Decimal("0.8") + 5000 * Decimal("0.08") + 2000 * Decimal("1") + 20 * Decimal("4")) / 10**6
    assert row["cost_usd"] == expected == Decimal("0.002504")


@pytest.mark.parametrize("stream", [False, True])
def test_openai_cached_input_and_reasoning_tokens_are_priced_apart(gateway, mock_provider, stream):
    mock_provider.script({"usage": {"prompt_tokens": 2000, "completion_tokens": 300,
                                    "prompt_tokens_details": {"cached_tokens": 1500},
                                    "completion_tokens_details": {"reasoning_tokens": 200}}})
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model="o4-mini", messages=[{"role": "user", "content": "think, cached"}], stream=stream)
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) == (
            "Mock reply to: think, cached")
    row = gateway.row(raw.headers["helicone-id"])
    assert row["stream"] is stream and row["model"] == "o4-mini"
    assert (row["input_tokens"], row["cached_input_tokens"]) == (2000, 1500)
    assert (row["output_tokens"], row["reasoning_tokens"]) == (300, 200)  # reasoning is part of the output
    # o4-mini: input $1.10, cached input $0.275, output $4.40 per million tokens
    expected = (500 * Decimal("1.1") + 1500 * Decimal("0.275") + 300 * Decimal("4.4")) / 10**6
    assert row["cost_usd"] == expected == Decimal("0.0022825")


def test_claude_through_the_openai_compatible_endpoint(gateway, mock_provider):
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model="claude-sonnet-4-6", messages=[{"role": "user", "content": "compat"}])
    seen = mock_provider.requests()[-1]
    assert seen["path"] == "/v1/chat/completions" and seen["headers"]["authorization"] == f"Bearer {ANTHROPIC_ENV_KEY}"
    row = gateway.row(raw.headers["helicone-id"])
    assert row["provider"] == "anthropic" and row["cost_usd"] > 0


def test_explicit_provider_slash_model_routes_and_strips_the_prefix(gateway, mock_provider):
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model="openai/my-private-model", messages=[{"role": "user", "content": "explicit"}])
    assert mock_provider.requests()[-1]["body"]["model"] == "my-private-model"
    row = gateway.row(raw.headers["helicone-id"])
    assert row["provider"] == "openai" and row["model_requested"] == "openai/my-private-model"
    assert json.loads(row["request_body"])["model"] == "openai/my-private-model"
    # genai-prices does not know this model: the cost is unknown, not zero.
    assert row["cost_usd"] is None and "my-private-model" in row["price_error"]


def test_unroutable_model_gets_400_naming_routable_models_and_is_logged(gateway, mock_provider):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client(gateway).chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    error = caught.value.body
    assert error["type"] == "llmtap_unroutable_model" and "gpt-*" in error["message"]
    assert mock_provider.requests() == []
    row = gateway.row(caught.value.response.headers["helicone-id"])
    assert row["status"] == 400 and row["model_requested"] == "no-such-model" and "llmtap_unroutable_model" in row["error"]


@pytest.mark.parametrize("header, value", [
    ("Helicone-Cache-Enabled", "yes"),
    ("Helicone-Request-Id", "not-a-uuid"),
    ("Helicone-Retry-Num", "many"),
    ("Helicone-RateLimit-Policy", "lots"),
])
def test_malformed_helicone_header_gets_400_naming_it_and_is_logged(gateway, mock_provider, header, value):
    result = curl(f"{gateway.base_url}/chat/completions", "-H", "content-type: application/json",
                  "-H", f"{header}: {value}", "-d", '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}')
    assert result.status == 400
    error = result.json()["error"]
    assert error["type"] == "llmtap_invalid_header" and error["header"] == header and error["message"]
    assert mock_provider.requests() == []
    row = gateway.row(result.headers["helicone-id"])
    assert row["status"] == 400 and error["message"] in row["error"]


def test_body_that_is_not_json_gets_400_and_is_logged(gateway, mock_provider):
    result = curl(f"{gateway.base_url}/chat/completions", "-H", "Helicone-Property-BodyCase: bad-body",
                  "-d", "this is not json")
    assert result.status == 400 and result.json()["error"]["type"] == "llmtap_invalid_body"
    assert mock_provider.requests() == []
    (row,) = gateway.rows("properties['bodycase'] = 'bad-body'")  # stored lower-cased, as Helicone does
    assert row["status"] == 400 and json.loads(row["request_body"]) == "this is not json"


def test_unknown_gateway_path_gets_404_json(gateway):
    result = curl(f"{gateway.base_url}/images/generations", "-d", "{}")
    error = result.json()["error"]
    assert result.status == 404 and error["type"] == "llmtap_unknown_endpoint"
    assert "POST /v1/embeddings" in error["message"] and "GET /v1/models" in error["message"]  # what to use instead


def test_curl_without_v1_as_in_the_seed_base_url(gateway):
    result = curl(f"http://127.0.0.1:{gateway.gateway_port}/chat/completions",
                  "-H", "Authorization: Bearer anything", "-H", "Content-Type: application/json",
                  "-d", '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}')
    assert result.json()["choices"][0]["message"]["content"] == "Mock reply to: Hello!"


def test_helicone_request_id_names_the_row(gateway):
    request_id = str(uuid.uuid4())
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "my id"}],
        extra_headers={"Helicone-Request-Id": request_id})
    assert raw.headers["helicone-id"] == request_id
    assert gateway.row(request_id)["status"] == 200


def test_omit_request_and_response_bodies_keep_tokens_and_cost(gateway):
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "private"}],
        extra_headers={"Helicone-Omit-Request": "true", "Helicone-Omit-Response": "true"})
    row = gateway.row(raw.headers["helicone-id"])
    assert row["request_body"] is None and row["response_body"] is None
    assert row["input_tokens"] > 0 and row["cost_usd"] > 0


def test_property_userid_counts_as_the_user(gateway):
    raw = openai_client(gateway).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "who"}],
        extra_headers={"Helicone-Property-UserId": "student_1"})
    assert gateway.row(raw.headers["helicone-id"])["user_id"] == "student_1"


def test_provider_error_reaches_the_client_as_is_and_is_logged(gateway, mock_provider):
    mock_provider.script({"status": 503, "headers": {"retry-after": "7"}})
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client(gateway).chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 503
    row = gateway.row(caught.value.response.headers["helicone-id"])
    assert row["status"] == 503 and row["error"].startswith("server_error")
    assert row["ratelimit"]["retry-after"] == "7" and row["cost_usd"] == 0


def test_gateway_keys_refuse_calls_without_a_valid_key(fresh_gateway, mock_provider):
    gateway = fresh_gateway({"gateway": {"keys": [{"owner": "alice", "key": "llmtap-alice-key"}]}})
    for auth in (["-H", "Authorization: Bearer wrong-key"], []):
        result = curl(f"{gateway.base_url}/chat/completions", *auth,
                      "-d", '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}')
        assert result.status == 401 and result.json()["error"]["type"] == "llmtap_unauthorized"
    assert mock_provider.requests() == []
    ok = openai_client(gateway, api_key="llmtap-alice-key").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    alt = openai_client(gateway, api_key="ignored").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}],
        extra_headers={"Helicone-Auth": "Bearer llmtap-alice-key"})
    for raw in (ok, alt):
        row = gateway.row(raw.headers["helicone-id"])
        assert row["key_owner"] == "alice" and row["status"] == 200
    assert mock_provider.requests()[-1]["headers"]["authorization"] == f"Bearer {OPENAI_ENV_KEY}"
    assert len(gateway.rows("status = 401")) == 2


def test_unreachable_upstream_is_a_502_and_still_logged(fresh_gateway):
    closed_port = free_port()
    gateway = fresh_gateway({"providers": {"openai": {"upstream": f"http://127.0.0.1:{closed_port}"}}})
    result = curl(f"{gateway.base_url}/chat/completions", "-H", "Helicone-Property-Case: unreachable",
                  "-d", '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}')
    assert result.status == 502
    (row,) = gateway.rows("properties['case'] = 'unreachable'")
    assert row["status"] == 502 and "connect" in row["error"].lower()
    assert row["cost_usd"] == 0 and row["price_source"] == "not-billed"
