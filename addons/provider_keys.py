"""Which providers the gateway has no key for, said once at start-up rather than at the first call that needs one.

The gateway way in sends llmtap's own key for a provider, read from its `api_key_env`; the proxy way in never needs
one (the app brings its own). A provider the config file names, or that its fallbacks route to, gets one line of its
own; the built-in providers the user never mentioned share one line, so a user of one provider is not told of each of
the others.
"""

from __future__ import annotations

from .config import Config, ProviderConfig


def keyless_provider_lines(config: Config) -> list[str]:
    """One line for each provider the config uses whose key variable is unset, and one for the unmentioned built-in
    ones; none when the gateway listener is off (only the gateway spends llmtap's keys)."""
    if config.gateway_listen is None:
        return []
    keyless = [p for p in config.providers if p.api_key_env is not None and p.api_key is None]
    used = config.providers_named | _fallback_providers(config)
    # Without gateway keys a caller's own key goes to the provider; with them, llmtap's key is the only one.
    consequence = "will fail" if config.gateway_keys else "will fail unless the app sends its own key"
    lines = [f"llmtap: provider {p.name}: {p.api_key_env} is not set; gateway calls routed to {p.name} {consequence} "
             "and fallbacks to it are skipped (proxy calls carry their own key)" for p in keyless if p.name in used]
    unmentioned = [p for p in keyless if p.name not in used]
    if unmentioned:
        # Most users set one or two of the ten built-in providers' keys: the sentence comes first, the list last.
        lines.append(f"llmtap: no key for {len(unmentioned)} built-in providers, so gateway calls routed to them "
                     f"{consequence} (proxy calls carry their own key): "
                     + ", ".join(f"{p.name} ({p.api_key_env})" for p in unmentioned))
    return lines


def _fallback_providers(config: Config) -> set[str]:
    """The providers the config's fallback chains route to, the models they fall back from included."""
    models = {model for requested, chain in config.fallback_models.items() for model in (requested, *chain)}
    routed: list[tuple[ProviderConfig, str] | None] = [config.provider_for_model(model) for model in models]
    return {found[0].name for found in routed if found is not None}
