"""The `ClientIdleTimeout` addon: a client connection that sends no request is closed, so idle sockets cannot pile up.

A connection is on the clock whenever llmtap is waiting for the client to start a request: from when it connects
(or opens a CONNECT tunnel) until a whole request head has arrived, and again once its last call has finished (a
keep-alive connection waiting for its next request). When `limits.client_idle_timeout_s` passes on the clock, the
connection is closed. While a call is in flight the connection is off the clock, however long the provider takes to
answer: mitmproxy's own `tcp_timeout` counts any silence, which a slow model's answer must be allowed, so it is not
the tool for this. Tunnels llmtap passes through untouched (hosts that are not providers) and WebSockets are never
timed out here, once their first bytes have come (a tunnel's client must speak first, as TLS clients do; until it
has, llmtap cannot tell where the tunnel goes). A request whose head has arrived but whose body is slow is left to
mitmproxy's `tcp_timeout`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from mitmproxy import connection, http
from mitmproxy.proxy import layer, layers

from .connections import client_handler, client_hung_up, close_client
from .events import FlowEnd
from .settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class _Watch:
    """One client connection: the calls it has in flight, and its timer while it has none."""

    calls_in_flight: set[str] = field(default_factory=set)
    timer: asyncio.TimerHandle | None = None


class ClientIdleTimeout(FlowEnd):
    """Closes client connections that have sent no request head within `limits.client_idle_timeout_s`."""

    def __init__(self, settings: Settings, call_later: Callable[..., asyncio.TimerHandle] | None = None):
        self.settings = settings
        # Schedules a time-out: the running loop's `call_later` unless given (tests pass a clock they move by hand).
        self._call_later = call_later
        self._watches: dict[str, _Watch] = {}  # client connection id -> watch

    def client_connected(self, client: connection.Client) -> None:
        self._watches[client.id] = _Watch()
        self._start_clock(client.id)

    def http_connect(self, flow: http.HTTPFlow) -> None:
        # The CONNECT head has arrived; now the client owes us the tunnel's first request, on a fresh clock.
        self._start_clock(flow.client_conn.id)

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        if isinstance(nextlayer.layer, (layers.TCPLayer, layers.UDPLayer)):
            self._forget(nextlayer.context.client.id)  # a tunnel passed through: whatever it carries is not ours

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if watch := self._watches.get(flow.client_conn.id):
            watch.calls_in_flight.add(flow.id)
            self._stop_clock(watch)

    def flow_ended(self, flow: http.HTTPFlow) -> None:
        self._call_finished(flow)

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        self._forget(flow.client_conn.id)

    def client_disconnected(self, client: connection.Client) -> None:
        self._forget(client.id)

    def done(self) -> None:
        for client_id in list(self._watches):
            self._forget(client_id)

    def _call_finished(self, flow: http.HTTPFlow) -> None:
        watch = self._watches.get(flow.client_conn.id)
        if watch is None or flow.id not in watch.calls_in_flight:
            return
        watch.calls_in_flight.discard(flow.id)
        if not watch.calls_in_flight:
            self._start_clock(flow.client_conn.id)  # keep-alive: waiting for the next request

    def _start_clock(self, client_id: str) -> None:
        watch = self._watches.get(client_id)
        if watch is None or watch.calls_in_flight:
            return
        self._stop_clock(watch)
        timeout_s = self.settings.config.limits.client_idle_timeout_s
        call_later = self._call_later or asyncio.get_running_loop().call_later
        watch.timer = call_later(timeout_s, self._time_out, client_id, timeout_s)

    @staticmethod
    def _stop_clock(watch: _Watch) -> None:
        if watch.timer is not None:
            watch.timer.cancel()
            watch.timer = None

    def _forget(self, client_id: str) -> None:
        if watch := self._watches.pop(client_id, None):
            self._stop_clock(watch)

    def _time_out(self, client_id: str, timeout_s: float) -> None:
        self._forget(client_id)
        if (handler := client_handler(client_id)) is None or client_hung_up(handler):
            return  # already gone, or going: it hung up before its time was up, while the event loop was busy
        close_client(handler, "client idle timeout")
        logger.info(f"llmtap: closed a client connection that sent no request in {timeout_s:g} s "
                    "(limits.client_idle_timeout_s)", extra={"client": handler.client.peername})
