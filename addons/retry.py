"""When to try a call again, and how long to wait first: Helicone's exponential backoff, or the provider's word."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .options import RetryOptions

JITTER = 0.1  # each wait is spread ±10%, so clients that failed together do not return together


def is_retryable(status: int | None) -> bool:
    """429, any 5xx, and no answer at all (a refused, reset or silent connection)."""
    return status is None or status == 429 or status >= 500


def wait_s(options: RetryOptions, retry_index: int, retry_after: str | None = None,
           retry_after_ms: str | None = None) -> float:
    """Seconds to wait before retry number `retry_index` (0 for the first): what the provider asked for when it said
    (`retry-after-ms`, `retry-after` in seconds or as an HTTP date), else `min × factor^index` with jitter; never
    more than the maximum."""
    longest = options.max_timeout_ms / 1000
    asked = provider_wait_s(retry_after, retry_after_ms)
    if asked is not None:
        return min(longest, asked)
    backoff = options.min_timeout_ms / 1000 * options.factor**retry_index
    return min(longest, backoff * random.uniform(1 - JITTER, 1 + JITTER))


def provider_wait_s(retry_after: str | None, retry_after_ms: str | None) -> float | None:
    """The wait a provider asked for, in seconds; None when it did not say (or said something unreadable)."""
    for value, scale in ((retry_after_ms, 1000), (retry_after, 1)):
        if not value:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            pass
        if scale == 1:
            try:
                return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
            except (TypeError, ValueError):
                pass
    return None
