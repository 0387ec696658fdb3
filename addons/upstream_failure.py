"""The `UpstreamFailure` addon: a provider llmtap cannot reach is answered in JSON, in the client's SDK shape.

When mitmproxy itself sends a call upstream (no retries, no fallbacks) and the connection fails (refused, DNS, TLS,
closed before an answer), mitmproxy 12 answers the client with its own HTML 502 page: its HTTP layer sends that page
right after the `error` hook, whatever an addon did there. mitmproxy has an open pull request for exactly this (#7999,
"allow error hook to override 502 responses"); until it ships, `honour_answers_from_error_hook` makes mitmproxy's
HTTP stream do what that pull request does, for this one case: an upstream failure the client still waits on, answered
by the `error` hook. Everything else (a client that went away, a failure mid-answer) goes to mitmproxy's own handling.

The answer and the row say the same, whichever way the call came in (gateway or proxy) and whether llmtap's relay
(attempts.py, retries) or mitmproxy made the connection: status 502, type `llmtap_upstream_unreachable`, and a message
naming the provider, the upstream (scheme://host:port) and why (`upstream_unreachable_message`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Generator
from typing import Any

from mitmproxy import flow as mitmflow
from mitmproxy import http
from mitmproxy.proxy.layers import http as http_layer

from .callstate import get_state
from .replies import reply_with_error

logger = logging.getLogger(__name__)

UNREACHABLE_STATUS = 502  # as mitmproxy's own answer, and the relay's (attempts.py) for every kind of failure
UNREACHABLE_TYPE = "llmtap_upstream_unreachable"
CLIENT_WAITS_KEY = "llmtap_client_waits"  # flow.metadata: set while the error hook may answer the client


class UpstreamFailure:
    """Answers a call whose provider could not be reached with llmtap's JSON error (see the module's docstring).
    Comes before every addon that reads how a call ended (Recorder): the row gets this status and error."""

    def load(self, loader: Any) -> None:
        honour_answers_from_error_hook()

    def error(self, flow: http.HTTPFlow) -> None:
        if not flow.metadata.pop(CLIENT_WAITS_KEY, False) or flow.response is not None:
            return
        state = get_state(flow)
        if state is None or flow.error is None:
            return  # not an LLM call: mitmproxy's own page, as for any other traffic llmtap does not read
        provider = state.route.provider.name if state.route.provider else "the provider"
        upstream = f"{flow.request.scheme}://{flow.request.host}:{flow.request.port}"
        reply_with_error(flow, UNREACHABLE_STATUS, UNREACHABLE_TYPE,
                         upstream_unreachable_message(provider, upstream, flow.error.msg))


def upstream_unreachable_message(provider: str, upstream: str, error: str) -> str:
    """What a client reads when `provider`'s `upstream` (scheme://host:port) gave no answer, `error` being the
    connection's own words: "llmtap could not reach openai at https://api.openai.com:443: connection refused (...)"."""
    return f"llmtap could not reach {provider} at {upstream}: {why_unreachable(error)}"


# What a connection error says, from Python's socket, ssl and asyncio and from aiohttp, in a few plain words.
_REASONS: tuple[tuple[str, str], ...] = (
    (r"refused|connect call failed|errno 111\b|errno 61\b", "connection refused"),
    (r"name or service not known|nodename nor servname|name resolution|getaddrinfo|dns|no address associated",
     "DNS lookup failed"),
    (r"certificate|ssl|tls", "TLS handshake failed"),
    (r"timed? ?out|timeout", "timed out"),
    (r"reset by peer|disconnect|closed|eof|broken pipe", "the connection closed before an answer"),
    (r"unreachable|no route", "network unreachable"),
)


def why_unreachable(error: str) -> str:
    """`error` (an exception's text) led by what kind of failure it is, when it is one of the usual kinds."""
    for pattern, reason in _REASONS:
        if re.search(pattern, error, re.IGNORECASE):
            return f"{reason} ({error})" if error and error.lower() != reason.lower() else reason
    return error or "no answer"


_patched = False


def honour_answers_from_error_hook() -> None:
    """Let the `error` hook answer a call whose upstream failed before answering (mitmproxy PR #7999's behaviour, for
    that case only). Idempotent; when mitmproxy's HTTP stream no longer looks as expected, it changes nothing and
    says so (clients then get mitmproxy's own 502 page, as before)."""
    global _patched
    stream = http_layer.HttpStream
    if _patched:
        return
    if not all(hasattr(stream, name) for name in ("handle_protocol_error", "check_killed", "state_done")):
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
