"""Which upstreams a call may try, in order: the model the client asked for, then its fallbacks.

Fallbacks come from `Helicone-Fallback-Model` (one model or a comma-separated chain), Helicone's JSON form
`Helicone-Fallbacks`, or config (`fallbacks.models`). A fallback re-sends the same request with only the model
rewritten; on the gateway way in the model may belong to another provider, which then gets its own key and endpoint.
Planning is pure: `plan_targets` raises `ValueError` for a fallback llmtap cannot route.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mitmproxy import http

from .callstate import CallState
from .config import Config, ProviderConfig
from .routing import CLIENT_KEY_HEADERS

PASSED_OVER_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class Target:
    """One upstream a call may be sent to, ready to send."""

    provider: ProviderConfig
    model: str | None
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    on_codes: tuple[int, ...]  # answers with these codes move on to the next target, if there is one


def plan_targets(request: http.Request, state: CallState, config: Config) -> list[Target]:
    """The primary upstream (as routed) followed by each fallback."""
    assert state.provider is not None and state.wire is not None
    body = json.loads(request.get_content() or b"{}")
    headers = tuple((k, v) for k, v in request.headers.items(multi=True) if k.lower() not in PASSED_OVER_HEADERS)
    options = state.options.fallback
    primary = Target(state.provider, body.get("model"), request.url, headers, request.get_content() or b"",
                     options.on_codes)
    targets = [primary]
    models = options.models or config.fallback_models.get(state.model_requested or "", ())
    for model in models:
        targets.append(_model_target(primary, body, {"model": model}, options.on_codes, {}, state, config))
    for spec in options.targets:
        targets.append(_helicone_target(primary, body, spec, options.on_codes, state, config))
    return targets


def _helicone_target(primary: Target, body: dict[str, Any], spec: dict[str, Any], default_codes: tuple[int, ...],
                     state: CallState, config: Config) -> Target:
    """One entry of Helicone-Fallbacks: {"target-url", "headers", "onCodes", "bodyKeyOverride"}, all optional."""
    override = spec.get("bodyKeyOverride") or {}
    codes = spec.get("onCodes") or default_codes
    extra_headers = spec.get("headers") or {}
    if not isinstance(override, dict) or not isinstance(extra_headers, dict) or not isinstance(codes, (list, tuple)):
        raise ValueError("Helicone-Fallbacks: bodyKeyOverride and headers must be objects, onCodes a list")
    if not all(isinstance(c, int) for c in codes):
        raise ValueError("Helicone-Fallbacks: onCodes must be a list of HTTP status codes")
    provider = None
    if spec.get("target-url"):
        host = urlsplit(str(spec["target-url"])).hostname
        provider = next((p for p in config.providers if host in p.hosts or host == p.upstream.host), None)
        if provider is None:
            # A provider key must never be sent to a host the config does not name.
            raise ValueError(f"Helicone-Fallbacks: target-url {spec['target-url']!r} is not a configured provider")
    return _model_target(primary, body, override, tuple(codes), extra_headers, state, config, provider)


def _model_target(primary: Target, body: dict[str, Any], override: dict[str, Any], codes: tuple[int, ...],
                  extra_headers: dict[str, str], state: CallState, config: Config,
                  provider: ProviderConfig | None = None) -> Target:
    new_body = {**body, **override}
    model = new_body.get("model")
    if state.way == "proxy":
        # The client chose the provider host; a fallback changes the model (and what Helicone-Fallbacks overrides).
        return Target(primary.provider, model, primary.url, _merge(primary.headers, extra_headers),
                      json.dumps(new_body).encode(), codes)
    if provider is None:
        routed = config.provider_for_model(model) if isinstance(model, str) else None
        if routed is None:
            raise ValueError(f"fallback model {model!r} matches no provider; routable: {', '.join(config.routable_models())}")
        provider, new_body["model"] = routed
    assert state.wire is not None
    path = provider.messages_path if state.wire.name == "anthropic_messages" else provider.chat_path
    if path is None:
        raise ValueError(f"fallback model {model!r}: provider {provider.name!r} has no Messages API")
    headers = primary.headers
    if (key := provider.api_key()) is not None:
        headers = tuple((k, v) for k, v in headers if k.lower() not in CLIENT_KEY_HEADERS)
        headers += tuple(state.wire.auth_headers(key).items())
    return Target(provider, new_body.get("model"), f"{str(provider.upstream)}{path}", _merge(headers, extra_headers),
                  json.dumps(new_body).encode(), codes)


def _merge(headers: tuple[tuple[str, str], ...], extra: dict[str, str]) -> tuple[tuple[str, str], ...]:
    allowed = {k.lower(): str(v) for k, v in extra.items() if k.lower() not in CLIENT_KEY_HEADERS}
    return tuple((k, v) for k, v in headers if k.lower() not in allowed) + tuple(allowed.items())

