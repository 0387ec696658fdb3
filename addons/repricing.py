"""`llmtap costs --as MODEL`: what the selected calls would have cost on another model, with the same tokens.

genai-prices prices one call at a time (~0.15 ms), so calls are not priced one by one: the query layer sums each
group's tokens (`queries.token_mix`), split at the input counts where a tiered price changes its rates. Within a tier,
a price is a fixed part per call plus rates per token, so the calls' prices add up to what their summed tokens cost
(plus each further call's fixed part), or, when the sum leaves the tier, to their average call's price times their
number: a few prices per group, the same total as pricing every call. Prices are today's: the question is what
switching would cost.
A call's worth on MODEL:
- its tokens at MODEL's price (input, cached input, cache-write input, output with reasoning inside);
- 0 for a cache hit (on MODEL it would have been a cache hit too) and a call no provider billed (an error answer, a
  model listing: MODEL's provider would not bill it either);
- unknown for a call that recorded no usage: counted in `not_repriced`, never priced 0.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from genai_prices import Usage

from .analytics import queries
from .analytics.queries import Dimension, Rows
from .analytics.scope import Scope
from .config import Config, PriceOverride
from .pricing import Priced, price_call, tier_starts

EXACT = Decimal("1e-10")  # the money columns' scale in the log (DECIMAL(18, 10))
# The columns `costs_as` adds to `queries.costs`' rows: the cost and change beside the real cost, the count of calls
# left out beside the count of calls without a real price.
BESIDE_COST = (("as_cost_usd", "DECIMAL(38,10)"), ("change_pct", "DOUBLE"))
BESIDE_UNPRICED = (("not_repriced", "BIGINT"),)


Tokens = tuple[int | Decimal, ...]  # input (all of it), cached input, cache-write input, output


class UnknownModel(ValueError):
    """A model no price is known for: genai-prices does not know it and no `pricing` entry in config names it."""


@dataclass(frozen=True)
class Target:
    """The model calls are re-priced as, as pricing knows it."""

    model: str
    prices_provider: str | None  # a genai-prices provider id; None: genai-prices finds it from the model's name
    overrides: tuple[PriceOverride, ...]  # the config's `pricing`: an entry for the model wins over genai-prices
    free: bool = False  # the provider the gateway would route it to is marked `free` (a local model server)
    provider_name: str | None = None  # that provider's name in config, which a `pricing` entry may name it by

    def price(self, tokens: Tokens, when: datetime) -> Decimal | None:
        """What one call with `tokens` (input, cached input, cache-write input, output) costs on this model."""
        return self._priced(tokens, when).cost_usd

    def cost(self, tokens: Tokens, calls: int, tier_end: int | None, when: datetime) -> Decimal | None:
        """What `calls` calls with `tokens` between them cost on this model, each call's input at most `tier_end`
        tokens (None: no limit) and above the tier start before it: so within one tier, where a price is a fixed part
        per call plus rates per token."""
        if calls == 1:
            return self.price(tokens, when)
        if tier_end is None or tokens[0] <= tier_end:
            # Their tokens together are within the tier too: the price of the sum plus each further call's fixed part
            # (what a call of no tokens costs) is the sum of their prices.
            together, fixed = self.price(tokens, when), self.price((0, 0, 0, 0), when)
            return None if together is None or fixed is None else together + (calls - 1) * fixed
        # Else their average call is within the tier (a tier is an interval of input counts): the sum of their prices
        # is `calls` times its price (exact to far below the log's 1e-10, Decimal dividing to 28 digits).
        average = self.price(tuple(Decimal(count) / calls for count in tokens), when)
        return None if average is None else average * calls

    def tier_starts(self, when: datetime) -> tuple[int, ...]:
        """The input-token counts above which this model's price changes its rates for the whole call (its tiers)."""
        if self.free or self._priced((1, 0, 0, 1), when).price_source == "config":  # a config price has no tiers
            return ()
        return tier_starts(self.model, self.prices_provider, when)

    def _priced(self, tokens: Tokens, when: datetime) -> Priced:
        if self.free:
            return Priced(cost_usd=Decimal(0), price_source="free")
        input_tokens, cached, cache_write, output = tokens
        usage = Usage(input_tokens=input_tokens, cache_read_tokens=cached or None,
                      cache_write_tokens=cache_write or None, output_tokens=output)
        return price_call(usage, self.model, self.prices_provider, self.overrides, when, self.provider_name)


def target_model(name: str, config: Config) -> Target:
    """`name` (`provider/model`, or a model's name) as the gateway would route and price a call to it: a provider of
    the config first (its patterns, or its name before the slash), else a genai-prices provider id before the slash,
    else the provider of a `pricing` entry for it, else the one genai-prices matches the name to. UnknownModel when
    no price is known for it."""
    routed = config.provider_for_model(name)
    if routed is not None:
        provider, model = routed
        target = Target(model, provider.prices_provider, config.pricing, provider.free, provider.name)
    else:
        prefix, slash, model = name.partition("/")
        if slash:
            target = Target(model, prefix, config.pricing)
        else:
            entry = next((o for o in config.pricing if fnmatch.fnmatchcase(name, o.model)), None)
            target = Target(name, entry.provider if entry else None, config.pricing)
    if target.price((1, 0, 0, 1), datetime.now(UTC)) is None:
        raise UnknownModel(f"no price is known for {name!r}: genai-prices does not know it and no `pricing` entry in "
                           "config names it (write provider/model, e.g. anthropic/claude-haiku-4-5)")
    return target


@dataclass
class _Worth:
    """A group's calls on the target model: their cost, how many could not be re-priced, and the real and re-priced
    cost of the calls that have both (what the change compares)."""

    as_cost_usd: Decimal | None = None
    not_repriced: int = 0
    compared_real_usd: Decimal = Decimal(0)
    compared_as_usd: Decimal = Decimal(0)

    def add(self, calls: int, as_cost_usd: Decimal | None, real_usd: Decimal | None, priced: bool) -> None:
        if as_cost_usd is None:
            self.not_repriced += calls
            return
        self.as_cost_usd = (self.as_cost_usd or Decimal(0)) + as_cost_usd
        if priced:
            self.compared_real_usd += real_usd or Decimal(0)
            self.compared_as_usd += as_cost_usd

    def columns(self) -> tuple[Decimal | None, float | None, int]:
        change = None
        if self.compared_real_usd:
            change = float(round(100 * (self.compared_as_usd / self.compared_real_usd - 1), 2))
        cost = None if self.as_cost_usd is None else self.as_cost_usd.quantize(EXACT)
        return cost, change, self.not_repriced


def costs_as(log: Path, scope: Scope, by: Dimension, then: Dimension | None, target: Target) -> Rows:
    """`queries.costs`' rows with, after `cost_usd`, what each group's calls would cost on `target` (`as_cost_usd`,
    NULL when none of them can be re-priced) and the change from their real cost (`change_pct`: -75.0 is a quarter
    of it, over the calls that have a real price and known tokens, NULL when those cost nothing); and after
    `unpriced`, how many calls recorded no usage, so are not in `as_cost_usd` (`not_repriced`)."""
    when = datetime.now(UTC)
    tiers = target.tier_starts(when)
    with queries.reading(log):  # both reads see the same calls
        real = queries.costs(log, scope, by, then)
        mix = queries.token_mix(log, scope, by, then, tiers)
    names = [by.name] if then is None else [by.name, then.name]
    worth: dict[tuple, _Worth] = defaultdict(_Worth)
    for record in mix.dicts():
        if record["usage"] == "unknown":
            as_cost_usd = None
        elif record["usage"] == "none":
            as_cost_usd = Decimal(0)
        else:
            tokens = tuple(record[name] for name in queries.TOKEN_COLUMNS)
            tier_end = tiers[record["tier"]] if record["tier"] < len(tiers) else None
            as_cost_usd = target.cost(tokens, record["calls"], tier_end, when)
        for key in _rolled_up(tuple(record[name] for name in names)):
            worth[key].add(record["calls"], as_cost_usd, record["cost_usd"], record["priced"])
    kind, group_at = real.columns.index("kind"), [real.columns.index(name) for name in names]
    added = [worth[_key(row[kind], tuple(row[i] for i in group_at))].columns() for row in real.rows]
    beside_cost = _inserted(real, "cost_usd", BESIDE_COST, [(cost, change) for cost, change, _ in added])
    return _inserted(beside_cost, "unpriced", BESIDE_UNPRICED, [(not_repriced,) for _, _, not_repriced in added])


def _inserted(rows: Rows, after: str, columns: tuple[tuple[str, str], ...], values: list[tuple]) -> Rows:
    """`rows` with `columns` (name, type) and each row's `values` for them after the column `after`."""
    at = rows.columns.index(after) + 1
    return Rows([*rows.columns[:at], *(name for name, _ in columns), *rows.columns[at:]],
                [*rows.types[:at], *(type_ for _, type_ in columns), *rows.types[at:]],
                [(*row[:at], *extra, *row[at:]) for row, extra in zip(rows.rows, values, strict=True)])


def _rolled_up(group: tuple) -> list[tuple]:
    """The report rows a group's calls count in: the group, its `by` group's subtotal (with `then`), the total."""
    return [_key("group", group), *([_key("subtotal", group)] if len(group) > 1 else []), _key("total", group)]


def _key(kind: str, group: tuple) -> tuple:
    return {"group": ("group", *group), "subtotal": ("subtotal", group[0]), "total": ("total",)}[kind]
