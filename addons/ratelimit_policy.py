"""Helicone's rate-limit policy grammar (`1000;w=3600;u=request;s=user`), shared by the `Helicone-RateLimit-Policy`
header and the config's `ratelimit.policies`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

POLICY_RE = re.compile(r"^\s*([0-9]+)\s*((?:;\s*[a-z]\s*=\s*[^;]*)*);?\s*$", re.IGNORECASE)
POLICY_FORM = "[quota];w=[window seconds];u=[request|cents];s=[user|<property name>], e.g. 1000;w=3600;s=user"


@dataclass(frozen=True)
class RateLimitPolicy:
    quota: int
    window_s: int
    unit: str  # "request" | "cents"
    segment: str | None  # None (global), "user", or a property name
    text: str


def parse_ratelimit_policy(text: str) -> RateLimitPolicy:
    """Helicone's rate-limit policy string; ValueError when it is not one."""
    match = POLICY_RE.match(text)
    if not match or int(match.group(1)) < 1:
        raise ValueError(text)
    params: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in match.group(2).split(";"))):
        k, _, v = part.partition("=")
        params[k.strip().lower()] = v.strip()
    # ASCII digits only, at most 12 of them: int() accepts other digits and refuses strings over 4,300 digits.
    window = params.get("w", "")
    if set(params) - {"w", "u", "s"} or not re.fullmatch(r"[0-9]{1,12}", window) or int(window) < 1:
        raise ValueError(text)
    unit = params.get("u", "request").lower()
    if unit not in ("request", "cents"):
        raise ValueError(text)
    segment = params.get("s") or None
    if segment is not None and segment.lower() == "user":
        segment = "user"
    return RateLimitPolicy(int(match.group(1)), int(window), unit, segment, text.strip())
