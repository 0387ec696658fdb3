"""`llmtap limits`: how providers throttled the calls, and how close each budget is to its limit now."""

from __future__ import annotations

import click

from ..analytics import queries
from ..analytics.queries import Rows
from ..analytics.scope import Scope
from ..config import Config
from .health import warn_if_storage_unhealthy
from .options import config_option, format_options, scope_options
from .output import emit
from .sessions import read

TABLE_COLUMNS = ("provider", "model", "key", "rate_limited", "retry_after_s", "requests_left_min_pct",
                 "tokens_left_min_pct", "requests_left_now_pct", "tokens_left_now_pct", "seen_at")
HEADERS = {"rate_limited": "429s", "retry_after_s": "retry after s", "requests_left_min_pct": "requests left min",
           "tokens_left_min_pct": "tokens left min", "requests_left_now_pct": "requests left now",
           "tokens_left_now_pct": "tokens left now", "seen_at": "now as of"}


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
    rows = read(config, queries.limits, scope)
    empty = "no throttling in this range: no 429 from a provider and no rate-limit headers in the answers"
    if output_format == "table":
        rows = columns(rows, TABLE_COLUMNS)
    emit(rows, output_format, empty=empty, headers=HEADERS)


def columns(rows: Rows, names: tuple[str, ...]) -> Rows:
    """`rows` with only the columns `names`, in that order (what fits a terminal)."""
    keep = [rows.columns.index(name) for name in names]
    return Rows([rows.columns[i] for i in keep], [rows.types[i] for i in keep],
                [tuple(row[i] for i in keep) for row in rows.rows])
