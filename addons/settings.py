"""The `Settings` addon: owns the `llmtap_config` option and the validated `Config` every other addon reads."""

from __future__ import annotations

from mitmproxy import ctx, exceptions

from .config import Config, ConfigError, load_config


class Settings:
    def __init__(self) -> None:
        # Set by configure(), which mitmproxy runs before any flow reaches an addon. (A plain attribute, not a
        # property: mitmproxy inspects every attribute of an addon when it registers it.)
        self.config: Config = None  # type: ignore[assignment]

    def load(self, loader) -> None:
        loader.add_option(
            "llmtap_config", str, "", "llmtap's YAML config file (empty: the built-in defaults)"
        )

    def configure(self, updated: set[str]) -> None:
        if "llmtap_config" in updated or self.config is None:
            try:
                self.config = load_config(ctx.options.llmtap_config or None)
            except ConfigError as e:
                raise exceptions.OptionsError(f"llmtap_config: {e}") from None
