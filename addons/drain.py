"""Stopping without losing calls: on SIGTERM or SIGINT llmtap stops taking calls, lets those in flight finish, exits.

mitmproxy's own signal handlers stop the proxy at once, cutting every call in flight without a row. `Drain` replaces
them when the proxy starts. On the first signal it turns mitmproxy's listeners off (new connections are refused),
and `ShutdownGate` answers 503 to any request that still arrives on a connection already open. Calls in flight get
`shutdown.drain_s` to finish. A call still unfinished then is cut: its flow gets an error saying so, sent through
mitmproxy's error hook like any failed call, so every addon — the Recorder writing its row first — sees it end; the
row keeps the status the client saw (NULL when it saw none). Then mitmproxy stops, and its `done` hooks flush the
log. A second signal ends the wait at once (the calls still in flight are cut and recorded the same way).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

from mitmproxy import ctx, flow, http
from mitmproxy.proxy.layers.http import HttpErrorHook

from .connections import client_bytes_unsent, client_handlers, close_client
from .events import FlowEnd
from .replies import reply_with_error
from .settings import Settings

logger = logging.getLogger(__name__)

REFUSED_KEY = "llmtap.refused_by_shutdown"  # flow.metadata flag: the request arrived after stopping began
POLL_S = 0.05
CLOSE_WAIT_S = 2.0  # how long closing the remaining client connections may take


def cut_message(drain_s: float) -> str:
    return f"cut by llmtap's shutdown: still unfinished after shutdown.drain_s ({drain_s:g} s)"


class Drain(FlowEnd):
    """Graceful stop on SIGTERM/SIGINT. Goes last in the addon list: a call counts as finished only once every other
    addon (the Recorder above all) has seen its response or error."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.stopping = False
        self._in_flight: dict[str, http.HTTPFlow] = {}  # flow id -> flow, from request head to response or error
        self._stop_task: asyncio.Task | None = None
        self._cut_now = asyncio.Event()

    def running(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stop)  # replaces mitmproxy's handler for the signal
        except NotImplementedError:  # (Windows' event loop) mitmproxy's own handlers stay: an immediate stop
            pass

    def stop(self) -> None:
        """Begin a graceful stop; called again while stopping, cut the calls still in flight now."""
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self._drain_and_shut_down())
        else:
            self._cut_now.set()

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self.stopping:
            flow.metadata[REFUSED_KEY] = True
        else:
            self._in_flight[flow.id] = flow

    def flow_ended(self, flow: http.HTTPFlow) -> None:
        self._in_flight.pop(flow.id, None)

    def done(self) -> None:
        if self._stop_task is not None and not self._stop_task.done():
            self._stop_task.cancel()  # mitmproxy is stopping for another reason

    async def _drain_and_shut_down(self) -> None:
        try:
            await self._drain()
        except Exception:  # whatever went wrong, the process must still stop
            logger.exception("llmtap: stopping gracefully failed; stopping now")
        finally:
            ctx.master.shutdown()

    async def _drain(self) -> None:
        drain_s = self.settings.config.shutdown_drain_s
        self.stopping = True
        ctx.options.update(server=False)  # mitmproxy closes its listening sockets; open connections stay
        logger.info(f"llmtap: stopping: new calls are refused; {len(self._in_flight)} in flight get up to "
                    f"{drain_s:g} s to finish (shutdown.drain_s; a second Ctrl-C or SIGTERM cuts them now)")
        deadline = asyncio.get_running_loop().time() + drain_s
        await self._wait(lambda: not self._in_flight, deadline)
        # The last answers may still be in the socket buffers on their way to clients.
        await self._wait(lambda: not client_bytes_unsent(), deadline)
        cut = list(self._in_flight.values())
        for unfinished in cut:
            unfinished.error = flow.Error(cut_message(drain_s))
            await ctx.master.addons.handle_lifecycle(HttpErrorHook(unfinished))
            self._in_flight.pop(unfinished.id, None)
        if cut:
            logger.warning(f"llmtap: cut {len(cut)} calls still in flight after {drain_s:g} s; recorded as cut")
        # Close what is left (idle keep-alive connections, cut calls) while the event loop still runs, so the last
        # bytes go out and mitmproxy ends each connection as it would on a client's close.
        for handler in client_handlers():
            close_client(handler, "llmtap is shutting down")
        close_deadline = asyncio.get_running_loop().time() + CLOSE_WAIT_S
        while client_handlers() and asyncio.get_running_loop().time() < close_deadline:
            await asyncio.sleep(POLL_S)

    async def _wait(self, finished: Callable[[], bool], deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while not finished() and not self._cut_now.is_set() and loop.time() < deadline:
            await asyncio.sleep(POLL_S)


class ShutdownGate:
    """Answers 503 to requests that arrive while llmtap is stopping (on a connection opened before it began), and
    closes their connection. Goes right after Intake, so the refused call still gets its row."""

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.metadata.get(REFUSED_KEY):
            return
        reply_with_error(flow, 503, "llmtap_shutting_down", "llmtap is shutting down and takes no new calls",
                         headers={"connection": "close"})

