"""The `Helicone-*` request-header contract (see HEADERS.md): parsed and validated here, in one place.

`parse_helicone_headers` is pure: it turns header (name, value) pairs into a `HeliconeOptions` or raises
`HeaderError` naming the header and the accepted form. The `Intake` addon calls it once per request; every later
addon reads the typed result.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable

from .credentials import bearer
from .options import (
    DEFAULT_CACHE_AGE_S,
    MAX_CACHE_AGE_S,
    CacheOptions,
    FallbackOptions,
    HeliconeOptions,
    RequestDefaults,
    RetryOptions,
)
from .ratelimit_policy import POLICY_FORM, RateLimitPolicy, parse_ratelimit_policy

PREFIX = "helicone-"
PROPERTY_PREFIX = "helicone-property-"


# Every Helicone-* header llmtap reads (lower-cased), besides Helicone-Property-<Name>; see HEADERS.md.
KNOWN_HEADERS = frozenset({
    "helicone-user-id", "helicone-session-id", "helicone-session-path", "helicone-session-name",
    "helicone-request-id", "helicone-prompt-id", "helicone-omit-request", "helicone-omit-response", "helicone-auth",
    "helicone-cache-enabled", "helicone-cache-bucket-max-size", "helicone-cache-seed", "helicone-cache-ignore-keys",
    "helicone-retry-enabled", "helicone-retry-num", "helicone-retry-factor", "helicone-retry-min-timeout",
    "helicone-retry-max-timeout", "helicone-fallback-model", "helicone-fallback-oncodes", "helicone-fallbacks",
    "helicone-ratelimit-policy",
})
# Two spellings of one thing (HEADERS.md): the header, and the alias accepted for it when the header is not sent.
ALIASES = {"helicone-property-userid": "helicone-user-id"}
SECRET_HEADERS = frozenset({"helicone-auth"})  # their values are keys: an error never quotes them
SHOWN_VALUE_CHARS = 80  # a malformed value is quoted in the error up to this length


class HeaderError(ValueError):
    """A malformed Helicone header. `message` names the header as the client sent it, what is accepted, and what was
    sent (`Helicone-Cache-Enabled: expected true or false, got 'maybe'`): SDKs show a user only an error's message.
    `problem` is the message without the header's name."""

    def __init__(self, header: str, problem: str):
        super().__init__(f"{header}: {problem}")
        self.header = header
        self.problem = problem
        self.message = f"{header}: {problem}"


NO_CONFIG = RequestDefaults()  # what a request gets when no config says otherwise


def parse_helicone_headers(fields: Iterable[tuple[str, str]], defaults: RequestDefaults = NO_CONFIG) -> HeliconeOptions:
    """Parse request headers into `HeliconeOptions`. Names are case-insensitive: properties are stored under their
    lower-cased names, as Helicone stores them, and one header sent twice with different values is malformed."""
    values: dict[str, tuple[str, str]] = {}  # lower-case name -> (name as sent, value)
    properties: dict[str, str] = {}
    cache_control = None
    for name, value in fields:
        lower = name.lower()
        if lower == "cache-control":
            cache_control = value
        elif lower.startswith(PREFIX):
            if lower in values and values[lower][1] != value:
                both = "" if lower in SECRET_HEADERS else f" ({shown(values[lower][1])} and {shown(value)})"
                raise HeaderError(name, f"sent twice with different values{both}; send it once")
            values[lower] = (name, value)
            if lower.startswith(PROPERTY_PREFIX):
                if not lower[len(PROPERTY_PREFIX):]:
                    raise HeaderError(name, "a property needs a name: Helicone-Property-<Name>")
                properties[lower[len(PROPERTY_PREFIX):]] = value

    for alias, key in ALIASES.items():
        if alias in values and key in values and values[alias][1].strip() != values[key][1].strip():
            raise HeaderError(values[alias][0], f"says {shown(values[alias][1])} but {values[key][0]} says "
                                                f"{shown(values[key][1])}; they name the same thing: send one")

    def text(key: str) -> str | None:
        return values[key][1].strip() if key in values else None

    def header[T](key: str, parse: Callable[[str], T], default: T) -> T:
        # `parse` raises ValueError saying what is accepted; the error names the header as the client sent it.
        if key not in values:
            return default
        name, value = values[key]
        try:
            return parse(value)
        except ValueError as e:
            raise HeaderError(name, str(e)) from None

    user_id = text("helicone-user-id") or _property_user_id(properties)
    cache_enabled = header("helicone-cache-enabled", _true_or_false, False)
    return HeliconeOptions(
        properties=properties,
        user_id=user_id,
        session_id=text("helicone-session-id"),
        session_path=header("helicone-session-path", _session_path, None),
        session_name=text("helicone-session-name"),
        request_id=header("helicone-request-id", _request_id, None),
        prompt_id=text("helicone-prompt-id"),
        omit_request=header("helicone-omit-request", _true_or_false, False),
        omit_response=header("helicone-omit-response", _true_or_false, False),
        auth_key=header("helicone-auth", _bearer, None),
        cache=CacheOptions(
            enabled=cache_enabled,
            max_age_s=_max_age(cache_control) if cache_enabled else DEFAULT_CACHE_AGE_S,
            bucket_max_size=header("helicone-cache-bucket-max-size", _whole_number(1, 100), 1),
            seed=text("helicone-cache-seed"),
            ignore_keys=header("helicone-cache-ignore-keys", _names, ()),
        ),
        retry=RetryOptions(
            enabled=header("helicone-retry-enabled", _true_or_false, defaults.retry.enabled),
            max_retries=header("helicone-retry-num", _whole_number(0, 20), defaults.retry.max_retries),
            factor=header("helicone-retry-factor", _factor, defaults.retry.factor),
            min_timeout_ms=header("helicone-retry-min-timeout", _whole_number(0, 600_000),
                                  defaults.retry.min_timeout_ms),
            max_timeout_ms=header("helicone-retry-max-timeout", _whole_number(0, 600_000),
                                  defaults.retry.max_timeout_ms),
        ),
        fallback=FallbackOptions(
            models=header("helicone-fallback-model", _names, ()),
            on_codes=header("helicone-fallback-oncodes", _status_codes, defaults.fallback_codes),
            targets=header("helicone-fallbacks", _fallback_targets, ()),
        ),
        ratelimit_policy=header("helicone-ratelimit-policy", _policy, None),
    )


def unknown_helicone_headers(fields: Iterable[tuple[str, str]]) -> list[str]:
    """The `Helicone-*` headers among `fields` that llmtap does not read (a misspelt name, or a Helicone feature llmtap
    does not have), as sent, each once: they are removed like the others, and the row's `notes` name them."""
    unknown: dict[str, str] = {}
    for name, _ in fields:
        lower = name.lower()
        if lower.startswith(PREFIX) and lower not in KNOWN_HEADERS and not lower.startswith(PROPERTY_PREFIX):
            unknown.setdefault(lower, name)
    return list(unknown.values())


def shown(value: str) -> str:
    """A header value as an error quotes it: in quotes, cut to SHOWN_VALUE_CHARS."""
    if len(value) > SHOWN_VALUE_CHARS:
        return repr(value[:SHOWN_VALUE_CHARS]) + f" (cut, {len(value):,} characters)"
    return repr(value)


def tags_only(fields: Iterable[tuple[str, str]]) -> HeliconeOptions:
    """What can be read of a request whose Helicone headers did not parse: its tags, and its omit flags taken as
    'omit' unless plainly 'false' (a body the client may have asked to keep out is kept out). Never raises."""
    values = {name.lower(): value.strip() for name, value in fields}
    properties = {name[len(PROPERTY_PREFIX):].lower(): value for name, value in fields
                  if name.lower().startswith(PROPERTY_PREFIX) and len(name) > len(PROPERTY_PREFIX)}
    return HeliconeOptions(
        properties=properties,
        user_id=values.get("helicone-user-id") or _property_user_id(properties),
        session_id=values.get("helicone-session-id"),
        session_path=values.get("helicone-session-path"),
        session_name=values.get("helicone-session-name"),
        prompt_id=values.get("helicone-prompt-id"),
        omit_request=values.get("helicone-omit-request", "false").lower() != "false",
        omit_response=values.get("helicone-omit-response", "false").lower() != "false",
    )


def _is_number(text: str) -> bool:
    # ASCII digits only: str.isdigit() accepts characters such as "²" that int() then rejects. At most 12 of them:
    # no value here needs more, and int() refuses strings over 4,300 digits with a bare ValueError.
    return re.fullmatch(r"[0-9]{1,12}", text) is not None


def _property_user_id(properties: dict[str, str]) -> str | None:
    # Helicone's tutorials tag users with Helicone-Property-UserId; it means the same as Helicone-User-Id.
    return properties.get("userid")


def _true_or_false(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"expected true or false, got {shown(value)}")
    return lowered == "true"


def _whole_number(minimum: int, maximum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not _is_number(value.strip()) or not minimum <= int(value) <= maximum:
            raise ValueError(f"expected a whole number from {minimum} to {maximum}, got {shown(value)}")
        return int(value)
    return parse


def _factor(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 1.0 <= number <= 10.0:
        raise ValueError(f"expected a number from 1 to 10, got {shown(value)}")
    return number


def _names(value: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in value.split(","))
    if not all(items):
        raise ValueError(f"expected a comma-separated list of non-empty names, got {shown(value)}")
    return items


def _status_codes(value: str) -> tuple[int, ...]:
    codes = _names(value)
    if not all(_is_number(c) and 100 <= int(c) <= 599 for c in codes):
        raise ValueError(f"expected comma-separated HTTP status codes (100-599), got {shown(value)}")
    return tuple(int(c) for c in codes)


def _max_age(cache_control: str | None) -> int:
    # Clients send Cache-Control for their own reasons (no-cache, ...): only a max-age sets the cache's TTL.
    match = re.search(r"(?:^|[,\s])max-age\s*=\s*\"?([0-9]+)\"?", cache_control or "", re.IGNORECASE)
    if not match:
        return DEFAULT_CACHE_AGE_S
    digits = match.group(1)
    return MAX_CACHE_AGE_S if len(digits) > 12 else min(int(digits), MAX_CACHE_AGE_S)


def _session_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"expected a path like /parent/child, got {shown(value)}")
    return value


def _request_id(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ValueError(f"expected a UUID, got {shown(value)}") from None


def _bearer(value: str) -> str:
    if (token := bearer(value)) is None:
        raise ValueError("expected 'Bearer <key>' (the value is a key: not shown)")
    return token


def _policy(value: str) -> RateLimitPolicy:
    try:
        return parse_ratelimit_policy(value)
    except ValueError:
        raise ValueError(f"expected {POLICY_FORM}; got {shown(value)}") from None


def _fallback_targets(value: str) -> tuple[dict, ...]:
    try:
        targets = json.loads(value)
    except (ValueError, RecursionError):
        targets = None
    if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
        raise ValueError("expected a JSON list of objects, e.g. [{\"bodyKeyOverride\": {\"model\": \"gpt-4o-mini\"}}], "
                         f"got {shown(value)}")
    return tuple(targets)
