"""What a call cost: its usage priced by genai-prices, or by a `pricing` override in config.

A price llmtap does not know is None with a reason, never 0: an honest gap beats a wrong total. What costs 0 says
why in `price_source`: `not-billed` (a call no provider bills: listing models, uploading a file, an error answer),
`free` (a provider marked `free: true` in config, such as a local model server), `cache-hit`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from genai_prices import Usage, calc_price
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import PriceCalculation, TieredPrices

from .config import PriceOverride

MTOK = Decimal(1_000_000)


def load_prices() -> None:
    """Load genai-prices' price data now: it is read on first use (40-130 ms of imports), which would otherwise be the
    first priced call's, with the event loop held meanwhile."""
    get_snapshot()


@dataclass(frozen=True)
class Priced:
    input_tokens: int | None = None  # every input token, cached ones included
    output_tokens: int | None = None  # reasoning tokens included
    cached_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost_usd: Decimal | None = None
    price_source: str | None = None  # "genai-prices", "config", "free", "not-billed" or "cache-hit"
    price_error: str | None = None  # why cost_usd is None

    @property
    def total_tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)


def price_call(
    usage: Usage | None,
    model: str | None,
    prices_provider: str | None,
    overrides: tuple[PriceOverride, ...],
    when: datetime,
    provider_name: str | None,
) -> Priced:
    """Tokens and cost of one call with `usage`, answered by `model` of `prices_provider` (a genai-prices id; None:
    genai-prices finds the provider from the model's name, and only `pricing` entries that name no provider apply),
    the provider config calls `provider_name` (a `pricing` entry may name it so)."""
    if usage is None:
        return Priced(price_error="the answer reported no token usage")
    usage_items = _items(usage)
    counted = _counted(usage_items)
    if not model:
        return replace(counted, price_error="the answer named no model")
    override = next((o for o in overrides if o.matches(model, prices_provider, provider_name)), None)
    if override is not None:
        return replace(counted, cost_usd=_override_cost(counted, override), price_source="config")
    try:
        cost = _genai_price(prices_provider, model, usage_items, when.replace(second=0, microsecond=0))
    except ValueError as e:  # usage genai-prices cannot price (e.g. more cached tokens than input tokens)
        return replace(counted, price_error=f"genai-prices cannot price this usage: {e}")
    if cost is None:
        named = model if prices_provider is None else f"{prices_provider}/{model}"
        return replace(counted, price_error=f"genai-prices has no price for {named}; "
                                            "add it under 'pricing' in config")
    return replace(counted, cost_usd=cost, price_source="genai-prices")


def count_tokens(usage: Usage | None) -> Priced:
    """The tokens of a call with `usage` (none when it reported no usage), without a price."""
    return Priced() if usage is None else _counted(_items(usage))


def _items(usage: Usage) -> tuple:
    """What `usage` holds, as a key: the same usage is counted and priced once (genai-prices' Usage works out the
    tokens it was not told on each read, ~40 us a call)."""
    return tuple(sorted(vars(usage).items()))


@functools.lru_cache(maxsize=4096)
def _counted(usage_items: tuple) -> Priced:
    usage = Usage(**dict(usage_items))
    return Priced(
        input_tokens=_count(usage.input_tokens),
        output_tokens=_count(usage.output_tokens),
        cached_input_tokens=_count(usage.cache_read_tokens),
        cache_write_input_tokens=_count(usage.cache_write_tokens),
        reasoning_tokens=_count(usage.output_reasoning_tokens),
    )


# POST endpoints of the providers' APIs that bill nothing: uploading files, counting tokens, cancelling.
UNBILLED_POST_ENDPOINTS = ("/files", "/uploads", "/count_tokens", "/input_tokens", ":countTokens", "/cancel")
# Endpoints reached by another method that do bill: OpenAI's Realtime API is a GET upgraded to a WebSocket.
BILLED_UPGRADE_ENDPOINTS = ("/realtime",)


def is_billed_endpoint(method: str, path: str, reads_usage: bool) -> bool | None:
    """Whether providers bill a call of `method` to `path` (no query string) for tokens: True for the LLM endpoints
    llmtap reads usage from (`reads_usage`), False for calls no provider bills (reading, listing and deleting, file
    uploads, token counting), None for other endpoints that may bill (images, audio, a Realtime session), whose
    price llmtap does not know."""
    if method.upper() != "POST":
        return None if any(path.endswith(name) for name in BILLED_UPGRADE_ENDPOINTS) else False
    if any(path.endswith(name) or f"{name}/" in path for name in UNBILLED_POST_ENDPOINTS):
        return False
    return True if reads_usage else None


def _count(tokens: float | Decimal | None) -> int | None:
    """A token count as a whole number: a provider may report one as 12.0."""
    return None if tokens is None else int(tokens)


@functools.lru_cache(maxsize=4096)
def _genai_price(prices_provider: str | None, model: str, usage_items: tuple, minute: datetime) -> Decimal | None:
    # Calls repeat the same usage often (cache hits, fixed prompts); genai-prices takes ~0.1 ms a price. Prices
    # are looked up for the minute of the call: a price change takes effect at most a minute late.
    calculation = _calculation(Usage(**dict(usage_items)), model, prices_provider, minute)
    return None if calculation is None else calculation.total_price


def _calculation(usage: Usage, model: str, prices_provider: str | None, when: datetime) -> PriceCalculation | None:
    """genai-prices' price of `usage` (its total and parts), or None when it has no price for the model."""
    try:
        return calc_price(usage, model, provider_id=prices_provider, genai_request_timestamp=when)
    except LookupError:
        return None


def tier_starts(model: str, prices_provider: str | None, when: datetime) -> tuple[int, ...]:
    """The input-token counts above which genai-prices' price of `model` at `when` changes its rates for the whole
    call (its tiers), in order: between two of them, a price is a fixed part per call plus rates per token. () when it
    has no tiers or no price for the model."""
    calculation = _calculation(Usage(input_tokens=1, output_tokens=1), model, prices_provider, when)
    if calculation is None:
        return ()
    prices = vars(calculation.model_price).values()
    return tuple(sorted({tier.start for price in prices if isinstance(price, TieredPrices) for tier in price.tiers}))


def _override_cost(tokens: Priced, price: PriceOverride) -> Decimal:
    cached = tokens.cached_input_tokens or 0
    uncached = (tokens.input_tokens or 0) - cached
    cached_price = price.cached_input_per_mtok if price.cached_input_per_mtok is not None else price.input_per_mtok
    output = tokens.output_tokens or 0
    return (uncached * price.input_per_mtok + cached * cached_price + output * price.output_per_mtok) / MTOK


def cost_split(tokens: Priced, model: str, prices_provider: str, when: datetime) -> tuple[Decimal, Decimal] | None:
    """The input and output parts of what genai-prices charges `tokens` of `model` at `when` (the parts of a cost
    logged with price_source "genai-prices"), or None when it has no price for the model."""
    usage = Usage(input_tokens=tokens.input_tokens, output_tokens=tokens.output_tokens,
                  cache_read_tokens=tokens.cached_input_tokens, cache_write_tokens=tokens.cache_write_input_tokens)
    try:
        split = _calculation(usage, model, prices_provider, when)
    except ValueError:  # usage genai-prices cannot price
        return None
    return None if split is None else (split.input_price, split.output_price)
