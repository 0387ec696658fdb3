"""Loading and validating llmtap's YAML config: defaults, merges, routing tables, and one-line errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from llmtap.config import Address, Config, ConfigError, GatewayKey, PriceOverride, Upstream, load_config, parse_config


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "llmtap.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def defaults() -> Config:
    return parse_config({}, source=None)


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert "\n" not in message, "a config error is one line"
    return message


def test_without_a_config_file_the_defaults_serve_openai_and_anthropic(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LLMTAP_CONFIG", raising=False)

    config = load_config()

    assert config.source is None
    assert config.proxy_listen == Address("127.0.0.1", 8080)
    assert config.gateway_listen == Address("127.0.0.1", 8787)
    assert config.storage_path == Path("data/llmtap.duckdb")
    openai, anthropic = config.provider_named("openai"), config.provider_named("anthropic")
    assert openai.hosts == ("api.openai.com",)
    assert openai.upstream == Upstream("https", "api.openai.com", 443, "")
    assert "gpt-*" in openai.models
    assert openai.paths["openai_chat"] == "/v1/chat/completions"
    assert anthropic.hosts == ("api.anthropic.com",)
    assert anthropic.upstream == Upstream("https", "api.anthropic.com", 443, "")
    assert anthropic.models == ("claude-*",)
    assert anthropic.paths["anthropic_messages"] == "/v1/messages"


def test_a_provider_in_the_file_is_merged_over_its_default(tmp_path):
    path = write_config(tmp_path, "providers:\n  openai:\n    upstream: http://127.0.0.1:9999/openai/\n")

    openai = load_config(path).provider_named("openai")

    assert openai.upstream == Upstream("http", "127.0.0.1", 9999, "/openai")
    assert openai.hosts == ("api.openai.com",)
    assert "gpt-*" in openai.models
    assert openai.api_key_env == "OPENAI_API_KEY"


def test_a_new_provider_is_added_next_to_the_defaults(tmp_path):
    path = write_config(
        tmp_path, "providers:\n  local:\n    upstream: http://127.0.0.1:11434\n    models: ['qwen3:*']\n"
    )

    config = load_config(path)

    assert config.provider_for_model("qwen3:8b")[0].name == "local"
    assert config.provider_named("openai") is not None


def test_provider_off_removes_that_default_provider(tmp_path):
    path = write_config(tmp_path, "providers:\n  openai: off\n")

    config = load_config(path)

    assert config.provider_named("openai") is None
    assert config.provider_for_model("gpt-4o-mini") is None
    assert config.provider_named("anthropic") is not None


@pytest.mark.parametrize(
    "model, provider, upstream_model",
    [
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("o3-mini", "openai", "o3-mini"),
        ("claude-3-5-haiku-latest", "anthropic", "claude-3-5-haiku-latest"),
        ("anthropic/claude-3-5-haiku-latest", "anthropic", "claude-3-5-haiku-latest"),
        ("openai/my-fine-tune", "openai", "my-fine-tune"),
        ("groq/llama-3.3-70b-versatile", "groq", "llama-3.3-70b-versatile"),
        ("meta-llama/llama-4-scout-17b-16e-instruct", "groq", "meta-llama/llama-4-scout-17b-16e-instruct"),
    ],
)
def test_a_model_routes_to_its_provider_by_prefix_or_pattern(model, provider, upstream_model):
    routed, name = defaults().provider_for_model(model)

    assert (routed.name, name) == (provider, upstream_model)


def test_a_model_no_provider_serves_is_not_routed():
    assert defaults().provider_for_model("my-private-model") is None


@pytest.mark.parametrize(
    "host, provider",
    [("api.openai.com", "openai"), ("API.Anthropic.com", "anthropic"), ("api.groq.com", "groq")],
)
def test_an_intercepted_host_maps_to_its_provider(host, provider):
    assert defaults().provider_for_host(host).name == provider


def test_a_host_no_provider_claims_is_not_intercepted():
    assert defaults().provider_for_host("example.com") is None


@pytest.mark.parametrize(
    "text, key",
    [
        ("listn:\n  proxy: 127.0.0.1:8080\n", "'listn'"),
        ("providers:\n  openai:\n    hostz: [api.openai.com]\n", "'providers.openai.hostz'"),
        ("listen:\n  proxi: 127.0.0.1:8080\n", "'listen.proxi'"),
        ("storage:\n  pth: x.duckdb\n", "'storage.pth'"),
        ("pricing:\n  - {model: m, input_per_mtok: 1, output_per_mtok: 1, cahced: 1}\n", "'pricing[0].cahced'"),
    ],
)
def test_an_unknown_key_is_refused_by_name(tmp_path, text, key):
    message = config_error(write_config(tmp_path, text))

    assert f"unknown key {key}" in message


@pytest.mark.parametrize("address", ["8080", "localhost:", ":8080", "localhost:70000", "localhost:http"])
def test_a_bad_listen_address_is_refused_naming_the_key(tmp_path, address):
    message = config_error(write_config(tmp_path, f"listen:\n  proxy: '{address}'\n"))

    assert "listen.proxy" in message
    assert address in message


@pytest.mark.parametrize("url", ["api.openai.com", "ftp://api.openai.com", "https://", "https://host:99999"])
def test_a_bad_upstream_url_is_refused_naming_the_key(tmp_path, url):
    message = config_error(write_config(tmp_path, f"providers:\n  openai:\n    upstream: '{url}'\n"))

    assert "providers.openai.upstream" in message


def test_a_missing_config_file_is_named_in_the_error(tmp_path):
    path = tmp_path / "nowhere" / "llmtap.yaml"

    message = config_error(path)

    assert str(path) in message


def test_invalid_yaml_is_reported_with_its_line(tmp_path):
    path = write_config(tmp_path, "listen:\n  proxy: 127.0.0.1:8080\nstorage: path: x.duckdb\n")

    message = config_error(path)

    assert str(path) in message
    assert "line 3" in message


def test_a_gateway_reachable_from_other_machines_needs_gateway_keys(tmp_path):
    message = config_error(write_config(tmp_path, "listen:\n  gateway: 0.0.0.0:8787\n"))

    assert "listen.gateway" in message
    assert "gateway.keys" in message


def test_a_proxy_reachable_from_other_machines_needs_gateway_keys(tmp_path):
    message = config_error(write_config(tmp_path, "listen:\n  proxy: 0.0.0.0:8080\n"))

    assert "listen.proxy" in message
    assert "gateway.keys" in message


def test_limits_accept_sizes_with_units_and_name_a_bad_one(tmp_path):
    config = load_config(write_config(tmp_path, "limits:\n  max_request_bytes: 2 MiB\n"))
    assert config.limits.max_request_bytes == 2 * 1024 * 1024

    message = config_error(write_config(tmp_path, "limits:\n  max_header_bytes: lots\n"))
    assert "limits.max_header_bytes" in message and "'lots'" in message


def test_a_gateway_reachable_from_other_machines_is_accepted_with_keys(tmp_path):
    path = write_config(tmp_path, "listen:\n  gateway: 0.0.0.0:8787\ngateway:\n  keys:\n    - {owner: ci, key: gk-1}\n")

    config = load_config(path)

    assert config.gateway_listen == Address("0.0.0.0", 8787)
    assert config.gateway_keys == (GatewayKey("ci", "gk-1"),)


def test_a_gateway_key_is_read_from_its_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMTAP_TEST_KEY_ALICE", "gk-alice-123")
    path = write_config(tmp_path, "gateway:\n  keys:\n    - {owner: alice, key_env: LLMTAP_TEST_KEY_ALICE}\n")

    assert load_config(path).gateway_keys == (GatewayKey("alice", "gk-alice-123"),)


def test_a_gateway_key_env_that_is_not_set_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMTAP_TEST_KEY_ALICE", raising=False)
    path = write_config(tmp_path, "gateway:\n  keys:\n    - {owner: alice, key_env: LLMTAP_TEST_KEY_ALICE}\n")

    message = config_error(path)

    assert "gateway.keys[0].key_env" in message
    assert "LLMTAP_TEST_KEY_ALICE" in message


def test_a_pricing_override_is_read_as_exact_decimals(tmp_path):
    path = write_config(
        tmp_path,
        "pricing:\n  - {model: 'ft:gpt-4o-mini:*', provider: openai, input_per_mtok: 0.3,"
        " output_per_mtok: 1.2, cached_input_per_mtok: 0.15}\n",
    )

    assert load_config(path).pricing == (
        PriceOverride("ft:gpt-4o-mini:*", "openai", Decimal("0.3"), Decimal("1.2"), Decimal("0.15")),
    )


@pytest.mark.parametrize(
    "entry, key",
    [
        ("{model: m, input_per_mtok: -1, output_per_mtok: 1}", "pricing[0].input_per_mtok"),
        ("{model: m, input_per_mtok: 1, output_per_mtok: cheap}", "pricing[0].output_per_mtok"),
        ("{model: m, input_per_mtok: 1}", "pricing[0].output_per_mtok"),
        ("{input_per_mtok: 1, output_per_mtok: 1}", "pricing[0].model"),
    ],
)
def test_a_bad_pricing_override_is_refused_naming_the_key(tmp_path, entry, key):
    message = config_error(write_config(tmp_path, f"pricing:\n  - {entry}\n"))

    assert key in message
