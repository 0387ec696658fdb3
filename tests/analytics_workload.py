"""One realistic workload through a real gateway, the ground truth every analytics command's tests read.

`drive_workload` makes real calls with the official `openai` and `anthropic` SDKs (their own retries off, so the log
holds exactly what was sent), through both ways in: the gateway way in (base_url, a gateway key as the SDK's api_key)
and the proxy way in (the SDK's default https://api.openai.com / api.anthropic.com, through llmtap's proxy with its
CA). It takes about 1.5 s. What it covers, by role (`Workload.ids[role]` is the call's request id):

    alice   research session "research-1" (gateway way in, key owner "research-team"):
            alice_research   /research                  gpt-4o-mini        step plan
            alice_search     /research/search           gpt-4o-mini        step search
            alice_fetch      /research/search/fetch     claude-haiku-4-5   step fetch
            alice_summarize  /research/summarize        claude-sonnet-4-6  step summarize
            alice_stream     no session, streamed       gpt-4o-mini
    bob     research session "research-2" (proxy way in, no key owner):
            bob_research     /research                  gpt-4o-mini        step plan
            bob_search       /research/search           claude-haiku-4-5   step search
            (gateway way in, key owner "research-team"):
            bob_unpriced     openai/llmtap-workload-unpriced-model, a model genai-prices does not know:
                             cost_usd NULL, price_error set
            bob_near_limit   the provider says 3 of 10000 requests are left: a `near_limit` throttling event
    carol   (gateway way in, key owner "ops-team"), property workflow support-bot:
            carol_error      the provider answers 500, not retried: the client sees 500
            carol_cache_miss, carol_cache_hit   the same cached request twice: MISS then HIT
            carol_retried    a 429 (retry-after 0.05 s) that Helicone-Retry-Enabled retries to a 200
            carol_429        a 429 (retry-after 1 s) not retried: the client sees 429
    nobody  anon_gateway     claude-haiku-4-5, gateway way in, key owner "ops-team"
            anon_proxy       gpt-4o-mini, proxy way in
            anon_stream      claude-haiku-4-5 streamed, proxy way in

Properties are sent in mixed case (`Helicone-Property-Workflow`, `helicone-property-STEP`); the log stores them under
`workflow` and `step`. Every answer from the provider carries its rate-limit headers.

`Workload.sent[role]` is each call as sent (user, way in, provider, model asked for, key owner, the status the client
saw, stream, session, properties as stored); tests/test_analytics_workload.py checks that the log holds exactly that.

Fixtures (tests/conftest.py loads this module as a plugin: a test module names them, no import needed):
- `analytics`: `(gateway, workload)`, the gateway running. One gateway and one workload per test module.
- `log_state`: `(gateway, workload, state)` for state "running", then "stopped": the same test while the gateway runs
  and after it stopped. It is module-scoped and parametrized in that order, and pytest orders a module's tests by a
  module-scoped fixture's parameters: it runs every `log_state` test "running", then every one "stopped", and the
  module's other tests after those (whatever their order in the file). "stopped" stops the gateway; `analytics` starts
  it again on the same log (about 2 s) for the tests that come after.
"""

from __future__ import annotations

import ssl
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
import pytest

from conftest import Gateway, MockProvider, start_gateway

RESEARCH_KEY = "gk-workload-research-0123456789"
OPS_KEY = "gk-workload-ops-0123456789"
WORKLOAD_CONFIG = {"gateway": {"keys": [{"owner": "research-team", "key": RESEARCH_KEY},
                                        {"owner": "ops-team", "key": OPS_KEY}]}}

OPENAI_MODEL = "gpt-4o-mini"
HAIKU = "claude-haiku-4-5"
SONNET = "claude-sonnet-4-6"
UNPRICED_MODEL = "llmtap-workload-unpriced-model"  # genai-prices has no price for it
UNPRICED_ROUTED = f"openai/{UNPRICED_MODEL}"  # as the client asks for it: the gateway routes it to openai
MAX_TOKENS = 64


@dataclass
class Session:
    id: str
    name: str
    user: str
    paths: dict[str, str]  # role -> Helicone-Session-Path


@dataclass(frozen=True)
class Call:
    """One call of the workload: what the client sent and the status it saw, in the log's terms."""

    role: str
    request_id: str  # the answer's helicone-id
    user: str | None
    way: str  # "gateway" or "proxy"
    provider: str  # "openai" or "anthropic"
    model: str  # as the client asked for it (the log's model_requested; `model` is what the provider answered)
    key_owner: str | None  # the gateway key's owner; None on the proxy way in
    status: int  # what the client saw
    stream: bool
    session_id: str | None
    session_path: str | None
    properties: dict[str, str]  # as the log stores them: names lower-cased


@dataclass
class Workload:
    """What `drive_workload` sent, so tests can say what they expect to find in the log."""

    sent: dict[str, Call] = field(default_factory=dict)  # role -> call, in the order made
    sessions: dict[str, Session] = field(default_factory=dict)  # session id -> session
    users: tuple[str, ...] = ("alice", "bob", "carol")
    properties: dict[str, set[str]] = field(default_factory=dict)  # stored (lower-case) name -> values sent
    models: dict[str, str] = field(default_factory=lambda: {
        "openai": OPENAI_MODEL, "haiku": HAIKU, "sonnet": SONNET, "unpriced": UNPRICED_MODEL})
    key_owners: tuple[str, ...] = ("research-team", "ops-team")

    @property
    def ids(self) -> dict[str, str]:
        """Role -> request id."""
        return {role: call.request_id for role, call in self.sent.items()}

    @property
    def calls(self) -> int:
        """Calls made, each one row in the log (a retried call is one row; the cache HIT is a row of its own)."""
        return len(self.sent)

    def calls_by_user(self) -> dict[str | None, int]:
        """Rows per user_id (None: calls sent without a user)."""
        return dict(Counter(call.user for call in self.sent.values()))


class _Driver:
    """Makes the workload's calls and notes each one under its role."""

    def __init__(self, gateway: Gateway, mock: MockProvider) -> None:
        self.mock = mock
        self.workload = Workload()
        # The proxy way in: the SDKs' own provider URLs and a client's own provider key, as an unchanged app has.
        ca = ssl.create_default_context(cafile=gateway.ca_bundle)
        self.openai_proxy = openai.OpenAI(api_key="sk-workload-client-openai", max_retries=0, http_client=(
            openai.DefaultHttpxClient(proxy=gateway.proxy_url, verify=ca, trust_env=False)))
        self.anthropic_proxy = anthropic.Anthropic(api_key="sk-ant-workload-client", max_retries=0, http_client=(
            anthropic.DefaultHttpxClient(proxy=gateway.proxy_url, verify=ca, trust_env=False)))
        self.openai_by_key = {
            key: openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0) for key in (RESEARCH_KEY, OPS_KEY)}
        self.anthropic_by_key = {
            key: anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=key, max_retries=0)
            for key in (RESEARCH_KEY, OPS_KEY)}
        owners = {RESEARCH_KEY: "research-team", OPS_KEY: "ops-team"}
        self.way_and_owner: dict[int, tuple[str, str | None]] = {
            id(self.openai_proxy): ("proxy", None), id(self.anthropic_proxy): ("proxy", None),
            **{id(c): ("gateway", owners[k]) for k, c in self.openai_by_key.items()},
            **{id(c): ("gateway", owners[k]) for k, c in self.anthropic_by_key.items()}}

    def headers(self, user: str | None, session: Session | None = None, role: str = "",
                workflow: str | None = None, step: str | None = None) -> dict[str, str]:
        headers = {}
        if user:
            headers["Helicone-User-Id"] = user
        if session:
            headers |= {"Helicone-Session-Id": session.id, "Helicone-Session-Name": session.name,
                        "Helicone-Session-Path": session.paths[role]}
        # Mixed case on purpose: the log stores property names lower-cased.
        for name, header, value in (("workflow", "Helicone-Property-Workflow", workflow),
                                    ("step", "helicone-property-STEP", step)):
            if value is not None:
                headers[header] = value
                self.workload.properties.setdefault(name, set()).add(value)
        return headers

    def note(self, role: str, client: openai.OpenAI | anthropic.Anthropic, headers: dict[str, str], model: str,
             response_headers: Any, status: int = 200, stream: bool = False) -> None:
        way, key_owner = self.way_and_owner[id(client)]
        prefix = "helicone-property-"
        self.workload.sent[role] = Call(
            role, response_headers["helicone-id"], headers.get("Helicone-User-Id"), way,
            "openai" if isinstance(client, openai.OpenAI) else "anthropic", model, key_owner, status, stream,
            headers.get("Helicone-Session-Id"), headers.get("Helicone-Session-Path"),
            {name.lower().removeprefix(prefix): value for name, value in headers.items()
             if name.lower().startswith(prefix)})

    def openai_chat(self, role: str, client: openai.OpenAI, headers: dict[str, str], model: str = OPENAI_MODEL,
                    content: str | None = None) -> None:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": content or f"workload {role}"}], extra_headers=headers)
        self.note(role, client, headers, model, raw.headers)

    def anthropic_message(self, role: str, client: anthropic.Anthropic, headers: dict[str, str],
                          model: str = HAIKU) -> None:
        raw = client.messages.with_raw_response.create(
            model=model, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": f"workload {role}"}],
            extra_headers=headers)
        self.note(role, client, headers, model, raw.headers)

    def openai_refused(self, role: str, client: openai.OpenAI, headers: dict[str, str], status: int) -> None:
        """A call whose error answer (`status`) reaches the client."""
        try:
            client.chat.completions.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": f"workload {role}"}], extra_headers=headers)
        except openai.APIStatusError as error:
            assert error.status_code == status, f"{role}: expected {status}, got {error.status_code}"
            self.note(role, client, headers, OPENAI_MODEL, error.response.headers, status=status)
        else:
            raise AssertionError(f"{role}: expected the client to see {status}")


def drive_workload(gateway: Gateway, mock: MockProvider) -> Workload:
    """Make the workload's calls through `gateway` (started with `WORKLOAD_CONFIG`, `mock` as both providers) and
    return once every call's row is in the log. Calls are made one after another, so the mock provider's scripted
    answers (failures, 429s, rate-limit headers) reach exactly the call they are meant for."""
    d = _Driver(gateway, mock)
    w = d.workload
    research_openai, ops_openai = d.openai_by_key[RESEARCH_KEY], d.openai_by_key[OPS_KEY]
    research_anthropic, ops_anthropic = d.anthropic_by_key[RESEARCH_KEY], d.anthropic_by_key[OPS_KEY]

    one = Session("research-1", "Research run", "alice", {
        "alice_research": "/research", "alice_search": "/research/search",
        "alice_fetch": "/research/search/fetch", "alice_summarize": "/research/summarize"})
    two = Session("research-2", "Research run", "bob", {"bob_research": "/research", "bob_search": "/research/search"})
    w.sessions = {one.id: one, two.id: two}

    def in_session(session: Session, role: str, step: str) -> dict[str, str]:
        return d.headers(session.user, session, role, workflow="research-agent", step=step)

    # alice: a research session on the gateway way in, OpenAI and Anthropic models
    d.openai_chat("alice_research", research_openai, in_session(one, "alice_research", "plan"))
    d.openai_chat("alice_search", research_openai, in_session(one, "alice_search", "search"))
    d.anthropic_message("alice_fetch", research_anthropic, in_session(one, "alice_fetch", "fetch"))
    d.anthropic_message("alice_summarize", research_anthropic, in_session(one, "alice_summarize", "summarize"),
                        model=SONNET)
    alice = d.headers("alice")
    stream = research_openai.chat.completions.create(
        model=OPENAI_MODEL, stream=True, messages=[{"role": "user", "content": "workload alice_stream"}],
        extra_headers=alice)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "Mock reply to: workload alice_stream"
    d.note("alice_stream", research_openai, alice, OPENAI_MODEL, stream.response.headers, stream=True)

    # bob: a research session on the proxy way in; an unpriced model and a nearly spent budget on the gateway way in
    d.openai_chat("bob_research", d.openai_proxy, in_session(two, "bob_research", "plan"))
    d.anthropic_message("bob_search", d.anthropic_proxy, in_session(two, "bob_search", "search"))
    d.openai_chat("bob_unpriced", research_openai, d.headers("bob"), model=UNPRICED_ROUTED)
    mock.script({"headers": {"x-ratelimit-remaining-requests": "3"}})
    d.openai_chat("bob_near_limit", research_openai, d.headers("bob"))

    # carol: errors, the cache and 429s, on the gateway way in
    support = "support-bot"
    mock.script({"status": 500})
    d.openai_refused("carol_error", ops_openai, d.headers("carol", workflow=support), 500)
    cached = d.headers("carol", workflow=support) | {"Helicone-Cache-Enabled": "true"}
    for role in ("carol_cache_miss", "carol_cache_hit"):
        d.openai_chat(role, ops_openai, cached, content="workload carol_cache")
    mock.script({"status": 429, "headers": {"retry-after": "0.05"}})
    retried = d.headers("carol", workflow=support) | {
        "Helicone-Retry-Enabled": "true", "Helicone-Retry-Min-Timeout": "10", "Helicone-Retry-Max-Timeout": "1000"}
    d.openai_chat("carol_retried", ops_openai, retried)
    mock.script({"status": 429, "headers": {"retry-after": "1"}})
    d.openai_refused("carol_429", ops_openai, d.headers("carol", workflow=support), 429)

    # nobody: calls without a user, both ways in, one streamed
    d.anthropic_message("anon_gateway", ops_anthropic, {})
    d.openai_chat("anon_proxy", d.openai_proxy, {})
    with d.anthropic_proxy.messages.stream(
            model=HAIKU, max_tokens=MAX_TOKENS, messages=[{"role": "user", "content": "workload anon_stream"}]) as s:
        assert s.get_final_text() == "Mock reply to: workload anon_stream"
        d.note("anon_stream", d.anthropic_proxy, {}, HAIKU, s.response.headers, stream=True)

    rows = gateway.rows("list_contains(?, request_id)", [list(w.ids.values())], count=w.calls)
    assert len(rows) == w.calls, f"{w.calls - len(rows)} of the workload's calls were not logged"
    return w


def _ensure_running(gateway: Gateway) -> None:
    if gateway.process is None or gateway.process.poll() is not None:
        gateway.launch()


@pytest.fixture(scope="module")
def analytics_gateway(tmp_path_factory, mock_provider) -> Iterator[tuple[Gateway, Workload]]:
    """One gateway per test module, the workload driven through it once."""
    gateway = start_gateway(tmp_path_factory.mktemp("analytics"), mock_provider, WORKLOAD_CONFIG)
    try:
        yield gateway, drive_workload(gateway, mock_provider)
    finally:
        gateway.stop()


@pytest.fixture
def analytics(analytics_gateway) -> tuple[Gateway, Workload]:
    """`(gateway, workload)` with the gateway running (started again if a "stopped" `log_state` stopped it)."""
    _ensure_running(analytics_gateway[0])
    return analytics_gateway


@pytest.fixture(scope="module", params=["running", "stopped"])
def log_state(request, analytics_gateway) -> tuple[Gateway, Workload, str]:
    """`(gateway, workload, state)`: the same test while the gateway runs, then after it stopped (see the module's
    docstring for why every "running" test runs first)."""
    gateway, workload = analytics_gateway
    if request.param == "running":
        _ensure_running(gateway)
    else:
        assert gateway.stop() == 0
    return gateway, workload, request.param
