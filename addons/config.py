"""llmtap's configuration: one YAML file, loaded and validated once into typed objects.

Every key is optional; `DEFAULTS` below is the whole contract. Relative paths (`certs`, `storage.path`) resolve
against the working directory `llmtap` runs in, as a command-line user expects. A bad file raises `ConfigError`
with one line that names the key and what is accepted.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from .options import DEFAULT_FALLBACK_CODES, RequestDefaults, RetryOptions
from .ratelimit_policy import RateLimitPolicy, parse_ratelimit_policy

DEFAULT_CONFIG_PATH = Path("config/llmtap.yaml")

# The provider table a user starts from. A provider named in the user's file is merged over its default here;
# a new name needs at least hosts or upstream and models.
DEFAULT_PROVIDERS: dict[str, dict[str, Any]] = {
    "openai": {
        "hosts": ["api.openai.com"],
        "upstream": "https://api.openai.com",
        "api_key_env": "OPENAI_API_KEY",
        "models": ["gpt-*", "o1*", "o3*", "o4*", "chatgpt-*"],
        "chat_path": "/v1/chat/completions",
        "responses_path": "/v1/responses",
    },
    "anthropic": {
        "hosts": ["api.anthropic.com"],
        "upstream": "https://api.anthropic.com",
        "api_key_env": "ANTHROPIC_API_KEY",
        "models": ["claude-*"],
        "chat_path": "/v1/chat/completions",
        "messages_path": "/v1/messages",
    },
    "groq": {
        "hosts": ["api.groq.com"],
        "upstream": "https://api.groq.com",
        "api_key_env": "GROQ_API_KEY",
        "models": ["llama-*", "meta-llama/*", "qwen/*", "moonshotai/*", "openai/gpt-oss-*"],
        "chat_path": "/openai/v1/chat/completions",
    },
    "mistral": {
        "hosts": ["api.mistral.ai"],
        "upstream": "https://api.mistral.ai",
        "api_key_env": "MISTRAL_API_KEY",
        "models": ["mistral-*", "magistral-*", "codestral-*", "devstral-*", "ministral-*", "pixtral-*"],
        "chat_path": "/v1/chat/completions",
    },
    "google": {
        "hosts": ["generativelanguage.googleapis.com"],
        "upstream": "https://generativelanguage.googleapis.com",
        "api_key_env": "GEMINI_API_KEY",
        "models": ["gemini-*"],
        "chat_path": "/v1beta/openai/chat/completions",
    },
}

PROVIDER_KEYS = {
    "hosts", "upstream", "api_key_env", "models", "chat_path", "messages_path", "responses_path", "prices_provider",
    "inject_stream_usage",
}
DEFAULT_CACHE_MAX_BYTES = 256 * 1024 * 1024
STORAGE_KEYS = {"path", "spool_fsync_interval_s", "max_memory_rows", "fallback_spool_dir", "shutdown_wait_s"}
LIMIT_KEYS = {"max_header_count", "max_header_bytes", "max_request_bytes", "max_logged_body_bytes",
              "client_idle_timeout_s"}
PRICE_KEYS = {"model", "provider", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok"}


class ConfigError(ValueError):
    """A configuration problem, phrased as the one line a user needs to fix it."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


@dataclass(frozen=True)
class Upstream:
    scheme: str
    host: str
    port: int
    path_prefix: str  # prepended to every request path, e.g. "/openai" for a private endpoint

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.path_prefix}"


@dataclass(frozen=True)
class ProviderConfig:
    name: str
    hosts: tuple[str, ...]
    upstream: Upstream
    api_key_env: str | None
    models: tuple[str, ...]
    chat_path: str
    messages_path: str | None
    responses_path: str | None
    prices_provider: str
    inject_stream_usage: bool

    def serves_model(self, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)

    def path_for(self, wire_name: str) -> str | None:
        """This provider's endpoint for an API (a wire format's name), or None when it has none."""
        return {"openai_chat": self.chat_path, "anthropic_messages": self.messages_path,
                "openai_responses": self.responses_path}.get(wire_name)

    def api_key(self) -> str | None:
        """The provider key injected in gateway mode, read from the environment when a call needs it."""
        return (os.environ.get(self.api_key_env) or None) if self.api_key_env else None


@dataclass(frozen=True)
class GatewayKey:
    owner: str
    key: str


@dataclass(frozen=True)
class PriceOverride:
    """A price for a model genai-prices does not know (a fine-tune, a private deployment), in USD per million tokens."""

    model: str
    provider: str | None
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None

    def matches(self, provider: str, model: str) -> bool:
        return (self.provider in (None, provider)) and fnmatch.fnmatchcase(model, self.model)


@dataclass(frozen=True)
class RateLimitRule:
    """A rate-limit policy from config, for the requests it matches (every request when it names nothing)."""

    policy: RateLimitPolicy
    user: str | None = None
    key_owner: str | None = None
    properties: tuple[tuple[str, str], ...] = ()

    def matches(self, user: str | None, key_owner: str | None, properties: dict[str, str]) -> bool:
        return (
            (self.user is None or self.user == user)
            and (self.key_owner is None or self.key_owner == key_owner)
            and all(properties.get(name) == value for name, value in self.properties)
        )


@dataclass(frozen=True)
class Limits:
    """What one call may cost llmtap before anything else is done with it (config section `limits`)."""

    max_header_count: int = 200  # more request headers than this: 431
    max_header_bytes: int = 64 * 1024  # request headers larger than this in all: 431
    max_request_bytes: int = 32 * 1024 * 1024  # a request body larger than this (decompressed too): 413
    max_logged_body_bytes: int = 1024 * 1024  # a row keeps at most this much of each body, and says it was cut
    client_idle_timeout_s: float = 30.0  # a client connection that sends no request this long is closed


@dataclass(frozen=True)
class StorageOptions:
    """How rows are kept on their way into DuckDB (config section `storage`, beside `path`)."""

    spool_fsync_interval_s: float = 0.0  # 0: never fsync (a process crash loses nothing; power loss may)
    max_memory_rows: int = 100_000  # rows held in memory while DuckDB cannot take them, before they go to disk
    fallback_spool_dir: Path | None = None  # where rows are spooled when the log's own directory cannot take them
    shutdown_wait_s: float = 15.0  # at shutdown, how long DuckDB may take the last rows before they wait in the spool


@dataclass(frozen=True)
class Config:
    source: Path | None
    proxy_listen: Address | None
    gateway_listen: Address | None
    certs_dir: Path
    storage_path: Path
    providers: tuple[ProviderConfig, ...]
    gateway_keys: tuple[GatewayKey, ...] = ()
    pricing: tuple[PriceOverride, ...] = field(default=())
    cache_path: Path = Path("data/llmtap-cache")
    cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES
    request_defaults: RequestDefaults = RequestDefaults()
    upstream_timeout_s: float = 600.0
    fallback_models: dict[str, tuple[str, ...]] = field(default_factory=dict)  # requested model -> fallback chain
    ratelimit_rules: tuple[RateLimitRule, ...] = ()
    limits: Limits = Limits()
    storage: StorageOptions = StorageOptions()
    shutdown_drain_s: float = 10.0  # on SIGTERM/SIGINT, how long calls in flight may take to finish

    def provider_named(self, name: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.name == name), None)

    def provider_for_host(self, host: str) -> ProviderConfig | None:
        host = host.lower()
        return next((p for p in self.providers if host in p.hosts), None)

    def provider_for_model(self, model: str) -> tuple[ProviderConfig, str] | None:
        """The provider that serves `model` and the model name it knows it by (`provider/model` picks explicitly,
        unless a provider's pattern names the whole string, as Groq's `openai/gpt-oss-*` does)."""
        for provider in self.providers:
            if provider.serves_model(model):
                return provider, model
        prefix, slash, rest = model.partition("/")
        if slash and (explicit := self.provider_named(prefix)):
            return explicit, rest
        return None

    def routable_models(self) -> list[str]:
        return [pattern for p in self.providers for pattern in p.models] + ["<provider>/<model>"]


def load_config(path: Path | str | None = None) -> Config:
    """Load `path` (or config/llmtap.yaml when it exists, else the built-in defaults) and validate it."""
    if path is None:
        path = os.environ.get("LLMTAP_CONFIG") or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None)
    if path is None:
        return parse_config({}, source=None)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    try:
        return parse_config(raw or {}, source=path)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def parse_config(raw: Any, source: Path | None) -> Config:
    """Validate an already-parsed YAML document into a `Config`."""
    root = _mapping(raw, "the top level", {
        "listen", "certs", "storage", "providers", "gateway", "pricing", "cache", "retries", "fallbacks", "ratelimit",
        "limits", "shutdown",
    })
    listen = _mapping(root.get("listen", {}), "listen", {"proxy", "gateway"})
    storage = _mapping(root.get("storage", {}), "storage", STORAGE_KEYS)
    limits = _mapping(root.get("limits", {}), "limits", LIMIT_KEYS)
    shutdown = _mapping(root.get("shutdown", {}), "shutdown", {"drain_s"})
    gateway = _mapping(root.get("gateway", {}), "gateway", {"keys"})
    cache = _mapping(root.get("cache", {}), "cache", {"path", "max_bytes"})
    retries = _mapping(root.get("retries", {}), "retries", {
        "enabled", "max_retries", "factor", "min_timeout_ms", "max_timeout_ms", "upstream_timeout_s"})
    fallbacks = _mapping(root.get("fallbacks", {}), "fallbacks", {"on_codes", "models"})
    ratelimit = _mapping(root.get("ratelimit", {}), "ratelimit", {"policies"})
    config = Config(
        source=source,
        proxy_listen=_address(listen.get("proxy", "127.0.0.1:8080"), "listen.proxy"),
        gateway_listen=_address(listen.get("gateway", "127.0.0.1:8787"), "listen.gateway"),
        certs_dir=Path(_string(root.get("certs", "certs"), "certs")),
        storage_path=Path(_string(storage.get("path", "data/llmtap.duckdb"), "storage.path")),
        providers=_providers(root.get("providers", {})),
        gateway_keys=_gateway_keys(gateway.get("keys", [])),
        pricing=_pricing(root.get("pricing", [])),
        cache_path=Path(_string(cache.get("path", "data/llmtap-cache"), "cache.path")),
        cache_max_bytes=_size(cache.get("max_bytes", DEFAULT_CACHE_MAX_BYTES), "cache.max_bytes"),
        request_defaults=RequestDefaults(
            retry=RetryOptions(
                enabled=_bool(retries.get("enabled", False), "retries.enabled"),
                max_retries=_number(retries.get("max_retries", 3), "retries.max_retries", 0, 20, whole=True),
                factor=_number(retries.get("factor", 2), "retries.factor", 1, 10),
                min_timeout_ms=_number(retries.get("min_timeout_ms", 1000), "retries.min_timeout_ms", 0, 600_000, whole=True),
                max_timeout_ms=_number(retries.get("max_timeout_ms", 10000), "retries.max_timeout_ms", 0, 600_000, whole=True),
            ),
            fallback_codes=_codes(fallbacks.get("on_codes", list(DEFAULT_FALLBACK_CODES)), "fallbacks.on_codes"),
        ),
        upstream_timeout_s=_number(retries.get("upstream_timeout_s", 600), "retries.upstream_timeout_s", 0.1, 86400),
        fallback_models=_fallback_models(fallbacks.get("models", {})),
        ratelimit_rules=_ratelimit_rules(ratelimit.get("policies", [])),
        limits=Limits(
            max_header_count=_number(limits.get("max_header_count", Limits.max_header_count),
                                     "limits.max_header_count", 16, 10_000, whole=True),
            max_header_bytes=_size(limits.get("max_header_bytes", Limits.max_header_bytes), "limits.max_header_bytes"),
            max_request_bytes=_size(limits.get("max_request_bytes", Limits.max_request_bytes),
                                    "limits.max_request_bytes"),
            max_logged_body_bytes=_size(limits.get("max_logged_body_bytes", Limits.max_logged_body_bytes),
                                        "limits.max_logged_body_bytes"),
            client_idle_timeout_s=_number(limits.get("client_idle_timeout_s", Limits.client_idle_timeout_s),
                                          "limits.client_idle_timeout_s", 1, 3600),
        ),
        storage=StorageOptions(
            spool_fsync_interval_s=_number(storage.get("spool_fsync_interval_s", 0), "storage.spool_fsync_interval_s",
                                           0, 3600),
            max_memory_rows=_number(storage.get("max_memory_rows", StorageOptions.max_memory_rows),
                                    "storage.max_memory_rows", 100, 10_000_000, whole=True),
            fallback_spool_dir=(Path(_string(storage["fallback_spool_dir"], "storage.fallback_spool_dir"))
                                if storage.get("fallback_spool_dir") is not None else None),
            shutdown_wait_s=_number(storage.get("shutdown_wait_s", StorageOptions.shutdown_wait_s),
                                    "storage.shutdown_wait_s", 0, 3600),
        ),
        shutdown_drain_s=_number(shutdown.get("drain_s", 10), "shutdown.drain_s", 0, 600),
    )
    if config.proxy_listen is None and config.gateway_listen is None:
        raise ConfigError("listen: at least one of listen.proxy and listen.gateway must be set")
    for where, address in (("listen.gateway", config.gateway_listen), ("listen.proxy", config.proxy_listen)):
        if address is not None and not address.is_loopback and not config.gateway_keys:
            raise ConfigError(
                f"{where}: {address} is reachable from other machines, so gateway.keys must be set "
                "(anyone could use the gateway and your provider keys otherwise)"
            )
    return config


def _mapping(value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {_kind(value)}")
    for key in value:
        if key not in allowed:
            name = key if where == "the top level" else f"{where}.{key}"
            raise ConfigError(f"unknown key '{name}' (accepted here: {', '.join(sorted(allowed))})")
    return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: expected a non-empty string, got {_kind(value)}")
    return value


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a list of strings")
    return tuple(value)


def _address(value: Any, where: str) -> Address | None:
    if value is None or value is False or value == "off":
        return None
    text = str(value)
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: '{text}' is not HOST:PORT (e.g. 127.0.0.1:8080), or 'off'")
    return Address(host, int(port))


def _upstream(value: Any, where: str) -> Upstream:
    text = _string(value, where)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: '{text}' is not an http(s):// URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ConfigError(f"{where}: '{text}' has a bad port") from None
    return Upstream(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


def _path(value: Any, where: str) -> str:
    text = _string(value, where)
    if not text.startswith("/"):
        raise ConfigError(f"{where}: '{text}' must start with /")
    return text


def _providers(value: Any) -> tuple[ProviderConfig, ...]:
    user = _mapping(value, "providers", set(value) if isinstance(value, dict) else set())
    merged: dict[str, dict[str, Any]] = {name: dict(spec) for name, spec in DEFAULT_PROVIDERS.items()}
    for name, spec in user.items():
        where = f"providers.{name}"
        if spec is None or spec is False:
            merged.pop(name, None)  # `openai: off` removes a default provider
            continue
        merged[name] = {**merged.get(name, {}), **_mapping(spec, where, PROVIDER_KEYS)}
    providers = []
    for name, spec in merged.items():
        where = f"providers.{name}"
        if "upstream" not in spec:
            raise ConfigError(f"{where}.upstream: required for a provider llmtap has no default for")
        upstream = _upstream(spec["upstream"], f"{where}.upstream")
        providers.append(
            ProviderConfig(
                name=name,
                hosts=tuple(h.lower() for h in _string_list(spec.get("hosts", []), f"{where}.hosts")),
                upstream=upstream,
                api_key_env=_string(spec["api_key_env"], f"{where}.api_key_env") if spec.get("api_key_env") else None,
                models=_string_list(spec.get("models", []), f"{where}.models"),
                chat_path=_path(spec.get("chat_path", "/v1/chat/completions"), f"{where}.chat_path"),
                messages_path=_path(spec["messages_path"], f"{where}.messages_path") if spec.get("messages_path") else None,
                responses_path=(
                    _path(spec["responses_path"], f"{where}.responses_path") if spec.get("responses_path") else None
                ),
                prices_provider=_string(spec.get("prices_provider", name), f"{where}.prices_provider"),
                inject_stream_usage=_bool(spec.get("inject_stream_usage", True), f"{where}.inject_stream_usage"),
            )
        )
    return tuple(providers)


def _size(value: Any, where: str) -> int:
    """A byte count: a whole number, or one with a unit (KB, MB, GB; KiB, MiB, GiB)."""
    units = {"": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20, "gib": 2**30}
    match = re.fullmatch(r"\s*([0-9]+)\s*([a-z]*)\s*", str(value).lower()) if not isinstance(value, bool) else None
    if not match or match.group(2) not in units or int(match.group(1)) < 1:
        raise ConfigError(f"{where}: expected a size in bytes such as 268435456 or '256 MiB', got {value!r}")
    return int(match.group(1)) * units[match.group(2)]


def _number(value: Any, where: str, minimum: float, maximum: float, whole: bool = False) -> Any:
    kinds = (int,) if whole else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not minimum <= value <= maximum:
        kind = "a whole number" if whole else "a number"
        raise ConfigError(f"{where}: expected {kind} from {minimum:g} to {maximum:g}, got {value!r}")
    return value


def _codes(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not all(isinstance(c, int) and 100 <= c <= 599 for c in value):
        raise ConfigError(f"{where}: expected a list of HTTP status codes, e.g. [429, 500, 503]")
    return tuple(value)


def _fallback_models(value: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict):
        raise ConfigError("fallbacks.models: expected a mapping of model -> list of fallback models")
    return {str(model): _string_list(chain, f"fallbacks.models.{model}") for model, chain in value.items()}


def _ratelimit_rules(value: Any) -> tuple[RateLimitRule, ...]:
    if not isinstance(value, list):
        raise ConfigError("ratelimit.policies: expected a list of {policy, user?, key_owner?, properties?}")
    rules = []
    for i, item in enumerate(value):
        where = f"ratelimit.policies[{i}]"
        entry = _mapping({"policy": item} if isinstance(item, str) else item, where,
                         {"policy", "user", "key_owner", "properties"})
        text = _string(entry.get("policy"), f"{where}.policy")
        try:
            policy = parse_ratelimit_policy(text)
        except ValueError:
            raise ConfigError(f"{where}.policy: '{text}' is not [quota];w=[seconds];u=[request|cents];s=[user|<property>]") from None
        properties = entry.get("properties", {})
        if not isinstance(properties, dict):
            raise ConfigError(f"{where}.properties: expected a mapping of property name -> value")
        rules.append(RateLimitRule(
            policy=policy,
            user=_string(entry["user"], f"{where}.user") if "user" in entry else None,
            key_owner=_string(entry["key_owner"], f"{where}.key_owner") if "key_owner" in entry else None,
            properties=tuple((str(k).lower(), str(v)) for k, v in properties.items()),  # stored lower-cased
        ))
    return tuple(rules)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def _gateway_keys(value: Any) -> tuple[GatewayKey, ...]:
    if not isinstance(value, list):
        raise ConfigError("gateway.keys: expected a list of {owner, key} or {owner, key_env}")
    keys = []
    for i, item in enumerate(value):
        where = f"gateway.keys[{i}]"
        entry = _mapping(item, where, {"owner", "key", "key_env"})
        owner = _string(entry.get("owner"), f"{where}.owner")
        if "key_env" in entry:
            env = _string(entry["key_env"], f"{where}.key_env")
            key = os.environ.get(env)
            if not key:
                raise ConfigError(f"{where}.key_env: environment variable {env} is not set")
        else:
            key = _string(entry.get("key"), f"{where}.key")
        keys.append(GatewayKey(owner, key))
    return tuple(keys)


def _pricing(value: Any) -> tuple[PriceOverride, ...]:
    if not isinstance(value, list):
        raise ConfigError("pricing: expected a list of {model, input_per_mtok, output_per_mtok}")
    overrides = []
    for i, item in enumerate(value):
        where = f"pricing[{i}]"
        entry = _mapping(item, where, PRICE_KEYS)
        overrides.append(
            PriceOverride(
                model=_string(entry.get("model"), f"{where}.model"),
                provider=_string(entry["provider"], f"{where}.provider") if "provider" in entry else None,
                input_per_mtok=_price(entry.get("input_per_mtok"), f"{where}.input_per_mtok"),
                output_per_mtok=_price(entry.get("output_per_mtok"), f"{where}.output_per_mtok"),
                cached_input_per_mtok=(
                    _price(entry["cached_input_per_mtok"], f"{where}.cached_input_per_mtok")
                    if "cached_input_per_mtok" in entry
                    else None
                ),
            )
        )
    return tuple(overrides)


def _price(value: Any, where: str) -> Decimal:
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        price = Decimal(-1)
    if value is None or isinstance(value, bool) or not price.is_finite() or price < 0:
        raise ConfigError(f"{where}: expected a price in USD per million tokens (a number >= 0), got {value!r}")
    return price
