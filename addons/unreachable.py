"""What llmtap says when a provider gave no answer (refused, DNS, TLS, closed, silent): one status, one error type and
one sentence naming the provider, its upstream (scheme://host:port) and why — whether mitmproxy (upstream_failure.py)
or llmtap's relay (attempts.py) made the connection."""

from __future__ import annotations

import re

UNREACHABLE_STATUS = 502  # as mitmproxy's own answer, and the relay's, for every kind of failure, timeouts included
UNREACHABLE_TYPE = "llmtap_upstream_unreachable"


def upstream_unreachable_message(provider: str, upstream: str, reason: str) -> str:
    """What a client reads when `provider`'s `upstream` (scheme://host:port) gave no answer, for `reason` (see
    `why_unreachable`): "llmtap could not reach openai at https://api.openai.com:443: connection refused (...)"."""
    return f"llmtap could not reach {provider} at {upstream}: {reason}"


# What a connection error says, from Python's socket, ssl and asyncio and from aiohttp, in a few plain words. The
# errno decides first: asyncio says "Connect call failed" whatever the cause, and aiohttp's every message says
# "ssl:default". Linux numbers, then macOS's where they differ.
_REASONS: tuple[tuple[str, str], ...] = (
    (r"errno (111|61)\b|connection refused", "connection refused"),
    (r"errno (110|60)\b|timed? ?out|timeout", "timed out"),
    (r"errno (101|113|51|65)\b|no route to host|network is unreachable", "network unreachable"),
    (r"name or service not known|nodename nor servname|name resolution|getaddrinfo|dns|no address associated",
     "DNS lookup failed"),
    (r"ssl\w*error|certificate|handshake|wrong version number|\btls\b", "TLS handshake failed"),
    (r"errno (104|54|32)\b|reset by peer|disconnect|closed|eof|broken pipe", "the connection closed before an answer"),
)


def connection_error_text(error: BaseException) -> str:
    """An exception from connecting or talking to an upstream, as the attempt log keeps it: its type, its errno
    when it has one (aiohttp's words leave it out), and its message."""
    errno = getattr(error, "errno", None)
    text = str(error)
    if errno is not None and f"errno {errno}" not in text.lower():
        text = f"[Errno {errno}] {text}"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def why_unreachable(error: str) -> str:
    """`error` (an exception's text) led by what kind of failure it is, when it is one of the usual kinds."""
    for pattern, reason in _REASONS:
        if re.search(pattern, error, re.IGNORECASE):
            return f"{reason} ({error})" if error and error.lower() != reason.lower() else reason
    return error or "no answer"
