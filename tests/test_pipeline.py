"""The pipeline's order rules, pinned: each pair below is an addon that must see a flow before another, and why."""

from __future__ import annotations

import asyncio

import pytest
from llmtap import pipeline
from llmtap.attempts import AttemptRunner
from llmtap.budgets import Budgets
from llmtap.cache import ResponseCache
from llmtap.drain import Drain, ShutdownGate
from llmtap.exposed_proxy import ExposedProxyGuard
from llmtap.intake import Intake
from llmtap.model_list import ModelList
from llmtap.proxy_access import ProxyAccess
from llmtap.ratelimit import RateLimiter, RateLimitUsage
from llmtap.recorder import Recorder
from llmtap.refusals import RefusalSink
from llmtap.routing import Router
from llmtap.seeding import CounterSeeding
from llmtap.settings import Settings
from llmtap.streaming import StreamTap
from llmtap.upstream_failure import UpstreamFailure
from llmtap.webview import WebView
from mitmproxy import options
from mitmproxy.tools.dump import DumpMaster

BEFORE = [
    (Settings, Intake, "every addon reads the validated config Settings loads"),
    (RefusalSink, Intake, "a refused call's state is hidden while its body drains, before anything reads it"),
    (Intake, ProxyAccess, "Intake builds the call's state that the access checks read"),
    (Intake, ShutdownGate, "a call refused while stopping still gets its row, with the tags Intake read"),
    (ProxyAccess, Router, "an exposed proxy listener refuses a caller before anything is routed"),
    (ShutdownGate, ModelList, "a model listing asked for while stopping is refused like any call"),
    (ModelList, Router, "the gateway lists its models itself; Router knows no GET endpoint"),
    (ExposedProxyGuard, Router, "an exposed proxy listener forwards to provider hosts only"),
    (Router, RateLimiter, "cents policies price the call for the provider it was routed to"),
    (RateLimiter, ResponseCache, "a call over its limit is refused even when the cache could answer it"),
    (RateLimiter, Budgets, "a call over a rate limit never counts towards a budget"),
    (Budgets, ResponseCache, "a call over its budget is refused even when the cache could answer it"),
    (Recorder, CounterSeeding, "the counters are seeded from the log once Recorder has opened and migrated it"),
    (ResponseCache, AttemptRunner, "a cache hit never reaches the relay"),
    (StreamTap, AttemptRunner, "the stream tap asks for usage in the body the relay sends"),
    (AttemptRunner, Recorder, "the row counts the relay's tries"),
    (UpstreamFailure, Recorder, "an unreachable provider's row has the JSON 502 the client got"),
    (AttemptRunner, UpstreamFailure, "a call the relay sends is timed by the relay, not by mitmproxy's silence timer"),
    (Recorder, RateLimitUsage, "cents reservations settle with the cost in the call's row"),
    (Recorder, WebView, "the flow's comment is written from the row"),
    (RateLimitUsage, WebView, "WebView replaces the call's state, which the other subscribers read"),
    (AttemptRunner, WebView, "the relay shows where the answer came from before keys are masked"),
    (ResponseCache, WebView, "the cache wakes calls waiting on this one while its state is there"),
    (WebView, Drain, "a call counts as finished only once every other addon has seen it end"),
]


def _position(addons: list[object], kind: type) -> int:
    return next(i for i, addon in enumerate(addons) if type(addon) is kind)


@pytest.mark.parametrize("first, then, why", BEFORE, ids=[f"{a.__name__}<{b.__name__}" for a, b, _ in BEFORE])
def test_pipeline_order(first, then, why):
    addons = pipeline.make_addons()
    assert _position(addons, first) < _position(addons, then), why


def test_settings_is_first_and_drain_is_last():
    addons = pipeline.make_addons()
    assert type(addons[0]) is Settings and type(addons[-1]) is Drain


def test_webview_is_the_last_subscriber_of_finished_calls():
    addons = pipeline.make_addons()
    subscribers = [type(a) for a in addons if hasattr(a, "call_finished")]
    assert subscribers[-1] is WebView and {RateLimitUsage, AttemptRunner, ResponseCache} <= set(subscribers)


def test_installed_before_mitmproxys_addons_that_show_or_save_flows():
    async def installed_chain() -> tuple[list[str], list[str]]:
        master = DumpMaster(options.Options(), with_termlog=False)
        group = pipeline.install(master)
        return [type(addon).__name__ for addon in master.addons.chain], [type(part).__name__ for part in group.parts]

    chain, parts = asyncio.run(installed_chain())
    shows = [chain.index(name) for name in pipeline.SHOWS_FLOWS if name in chain]
    assert shows, "DumpMaster has addons that show or save flows"
    assert chain.count("AddonGroup") == 1 and chain.index("AddonGroup") < min(shows)
    assert parts == [type(addon).__name__ for addon in pipeline.make_addons()]
