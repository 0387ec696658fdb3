"""What a call cost: genai-prices for known models, config overrides for the rest, and None (never 0) when unknown."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot
from llmtap.config import PriceOverride
from llmtap.pricing import price_call
from llmtap.wire import FORMATS

WHEN = datetime(2025, 6, 1, tzinfo=UTC)


def test_a_known_model_is_priced_by_genai_prices():
    priced = price_call(Usage(input_tokens=1000, output_tokens=500), "gpt-4o-mini", "openai", (), WHEN, None)

    assert priced.cost_usd > 0
    assert priced.price_source == "genai-prices"
    assert priced.price_error is None
    assert (priced.input_tokens, priced.output_tokens, priced.total_tokens) == (1000, 500, 1500)


def test_cached_input_tokens_make_a_call_cheaper():
    uncached = price_call(Usage(input_tokens=1000, output_tokens=500), "gpt-4o-mini", "openai", (), WHEN, None)
    cached = price_call(
        Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=800), "gpt-4o-mini", "openai", (), WHEN, None
    )

    assert cached.cached_input_tokens == 800
    assert 0 < cached.cost_usd < uncached.cost_usd


def test_an_unknown_model_has_no_cost_and_a_reason_naming_it():
    priced = price_call(Usage(input_tokens=1000, output_tokens=500), "my-private-model-7", "openai", (), WHEN, None)

    assert priced.cost_usd is None
    assert priced.price_source is None
    assert "my-private-model-7" in priced.price_error
    assert priced.input_tokens == 1000  # tokens are still recorded


def test_a_config_override_prices_a_matching_model_exactly():
    override = PriceOverride(
        model="ft:gpt-4o-mini:*", provider=None,
        input_per_mtok=Decimal("3"), output_per_mtok=Decimal("15"), cached_input_per_mtok=Decimal("0.3"),
    )
    usage = Usage(input_tokens=1000, output_tokens=200, cache_read_tokens=400)

    priced = price_call(usage, "ft:gpt-4o-mini:acme:v1", "openai", (override,), WHEN, None)

    # (600 uncached * 3 + 400 cached * 0.3 + 200 output * 15) / 1e6
    assert priced.cost_usd == Decimal("0.00492")
    assert priced.price_source == "config"


def test_a_config_override_without_a_cached_price_charges_cached_tokens_at_the_input_price():
    override = PriceOverride("my-model", None, Decimal("2"), Decimal("8"), None)
    usage = Usage(input_tokens=1000, output_tokens=100, cache_read_tokens=400)

    priced = price_call(usage, "my-model", "local", (override,), WHEN, None)

    assert priced.cost_usd == Decimal("0.0028")  # (1000 * 2 + 100 * 8) / 1e6


def test_a_config_override_for_another_provider_is_not_used():
    override = PriceOverride("gpt-4o-mini", "azure", Decimal("100"), Decimal("100"), None)

    priced = price_call(Usage(input_tokens=1000, output_tokens=500), "gpt-4o-mini", "openai", (override,), WHEN, None)

    assert priced.price_source == "genai-prices"
    assert priced.cost_usd < Decimal("0.1")


def test_a_call_without_usage_has_no_cost():
    priced = price_call(None, "gpt-4o-mini", "openai", (), WHEN, None)

    assert priced.cost_usd is None
    assert priced.price_error


def test_token_counts_sent_as_decimals_are_priced_by_a_config_override():
    # Some OpenAI-compatible servers report `"prompt_tokens": 1000.0`; an override's Decimal prices must still apply.
    override = PriceOverride(model="my-finetune", provider=None, input_per_mtok=Decimal("1"),
                             output_per_mtok=Decimal("2"), cached_input_per_mtok=None)
    priced = price_call(Usage(input_tokens=1000.0, output_tokens=10.0), "my-finetune", "openai", (override,), WHEN, None)

    assert priced.cost_usd == Decimal("0.00102") and priced.input_tokens == 1000 and priced.price_source == "config"


@pytest.mark.parametrize("wire_name, answer", [
    ("openai_chat", {"id": "c", "model": "gpt-4o-mini", "choices": [], "usage": {
        "prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
        "prompt_tokens_details": {"cached_tokens": 64}, "completion_tokens_details": {"reasoning_tokens": 12}}}),
    ("openai_responses", {"id": "r", "model": "gpt-4o-mini", "output": [], "usage": {
        "input_tokens": 90, "output_tokens": 20, "total_tokens": 110,
        "input_tokens_details": {"cached_tokens": 32}, "output_tokens_details": {"reasoning_tokens": 5}}}),
    ("anthropic_messages", {"id": "m", "model": "claude-3-5-haiku-latest", "content": [], "usage": {
        "input_tokens": 50, "output_tokens": 9, "cache_read_input_tokens": 200, "cache_creation_input_tokens": 40}}),
])
def test_usage_read_once_per_distinct_usage_is_what_genai_prices_reads_from_the_whole_answer(wire_name, answer):
    wire = next(f for f in FORMATS if f.name == wire_name)
    provider = get_snapshot().find_provider(None, wire.usage_provider_id, None)
    _, expected = provider.extract_usage(answer, api_flavor=wire.usage_flavor)
    assert vars(wire.extract_usage(answer)) == vars(expected)
    assert vars(wire.extract_usage(json.loads(json.dumps(answer)))) == vars(expected)  # the second, from the cache
