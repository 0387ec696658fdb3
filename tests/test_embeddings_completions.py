"""OpenAI's Embeddings and legacy Completions through llmtap, both ways in: each call logged with its tokens and
its cost at genai-prices' published price, what the SDK gets being what the provider sent."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal

import openai
import pytest

from conftest import OPENAI_ENV_KEY, in_terminal, shared_gateway

MISTRAL_ENV_KEY = "mistral-llmtap-test-env-key"
AZURE_HOST = "azure-embeddings.test"  # a resource of the user's, declared as a provider of its own
gateway = shared_gateway(lambda mock: {"providers": {
    "mistral": {"upstream": mock.url},
    "my-azure": {"hosts": [AZURE_HOST], "upstream": mock.url, "prices_provider": "azure"},
}}, env={"MISTRAL_API_KEY": MISTRAL_ENV_KEY})


def client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)


def per_mtok(tokens: int, price: str) -> Decimal:
    return Decimal(tokens) * Decimal(price) / 10**6


# --- embeddings ---


def test_embeddings_through_the_gateway_are_logged_with_tokens_and_cost(gateway, mock_provider):
    texts = ["the first text to embed", "a second one"]
    raw = client(gateway).embeddings.with_raw_response.create(model="text-embedding-3-small", input=texts)
    embeddings = raw.parse()
    sent = mock_provider.requests()[-1]
    assert sent["path"] == "/v1/embeddings" and sent["headers"]["authorization"] == f"Bearer {OPENAI_ENV_KEY}"
    assert sent["body"]["encoding_format"] == "base64"  # the SDK's default: vectors come as base64 float32s
    assert all(isinstance(item["embedding"], str) for item in raw.http_response.json()["data"])
    # The same inputs as floats: the SDK decoded the base64 vectors to exactly what the mock sent.
    as_floats = client(gateway).embeddings.create(model="text-embedding-3-small", input=texts,
                                                  encoding_format="float")
    assert [len(e.embedding) for e in embeddings.data] == [1536, 1536]
    assert [e.embedding for e in embeddings.data] == [e.embedding for e in as_floats.data]
    row = gateway.row(raw.headers["helicone-id"])
    assert row["provider"] == "openai" and row["path"] == "/v1/embeddings" and row["model"] == "text-embedding-3-small"
    assert row["stream"] is False and row["price_source"] == "genai-prices"
    assert (row["input_tokens"], row["output_tokens"]) == (embeddings.usage.prompt_tokens, 0) == (8, 0)
    assert row["cost_usd"] == per_mtok(8, "0.02")  # text-embedding-3-small: $0.02 per million input tokens
    assert len(json.loads(row["response_body"])["data"]) == 2  # the answer is kept, vectors and all, within the cap


def test_embeddings_of_token_ids_are_priced_by_their_count(gateway):
    raw = client(gateway).embeddings.with_raw_response.create(
        model="text-embedding-3-large", input=[[101, 2023, 2003], [101, 102]], dimensions=256, encoding_format="float")
    embeddings = raw.parse()
    assert [len(e.embedding) for e in embeddings.data] == [256, 256]
    row = gateway.row(raw.headers["helicone-id"])
    assert row["input_tokens"] == 5 and row["cost_usd"] == per_mtok(5, "0.13")  # text-embedding-3-large: $0.13/M


def test_a_batch_of_embeddings_larger_than_the_body_cap_is_priced_and_its_row_stays_small(gateway):
    texts = [f"text number {n} of a large batch" for n in range(100)]  # 100 x 1,536 floats: ~1.5 MB of JSON
    raw = client(gateway).embeddings.with_raw_response.create(model="text-embedding-3-small", input=texts,
                                                              encoding_format="float")
    embeddings = raw.parse()
    assert len(embeddings.data) == 100 and all(len(e.embedding) == 1536 for e in embeddings.data)
    row = gateway.row(raw.headers["helicone-id"])
    logged = json.loads(row["response_body"])
    assert logged["llmtap_truncated"] is True and len(row["response_body"]) < 1.1 * 2**20  # the default 1 MiB cap
    # OpenAI puts the model and usage after the vectors: both are read from the end of the answer.
    assert row["model"] == "text-embedding-3-small" and row["input_tokens"] == embeddings.usage.prompt_tokens == 700
    assert row["cost_usd"] == per_mtok(700, "0.02")
    status, shown, errors = in_terminal(gateway.config_path, "logs", "show", raw.headers["helicone-id"])
    assert status == 0, errors
    assert "text number 0 of a large batch" in shown and "… and 95 more inputs" in shown
    assert "bytes of vectors, too many to keep" in shown and len(shown) < 10_000  # not a megabyte of numbers


def test_a_cached_embedding_is_served_free_with_the_same_vectors(gateway, mock_provider):
    headers = {"Helicone-Cache-Enabled": "true"}
    first = client(gateway).embeddings.create(model="text-embedding-3-small", input="embed me once",
                                              extra_headers=headers)
    raw = client(gateway).embeddings.with_raw_response.create(model="text-embedding-3-small", input="embed me once",
                                                              extra_headers=headers)
    assert raw.headers["helicone-cache"] == "HIT" and raw.parse().data[0].embedding == first.data[0].embedding
    assert len([r for r in mock_provider.requests() if r["path"] == "/v1/embeddings"]) == 1
    row = gateway.row(raw.headers["helicone-id"])
    assert row["cost_usd"] == 0 and row["cost_saved_usd"] == per_mtok(3, "0.02") and row["input_tokens"] == 3


def test_mistral_embeddings_are_routed_to_mistral_and_priced(gateway, mock_provider):
    raw = client(gateway).embeddings.with_raw_response.create(model="mistral-embed", input="bonjour le monde")
    assert len(raw.parse().data[0].embedding) == 1536
    assert mock_provider.requests()[-1]["headers"]["authorization"] == f"Bearer {MISTRAL_ENV_KEY}"
    row = gateway.row(raw.headers["helicone-id"])
    assert row["provider"] == "mistral" and row["input_tokens"] == 3
    assert row["cost_usd"] == per_mtok(3, "0.1")  # mistral-embed: $0.1 per million input tokens


def test_embeddings_for_a_provider_without_the_endpoint_is_a_400_naming_what_it_serves(gateway, mock_provider):
    with pytest.raises(openai.BadRequestError) as caught:
        client(gateway).embeddings.create(model="claude-haiku-4-5", input="no embeddings there")
    message = caught.value.body["message"]
    assert caught.value.body["type"] == "llmtap_unroutable_model" and "'anthropic'" in message
    assert message.endswith("it serves /v1/chat/completions, /v1/messages") and mock_provider.requests() == []


# --- legacy completions ---


@pytest.mark.parametrize("model, input_price, output_price", [
    ("gpt-3.5-turbo-instruct", "1.5", "2"),  # genai-prices: $1.50 / $2 per million tokens
    ("davinci-002", "2", "2"),
    ("babbage-002", "0.4", "0.4"),
])
def test_completions_are_logged_with_tokens_and_cost(gateway, model, input_price, output_price):
    raw = client(gateway).completions.with_raw_response.create(model=model, prompt="Say this is a test")
    completion = raw.parse()
    assert completion.choices[0].text == "Mock reply to: Say this is a test"
    row = gateway.row(raw.headers["helicone-id"])
    assert row["provider"] == "openai" and row["path"] == "/v1/completions" and row["model"] == model
    assert (row["input_tokens"], row["output_tokens"]) == (5, 8) == (
        completion.usage.prompt_tokens, completion.usage.completion_tokens)
    assert row["cost_usd"] == per_mtok(5, input_price) + per_mtok(8, output_price)


def test_streamed_completions_are_assembled_and_priced_without_showing_the_usage_llmtap_asked_for(
        gateway, mock_provider):
    stream = client(gateway).completions.create(
        model="gpt-3.5-turbo-instruct", prompt=["first prompt", "second prompt here"], stream=True,
        extra_headers={"Helicone-Property-Case": "completions-stream"})
    chunks = list(stream)
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
    assert texts == {0: "Mock reply to: first prompt", 1: "Mock reply to: second prompt here"}
    assert all(chunk.usage is None for chunk in chunks)  # the client did not ask for usage
    assert mock_provider.requests()[-1]["body"]["stream_options"] == {"include_usage": True}
    (row,) = gateway.rows("properties['case'] = 'completions-stream'")
    assert row["stream"] is True and (row["input_tokens"], row["output_tokens"]) == (5, 11)
    assert row["cost_usd"] == per_mtok(5, "1.5") + per_mtok(11, "2")
    assert [c["text"] for c in json.loads(row["response_body"])["choices"]] == [texts[0], texts[1]]
    assert row["ttft_ms"] <= row["latency_ms"]


def test_a_cached_completion_replays_as_a_stream_with_usage_when_asked(gateway, mock_provider):
    headers = {"Helicone-Cache-Enabled": "true"}
    first = client(gateway).completions.create(model="gpt-3.5-turbo-instruct", prompt="cache this completion",
                                               extra_headers=headers)
    stream = client(gateway).completions.with_raw_response.create(
        model="gpt-3.5-turbo-instruct", prompt="cache this completion", stream=True,
        stream_options={"include_usage": True}, extra_headers=headers)
    chunks = list(stream.parse())
    assert stream.headers["helicone-cache"] == "HIT"
    assert "".join(c.text for chunk in chunks for c in chunk.choices) == first.choices[0].text
    assert chunks[-1].usage.completion_tokens == first.usage.completion_tokens
    assert len([r for r in mock_provider.requests() if r["path"] == "/v1/completions"]) == 1
    row = gateway.row(stream.headers["helicone-id"])
    assert row["cache_status"] == "HIT" and row["cost_usd"] == 0
    assert row["cost_saved_usd"] == per_mtok(3, "1.5") + per_mtok(6, "2")


# --- the proxy way in ---


def test_embeddings_and_completions_through_the_proxy_way_in(gateway):
    program = textwrap.dedent("""
        import json, openai
        client = openai.OpenAI(api_key="sk-own", max_retries=0)
        raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="proxy embedding")
        stream = client.completions.with_raw_response.create(
            model="gpt-3.5-turbo-instruct", prompt="proxy completion", stream=True)
        text = "".join(c.text for chunk in stream.parse() for c in chunk.choices)
        print(json.dumps({"embedding": raw.headers["helicone-id"], "dimensions": len(raw.parse().data[0].embedding),
                          "completion": stream.headers["helicone-id"], "text": text}))
    """)
    result = subprocess.run([sys.executable, "-c", program], env=gateway.proxy_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["dimensions"] == 1536 and out["text"] == "Mock reply to: proxy completion"
    embedding = gateway.row(out["embedding"])
    assert embedding["way"] == "proxy" and embedding["host"] == "api.openai.com"
    assert embedding["input_tokens"] == 2 and embedding["cost_usd"] == per_mtok(2, "0.02")
    completion = gateway.row(out["completion"])
    assert completion["way"] == "proxy" and completion["stream"] is True
    assert (completion["input_tokens"], completion["output_tokens"]) == (2, 5)
    assert completion["cost_usd"] == per_mtok(2, "1.5") + per_mtok(5, "2")


def test_embeddings_at_an_azure_deployment_url_through_the_proxy_way_in(gateway, mock_provider):
    program = textwrap.dedent(f"""
        import json, openai
        client = openai.AzureOpenAI(azure_endpoint="https://{AZURE_HOST}", api_key="azure-own-key",
                                    api_version="2024-10-21", max_retries=0)
        raw = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="azure embedding")
        print(json.dumps({{"id": raw.headers["helicone-id"], "dimensions": len(raw.parse().data[0].embedding)}}))
    """)
    result = subprocess.run([sys.executable, "-c", program], env=gateway.proxy_env(), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    sent = mock_provider.requests()[-1]
    assert sent["path"].startswith("/openai/deployments/text-embedding-3-small/embeddings?api-version=")
    assert sent["headers"]["api-key"] == "azure-own-key" and out["dimensions"] == 1536
    row = gateway.row(out["id"])
    assert row["way"] == "proxy" and row["provider"] == "my-azure" and row["model"] == "text-embedding-3-small"
    assert row["input_tokens"] == 2 and row["cost_usd"] == per_mtok(2, "0.02")  # Azure's text-embedding-3-small
