"""`ClientIdleTimeout` on real connections, with its timers on a clock the test moves by hand: a connection that sends
no request is closed once `limits.client_idle_timeout_s` has passed and not before; one with a call in flight never
is. (A thousand idle connections against a real process: test_idle.py.)"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest
from llmtap.idle import ClientIdleTimeout
from llmtap.settings import Settings
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.proxy.server import SimpleConnectionHandler
from mitmproxy.test import taddons, tflow

from .conftest import GATEWAY_MODE, write_config

TIMEOUT_S = 5.0


class Timer:
    def __init__(self, due: float, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.due, self.callback, self.args, self.cancelled = due, callback, args, False

    def cancel(self) -> None:
        self.cancelled = True


class FakeTimers:
    """`loop.call_later` on a clock the test moves: `advance(s)` runs, in order, what falls due."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[Timer] = []

    def call_later(self, delay_s: float, callback: Callable[..., None], *args: Any) -> Timer:
        timer = Timer(self.now + delay_s, callback, args)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = sorted((t for t in self.timers if not t.cancelled and t.due <= self.now), key=lambda t: t.due)
        for timer in due:
            timer.cancelled = True
            timer.callback(*timer.args)


class Connection:
    """A real client connection as mitmproxy holds it (its handler registered with the proxy server), and the
    client's end of the socket, to see whether llmtap closed it."""

    def __init__(self, handler: SimpleConnectionHandler, client_end: socket.socket) -> None:
        self.handler, self.client_end = handler, client_end

    @property
    def client(self):
        return self.handler.client

    async def closed(self) -> bool:
        """Whether the client's end has seen the connection close (EOF), once pending I/O has run."""
        for _ in range(5):
            await asyncio.sleep(0)  # let the transport act on a close
        try:
            return self.client_end.recv(1) == b""
        except BlockingIOError:
            return False


@pytest.fixture
def idle(tmp_path):
    timers = FakeTimers()
    settings = Settings()
    addon = ClientIdleTimeout(settings, call_later=timers.call_later)
    proxyserver = Proxyserver()
    sockets: list[socket.socket] = []
    with taddons.context(settings, addon, proxyserver) as context:
        config = write_config(tmp_path / "idle", {"limits": {"client_idle_timeout_s": TIMEOUT_S}})
        context.options.update(llmtap_config=str(config))

        async def connect() -> Connection:
            server_end, client_end = socket.socketpair()
            sockets.extend((server_end, client_end))
            client_end.setblocking(False)
            reader, writer = await asyncio.open_connection(sock=server_end)
            handler = SimpleConnectionHandler(reader, writer, context.options, GATEWAY_MODE, {})
            proxyserver.connections[handler.client.id] = handler  # type: ignore[assignment]  # what closing reads
            addon.client_connected(handler.client)
            return Connection(handler, client_end)

        yield addon, timers, connect
    for s in sockets:
        s.close()


def test_a_connection_that_sends_nothing_is_closed_when_the_timeout_passes(idle):
    addon, timers, connect = idle

    async def scenario():
        quiet = await connect()
        timers.advance(TIMEOUT_S - 0.01)
        assert not await quiet.closed()
        timers.advance(0.01)
        assert await quiet.closed()

    asyncio.run(scenario())


def test_a_call_in_flight_is_never_cut_and_the_clock_restarts_after_it(idle):
    addon, timers, connect = idle

    async def scenario():
        busy = await connect()
        timers.advance(TIMEOUT_S - 1)
        flow = tflow.tflow(client_conn=busy.client)
        addon.requestheaders(flow)  # a request head arrived: off the clock
        timers.advance(10 * TIMEOUT_S)  # a slow provider
        assert not await busy.closed()
        addon.response(flow)  # answered: keep-alive, waiting for the next request on a fresh clock
        timers.advance(TIMEOUT_S - 0.01)
        assert not await busy.closed()
        timers.advance(0.01)
        assert await busy.closed()

    asyncio.run(scenario())


def test_a_failed_call_restarts_the_clock_too(idle):
    addon, timers, connect = idle

    async def scenario():
        conn = await connect()
        flow = tflow.tflow(client_conn=conn.client, err=True)
        addon.requestheaders(flow)
        addon.error(flow)
        timers.advance(TIMEOUT_S)
        assert await conn.closed()

    asyncio.run(scenario())


def test_a_websocket_is_never_timed_out_and_other_connections_keep_their_own_clock(idle):
    addon, timers, connect = idle

    async def scenario():
        socket_ = await connect()
        addon.websocket_start(tflow.tflow(client_conn=socket_.client, ws=True))
        timers.advance(TIMEOUT_S / 2)
        late = await connect()
        timers.advance(TIMEOUT_S / 2)
        assert not await socket_.closed() and not await late.closed()
        timers.advance(TIMEOUT_S / 2)
        assert await late.closed() and not await socket_.closed()

    asyncio.run(scenario())
