"""`costs --as`'s pricing of many calls at once: the calls' tokens summed per tier of the target's price must cost
what pricing each call alone costs, a fixed per-call part included, and a tiered price's rates follow each call's
size, not the sum's."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from llmtap.config import parse_config
from llmtap.model_list import routable_models
from llmtap.repricing import UnknownModel, target_model

CALLS = [(1200, 200, 0, 300), (50_000, 0, 1000, 20), (7, 0, 0, 3000)]  # input, cached, cache write, output
WHEN = datetime(2026, 11, 27, 12, tzinfo=UTC)
CONFIG = parse_config({"pricing": [{"model": "acme-tuned", "input_per_mtok": 3, "output_per_mtok": 12}]}, source=None)


def summed(calls: list[tuple[int, ...]]) -> tuple[int, ...]:
    return tuple(sum(column) for column in zip(*calls, strict=True))


@pytest.mark.parametrize("name", [
    "claude-haiku-4-5",  # rates per token only
    "perplexity/sonar",  # $1 input, $1 output per million and $12 per thousand calls: a fixed part per call
    "acme-tuned",  # a config price
])
def test_a_price_without_tiers_sums_over_calls_as_each_call_priced_alone(name):
    target = target_model(name, CONFIG)
    assert target.tier_starts(WHEN) == ()
    each = [target.price(tokens, WHEN) for tokens in CALLS]
    assert target.cost(summed(CALLS), len(CALLS), None, WHEN) == sum(each, Decimal(0))


def test_sonar_charges_its_fixed_part_per_call():
    # perplexity/sonar: $1 input and $1 output per million tokens, $12 per thousand calls.
    target = target_model("perplexity/sonar", CONFIG)
    assert target.cost((1000, 0, 0, 1000), 3, None, WHEN) == 2000 * Decimal(1) / 10**6 + 3 * Decimal("0.012")


def test_a_tiered_price_follows_each_calls_size():
    # gemini-2.5-pro: $1.25 input, $0.125 cached input, $10 output per million up to 200,000 input tokens a call;
    # $2.50, $0.25 and $15 above.
    target = target_model("google/gemini-2.5-pro", CONFIG)
    assert target.tier_starts(WHEN) == (200_000,)
    lower = [(150_000, 0, 0, 100), (120_001, 1, 0, 7), (3, 0, 0, 5)]  # together 270,004: above the tier start
    expected = sum(((i - c) * Decimal("1.25") + c * Decimal("0.125") + o * 10) / 10**6 for i, c, _, o in lower)
    assert target.cost(summed(lower), 3, 200_000, WHEN).quantize(Decimal("1e-10")) == expected
    upper = [(250_000, 0, 0, 10), (300_000, 0, 0, 20)]
    expected = sum((i * Decimal("2.5") + o * 15) / 10**6 for i, _, _, o in upper)
    assert target.cost(summed(upper), 2, None, WHEN) == expected


def test_a_model_without_a_price_is_refused():
    with pytest.raises(UnknownModel, match="no-such-model"):
        target_model("no-such-model", CONFIG)


@pytest.mark.parametrize("named", ["xai", "x-ai"])  # llmtap's name for the provider, and genai-prices' id
def test_a_pricing_entry_names_its_provider_either_way_for_costs_as_and_the_model_list(named):
    config = parse_config({"pricing": [{"model": "grok-9-private", "provider": named, "input_per_mtok": 1,
                                        "output_per_mtok": 2}]}, source=None)
    assert "grok-9-private" in [model.id for model in routable_models(config)]
    for name in ("grok-9-private", "xai/grok-9-private"):
        assert target_model(name, config).price((1000, 0, 0, 1000), WHEN) == Decimal(3000) / 10**6
