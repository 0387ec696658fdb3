"""Loading and validating llmtap's YAML config: defaults, merges, routing tables, and one-line errors."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from llmtap.config import (
    Address,
    Config,
    ConfigError,
    GatewayKey,
    PriceOverride,
    Upstream,
    fill_model,
    host_regex,
    load_config,
    parse_config,
)
from llmtap.locations import user_data_dir


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
    assert config.storage_path == user_data_dir() / "data" / "llmtap.duckdb"  # never under the current directory
    assert config.certs_dir == user_data_dir() / "certs"
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
        ("text-embedding-3-small", "openai", "text-embedding-3-small"),
        ("gpt-3.5-turbo-instruct", "openai", "gpt-3.5-turbo-instruct"),
        ("davinci-002", "openai", "davinci-002"),
        ("babbage-002", "openai", "babbage-002"),
        ("mistral-embed", "mistral", "mistral-embed"),
        ("gemini-embedding-001", "google", "gemini-embedding-001"),
        ("deepseek-chat", "deepseek", "deepseek-chat"),
        ("grok-3-mini", "xai", "grok-3-mini"),
        ("accounts/fireworks/models/llama-v3p1-8b-instruct", "fireworks",
         "accounts/fireworks/models/llama-v3p1-8b-instruct"),
        # Together and OpenRouter serve other vendors' ids (Groq's `meta-llama/*`, `openai/*`): only by name.
        ("together/meta-llama/Llama-3.3-70B-Instruct-Turbo", "together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ("openrouter/openai/gpt-oss-120b", "openrouter", "openai/gpt-oss-120b"),
        ("openai/gpt-oss-120b", "groq", "openai/gpt-oss-120b"),
    ],
)
def test_a_model_routes_to_its_provider_by_prefix_or_pattern(model, provider, upstream_model):
    routed, name = defaults().provider_for_model(model)

    assert (routed.name, name) == (provider, upstream_model)


def test_the_repository_config_routes_the_models_the_built_in_providers_route():
    repository = load_config(Path(__file__).resolve().parent.parent / "config" / "llmtap.yaml")
    built_in = {provider.name: provider.models for provider in defaults().providers}
    assert all(provider.models == built_in.get(provider.name, provider.models) for provider in repository.providers)


def test_a_model_no_provider_serves_is_not_routed():
    assert defaults().provider_for_model("my-private-model") is None


def test_a_vendor_path_model_is_named_only_by_a_pattern_with_a_slash():
    config = defaults()

    assert config.provider_for_model("deepseek-ai/DeepSeek-V3") is None  # Together's id, not DeepSeek's `deepseek-*`
    assert config.provider_for_model("together/deepseek-ai/DeepSeek-V3")[0].name == "together"


@pytest.mark.parametrize(
    "host, provider",
    [("api.openai.com", "openai"), ("API.Anthropic.com", "anthropic"), ("api.groq.com", "groq")],
)
def test_an_intercepted_host_maps_to_its_provider(host, provider):
    assert defaults().provider_for_host(host).name == provider


def test_a_host_no_provider_claims_is_not_intercepted():
    assert defaults().provider_for_host("example.com") is None


def test_a_wildcard_host_names_each_host_one_name_under_its_domain(tmp_path):
    config = load_config(write_config(tmp_path, "providers:\n  azure:\n    hosts: ['*.openai.azure.com']\n"
                                                "    upstream: https://myres.openai.azure.com\n"))

    assert config.provider_for_host("MyRes.openai.azure.com").name == "azure"
    for host in ("openai.azure.com", "a.b.openai.azure.com", "evil-openai.azure.com", "myres.openai.azure.com.evil"):
        assert config.provider_for_host(host) is None, host
    allowed = re.compile(host_regex("*.openai.azure.com"))
    assert allowed.match("myres.openai.azure.com:443") and not allowed.match("a.b.openai.azure.com:443")
    assert not allowed.match("myresXopenai.azure.com:443")


def test_a_host_pattern_other_than_a_leading_wildcard_is_refused(tmp_path):
    message = config_error(write_config(tmp_path, "providers:\n  azure:\n    hosts: ['api.*.com']\n"
                                                  "    upstream: https://x.openai.azure.com\n"))

    assert "providers.azure.hosts" in message


def test_a_path_names_the_model_quoted_as_one_segment_and_keeps_its_query(tmp_path):
    path = write_config(tmp_path, "providers:\n  azure:\n    upstream: https://myres.openai.azure.com\n"
                                  "    paths: {openai_chat: '/openai/deployments/{model}/chat/completions"
                                  "?api-version=2024-10-21'}\n")
    azure = load_config(path).provider_named("azure")

    assert fill_model(azure.path_for("openai_chat"), "prod chat/1") == (
        "/openai/deployments/prod%20chat%2F1/chat/completions?api-version=2024-10-21")
    assert fill_model(defaults().provider_named("openai").path_for("openai_chat"), "gpt-4o") == "/v1/chat/completions"


def test_auth_header_moves_the_key_to_azures_api_key_header_and_nothing_else_is_accepted(tmp_path):
    entry = "providers:\n  azure:\n    upstream: https://myres.openai.azure.com\n    auth_header: "

    assert load_config(write_config(tmp_path, entry + "api-key\n")).provider_named("azure").auth_header == "api-key"
    assert defaults().provider_named("openai").auth_header is None  # its API's own: a bearer token
    message = config_error(write_config(tmp_path, entry + "x-my-key\n"))
    assert "providers.azure.auth_header" in message and "api-key" in message


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


def test_a_dashboard_reachable_from_other_machines_needs_gateway_keys(tmp_path):
    message = config_error(write_config(tmp_path, "listen:\n  dashboard: 0.0.0.0:8790\n"))

    assert "listen.dashboard" in message and "gateway.keys" in message and "every logged prompt" in message


def test_the_dashboard_listens_on_loopback_by_default_and_off_or_empty_switches_it_off(tmp_path):
    assert load_config(write_config(tmp_path, "{}\n")).dashboard_listen == Address("127.0.0.1", 8790)
    for off in ("off", "''"):
        assert load_config(write_config(tmp_path, f"listen:\n  dashboard: {off}\n")).dashboard_listen is None


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


def test_the_old_path_keys_still_set_a_providers_endpoints(tmp_path):
    path = write_config(
        tmp_path,
        "providers:\n  local:\n    upstream: http://127.0.0.1:11434\n    models: ['qwen3:*']\n"
        "    chat_path: /api/v1/chat\n    messages_path: /api/v1/messages\n"
        "  openai:\n    responses_path: /private/responses\n",
    )

    config = load_config(path)

    local, openai = config.provider_named("local"), config.provider_named("openai")
    assert local.path_for("openai_chat") == "/api/v1/chat"
    assert local.path_for("anthropic_messages") == "/api/v1/messages"
    assert local.path_for("openai_responses") is None
    assert openai.path_for("openai_responses") == "/private/responses"
    assert openai.path_for("openai_chat") == "/v1/chat/completions", "a key the file does not set keeps its default"


def test_paths_set_a_providers_endpoint_per_wire_format_and_null_drops_one(tmp_path):
    path = write_config(
        tmp_path, "providers:\n  openai:\n    paths: {openai_chat: /openai/chat, openai_responses: null}\n"
    )

    openai = load_config(path).provider_named("openai")

    assert openai.path_for("openai_chat") == "/openai/chat" and openai.path_for("openai_responses") is None
    assert openai.path_for("openai_embeddings") == "/v1/embeddings"  # the built-in endpoints it did not name stay


def test_a_paths_key_that_names_no_wire_format_is_refused_by_name(tmp_path):
    message = config_error(write_config(tmp_path, "providers:\n  openai:\n    paths: {openai_chatt: /v1/x}\n"))

    assert "providers.openai.paths.openai_chatt" in message
    assert "openai_chat" in message.partition("accepted here:")[2], "the error lists the wire formats that exist"


def test_the_builtin_providers_come_from_the_packaged_providers_file():
    config = defaults()

    assert [p.name for p in config.providers] == ["openai", "anthropic", "groq", "mistral", "google", "deepseek",
                                                  "xai", "together", "fireworks", "openrouter"]
    assert config.provider_named("fireworks").path_for("openai_chat") == "/inference/v1/chat/completions"
    assert config.provider_named("openrouter").path_for("openai_chat") == "/api/v1/chat/completions"
    assert config.provider_named("xai").prices_provider == "x-ai"  # genai-prices' id
    assert config.provider_named("groq").path_for("openai_chat") == "/openai/v1/chat/completions"
    assert config.provider_named("google").path_for("openai_chat") == "/v1beta/openai/chat/completions"
    assert config.provider_named("anthropic").path_for("anthropic_messages") == "/v1/messages"


def test_a_provider_key_is_read_when_the_config_loads_and_never_shown(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-read-at-load")
    config = defaults()
    monkeypatch.delenv("OPENAI_API_KEY")

    assert config.provider_named("openai").api_key == "sk-test-read-at-load"
    assert "sk-test-read-at-load" not in repr(config)
    assert "sk-test-read-at-load" not in str(config)


def test_a_provider_without_its_key_in_the_environment_has_none(monkeypatch):
    monkeypatch.delenv("GROQ_API_KEY", raising=False)

    assert defaults().provider_named("groq").api_key is None


def test_a_gateway_key_is_never_shown(tmp_path):
    config = load_config(write_config(tmp_path, "gateway:\n  keys:\n    - {owner: ci, key: gk-secret-1}\n"))

    assert "gk-secret-1" not in repr(config)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("retries:\n  max_retries: 99\n", "retries.max_retries: expected a whole number from 0 to 20, got 99"),
        ("retries:\n  max_retries: '3'\n", "retries.max_retries: expected a whole number from 0 to 20, got '3'"),
        ("retries:\n  enabled: 'yes'\n", "retries.enabled: expected true or false, got 'yes'"),
        ("storage:\n  max_memory_rows: 5\n",
         "storage.max_memory_rows: expected a whole number from 100 to 10000000, got 5"),
        ("shutdown:\n  drain_s: -1\n", "shutdown.drain_s: expected a number from 0 to 600, got -1"),
        ("limits:\n  foo: 1\n", "unknown key 'limits.foo' (accepted here: client_idle_timeout_s, max_header_bytes, "
                                "max_header_count, max_logged_body_bytes, max_request_bytes)"),
        ("listen:\n  proxy: '8080'\n", "listen.proxy: '8080' is not HOST:PORT (e.g. 127.0.0.1:8080), or 'off'"),
        ("listen: 5\n", "listen: expected a mapping, got 5"),
        ("fallbacks:\n  on_codes: [429, 99]\n",
         "fallbacks.on_codes[1]: expected a whole number from 100 to 599, got 99"),
        ("providers:\n  openai:\n    hosts: [1]\n",
         "providers.openai.hosts[0]: expected a host name, or *.domain for every host of a domain, got 1"),
        ("providers:\n  openai:\n    chat_path: v1\n",
         "providers.openai.chat_path: expected a path that starts with /, got 'v1'"),
        ("cache:\n  max_bytes: 0\n", "cache.max_bytes: expected a size in bytes such as 268435456 or '256 MiB', got 0"),
        ("- a\n", "the top level: expected a mapping, got list"),
        # A window reaching back past year 1 cannot be measured: refused here, not a traceback at start-up.
        ("alerts:\n- {name: forever, metric: requests, window: 9999999d, threshold: 5, action: block}\n",
         "alerts[0] (rule 'forever'): window: expected a rolling window such as 1h, 1d, 30d (a number and s, m, h or "
         "d, up to 36600d), or a calendar day or month (UTC), got '9999999d'"),
        ("alerts:\n- {name: calls, metric: requests, window: 1h, threshold: 2.5, action: block}\n",
         "alerts[0] (rule 'calls'): threshold: a requests budget counts whole calls, got 2.5"),
    ],
)
def test_a_bad_value_gets_one_line_naming_the_key_what_is_accepted_and_what_was_given(tmp_path, text, expected):
    path = write_config(tmp_path, text)

    assert config_error(path) == f"{path}: {expected}"


EXAMPLE_ALERTS = Path(__file__).resolve().parent.parent / "config" / "alerts.yaml"


def test_the_shipped_alerts_example_loads_with_the_issues_two_rules(monkeypatch):
    monkeypatch.setenv("LLMTAP_SMTP_USER", "alerts")
    monkeypatch.setenv("LLMTAP_SMTP_PASSWORD", "secret")
    config = load_config(EXAMPLE_ALERTS)
    rules = {rule.name: rule for rule in config.alert_rules}
    daily, budget = rules["daily-spend"], rules["user-monthly-budget"]
    assert (daily.metric, daily.window.calendar, daily.threshold, daily.action) == ("spend_usd", "day", 50, "notify")
    assert [channel.kind for channel in daily.channels] == ["webhook", "slack", "email"]
    assert (budget.metric, budget.window.calendar, budget.threshold, budget.scope, budget.action) == (
        "spend_usd", "month", 20, "user", "block")
    assert config.smtp is not None and config.smtp.password == "secret" and "secret" not in repr(config.smtp)


def test_the_alerts_example_names_the_missing_smtp_password_variable(monkeypatch):
    monkeypatch.setenv("LLMTAP_SMTP_USER", "alerts")
    monkeypatch.delenv("LLMTAP_SMTP_PASSWORD", raising=False)
    assert config_error(EXAMPLE_ALERTS).endswith(
        "smtp.password_env: environment variable LLMTAP_SMTP_PASSWORD is not set")


HOOK = [{"webhook": "http://127.0.0.1:9/hook"}]


@pytest.mark.parametrize(("rule", "message"), [
    ({"metric": "spend", "window": "1d", "threshold": 1, "channels": HOOK},
     "alerts[0] (rule 'r'): metric: expected a metric (spend_usd | requests | error_rate | rate_limited | "
     "p95_latency_ms), got 'spend'"),
    ({"metric": "spend_usd", "window": "2w", "threshold": 1, "channels": HOOK},
     "alerts[0] (rule 'r'): window: expected a rolling window such as 1h, 1d, 30d (a number and s, m, h or d, "
     "up to 36600d), "
     "or a calendar day or month (UTC), got '2w'"),
    ({"metric": "error_rate", "window": "1h", "threshold": 5, "action": "block"},
     "alerts[0] (rule 'r'): action: block is for spend_usd and requests budgets, not error_rate"),
    ({"metric": "requests", "window": "day", "threshold": -1, "channels": HOOK},
     "alerts[0] (rule 'r'): threshold: expected a number >= 0, got -1"),
    ({"metric": "requests", "window": "day", "threshold": 5, "scope": "team", "channels": HOOK},
     "alerts[0] (rule 'r'): scope: expected a scope (all | user | key | model | property:<Name>), got 'team'"),
    ({"metric": "requests", "window": "day", "threshold": 5, "channels": [{"email": "ops@example.com"}]},
     "alerts[0] (rule 'r'): channels: an email channel needs an `smtp` section (host, from, ...)"),
    ({"metric": "requests", "window": "day", "threshold": 5},
     "alerts[0] (rule 'r'): channels: a notify rule needs channels (a list of {webhook: URL}, {slack: URL}, "
     "{email: {to}})"),
    ({"metric": "requests", "window": "day", "threshold": 5, "channels": [{"webhook": "ftp://x"}]},
     "alerts[0] (rule 'r'): channels[0].webhook: expected an http(s):// URL, got 'ftp://x'"),
])
def test_a_bad_alert_rule_is_one_line_naming_the_rule_and_the_key(tmp_path, rule, message):
    path = write_config(tmp_path, yaml.safe_dump({"alerts": [{"name": "r", **rule}]}))
    assert config_error(path) == f"{path}: {message}"


def test_two_alert_rules_of_one_name_are_refused(tmp_path):
    rule = "{name: r, metric: requests, window: day, threshold: 5, action: block}"
    path = write_config(tmp_path, f"alerts: [{rule}, {rule}]\n")
    assert config_error(path).endswith("alerts[1] (rule 'r'): name: another rule is named 'r' (names pick a rule in "
                                       "commands)")


def test_the_shipped_configs_commented_azure_and_local_examples_load_when_uncommented():
    text = (Path(__file__).resolve().parent.parent / "config" / "llmtap.yaml").read_text(encoding="utf-8")
    start = text.index("  # local:")
    block = text[start:text.index("\n\n", start)]
    uncommented = "\n".join(line.replace("  # ", "  ", 1) for line in block.splitlines())
    raw = yaml.safe_load(text[:start] + uncommented + text[start + len(block):])

    azure = parse_config(raw, source=None).provider_named("azure")

    assert azure.auth_header == "api-key" and azure.prices_provider == "azure" and azure.serves_host("x.openai.azure.com")
    assert azure.serves_model("prod-chat")
    assert fill_model(azure.path_for("openai_chat"), "prod") == (
        "/openai/deployments/prod/chat/completions?api-version=2024-10-21")
    assert fill_model(azure.path_for("openai_embeddings"), "prod-embed") == (
        "/openai/deployments/prod-embed/embeddings?api-version=2024-10-21")
