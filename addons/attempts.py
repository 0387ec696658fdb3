"""The `AttemptRunner` addon: retries and fallbacks, run inside the gateway without holding anything up.

mitmproxy sends a flow to one upstream and relays its one answer. A call with retries or fallbacks is instead sent to
a small HTTP server of llmtap's own on loopback, in the same process and event loop, which tries the targets in
order (see fallback.py), waits between tries without blocking (see retry.py), and relays the answer that ends the
call — streamed as it arrives, so mitmproxy and the stream tap see it like any other. When the client goes away,
so does the relay's work for it: no more tries are sent on its behalf. A stream that has begun is never
retried: only answers whose status says "try again" are. When the tries run out the client gets the provider's last
answer as it was, or a JSON 502 when no provider answered at all. Every try is written to the call's state for its row.
When the call has finished, its flow shows where the answer came from, not llmtap's relay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from mitmproxy import http

from .callstate import CallState, get_state
from .credentials import masked_path
from .fallback import Target, has_fallbacks, plan_targets
from .origin import origin_of_url
from .record import SKIPPED, AttemptRecord, CallRecord
from .replies import NOT_RETRYABLE, error_json, reply_with_error
from .retry import is_retryable, provider_wait_s, wait_s
from .settings import Settings
from .unreachable import (
    UNREACHABLE_STATUS,
    UNREACHABLE_TYPE,
    connection_error_text,
    upstream_unreachable_message,
    why_unreachable,
)

logger = logging.getLogger(__name__)

TOKEN_HEADER = "x-llmtap-attempts"
RELAY_PATH = "/attempts"
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "upgrade"})


class AttemptRunner:
    def __init__(self, settings: Settings, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self.settings = settings
        self.sleep = sleep  # how the relay waits between tries (a test passes one that does not)
        self._pending: dict[str, tuple[CallState, list[Target]]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._server: asyncio.Server | None = None
        self._port = 0  # the relay's, once running

    async def running(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self.settings.config.upstream_timeout_s)
        self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False, skip_auto_headers=("User-Agent",))
        # handler_cancellation: when the client goes away, so does the relay's work for it (no more tries).
        relay = web.Server(self._serve, access_log=None, handler_cancellation=True)
        self._server = await asyncio.get_running_loop().create_server(relay, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]

    def request(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if flow.response or flow.error or state is None or state.route.provider is None:
            return
        if state.route.outgoing_body is not None:  # llmtap changed the body: serialised once, as the call leaves
            flow.request.set_content(json.dumps(state.route.outgoing_body).encode())
        options = state.request.options
        if (not options.retry.enabled and not has_fallbacks(state, self.settings.config)
                and state.route.provider_auth_headers is None):
            return  # mitmproxy sends it; the relay takes calls that retry, fall back, or carry a key kept off the flow
        try:
            targets = plan_targets(flow.request, state, self.settings.config)
        except ValueError as e:
            reply_with_error(flow, 400, "llmtap_invalid_fallback", str(e))
            return
        if all(target.skipped_because for target in targets):
            state.attempts.log += [_skipped(target) for target in targets]
            missing = ", ".join(f"{target.model} ({(target.skipped_because or '').removeprefix(SKIPPED)})"
                                for target in targets)
            reply_with_error(flow, 500, "llmtap_missing_provider_key",
                             f"the gateway has no key for any model this call may use: {missing}",
                             headers=NOT_RETRYABLE)
            return
        token = secrets.token_urlsafe(16)
        self._pending[token] = (state, targets)
        flow.request.scheme, flow.request.host, flow.request.port = "http", "127.0.0.1", self._port
        flow.request.path = RELAY_PATH
        flow.request.headers[TOKEN_HEADER] = token

    def call_finished(self, flow: http.HTTPFlow, record: CallRecord) -> None:
        """Forget a call the relay never saw (the client left first, or llmtap answered it), and show the flow as
        sent where the answer came from, not to llmtap's own relay."""
        token = flow.request.headers.pop(TOKEN_HEADER, None)
        if token is None:
            return
        self._pending.pop(token, None)
        state = get_state(flow)
        if state is not None and state.attempts.answered_url:
            flow.request.url = state.attempts.answered_url
            flow.request.path = masked_path(flow.request.path)

    async def done(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._session is not None:
            await self._session.close()

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        entry = self._pending.pop(request.headers.get(TOKEN_HEADER, ""), None)
        if entry is None:
            unknown = {"error": {"type": "llmtap_unknown_attempt", "message": "no such call"}}
            return web.json_response(unknown, status=404)
        await request.release()  # the relay sends the targets' own bodies; mitmproxy's copy is not needed
        state, targets = entry
        answer, target = await self._attempt(state, targets)
        if answer is None:  # the same answer and row as when mitmproxy cannot connect (unreachable.py)
            last_error = next((a.error for a in reversed(state.attempts.log) if not a.skipped), None)
            message = upstream_unreachable_message(target.provider.name, origin_of_url(target.url),
                                                   why_unreachable(last_error or ""))
            state.outcome.error = f"{UNREACHABLE_TYPE}: {message}"
            body = error_json(state.route.wire, UNREACHABLE_STATUS, UNREACHABLE_TYPE, message)
            return web.Response(body=body, status=UNREACHABLE_STATUS, content_type="application/json")
        state.route.provider = target.provider
        state.attempts.answered_url = target.url
        try:
            return await answer.relay(request)
        finally:
            answer.upstream.release()

    async def _attempt(self, state: CallState, targets: list[Target]) -> tuple[Answer | None, Target]:
        """Try the targets in order, each with its retries, until an answer ends the call: one that is not to be
        retried or fallen back from, or the last target's last try."""
        retry = state.request.options.retry
        max_retries = retry.max_retries if retry.enabled else 0
        number, retry_index = 0, 0  # which target, and which retry of it
        if targets[0].skipped_because is not None:  # llmtap has no key for the primary: its fallbacks go first
            state.attempts.log.append(_skipped(targets[0]))
            following = _next_sendable(state, targets, 0)
            assert following is not None  # a call with no target to send is answered before it gets here
            number = following
        while True:
            target = targets[number]
            answer, attempt = await self._try_once(target)
            state.attempts.log.append(attempt)
            if is_retryable(attempt.status) and retry_index < max_retries:
                headers = answer.upstream.headers if answer is not None else {}
                wait = wait_s(retry, retry_index, headers.get("retry-after"), headers.get("retry-after-ms"))
                attempt.wait_ms = round(wait * 1000, 3)
                _discard(answer)
                await self.sleep(wait)
                retry_index += 1
                state.attempts.retries += 1
                continue
            status = attempt.status if attempt.status is not None else 502  # no answer counts as a 502
            following = _next_sendable(state, targets, number) if status in target.on_codes else None
            if following is not None:
                _discard(answer)
                number, retry_index = following, 0
                continue
            if number > 0:
                state.attempts.fallback_from = targets[0].model
            return answer, target

    async def _try_once(self, target: Target) -> tuple[Answer | None, AttemptRecord]:
        assert self._session is not None
        started = time.monotonic()
        attempt = AttemptRecord(provider=target.provider.name, model=target.model)
        answer = None
        try:
            upstream = await self._session.post(target.url, data=target.body, headers=list(target.headers),
                                                allow_redirects=False)
            # An error answer is small and read whole (its text goes in the log); a good one streams on.
            answer = Answer(upstream, await upstream.read() if upstream.status >= 400 else None)
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            attempt.error = connection_error_text(e)
        if answer is not None:
            headers = answer.upstream.headers
            attempt.status = answer.upstream.status
            attempt.retry_after_s = provider_wait_s(headers.get("retry-after"), headers.get("retry-after-ms"))
            if answer.body is not None:
                attempt.error = _error_text(answer.body)
        attempt.latency_ms = round((time.monotonic() - started) * 1000, 3)
        return answer, attempt


def _next_sendable(state: CallState, targets: list[Target], number: int) -> int | None:
    """The next target after `number` that can be sent; each one passed over (llmtap has no key for it) is logged as
    skipped. None when there is none: the call ends with the answer it has."""
    for following in range(number + 1, len(targets)):
        target = targets[following]
        if target.skipped_because is None:
            return following
        state.attempts.log.append(_skipped(target))
    return None


def _skipped(target: Target) -> AttemptRecord:
    """The attempt log's note of a target passed over without being sent."""
    return AttemptRecord(provider=target.provider.name, model=target.model, error=target.skipped_because)


def _discard(answer: Answer | None) -> None:
    if answer is not None:
        answer.upstream.release()


@dataclass
class Answer:
    upstream: aiohttp.ClientResponse
    body: bytes | None  # already read (error answers), else still to stream

    async def relay(self, request: web.BaseRequest) -> web.StreamResponse:
        """Send the answer on as it arrives: status, headers and body chunks."""
        response = web.StreamResponse(status=self.upstream.status, reason=self.upstream.reason)
        for name, value in self.upstream.headers.items():
            if name.lower() not in HOP_BY_HOP:
                response.headers.add(name, value)
        await response.prepare(request)
        if self.body is not None:
            await response.write(self.body)
        else:
            async for chunk in self.upstream.content.iter_any():
                await response.write(chunk)
        await response.write_eof()
        return response


def _error_text(body: bytes) -> str:
    try:
        error = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", errors="replace")
    if isinstance(error, dict):
        return f"{error.get('type') or error.get('code')}: {error.get('message', '')}"
    return str(error)[:200]
