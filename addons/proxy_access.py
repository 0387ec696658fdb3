"""The `ProxyAccess` addon: who may use a proxy listener that other machines can reach.

On loopback the proxy way in is open to the machine's own apps, as any local proxy is. A `listen.proxy` reachable from
other machines needs `gateway.keys` (config refuses to start otherwise), and then every client must present one of
them as its proxy credential — with no code change, in the proxy URL: `HTTPS_PROXY=http://<owner>:<key>@host:8080`
(the user name is free; the password is the key). Clients answer `407` without one, on `CONNECT` and on plain-HTTP
proxy requests alike; a connection that authenticated its `CONNECT` stays authenticated for the calls inside it. The
owner of the key is the `key_owner` of the calls it makes. The client's own provider key is still what goes upstream.
"""

from __future__ import annotations

import json
import weakref

from mitmproxy import connection, http
from mitmproxy.addons.proxyauth import parse_http_basic_auth

from .access import gateway_key_for, through_exposed_proxy
from .callstate import get_state
from .config import GatewayKey
from .credentials import bearer
from .refusals import RefusalSink, is_refused
from .settings import Settings

PROXY_AUTHORIZATION = "proxy-authorization"
CHALLENGE = {"proxy-authenticate": 'Basic realm="llmtap"'}
REQUIRED = ("this proxy is reachable from other machines: present an llmtap gateway key as the proxy password, "
            "e.g. HTTPS_PROXY=http://<you>:<key>@<host>:<port>")


class ProxyAccess:
    def __init__(self, settings: Settings, refusals: RefusalSink):
        self.settings = settings
        self.refusals = refusals
        self._owners: weakref.WeakKeyDictionary[connection.Client, str] = weakref.WeakKeyDictionary()

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if not through_exposed_proxy(flow, self.settings.config):
            return
        key = self._presented(flow)
        if key is None:
            body = {"error": {"type": "llmtap_proxy_auth_required", "message": REQUIRED}}
            flow.response = http.Response.make(407, json.dumps(body).encode(),
                                               {"content-type": "application/json", **CHALLENGE})
            return
        self._owners[flow.client_conn] = key.owner

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if is_refused(flow) or flow.error or not through_exposed_proxy(flow, self.settings.config):
            return
        owner = self._owners.get(flow.client_conn)
        if owner is None and (key := self._presented(flow)) is not None:
            owner = key.owner
        state = get_state(flow)
        if owner is None:
            self.refusals.refuse(flow, 407, "llmtap_proxy_auth_required", REQUIRED, headers=CHALLENGE)
            return
        if state is not None:
            state.request.key_owner = owner

    def _presented(self, flow: http.HTTPFlow) -> GatewayKey | None:
        """The gateway key in the request's Proxy-Authorization (Basic with the key as password, or Bearer), which
        is removed so it never goes further."""
        value = flow.request.headers.pop(PROXY_AUTHORIZATION, "")
        if not value:
            return None
        presented = bearer(value)
        if presented is None:
            try:
                _, _, presented = parse_http_basic_auth(value)
            except ValueError:
                return None
        keys: tuple[GatewayKey, ...] = self.settings.config.gateway_keys
        return gateway_key_for(presented, keys)
