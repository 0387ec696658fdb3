"""Writing batches of rows into DuckDB: one connection held while rows flow, refused rows found by bisection, nothing
written twice.

`BatchWriter.write` appends a batch in one transaction. The connection the first batch opens serves the next ones:
opening a DuckDB file costs 20-30 ms of CPU and closing it about 10 ms, more than writing a batch of a few dozen rows.
DuckDB lets one process at a time have the file, so the writer lets go of it
- when no batch came for `idle_release_s` (`release_if_idle`): a quiet gateway leaves the file to any DuckDB client;
- when a reader in another process asks (`give_way_if_asked`): `connect` and `read_log`, finding the file held, create
  `<log>.read-request` beside it; the writer closes, removes the request and waits `reader_turn_s` before opening again,
  so the reader, retrying every 50 ms, gets in;
- after a failed write (the next one opens afresh), and when the store closes (`release`).

A batch of rows this run spooled goes in as its spool lines, which DuckDB parses itself (`SpooledLines`): the writer
thread then hardly holds the GIL the event loop needs. Decoded rows (from memory, a previous run's spool, a batch
DuckDB would not read as lines) go in through a staging table (`Staging`). See row_ingest.py.

When DuckDB refuses a batch for one row's values, the batch is split in halves within the same connection until the
refused rows stand alone (a few thousand rows with a couple of bad ones cost a few dozen appends, not one open/close
per row); each is written without its bodies, saying why, and one still refused is kept in the rejected file. A
failure of the file or disk instead (`is_storage_error`) raises `StorageFailure` and blames no row: the caller
retries the rows not yet marked done.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from .log_file import LOCK_HELD, first_line
from .row_ingest import TABLE, SpooledLines, Staging
from .spool import decode_row, encode_row, private_dir

logger = logging.getLogger(__name__)

TORN_READ = "could not read enough bytes"  # DuckDB's words when it read a page another process was still writing
STORAGE_ERRORS = (duckdb.IOException, duckdb.TransactionException, duckdb.FatalException, duckdb.PermissionException,
                  duckdb.OutOfMemoryException, duckdb.InterruptException, OSError, MemoryError)
STORAGE_WORDS = ("no space left", "read-only file system", "disk quota", "has been invalidated", "could not write",
                 "could not read", "input/output error", "could not set lock")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The logs this process writes. DuckDB refuses, within one process, a read-only connection to a file another
# connection has open for writing (and the reverse): reads in the gateway's own process (its dashboard) open the file
# as the writer does, and share its database, where reading and appending go on side by side.
_WRITTEN_HERE: set[Path] = set()
# DuckDB's buffer pool defaults to 80% of RAM and keeps the blocks it wrote or read cached while the database is
# open: held from batch to batch, the gateway's RSS grew with the rows written and with what its dashboard read
# (+270 MB after one report over a 10M-row log). Capped, the cache stays bounded; DuckDB spills heavy queries to disk.
WRITER_MEMORY_LIMIT_MB = 512
# Held for good, the open database grew the gateway's RSS 13.7% over the benchmark's 100,000 calls (200 -> 227 MiB);
# letting go of it once a minute costs one open and close (~40 ms of CPU) and ended the same run 4% over (169 -> 176).
MAX_HOLD_S = 60.0
RETRY_OPEN_S = 0.05  # how often a reader tries again for a file another process holds
READ_REQUEST_SUFFIX = ".read-request"


class StorageFailure(Exception):
    """The file or its disk refused a write: every row waits and is retried, none is blamed."""


def is_storage_error(error: BaseException) -> bool:
    """Whether `error` is about the file or disk (retry later) rather than one row's values (salvage the row)."""
    return isinstance(error, STORAGE_ERRORS) or any(word in str(error).lower() for word in STORAGE_WORDS)


@dataclass
class Entry:
    """One row on its way into DuckDB: a decoded record, or a spool line DuckDB may read itself."""

    record: dict[str, Any] | None  # None: not decoded, `line` holds the row
    from_memory: bool
    leftover: bool  # from a previous run's spool: DuckDB may have it already (decoded to look it up)
    done: bool = False  # in DuckDB or in the rejected file (or an unreadable line, skipped)
    line: bytes | None = None  # the row as `spool.encode_row` wrote it, without its newline


def spooled(line: bytes, leftover: bool = False) -> Entry:
    """A spooled row, not decoded: DuckDB parses this run's rows itself; a previous run's are decoded by `write`."""
    return Entry(None, from_memory=False, leftover=leftover, line=line)


class BatchWriter:
    """Appends batches of rows to the `requests` table of one DuckDB file, held open from one batch to the next
    until it is idle, a reader in another process asks for the file, a write fails, or `release`."""

    def __init__(self, path: Path, rejected_path: Path, fallback_dir: Path, *, idle_release_s: float = 1.0,
                 reader_turn_s: float = 0.3, memory_limit_mb: int = WRITER_MEMORY_LIMIT_MB,
                 max_hold_s: float = MAX_HOLD_S):
        self.path = path
        self.rejected_path = rejected_path  # rows DuckDB refused even without bodies
        self.fallback_dir = fallback_dir  # for the rejected file when the log's directory cannot take it
        self.request_path = read_request_path(path)
        self.idle_release_s = idle_release_s
        self.reader_turn_s = reader_turn_s
        self.memory_limit_mb = memory_limit_mb  # for the whole database while held: in-process reads share it
        self.max_hold_s = max_hold_s
        self.written = 0
        self.rows_salvaged = 0  # written without their bodies
        self.rows_rejected = 0  # kept in the rejected file
        self.rows_already_written = 0  # replayed rows DuckDB had already
        self.connections_opened = 0  # one per hold of the file (and per retry), however many batches or refused rows
        self.turns_given = 0  # times the file was let go because a reader in another process asked
        self.line_batches = 0  # batches DuckDB read as spool lines
        self.line_batches_refused = 0  # ... and those it would not, written the Python way instead
        self.lines_unreadable = 0  # spool lines that are not a row (skipped)
        self._db: duckdb.DuckDBPyConnection | None = None
        self._staging: Staging | None = None  # made on each connection (a temporary table lives with it)
        self._lines: SpooledLines | None = None  # likewise, for the SQL naming this file's columns
        self._written_at = 0.0  # monotonic time of the last batch written through `_db`
        self._opened_at = 0.0  # monotonic time `_db` was opened
        self._reader_turn_ends = 0.0  # the file is not taken back before this monotonic time
        _WRITTEN_HERE.add(path.resolve())

    @property
    def holding(self) -> bool:
        """Whether the writer has the file open now (other processes cannot open it)."""
        return self._db is not None

    def write(self, entries: list[Entry]) -> None:
        """Append `entries` through the held connection (opened if need be), marking each done as it lands. A
        reader's request is honoured first; a failure closes the connection, so the retry opens the file afresh."""
        self.give_way_if_asked()
        try:
            db = self._connection()
            self._decode([e for e in entries if e.leftover and e.record is None and not e.done])
            self._skip_already_written(db, entries)
            self._insert_lines(db, [e for e in entries if e.record is None and not e.done])
            self._append_bisecting(db, [e for e in entries if not e.done])
        except StorageFailure:
            self.release()
            raise
        except Exception as e:  # anything else outside one row's values: wait and retry, never drop
            self.release()
            raise StorageFailure(first_line(e)) from e
        self._written_at = time.monotonic()
        if self._written_at - self._opened_at >= self.max_hold_s:
            self.release()  # what DuckDB keeps while the file is open goes with it: the gateway's RSS stays flat

    def give_way_if_asked(self) -> None:
        """When a reader in another process asked for the file, close it, remove the request, and keep off the file
        for `reader_turn_s`. One stat of the request file when the writer holds the file; nothing otherwise."""
        if self._db is None or not os.path.exists(self.request_path):
            return
        self.release()
        _remove(self.request_path)
        self._reader_turn_ends = time.monotonic() + self.reader_turn_s
        self.turns_given += 1

    def release_if_idle(self) -> None:
        """Close the file when no batch was written for `idle_release_s`: a quiet gateway leaves it to any client."""
        if self._db is not None and time.monotonic() - self._written_at >= self.idle_release_s:
            self.release()

    def release(self) -> None:
        """Close the held connection, if any; the next `write` opens the file again."""
        db, self._db = self._db, None
        if db is None:
            return
        try:
            db.close()
        except Exception as e:  # a file already failing: the next write's open says why
            logger.debug(f"llmtap: closing {self.path} failed: {first_line(e)}")

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._db is None:
            turn_left_s = self._reader_turn_ends - time.monotonic()
            if turn_left_s > 0:  # a reader was just given the file: opening now would only take it back
                time.sleep(turn_left_s)
            self._db = _open(self.path, timeout_s=0, read_only=False)
            self.connections_opened += 1
            self._db.execute(f"SET memory_limit = '{self.memory_limit_mb}MB'")
            self._staging = Staging(self._db)
            self._lines = SpooledLines(self._db)
            _remove(self.request_path)  # a request from before this open was served (or is made again)
            self._written_at = self._opened_at = time.monotonic()
        return self._db

    def _insert_lines(self, db: duckdb.DuckDBPyConnection, entries: list[Entry]) -> None:
        """Have DuckDB read the spool lines of `entries` in one transaction; when it refuses them for their values,
        decode them for the Python way (`_append_bisecting`), which finds and salvages the row at fault."""
        if not entries:
            return
        assert self._lines is not None, "made with the connection"
        self.line_batches += 1
        try:
            self._lines.insert(db, self._chunks(entries), len(entries))
        except Exception as e:
            if is_storage_error(e):
                raise StorageFailure(first_line(e)) from e
            self.line_batches_refused += 1
            logger.debug(f"llmtap: DuckDB did not read {len(entries)} spooled rows ({first_line(e)}); "
                         "writing them row by row")
            self._decode(entries)
            return
        for entry in entries:
            entry.done = True
        self.written += len(entries)

    def _chunks(self, entries: list[Entry]) -> list[str]:
        """The lines of `entries` in chunks of at most 1/32 of the memory limit (a longer line alone): DuckDB needs
        8-10 times a chunk's text while it parses it, and a batch may hold 64 MB of lines (calls with big bodies)."""
        max_bytes = self.memory_limit_mb * 1024 * 1024 // 32
        chunks: list[str] = []
        chunk: list[bytes] = []
        size = 0
        for entry in entries:
            line = entry.line or b""
            if chunk and size + len(line) > max_bytes:
                chunks.append(b"\n".join(chunk).decode())
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        chunks.append(b"\n".join(chunk).decode())
        return chunks

    def _decode(self, entries: list[Entry]) -> None:
        for entry in entries:
            try:
                entry.record = decode_row(entry.line or b"")
            except ValueError as e:
                logger.warning(f"llmtap: skipping an unreadable line of the spool of {self.path}: {e}")
                self.lines_unreadable += 1
                entry.done = True

    def _append(self, db: duckdb.DuckDBPyConnection, records: list[dict[str, Any]]) -> None:
        assert self._staging is not None, "made with the connection"
        self._staging.append(db, records)

    def _append_bisecting(self, db: duckdb.DuckDBPyConnection, entries: list[Entry]) -> None:
        """Append all; when DuckDB refuses a part for its values, split it until the refused rows stand alone."""
        parts = [entries] if entries else []
        while parts:
            part = parts.pop()
            try:
                self._append(db, [_decoded(e) for e in part])
            except Exception as e:
                if is_storage_error(e):
                    raise StorageFailure(first_line(e)) from e
                if len(part) == 1:
                    self._salvage(db, part[0], first_line(e))
                else:
                    middle = len(part) // 2
                    parts += [part[middle:], part[:middle]]  # the first half is tried first
                continue
            for entry in part:
                entry.done = True
            self.written += len(part)

    def _salvage(self, db: duckdb.DuckDBPyConnection, entry: Entry, reason: str) -> None:
        """A row DuckDB refuses (a body it cannot take as JSON, say) is written without its bodies, saying why;
        one it still refuses is kept in the rejected file, never retried in a loop."""
        record = _decoded(entry)
        salvaged = {**record, "request_body": None, "response_body": None,
                    "error": "; ".join(filter(None, [_text(record.get("error")), f"bodies not stored: {reason}"]))}
        try:
            self._append(db, [salvaged])
        except Exception as e:
            if is_storage_error(e):
                raise StorageFailure(first_line(e)) from e
            self._reject(record, first_line(e))
        else:
            self.written += 1
            self.rows_salvaged += 1
        entry.done = True

    def _reject(self, record: dict[str, Any], reason: str) -> None:
        try:
            line = encode_row(record)
        except (TypeError, ValueError):
            line = (json.dumps(record, default=repr) + "\n").encode()
        for path in (self.rejected_path, self.fallback_dir / self.rejected_path.name):
            try:
                if path.parent == self.fallback_dir:
                    private_dir(path.parent)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    if os.write(fd, line) == len(line):
                        break
                finally:
                    os.close(fd)
            except OSError:
                continue
        else:
            raise StorageFailure(f"cannot keep a refused row in {self.rejected_path}")
        self.rows_rejected += 1
        logger.error(f"llmtap: DuckDB refused the row of {record.get('request_id')} even without bodies ({reason}); "
                     f"kept in {path}")

    def _skip_already_written(self, db: duckdb.DuckDBPyConnection, entries: list[Entry]) -> None:
        """Replayed rows DuckDB already has (written just before a crash) are not written twice."""
        keys = {}
        times = []
        for entry in entries:
            if not entry.leftover or entry.done or entry.record is None:
                continue
            request_id, created_at = entry.record.get("request_id"), entry.record.get("created_at")
            if isinstance(request_id, str) and isinstance(created_at, datetime):
                keys[request_id, _epoch_us(created_at)] = entry
                times.append(created_at)
        if not keys:
            return
        found = db.execute(
            f"SELECT request_id, epoch_us(created_at) FROM {TABLE} WHERE created_at BETWEEN ? AND ? "
            "AND request_id IN (SELECT unnest(?::VARCHAR[]))",
            [min(times), max(times), list({request_id for request_id, _ in keys})],
        ).fetchall()
        for key in found:
            if key in keys and not keys[key].done:
                keys[key].done = True
                self.rows_already_written += 1


@contextmanager
def connect(path: Path, timeout_s: float = 10.0, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the file, waiting up to `timeout_s` while another process holds it; closed on exit. Any other
    failure to open (not a DuckDB file, a directory, no permission) raises at once: waiting would not mend it."""
    db = _open(path, timeout_s, read_only)
    try:
        yield db
    finally:
        db.close()


def read_request_path(path: Path) -> Path:
    """The file a reader creates beside the log to ask the gateway's writer to let go of it (beside the file itself:
    a reader reaching the log through a symlink asks where the writer looks)."""
    real = path.resolve()
    return real.with_name(real.name + READ_REQUEST_SUFFIX)


def _open(path: Path, timeout_s: float, read_only: bool) -> duckdb.DuckDBPyConnection:
    """Open the file, retrying every `RETRY_OPEN_S` for `timeout_s` while another process holds it. A waiting
    opener in another process than the writer asks the writer for the file (the writer itself, with no time to wait,
    and reads in the writer's own process, which share its database, never ask)."""
    deadline = time.monotonic() + timeout_s
    may_ask = timeout_s > 0 and path.resolve() not in _WRITTEN_HERE
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as e:
            if time.monotonic() >= deadline or LOCK_HELD not in str(e).lower():
                raise
            if may_ask:  # every try: a writer that took the file back before this reader got in is asked again
                _ask_for_file(path)
            time.sleep(RETRY_OPEN_S)


def _ask_for_file(path: Path) -> None:
    try:
        os.close(os.open(read_request_path(path), os.O_WRONLY | os.O_CREAT, 0o644))
    except OSError:  # a directory this user cannot write: the reader gets in when the writer is idle
        pass


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


def read_log(path: Path, sql: str, params: list[Any] | None = None,
             timeout_s: float = 10.0) -> tuple[list[str], list[tuple]]:
    """Column names and rows of a read-only query on the log, while a gateway may be writing it: waits for the
    gateway's lock, and reads again when DuckDB reads a page the gateway had not finished writing (seen with DuckDB
    2.0.1 as IOException "Could not read enough bytes", about one read in thousands beside a busy gateway)."""
    columns, _, rows = read_log_typed(path, sql, params, timeout_s)
    return columns, rows


_session = threading.local()  # `reading`'s open connection in this thread: (resolved path, connection)


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Within the block, this thread's reads of `path` (`read_log_typed`) share one connection, opened by the first
    and closed at the end: a view asking several questions at once (a dashboard page) opens the file once, not once
    per query (about 30-45 ms each over a million rows), and DuckDB keeps what it read for the next query. The file
    stays held for the block only, as for one read."""
    if getattr(_session, "open", None) is not None:  # nested: the outer block's connection serves
        yield
        return
    _session.open = (path.resolve(), None)
    try:
        yield
    finally:
        _, db = _session.open
        _session.open = None
        if db is not None:
            db.close()


def read_log_typed(path: Path, sql: str, params: list[Any] | None = None,
                   timeout_s: float = 10.0) -> tuple[list[str], list[str], list[tuple]]:
    """As `read_log`, with each column's DuckDB type too (`JSON`, `DECIMAL(18,10)`, …), for renderers that write a
    JSON column as JSON and money as money."""
    session = getattr(_session, "open", None)
    if session is not None and session[0] == path.resolve() and session[1] is not None:
        return _query(session[1], sql, params)
    deadline = time.monotonic() + timeout_s
    other_failures = 0
    while True:
        try:
            db = _open_for_reading(path, timeout_s)
            try:
                result = _query(db, sql, params)
            except BaseException:
                db.close()
                raise
            if session is not None and session[0] == path.resolve():
                _session.open = (session[0], db)  # kept for the block's next reads; `reading` closes it
            else:
                db.close()
            return result
        except duckdb.IOException as e:
            # A torn read mends by the next read; any other I/O error (not a DuckDB file, a directory) gets a few
            # quick tries, in case it was a torn read in other words, and is then reported at once, not after 10 s.
            torn = TORN_READ in str(e).lower()
            other_failures += not torn
            if time.monotonic() >= deadline or other_failures > 3:
                raise
            time.sleep(0.05)


def _open_for_reading(path: Path, timeout_s: float) -> duckdb.DuckDBPyConnection:
    db = _open(path, timeout_s, read_only=path.resolve() not in _WRITTEN_HERE)
    try:
        db.execute("SET TimeZone = 'UTC'")  # times read the same on every machine, as the periods are UTC
        db.execute("SET enable_progress_bar = false")  # a slow read would draw a bar on the command's stderr
    except BaseException:
        db.close()
        raise
    return db


def _query(db: duckdb.DuckDBPyConnection, sql: str,
           params: list[Any] | None) -> tuple[list[str], list[str], list[tuple]]:
    cursor = db.execute(sql, params or [])
    description = cursor.description or []
    columns, types = [d[0] for d in description], [str(d[1]) for d in description]
    return columns, types, cursor.fetchall() if columns else []


def _epoch_us(at: datetime) -> int:
    aware = at if at.tzinfo else at.replace(tzinfo=UTC)
    return (aware - EPOCH) // timedelta(microseconds=1)



def _decoded(entry: Entry) -> dict[str, Any]:
    assert entry.record is not None, "a spool line is decoded before it is written the Python way"
    return entry.record


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
