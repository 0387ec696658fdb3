"""Where records go: a spool file first, then one DuckDB file, written by one thread in batches.

What is guaranteed. `RecordStore.append` puts the row into the spool (spool.py: one `os.write` of one JSON line to
an O_APPEND file) before it returns, and the Recorder calls it before the answer's last byte goes to the client.
- A crash of the process (kill -9, OOM kill): nothing answered is lost. The next start replays the spool into DuckDB
  and skips rows (request_id + created_at) DuckDB already has, so none is written twice.
- A power loss or kernel crash: rows the OS had not yet written back can be lost; with
  `storage.spool_fsync_interval_s` > 0, at most that many seconds of rows.

How rows get into DuckDB. The writer thread reads the spool in batches and appends each batch in one transaction (DuckDB
parses the spooled lines itself: row_ingest.py). A batch gathers for `batch_window_s` (0.25 s), and for
`busy_batch_window_s` (1 s) while rows keep coming, as each transaction costs ~15 ms of CPU however small. It goes
through one connection the writer keeps from batch to batch while rows flow (opening and closing a DuckDB file costs
more CPU than writing a batch). It lets go of the file after `idle_release_s` without a batch, at once when a reader in
another process asks for it (`llmtap` commands do, finding it held; batch_writer.py), after a failed write, and at
shutdown: the duckdb CLI gets in whenever the gateway is quiet, `llmtap` commands within a few tenths of a second under
load. While it holds the file its wait is `HOLDING_TICK_S` long, so it sees a request between batches too. A segment of
the spool is removed once all its rows are in DuckDB. The writer never dies; it tells two kinds of failure apart:
- the storage (file held by another process, disk full, read-only file system): the batch is retried with backoff
  (at most `MAX_BACKOFF_S`) until the cause clears, with no restart. Rows wait in the spool; when the spool's own
  directory cannot take them, in a fallback directory; when no spool can, in memory (up to
  `storage.max_memory_rows`; past that they are lost and counted). The state shows in the health file
  (store_health.py, `llmtap status`) and as an ERROR log line every `LOG_EVERY_S`.
- one row's values (DuckDB refuses them): the batch is bisected within one connection to find the refused rows; each
  is written without its bodies, saying why, and one still refused is kept in `<log>.rejected.jsonl`
  (batch_writer.py).
At shutdown DuckDB has `shutdown_wait_s` to take what is left; rows it did not take stay in the spool for the next
start. `rows_lost` counts the rows nothing could keep (the gateway then exits with status 1).
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .batch_writer import BatchWriter, Entry, StorageFailure, connect, spooled
from .migrations import migrate
from .spool import Segment, Spool, count_rows, encode_row
from .store_health import Health, HealthFile, now_iso

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 2.0  # a storage failure is retried at least this often
FAILING_AFTER_S = 2.0  # a failure shorter than this (a reader holding the file a moment) is not reported
LOG_EVERY_S = 30.0
TICK_S = 1.0  # the writer's pace when idle: health file, fsync, removing written segments
HOLDING_TICK_S = 0.1  # the writer's pace while it holds the file: a reader asking waits no longer than this
BUSY_ROWS = 10  # this many rows in one go (40 rows/s in the 0.25 s window) means rows keep coming: gather longer
@dataclass
class _Batch:
    entries: list[Entry] = field(default_factory=list)
    read_to: dict[int, int] = field(default_factory=dict)  # spool segment seq -> offset read up to
    finished: list[Segment] = field(default_factory=list)  # closed segments read to their end
    spool_rows: int = 0  # lines read from the spool (unreadable ones included)
    memory_rows: int = 0  # the first rows of the memory queue
    full: bool = False  # it took as many rows or bytes as one batch may: more are waiting


class RecordStore:
    """The rows of the `requests` table on their way to DuckDB. See the module docstring for what it guarantees."""

    def __init__(self, path: Path, batch_window_s: float = 0.25, max_batch: int = 5000, shutdown_wait_s: float = 15.0,
                 *, busy_batch_window_s: float = 1.0, fsync_interval_s: float = 0.0, max_memory_rows: int = 100_000,
                 fallback_spool_dir: Path | None = None, max_batch_bytes: int = 64 * 1024 * 1024,
                 idle_release_s: float = 1.0, reader_turn_s: float = 0.3):
        self.path = path
        self.spool = Spool(path, fallback_spool_dir)
        self.batches = BatchWriter(path, path.with_name(path.name + ".rejected.jsonl"), self.spool.fallback_dir,
                                   idle_release_s=idle_release_s, reader_turn_s=reader_turn_s)
        self.health_file = HealthFile(path, self.spool.fallback_dir)
        self.batch_window_s = batch_window_s
        self.busy_batch_window_s = max(batch_window_s, busy_batch_window_s)
        self._last_drain_rows = 0  # rows the writer's last drain wrote, from the spool and memory
        self.max_batch = max_batch
        self.max_batch_bytes = max_batch_bytes
        self.shutdown_wait_s = shutdown_wait_s
        self.fsync_interval_s = fsync_interval_s
        self.max_memory_rows = max_memory_rows
        self.rows_lost = 0  # rows nothing could keep (more counters: `batches`)
        self._memory: deque[dict[str, Any]] = deque()  # rows no spool could take
        self._memory_lock = threading.Lock()
        self._committed: dict[int, int] = {}  # spool segment seq -> offset whose rows are all in DuckDB
        self._stuck_segments: set[int] = set()  # written, but the file system would not let them be removed
        self._leftover_rows = 0
        self._spool_rows_done = 0
        self._wakeup = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._closing_since = 0.0
        self._failure: str | None = None  # why DuckDB does not take rows, while it does not
        self._failure_started: float | None = None
        self._failing = False  # the failure has lasted FAILING_AFTER_S: reported
        self._failure_logged_at = -LOG_EVERY_S
        self._lost_logged_at = -LOG_EVERY_S
        self._health = Health(since=now_iso(), pid=os.getpid())
        self._health_written_at = -1.0
        self._synced_at = time.monotonic()

    @property
    def spill_path(self) -> Path:
        """Where rows DuckDB has not taken yet wait (the spool directory; the name older llmtap used)."""
        return self.spool.primary_dir

    @property
    def written(self) -> int:
        """Rows written to DuckDB since `open`."""
        return self.batches.written

    @property
    def rows_waiting(self) -> int:
        """Rows not yet in DuckDB: in the spool (this run's and a previous run's) or in memory."""
        spooled = self._leftover_rows + self.spool.rows_appended - self._spool_rows_done
        return max(0, spooled) + len(self._memory)

    def open(self) -> None:
        """Create or migrate the file, take the spool (a previous run's rows are replayed), start the writer."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with connect(self.path, timeout_s=30) as db:
            applied = migrate(db)
        if applied:
            logger.info(f"llmtap: {self.path}: applied {', '.join(applied)}")
        leftovers = self.spool.open()
        self._leftover_rows = sum(count_rows(s) for s in leftovers)
        if self._leftover_rows:
            logger.info(f"llmtap: replaying {self._leftover_rows:,} rows a previous run left in its spool "
                        "(rows the log already has are skipped)")
        self._write_health(force=True)
        self._thread = threading.Thread(target=self._run, name="llmtap-store", daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any]) -> None:
        """Keep one row (column name -> value) until DuckDB has it: in the spool before this returns, else in
        memory. Quick (one write to the page cache), and never raises."""
        try:
            try:
                line = encode_row(record)
            except (TypeError, ValueError) as e:  # a value JSON cannot hold: the row can only wait in memory
                logger.error(f"llmtap: the row of {record.get('request_id')} cannot be spooled ({e})")
                line = None
            if line is None or not self.spool.append(line):
                self._keep_in_memory(record)
        except Exception:  # a bug here must not cost the call its answer
            logger.exception("llmtap: spooling a row failed")
            self._keep_in_memory(record)
        self._wakeup.set()

    def close(self) -> None:
        """Write what DuckDB takes within `shutdown_wait_s`, leave the rest in the spool, stop the writer."""
        if self._thread is None:
            return
        self._closing_since = time.monotonic()
        self._stopping.set()
        self._wakeup.set()
        self._thread.join()
        self._thread = None

    # -- the writer thread ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                woke = self._wait(self._wakeup, TICK_S)
                self._wakeup.clear()
                if woke and not self._stopping.is_set():
                    self._wait(self._stopping, self._gathering_s(), idle=False)  # let a batch gather
                finished = self._drain()
                self._tick()
                if self._stopping.is_set() or not finished:
                    break
            except Exception:  # a bug must not end logging: the rows are still in the spool
                logger.exception("llmtap: the store's writer failed; it carries on")
                if self._stopping.is_set() and time.monotonic() - self._closing_since > self.shutdown_wait_s:
                    break
                time.sleep(MAX_BACKOFF_S)
        try:
            self._finish()
        except Exception:
            logger.exception("llmtap: finishing the store failed")

    def _wait(self, event: threading.Event, timeout_s: float, idle: bool = True) -> bool:
        """Wait up to `timeout_s` for `event`; while the writer holds the file, in `HOLDING_TICK_S` steps, letting
        go of it when a reader asks or, when `idle` (no row waits), no batch came for a while."""
        deadline = time.monotonic() + timeout_s
        while True:
            left_s = deadline - time.monotonic()
            if self.batches.holding:
                left_s = min(left_s, HOLDING_TICK_S)
            if left_s <= 0 or event.wait(left_s):
                return event.is_set()
            self.batches.give_way_if_asked()
            if idle:
                self.batches.release_if_idle()

    def _gathering_s(self) -> float:
        """How long the next batch gathers: `batch_window_s`, or `busy_batch_window_s` while rows keep coming (the last
        drain wrote at least `BUSY_ROWS`). A transaction costs DuckDB about 15 ms of CPU however few rows it holds (~60
        us per column of the table, and parsing): four a second under load took that from the event loop on a 2-core
        machine, one a second takes a quarter of it. Rows of a quiet gateway still reach the log within a quarter
        second."""
        return self.busy_batch_window_s if self._last_drain_rows >= BUSY_ROWS else self.batch_window_s

    def _drain(self) -> bool:
        """Write the rows there are now, in full batches while a backlog lasts; False when shutdown's wait ran out
        first. Rows that arrive while a batch is written wait for the next batch window rather than making a
        transaction of their own: each costs DuckDB about 15 ms of CPU however few rows it holds."""
        self._last_drain_rows = 0
        while True:
            batch = self._collect()
            if not (batch.entries or batch.read_to or batch.finished):
                return True
            if not self._write_until_done(batch):
                return False
            self._commit(batch)
            self._last_drain_rows += batch.spool_rows + batch.memory_rows
            if not batch.full and not self._stopping.is_set():
                return True

    def _collect(self) -> _Batch:
        """The next rows in spool order (a previous run's first), then rows waiting in memory."""
        batch = _Batch()
        rows_left, bytes_left = self.max_batch, self.max_batch_bytes
        for segment in self.spool.segments():
            if rows_left <= 0 or bytes_left <= 0:
                break
            if segment.seq in self._stuck_segments:
                continue
            closed = segment.closed  # read before the file: a segment closed later may still grow until then
            offset = self._committed.get(segment.seq, 0)
            lines, end = self.spool.read(segment, offset, bytes_left)
            if len(lines) > rows_left:
                lines, end = lines[:rows_left], lines[rows_left - 1][1]
            batch.entries += [spooled(line, segment.leftover) for line, _ in lines]
            batch.spool_rows += len(lines)
            rows_left -= len(lines)
            bytes_left -= end - offset
            if closed and rows_left > 0 and bytes_left > 0:
                size = self.spool.file_size(segment)
                if end < size and not lines:  # a torn last line: a write cut off by a crash or a full disk
                    logger.warning(f"llmtap: skipping a torn last line of {segment.path} ({size - end} bytes)")
                    end = size
                if end >= size:
                    batch.finished.append(segment)
            if segment not in batch.finished and end < self.spool.file_size(segment):
                batch.full = True  # the byte budget ended mid-line (or rows came since): more rows wait now
            if end > offset:
                batch.read_to[segment.seq] = end
        if rows_left > 0:
            with self._memory_lock:
                waiting = list(itertools.islice(self._memory, rows_left))
            batch.entries += [Entry(record, from_memory=True, leftover=False) for record in waiting]
            batch.memory_rows = len(waiting)
            rows_left -= len(waiting)
        batch.full = batch.full or rows_left <= 0 or bytes_left <= 0
        return batch

    def _write_until_done(self, batch: _Batch) -> bool:
        wait = 0.05
        while True:
            pending = [e for e in batch.entries if not e.done]
            if not pending:
                self._storage_ok()
                return True
            try:
                self.batches.write(pending)
            except StorageFailure as e:
                self._storage_failed(str(e))
                self._tick()
                if self._stopping.is_set():
                    left_s = self._closing_since + self.shutdown_wait_s - time.monotonic()
                    if left_s <= 0:
                        self._forget_written_memory_rows(batch)
                        return False
                    wait = min(wait, left_s)
                time.sleep(wait)
                wait = min(wait * 2, MAX_BACKOFF_S)

    def _commit(self, batch: _Batch) -> None:
        """The batch is in DuckDB: move past it in the spool and the memory queue, remove finished segments."""
        self._committed.update(batch.read_to)
        self._spool_rows_done += batch.spool_rows
        if batch.memory_rows:
            with self._memory_lock:
                for _ in range(batch.memory_rows):
                    self._memory.popleft()
        for segment in batch.finished:
            self._release(segment)
        if self._leftover_rows and not any(s.leftover for s in self.spool.segments()):
            logger.info(f"llmtap: replayed the previous run's spool "
                        f"({self.batches.rows_already_written:,} rows were already in the log)")
            self._spool_rows_done -= self._leftover_rows
            self._leftover_rows = 0

    def _release(self, segment: Segment) -> None:
        if self.spool.release(segment):
            self._committed.pop(segment.seq, None)
            self._stuck_segments.discard(segment.seq)
        else:
            self._stuck_segments.add(segment.seq)

    def _tick(self) -> None:
        now = time.monotonic()
        if self.fsync_interval_s > 0 and now - self._synced_at >= self.fsync_interval_s:
            self.spool.sync()
            self._synced_at = now
        self.spool.retry_primary()
        if self._stuck_segments:
            for segment in self.spool.segments():
                if segment.seq in self._stuck_segments:
                    self._release(segment)
        self._write_health()

    def _finish(self) -> None:
        """After the last batch: the file is let go; rows still in memory go to the spool (or are lost); written
        segments go."""
        self.batches.release()
        self.spool.seal()  # and try the log's own directory first again
        with self._memory_lock:
            left, self._memory = list(self._memory), deque()
        self.rows_lost += sum(1 for record in left if not self._spool_at_exit(record))
        if self.fsync_interval_s > 0:
            self.spool.sync()
        for segment in self.spool.segments():
            if self._committed.get(segment.seq, 0) >= self.spool.file_size(segment):
                self._release(segment)
        if self.rows_waiting:
            logger.error(f"llmtap: {self.rows_waiting:,} rows could not be written to {self.path} by shutdown "
                         f"({self._failure or 'no time left'}); they wait in {self.spool.primary_dir} or "
                         f"{self.spool.fallback_dir}, and the next start writes them")
        if self.rows_lost:
            logger.error(f"llmtap: {self.rows_lost:,} rows were lost: neither {self.path}, its spool "
                         f"{self.spool.primary_dir} nor the fallback {self.spool.fallback_dir} could take them")
        self._health.running = False
        self._write_health(force=True)
        self.spool.close()

    def _spool_at_exit(self, record: dict[str, Any]) -> bool:
        try:
            return self.spool.append(encode_row(record))
        except (TypeError, ValueError):
            return False

    def _forget_written_memory_rows(self, batch: _Batch) -> None:
        """Shutdown ends mid-batch: memory rows DuckDB already took must not be spooled for the next start."""
        written = {id(e.record) for e in batch.entries if e.from_memory and e.done}
        if written:
            with self._memory_lock:
                self._memory = deque(r for r in self._memory if id(r) not in written)

    # -- failure, recovery and health -----------------------------------------------------------------------------

    def _keep_in_memory(self, record: dict[str, Any]) -> None:
        with self._memory_lock:
            if len(self._memory) < self.max_memory_rows:
                self._memory.append(record)
                return
        self.rows_lost += 1
        now = time.monotonic()
        if now - self._lost_logged_at >= LOG_EVERY_S:
            self._lost_logged_at = now
            logger.error(f"llmtap: rows are being lost ({self.rows_lost:,} so far): no spool takes them "
                         f"({self.spool.last_error}) and {self.max_memory_rows:,} rows already wait in memory")

    def _storage_failed(self, reason: str) -> None:
        now = time.monotonic()
        if self._failure_started is None:
            self._failure_started = now
        self._failure = reason
        if not self._failing and (now - self._failure_started >= FAILING_AFTER_S or self._stopping.is_set()):
            self._failing = True
        if self._failing and now - self._failure_logged_at >= LOG_EVERY_S:
            self._failure_logged_at = now
            logger.error(f"llmtap: cannot write to {self.path}: {reason}; {self.rows_waiting:,} rows wait "
                         f"{self._where_rows_wait()}; retrying at least every {MAX_BACKOFF_S:g} s")

    def _storage_ok(self) -> None:
        if self._failure_started is None:
            return
        if self._failing:
            logger.warning(f"llmtap: writing to {self.path} again after "
                           f"{time.monotonic() - self._failure_started:.0f} s ({self._failure})")
        self._failure = self._failure_started = None
        self._failing = False
        self._failure_logged_at = -LOG_EVERY_S
        self._write_health(force=True)

    def _where_rows_wait(self) -> str:
        where = self.spool.current_dir
        if where is None:
            return "in memory" if self._memory else "in the spool"
        return f"in the {'fallback ' if where == self.spool.fallback_dir else ''}spool {where}"

    def _write_health(self, force: bool = False) -> None:
        """The health file, at most once a second unless the state changed."""
        problems = []
        if self._failing:
            problems.append(f"cannot write to {self.path}: {self._failure}")
        if self.spool.last_error:
            problems.append(f"cannot spool rows in {self.spool.last_error}")
        if self.rows_lost:
            problems.append(f"{self.rows_lost:,} rows lost: no spool or memory could keep them")
        state = "failing" if problems else "ok"
        health = self._health
        if state != health.state:
            health.state, health.since, force = state, now_iso(), True
        now = time.monotonic()
        if not force and now - self._health_written_at < TICK_S:
            return
        health.reason = "; ".join(problems) or None
        health.rows_waiting, health.rows_lost, health.rows_written = self.rows_waiting, self.rows_lost, self.written
        where = self.spool.current_dir
        health.spool = str(where) if where else ("memory" if self._memory else str(self.spool.primary_dir))
        self.health_file.write(health)
        self._health_written_at = now


