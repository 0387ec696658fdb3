"""The gateway's model list follows the config: built once per config, and again when the config is replaced while
the gateway runs (mitmproxy's `llmtap_config` option set anew)."""

from __future__ import annotations

from llmtap.model_list import ModelList

from .conftest import write_config


def test_the_model_list_is_rebuilt_when_the_config_changes(llmtap, tmp_path):
    pipeline = llmtap({"pricing": [{"model": "gpt-acme-one", "input_per_mtok": 1, "output_per_mtok": 2}]})
    model_list = next(addon for addon in pipeline.addons if isinstance(addon, ModelList))
    first = model_list.models
    assert first["gpt-acme-one"].owned_by == "openai" and "gpt-4o-mini" in first
    pipeline.context.options.update(showhost=True)  # another option: the same config, the same list
    assert model_list.models is first
    replaced = write_config(tmp_path / "replaced", {
        "pricing": [{"model": "claude-acme-two", "input_per_mtok": 1, "output_per_mtok": 2}],
        "providers": {"openai": None}})
    pipeline.context.options.update(llmtap_config=str(replaced))
    assert model_list.models["claude-acme-two"].owned_by == "anthropic"
    assert "gpt-acme-one" not in model_list.models and "gpt-4o-mini" not in model_list.models
