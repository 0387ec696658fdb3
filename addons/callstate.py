"""The per-flow state of one LLM call: built once from the request, read by every later addon.

It is the only thing llmtap's addons share about a flow. A flow without it is traffic llmtap does not handle.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from mitmproxy import http

from .config import ProviderConfig
from .options import HeliconeOptions
from .wire import WireFormat
from .wire.base import StreamAssembler
from .wire.sse import SseParser

METADATA_KEY = "llmtap"


@dataclass
class StreamTapState:
    """What a streamed response's tap has seen so far."""

    parser: SseParser
    assembler: StreamAssembler
    drop_usage_only_events: bool
    first_token_at: float | None = None
    request_id: str = ""  # the call's, for what the tap logs


@dataclass
class BodyTapState:
    """What llmtap keeps of a non-SSE answer too large to hold whole: it streams on to the client, and only its
    first `max_kept_bytes` (and last bytes, where usage usually is) stay for the log."""

    max_kept_bytes: int
    holding: bool  # no length was announced: held back (as mitmproxy would buffer it) until it outgrows the cap
    head: bytearray = field(default_factory=bytearray)
    tail: bytes = b""
    total_bytes: int = 0

    @property
    def cut(self) -> bool:
        """True when the answer was larger than what was kept of it."""
        return self.total_bytes > self.max_kept_bytes


@dataclass
class CallState:
    way: Literal["proxy", "gateway"]
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    options: HeliconeOptions = field(default_factory=HeliconeOptions)
    provider: ProviderConfig | None = None
    wire: WireFormat | None = None
    request_body: Any = None  # the parsed JSON the client sent (or its text when it is not JSON)
    request_body_logged: str | None = None  # the row's request_body, cut early when the body is over the logged cap
    model_requested: str | None = None
    stream: bool = False
    stream_usage_requested_by_llmtap: bool = False
    key_hash: str | None = None
    key_owner: str | None = None
    credential_hash: str = ""  # every credential the request arrived with (credentials.credential_fingerprint)
    provider_auth_headers: dict[str, str] | None = None  # a provider key llmtap adds only as its relay sends the call
    error: str | None = None  # why llmtap answered or the call failed, in words
    refused: bool = False  # llmtap refused the call before reading its body (key, size): the row keeps no body
    held_destination: Any = None  # refusals.Destination while a body of unknown length is checked against the limit
    tap: StreamTapState | None = None
    body_tap: BodyTapState | None = None  # set when a non-SSE answer streams on because it is larger than the cap
    first_byte_at: float | None = None
    client_host: str | None = None  # where the client sent the call, before routing
    client_path: str | None = None
    record: dict[str, Any] | None = None  # the row, once the call has finished
    cache_status: str | None = None  # "HIT" or "MISS" when the client enabled the cache
    cache_key: str | None = None
    cache_bucket_idx: int | None = None
    cached_answer: dict[str, Any] | None = None  # the answer a hit served
    attempt_log: list[dict[str, Any]] = field(default_factory=list)  # each try at a provider, when retries or
    retries: int = 0                                                   # fallbacks were on
    fallback_from: str | None = None  # the model first asked for, when a fallback answered
    answered_url: str | None = None  # where the answer came from, when AttemptRunner relayed it
    ratelimit_standings: list[Any] = field(default_factory=list)  # ratelimit.Standing per policy the call passed
    ratelimit_reservations: list[Any] = field(default_factory=list)  # (window key, window_s, ratelimit.Event) per cents policy

    def set_arrival(self, wall_time: float) -> None:
        """Count from when the request's first byte arrived (wall clock), not from when llmtap first saw it whole."""
        self.created_at = datetime.fromtimestamp(wall_time, UTC)
        self.started = time.monotonic() - max(0.0, time.time() - wall_time)

    def elapsed_ms(self, until: float | None = None) -> float:
        return round(((until or time.monotonic()) - self.started) * 1000, 3)


def get_state(flow: http.HTTPFlow) -> CallState | None:
    return flow.metadata.get(METADATA_KEY)


def attach_state(flow: http.HTTPFlow, state: CallState) -> CallState:
    flow.metadata[METADATA_KEY] = state
    return state
