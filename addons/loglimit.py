"""Repeated log lines are rate-limited, so a flood of one error cannot fill the log.

`RepeatedLineFilter` is a `logging.Filter`: each distinct line (logger, level and message text, whichever client it
is about) is let through at most `burst` times per `window_s`; further copies are held back and counted. The count
is reported once per window: on the line that opens the next window, or — when the line stopped coming — by
`report()`, as "<line> [repeated K more times within N s, not shown]".

The `LogRateLimit` addon installs one filter on every handler of the root logger (mitmproxy's terminal log and
mitmweb's event log) when it is loaded, and reports held-back counts every few seconds and at shutdown.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mitmproxy.utils import human

logger = logging.getLogger(__name__)

WINDOW_S = 10.0
BURST = 5
MAX_TRACKED_LINES = 4096
# Set on a record once the filter has decided it, so the same record reaching several handlers is counted once.
DECISION_ATTR = "llmtap_log_decision"
# Set (via `extra`) on llmtap's own summary lines, which are never held back.
SUMMARY_ATTR = "llmtap_log_summary"


@dataclass
class _Window:
    started: float
    seen: int = 0
    held_back: int = 0


@dataclass(frozen=True)
class HeldBack:
    """How many copies of one line a finished window held back."""

    logger_name: str
    level: int
    message: str
    count: int


class RepeatedLineFilter(logging.Filter):
    """Lets each distinct log line through at most `burst` times per `window_s`; counts the rest (thread-safe)."""

    def __init__(self, window_s: float = WINDOW_S, burst: int = BURST, clock: Callable[[], float] = time.monotonic,
                 max_tracked_lines: int = MAX_TRACKED_LINES):
        super().__init__()
        self.window_s = window_s
        self.burst = burst
        self.clock = clock
        self.max_tracked_lines = max_tracked_lines
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._ended: dict[tuple[str, int, str], _Window] = {}  # closed to make room, with counts still to report
        self._lock = threading.Lock()  # records also come from worker threads (the log writer)

    def filter(self, record: logging.LogRecord) -> bool:
        decision = record.__dict__.get(DECISION_ATTR)
        if decision is None:
            decision = self._decide(record)
            record.__dict__[DECISION_ATTR] = decision
        return decision

    def report(self, everything: bool = False) -> list[HeldBack]:
        """Close the windows that have ended (all of them when `everything`); what each held back, if anything."""
        now = self.clock()
        with self._lock:
            ended = [key for key, w in self._windows.items() if everything or now - w.started >= self.window_s]
            windows = [(key, self._windows.pop(key)) for key in ended] + list(self._ended.items())
            self._ended.clear()
        return [HeldBack(name, level, message, w.held_back) for (name, level, message), w in windows if w.held_back]

    def _decide(self, record: logging.LogRecord) -> bool:
        if getattr(record, SUMMARY_ATTR, False):
            return True
        try:
            text = message = record.getMessage()
        except Exception:  # a malformed call to the logger: let logging itself report it
            return True
        if client := getattr(record, "client", None):  # mitmproxy names the client in some lines; still one line
            message = text.replace(human.format_address(client), "<client>")
        key = (record.name, record.levelno, message)
        now = self.clock()
        with self._lock:
            window = self._windows.get(key)
            if window is not None and now - window.started >= self.window_s:
                if window.held_back:  # this line opens a new window: it carries the old window's count
                    record.msg, record.args = f"{text} {_repeated(window.held_back, self.window_s)}", None
                del self._windows[key]
                window = None
            if window is None:
                if len(self._windows) >= self.max_tracked_lines and not self._forget_quiet_lines(now):
                    return True  # too many distinct lines to track: let it through rather than grow without bound
                window = self._windows[key] = _Window(started=now)
            window.seen += 1
            if window.seen <= self.burst:
                return True
            window.held_back += 1
            return False

    def _forget_quiet_lines(self, now: float) -> bool:
        """Make room by closing windows that have ended, oldest first (the dict keeps them in the order they opened,
        so this looks at no more windows than it closes, plus one); a closed window's count waits for `report`."""
        freed = False
        while self._windows:
            key, window = next(iter(self._windows.items()))
            if now - window.started < self.window_s:
                break
            del self._windows[key]
            if window.held_back:
                self._ended[key] = window
            freed = True
        return freed


class LogRateLimit:
    """Rate-limits repeated lines in mitmproxy's logs (see `RepeatedLineFilter`) and reports what it held back."""

    def __init__(self, window_s: float = WINDOW_S, burst: int = BURST):
        self.filter = RepeatedLineFilter(window_s, burst)
        self._handlers: list[logging.Handler] = []
        self._reporter: asyncio.Task | None = None

    def load(self, loader) -> None:
        self._install()  # mitmproxy's log handlers exist by now; listeners (and floods) come later

    def running(self) -> None:
        self._install()  # and any handler added since
        self._reporter = asyncio.get_running_loop().create_task(self._report_every_window())

    def done(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
        self.report(everything=True)
        for handler in self._handlers:
            handler.removeFilter(self.filter)

    def _install(self) -> None:
        for handler in logging.getLogger().handlers:
            if handler not in self._handlers:
                handler.addFilter(self.filter)
                self._handlers.append(handler)

    def report(self, everything: bool = False) -> None:
        """Log one line for each line held back in a window that has ended."""
        for held in self.filter.report(everything):
            logging.getLogger(held.logger_name).log(
                held.level, f"{held.message} {_repeated(held.count, self.filter.window_s)}", extra={SUMMARY_ATTR: True}
            )

    async def _report_every_window(self) -> None:
        while True:
            await asyncio.sleep(self.filter.window_s / 2)
            self.report()


def _repeated(count: int, window_s: float) -> str:
    return f"[repeated {count} more time{'s' if count != 1 else ''} within {window_s:g} s, not shown]"
