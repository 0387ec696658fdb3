"""The `Settings` addon: owns the `llmtap_config` option and the validated `Config` every other addon reads."""

from __future__ import annotations

from mitmproxy import ctx, exceptions

from .config import Config, ConfigError, load_config


class Settings:
    def __init__(self, config_path: str = "") -> None:
        # The option's default is the config `llmtap start` chose, not the built-in defaults: mitmproxy configures
        # addons with an option's default before it applies the command line, and goes back to it when start-up
        # fails, and neither may open the built-in defaults' log and cache beside the real ones.
        self.config_path = config_path
        # Set by configure(), which mitmproxy runs before any flow reaches an addon. (A plain attribute, not a
        # property: mitmproxy inspects every attribute of an addon when it registers it.)
        self.config: Config = None  # type: ignore[assignment]

    def load(self, loader) -> None:
        loader.add_option(
            "llmtap_config", str, self.config_path, "llmtap's YAML config file (empty: the built-in defaults)"
        )

    def configure(self, updated: set[str]) -> None:
        if "llmtap_config" in updated or self.config is None:
            try:
                self.config = load_config(ctx.options.llmtap_config or None)
            except ConfigError as e:
                raise exceptions.OptionsError(f"llmtap_config: {e}") from None
