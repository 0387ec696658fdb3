"""Who may use the gateway: the gateway-key check, done on a request's headers before its body is read.

With `gateway.keys` set, a call on the gateway way in must present one of them — in `Helicone-Auth: Bearer <key>` or
wherever an SDK puts its api_key (`Authorization: Bearer`, `x-api-key`, ...). A refused call costs llmtap its headers
only: its body is neither decoded, parsed nor stored.
"""

from __future__ import annotations

import hmac

from mitmproxy import http
from mitmproxy.proxy.mode_specs import RegularMode

from .config import Config, GatewayKey
from .credentials import client_key


def presented_key(request: http.Request, helicone_auth: str | None) -> str | None:
    """The key a caller presented: `Helicone-Auth` first, else the one its SDK sent as its api_key."""
    return helicone_auth or client_key(request)


def gateway_key_for(presented: str | None, keys: tuple[GatewayKey, ...]) -> GatewayKey | None:
    """The configured gateway key `presented` is, compared in constant time; None when it is none of them."""
    if presented is None:
        return None
    for key in keys:
        if hmac.compare_digest(presented.encode(), key.key.encode()):
            return key
    return None


def through_exposed_proxy(flow: http.HTTPFlow, config: Config) -> bool:
    """True when `flow` came in through a proxy listener that other machines can reach (`listen.proxy` not on
    loopback): such a listener asks for a gateway key and forwards plain HTTP only to provider hosts."""
    listen = config.proxy_listen
    return isinstance(flow.client_conn.proxy_mode, RegularMode) and listen is not None and not listen.is_loopback
