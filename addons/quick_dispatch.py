"""`QuickDispatch`: mitmproxy's addon manager, handing each event only to the addons that take it.

mitmproxy's `AddonManager.trigger_event` visits every addon of the chain for every event, and twice per flow event
(the event, then `update`): for each one it walks the addon's sub-addons, looks the hook up by name, enters a
context manager and rebuilds the event's arguments. With mitmdump's ~45 built-in addons that is about half of bare
mitmdump's CPU per call on this kind of machine (py-spy), though a plain call is taken by a handful of them.

`QuickDispatch` keeps, per event name, the hook functions of each top-level addon that has any, and calls exactly
those, with mitmproxy's rules: in chain order, an addon's own hook before its sub-addons'; an error is logged as
"Addon error" (`safecall`) and ends that top-level addon's turn, not the event; `AddonHalt` ends the event;
awaitables are awaited in turn (`trigger_event`), and are an addon error in a synchronous event (`trigger`, which
fires llmtap's `call_finished`). What an event reaches is worked out again whenever the chain's shape changes (an
addon added or removed, a script loaded, reloaded or reordered): every event first compares the chain and what each
addon that holds others (mitmproxy's script loader, each script) holds with what the lists were made for.
A top-level addon that holds others (the script loader) is walked as mitmproxy walks it, during the event: its own
`configure` unloads and reorders scripts, and the scripts it unloaded must not be called after their `done`.

`use_quick_dispatch(master)` switches a master's manager to it in place (the chain, names and options stay).
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from typing import Any

from mitmproxy import exceptions, hooks
from mitmproxy.addonmanager import AddonManager, safecall, traverse

# Per top-level addon that takes the event: the addon and its hook functions in order, or None for one that holds
# others (the script loader): its own hook may change what it holds mid-event (`configure` unloads a script), so it is
# walked as the event goes, as mitmproxy does.
Takers = list[tuple[Any, list[Callable[..., Any]] | None]]


class QuickDispatch(AddonManager):
    _shape: tuple = ()
    _containers: list[Any] = []  # the addons of the chain that hold others (the script loader, each script)
    _takers: dict[str, Takers]

    async def trigger_event(self, event: hooks.Hook) -> None:
        args = event.args()
        for top, functions in self._takers_of(event.name):
            try:
                with safecall():
                    if functions is None:
                        await self.invoke_addon(top, event)
                    for function in functions or ():
                        result = function(*args)
                        if result is not None and inspect.isawaitable(result):
                            await result
            except exceptions.AddonHalt:
                return

    def trigger(self, event: hooks.Hook) -> None:
        """The same for a synchronous event (llmtap's `call_finished`): an async hook is an addon error, as in
        mitmproxy's `invoke_addon_sync`."""
        args = event.args()
        for top, functions in self._takers_of(event.name):
            try:
                with safecall():
                    if functions is None:
                        self.invoke_addon_sync(top, event)
                    for function in functions or ():
                        if inspect.iscoroutinefunction(function):
                            addon = next(a for a in traverse(self.chain) if getattr(a, event.name, None) == function)
                            raise exceptions.AddonManagerError(
                                f"Async handler {event.name} ({addon}) cannot be called from sync context")
                        function(*args)
            except exceptions.AddonHalt:
                return

    def _takers_of(self, name: str) -> Takers:
        if self._shape_now() != self._shape:
            self._containers = [addon for addon in traverse(self.chain) if hasattr(addon, "addons")]
            self._shape, self._takers = self._shape_now(), {}
        takers = self._takers.get(name)
        if takers is None:
            takers = self._takers[name] = [(top, None if hasattr(top, "addons") else functions)
                                           for top in self.chain if (functions := _hooks(top, name))]
        return takers

    def _shape_now(self) -> tuple:
        """What changes when an addon comes or goes: the chain (`add` appends to it, `remove` replaces it) and what
        each addon holding others holds. A few microseconds, where walking the whole chain takes ~15."""
        return id(self.chain), len(self.chain), *(tuple(map(id, holder.addons)) for holder in self._containers)


def _hooks(top: Any, name: str) -> list[Callable[..., Any]]:
    """The hook functions called `name` of `top` and its sub-addons, in mitmproxy's order (`_iter_hooks`)."""
    functions = []
    for addon in traverse([top]):
        function = getattr(addon, name, None)
        if not function or isinstance(function, types.ModuleType):  # `from mitmproxy import log` is not a hook
            continue
        functions.append(function if callable(function) else _not_callable(name, addon))
    return functions


def _not_callable(name: str, addon: Any) -> Callable[..., None]:
    def refuse(*_args: Any) -> None:  # as mitmproxy does: an error in every event, logged as an addon error
        raise exceptions.AddonManagerError(f"Addon handler {name} ({addon}) not callable")

    return refuse


def use_quick_dispatch(master: Any) -> None:
    """Make `master`'s addon manager a `QuickDispatch`, keeping its chain, lookup and everything else."""
    manager = master.addons
    if type(manager) is AddonManager:
        manager.__class__ = QuickDispatch
