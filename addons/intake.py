"""The first addon of the pipeline: decides which flows are LLM calls, builds their `CallState`, and refuses what
llmtap will not carry, as cheaply as it can.

A flow is an LLM call when it arrives at the gateway listener, or through the proxy listener for a provider host named
in config; anything else is left alone. Work on a call is done in this order, each step bounded, so that a caller
without a key costs llmtap almost nothing:

1. `requestheaders` (the body has not been read): headers over `limits.max_header_count` or `max_header_bytes` get
   431; `Helicone-*` headers are removed in one pass and parsed once; on the gateway way in the gateway key is checked
   (401); a declared body over `limits.max_request_bytes` gets 413; a malformed `Helicone-*` header gets 400; a
   `Helicone-Request-Id` this gateway has already logged gets 409. A `Helicone-*` header llmtap does not read is
   removed too, and named in the row's `notes`.
2. `request` (the body has arrived): it is decoded within `max_request_bytes` (a compressed body that grows past it
   gets 413) and parsed as JSON once.

A refused call is still logged, with its tags, and without any body. Every answer leaves with `Helicone-Id`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from mitmproxy import http
from mitmproxy.net.http import url
from mitmproxy.proxy.mode_specs import ReverseMode

from .access import gateway_key_for, presented_key
from .bodies import BodyTooLarge, UnsupportedEncoding, cut_body_text, decoded_body, parse_json_body
from .callstate import CallState, Route, attach_state, get_state
from .credentials import bearer, client_key, credential_fingerprint, fingerprint, masked_path
from .headers import PREFIX, HeaderError, parse_helicone_headers, tags_only, unknown_helicone_headers
from .refusals import RefusalSink
from .replies import reply_with_error
from .settings import Settings
from .wire import WireFormat, endpoint_path, format_for_path

# Client-chosen request ids already used, so a repeated one is refused rather than logged twice (newest kept).
REMEMBERED_REQUEST_IDS = 200_000
# Bodies larger than this are decoded and parsed on a worker thread, so a large one never stalls other calls.
INLINE_BODY_BYTES = 256 * 1024


class Intake:
    def __init__(self, settings: Settings, refusals: RefusalSink):
        self.settings = settings
        self.refusals = refusals
        self._used_request_ids: OrderedDict[str, None] = OrderedDict()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or get_state(flow):
            return
        config = self.settings.config
        if isinstance(flow.client_conn.proxy_mode, ReverseMode):
            state = CallState(way="gateway")
        elif provider := config.provider_for_host(flow.request.pretty_host):
            state = CallState(way="proxy", route=Route(provider=provider))
        else:
            return
        attach_state(flow, state)
        state.set_arrival(flow.request.timestamp_start)
        state.request.client_host, state.request.client_path = client_host(flow), masked_path(flow.request.path)
        limits = config.limits
        fields = flow.request.headers.fields
        header_bytes = sum(len(k) + len(v) + 4 for k, v in fields)
        if len(fields) > limits.max_header_count or header_bytes > limits.max_header_bytes:
            self.refusals.refuse(flow, 431, "llmtap_headers_too_large",
                                 f"the request has more than {limits.max_header_count} headers or more than "
                                 f"{limits.max_header_bytes:,} bytes of them "
                                 "(limits.max_header_count, max_header_bytes)")
            return
        # Named as the call arrived: Router may replace the caller's credential with llmtap's own provider key.
        state.request.credential_hash = credential_fingerprint(flow.request)
        helicone_fields = self._take_helicone_headers(flow.request)
        state.notes.extend(f"ignored unknown header {name}" for name in unknown_helicone_headers(helicone_fields))
        try:
            cache_control = [("cache-control", v) for v in flow.request.headers.get_all("cache-control")]
            options = parse_helicone_headers(helicone_fields + cache_control, config.request_defaults)
            header_error = None
        except HeaderError as e:
            options, header_error = tags_only(helicone_fields), e  # the row keeps its tags and honours omit flags
        state.request.options = options
        helicone_auth = bearer(next((v for k, v in helicone_fields if k.lower() == "helicone-auth"), None))
        if not self._authorize(flow, state, helicone_auth):
            return
        declared = flow.request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limits.max_request_bytes:
            self.refusals.refuse(flow, 413, "llmtap_request_too_large", str(BodyTooLarge(limits.max_request_bytes)))
            return
        if header_error is not None:
            self.refusals.refuse(flow, 400, "llmtap_invalid_header", header_error.message, header=header_error.header)
            return
        if options.request_id:
            if options.request_id in self._used_request_ids:
                self.refusals.refuse(flow, 409, "llmtap_duplicate_request_id",
                                     f"Helicone-Request-Id {options.request_id} was already used for another call; "
                                     "send a new UUID for each call", header="Helicone-Request-Id")
                return
            self._remember_request_id(options.request_id)
            state.request_id = options.request_id
        self.refusals.guard_unknown_length(flow, state, limits.max_request_bytes)

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        state = get_state(flow)
        if flow.response or flow.error or state is None:
            return None
        self.refusals.release(flow, state)  # the body arrived within the limit
        limits = self.settings.config.limits
        reading = (flow.request, limits.max_request_bytes, limits.max_logged_body_bytes)
        if len(flow.request.raw_content or b"") > INLINE_BODY_BYTES:
            return self._read_in_thread(flow, state, reading)  # mitmproxy awaits it; other calls go on meanwhile
        self._take_body(flow, state, read_request_body(*reading))
        return None

    async def _read_in_thread(self, flow: http.HTTPFlow, state: CallState, reading: tuple) -> None:
        self._take_body(flow, state, await asyncio.to_thread(read_request_body, *reading))

    def _take_body(self, flow: http.HTTPFlow, state: CallState, body: RequestBody) -> None:
        if body.refusal is not None:
            state.outcome.refused = True
            reply_with_error(flow, *body.refusal)
            return
        state.route.wire, state.request.body, state.request.body_logged = body.wire, body.parsed, body.logged
        state.request.body_problem = body.problem
        if state.route.wire is not None:
            path = endpoint_path(flow.request.path)
            state.request.model = state.route.wire.model(path, state.request.body)
            state.request.stream = state.route.wire.is_stream(path, state.request.body)
        # llmtap reads every answer, streamed ones included; a compressed stream could not be read as it passes.
        flow.request.headers["accept-encoding"] = "identity"
        headers = flow.request.headers
        if flow.request.raw_content and "content-length" not in headers and "transfer-encoding" not in headers:
            # An HTTP/2 client need not send a length; mitmproxy relays to an HTTP/1 provider without adding one,
            # and the provider would read no body.
            headers["content-length"] = str(len(flow.request.raw_content))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if (state := get_state(flow)) is None or flow.response is None:
            return
        state.outcome.first_byte_at = time.monotonic()
        flow.response.headers["helicone-id"] = state.request_id  # the key of the call's row

    def _take_helicone_headers(self, request: http.Request) -> list[tuple[str, str]]:
        """Remove every `Helicone-*` header in one pass (deleting them one by one rescans all headers each time) and
        return them, decoded, in the order sent."""
        taken, kept = [], []
        for name, value in request.headers.fields:
            if name[:len(PREFIX)].lower() == PREFIX.encode():
                taken.append((name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")))
            else:
                kept.append((name, value))
        if taken:
            request.headers.fields = tuple(kept)
        return taken

    def _authorize(self, flow: http.HTTPFlow, state: CallState, helicone_auth: str | None) -> bool:
        """Name the caller's key in the state; on the gateway way in with `gateway.keys` set, refuse (401) a caller
        without a valid one."""
        if state.way == "proxy":
            # The client's own key, always what goes upstream.
            state.request.key_hash = fingerprint(client_key(flow.request))
            return True
        presented = presented_key(flow.request, helicone_auth)
        keys = self.settings.config.gateway_keys
        if not keys:
            # The client's own key, when it goes through to the provider.
            state.request.key_hash = fingerprint(presented)
            return True
        if (key := gateway_key_for(presented, keys)) is not None:
            state.request.key_hash, state.request.key_owner = fingerprint(presented), key.owner
            return True
        self.refusals.refuse(
            flow, 401, "llmtap_unauthorized",
            "a valid llmtap gateway key is required: "
            "send 'Authorization: Bearer <key>' or 'Helicone-Auth: Bearer <key>'",
        )
        return False

    def _remember_request_id(self, request_id: str) -> None:
        self._used_request_ids[request_id] = None
        if len(self._used_request_ids) > REMEMBERED_REQUEST_IDS:
            self._used_request_ids.popitem(last=False)


def client_host(flow: http.HTTPFlow) -> str:
    """The host the client sent the call to, as it wrote it (its Host header; the gateway's keeps it, see
    pipeline.mitmproxy_args): `api.openai.com` on the proxy way in, the gateway's `127.0.0.1:8787` on the gateway
    way in. The scheme's default port is left out."""
    request = flow.request
    written = request.host_header
    if not written:  # an HTTP/1.0 client may send none: the address it connected to
        address = flow.client_conn.sockname if isinstance(flow.client_conn.proxy_mode, ReverseMode) else None
        return f"{address[0]}:{address[1]}" if address else request.pretty_host
    host, port = url.parse_authority(written, check=False)
    return host if port is not None and port == url.default_port(request.scheme) else written


@dataclass(frozen=True)
class RequestBody:
    """What reading a request's body gave: its wire format and parsed body, or why it is refused."""

    wire: WireFormat | None = None
    parsed: Any = None
    logged: str | None = None  # the row's request_body when the body is over the logged cap, already cut
    problem: str | None = None  # why the body is not JSON, when it is not
    refusal: tuple[int, str, str] | None = None  # (status, error type, message)


def read_request_body(request: http.Request, limit_bytes: int, logged_cap_bytes: int) -> RequestBody:
    """Decode `request`'s body within `limit_bytes` and parse it once (JSON for APIs llmtap reads; uploads, audio
    and the like are not parsed); a body over `logged_cap_bytes` is cut for the row here too. Touches nothing, so it
    may run on a worker thread."""
    try:
        content = decoded_body(request, limit_bytes)
    except BodyTooLarge as e:
        return RequestBody(refusal=(413, "llmtap_request_too_large", str(e)))
    except UnsupportedEncoding as e:
        return RequestBody(refusal=(415, "llmtap_unsupported_encoding", str(e)))
    wire = format_for_path(request.path)
    if wire is None and "json" not in request.headers.get("content-type", ""):
        return RequestBody(wire=None)
    parsed, problem = parse_json_body(content)
    return RequestBody(wire=wire, parsed=parsed, logged=cut_body_text(content, logged_cap_bytes), problem=problem)
