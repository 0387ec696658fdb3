"""The `Router` addon: sends each LLM call to its provider's upstream.

- Proxy way in: the client named the provider host; the request goes, as it is and with the client's own key, to
  the provider's `upstream` (its scheme, port and path prefix), at the host the client named when that host and the
  upstream's are both under one `*.` entry of `hosts` (each Azure resource of `*.openai.azure.com` its own provider).
- Gateway way in: one OpenAI-compatible endpoint. The model picks the provider (config patterns, or an explicit
  `provider/model`): the body's, or the path's for Gemini's API and Azure's deployment URLs. The provider key comes
  from the environment. (A caller without a valid gateway key never gets here: Intake refuses it before its body is
  read; see access.py.)
"""

from __future__ import annotations

from mitmproxy import ctx, http

from .bodies import json_kind
from .callstate import CallState, get_state
from .config import Config, ProviderConfig, fill_model, with_client_query
from .credentials import drop_client_keys, key_headers
from .fallback import has_fallbacks, no_key_reason
from .replies import NOT_RETRYABLE, reply_with_error
from .settings import Settings
from .wire import FORMATS, endpoint_path, format_for_gateway_path, gateway_endpoints


class Router:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.flows_shown_in_flight = False  # under mitmweb (its `view` addon), not mitmdump

    def running(self) -> None:
        self.flows_shown_in_flight = ctx.master.addons.get("view") is not None

    def request(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if flow.response or flow.error or state is None:
            return
        if state.way == "proxy":
            provider = state.route.provider
            assert provider is not None
            # Another Azure resource's call (and its key) goes to that resource, never to the configured one.
            host = provider.host_for(flow.request.pretty_host)
            send_to_upstream(flow.request, provider, flow.request.path, host)
        else:
            self._route_gateway(flow, state, self.settings.config)

    def _route_gateway(self, flow: http.HTTPFlow, state: CallState, config: Config) -> None:
        path = endpoint_path(flow.request.path)
        wire = format_for_gateway_path(path)
        if flow.request.method != "POST" or wire is None:
            reply_with_error(flow, 404, "llmtap_unknown_endpoint",
                             f"{flow.request.method} {path} is not a gateway endpoint; use {gateway_endpoints()}; "
                             "GET /v1/models lists the models it routes")
            return
        body = state.request.body
        if not isinstance(body, dict):
            reply_with_error(flow, 400, "llmtap_invalid_body", state.request.body_problem
                             or f"the request body must be a JSON object, got {json_kind(body)}")
            return
        model = wire.model(path, body)
        routed = config.provider_for_model(model) if model else None
        if routed is None:
            reply_with_error(
                flow, 400, "llmtap_unroutable_model",
                f"model {model!r} matches no provider; routable models: {', '.join(config.routable_models())}",
            )
            return
        provider, provider_model = routed
        state.route.provider = provider
        state.route.wire = wire
        upstream_path = provider.path_for(wire.name)
        if upstream_path is None:
            reply_with_error(
                flow, 400, "llmtap_unroutable_model",
                f"provider {provider.name!r} does not serve {path} "
                f"(no endpoint for it under providers.{provider.name}); "
                f"it serves {', '.join(f.gateway_paths[0] for f in FORMATS if provider.path_for(f.name))}",
            )
            return
        # "openai/gpt-4o" reaches OpenAI as "gpt-4o", an Azure deployment URL's body names its deployment; the row
        # keeps what the client sent.
        if provider_model != model or body.get("model", provider_model) != provider_model:
            upstream_path, state.route.outgoing_body = wire.with_model(upstream_path, body, provider_model)
        try:
            upstream_path = wire.upstream_path(fill_model(upstream_path, provider_model), path)
        except ValueError as e:
            reply_with_error(flow, 400, "llmtap_invalid_model", f"{model!r} cannot be sent to {provider.name!r}: {e}")
            return
        if not self._inject_provider_key(flow, state, provider):
            return
        send_to_upstream(flow.request, provider, with_client_query(upstream_path, flow.request.path))

    def _inject_provider_key(self, flow: http.HTTPFlow, state: CallState, provider: ProviderConfig) -> bool:
        key = provider.api_key
        if key is None:
            if not self.settings.config.gateway_keys:
                return True  # no key configured and no gateway keys: the client's own key goes through
            drop_client_keys(flow.request)  # the caller's gateway key is no provider's key: it goes nowhere
            if provider.api_key_env is None:
                return True  # a provider that needs no key (a local model server)
            if has_fallbacks(state, self.settings.config):
                # Its fallbacks may have keys: AttemptRunner tries them and notes this provider as skipped.
                state.route.primary_skipped_because = no_key_reason(provider)
                return True
            reply_with_error(
                flow, 500, "llmtap_missing_provider_key",
                f"the gateway has no key for provider {provider.name!r}: set {provider.api_key_env}",
                headers=NOT_RETRYABLE,
            )
            return False
        drop_client_keys(flow.request)
        assert state.route.wire is not None
        headers = key_headers(provider, state.route.wire, key)
        if self.flows_shown_in_flight:
            # mitmweb shows the live flow while the call is under way: the key goes only on the request llmtap's
            # relay sends (AttemptRunner), never on the flow.
            state.route.provider_auth_headers = headers
        else:
            flow.request.headers.update(headers)
        return True


def send_to_upstream(request: http.Request, provider: ProviderConfig, path: str, host: str | None = None) -> None:
    """Send `request` to the provider's upstream (scheme, port, path prefix), at `host` when given (one resource of a
    wildcard entry: `ProviderConfig.host_for`), else the upstream's."""
    upstream = provider.upstream
    host = host or upstream.host
    request.scheme, request.host, request.port = upstream.scheme, host, upstream.port
    request.path = upstream.path_prefix + path
    request.headers["host"] = host if upstream.port in (80, 443) else f"{host}:{upstream.port}"
