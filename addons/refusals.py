"""The `RefusalSink` addon: refuses a call before its body has arrived, without ever holding that body.

mitmproxy reads a request's whole body into memory before it sends the answer an addon set in `requestheaders`, so a
caller without a key could still make llmtap hold gigabytes. A call llmtap refuses on its headers (no gateway key,
headers or a declared body over the limits) is instead streamed — never buffered — to a small HTTP server of
llmtap's own on loopback, which reads and drops the body as it arrives and then answers the JSON error.

A body of unknown length (chunked) is buffered as usual while it stays within `limits.max_request_bytes`; mitmproxy
streams one that grows past it (its `stream_large_bodies` option is set to the limit), and it is then streamed to this
sink, which answers 413. So no request body larger than the limit is ever held, whoever sends it. (mitmweb keeps
streamed bodies for display, `store_streamed_bodies`: there, the body of a refused call is held like any other.)

While a refused call's body drains, its `CallState` is parked out of every other addon's sight — the call is decided —
and put back when the sink's answer arrives, so the Recorder logs it like any other call. This addon therefore runs
first in the pipeline.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from aiohttp import web
from mitmproxy import http

from .bodies import BodyTooLarge
from .callstate import METADATA_KEY, CallState, get_state
from .replies import client_wire, error_json

TOKEN_HEADER = "x-llmtap-refusal"
BODY_FRAMING = (b"content-length", b"transfer-encoding")
PARKED_KEY = "llmtap_refused"  # where a refused call's state waits while its body drains


@dataclass(frozen=True)
class Refusal:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Destination:
    """Where a request was headed before it was pointed at the sink."""

    scheme: str
    host: str
    port: int
    path: str


class RefusalSink:
    def __init__(self) -> None:
        self._pending: dict[str, Refusal] = {}
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._limit_bytes = 0

    async def running(self) -> None:
        sink = web.Server(self._serve, access_log=None)
        self._server = await asyncio.get_running_loop().create_server(sink, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]

    async def done(self) -> None:
        if self._server is not None:
            self._server.close()

    def refuse(self, flow: http.HTTPFlow, status: int, error_type: str, message: str,
               headers: dict[str, str] | None = None, **extra: object) -> None:
        """Answer `flow` (still at its headers) with a JSON error in its API's shape (replies.py) once its body has
        been read and dropped.
        The call's state records the error and that the call was refused, so its row keeps no body."""
        state = get_state(flow)
        if state is not None:
            state.outcome.error = f"{error_type}: {message}"
            state.outcome.refused = True
        body = error_json(client_wire(flow), status, error_type, message, **extra)
        refusal = Refusal(status, body, (("content-type", "application/json"), *(headers or {}).items()))
        if self._send_to_sink(flow, refusal):
            _park(flow)

    def guard_unknown_length(self, flow: http.HTTPFlow, state: CallState, limit_bytes: int) -> None:
        """For a body whose length is not declared: should it grow past `limit_bytes`, mitmproxy streams it, and
        then to the sink (413). `release` undoes this once the body has arrived within the limit."""
        headers = flow.request.headers
        if "content-length" in headers or self._port is None:
            return
        state.limits.held_destination = _destination(flow.request)
        message = str(BodyTooLarge(limit_bytes))
        body = error_json(client_wire(flow), 413, "llmtap_request_too_large", message)
        self._send_to_sink(flow, Refusal(413, body, (("content-type", "application/json"),)), now=False)
        state.outcome.error = f"llmtap_request_too_large: {message}"  # stands unless release() is called
        state.outcome.refused = True

    def release(self, flow: http.HTTPFlow, state: CallState) -> None:
        """The body arrived within the limit: send the request where it was going, and forget the refusal."""
        held = state.limits.held_destination
        if held is None:
            return
        self._pending.pop(flow.request.headers.pop(TOKEN_HEADER, ""), None)
        flow.request.scheme, flow.request.host, flow.request.port, flow.request.path = (
            held.scheme, held.host, held.port, held.path)
        state.limits.held_destination, state.outcome.error, state.outcome.refused = None, None, False

    def request(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if state is not None and state.limits.held_destination is not None and flow.request.stream:
            _park(flow)  # the body grew past the limit and went to the sink: the 413 stands

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        _unpark(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        _unpark(flow)
        if token := flow.request.headers.get(TOKEN_HEADER):
            self._pending.pop(token, None)

    def _send_to_sink(self, flow: http.HTTPFlow, refusal: Refusal, now: bool = True) -> bool:
        """Point `flow` at the sink, which will answer `refusal`: `now`, streaming the body there as it arrives; else
        only should mitmproxy stream it (a body past the limit), the call keeping its headers in case it is released.
        False when the sink is not running (a unit test of one addon), where the answer is set at once and mitmproxy
        sends it once the body is read."""
        if self._port is None:
            flow.response = http.Response.make(refusal.status, refusal.body, dict(refusal.headers))
            return False
        self._pending.pop(flow.request.headers.get(TOKEN_HEADER, ""), None)  # a later refusal replaces an earlier
        token = secrets.token_urlsafe(16)
        self._pending[token] = refusal
        if now:
            # The sink needs only the body's framing: the caller's other headers (a flood of them, keys) stay behind.
            framing = [(k, v) for k, v in flow.request.headers.fields if k.lower() in BODY_FRAMING]
            flow.request.headers = http.Headers(framing)
            flow.request.headers["host"] = f"127.0.0.1:{self._port}"
            flow.request.stream = True  # every chunk goes on to the sink as it arrives; none is kept
        flow.request.headers[TOKEN_HEADER] = token
        flow.request.scheme, flow.request.host, flow.request.port = "http", "127.0.0.1", self._port
        flow.request.path = "/refused"
        return True

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        refusal = self._pending.pop(request.headers.get(TOKEN_HEADER, ""), None)
        async for _ in request.content.iter_any():  # read and drop: the caller's bytes are never kept
            pass
        if refusal is None:
            return web.json_response({"error": {"type": "llmtap_refused", "message": "refused"}}, status=400)
        response = web.Response(status=refusal.status, body=refusal.body)
        for name, value in refusal.headers:
            response.headers[name] = value
        return response


def is_refused(flow: http.HTTPFlow) -> bool:
    """True for a call already refused (answered, or draining into the sink)."""
    return flow.response is not None or PARKED_KEY in flow.metadata


def _park(flow: http.HTTPFlow) -> None:
    if METADATA_KEY in flow.metadata:
        flow.metadata[PARKED_KEY] = flow.metadata.pop(METADATA_KEY)


def _unpark(flow: http.HTTPFlow) -> None:
    if PARKED_KEY in flow.metadata:
        flow.metadata[METADATA_KEY] = flow.metadata.pop(PARKED_KEY)


def _destination(request: http.Request) -> Destination:
    return Destination(request.scheme, request.host, request.port, request.path)
