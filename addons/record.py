"""The row llmtap writes for one LLM call, typed: one field per column of the `requests` table (see migrations.py).

`Recorder` builds a `CallRecord` when a call has finished; the `call_finished` event (events.py) hands it to every
addon that acts on finished calls. `as_row` is the only place it turns into the column -> value mapping the store
spools and DuckDB appends; a test pins these fields to the table's columns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass
class AttemptRecord:
    """One try at a provider, when retries or fallbacks were on (an element of the `attempt_log` column)."""

    provider: str
    model: str | None
    status: int | None = None  # None: no answer (connection refused, timed out)
    latency_ms: float | None = None
    wait_ms: float | None = None  # how long llmtap waited before the next try
    retry_after_s: float | None = None  # what the provider asked for (Retry-After / retry-after-ms)
    error: str | None = None

    @property
    def skipped(self) -> bool:
        """A fallback passed over without being sent (llmtap has no key for its provider): not a try."""
        return self.latency_ms is None and (self.error or "").startswith(SKIPPED)


SKIPPED = "skipped: "  # how an attempt passed over without being sent begins its error


@dataclass
class CallRecord:
    request_id: str
    created_at: datetime
    way: str
    provider: str | None = None
    method: str | None = None
    host: str | None = None  # the host the client sent the call to
    path: str | None = None
    model: str | None = None
    model_requested: str | None = None
    status: int | None = None
    error: str | None = None
    stream: bool | None = None
    latency_ms: float | None = None
    ttfb_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None
    reasoning_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: Decimal | None = None
    price_source: str | None = None
    price_error: str | None = None
    cost_saved_usd: Decimal | None = None
    cache_status: str | None = None
    attempts: int | None = None
    retries: int | None = None
    fallback_from: str | None = None
    attempt_log: list[AttemptRecord] | None = None
    user_id: str | None = None
    session_id: str | None = None
    session_path: str | None = None
    session_name: str | None = None
    prompt_id: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    key_hash: str | None = None
    key_owner: str | None = None
    ratelimit: dict[str, str] | None = None
    ratelimit_policy: str | None = None  # the Helicone-RateLimit-Policy the call sent
    request_body: str | None = None  # JSON text, cut when over limits.max_logged_body_bytes
    response_body: str | None = None
    upstream: str | None = None  # scheme://host[:port] the call really went to
    notes: list[str] | None = None  # what llmtap noticed without refusing the call

    def as_row(self) -> dict[str, Any]:
        """Column name -> value, for the store: every column, None where unknown (the writer's DuckDB reads a spooled
        row strictly, and takes a missing column for a fault)."""
        row = {name: getattr(self, name) for name in COLUMNS}
        if self.attempt_log is not None:
            row["attempt_log"] = [asdict(attempt) for attempt in self.attempt_log]
        return row


COLUMNS = tuple(f.name for f in fields(CallRecord))
