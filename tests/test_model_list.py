"""`GET /v1/models` on the gateway: what it routes, in OpenAI's list format, so an SDK's `client.models.list()` and
`retrieve()` work against llmtap; answered by llmtap itself (no provider sees it), logged and not billed."""

from __future__ import annotations

import json
from decimal import Decimal

import openai
import pytest

from conftest import curl, shared_gateway

PRICING = [
    # A fine-tune the `gpt-*` pattern routes to OpenAI by its own name.
    {"model": "gpt-4o-mini-acme", "input_per_mtok": 1, "output_per_mtok": 2},
    # A private model no pattern routes: reachable as openai/acme-private.
    {"model": "acme-private", "provider": "openai", "input_per_mtok": 1, "output_per_mtok": 2},
    {"model": "acme-*", "input_per_mtok": 1, "output_per_mtok": 2},  # a pattern names no one model
]
models_gateway = shared_gateway({"pricing": PRICING})


def client(gw, api_key: str = "k") -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=api_key, max_retries=0)


def test_sdk_lists_the_routable_models_each_owned_by_its_provider(models_gateway, mock_provider):
    raw = client(models_gateway).models.with_raw_response.list()
    owners = {model.id: model.owned_by for model in raw.parse()}
    assert owners["gpt-4o-mini"] == "openai" and owners["gpt-4o"] == "openai"
    assert owners["claude-haiku-4-5"] == "anthropic" and owners["claude-sonnet-4-5"] == "anthropic"
    assert owners["gemini-2.5-pro"] == "google"
    assert owners["meta-llama/llama-4-scout-17b-16e-instruct"] == "groq"
    # genai-prices' google entry prices Claude on Vertex too; the gateway sends claude-* to Anthropic.
    assert not any(name.startswith("claude-") for name, owner in owners.items() if owner != "anthropic")
    assert not any(name.endswith(("-", ":")) for name in owners)  # genai-prices' prefixes for fine-tune ids
    assert mock_provider.requests() == []  # llmtap answered itself
    listing = json.loads(raw.content)
    assert listing["object"] == "list"
    assert all(set(entry) == {"id", "object", "created", "owned_by"} and entry["object"] == "model"
               for entry in listing["data"])
    row = models_gateway.row(raw.headers["helicone-id"])
    assert (row["method"], row["path"], row["status"], row["provider"], row["upstream"]) == (
        "GET", "/v1/models", 200, None, None)
    assert (row["cost_usd"], row["price_source"], row["error"]) == (Decimal(0), "not-billed", None)


def test_models_named_in_pricing_are_listed(models_gateway):
    owners = {model.id: model.owned_by for model in client(models_gateway).models.list()}
    assert owners["gpt-4o-mini-acme"] == "openai"
    assert owners["openai/acme-private"] == "openai"
    assert "acme-*" not in owners and "acme-private" not in owners


def test_sdk_retrieves_one_model(models_gateway):
    model = client(models_gateway).models.retrieve("gpt-4o-mini")
    assert (model.id, model.object, model.owned_by) == ("gpt-4o-mini", "model", "openai")
    slashed = client(models_gateway).models.retrieve("meta-llama/llama-4-scout-17b-16e-instruct")
    assert slashed.owned_by == "groq"


def test_an_unlisted_model_is_not_found_in_openais_error_shape(models_gateway):
    with pytest.raises(openai.NotFoundError) as caught:
        client(models_gateway).models.retrieve("no-such-model")
    assert caught.value.code == "model_not_found" and "no-such-model" in caught.value.message
    row = models_gateway.row(caught.value.response.headers["helicone-id"])
    assert row["status"] == 404 and row["price_source"] == "not-billed"


def test_models_without_v1_as_helicones_gateway_accepts(models_gateway):
    result = curl(f"http://127.0.0.1:{models_gateway.gateway_port}/models")
    assert result.status == 200 and "gpt-4o-mini" in {entry["id"] for entry in result.json()["data"]}


def test_a_gateway_key_is_still_required_to_list_models(fresh_gateway, mock_provider):
    gw = fresh_gateway({"gateway": {"keys": [{"owner": "team", "key": "gk-models"}]}})
    with pytest.raises(openai.AuthenticationError):
        client(gw, api_key="not-a-gateway-key").models.list()
    assert curl(f"{gw.base_url}/models").status == 401  # no key at all
    assert "gpt-4o-mini" in {model.id for model in client(gw, api_key="gk-models").models.list()}
