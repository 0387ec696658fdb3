"""The `ModelList` addon: `GET /v1/models` (and `/models`, `/v1/models/{id}`) on the gateway way in, in OpenAI's
list format, so an SDK's `client.models.list()` and `retrieve()` work against llmtap.

It lists what the gateway routes: per configured provider, the models genai-prices knows for it (its
`prices_provider`) that the gateway sends to that provider (its `models` patterns, as Router matches them; a provider
with no patterns, such as Together or OpenRouter, by `provider/model`), and the models named by the config's `pricing`
entries (as `provider/model` when no pattern routes the bare name). A model is listed by the name a client sends,
which is not always genai-prices' id (Fireworks' `accounts/fireworks/models/...`). `owned_by`
is llmtap's provider name. genai-prices does not know when a model was released: `created` is 0. The list is built
once per config (when mitmproxy configures the addons) and answered by llmtap itself: the call is logged, not billed.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from genai_prices import types
from genai_prices.data_snapshot import get_snapshot
from mitmproxy import http

from .callstate import get_state
from .config import Config, PriceOverride, ProviderConfig
from .replies import reply_with_error, reply_with_json
from .settings import Settings
from .wire import endpoint_path

LIST_PATHS = ("/v1/models", "/models")
PATTERN_CHARACTERS = "*?["  # a `pricing` entry whose model holds one is a pattern, not one model
# genai-prices lists some entries by a prefix it matches fine-tuned ids with (`gpt-4o-mini-2024-07-18.ft-`,
# `ft:gpt-4o`): no client can ask for such a model.
PREFIX_ENDINGS = ("-", ":", ".")


@dataclass(frozen=True)
class ListedModel:
    id: str
    owned_by: str  # llmtap's name of the provider the gateway sends it to

    def as_json(self) -> dict[str, str | int]:
        return {"id": self.id, "object": "model", "created": 0, "owned_by": self.owned_by}


class ModelList:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.config: Config | None = None  # the config `models` was built for
        self.models: dict[str, ListedModel] = {}

    def configure(self, updated: set[str]) -> None:
        if self.settings.config is not self.config:  # Settings (before this addon) has loaded a new config
            self.config = self.settings.config
            self.models = {model.id: model for model in routable_models(self.config)}

    def request(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if flow.response or flow.error or state is None or state.way != "gateway" or flow.request.method != "GET":
            return
        path = endpoint_path(flow.request.path)
        if path in LIST_PATHS:
            reply_with_json(flow, {"object": "list", "data": [model.as_json() for model in self.models.values()]})
            return
        prefix = next((f"{p}/" for p in LIST_PATHS if path.startswith(f"{p}/")), None)
        if prefix is None:
            return
        model_id = unquote(path[len(prefix):])
        if (model := self.models.get(model_id)) is not None:
            reply_with_json(flow, model.as_json())
        else:
            reply_with_error(flow, 404, "llmtap_unknown_model",
                             f"the gateway routes no model {model_id!r}; GET /v1/models lists those it does",
                             code="model_not_found")


def routable_models(config: Config) -> list[ListedModel]:
    """What the gateway routes, per provider in config order (ids sorted): genai-prices' models for the provider that
    the config sends to it, then the models of `pricing` entries not listed yet. A model is listed once, owned by the
    provider a call for it goes to."""
    listed: dict[str, ListedModel] = {}
    known = {provider.id: provider for provider in get_snapshot().providers}
    for provider in config.providers:
        prices = known.get(provider.prices_provider)
        for model in sorted(prices.models, key=lambda m: m.id) if prices else ():
            if (model_id := _routed_name(config, provider, model)) is not None:
                listed.setdefault(model_id, ListedModel(model_id, provider.name))
    for entry in config.pricing:
        if any(character in entry.model for character in PATTERN_CHARACTERS):
            continue
        if (routed := _routes_to(config, entry.model)) is not None:
            listed.setdefault(entry.model, ListedModel(entry.model, routed.name))
        elif (named := _priced_as(config, entry)) is not None:
            explicit = f"{named.name}/{entry.model}"
            listed.setdefault(explicit, ListedModel(explicit, named.name))
    return list(listed.values())


def _routed_name(config: Config, provider: ProviderConfig, model: types.ModelInfo) -> str | None:
    """The name a client sends to reach genai-prices' `model` at `provider`: its id or the first exact name its
    match accepts that the gateway sends there; `provider/name` for a provider without patterns."""
    for name in [model.id, *_exact_names(model.match)]:
        if name.endswith(PREFIX_ENDINGS):
            continue
        if _routes_to(config, name) is provider:
            return name
        if not provider.models and config.provider_for_model(explicit := f"{provider.name}/{name}") == (provider, name):
            return explicit
    return None


def _exact_names(clause: types.MatchLogic) -> list[str]:
    """The model names a genai-prices match clause accepts exactly (its equals, alone or among alternatives)."""
    if isinstance(clause, types.ClauseEquals):
        return [clause.equals]
    if isinstance(clause, types.ClauseOr):
        return [name for alternative in clause.or_ for name in _exact_names(alternative)]
    return []


def _routes_to(config: Config, model_id: str) -> ProviderConfig | None:
    """The provider a gateway call for `model_id` goes to, when it goes there by that very name."""
    routed = config.provider_for_model(model_id)
    return routed[0] if routed is not None and routed[1] == model_id else None


def _priced_as(config: Config, entry: PriceOverride) -> ProviderConfig | None:
    """The provider of config a `pricing` entry names, if it names one."""
    return next((p for p in config.providers if entry.names_provider(p.prices_provider, p.name)), None)
