"""The `UpstreamFailure` addon: a provider llmtap cannot reach is answered in JSON, in the client's SDK shape.

When mitmproxy itself sends a call upstream (no retries, no fallbacks) and the connection fails (refused, DNS, TLS,
closed before an answer), mitmproxy 12 answers the client with its own HTML 502 page: its HTTP layer sends that page
right after the `error` hook, whatever an addon did there. mitmproxy has an open pull request for exactly this (#7999,
"allow error hook to override 502 responses"); until it ships, `honour_answers_from_error_hook` makes mitmproxy's
HTTP stream do what that pull request does, for this one case: an upstream failure the client still waits on, answered
by the `error` hook. Everything else (a client that went away, a failure mid-answer) goes to mitmproxy's own handling.

mitmproxy waits on a silent upstream as long as the connection lives; llmtap's relay gives each try
`retries.upstream_timeout_s`. So that a call mitmproxy sends has the same limit, a timer closes a still-silent
upstream connection then (HTTP/1 only: an HTTP/2 connection carries other calls too), and the call is answered as
unreachable, "timed out".

The answer and the row say the same, whichever way the call came in (gateway or proxy) and whether llmtap's relay
(attempts.py, retries) or mitmproxy made the connection: status 502, type `llmtap_upstream_unreachable`, and a message
naming the provider, the upstream (scheme://host:port) and why (unreachable.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Generator
from typing import Any

from mitmproxy import flow as mitmflow
from mitmproxy import http
from mitmproxy import version as mitmproxy_version
from mitmproxy.proxy.layers import http as http_layer

from .attempts import TOKEN_HEADER as RELAY_TOKEN_HEADER
from .callstate import get_state
from .connections import close_server
from .origin import origin
from .replies import reply_with_error
from .settings import Settings
from .unreachable import UNREACHABLE_STATUS, UNREACHABLE_TYPE, upstream_unreachable_message, why_unreachable

logger = logging.getLogger(__name__)

CLIENT_WAITS_KEY = "llmtap_client_waits"  # flow.metadata: set while the error hook may answer the client
TIMED_OUT_KEY = "llmtap_upstream_timed_out"  # flow.metadata: the seconds the upstream stayed silent, when it did


class UpstreamFailure:
    """Answers a call whose provider could not be reached with llmtap's JSON error (see the module's docstring).

    A provider that connects but stays silent for `retries.upstream_timeout_s` (the relay's limit on each try) is
    unreachable too: its connection is closed, and the call answered as any other unreachable one. Comes after
    AttemptRunner (a call its relay takes has the relay's own limits) and before every addon that reads how a call
    ended (Recorder): the row gets this status and error."""

    def __init__(self, settings: Settings, call_later: Callable[[float, Callable[[], None]], Any] | None = None):
        self.settings = settings
        self._call_later = call_later  # how the silence timer is set (a test passes its own); default: the loop's
        self._timers: dict[str, Any] = {}  # flow id -> the timer of a call mitmproxy sends, until it is answered

    def load(self, loader: Any) -> None:
        honour_answers_from_error_hook()

    def request(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if flow.response or flow.error or state is None or state.route.provider is None:
            return
        if RELAY_TOKEN_HEADER in flow.request.headers:
            return  # llmtap's relay sends it, with its own time limits
        timeout_s = self.settings.config.upstream_timeout_s
        call_later = self._call_later or asyncio.get_running_loop().call_later
        self._timers[flow.id] = call_later(timeout_s, lambda: self._time_out(flow, timeout_s))

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self._forget(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._forget(flow)
        if not flow.metadata.pop(CLIENT_WAITS_KEY, False) or flow.response is not None:
            return
        state = get_state(flow)
        if state is None or flow.error is None:
            return  # not an LLM call: mitmproxy's own page, as for any other traffic llmtap does not read
        provider = state.route.provider.name if state.route.provider else "the provider"
        upstream = origin(flow.request.scheme, flow.request.host, flow.request.port)
        why = why_unreachable(flow.error.msg)
        if (silent_s := flow.metadata.get(TIMED_OUT_KEY)) is not None:
            why = f"timed out: no answer in {silent_s:g} s (retries.upstream_timeout_s)"
        reply_with_error(flow, UNREACHABLE_STATUS, UNREACHABLE_TYPE,
                         upstream_unreachable_message(provider, upstream, why))

    def done(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _forget(self, flow: http.HTTPFlow) -> None:
        if (timer := self._timers.pop(flow.id, None)) is not None:
            timer.cancel()

    def _time_out(self, flow: http.HTTPFlow, timeout_s: float) -> None:
        """The upstream stayed silent: close its connection, so that mitmproxy ends the call (error hook)."""
        self._timers.pop(flow.id, None)
        if flow.response is not None or flow.error is not None:
            return
        if flow.server_conn.alpn == b"h2":
            return  # other calls share an HTTP/2 connection: closing it would end them too
        if close_server(flow, "upstream timeout"):
            flow.metadata[TIMED_OUT_KEY] = timeout_s
            logger.info(f"llmtap: no answer from {flow.request.host}:{flow.request.port} in {timeout_s:g} s "
                        "(retries.upstream_timeout_s); closed its connection")


_patched = False
KNOWN_MITMPROXY = "12."  # written against 12.3's HttpStream; another major release may change it: then no patch


def honour_answers_from_error_hook() -> None:
    """Let the `error` hook answer a call whose upstream failed before answering (mitmproxy PR #7999's behaviour, for
    that case only). Idempotent; when mitmproxy's HTTP stream no longer looks as expected, it changes nothing and
    says so (clients then get mitmproxy's own 502 page, as before)."""
    global _patched
    stream = http_layer.HttpStream
    if _patched:
        return
    if not mitmproxy_version.VERSION.startswith(KNOWN_MITMPROXY) or not all(
            hasattr(stream, name) for name in ("handle_protocol_error", "check_killed", "state_done")):
        logger.warning("llmtap: this mitmproxy's HTTP layer is not the one llmtap knows; an unreachable provider "
                       "will be answered with mitmproxy's HTML 502 instead of JSON")
        return
    stream.handle_protocol_error = _answering_protocol_error(stream.handle_protocol_error)  # type: ignore[method-assign]
    _patched = True


def _answering_protocol_error(original: Callable[..., Generator]) -> Callable[..., Generator]:
    def handle_protocol_error(self: Any, event: Any) -> Generator[Any, Any, None]:
        client_waits = (isinstance(event, http_layer.ResponseProtocolError) and self.flow.response is None
                        and self.client_state == self.state_done
                        and self.server_state not in (self.state_done, self.state_errored))
        if not client_waits:
            return (yield from original(self, event))
        self.flow.error = mitmflow.Error(event.message)
        self.flow.metadata[CLIENT_WAITS_KEY] = True
        yield http_layer.HttpErrorHook(self.flow)
        self.flow.metadata.pop(CLIENT_WAITS_KEY, None)
        if (yield from self.check_killed(False)):
            return
        response = self.flow.response
        if response is None:  # no addon answered: mitmproxy's own error page, as without this
            yield http_layer.SendHttp(event, self.context.client)
            self.server_state = self.state_errored
            self.flow.live = False
            yield http_layer.DropStream(self.stream_id)
            return
        # As mitmproxy sends a response an addon set (HttpStream.send_response and flow_done), minus the `response`
        # hook: this call has had its `error` hook, and addons see one end per flow.
        response.timestamp_start = response.timestamp_end = time.time()
        content = response.raw_content or b""
        yield http_layer.SendHttp(http_layer.ResponseHeaders(self.stream_id, response, not content),
                                  self.context.client)
        if content:
            yield http_layer.SendHttp(http_layer.ResponseData(self.stream_id, content), self.context.client)
        self.server_state = self.state_done
        self.flow.live = False
        yield http_layer.DropStream(self.stream_id)
        yield http_layer.SendHttp(http_layer.ResponseEndOfMessage(self.stream_id), self.context.client)

    return handle_protocol_error
