"""Keys in requests: where clients put them, how llmtap names one without keeping it, and how it hides them.

A key never reaches the log: rows carry `fingerprint(key)`, paths have secret query parameters masked, and flows
kept for mitmweb have their key headers masked once sent.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode

from mitmproxy import http

if TYPE_CHECKING:
    from .config import ProviderConfig
    from .wire import WireFormat

# Where providers read a client's key: OpenAI-style bearer, Anthropic, Azure, Google.
CLIENT_KEY_HEADERS = ("authorization", "x-api-key", "api-key", "x-goog-api-key")
SECRET_HEADERS = CLIENT_KEY_HEADERS + ("helicone-auth", "cookie", "proxy-authorization")
SECRET_QUERY_PARAMS = frozenset({"key", "api-key", "api_key", "access_token"})  # Gemini's ?key=, and friends


def bearer(value: str | None) -> str | None:
    """The token of an `Authorization`-style value `Bearer <token>`; None for anything else."""
    scheme, _, token = (value or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def header_names(headers: http.Headers) -> frozenset[str]:
    """The lower-cased names of `headers`, in one pass: asking mitmproxy's headers for a name that is not there
    costs a pass over them all, and the key headers below are asked for on every call."""
    return frozenset(name.decode("latin-1").lower() for name, _ in headers.fields)


def key_headers(provider: ProviderConfig, wire: WireFormat, key: str) -> dict[str, str]:
    """The headers that carry llmtap's key for `provider`: the wire format's (a bearer token for OpenAI's API,
    `x-api-key` for Anthropic's), unless the provider reads it from `api-key` (Azure: OpenAI's API, another header)."""
    return {provider.auth_header: key} if provider.auth_header else wire.auth_headers(key)


def client_key(request: http.Request) -> str | None:
    """The credential a client sent, in whichever header (or query parameter) its provider reads."""
    names = header_names(request.headers)
    if "authorization" in names and (token := bearer(request.headers.get("authorization"))):
        return token
    for name in CLIENT_KEY_HEADERS[1:]:
        if name in names and request.headers.get(name):
            return request.headers[name]
    if "?" not in request.path:
        return None
    return next((value for name, value in request.query.items(multi=True) if name.lower() in SECRET_QUERY_PARAMS), None)


# Every header that can carry a credential, whatever its scheme (Bearer, Basic, a raw token, a session cookie).
AUTH_HEADERS = CLIENT_KEY_HEADERS + ("proxy-authorization", "cookie")
NO_CREDENTIAL = "no-credential"


def credential_fingerprint(request: http.Request) -> str:
    """A stable, non-reversible name for everything in `request` that could be a credential: every auth-bearing
    header (all values, any scheme) and every secret query parameter. Two requests get the same name only when they
    carry the same credentials; requests with none all get `NO_CREDENTIAL`, never an empty name."""
    names = header_names(request.headers)
    found = [(name, value) for name in AUTH_HEADERS if name in names for value in request.headers.get_all(name)]
    if "?" in request.path:
        found += [(name.lower(), value) for name, value in request.query.items(multi=True)
                  if name.lower() in SECRET_QUERY_PARAMS]
    if not found:
        return NO_CREDENTIAL
    return fingerprint("\0".join(f"{name}\0{value}" for name, value in sorted(found))) or NO_CREDENTIAL


def fingerprint(key: str | None) -> str | None:
    """A stable, non-reversible name for a key: enough to group calls by key, useless to spend it."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:16] if key else None


REDACTED = "(redacted by llmtap)"


def mask(secret: str) -> str:
    return f"{secret[:3]}…{secret[-4:]} {REDACTED}" if len(secret) > 12 else REDACTED


def masked_path(path: str) -> str:
    """`path` with the values of secret query parameters masked, as the log and mitmweb keep it."""
    return _secret_params_replaced(path, "redacted")


def drop_client_keys(request: http.Request) -> None:
    """Remove every key a client sent, in headers and in the query (Gemini's `?key=`): llmtap sends its own, or
    none (a gateway key is no provider's key)."""
    for name in CLIENT_KEY_HEADERS:
        request.headers.pop(name, None)
    request.path = without_secret_params(request.path)


def without_secret_params(path: str) -> str:
    """`path` without the keys a client can send in its query (Gemini's `?key=`)."""
    return _secret_params_replaced(path, None)


def _secret_params_replaced(path: str, value: str | None) -> str:
    """`path` with each secret query parameter's value replaced by `value`, or left out when `value` is None."""
    base, question, query = path.partition("?")
    if not question:
        return path
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(name.lower() in SECRET_QUERY_PARAMS for name, _ in pairs):
        return path
    kept = [(n, v if n.lower() not in SECRET_QUERY_PARAMS else value) for n, v in pairs]
    kept_pairs = [(n, v) for n, v in kept if v is not None]
    return base + ("?" + urlencode(kept_pairs) if kept_pairs else "")


def redact_secrets(request: http.Request) -> None:
    """Mask keys in a request that has been sent: mitmweb shows, and saved flows keep, the request as it left."""
    names = header_names(request.headers)
    for name in SECRET_HEADERS:
        if name in names and (value := request.headers.get(name)) and not value.endswith(REDACTED):
            scheme, _, token = value.rpartition(" ")
            request.headers[name] = f"{scheme} {mask(token)}".strip()
    request.path = masked_path(request.path)
