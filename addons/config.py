"""llmtap's configuration: one YAML file, loaded and validated once into typed objects.

Every key is optional. The `_File` schema below (pydantic models: strict types, unknown keys refused) is the whole
contract of the file, with its defaults; the built-in providers are packaged data (providers.yaml) in the same
form as the file's `providers`. Relative paths (`certs`, `storage.path`, `storage.fallback_spool_dir`, `cache.path`)
resolve against the directory of the file that names them, so a config means the same files from any working
directory; the built-in defaults' resolve against the per-user data directory. A bad file raises `ConfigError`
with one line that names the key and what is accepted. Environment variables named by the file (provider and gateway
keys) are read here, at load.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any
from urllib.parse import quote, unquote_plus, urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    field_validator,
    model_validator,
)

from .alerts.rules import (
    ACTIONS,
    BUDGET_METRICS,
    METRICS,
    PROPERTY,
    SCOPES,
    WHERE_KEYS,
    AlertRule,
    Channel,
    Email,
    Slack,
    Smtp,
    Webhook,
    parse_window,
)
from .alerts.rules import Window as AlertWindow
from .config_errors import first_error_line
from .locations import user_data_dir
from .options import DEFAULT_FALLBACK_CODES, RequestDefaults, RetryOptions
from .ratelimit_policy import POLICY_FORM, RateLimitPolicy, parse_ratelimit_policy

# The names of wire.FORMATS (a test pins them), written out so that reading a config (every `llmtap` command does)
# does not import the formats, which bring mitmproxy and genai-prices: a report would start ~0.5 s later.
WIRE_FORMAT_NAMES = (
    "openai_chat", "anthropic_messages", "openai_responses", "openai_embeddings", "openai_completions",
    "gemini_generate",
)
DEFAULT_CHAT_PATH = "/v1/chat/completions"  # a provider's OpenAI-compatible endpoint when its entry names none
# The keys a provider's endpoints had before `paths`; a user's file may still use them.
OLD_PATH_KEYS = {
    "chat_path": "openai_chat", "messages_path": "anthropic_messages", "responses_path": "openai_responses",
}
# Headers a provider may read its key from instead of its API's own (`auth_header`): Azure's `api-key` for OpenAI's
# API. Each is among credentials.CLIENT_KEY_HEADERS, so a key in it is never stored.
AUTH_HEADERS = ("api-key",)


class ConfigError(ValueError):
    """A configuration problem, phrased as the one line a user needs to fix it."""


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """`http://host:port/`, an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

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
    paths: Mapping[str, str] = field(hash=False)  # wire format name -> endpoint under upstream (read-only)
    prices_provider: str
    inject_stream_usage: bool
    free: bool = False  # calls cost 0 by design (a self-hosted model server): price_source 'free', tokens counted
    # The key injected in gateway mode, read from `api_key_env` when the config loads; never shown in a repr or log.
    api_key: str | None = field(default=None, repr=False)
    auth_header: str | None = None  # the header the gateway puts the key in; None: its API's own (a bearer token)

    def serves_model(self, model: str) -> bool:
        """Whether a pattern of `models` names `model`. A model id with a vendor path (`deepseek-ai/DeepSeek-V3`,
        Together's) is named only by a pattern with a `/`: `deepseek-*` is DeepSeek's own models, not every id that
        starts so."""
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models
                   if "/" in pattern or "/" not in model)

    def serves_host(self, host: str) -> bool:
        """Whether `host` (lower-cased) is one of `hosts`, where `*.` stands for any one name before the rest
        (`*.openai.azure.com`: each Azure resource)."""
        return any(host == pattern or _wildcard_host_match(pattern, host) for pattern in self.hosts)

    def host_for(self, client_host: str) -> str:
        """The host a proxy-way call to `client_host` goes to: the upstream's, unless the client's host and the
        upstream's are both hosts of one wildcard entry (`*.openai.azure.com`: each Azure resource its own endpoint,
        and its own key's owner), when it is the client's. The upstream's scheme, port and path prefix apply
        either way."""
        upstream_host, client_host = self.upstream.host.lower(), client_host.lower()
        if any(_wildcard_host_match(pattern, upstream_host) and _wildcard_host_match(pattern, client_host)
               for pattern in self.hosts):
            return client_host
        return upstream_host

    def path_for(self, wire_name: str) -> str | None:
        """This provider's endpoint for an API (a wire format's name), or None when it has none. A `{model}` in it
        stands for the model a call asks for (`fill_model`): Gemini's native API names the model in the path, and an
        Azure deployment's path its deployment."""
        return self.paths.get(wire_name)


MODEL_PLACEHOLDER = "{model}"


def fill_model(path: str, model: str) -> str:
    """A provider endpoint (`ProviderConfig.path_for`) for a call to `model`: its `{model}`, if any, replaced by the
    model's name, escaped as one path segment. Raises ValueError for a model that would fill a whole segment that is
    empty, `.` or `..`: a server resolves those, so the client's model would choose another endpoint (with llmtap's
    key)."""
    if MODEL_PLACEHOLDER not in path:
        return path
    segment = quote(model, safe="")
    segments = path.partition("?")[0].split("/")
    if any(s.replace(MODEL_PLACEHOLDER, segment) in ("", ".", "..") for s in segments if MODEL_PLACEHOLDER in s):
        raise ValueError(f"model {model!r} would make the endpoint's path segment {segment!r}, which a server "
                         "resolves to another endpoint")
    return path.replace(MODEL_PLACEHOLDER, segment)


DEPLOYMENT_ONLY_PARAMS = frozenset({"api-version"})  # Azure's: it means nothing to an endpoint without a deployment


def with_client_query(upstream_path: str, client_path: str) -> str:
    """The provider's `upstream_path` with the query the client sent added. Parameters the provider's path sets
    (Azure's `api-version`) are config's: a client's parameter of the same name is left out, and so is a client's
    `api-version` at an endpoint that names no deployment (the Azure SDK's, routed to another provider)."""
    path, _, fixed = upstream_path.partition("?")
    client = client_path.partition("?")[2]
    left_out = {_param_name(pair) for pair in fixed.split("&") if pair}
    if "/deployments/" not in path:
        left_out |= DEPLOYMENT_ONLY_PARAMS
    added = [pair for pair in client.split("&") if pair and _param_name(pair) not in left_out]
    query = "&".join(([fixed] if fixed else []) + added)
    return f"{path}?{query}" if query else path


def _param_name(pair: str) -> str:
    """A query parameter's name as a server reads it (`API%2Dversion=...` is `api-version`)."""
    return unquote_plus(pair.partition("=")[0]).lower()


def _wildcard_host_match(pattern: str, host: str) -> bool:
    label, dot, rest = host.partition(".")
    return pattern.startswith("*.") and bool(dot and label) and rest == pattern[2:]


def host_regex(pattern: str) -> str:
    """A regular expression for `host:port` of a `hosts` entry (mitmproxy's --allow-hosts), `*.` as one name."""
    if pattern.startswith("*."):
        return f"^[^.:/]+\\.{re.escape(pattern[2:])}:\\d+$"
    return f"^{re.escape(pattern)}:\\d+$"


@dataclass(frozen=True)
class GatewayKey:
    owner: str
    key: str = field(repr=False)  # a secret: kept out of reprs and logs


@dataclass(frozen=True)
class PriceOverride:
    """A price for a model genai-prices does not know (a fine-tune, a private deployment), in USD per million tokens."""

    model: str
    provider: str | None
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cached_input_per_mtok: Decimal | None

    def matches(self, model: str, prices_provider: str | None, provider_name: str | None = None) -> bool:
        """Whether this entry prices `model` answered by a provider known by `prices_provider` (its genai-prices id)
        and `provider_name` (its name in config)."""
        return (self.provider is None or self.names_provider(prices_provider, provider_name)) \
            and fnmatch.fnmatchcase(model, self.model)

    def names_provider(self, prices_provider: str | None, provider_name: str | None) -> bool:
        """Whether this entry's `provider` is that provider: README writes entries with llmtap's provider name
        (`xai`, `vllm`), genai-prices calls some providers otherwise (`x-ai`), and either is meant."""
        return self.provider is not None and self.provider in (prices_provider, provider_name)


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


# --- Values the file writes as text, parsed into the types above (ValueError says what is accepted) ---

def _address(value: Any) -> Address | None:
    if value is None or value is False or value in ("off", ""):
        return None
    text = str(value)
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{text}' is not HOST:PORT (e.g. 127.0.0.1:8080), or 'off'")
    return Address(host, int(port))


def _upstream(value: Any) -> Upstream:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s):// URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"'{value}' has a bad port") from None
    return Upstream(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


PRICE_FORM = "a price in USD per million tokens (a number >= 0)"


def _price(value: Any) -> Decimal:
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        price = Decimal(-1)
    if value is None or isinstance(value, bool) or not price.is_finite() or price < 0:
        raise ValueError(f"expected {PRICE_FORM}, got {value!r}")
    return price


def _policy(value: Any) -> RateLimitPolicy:
    try:
        return parse_ratelimit_policy(value)
    except (ValueError, TypeError):
        raise ValueError(f"{value!r} is not {POLICY_FORM}") from None


def _wire_format_name(value: str) -> str:
    if value not in WIRE_FORMAT_NAMES:
        raise ValueError(f"'{value}' names no wire format (accepted here: {', '.join(sorted(WIRE_FORMAT_NAMES))})")
    return value


def _auth_header(value: Any) -> str:
    if value not in AUTH_HEADERS:
        raise ValueError(f"expected a header a provider reads its key from ({' | '.join(AUTH_HEADERS)}; "
                         f"leave it out for its API's own), got {value!r}")
    return value


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value  # `models: gpt-*` means a list of one


def _as_text(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) else value  # YAML reads `tier: 1` as a number


def _as_path(value: Any) -> Any:
    return Path(value) if isinstance(value, str) and value.strip() else value


Text = Annotated[str, Field(pattern=r"\S", description="a non-empty string")]
Names = Annotated[list[Text], BeforeValidator(_one_or_many)]
Scalar = Annotated[str, BeforeValidator(_as_text)]
Location = Annotated[Path, BeforeValidator(_as_path), Field(description="a path (a non-empty string)")]
EndpointPath = Annotated[str, Field(pattern=r"^/", description="a path that starts with /")]
HostName = Annotated[str, Field(pattern=r"^(\*\.)?[A-Za-z0-9_.-]+$",
                                description="a host name, or *.domain for every host of a domain")]
WireFormatName = Annotated[str, PlainValidator(_wire_format_name)]
KeyHeader = Annotated[str, PlainValidator(_auth_header)]
ByteCount = Annotated[ByteSize, Field(ge=1, description="a size in bytes such as 268435456 or '256 MiB'")]
ListenAddress = Annotated[Address | None, PlainValidator(_address)]
UpstreamURL = Annotated[Upstream, PlainValidator(_upstream)]
Price = Annotated[Decimal, PlainValidator(_price), Field(description=PRICE_FORM)]
Policy = Annotated[RateLimitPolicy, PlainValidator(_policy), Field(description=f"a policy {POLICY_FORM}")]


class _Section(BaseModel):
    """A mapping in the file: strict types (no "3" for 3, no "yes" for true), unknown keys refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Limits(_Section):
    """What one call may cost llmtap before anything else is done with it (config section `limits`)."""

    # More request headers than this, or headers larger than this in all: 431.
    max_header_count: Annotated[int, Field(ge=16, le=10_000)] = 200
    max_header_bytes: ByteCount = ByteSize(64 * 1024)
    # A request body larger than this (decompressed too): 413.
    max_request_bytes: ByteCount = ByteSize(32 * 1024 * 1024)
    # A row keeps at most this much of each body, and says it was cut.
    max_logged_body_bytes: ByteCount = ByteSize(1024 * 1024)
    # A client connection that sends no request this long is closed.
    client_idle_timeout_s: Annotated[float, Field(ge=1, le=3600)] = 30.0


class StorageOptions(_Section):
    """How rows are kept on their way into DuckDB (config section `storage`, beside `path`)."""

    # 0: never fsync (a process crash loses nothing; power loss may).
    spool_fsync_interval_s: Annotated[float, Field(ge=0, le=3600)] = 0.0
    # Rows held in memory while DuckDB cannot take them, before they go to disk.
    max_memory_rows: Annotated[int, Field(ge=100, le=10_000_000)] = 100_000
    # Where rows are spooled when the log's own directory cannot take them.
    fallback_spool_dir: Location | None = None
    # At shutdown, how long DuckDB may take the last rows before they wait in the spool.
    shutdown_wait_s: Annotated[float, Field(ge=0, le=3600)] = 15.0


class _Listen(_Section):
    proxy: ListenAddress = Address("127.0.0.1", 8080)
    gateway: ListenAddress = Address("127.0.0.1", 8787)
    dashboard: ListenAddress = Address("127.0.0.1", 8790)


class _Storage(StorageOptions):
    path: Location = Path("data/llmtap.duckdb")


class _Provider(_Section):
    """One entry of `providers`. Every key is optional here: an entry is merged over the built-in one of its name."""

    hosts: Annotated[list[HostName], BeforeValidator(_one_or_many)] | None = None
    upstream: UpstreamURL | None = None
    api_key_env: str | None = None  # "" or None: no key is injected
    models: Names | None = None
    paths: dict[WireFormatName, EndpointPath | None] | None = None  # None drops a built-in endpoint
    chat_path: EndpointPath | None = None
    messages_path: EndpointPath | None = None
    responses_path: EndpointPath | None = None
    prices_provider: Text | None = None
    inject_stream_usage: bool | None = None
    free: bool | None = None  # its calls cost 0 by design (a local model server)
    auth_header: KeyHeader | None = None  # default: the API's own (OpenAI's bearer token, Anthropic's x-api-key)

    def given(self) -> dict[str, Any]:
        """The keys this entry sets, with the old `chat_path`-style keys folded into `paths`."""
        given = {name: getattr(self, name) for name in self.model_fields_set if name not in OLD_PATH_KEYS}
        given["paths"] = dict(self.paths or {}) | {
            wire: getattr(self, key) for key, wire in OLD_PATH_KEYS.items() if key in self.model_fields_set
        }
        return given


class _GatewayKey(_Section):
    owner: Text
    key: Text | None = None
    key_env: Text | None = None

    @model_validator(mode="after")
    def _has_a_key(self) -> _GatewayKey:
        if self.key is None and self.key_env is None:
            raise ValueError("expected {owner, key} or {owner, key_env}, got no key")
        return self


class _Gateway(_Section):
    keys: Annotated[list[_GatewayKey], Field(description="a list of {owner, key} or {owner, key_env}")] = []


class _PriceOverride(_Section):
    model: Text
    provider: Text | None = None
    input_per_mtok: Price
    output_per_mtok: Price
    cached_input_per_mtok: Price | None = None


class _Cache(_Section):
    path: Location = Path("data/llmtap-cache")
    max_bytes: ByteCount = ByteSize(256 * 1024 * 1024)


class _Retries(_Section):
    enabled: bool = RetryOptions.enabled
    max_retries: Annotated[int, Field(ge=0, le=20)] = RetryOptions.max_retries
    factor: Annotated[float, Field(ge=1, le=10)] = RetryOptions.factor
    min_timeout_ms: Annotated[int, Field(ge=0, le=600_000)] = RetryOptions.min_timeout_ms
    max_timeout_ms: Annotated[int, Field(ge=0, le=600_000)] = RetryOptions.max_timeout_ms
    upstream_timeout_s: Annotated[float, Field(ge=0.1, le=86400)] = 600.0


class _Fallbacks(_Section):
    on_codes: Annotated[
        list[Annotated[int, Field(ge=100, le=599)]],
        Field(description="a list of HTTP status codes, e.g. [429, 500, 503]"),
    ] = list(DEFAULT_FALLBACK_CODES)
    models: Annotated[dict[Scalar, Names], Field(description="a mapping of model -> list of fallback models")] = {}


class _RateLimitRule(_Section):
    policy: Policy
    user: Text | None = None
    key_owner: Text | None = None
    properties: Annotated[dict[Scalar, Scalar], Field(description="a mapping of property name -> value")] = {}

    @model_validator(mode="before")
    @classmethod
    def _policy_alone(cls, value: Any) -> Any:
        return {"policy": value} if isinstance(value, str) else value  # a bare policy string applies to every call


class _RateLimit(_Section):
    policies: Annotated[
        list[_RateLimitRule], Field(description="a list of policies, or of {policy, user?, key_owner?, properties?}")
    ] = []


def _choice(accepted: tuple[str, ...], what: str):
    def check(value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in accepted:
            raise ValueError(f"expected {what} ({' | '.join(accepted)}), got {value!r}")
        return value.strip().lower()
    return check


def _alert_window(value: Any) -> AlertWindow:
    return parse_window(value if isinstance(value, str) else str(value))


def _property_or(accepted: tuple[str, ...], what: str):
    def check(value: Any) -> str:
        text = value.strip().lower() if isinstance(value, str) else ""
        if text in accepted or (text.startswith(PROPERTY) and text[len(PROPERTY):].strip()):
            return PROPERTY + text[len(PROPERTY):].strip() if text.startswith(PROPERTY) else text
        raise ValueError(f"expected {what} ({' | '.join(accepted)} | property:<Name>), got {value!r}")
    return check


def _http_url(value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http(s):// URL, got {value!r}")
    return value


def _addresses(value: Any) -> Any:
    if isinstance(value, str):
        return {"to": [value]}  # `email: ops@example.com`
    if isinstance(value, list):
        return {"to": value}
    if isinstance(value, dict) and isinstance(value.get("to"), str):
        return {**value, "to": [value["to"]]}
    return value


Metric = Annotated[str, PlainValidator(_choice(METRICS, "a metric"))]
Action = Annotated[str, PlainValidator(_choice(ACTIONS, "an action"))]
AlertScope = Annotated[str, PlainValidator(_property_or(SCOPES, "a scope"))]
WhereKey = Annotated[str, PlainValidator(_property_or(WHERE_KEYS, "a filter"))]
Window = Annotated[AlertWindow, PlainValidator(_alert_window)]
HttpURL = Annotated[str, PlainValidator(_http_url)]
MailAddress = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$", description="an email address")]


class _EmailTo(_Section):
    to: Annotated[list[MailAddress], Field(min_length=1, description="an address or a list of addresses")]


class _Channel(_Section):
    """One of a rule's channels: exactly one of `webhook: URL`, `slack: URL`, `email: {to: ...}`."""

    webhook: HttpURL | None = None
    slack: HttpURL | None = None
    email: Annotated[_EmailTo | None, BeforeValidator(_addresses)] = None

    @model_validator(mode="after")
    def _one_kind(self) -> _Channel:
        if len(self.model_fields_set) != 1:
            raise ValueError("expected one of {webhook: URL}, {slack: URL}, {email: {to: ADDRESS}} per channel")
        return self


class _AlertRule(_Section):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$",
                               description="a name of letters, digits and - _ . : (e.g. daily-spend)")]
    metric: Metric
    window: Window
    threshold: Annotated[float, Field(ge=0, allow_inf_nan=False, description="a number >= 0")]
    scope: AlertScope = "all"
    where: Annotated[dict[WhereKey, Names], Field(description="a mapping such as {user: carol, model: gpt-4o}")] = {}
    channels: Annotated[list[_Channel], Field(description="a list of {webhook: URL}, {slack: URL}, {email: {to}}")] = []
    action: Action = "notify"
    min_requests: Annotated[int, Field(ge=1, le=1_000_000)] = 1


class _Smtp(_Section):
    """The mail server of `email` channels. The password (and the user, if wanted) come from environment variables."""

    host: Text
    port: Annotated[int, Field(ge=1, le=65535)] | None = None  # default: 465 with ssl, 587 with starttls, else 25
    sender: Annotated[MailAddress, Field(alias="from")]
    starttls: bool = False
    ssl: bool = False
    user: Text | None = None
    user_env: Text | None = None
    password_env: Text | None = None
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0


class Alerting(_Section):
    """How the alert engine runs (config section `alerting`)."""

    check_interval_s: Annotated[float, Field(ge=0.1, le=3600)] = 10.0  # how often rules are evaluated over the log
    delivery_attempts: Annotated[int, Field(ge=1, le=20)] = 4  # tries per channel before an alert counts as failed
    delivery_backoff_s: Annotated[float, Field(ge=0, le=3600)] = 2.0  # first wait between tries, doubling
    delivery_timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0  # one try's limit


class _Shutdown(_Section):
    # On SIGTERM/SIGINT, how long calls in flight may take to finish.
    drain_s: Annotated[float, Field(ge=0, le=600)] = 10.0


class _File(_Section):
    """The whole config file."""

    listen: _Listen = _Listen()
    certs: Location = Path("certs")
    storage: _Storage = _Storage()
    providers: dict[str, _Provider | None] = {}  # None (`name: off`) removes a built-in provider
    gateway: _Gateway = _Gateway()
    pricing: Annotated[
        list[_PriceOverride], Field(description="a list of {model, input_per_mtok, output_per_mtok}")
    ] = []
    cache: _Cache = _Cache()
    retries: _Retries = _Retries()
    fallbacks: _Fallbacks = _Fallbacks()
    ratelimit: _RateLimit = _RateLimit()
    limits: Limits = Limits()
    shutdown: _Shutdown = _Shutdown()
    # Rules are validated one by one (`_alert_rules`), so that a problem names its rule.
    alerts: Annotated[list[Any], Field(description="a list of rules {name, metric, window, threshold, ...}")] = []
    smtp: _Smtp | None = None
    alerting: Alerting = Alerting()

    @field_validator("providers", mode="before")
    @classmethod
    def _off_is_none(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {name: None if spec is False else spec for name, spec in value.items()}


@dataclass(frozen=True)
class Config:
    source: Path | None
    proxy_listen: Address | None
    gateway_listen: Address | None
    dashboard_listen: Address | None  # the web dashboard's address (None: off)
    certs_dir: Path
    storage_path: Path
    providers: tuple[ProviderConfig, ...]
    gateway_keys: tuple[GatewayKey, ...]
    pricing: tuple[PriceOverride, ...]
    cache_path: Path
    cache_max_bytes: int
    request_defaults: RequestDefaults
    upstream_timeout_s: float
    fallback_models: dict[str, tuple[str, ...]]  # requested model -> fallback chain
    ratelimit_rules: tuple[RateLimitRule, ...]
    limits: Limits
    storage: StorageOptions
    shutdown_drain_s: float  # on SIGTERM/SIGINT, how long calls in flight may take to finish
    alert_rules: tuple[AlertRule, ...] = ()
    smtp: Smtp | None = None
    alerting: Alerting = Alerting()
    providers_named: frozenset[str] = frozenset()  # providers the file's `providers` names, not only built in

    def provider_named(self, name: str) -> ProviderConfig | None:
        return next((p for p in self.providers if p.name == name), None)

    def provider_for_host(self, host: str) -> ProviderConfig | None:
        host = host.lower()
        return next((p for p in self.providers if p.serves_host(host)), None)

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
    """Load `path` (None: the built-in defaults) and validate it. Which file a command reads when it is named none
    is `locations.find_config`'s to say."""
    if path is None:
        return parse_config({}, source=None)
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as e:
        raise ConfigError(f"config file {path} cannot be read: {e.strerror}") from None
    raw = _yaml(text, str(path))
    try:
        return parse_config(raw or {}, source=path.resolve())
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def parse_config(raw: Any, source: Path | None, base_dir: Path | None = None) -> Config:
    """Validate an already-parsed YAML document into a `Config`, reading the environment variables it names. Its
    relative paths resolve against `base_dir`: by default the directory of `source`, or for no file the per-user
    data directory."""
    file = _validated(_File, raw)
    base = base_dir or (source.parent if source else user_data_dir())
    config = Config(
        source=source,
        proxy_listen=file.listen.proxy,
        gateway_listen=file.listen.gateway,
        dashboard_listen=file.listen.dashboard,
        certs_dir=_under(base, file.certs),
        storage_path=_under(base, file.storage.path),
        providers=_providers(file.providers),
        gateway_keys=tuple(_gateway_key(f"gateway.keys[{i}]", entry) for i, entry in enumerate(file.gateway.keys)),
        pricing=tuple(
            PriceOverride(p.model, p.provider, p.input_per_mtok, p.output_per_mtok, p.cached_input_per_mtok)
            for p in file.pricing
        ),
        cache_path=_under(base, file.cache.path),
        cache_max_bytes=int(file.cache.max_bytes),
        request_defaults=RequestDefaults(
            retry=RetryOptions(**file.retries.model_dump(exclude={"upstream_timeout_s"})),
            fallback_codes=tuple(file.fallbacks.on_codes),
        ),
        upstream_timeout_s=file.retries.upstream_timeout_s,
        fallback_models={model: tuple(chain) for model, chain in file.fallbacks.models.items()},
        ratelimit_rules=tuple(
            RateLimitRule(rule.policy, rule.user, rule.key_owner,
                          tuple((name.lower(), value) for name, value in rule.properties.items()))  # stored lower-cased
            for rule in file.ratelimit.policies
        ),
        limits=file.limits,
        storage=_storage_options(file.storage, base),
        shutdown_drain_s=file.shutdown.drain_s,
        providers_named=frozenset(name for name, entry in file.providers.items() if entry is not None),
        alert_rules=_alert_rules(file.alerts, file.smtp is not None),
        smtp=_smtp(file.smtp) if file.smtp else None,
        alerting=file.alerting,
    )
    if config.proxy_listen is None and config.gateway_listen is None:
        raise ConfigError("listen: at least one of listen.proxy and listen.gateway must be set")
    for where, address, what in (
            ("listen.gateway", config.gateway_listen, "the gateway and your provider keys"),
            ("listen.proxy", config.proxy_listen, "the gateway and your provider keys"),
            ("listen.dashboard", config.dashboard_listen, "the dashboard and read every logged prompt")):
        if address is not None and not address.is_loopback and not config.gateway_keys:
            raise ConfigError(
                f"{where}: {address} is reachable from other machines, so gateway.keys must be set "
                f"(anyone could use {what} otherwise)"
            )
    return config


def _under(base: Path, path: Path) -> Path:
    """`path` as an absolute path, a relative one taken from `base` (`../data` from config/ is data/ beside it)."""
    return Path(os.path.normpath(base / path))  # base is resolved already, so `..` means its real parent


def _storage_options(storage: _Storage, base: Path) -> StorageOptions:
    options = storage.model_dump(exclude={"path"})
    if options["fallback_spool_dir"] is not None:
        options["fallback_spool_dir"] = _under(base, options["fallback_spool_dir"])
    return StorageOptions(**options)


def _yaml(text: str, name: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{name}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None


def _builtin_providers() -> dict[str, _Provider | None]:
    """The packaged provider table (providers.yaml), checked by the same schema as a user's `providers`."""
    text = resources.files(__package__).joinpath("providers.yaml").read_text(encoding="utf-8")
    return _validated(_File, {"providers": _yaml(text, "providers.yaml")}).providers


def _providers(user: dict[str, _Provider | None]) -> tuple[ProviderConfig, ...]:
    merged: dict[str, dict[str, Any]] = {}
    for name, entry in _builtin_providers().items():
        merged[name] = entry.given() if entry else {}
    for name, entry in user.items():
        if entry is None:
            merged.pop(name, None)  # `openai: off` removes a built-in provider
            continue
        given = entry.given()
        before = merged.get(name, {})
        merged[name] = before | given | {"paths": before.get("paths", {}) | given["paths"]}
    return tuple(_provider(name, given) for name, given in merged.items())


def _provider(name: str, given: dict[str, Any]) -> ProviderConfig:
    if given.get("upstream") is None:
        raise ConfigError(f"providers.{name}.upstream: required for a provider llmtap has no default for")
    api_key_env = given.get("api_key_env") or None
    paths = {"openai_chat": DEFAULT_CHAT_PATH} | given["paths"]
    return ProviderConfig(
        name=name,
        hosts=tuple(host.lower() for host in given.get("hosts") or ()),
        upstream=given["upstream"],
        api_key_env=api_key_env,
        models=tuple(given.get("models") or ()),
        paths=MappingProxyType({wire: path for wire, path in paths.items() if path is not None}),
        prices_provider=given.get("prices_provider") or name,
        inject_stream_usage=given.get("inject_stream_usage") is not False,
        free=given.get("free") is True,
        api_key=(os.environ.get(api_key_env) or None) if api_key_env else None,
        auth_header=given.get("auth_header"),
    )


def _gateway_key(where: str, entry: _GatewayKey) -> GatewayKey:
    if entry.key_env is None:
        assert entry.key is not None  # the schema asks for one of the two
        return GatewayKey(entry.owner, entry.key)
    if not (key := os.environ.get(entry.key_env)):
        raise ConfigError(f"{where}.key_env: environment variable {entry.key_env} is not set")
    return GatewayKey(entry.owner, key)


def _alert_rules(entries: list[Any], has_smtp: bool) -> tuple[AlertRule, ...]:
    """Each entry of `alerts` as an AlertRule; a problem names the rule (its place and name) and the key."""
    rules: list[AlertRule] = []
    for index, entry in enumerate(entries):
        name = entry.get("name") if isinstance(entry, dict) else None
        where = f"alerts[{index}]" + (f" (rule '{name}')" if isinstance(name, str) and name else "")
        try:
            rule = _AlertRule.model_validate(entry)
        except ValidationError as e:
            raise ConfigError(f"{where}: {first_error_line(_AlertRule, e)}") from None
        if any(r.name == rule.name for r in rules):
            raise ConfigError(f"{where}: name: another rule is named '{rule.name}' (names pick a rule in commands)")
        if problem := _rule_problem(rule, has_smtp):
            raise ConfigError(f"{where}: {problem}")
        rules.append(AlertRule(
            name=rule.name, metric=rule.metric, window=rule.window, threshold=rule.threshold, scope=rule.scope,
            where=tuple((key, tuple(values)) for key, values in rule.where.items()),
            channels=tuple(_channel(c) for c in rule.channels),
            action=rule.action, min_requests=rule.min_requests,
        ))
    return tuple(rules)


def _channel(entry: _Channel) -> Channel:
    if entry.webhook:
        return Webhook(entry.webhook)
    if entry.slack:
        return Slack(entry.slack)
    assert entry.email is not None  # the schema asks for exactly one kind
    return Email(tuple(entry.email.to))


def _rule_problem(rule: _AlertRule, has_smtp: bool) -> str | None:
    """What a rule's keys say that each key alone does not: `key: problem`, or None."""
    if rule.action == "block" and rule.metric not in BUDGET_METRICS:
        return f"action: block is for {' and '.join(BUDGET_METRICS)} budgets, not {rule.metric}"
    if rule.action == "block" and rule.metric == "requests" and not float(rule.threshold).is_integer():
        # The gate refuses the call that would pass it (2.5 lets 2 through) while the views judge the budget spent
        # only at 2.5: a budget of whole calls says the same everywhere.
        return f"threshold: a requests budget counts whole calls, got {rule.threshold:g}"
    if rule.metric == "error_rate" and rule.threshold > 100:
        return f"threshold: error_rate's threshold is a percentage (0-100), got {rule.threshold:g}"
    if rule.action == "notify" and not rule.channels:
        return "channels: a notify rule needs channels (a list of {webhook: URL}, {slack: URL}, {email: {to}})"
    if not has_smtp and any(c.email for c in rule.channels):
        return "channels: an email channel needs an `smtp` section (host, from, ...)"
    return None


def _smtp(entry: _Smtp) -> Smtp:
    def env(key: str, variable: str | None) -> str | None:
        if variable is None:
            return None
        if not (value := os.environ.get(variable)):
            raise ConfigError(f"smtp.{key}: environment variable {variable} is not set")
        return value

    return Smtp(
        host=entry.host, port=entry.port or (465 if entry.ssl else 587 if entry.starttls else 25),
        sender=entry.sender, starttls=entry.starttls, ssl=entry.ssl,
        user=env("user_env", entry.user_env) or entry.user, password=env("password_env", entry.password_env),
        timeout_s=entry.timeout_s,
    )


def _validated[M: BaseModel](model: type[M], raw: Any) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(first_error_line(model, e)) from None
