"""llmtap's addons sit in mitmproxy's chain as one `AddonGroup`: each event visits only the parts that take it, in
order, with mitmproxy's own rules for errors, halts and bad options."""

from __future__ import annotations

import asyncio
import logging

import pytest
from llmtap.addon_group import AddonGroup
from mitmproxy import exceptions, hooks
from mitmproxy.proxy.layers.http import HttpRequestHook
from mitmproxy.test import taddons, tflow


def fire(tctx: taddons.context, event: hooks.Hook) -> None:
    """Dispatch `event` through mitmproxy's chain, as the proxy does."""
    asyncio.run(tctx.master.addons.trigger_event(event))


class Noting:
    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen

    def request(self, flow) -> None:
        self.seen.append(self.name)


class Failing:
    def request(self, flow) -> None:
        raise RuntimeError("a part with a bug")


class Halting:
    def request(self, flow) -> None:
        raise exceptions.AddonHalt()


class Waiting:
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    async def running(self) -> None:
        await asyncio.sleep(0.01)
        self.seen.append("waited")


class Starting:
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    def running(self) -> None:
        self.seen.append("started")


class Refusing:
    def configure(self, updated) -> None:
        raise exceptions.OptionsError("listen: not an address")


def test_a_part_that_fails_is_logged_as_mitmproxy_logs_it_and_the_next_part_still_runs(caplog):
    seen: list[str] = []
    group = AddonGroup([Noting("first", seen), Failing(), Noting("last", seen)])
    with taddons.context(group) as tctx, caplog.at_level(logging.ERROR):
        fire(tctx, HttpRequestHook(tflow.tflow()))
    assert seen == ["first", "last"]
    assert any("Addon error: a part with a bug" in r.getMessage() and "Failing.request" in r.getMessage()
               for r in caplog.records)


def test_a_halt_stops_the_event_for_the_parts_after_it_and_for_the_addons_after_the_group():
    seen: list[str] = []
    group = AddonGroup([Noting("first", seen), Halting(), Noting("after the halt", seen)])
    with taddons.context(group, Noting("addon after the group", seen)) as tctx:
        fire(tctx, HttpRequestHook(tflow.tflow()))
    assert seen == ["first"]


def test_async_hooks_are_awaited_in_order_before_the_next_part_runs():
    seen: list[str] = []
    group = AddonGroup([Waiting(seen), Starting(seen)])
    with taddons.context(group) as tctx:
        fire(tctx, hooks.RunningHook())
    assert seen == ["waited", "started"]


def test_a_bad_option_value_reaches_whoever_set_it():
    with taddons.context(AddonGroup([Refusing()])) as tctx:
        with pytest.raises(exceptions.OptionsError, match="not an address"):
            tctx.options.update(listen_host="127.0.0.1")


def test_mitmproxy_sees_only_the_hooks_some_part_takes():
    group = AddonGroup([Noting("only requests", [])])
    assert callable(getattr(group, "request", None))
    assert getattr(group, "response", None) is None and getattr(group, "update", None) is None


class Storing:
    """A sync hook that hands back a coroutine, as ResponseCache.response does when it stores an answer."""

    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    def request(self, flow):
        async def store() -> None:
            await asyncio.sleep(0.01)
            self.seen.append("stored")
        return store()


def test_a_coroutine_a_sync_hook_returns_is_awaited_before_the_next_part_runs():
    seen: list[str] = []
    group = AddonGroup([Storing(seen), Noting("next", seen)])
    with taddons.context(group) as tctx:
        fire(tctx, HttpRequestHook(tflow.tflow()))
    assert seen == ["stored", "next"]
