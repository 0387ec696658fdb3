"""`llmtap costs --as MODEL`: what the selected calls would have cost on another model, with the same tokens.

The query layer gives each group's calls by identical token counts (`queries.token_mix`); each distinct count is
priced once here, as one call of MODEL (genai-prices prices per call, and a price can be tiered by a call's size, so
a sum of tokens is never priced), times its calls. Prices are today's: the question is what switching would cost.
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
from .pricing import price_call

EXACT = Decimal("1e-10")  # the money columns' scale in the log (DECIMAL(18, 10))
# The columns `costs_as` adds to `queries.costs`' rows: the cost and change beside the real cost, the count of calls
# left out beside the count of calls without a real price.
BESIDE_COST = (("as_cost_usd", "DECIMAL(38,10)"), ("change_pct", "DOUBLE"))
BESIDE_UNPRICED = (("not_repriced", "BIGINT"),)


class UnknownModel(ValueError):
    """A model no price is known for: genai-prices does not know it and no `pricing` entry in config names it."""


@dataclass(frozen=True)
class Target:
    """The model calls are re-priced as, as pricing knows it."""

    model: str
    prices_provider: str | None  # a genai-prices provider id; None: genai-prices finds it from the model's name
    overrides: tuple[PriceOverride, ...]  # the config's `pricing`: an entry for the model wins over genai-prices
    free: bool = False  # the provider the gateway would route it to is marked `free` (a local model server)

    def price(self, tokens: tuple[int, int, int, int], when: datetime) -> Decimal | None:
        """What one call with `tokens` (input, cached input, cache-write input, output) costs on this model."""
        if self.free:
            return Decimal(0)
        input_tokens, cached, cache_write, output = tokens
        usage = Usage(input_tokens=input_tokens, cache_read_tokens=cached or None,
                      cache_write_tokens=cache_write or None, output_tokens=output)
        return price_call(usage, self.model, self.prices_provider, self.overrides, when).cost_usd


def target_model(name: str, config: Config) -> Target:
    """`name` (`provider/model`, or a model's name) as the gateway would route and price a call to it: a provider of
    the config first (its patterns, or its name before the slash), else a genai-prices provider id before the slash,
    else the provider of a `pricing` entry for it, else the one genai-prices matches the name to. UnknownModel when
    no price is known for it."""
    routed = config.provider_for_model(name)
    if routed is not None:
        provider, model = routed
        target = Target(model, provider.prices_provider, config.pricing, provider.free)
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

    def add(self, calls: int, each_usd: Decimal | None, real_usd: Decimal | None, priced: int) -> None:
        if each_usd is None:
            self.not_repriced += calls
            return
        self.as_cost_usd = (self.as_cost_usd or Decimal(0)) + each_usd * calls
        self.compared_real_usd += real_usd or Decimal(0)
        self.compared_as_usd += each_usd * priced

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
    with queries.reading(log):  # both reads see the same calls
        real = queries.costs(log, scope, by, then)
        mix = queries.token_mix(log, scope, by, then)
    names = [by.name] if then is None else [by.name, then.name]
    worth: dict[tuple, _Worth] = defaultdict(_Worth)
    when = datetime.now(UTC)
    for record in mix.dicts():
        group = tuple(record[name] for name in names)
        if record["usage"] == "unknown":
            each = None
        elif record["usage"] == "none":
            each = Decimal(0)
        else:
            each = target.price(tuple(record[name] for name in queries.TOKEN_COLUMNS), when)
        for key in _rolled_up(group):
            worth[key].add(record["calls"], each, record["cost_usd"], record["priced"])
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
