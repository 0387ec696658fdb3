"""What a report can group by: `--by model`, `--by property:workflow`, ... Each is a SQL expression over `requests`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .scope import ScopeError


@dataclass(frozen=True)
class Dimension:
    """A way to group calls: its column name in the result, and its SQL expression with parameters."""

    name: str
    sql: str
    params: tuple[Any, ...] = ()


UTC_DAY = "(DATE '1970-01-01' + (epoch_us(created_at) // 86400000000)::INTEGER)"  # calls are after 1970
DIMENSIONS = {
    "model": "coalesce(model, model_requested)",
    "provider": "provider",
    "user": "user_id",
    "key": "coalesce(key_owner, key_hash)",  # a gateway key's owner, else the hash of the provider key used
    "session": "session_id",
    "status": "status",
    # UTC periods from the instant's microseconds: the same values as date_trunc over timezone('UTC', created_at),
    # in any session time zone, for a sixth of the CPU (10M calls: 1.9 s against 0.2-0.5 s, scripts/bench_reports.py)
    "hour": "make_timestamp(epoch_us(created_at) // 3600000000 * 3600000000)",
    "day": UTC_DAY,
    "week": f"date_trunc('week', {UTC_DAY})::DATE",  # weeks start on Monday
    "month": f"date_trunc('month', {UTC_DAY})::DATE",
}
PERIODS = ("hour", "day", "week", "month")
REPORT_COLUMNS = {"requests", "input_tokens", "output_tokens", "cost_usd", "avg_cost_usd", "saved_usd", "share_pct",
                  "unpriced", "kind", "period_requests", "period_cost_usd"}  # what costs and trends add to a group
PROPERTY = "property:"


def dimension(text: str) -> Dimension:
    """`model`, `provider`, `user`, `key`, `session`, `status`, `hour`, `day`, `week`, `month` or `property:NAME`
    (the name matched case-insensitively) as a `Dimension`; anything else raises ScopeError."""
    cleaned = text.strip().lower()
    if cleaned.startswith(PROPERTY) and cleaned[len(PROPERTY):].strip():
        name = cleaned[len(PROPERTY):].strip()
        if '"' in name:  # the column's quoted name; no header name holds a quote
            raise ScopeError(f"a property name has no quote (\"), got {text!r}")
        # A property named like another dimension or a report's own column (`user`, `kind`, `requests`) keeps
        # `property:` in its column name: two columns of one name would lose one of them in JSON.
        column = f"{PROPERTY}{name}" if name in DIMENSIONS or name in REPORT_COLUMNS else name
        return Dimension(column, "properties[?]", (name,))
    if cleaned in DIMENSIONS:
        return Dimension(cleaned, DIMENSIONS[cleaned])
    raise ScopeError(f"expected one of {', '.join(DIMENSIONS)} or property:NAME, got {text!r}")
