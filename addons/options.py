"""The typed options a call carries: what the client asked of llmtap through `Helicone-*` headers (parsed in
headers.py), and the defaults the config gives a request for the headers it does not send.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .ratelimit_policy import RateLimitPolicy

MAX_CACHE_AGE_S = 365 * 24 * 3600
DEFAULT_CACHE_AGE_S = 7 * 24 * 3600
DEFAULT_FALLBACK_CODES = (429, 500, 502, 503, 504)


@dataclass(frozen=True)
class CacheOptions:
    enabled: bool = False
    max_age_s: int = DEFAULT_CACHE_AGE_S
    bucket_max_size: int = 1
    seed: str | None = None
    ignore_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetryOptions:
    enabled: bool = False
    max_retries: int = 3
    factor: float = 2.0
    min_timeout_ms: int = 1000
    max_timeout_ms: int = 10000


@dataclass(frozen=True)
class FallbackOptions:
    models: tuple[str, ...] = ()
    on_codes: tuple[int, ...] = DEFAULT_FALLBACK_CODES
    targets: tuple[dict, ...] = ()  # Helicone-Fallbacks, Helicone's JSON form


@dataclass(frozen=True)
class HeliconeOptions:
    """Everything the client asked of llmtap through `Helicone-*` headers."""

    properties: dict[str, str] = field(default_factory=dict)
    user_id: str | None = None
    session_id: str | None = None
    session_path: str | None = None
    session_name: str | None = None
    request_id: str | None = None
    prompt_id: str | None = None
    omit_request: bool = False
    omit_response: bool = False
    auth_key: str | None = None
    cache: CacheOptions = CacheOptions()
    retry: RetryOptions = RetryOptions()
    fallback: FallbackOptions = FallbackOptions()
    ratelimit_policy: RateLimitPolicy | None = None


@dataclass(frozen=True)
class RequestDefaults:
    """What a request gets for the headers it does not send: the config's `retries` and `fallbacks` sections."""

    retry: RetryOptions = RetryOptions()
    fallback_codes: tuple[int, ...] = DEFAULT_FALLBACK_CODES
