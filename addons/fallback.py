"""Which upstreams a call may try, in order: the model the client asked for, then its fallbacks.

Fallbacks come from `Helicone-Fallback-Model` (one model or a comma-separated chain), Helicone's JSON form
`Helicone-Fallbacks`, or config (`fallbacks.models`). A fallback re-sends the same request with only the model (and
what `bodyKeyOverride` names) rewritten. It stays with the same provider, unless the gateway routes its model
elsewhere or a Helicone-Fallbacks `target-url` names another configured provider; another provider gets its own
endpoint and its own key — the target's own `Authorization`, else, on the gateway way in only, the key llmtap has
for it. A key is never sent to a provider it does not belong to, and a proxy call never spends llmtap's own keys: its
client brings them. A gateway fallback to a provider whose key variable is unset is planned as skipped (its reason
goes in the call's attempt log) rather than refusing the call: the primary and the other fallbacks are still tried.
Planning is pure: `plan_targets` raises `ValueError` for a fallback llmtap cannot send.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mitmproxy import http

from .callstate import CallState
from .config import MODEL_PLACEHOLDER, Config, ProviderConfig, fill_model, with_client_query
from .credentials import CLIENT_KEY_HEADERS, key_headers, without_secret_params
from .record import SKIPPED
from .wire import belongs_to_one_provider, endpoint_path

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
    skipped_because: str | None = None  # why it cannot be sent (llmtap has no key for it): passed over, logged


def has_fallbacks(state: CallState, config: Config) -> bool:
    """Whether the call names fallbacks (its headers, or config's `fallbacks.models` for its model)."""
    options = state.request.options.fallback
    return bool(options.models or options.targets or state.request.model in config.fallback_models)


def plan_targets(request: http.Request, state: CallState, config: Config) -> list[Target]:
    """The primary upstream (as routed) followed by each fallback."""
    assert state.route.provider is not None
    content = request.get_content() or b""
    headers = tuple((k, v) for k, v in request.headers.items(multi=True) if k.lower() not in PASSED_OVER_HEADERS)
    headers += tuple((state.route.provider_auth_headers or {}).items())  # the key that was kept off the flow
    options = state.request.options.fallback
    model = state.request.model  # as the client named it: in the body, or in the path (Gemini's)
    if model is None and isinstance(state.request.body, dict):  # an API llmtap does not read
        model = state.request.body.get("model")
    primary = Target(state.route.provider, model, request.url, headers, content, options.on_codes,
                     state.route.primary_skipped_because)
    models = options.models or config.fallback_models.get(state.request.model or "", ())
    if not models and not options.targets:
        return [primary]  # retries only: the request goes again exactly as it was
    body = state.route.outgoing_body or state.request.body  # what the primary sends, already parsed
    if not isinstance(body, dict):
        raise ValueError("a fallback rewrites the request's model, so its body must be a JSON object")
    targets = [primary]
    for fallback_model in models:
        targets.append(_target(primary, body, {"model": fallback_model}, options.on_codes, {}, None, state, config))
    for spec in options.targets:
        targets.append(_helicone_target(primary, body, spec, options.on_codes, state, config))
    return targets


def _helicone_target(primary: Target, body: dict[str, Any], spec: dict[str, Any], default_codes: tuple[int, ...],
                     state: CallState, config: Config) -> Target:
    """One entry of Helicone-Fallbacks: {"target-url", "headers", "onCodes", "bodyKeyOverride"}, all optional."""
    override = spec.get("bodyKeyOverride") or {}
    extra_headers = spec.get("headers") or {}
    if not isinstance(override, dict) or not isinstance(extra_headers, dict):
        raise ValueError("Helicone-Fallbacks: bodyKeyOverride and headers must be JSON objects")
    provider = None
    if spec.get("target-url"):
        host = urlsplit(str(spec["target-url"])).hostname
        provider = next((p for p in config.providers if p.serves_host(host or "") or host == p.upstream.host), None)
        if provider is None:
            raise ValueError(f"Helicone-Fallbacks: target-url {spec['target-url']!r} is not a configured provider")
    codes = _codes(spec.get("onCodes"), default_codes)
    return _target(primary, body, override, codes, extra_headers, provider, state, config)


def _codes(value: Any, default: tuple[int, ...]) -> tuple[int, ...]:
    """Helicone's onCodes: status codes, or {"from": 500, "to": 599} ranges."""
    if not value:
        return default
    codes: list[int] = []
    for item in value if isinstance(value, list) else [None]:
        if isinstance(item, int) and not isinstance(item, bool):
            codes.append(item)
        elif isinstance(item, dict) and isinstance(item.get("from"), int) and isinstance(item.get("to"), int):
            codes.extend(range(item["from"], item["to"] + 1))
        else:
            raise ValueError('Helicone-Fallbacks: onCodes must list status codes or {"from": 500, "to": 599} ranges')
    return tuple(codes)


def _target(primary: Target, body: dict[str, Any], override: dict[str, Any], codes: tuple[int, ...],
            extra_headers: dict[str, Any], provider: ProviderConfig | None, state: CallState, config: Config) -> Target:
    new_body = {**body, **override}
    model = new_body.get("model")
    if provider is None and state.way == "gateway":
        routed = config.provider_for_model(model) if isinstance(model, str) else None
        if routed is None:
            routable = ", ".join(config.routable_models())
            raise ValueError(f"fallback model {model!r} matches no provider; routable: {routable}")
        provider, new_body["model"] = routed
    provider = provider or primary.provider  # on the proxy way in the client chose the provider
    extra = {str(k).lower(): str(v) for k, v in extra_headers.items()}
    skipped_because = None
    if provider is primary.provider:
        url, headers = primary.url, primary.headers
        if isinstance(new_body.get("model"), str) and _names_model_in_path(provider, state):
            url = _url_for_model(primary.url, provider, state, new_body["model"])  # an Azure deployment's
        if not any(name in extra for name in CLIENT_KEY_HEADERS):
            skipped_because = primary.skipped_because  # the same provider, without a key just the same
    else:
        # The client's query goes on (Gemini's `alt=sse` says how to answer), never a key it sent for the primary.
        client_query = without_secret_params(state.request.client_path or "")
        url = f"{provider.upstream}{with_client_query(_path(provider, state, new_body.get('model')), client_query)}"
        headers = _headers_for(provider, primary.headers, extra, state)
        if _needs_llmtaps_key(provider, extra) and provider.api_key is None:
            skipped_because = no_key_reason(provider)
    headers = tuple((k, v) for k, v in headers if k.lower() not in extra) + tuple(extra.items())
    model = new_body.get("model")
    url, new_body = _asking_for(model, url, new_body, state)
    return Target(provider, model, url, headers, json.dumps(new_body).encode(), codes, skipped_because)


def _path(provider: ProviderConfig, state: CallState, model: Any) -> str:
    assert state.route.wire is not None
    path = provider.path_for(state.route.wire.name)
    if path is None:
        raise ValueError(f"fallback: provider {provider.name!r} does not serve this API ({state.route.wire.name})")
    filled = fill_model(path, model) if isinstance(model, str) else path
    return state.route.wire.upstream_path(filled, endpoint_path(state.request.client_path or ""))


def _names_model_in_path(provider: ProviderConfig, state: CallState) -> bool:
    assert state.route.wire is not None
    return MODEL_PLACEHOLDER in (provider.path_for(state.route.wire.name) or "")


def _url_for_model(primary_url: str, provider: ProviderConfig, state: CallState, model: str) -> str:
    """The primary's URL asking for `model` at a provider whose endpoint names the model (`{model}`): that endpoint
    filled for it, on the primary's host, with the primary's query."""
    parts = urlsplit(primary_url)
    path, _, query = with_client_query(_path(provider, state, model), f"?{parts.query}").partition("?")
    return urlunsplit(parts._replace(path=provider.upstream.path_prefix + path, query=query))


def _asking_for(model: Any, url: str, body: dict[str, Any], state: CallState) -> tuple[str, dict[str, Any]]:
    """The URL and body of a target that asks for `model`: an API that names its model in the path (Gemini's) names
    it there, not in the body."""
    assert state.route.wire is not None
    if not isinstance(model, str):
        return url, body
    parts = urlsplit(url)
    path, body = state.route.wire.with_model(parts.path, body, model)
    return urlunsplit(parts._replace(path=path)), body


def _headers_for(provider: ProviderConfig, headers: tuple[tuple[str, str], ...], extra: dict[str, str],
                 state: CallState) -> tuple[tuple[str, str], ...]:
    """The primary's headers for another provider: without the primary's key and provider-specific headers, with a
    key for this provider — the target's own, else the one llmtap has (none when llmtap has none: see
    `_needs_llmtaps_key`)."""
    assert state.route.wire is not None
    kept = tuple((k, v) for k, v in headers
                 if k.lower() not in CLIENT_KEY_HEADERS and not belongs_to_one_provider(k.lower()))
    if any(name in extra for name in CLIENT_KEY_HEADERS):
        return kept
    if state.way == "proxy":  # the client brings its own keys: llmtap never spends its own for a proxy call
        raise ValueError(f"fallback to provider {provider.name!r} on the proxy way in: name its key in the "
                         "Helicone-Fallbacks target's headers (llmtap spends its own provider keys only for gateway "
                         "calls)")
    if (key := provider.api_key) is None:
        return kept
    return kept + tuple(key_headers(provider, state.route.wire, key).items())


def no_key_reason(provider: ProviderConfig) -> str:
    """Why a target of `provider` is skipped when llmtap has no key for it, as its attempt log says."""
    return f"{SKIPPED}{provider.api_key_env} is not set"


def _needs_llmtaps_key(provider: ProviderConfig, extra: dict[str, str]) -> bool:
    """Whether a fallback to another provider can only be sent with llmtap's key for it: the target names no key of
    its own and the provider has a key variable (one without, such as a local model server, needs no key)."""
    return provider.api_key_env is not None and not any(name in extra for name in CLIENT_KEY_HEADERS)
