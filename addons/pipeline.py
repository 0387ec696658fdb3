"""llmtap's addons, composed in one place, and the mitmproxy options a config implies.

Order matters: Intake builds each call's state, Router sends it to its provider, RateLimiter refuses calls over their
policies, ResponseCache answers from the cache (or stores the answer), StreamTap reads answers as they stream,
AttemptRunner takes over calls with retries or fallbacks, Recorder writes the row, RateLimitUsage counts its cost
towards cents policies, WebView writes what mitmweb shows. Around them: LogRateLimit holds back repeated log lines,
ClientIdleTimeout closes connections that send no request, ExposedProxyGuard keeps an exposed proxy listener from
forwarding to other hosts, ShutdownGate refuses calls that arrive while stopping, and Drain (last, so a call counts as
finished only once every other addon has seen it end) lets calls in flight finish on SIGTERM/SIGINT.
"""

from __future__ import annotations

import re

from mitmproxy import contentviews

from .attempts import AttemptRunner
from .cache import ResponseCache
from .config import Config
from .drain import Drain, ShutdownGate
from .exposed_proxy import ExposedProxyGuard
from .idle import ClientIdleTimeout
from .intake import Intake
from .loglimit import LogRateLimit
from .ratelimit import RateLimiter, RateLimitUsage, Windows
from .recorder import Recorder
from .routing import Router
from .settings import Settings
from .streaming import StreamTap
from .webview import LlmCallView, WebView

# The gateway listener is a mitmproxy reverse proxy whose nominal target is never contacted: Router sends each call
# to its provider before mitmproxy opens a connection (connection_strategy=lazy).
GATEWAY_TARGET_HOST = "llmtap.gateway"


def make_addons() -> list[object]:
    contentviews.add(LlmCallView)
    settings = Settings()
    windows = Windows()
    return [
        settings, LogRateLimit(), ClientIdleTimeout(settings), ExposedProxyGuard(settings),
        Intake(settings), ShutdownGate(), Router(settings), RateLimiter(settings, windows), ResponseCache(settings),
        StreamTap(), AttemptRunner(settings), Recorder(settings), RateLimitUsage(windows), WebView(),
        Drain(settings),
    ]


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
    ]
    if web:
        args += ["--set", "store_streamed_bodies=true", "--set", "web_open_browser=false"]
    return args


def _listen(address) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"
