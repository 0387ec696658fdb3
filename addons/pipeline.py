"""llmtap's addons, composed in one place, and the mitmproxy options a config implies.

Order matters. LogRateLimit holds back repeated log lines and ClientIdleTimeout closes connections that send no
request. RefusalSink comes before every addon that reads a call's state: it hides a refused call's state while its
body drains. Intake builds each call's state (and refuses what it will not carry), ProxyAccess asks clients of an
exposed proxy listener for a gateway key, ExposedProxyGuard keeps such a listener from forwarding to other hosts,
ShutdownGate (right after Intake's checks, so the refused call still gets its row) refuses calls that arrive while
stopping. Router sends each call to its provider, RateLimiter refuses calls over their policies, ResponseCache
answers from the cache (or stores the answer), StreamTap reads answers as they stream, AttemptRunner takes over calls
with retries or fallbacks, UpstreamFailure answers in JSON a call whose provider could not be reached (or stayed
silent), Recorder writes the row, RateLimitUsage counts its cost towards cents policies, WebView
writes what mitmweb shows, and Drain (last, so a call counts as finished only once every other addon has seen it
end) lets calls in flight finish on SIGTERM/SIGINT. `install` puts all of them before mitmproxy's own addons that
show or save flows.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from mitmproxy import contentviews

from .attempts import AttemptRunner
from .cache import ResponseCache
from .config import Config
from .drain import Drain, ShutdownGate
from .exposed_proxy import ExposedProxyGuard
from .idle import ClientIdleTimeout
from .intake import Intake
from .loglimit import LogRateLimit
from .proxy_access import ProxyAccess
from .ratelimit import RateLimiter, RateLimitUsage, Windows
from .recorder import Recorder
from .refusals import RefusalSink
from .routing import Router
from .settings import Settings
from .streaming import StreamTap
from .upstream_failure import UpstreamFailure
from .webview import LlmCallView, WebView

# The gateway listener is a mitmproxy reverse proxy whose nominal target is never contacted: Router sends each call
# to its provider before mitmproxy opens a connection (connection_strategy=lazy).
GATEWAY_TARGET_HOST = "llmtap.gateway"


def make_addons(monotonic_clock: Callable[[], float] = time.monotonic,
                wall_clock: Callable[[], float] = time.time) -> list[object]:
    """llmtap's addons, in order. The clocks (seconds) are what rate-limit windows and cache expiry read: tests move
    them by hand."""
    contentviews.add(LlmCallView)
    settings = Settings()
    windows = Windows(monotonic_clock)
    refusals = RefusalSink()
    return [
        settings, LogRateLimit(), ClientIdleTimeout(settings), refusals, Intake(settings, refusals),
        ProxyAccess(settings, refusals), ExposedProxyGuard(settings, refusals), ShutdownGate(), Router(settings),
        RateLimiter(settings, windows), ResponseCache(settings, wall_clock), StreamTap(settings),
        AttemptRunner(settings), UpstreamFailure(settings), Recorder(settings), RateLimitUsage(windows), WebView(),
        Drain(settings),
    ]


# mitmproxy's own addons that show, print or save flows. llmtap's addons run before them, so that they only ever see
# a call whose keys are masked and whose row is written (a flow in mitmweb, a line of mitmdump at any flow_detail, a
# saved flow file). The built-in addons before these (map/modify options, scripts) still act before llmtap's.
SHOWS_FLOWS = ("Save", "SaveHar", "Dumper", "View")


def install(master) -> list[object]:
    """Add llmtap's addons to `master`'s chain, before the first addon that shows or saves flows."""
    addons = make_addons()
    master.addons.add(*addons)
    chain = master.addons.chain
    for addon in addons:
        chain.remove(addon)
    at = next((i for i, a in enumerate(chain) if type(a).__name__ in SHOWS_FLOWS), len(chain))
    chain[at:at] = addons
    return addons


def mitmproxy_args(config: Config, config_path: str | None, web: bool) -> list[str]:
    """Command-line arguments for mitmdump/mitmweb that make it llmtap as `config` describes."""
    args = []
    if config.proxy_listen:
        args += ["--mode", f"regular@{_listen(config.proxy_listen)}"]
    if config.gateway_listen:
        args += ["--mode", f"reverse:http://{GATEWAY_TARGET_HOST}@{_listen(config.gateway_listen)}"]
    # Only provider hosts are intercepted; every other host's TLS passes through untouched.
    for host in [GATEWAY_TARGET_HOST] + [h for p in config.providers for h in p.hosts]:
        args += ["--allow-hosts", f"^{re.escape(host)}:\\d+$"]
    args += [
        "--set", f"confdir={config.certs_dir}",
        # Upstreams may be private endpoints or (offline) local servers: never dial the host the client named.
        "--set", "connection_strategy=lazy",
        "--set", "upstream_cert=false",
        "--set", f"llmtap_config={config_path or ''}",
        # A body that grows past the limit is streamed (to RefusalSink, which answers 413), never held whole.
        "--set", f"stream_large_bodies={config.limits.max_request_bytes}",
    ]
    if web:
        args += ["--set", "store_streamed_bodies=true", "--set", "web_open_browser=false"]
    return args


def _listen(address) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"
