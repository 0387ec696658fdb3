"""llmtap's addons, composed in one place, and the mitmproxy options a config implies.

Order matters. LogRateLimit holds back repeated log lines and ClientIdleTimeout closes connections that send no
request. RefusalSink comes before every addon that reads a call's state: it hides a refused call's state while its
body drains. Intake builds each call's state (and refuses what it will not carry), ProxyAccess asks clients of an
exposed proxy listener for a gateway key, ExposedProxyGuard keeps such a listener from forwarding to other hosts,
ShutdownGate (right after Intake's checks, so the refused call still gets its row) refuses calls that arrive while
stopping. ModelList answers the gateway's `GET /v1/models` itself (what it routes). Router sends each call to its
provider, RateLimiter refuses calls over their policies, ResponseCache
answers from the cache (or stores the answer), StreamTap reads answers as they stream, AttemptRunner takes over calls
with retries or fallbacks, UpstreamFailure answers in JSON a call whose provider could not be reached (or stayed
silent), Recorder writes the row, RateLimitUsage counts its cost towards cents policies, WebView writes what mitmweb
shows, Dashboard serves the web dashboard and Alerts checks alert rules and delivers their notices, FreezeStartupHeap
leaves what start-up made out of garbage collection (none of these three sees a flow), and Drain (last, so a call
counts as finished only once every other addon has seen it end) lets calls in flight finish on SIGTERM/SIGINT.
`install` puts all of them, as one `AddonGroup`, before mitmproxy's own addons that show or save flows.

Budgets (right after RateLimiter: a call over a rate limit never counts towards a budget) refuses calls over a blocking
budget. Both count in one `counters.Counters`, which CounterSeeding (after Recorder has opened and migrated the log,
and before any listener opens) seeds from the log at start-up; RateLimitUsage settles spend budgets' reservations too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from mitmproxy import contentviews

from .addon_group import AddonGroup
from .alerts.addon import Alerts
from .attempts import AttemptRunner
from .budgets import Budgets
from .cache import ResponseCache
from .config import Config, host_regex
from .counters import SlidingWindows
from .dashboard.addon import Dashboard
from .drain import Drain, ShutdownGate
from .exposed_proxy import ExposedProxyGuard
from .heap import FreezeStartupHeap
from .idle import ClientIdleTimeout
from .intake import Intake
from .loglimit import LogRateLimit
from .model_list import ModelList
from .proxy_access import ProxyAccess
from .ratelimit import RateLimiter, RateLimitUsage
from .recorder import Recorder
from .refusals import RefusalSink
from .routing import Router
from .seeding import CounterSeeding
from .settings import Settings
from .streaming import StreamTap
from .upstream_failure import UpstreamFailure
from .webview import LlmCallView, WebView

# The gateway listener is a mitmproxy reverse proxy whose nominal target is never contacted: Router sends each call
# to its provider before mitmproxy opens a connection (connection_strategy=lazy).
GATEWAY_TARGET_HOST = "llmtap.gateway"


def make_addons(monotonic_clock: Callable[[], float] = time.monotonic,
                wall_clock: Callable[[], float] = time.time, config_path: str = "") -> list[object]:
    """llmtap's addons, in order, reading the config at `config_path` (empty: the built-in defaults). The clocks
    (seconds) are what rate-limit windows and cache expiry read: tests move them by hand."""
    contentviews.add(LlmCallView)
    settings = Settings(config_path)
    counters = SlidingWindows(monotonic_clock)
    refusals = RefusalSink()
    return [
        settings, LogRateLimit(), ClientIdleTimeout(settings), refusals, Intake(settings, refusals),
        ProxyAccess(settings, refusals), ExposedProxyGuard(settings, refusals), ShutdownGate(), ModelList(settings),
        Router(settings),
        RateLimiter(settings, counters),
        Budgets(settings, counters, wall_clock),
        ResponseCache(settings, wall_clock), StreamTap(settings),
        AttemptRunner(settings), UpstreamFailure(settings), Recorder(settings),
        CounterSeeding(settings, counters, wall_clock),
        RateLimitUsage(counters), WebView(),
        Dashboard(settings), Alerts(settings, lambda: datetime.fromtimestamp(wall_clock(), UTC)),
        FreezeStartupHeap(), Drain(settings),
    ]


# mitmproxy's own addons that show, print or save flows. llmtap's addons run before them, so that they only ever see
# a call whose keys are masked and whose row is written (a flow in mitmweb, a line of mitmdump at any flow_detail, a
# saved flow file). The built-in addons before these (map/modify options, scripts) still act before llmtap's.
SHOWS_FLOWS = ("Save", "SaveHar", "Dumper", "View")


def install(master, config_path: str = "") -> AddonGroup:
    """Add llmtap's addons, reading the config at `config_path`, to `master`'s chain as one `AddonGroup` (one visit
    per mitmproxy event instead of one per addon), before the first addon that shows or saves flows."""
    group = AddonGroup(make_addons(config_path=config_path))
    master.addons.add(group)
    chain = master.addons.chain
    chain.remove(group)
    at = next((i for i, a in enumerate(chain) if type(a).__name__ in SHOWS_FLOWS), len(chain))
    chain.insert(at, group)
    return group


# mitmweb's flow list columns: its defaults, and the comment where WebView writes model, tokens, cost and latency.
WEB_COLUMNS = ("tls", "icon", "path", "method", "status", "size", "time", "comment")


def mitmproxy_args(config: Config, config_path: str | None, web: bool,
                   user_args: Sequence[str] = ()) -> list[str]:
    """Command-line arguments for mitmdump/mitmweb that make it llmtap as `config` describes, followed by the user's
    own `user_args`. An option the user sets with `--set` is left out of llmtap's: the user's value wins (mitmproxy
    refuses two values for one option)."""
    args = []
    if config.proxy_listen:
        args += ["--mode", f"regular@{_listen(config.proxy_listen)}"]
    if config.gateway_listen:
        args += ["--mode", f"reverse:http://{GATEWAY_TARGET_HOST}@{_listen(config.gateway_listen)}"]
    # Only provider hosts are intercepted; every other host's TLS passes through untouched.
    for host in [GATEWAY_TARGET_HOST] + [h for p in config.providers for h in p.hosts]:
        args += ["--allow-hosts", host_regex(host)]
    # Each listener names its own address in its mode; listen_host/listen_port name no listener, but mitmweb's status
    # bar shows them as "the" proxy address (`*:8080` when unset): make them the proxy way in's (else the gateway's).
    shown = config.proxy_listen or config.gateway_listen
    options: dict[str, str | list[str]] = {
        "confdir": str(config.certs_dir),
        # Upstreams may be private endpoints or (offline) local servers: never dial the host the client named.
        "connection_strategy": "lazy",
        "upstream_cert": "false",
        # The gateway keeps the Host its client wrote (the row's `host`); Router sets the provider's as it routes.
        "keep_host_header": "true",
        "llmtap_config": config_path or "",
        # A body that grows past the limit is streamed (to RefusalSink, which answers 413), never held whole.
        "stream_large_bodies": str(config.limits.max_request_bytes),
        "listen_host": shown.host if shown else "",
        "listen_port": str(shown.port) if shown else "",
    }
    if web:
        options |= {"store_streamed_bodies": "true", "web_open_browser": "false", "web_columns": list(WEB_COLUMNS)}
    users = set_by_user(user_args)
    for name, value in options.items():
        if name not in users and value != "":
            args += [arg for v in ([value] if isinstance(value, str) else value) for arg in ("--set", f"{name}={v}")]
    return args + list(user_args)


def set_by_user(user_args: Sequence[str]) -> set[str]:
    """The option names the user's mitmproxy arguments set: with `--set NAME=VALUE` (or `--set=NAME=VALUE`), or with
    an option's own flag, which mitmproxy spells `--name-with-dashes` (`--no-…` for a false one)."""
    specs = [after for flag, after in zip(user_args, user_args[1:], strict=False) if flag == "--set"]
    specs += [arg.removeprefix("--set=") for arg in user_args if arg.startswith("--set=")]
    flags = [arg[2:].partition("=")[0] for arg in user_args if arg.startswith("--") and not arg.startswith("--set")]
    return {spec.partition("=")[0] for spec in specs} | {
        flag.removeprefix("no-").replace("-", "_") for flag in flags if flag}


def _listen(address) -> str:
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"
