"""The `ExposedProxyGuard` addon: a proxy listener reachable from other machines is not an open HTTP proxy.

Through a loopback proxy listener llmtap forwards plain-HTTP requests to any host, as mitmproxy does. When
`listen.proxy` is on a non-loopback address (which config allows only with `gateway.keys` set), a plain-HTTP
request to a host that is not a configured provider host is answered 403 and never forwarded: anyone who can reach
the port must not be able to use llmtap to reach other hosts. Provider hosts work as before. (HTTPS tunnels to other
hosts are passed through untouched, as for a loopback listener: an app behind `HTTPS_PROXY` sends all its HTTPS
traffic there.)
"""

from __future__ import annotations

import logging

from mitmproxy import http

from .access import through_exposed_proxy
from .refusals import RefusalSink, is_refused
from .settings import Settings

logger = logging.getLogger(__name__)


class ExposedProxyGuard:
    """Answers 403 to proxy requests for non-provider hosts when `listen.proxy` is not on loopback."""

    def __init__(self, settings: Settings, refusals: RefusalSink):
        self.settings = settings
        self.refusals = refusals

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        config = self.settings.config
        if is_refused(flow) or flow.error or not through_exposed_proxy(flow, config):
            return
        host = flow.request.pretty_host  # the host Intake routes by
        if config.provider_for_host(host) is not None:
            return
        provider_hosts = sorted({h for p in config.providers for h in p.hosts})
        self.refusals.refuse(
            flow, 403, "llmtap_host_not_allowed",
            f"this llmtap proxy listener ({config.proxy_listen}) is reachable from other machines, so it forwards "
            f"plain HTTP only to provider hosts ({', '.join(provider_hosts)}); {host!r} is not one",
            host=host,
        )
        logger.info(f"llmtap: refused a plain-HTTP proxy request to {host} (not a provider host; listen.proxy is "
                    "not on loopback)", extra={"client": flow.client_conn.peername})
