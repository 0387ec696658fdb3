"""The dashboard's web server: one page (HTML, CSS, JavaScript, all shipped in the package), its JSON endpoints, and
who may read them. Tornado serves it on whichever asyncio loop is running it: mitmproxy's, inside the gateway, or its
own for `llmtap dashboard`.

- Reading the log never happens on the loop: each endpoint runs in a reader thread (DuckDB releases the GIL while it
  computes), so a page that refreshes often queues its reads instead of piling them on the file, and the gateway's
  calls are never held up by a page. In the gateway, one reader, which leaves the file alone for `READ_GAP_S` after
  each read: DuckDB lets one process at a time hold the file, and the gateway's own reads must leave room for
  `llmtap` commands in other processes (they wait for a free moment, polling every 50 ms), however hard the
  dashboard is read. `llmtap dashboard` opens the file read-only, which other readers may share: two readers.
- On loopback anyone on this machine may read it, as they may read the log file; a request whose `Host` is not the
  dashboard's own address is refused (a web page elsewhere cannot reach it through DNS rebinding). On any other
  address every endpoint asks for a gateway key (`Authorization: Bearer <key>`); the page asks for it once and keeps
  it for the browser tab. The page and its scripts hold no data and are served to anyone.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import duckdb
import tornado.httpserver
import tornado.netutil
import tornado.web

from ..alerts.rules import AlertRule
from ..analytics import queries
from ..analytics.scope import ScopeError
from ..config import Address, GatewayKey
from ..log_file import first_line
from ..store_health import gateway_running
from . import endpoints
from .api import ENDPOINTS, ApiError, Request, encode

logger = logging.getLogger(__name__)

READERS = 2  # reads of the log at once in `llmtap dashboard`; more queue (in the gateway: one)
READ_GAP_S = 0.1  # in the gateway, the file left to other processes after each read
GATEWAY_RUNNING = ("a gateway is writing {log} now: open its own dashboard (listen.dashboard in its config), whose "
                   "reads never hold up its writes")
PAGES = ("overview", "requests", "users", "properties", "sessions", "limits", "alerts")
STATIC = Path(str(resources.files(__package__) / "static"))
INDEX_HTML = (STATIC / "index.html").read_bytes()  # read once: no file read on the event loop per page


class DashboardServer:
    """The dashboard for the log at `log`, listening on `address`; `keys`, when the address is not loopback, are the
    gateway keys an endpoint asks for. `in_gateway`: served by the gateway that writes `log` (its reads share the
    writer's database); else by `llmtap dashboard`, which reads only a log no gateway is writing: its reads would
    hold the file from the gateway's writer (one process at a time may open it), so it says to use that gateway's
    own dashboard instead. `alert_rules`: the config's, which the Alerts page measures."""

    def __init__(self, log: Path, address: Address, keys: tuple[GatewayKey, ...], in_gateway: bool,
                 alert_rules: tuple[AlertRule, ...] = ()):
        self.log = log
        self.alert_rules = alert_rules
        self.in_gateway = in_gateway
        self.next_read_at = 0.0  # monotonic; in the gateway, no read starts before (READ_GAP_S after the last)
        self.address = address
        self.keys = keys if not address.is_loopback else ()
        self.readers = ThreadPoolExecutor(1 if in_gateway else READERS, thread_name_prefix="llmtap-dashboard")
        self._server: tornado.httpserver.HTTPServer | None = None

    @property
    def url(self) -> str:
        return self.address.http_url

    def start(self) -> None:
        """Listen (on the running asyncio loop); raises OSError when the address cannot be had."""
        sockets = tornado.netutil.bind_sockets(self.address.port, self.address.host, family=socket.AF_UNSPEC)
        self._server = tornado.httpserver.HTTPServer(make_app(self), xheaders=False)
        self._server.add_sockets(sockets)
        logger.info("Dashboard listening at %s.", self.url.rstrip("/"))

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        self.readers.shutdown(wait=False, cancel_futures=True)

    def allowed_hosts(self) -> set[str]:
        """The `Host` values a browser sends for this address: the address itself, and on loopback the names of
        this machine's loopback (what a user types)."""
        port = self.address.port
        hosts = {f"{self.address.host}:{port}", f"[{self.address.host}]:{port}"}
        if self.address.is_loopback:
            hosts |= {f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"}
        return hosts


def make_app(dashboard: DashboardServer) -> tornado.web.Application:
    settings: dict[str, Any] = {"dashboard": dashboard, "compress_response": True}
    pages = "|".join(PAGES)
    return tornado.web.Application([
        (r"/", tornado.web.RedirectHandler, {"url": "/overview", "permanent": False}),
        (r"/favicon.ico", NoIconHandler),
        (rf"/({pages})(?:/[^/]*)?", PageHandler),
        (r"/static/(.*)", StaticHandler, {"path": str(STATIC)}),
        (r"/api/([^/]*)(?:/(.*))?", ApiHandler),  # any name, so an unknown one gets ApiHandler's JSON 404
    ], **settings)


class _Guarded(tornado.web.RequestHandler):
    def prepare(self) -> None:
        dashboard: DashboardServer = self.settings["dashboard"]
        if dashboard.address.is_loopback and self.request.host.lower() not in dashboard.allowed_hosts():
            raise tornado.web.HTTPError(403, "this dashboard answers only to its own address")

    def set_default_headers(self) -> None:
        # Nothing from elsewhere runs on the page, and the page is not framed elsewhere.
        self.set_header("Content-Security-Policy",
                        "default-src 'self'; img-src 'self' data:; style-src 'self'; frame-ancestors 'none'")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "no-referrer")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None))[1]
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(encode({"error": getattr(error, "log_message", None) or self._reason}))


class PageHandler(_Guarded):
    """Every page is the same shell; its script reads the path and the URL's arguments."""

    def get(self, page: str) -> None:
        self.set_header("Cache-Control", "no-cache")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(INDEX_HTML)


class NoIconHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_status(204)


class StaticHandler(tornado.web.StaticFileHandler):
    def set_default_headers(self) -> None:
        self.set_header("X-Content-Type-Options", "nosniff")


class ApiHandler(_Guarded):
    async def get(self, name: str, item: str | None) -> None:
        dashboard: DashboardServer = self.settings["dashboard"]
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        try:
            self._check_key(dashboard)
            function = ENDPOINTS.get(name)
            if function is None:
                raise ApiError(404, f"no endpoint /api/{name}; there are {', '.join(sorted(ENDPOINTS))}")
            request = Request({k: [v.decode("utf-8", "replace") for v in vs]
                               for k, vs in self.request.query_arguments.items()}, item or None,
                              dashboard.alert_rules)
            loop = asyncio.get_running_loop()
            body = await loop.run_in_executor(dashboard.readers, _answer, function, dashboard, request)
        except ApiError as e:
            self.set_status(e.status)
            body = encode({"error": e.message})
        self.finish(body)

    def _check_key(self, dashboard: DashboardServer) -> None:
        if not dashboard.keys:
            return
        from ..access import gateway_key_for

        scheme, _, presented = (self.request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or gateway_key_for(presented.strip(), dashboard.keys) is None:
            self.set_header("WWW-Authenticate", 'Bearer realm="llmtap dashboard"')
            raise ApiError(401, "this dashboard asks for a gateway key (Authorization: Bearer <key>)")


def _answer(function: Any, dashboard: DashboardServer, request: Request) -> str:
    """Run one endpoint (in a reader thread) and write its answer as JSON, or raise ApiError saying why not."""
    log = dashboard.log
    if not dashboard.in_gateway and gateway_running(log):
        raise ApiError(409, GATEWAY_RUNNING.format(log=log))
    if not log.exists():
        raise ApiError(503, f"no log yet at {log} (start the gateway and make a call)")
    try:
        if dashboard.in_gateway:  # the file left free a moment after the last read, unless the writer holds it
            time.sleep(max(0.0, dashboard.next_read_at - time.monotonic()))
        try:
            with queries.reading(log):  # one connection for all the page's queries
                answer = function(log, request)
        finally:
            dashboard.next_read_at = time.monotonic() + READ_GAP_S
        return encode(answer)
    except ScopeError as e:
        raise ApiError(400, str(e)) from None
    except duckdb.IOException as e:  # the file itself (held elsewhere past the wait, not a DuckDB file)
        raise ApiError(503, f"cannot read the log {log}: {first_line(e)}") from None
    except ApiError:
        raise
    except Exception as e:  # a failed query: one line for the page, the whole story in the gateway's log
        logger.exception("dashboard: an endpoint failed")
        raise ApiError(500, f"reading the log failed: {first_line(e)}") from None


__all__ = ["DashboardServer", "endpoints", "make_app"]
