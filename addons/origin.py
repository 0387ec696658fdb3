"""How llmtap names where a call went: `scheme://host[:port]`, one spelling for the `upstream` column and for the
messages that name an upstream llmtap could not reach."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(scheme: str, host: str, port: int | None) -> str:
    """`scheme://host[:port]`, the port left out when it is the scheme's default (an IPv6 host in brackets)."""
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port is None or port == DEFAULT_PORTS.get(scheme) else f"{scheme}://{host}:{port}"


def origin_of_url(url: str) -> str:
    """The origin of `url` (`https://api.openai.com/v1/chat/completions` -> `https://api.openai.com`)."""
    parts = urlsplit(url)
    return origin(parts.scheme, parts.hostname or "", parts.port)
