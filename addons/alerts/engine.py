"""The alert engine: every `alerting.check_interval_s` it measures each rule with channels over the log (the query
layer's `rule_values`, per scope value) and hands a `Notice` to delivery when a metric passes its threshold, and when
it drops back.

One alert per rule, scope value and window, never a storm:
- a calendar window (`day`, `month`) fires at most once per period; the next period starts afresh;
- a rolling window (`1h`, `1d`, `30d`) fires once, and again only after it has resolved and a whole window has
  passed since it fired (a metric hovering at its threshold would otherwise fire and resolve at every check);
- `resolved` is sent when a firing metric drops back within its window (a rolling window, or error rate and p95
  latency in a calendar one); spend, requests and 429s only grow within a calendar period, whose end is no news.
What has fired is read back from the `alerts` table at start-up, so a restart in the middle of a window does not
send the same alert again (one the stop cut short, before any channel was tried to the end, is sent again).

It runs in its own thread, never on mitmproxy's event loop, and reads the log as the dashboard does (in the gateway's
process, one connection per check, sharing the writer's database).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from ..analytics import queries
from .delivery import STOPPED
from .notice import Notice
from .rules import AlertRule

logger = logging.getLogger(__name__)

CUMULATIVE = ("spend_usd", "requests", "rate_limited")  # only grow within a calendar period


class Sink(Protocol):
    """Where notices go (`delivery.Delivery`): `submit` returns at once."""

    def submit(self, notice: Notice) -> None: ...


@dataclass
class Episode:
    """A rule's alert for one scope value in one window: fired (from `period_start`), and maybe resolved since."""

    period_start: datetime
    resolved: bool = False


class AlertEngine:
    """Measures `rules` (those with channels) over `log` and submits their notices to `sink`. `clock` (UTC now) is
    injectable so tests can cross a calendar boundary without waiting for one."""

    def __init__(self, log: Path, rules: Sequence[AlertRule], sink: Sink, interval_s: float,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.log = log
        self.rules = [rule for rule in rules if rule.channels]
        self.sink = sink
        self.interval_s = interval_s
        self.clock = clock
        self.episodes: dict[tuple[str, str | None], Episode] = {}
        self.checks = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._recalled = False

    def start(self) -> None:
        """Check in a thread every `interval_s` until `stop`. Nothing to do without rules that have channels."""
        if not self.rules or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="llmtap-alerts", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def check(self) -> list[Notice]:
        """Measure every rule once and submit what changed; the notices submitted."""
        now = self.clock()
        notices: list[Notice] = []
        with queries.reading(self.log):
            if not self._recalled:
                self._recall(now)
            for rule in self.rules:
                values = {row[0]: row[1] for row in queries.rule_values(self.log, rule, now).rows}
                notices += self._judge(rule, values, now)
        self.checks += 1
        for notice in notices:
            self.sink.submit(notice)
        return notices

    def _judge(self, rule: AlertRule, values: dict[str | None, float | None], now: datetime) -> list[Notice]:
        """The notices `rule`'s values call for at `now`, keeping `episodes` up to date."""
        start, _ = rule.window.span(now)
        notices = []
        for (name, scope_value), episode in list(self.episodes.items()):
            if name != rule.name:
                continue
            over = (episode.resolved and episode.period_start <= start) if rule.window.rolling \
                else episode.period_start != start
            if over:
                del self.episodes[name, scope_value]  # its window is over: the old alert is history
            elif not episode.resolved and not rule.is_over(values.get(scope_value)) and (
                    rule.window.rolling or rule.metric not in CUMULATIVE):
                # No calls left in the window: spend, requests and 429s are 0; a rate or a p95 has no value.
                value = values.get(scope_value, 0.0 if rule.metric in CUMULATIVE else None)
                notices.append(Notice(rule, "resolved", value, scope_value, now, episode.period_start))
                episode.resolved = True  # not again before its window is over (a rolling one: since it fired)
        for scope_value, value in values.items():
            if rule.is_over(value) and (rule.name, scope_value) not in self.episodes:
                period_start = now if rule.window.rolling else start
                self.episodes[rule.name, scope_value] = Episode(period_start)
                notices.append(Notice(rule, "firing", value, scope_value, now, period_start))
        return notices

    def _recall(self, now: datetime) -> None:
        """What fired before a restart and is still this window's: read from the `alerts` table once."""
        rules = {rule.name: rule for rule in self.rules}
        for row in queries.last_notices(self.log, STOPPED).dicts():  # one the stop cut short is sent again
            rule = rules.get(row["rule"])
            if rule is None:
                continue
            period_start = row["period_start"]
            if rule.window.rolling:
                # Firing: still, for all we know (the first check resolves it if not); resolved: it may fire again
                # once a window has passed since it fired.
                if row["kind"] == "firing" or period_start >= rule.window.span(now)[0]:
                    self.episodes[rule.name, row["scope_value"]] = Episode(period_start, row["kind"] == "resolved")
            elif period_start == rule.window.span(now)[0]:
                self.episodes[rule.name, row["scope_value"]] = Episode(period_start, row["kind"] == "resolved")
        self._recalled = True

    def _run(self) -> None:
        while not self._stop.wait(0 if self.checks == 0 else self.interval_s):
            try:
                self.check()
            except Exception as e:  # the log busy, a rule's query failing: say so, and try again next time
                logger.warning("llmtap: checking alert rules failed (%s: %s); trying again in %g s",
                               type(e).__name__, e, self.interval_s)
                self.checks += 1
