"""The per-flow state of one LLM call: built once from the request, read by every later addon.

It is the only thing llmtap's addons share about a flow. A flow without it is traffic llmtap does not handle. It is
made of small typed parts, one per concern: `request` (what the client sent and who it is; Intake), `route` (where
the call goes and the body it is sent with; Router, StreamTap), `cache` (ResponseCache), `attempts` (AttemptRunner),
`limits` (RateLimiter, RefusalSink) and `outcome` (how it went, its answer read once, its row; StreamTap, Recorder).
The client's body is parsed once (Intake); a body llmtap changes is serialised once (AttemptRunner, as it leaves);
the answer is parsed once (`streaming.read_answer`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from mitmproxy import http

from .config import ProviderConfig
from .options import HeliconeOptions
from .record import AttemptRecord, CallRecord
from .wire import WireFormat
from .wire.base import StreamAssembler
from .wire.sse import SseParser

if TYPE_CHECKING:  # these modules read CallState themselves
    from .counters import Event, Reservation
    from .ratelimit import Standing
    from .refusals import Destination

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
class RequestInfo:
    """What the client sent and who it is, as the call arrived (before llmtap changed anything)."""

    options: HeliconeOptions = field(default_factory=HeliconeOptions)  # what its Helicone-* headers asked for
    client_host: str | None = None  # where the client sent the call, before routing
    client_path: str | None = None  # its path, secrets masked
    body: Any = None  # the parsed JSON the client sent (or its text when it is not JSON); never changed
    body_problem: str | None = None  # why the body is not JSON, in words (bodies.parse_json_body), when it is not
    body_logged: str | None = None  # the row's request_body, cut early when the body is over the logged cap
    model: str | None = None  # the model it asked for
    stream: bool = False  # it asked for a streamed answer
    key_hash: str | None = None  # fingerprint of the key it presented
    key_owner: str | None = None  # whose gateway key that is
    credential_hash: str = ""  # every credential the request arrived with (credentials.credential_fingerprint)


@dataclass
class Route:
    """Where the call goes and in what form."""

    provider: ProviderConfig | None = None
    wire: WireFormat | None = None  # the API it speaks; None for one llmtap does not read
    provider_auth_headers: dict[str, str] | None = None  # a provider key llmtap adds only as its relay sends the call
    # The body to send when llmtap changes what the client sent (the model a provider knows, a request for stream
    # usage): a copy of `RequestInfo.body`, serialised once, by AttemptRunner as the call leaves.
    outgoing_body: dict[str, Any] | None = None
    stream_usage_requested_by_llmtap: bool = False
    # Why the routed provider cannot be sent the call (llmtap has no key for it) when its fallbacks may be: they are
    # tried instead (AttemptRunner), and the primary is noted as skipped.
    primary_skipped_because: str | None = None


@dataclass
class CacheState:
    """The cache's part in the call, when the client enabled it."""

    status: str | None = None  # "HIT" or "MISS"
    key: str | None = None
    bucket_idx: int | None = None
    answer: dict[str, Any] | None = None  # the answer a hit served


@dataclass
class Attempts:
    """Each try at a provider, when retries or fallbacks were on."""

    log: list[AttemptRecord] = field(default_factory=list)
    retries: int = 0
    fallback_from: str | None = None  # the model first asked for, when a fallback answered
    answered_url: str | None = None  # where the answer came from, when AttemptRunner relayed it


@dataclass
class LimitState:
    """What the call's limits hold for it."""

    standings: list[Standing] = field(default_factory=list)  # per rate-limit policy the call passed
    reservations: list[Reservation] = field(default_factory=list)  # cents reserved (policies, budgets) until settled
    counted: list[Event] = field(default_factory=list)  # the call counted in request policies' windows
    held_destination: Destination | None = None  # while a body of unknown length is checked against its limit


@dataclass
class Outcome:
    """How the call went: its answer as llmtap read it, and its row."""

    error: str | None = None  # why llmtap answered or the call failed, in words
    served_by_llmtap: bool = False  # llmtap answered the call itself without an error (a model listing)
    refused: bool = False  # llmtap refused the call before reading its body (key, size): the row keeps no body
    streamed: bool = False  # the answer came as a stream of server-sent events
    first_byte_at: float | None = None
    tap: StreamTapState | None = None
    body_tap: BodyTapState | None = None  # set when a non-SSE answer streams on because it is larger than the cap
    answer: Any = None  # the answer as JSON (streaming.read_answer), once read
    answer_read: bool = False
    record: CallRecord | None = None  # the row, once the call has finished

    @property
    def answered_by_llmtap(self) -> bool:
        """llmtap answered the call itself (its error, a model listing): no provider saw it, none bills it."""
        return self.error is not None or self.served_by_llmtap


@dataclass
class CallState:
    """One LLM call, in typed parts by concern; each addon reads and writes the parts it is about."""

    way: Literal["proxy", "gateway"]
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    request: RequestInfo = field(default_factory=RequestInfo)
    route: Route = field(default_factory=Route)
    cache: CacheState = field(default_factory=CacheState)
    attempts: Attempts = field(default_factory=Attempts)
    limits: LimitState = field(default_factory=LimitState)
    outcome: Outcome = field(default_factory=Outcome)
    notes: list[str] = field(default_factory=list)  # what llmtap noticed without refusing the call (column `notes`)

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
