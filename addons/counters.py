"""Counters that must be exact when a request arrives: what rate-limit policies and blocking budgets have used in
their windows.

`Counters` is the one interface the gateway's limits use (`RateLimiter`, `Budgets`, the settling of reservations in
`RateLimitUsage`, and the seeding from the log at start-up in `seeding.py`): where a call stands against a `Quota`,
add an amount, release a reservation, and seed what earlier calls used. It is the seam the scale-out work replaces
with a shared store (Redis), so that several gateway processes count against the same budgets; there, a check and
the add that follows it must become one atomic step (one script on the server), as they are here by running on one
event loop.

`SlidingWindows`, the one implementation today, keeps each key's events in memory for one gateway process, with a
running sum per window, so a check costs O(1) amortised: each window adds on each event and subtracts as events
expire, and never sums over its events.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

# What a counter is for: a rate-limit policy's window for a segment, or a budget's for a scope value and period.
CounterKey = tuple[str | None, ...]
SWEEP_INTERVAL_S = 60.0


@dataclass(frozen=True)
class Quota:
    """What a counter may hold in `window_s` seconds: `quota` calls, or, when `reserves`, an amount (cents) that
    calls reserve before they go."""

    quota: float
    window_s: float
    reserves: bool = False

    def is_over(self, used: float, need: float = 1) -> bool:
        """Whether a call that needs `need` breaks the quota when `used` is already used or reserved. A call counts
        1; a reservation may pass the quota only in a window with nothing used, so one call always fits."""
        if not self.reserves:
            return used + 1 > self.quota
        return used >= self.quota or (used > 0 and used + need > self.quota)


@dataclass(frozen=True)
class Count:
    """Where a call stands against a quota."""

    used: float  # used and reserved in the window, this call's own need left out
    retry_after_s: float  # until enough of the window's usage expires to let the call through (0 when it fits)
    over: bool  # whether this call would break the quota


class Event:
    """An amount counted in a window at a time; a reservation is an event whose amount may still be released. An
    event added with `coalesce_s` takes in later amounts until `since + coalesce_s` (`at` then moves to the latest)."""

    __slots__ = ("at", "amount", "window", "since")

    def __init__(self, at: float, amount: float, window: Window | None, since: float | None = None):
        self.at, self.amount, self.window, self.since = at, amount, window, since


class Reservation(NamedTuple):
    """An amount (cents) a call holds in a counter until its cost is known; the cost is added with `coalesce_s`."""

    key: CounterKey
    window_s: float
    event: Event
    coalesce_s: float = 0.0


class Counters(Protocol):
    """What the gateway's limits count with. Times are seconds on `clock`, a monotonic clock."""

    clock: Callable[[], float]

    def standing(self, quota: Quota, key: CounterKey, now: float | None = None, need: float = 1) -> Count:
        """Where a call that needs `need` (1 call, or its reserved amount) stands against `quota` in `key`'s
        window at `now`."""
        ...

    def add(self, key: CounterKey, window_s: float, amount: float, now: float | None = None,
            coalesce_s: float = 0.0) -> Event:
        """Count `amount` in `key`'s window at `now`; the returned event can be `release`d while it is in it. With
        `coalesce_s`, for an amount that will never be released, it may join an event added so within the last
        `coalesce_s` seconds, which then leaves the window as late as its latest amount: counted up to `coalesce_s`
        longer, never shorter, in one event instead of one per call (a month's budget holds few)."""
        ...

    def release(self, event: Event) -> None:
        """Stop counting `event` (a reservation no longer needed, or a call refused after all)."""
        ...

    def seed(self, key: CounterKey, window_s: float, amount: float, at: float) -> None:
        """Count `amount` that earlier calls used, as of `at` (in the past, on `clock`): what a restart must not
        forget. Seeds may come in any order."""
        ...

    def clear(self) -> None:
        """Forget everything (the config changed: keys no longer mean what they meant)."""
        ...


class Window:
    """One key's events younger than its window, oldest first, and their running sum."""

    __slots__ = ("window_s", "events", "total")

    def __init__(self, window_s: float):
        self.window_s = window_s
        self.events: deque[Event] = deque()
        self.total = 0.0

    def expire(self, now: float) -> None:
        events = self.events
        while events and events[0].at <= now - self.window_s:
            event = events.popleft()
            self.total -= event.amount
            event.window = None  # expired: releasing it later changes nothing
        if not events:
            self.total = 0.0  # forget the rounding left by adding and subtracting floats


class SlidingWindows:
    """`Counters` in memory: a sliding window of events per key. `clock` (seconds, monotonic) is injectable so tests
    need no sleeps."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._windows: dict[CounterKey, Window] = {}
        self._swept = clock()

    def standing(self, quota: Quota, key: CounterKey, now: float | None = None, need: float = 1) -> Count:
        now = self.clock() if now is None else now
        if now - self._swept > SWEEP_INTERVAL_S:
            self._sweep(now)
        window = self._windows.get(key)
        if window is None:
            return Count(0.0, 0.0, quota.is_over(0.0, need))
        window.expire(now)
        used = max(0.0, window.total)
        over = quota.is_over(used, need)
        return Count(used, self._retry_after(quota, window, used, need, now) if over else 0.0, over)

    def add(self, key: CounterKey, window_s: float, amount: float, now: float | None = None,
            coalesce_s: float = 0.0) -> Event:
        now = self.clock() if now is None else now
        window = self._window(key, window_s)
        if coalesce_s > 0 and window.events:
            last = window.events[-1]
            if last.since is not None and last.at <= now < last.since + coalesce_s:
                last.at = now
                last.amount += amount
                window.total += amount
                return last
        event = Event(now, amount, window, now if coalesce_s > 0 else None)
        window.events.append(event)
        window.total += amount
        return event

    @staticmethod
    def release(event: Event) -> None:
        if event.window is not None:
            event.window.total -= event.amount
            event.amount = 0.0

    def seed(self, key: CounterKey, window_s: float, amount: float, at: float) -> None:
        window = self._window(key, window_s)
        event = Event(at, amount, window)
        events = window.events
        position = len(events)
        while position and events[position - 1].at > at:  # seeds come oldest first per query: rarely walks
            position -= 1
        events.insert(position, event)
        window.total += amount

    def clear(self) -> None:
        for window in self._windows.values():
            for event in window.events:
                event.window = None  # a reservation settled later must not touch a forgotten window
        self._windows.clear()

    def _window(self, key: CounterKey, window_s: float) -> Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = Window(window_s)
        return window

    def _sweep(self, now: float) -> None:
        """Forget windows with nothing left in them: users and property values come and go."""
        self._swept = now
        for key, window in list(self._windows.items()):
            if not window.events or window.events[-1].at <= now - window.window_s:
                window.expire(now)
                del self._windows[key]

    @staticmethod
    def _retry_after(quota: Quota, window: Window, used: float, need: float, now: float) -> float:
        # Only when over: for call quotas the window holds at most `quota` events, so this walks a few.
        for event in window.events:  # oldest first: the window frees as they age out
            used -= event.amount
            if not quota.is_over(max(0.0, used), need):
                return max(0.0, event.at + window.window_s - now)
        return float(window.window_s)
