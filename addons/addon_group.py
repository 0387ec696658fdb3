"""llmtap's addons as one mitmproxy addon, so each mitmproxy event costs one visit instead of one per addon.

mitmproxy dispatches every event (a dozen per call: requestheaders, request, responseheaders, response, connection
events, and `update` after each) by visiting every addon in its chain, through a context manager, a coroutine and a
generator per visit, whether the addon takes the event or not. With llmtap's twenty-odd addons that was about a
third of the gateway's time on a call. `AddonGroup` sits in the chain as one addon whose hooks are the ones its parts
define, each calling only the parts that take it, in order, with mitmproxy's own rules: an error in one part is
logged as mitmproxy logs an addon error and the next part still runs; `AddonHalt` stops the event; `OptionsError`
(a bad option value in `configure`) propagates to whoever set the option.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from mitmproxy import exceptions, hooks

logger = logging.getLogger(__name__)

T = TypeVar("T")
PASSED_ON = (exceptions.AddonHalt, exceptions.OptionsError)  # what mitmproxy's `safecall` lets through


class AddonGroup:
    """`parts` as one addon: mitmproxy sees a hook here exactly when at least one part defines it."""

    name = "llmtap"

    def __init__(self, parts: Sequence[object]) -> None:
        self.parts = list(parts)
        for hook in hooks.all_hooks:
            takers = [(part, fn) for part in self.parts if callable(fn := getattr(part, hook, None))]
            if takers:
                setattr(self, hook, _dispatcher(hook, takers))

    def find(self, kind: type[T]) -> T | None:
        """The first part that is a `kind`, if any."""
        return next((part for part in self.parts if isinstance(part, kind)), None)

    def __repr__(self) -> str:
        return f"AddonGroup({', '.join(type(part).__name__ for part in self.parts)})"


def _dispatcher(hook: str, takers: list[tuple[object, Callable[..., Any]]]) -> Callable[..., Any]:
    """One hook of the group. Like mitmproxy's own dispatch it calls each taker in turn and, when one returns an
    awaitable (an `async def` hook, or a sync one that returned a coroutine), awaits it before the next part runs:
    the hook is synchronous (as `load` and `configure` must be) until a part hands it something to await."""
    def call_each(*args: Any) -> Awaitable[None] | None:
        for at, (part, fn) in enumerate(takers):
            try:
                result = fn(*args)
            except PASSED_ON:
                raise
            except Exception as e:
                _log_error(hook, part, e)
                continue
            if result is not None and inspect.isawaitable(result):
                return _await_rest(hook, takers, at, result, args)
        return None
    return call_each


async def _await_rest(hook: str, takers: list[tuple[object, Callable[..., Any]]], at: int,
                      pending: Awaitable[Any] | None, args: tuple[Any, ...]) -> None:
    """Await the taker at `at`'s result, then run the takers after it, awaiting each in turn."""
    for part, fn in takers[at:]:
        try:
            result = pending if pending is not None else fn(*args)
            pending = None
            if result is not None and inspect.isawaitable(result):
                await result
        except PASSED_ON:
            raise
        except Exception as e:
            _log_error(hook, part, e)


def _log_error(hook: str, part: object, error: Exception) -> None:
    # mitmproxy's own words for an addon that raised, so what users grep for (and mitmweb's event log) still finds it
    logger.error(f"Addon error: {error} ({type(part).__name__}.{hook})", exc_info=error)
