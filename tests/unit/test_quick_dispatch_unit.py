"""`QuickDispatch` hands each event only to the addons that take it and behaves as mitmproxy's own manager does: each
scenario runs under both and must see the same calls and the same logged errors."""

from __future__ import annotations

import asyncio
import logging
import re
import types
from collections.abc import Callable
from typing import Any

import pytest
from llmtap.events import CallFinishedHook
from llmtap.quick_dispatch import QuickDispatch, use_quick_dispatch
from mitmproxy import exceptions, hooks
from mitmproxy.addonmanager import AddonManager
from mitmproxy.addons import script
from mitmproxy.proxy.layers.http import HttpRequestHook, HttpResponseHook
from mitmproxy.test import taddons, tflow


class Noting:
    """Notes each request (sync or async) it sees, under its name."""

    def __init__(self, name: str, seen: list[str], children: list | None = None, wait: bool = False) -> None:
        self.name, self.seen, self.wait = name, seen, wait
        if children is not None:
            self.addons = children

    def request(self, flow) -> Any:
        if self.wait:
            return self._later()
        self.seen.append(self.name)
        return None

    async def _later(self) -> None:
        await asyncio.sleep(0.001)
        self.seen.append(self.name)


class Failing:
    def __init__(self, seen: list[str]) -> None:
        self.seen = seen

    def request(self, flow) -> None:
        self.seen.append("failing")
        raise RuntimeError("a hook with a bug")


class Halting:
    def request(self, flow) -> None:
        raise exceptions.AddonHalt()


class NotAHook:
    request = "not callable"


def fire(tctx: taddons.context, event: hooks.Hook) -> None:
    """Dispatch `event` through the chain on the master's own loop (where mitmproxy's log handler sends lines)."""
    tctx.master.event_loop.run_until_complete(tctx.master.addons.trigger_event(event))


def run(chain: Callable[[list[str]], list], quick: bool, then: Callable[[Any, list], None] | None = None,
        caplog: pytest.LogCaptureFixture | None = None) -> tuple[list[str], list[str]]:
    """The calls and the "Addon error" lines of two request events through `chain`, `then` run between them."""
    seen: list[str] = []
    addons = chain(seen)
    with taddons.context(*addons) as tctx:
        if quick:
            use_quick_dispatch(tctx.master)
        assert isinstance(tctx.master.addons, QuickDispatch) is quick
        if caplog is not None:
            caplog.clear()
        fire(tctx, HttpRequestHook(tflow.tflow()))
        seen.append("|")
        if then is not None:
            then(tctx.master.addons, addons)
        fire(tctx, HttpRequestHook(tflow.tflow()))
        tctx.master.event_loop.run_until_complete(tctx.master.done())  # its log handler goes with its loop
    errors = [re.sub(r" at 0x[0-9a-f]+", "", r.getMessage().splitlines()[0])  # the same addon, another object
              for r in caplog.records if "Addon error" in r.getMessage()] if caplog else []
    return seen, errors


def same_under_both(chain, then=None, caplog=None) -> tuple[list[str], list[str]]:
    mitmproxys = run(chain, quick=False, then=then, caplog=caplog)
    quick = run(chain, quick=True, then=then, caplog=caplog)
    assert quick == mitmproxys
    return quick


def test_sub_addons_run_after_their_parent_and_an_error_ends_only_its_own_top_level_addons_turn(caplog):
    def chain(seen):
        return [Noting("a", seen, children=[Noting("a.1", seen), Failing(seen), Noting("a.3", seen)]),
                Noting("b", seen, children=[Noting("b.1", seen, children=[Noting("b.1.1", seen)])])]

    with caplog.at_level(logging.ERROR):
        seen, errors = same_under_both(chain, caplog=caplog)
    assert seen[:seen.index("|")] == ["a", "a.1", "failing", "b", "b.1", "b.1.1"]
    assert errors == ["Addon error: a hook with a bug"] * 2


def test_a_halt_ends_the_event_and_async_hooks_are_awaited_in_turn():
    def chain(seen):
        return [Noting("first", seen, wait=True), Noting("second", seen), Halting(), Noting("after the halt", seen)]

    seen, _ = same_under_both(chain)
    assert seen == ["first", "second", "|", "first", "second"]


def test_a_hook_that_is_not_callable_is_an_addon_error_and_a_module_named_like_a_hook_is_not_a_hook(caplog):
    def chain(seen):
        holder = Noting("holder", seen)
        holder.response = types.ModuleType("response")  # `from mitmproxy import ...` named like a hook
        return [NotAHook(), holder]

    with caplog.at_level(logging.ERROR):
        seen, errors = same_under_both(chain, caplog=caplog)
    assert seen == ["holder", "|", "holder"]
    assert len(errors) == 2 and all("not callable" in e for e in errors)


@pytest.mark.parametrize("change", ["add", "remove", "nested append", "nested reorder", "script reload"])
def test_the_addons_an_event_reaches_follow_every_change_of_the_chain(change):
    def chain(seen):
        return [Noting("a", seen), Noting("scripts", seen, children=[Noting("s1", seen), Noting("s2", seen)])]

    def then(manager: AddonManager, addons: list) -> None:
        seen = addons[0].seen
        scripts = addons[1]
        if change == "add":
            manager.add(Noting("added", seen))
        elif change == "remove":
            manager.remove(addons[0])
        elif change == "nested append":
            scripts.addons.append(Noting("s3", seen))
        elif change == "nested reorder":
            scripts.addons = scripts.addons[::-1]
        else:  # a script module replaced by its reloaded self
            scripts.addons[0] = Noting("s1 reloaded", seen)

    seen, _ = same_under_both(chain, then=then)
    after = seen[seen.index("|") + 1:]
    expected = {"add": ["a", "scripts", "s1", "s2", "added"], "remove": ["scripts", "s1", "s2"],
                "nested append": ["a", "scripts", "s1", "s2", "s3"], "nested reorder": ["a", "scripts", "s2", "s1"],
                "script reload": ["a", "scripts", "s1 reloaded", "s2"]}[change]
    assert after == expected


def test_an_event_no_addon_takes_reaches_none_and_the_response_event_its_own_takers():
    seen: list[str] = []

    class Answering:
        def response(self, flow) -> None:
            seen.append("response")

    with taddons.context(Noting("requests only", seen), Answering()) as tctx:
        use_quick_dispatch(tctx.master)
        fire(tctx, hooks.UpdateHook([]))
        fire(tctx, HttpResponseHook(tflow.tflow(resp=True)))
    assert seen == ["response"]


def test_a_synchronous_event_reaches_its_takers_as_mitmproxy_triggers_it(caplog):
    """llmtap's `call_finished` is fired with `trigger`: errors and halts as above, and an async subscriber is an
    addon error (it cannot be awaited there)."""

    class Finishing:
        def __init__(self, name: str, seen: list[str]) -> None:
            self.name, self.seen = name, seen

        def call_finished(self, flow, record) -> None:
            self.seen.append(self.name)

    class Broken:
        def call_finished(self, flow, record) -> None:
            raise RuntimeError("a subscriber with a bug")

    class Async:
        async def call_finished(self, flow, record) -> None:
            pass

    class Halt:
        def call_finished(self, flow, record) -> None:
            raise exceptions.AddonHalt()

    def outcome(quick: bool) -> tuple[list[str], list[str]]:
        seen: list[str] = []
        with taddons.context(Finishing("first", seen), Broken(), Async(), Finishing("second", seen), Halt(),
                             Finishing("after the halt", seen)) as tctx:
            if quick:
                use_quick_dispatch(tctx.master)
            caplog.clear()
            tctx.master.addons.trigger(CallFinishedHook(tflow.tflow(), None))  # type: ignore[arg-type]
            tctx.master.event_loop.run_until_complete(tctx.master.done())
        return seen, [re.sub(r" (at 0x[0-9a-f]+|object)", "", r.getMessage().splitlines()[0])
                      for r in caplog.records if "Addon error" in r.getMessage()]

    with caplog.at_level(logging.ERROR):
        mitmproxys, quick = outcome(False), outcome(True)
    assert quick == mitmproxys
    seen, errors = quick
    assert seen == ["first", "second"]
    assert len(errors) == 2 and "a subscriber with a bug" in errors[0] and "cannot be called from sync" in errors[1]


def test_a_script_unloaded_by_an_option_change_gets_no_hook_after_its_done(tmp_path):
    """Unloading a script (`--set scripts=...`, or its file deleted) happens inside a `configure` event: as under
    mitmproxy, the unloaded script's own `configure` is not called after its `done`."""
    script_path, calls = tmp_path / "noting.py", tmp_path / "calls"
    script_path.write_text(f"def configure(updated):\n    open({str(calls)!r}, 'a').write('configure ')\n"
                           f"def done():\n    open({str(calls)!r}, 'a').write('done ')\n")

    def calls_on_unloading(quick: bool) -> list[str]:
        loader = script.ScriptLoader()
        with taddons.context(loader) as tctx:
            if quick:
                use_quick_dispatch(tctx.master)

            async def load_then_unload() -> None:
                tctx.options.update(scripts=[str(script_path)])
                for _ in range(500):  # its watcher loads it at the loop's next turn
                    if loader.addons[0].ns is not None:
                        break
                    await asyncio.sleep(0.01)
                calls.write_text("")
                tctx.options.update(scripts=[])

            tctx.master.event_loop.run_until_complete(load_then_unload())
            tctx.master.event_loop.run_until_complete(tctx.master.done())
        return calls.read_text().split()

    assert calls_on_unloading(quick=False) == ["done"]
    assert calls_on_unloading(quick=True) == ["done"]
