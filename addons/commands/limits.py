"""`llmtap limits`: how providers throttled the calls, and how close each budget is to its limit now."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text
from rich.tree import Tree

from ..analytics import queries
from ..analytics.scope import Scope
from ..config import Config
from ..render import literal, table_cell_text
from .options import config_option, format_options, scope_options
from .output import emit, show
from .reading import read_log, warn_if_storage_unhealthy

EMPTY = "no throttling in this range: no 429 from a provider and no rate-limit headers in the answers"


@click.command()
@config_option()
@scope_options(default_since="7d")
@format_options
def limits(config: Config, scope: Scope, output_format: str) -> None:
    """Provider throttling per provider, model and key: 429s (every try, retried ones included) and the latest
    retry-after; the lowest share of the request and token budgets any answer left (from the providers'
    rate-limit headers) and the share the latest answer left, as of when it was seen. --json/--csv add the
    remaining counts and the limits."""
    warn_if_storage_unhealthy(config)
    rows = read_log(config, queries.limits, scope)
    if output_format != "table" or not rows.rows:
        emit(rows, output_format, empty=EMPTY)
        return
    show(limits_tree(rows.dicts()))


def limits_tree(groups: list[dict[str, Any]]) -> Tree:
    """Provider > model > key, each key with its throttling in words (a table of ten columns does not fit 80)."""
    root = Tree("throttling by provider, model and key (budget left: now, lowest)")
    providers: dict[Any, Tree] = {}
    models: dict[tuple[Any, Any], Tree] = {}
    for group in groups:
        provider, model = group["provider"] or "?", group["model"] or "?"
        if provider not in providers:
            providers[provider] = root.add(Text(literal(provider)))  # logged text: never read as rich markup
        if (provider, model) not in models:
            models[(provider, model)] = providers[provider].add(Text(literal(model)))
        models[(provider, model)].add(Text(literal(group_text(group))))
    return root


def group_text(group: dict[str, Any]) -> str:
    """`ops-team: 2 × 429, latest retry-after 1 s at …; requests left 99.9% now, 99.9% lowest; tokens …; as of …`."""
    def when(name: str) -> str:
        return table_cell_text(name, group[name])

    parts = [f"{group['key'] or 'no key'}:"]
    if group["rate_limited"]:
        retry = f", latest retry-after {group['retry_after_s']:g} s" if group["retry_after_s"] is not None else ""
        parts.append(f"{group['rate_limited']:,} × 429{retry} (last at {when('last_rate_limited')});")
    else:
        parts.append("no 429;")
    for kind in ("requests", "tokens"):
        now, lowest = group[f"{kind}_left_now_pct"], group[f"{kind}_left_min_pct"]
        if now is not None or lowest is not None:
            parts.append(f"{kind} left {table_cell_text('_pct', now) or '?'} now, "
                         f"{table_cell_text('_pct', lowest) or '?'} lowest;")
    if group["seen_at"] is not None:
        parts.append(f"as of {when('seen_at')}")
    return " ".join(parts).rstrip(";")
