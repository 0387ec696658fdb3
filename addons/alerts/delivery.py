"""Delivering notices off mitmproxy's event loop: each channel has its own queue and worker thread (a webhook that
never answers holds up only itself), each notice is tried `delivery_attempts` times with doubling waits, and each
final outcome becomes one row of the `alerts` table.

Nothing here raises into its caller or blocks it: `submit` only queues. A write to the log that fails (the file busy,
the disk full) keeps its rows in memory for the next write and for `close`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .channels import DeliveryFailed, send, target_of
from .notice import Notice
from .rules import Channel, Smtp

if TYPE_CHECKING:
    from ..config import Alerting

logger = logging.getLogger(__name__)

STOPPED = "llmtap stopped before it was sent"
BACKLOG_MAX = 1_000  # notices a channel's queue holds while it is down; past this the oldest is given up
DROPPED = "given up: too many newer notices were waiting for this channel"
UNWRITTEN_MAX = 10_000  # rows kept for a log that cannot be written; past this the oldest are dropped
WRITE_WAIT_S = 10.0  # how long one write waits for the file while another process writes it
ROW_COLUMNS = ("alert_id", "created_at", "rule", "kind", "metric", "time_window", "period_start", "scope",
               "scope_value", "metric_value", "threshold", "summary", "channel", "target", "outcome", "detail",
               "attempts")


@dataclass(frozen=True)
class ChannelOutcome:
    """What became of one notice at one channel: `outcome` is `sent` or `failed`, `detail` the last answer or
    failure, `attempts` how many tries it took."""

    channel: Channel
    target: str
    outcome: str
    detail: str
    attempts: int


class _Job:
    """One notice for one channel; `settled` once its outcome is recorded, by its worker or by `close`."""

    def __init__(self, notice: Notice, channel: Channel):
        self.notice, self.channel = notice, channel
        self.attempts = 0
        self.settled = False


class _Lane:
    """One channel's queue and the thread that works through it, in order."""

    def __init__(self) -> None:
        self.queue: deque[_Job] = deque()
        self.current: _Job | None = None
        self.thread: threading.Thread | None = None


class Delivery:
    """Sends notices through their rule's channels and records every outcome in the log's `alerts` table (`log`
    None: records nothing). `submit` from anywhere (mitmproxy's event loop included); `deliver_now` when the caller
    waits for the answers (`llmtap alerts test`); `close` at shutdown."""

    def __init__(self, log: Path | None, smtp: Smtp | None, alerting: Alerting):
        self.log, self.smtp, self.alerting = log, smtp, alerting
        self._lock = threading.Condition()
        self._lanes: dict[Channel, _Lane] = {}
        self._started = False
        self._closing = False
        self._deadline = float("inf")  # monotonic time by which close wants every lane done
        self._unwritten: list[tuple[Any, ...]] = []
        self._write_lock = threading.Lock()
        self._write_warned = False
        self._no_table_said = False

    def start(self) -> None:
        """Let workers run (each lane's thread starts with its first notice). Idempotent."""
        with self._lock:
            self._started = True
            for lane in self._lanes.values():
                self._ensure_worker(lane)

    def submit(self, notice: Notice) -> None:
        """Queue `notice` for every channel of its rule and return at once; never raises. After `close`, the notice
        is logged as not sent. A channel holds at most `BACKLOG_MAX` notices waiting; the oldest beyond that is
        recorded as failed (`DROPPED`)."""
        try:
            dropped: list[_Job] = []
            with self._lock:
                if self._closing:
                    logger.warning("alert %s (%s): not sent, %s", notice.rule.name, notice.kind, STOPPED)
                    return
                self._started = True
                for channel in notice.rule.channels:
                    lane = self._lanes.setdefault(channel, _Lane())
                    lane.queue.append(_Job(notice, channel))
                    while len(lane.queue) > BACKLOG_MAX:  # a channel down for long: memory stays bounded
                        dropped.append(lane.queue.popleft())
                    self._ensure_worker(lane)
                self._lock.notify_all()
            for job in dropped:
                self._settle(job, "failed", DROPPED)
        except Exception:  # a notice must never fail the call that caused it
            logger.exception("alert %s: could not queue its delivery", notice.rule.name)

    def deliver_now(self, notice: Notice) -> list[ChannelOutcome]:
        """Send `notice` through every channel of its rule, all at once, with the same retries as `submit`; wait for
        every outcome, record them, and return them in the rule's channel order."""
        jobs = [_Job(notice, channel) for channel in notice.rule.channels]
        outcomes: list[ChannelOutcome | None] = [None] * len(jobs)

        def run(index: int) -> None:
            outcomes[index] = self._deliver(jobs[index])

        threads = [threading.Thread(target=run, args=(i,), name=f"alert-{job.channel.kind}", daemon=True)
                   for i, job in enumerate(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._write()
        return [outcome for outcome in outcomes if outcome is not None]

    def close(self, wait_s: float) -> None:
        """Stop taking notices and let the queued ones finish for up to `wait_s`; whatever is still queued or being
        tried then is recorded as failed ("llmtap stopped before it was sent"), and every row still unwritten is
        written."""
        with self._lock:
            self._closing = True
            self._deadline = time.monotonic() + wait_s
            self._lock.notify_all()
            threads = [lane.thread for lane in self._lanes.values() if lane.thread is not None]
        for thread in threads:
            thread.join(max(0.0, self._deadline - time.monotonic()))
        with self._lock:
            left = [job for lane in self._lanes.values()
                    for job in ([lane.current] if lane.current else []) + list(lane.queue)]
            for lane in self._lanes.values():
                lane.queue.clear()
        for job in left:
            self._settle(job, "failed", STOPPED)
        self._write()
        with self._lock:
            lost = len(self._unwritten)
        if lost:
            logger.warning("%d alert outcome(s) were never recorded in %s (see the warnings above)", lost, self.log)

    # --- the workers -----------------------------------------------------------------------------------------------

    def _ensure_worker(self, lane: _Lane) -> None:
        if self._started and lane.thread is None:
            lane.thread = threading.Thread(target=self._work, args=(lane,), name="alert-delivery", daemon=True)
            lane.thread.start()

    def _work(self, lane: _Lane) -> None:
        while True:
            with self._lock:
                while not lane.queue and not self._closing:
                    self._lock.wait()
                if not lane.queue or time.monotonic() >= self._deadline:
                    return
                lane.current = lane.queue.popleft()
            try:
                self._deliver(lane.current)
            except Exception:  # a bug in one channel's code must not stop the lane
                logger.exception("alert delivery failed unexpectedly")
            finally:
                with self._lock:
                    lane.current = None
            self._write()

    def _deliver(self, job: _Job) -> ChannelOutcome:
        """Try `job` until it is sent, fails for good, runs out of attempts, or close's deadline comes; record it."""
        wait_s = self.alerting.delivery_backoff_s
        detail = ""
        while True:
            job.attempts += 1
            try:
                detail = send(job.channel, job.notice, self.smtp, self.alerting.delivery_timeout_s)
                return self._settle(job, "sent", detail)
            except DeliveryFailed as e:
                detail = e.detail
                if not e.retryable or job.attempts >= self.alerting.delivery_attempts:
                    return self._settle(job, "failed", detail)
            except Exception as e:  # never let one notice's failure escape into a worker or a caller
                return self._settle(job, "failed", f"{type(e).__name__}: {e}")
            if self._stopped_before(time.monotonic() + wait_s, wait_s):
                return self._settle(job, "failed", f"{STOPPED} (last try: {detail})")
            wait_s *= 2

    def _stopped_before(self, next_try: float, wait_s: float) -> bool:
        """Wait `wait_s` for the next try; True (at once) when close's deadline comes before `next_try`."""
        with self._lock:
            return self._lock.wait_for(lambda: self._deadline <= next_try, timeout=wait_s)

    def _settle(self, job: _Job, outcome: str, detail: str) -> ChannelOutcome:
        result = ChannelOutcome(job.channel, target_of(job.channel), outcome, detail, job.attempts)
        notice = job.notice
        with self._lock:
            if job.settled:  # close recorded it already
                return result
            job.settled = True
            if self.log is not None:
                self._unwritten.append(_row(notice, result))
                del self._unwritten[:-UNWRITTEN_MAX]
        if outcome == "failed":
            logger.warning("alert %s (%s): %s to %s failed: %s", notice.rule.name, notice.kind, job.channel.kind,
                           result.target, detail)
        return result

    # --- the alerts table ------------------------------------------------------------------------------------------

    def _write(self) -> None:
        """Write every unwritten row in one transaction; on failure keep them for the next write. Never raises."""
        import duckdb

        from ..batch_writer import connect

        if self.log is None:
            return
        with self._write_lock:
            with self._lock:
                rows, self._unwritten = self._unwritten, []
            if not rows:
                return
            if not self.log.exists():  # connecting would create an empty file no gateway migrated
                self._keep(rows, f"no log at {self.log} yet (start the gateway once): alerts are not recorded",
                           said_once=True)
                return
            try:
                with connect(self.log, timeout_s=WRITE_WAIT_S) as db:
                    db.executemany(f"INSERT INTO alerts ({', '.join(ROW_COLUMNS)}) "
                                   f"VALUES ({', '.join('?' for _ in ROW_COLUMNS)})", rows)
            except duckdb.CatalogException:
                self._keep(rows, f"the log {self.log} has no alerts table yet (start the gateway once to migrate "
                                 "it): alerts are not recorded", said_once=True)
            except Exception as e:
                self._keep(rows, f"could not record {len(rows)} alert outcome(s) in {self.log}, will retry: "
                                 f"{str(e).splitlines()[0] if str(e) else type(e).__name__}", said_once=False)
            else:
                self._write_warned = False

    def _keep(self, rows: list[tuple[Any, ...]], warning: str, said_once: bool) -> None:
        with self._lock:
            self._unwritten[:0] = rows
            del self._unwritten[:-UNWRITTEN_MAX]
        if said_once:
            if not self._no_table_said:
                self._no_table_said = True
                logger.warning("%s", warning)
        elif not self._write_warned:
            self._write_warned = True
            logger.warning("%s", warning)


def _row(notice: Notice, result: ChannelOutcome) -> tuple[Any, ...]:
    rule = notice.rule
    return (notice.alert_id, datetime.now(UTC), rule.name, notice.kind, rule.metric, rule.window.text,
            notice.period_start, rule.scope, notice.scope_value, notice.value, rule.threshold, notice.summary(),
            result.channel.kind, result.target, result.outcome, result.detail, result.attempts)
