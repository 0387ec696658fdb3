"""The spool: every row as one JSON line in an append-only file, before DuckDB has it.

`Spool.append` opens the current segment with O_APPEND, makes one `os.write` of the whole line and closes it again.
Once that write returned, the row is in the kernel's page cache: a crash of the process (kill -9) cannot lose it; a
power loss can, unless the writer thread fsyncs (`storage.spool_fsync_interval_s`). No file stays open for writing
between rows, so a file system can still be remounted read-only under a running gateway.

Segments live in `<log>.spool/` beside the DuckDB file. When that directory cannot take a row (disk full, read-only
file system, permissions) the row goes to a fallback directory on another path (`storage.fallback_spool_dir`, else
the system temp directory), and the log's own directory is tried again every few seconds. A segment is removed once
every row in it is in DuckDB; segments a previous run left behind are replayed at the next start.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SEGMENT_BYTES = 8 * 1024 * 1024  # a new segment after this much; a committed segment is removed
PRIMARY_RETRY_S = 5.0  # while rows go to the fallback, how often the log's own directory is tried again
LOG_EVERY_S = 30.0
LEGACY_SEQ = -1  # `<log>.pending.jsonl`, the shutdown spill file of llmtap before the spool


@dataclass
class Segment:
    """One spool file. Rows are only ever appended to the newest (`closed` False); older ones are only read."""

    seq: int
    path: Path
    fallback: bool
    leftover: bool  # from a previous run: some of its rows may already be in DuckDB
    closed: bool = False
    size: int = 0  # bytes this process appended (a leftover's size is read from disk)


def spool_dir(db_path: Path) -> Path:
    """The spool beside the log."""
    return db_path.with_name(db_path.name + ".spool")


def fallback_spool_dir(db_path: Path, configured: Path | None = None) -> Path:
    """The spool used when the log's own directory cannot be written: one per log file, named by its path."""
    tag = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:16]
    return (configured or Path(tempfile.gettempdir())) / f"llmtap-spool-{tag}"


class Spool:
    """Append-only JSON-lines segments: appended on the event loop, read and removed by the writer thread."""

    def __init__(self, db_path: Path, fallback_dir: Path | None = None):
        self.primary_dir = spool_dir(db_path)
        self.fallback_dir = fallback_spool_dir(db_path, fallback_dir)
        self.legacy_path = db_path.with_name(db_path.name + ".pending.jsonl")
        self.rows_appended = 0
        self.fsyncs = 0
        self.last_error: str | None = None  # why the last row did not go to the log's own directory, if it did not
        self._segments: list[Segment] = []
        self._current: Segment | None = None
        self._next_seq = 0
        self._retry_primary_at = 0.0
        self._unsynced: set[Path] = set()
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._logged_at: dict[str, float] = {}

    # -- set-up and tear-down -------------------------------------------------------------------------------------

    def open(self) -> list[Segment]:
        """Take the spool for this process and return the segments a previous run left (oldest first).

        Raises OSError when the spool directory cannot be made or another gateway already uses it."""
        self.primary_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.primary_dir / "lock", os.O_RDONLY | os.O_CREAT, 0o600)  # read-only: no writer on the fs
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OSError(errno.EBUSY,
                          f"another llmtap gateway is writing this log (it holds {self.primary_dir}/lock)") from None
        self._lock_fd = fd
        leftovers = [self._leftover(path, fallback=False) for path in _segment_files(self.primary_dir)]
        leftovers += [self._leftover(path, fallback=True) for path in _segment_files(self.fallback_dir)]
        if self.legacy_path.exists():
            leftovers.append(Segment(LEGACY_SEQ, self.legacy_path, False, True, True, self.legacy_path.stat().st_size))
        leftovers.sort(key=lambda s: s.seq)
        self._segments = leftovers
        self._next_seq = max((s.seq for s in leftovers), default=0) + 1
        return list(leftovers)

    def close(self) -> None:
        """Give the spool up; remove its directories when nothing waits in them."""
        with self._lock:
            self._current = None
            waiting = bool(self._segments)
        if not waiting:
            for directory in (self.fallback_dir, self.primary_dir):
                _remove_empty_dir(directory, also=("lock",) if directory == self.primary_dir else ())
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the event loop's side ------------------------------------------------------------------------------------

    def append(self, line: bytes) -> bool:
        """Append one encoded row; False when no spool directory could take it."""
        with self._lock:
            current = self._current
            if current is not None and (current.size >= SEGMENT_BYTES or
                                        (current.fallback and time.monotonic() >= self._retry_primary_at)):
                current.closed = True
                current = self._current = None
            if current is not None:
                if self._write(current, line):
                    return True
                current = self._current = None
            for fallback in (False, True):
                if not fallback and time.monotonic() < self._retry_primary_at:
                    continue  # the log's directory failed a moment ago: do not pay for a failing write per row
                segment = self._new_segment(fallback)
                if segment is not None and self._write(segment, line):
                    self._current = segment
                    if not fallback:
                        self.last_error = None
                    return True
                if not fallback:
                    self._retry_primary_at = time.monotonic() + PRIMARY_RETRY_S
            return False

    def _new_segment(self, fallback: bool) -> Segment | None:
        directory = self.fallback_dir if fallback else self.primary_dir
        seq = self._next_seq
        self._next_seq += 1
        path = directory / f"{seq:012d}.jsonl"
        try:
            if fallback:
                private_dir(directory)
            else:
                directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as e:
            self._failed(directory, e)
            return None
        segment = Segment(seq, path, fallback, leftover=False)
        self._segments.append(segment)
        return segment

    def _write(self, segment: Segment, line: bytes) -> bool:
        try:
            fd = os.open(segment.path, os.O_WRONLY | os.O_APPEND)
        except OSError as e:
            segment.closed = True
            self._failed(segment.path.parent, e)
            return False
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (wrote {written} of {len(line)} bytes)")
        except OSError as e:
            try:  # a torn line would spoil the next one: cut it off (the reader also skips a torn last line)
                os.ftruncate(fd, segment.size)
            except OSError:
                pass
            segment.closed = True
            self._failed(segment.path.parent, e)
            return False
        finally:
            os.close(fd)
        segment.size += len(line)
        self.rows_appended += 1
        self._unsynced.add(segment.path)
        return True

    def _failed(self, directory: Path, error: OSError) -> None:
        reason = f"{directory}: {error.strerror or error}"
        if directory == self.primary_dir or self.last_error is None:
            self.last_error = reason
        now = time.monotonic()
        if now - self._logged_at.get(str(directory), -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged_at[str(directory)] = now
            then = f"rows go to {self.fallback_dir}" if directory == self.primary_dir else "rows wait in memory"
            logger.error(f"llmtap: cannot append to the spool in {reason}; {then}")

    # -- the writer thread's side ---------------------------------------------------------------------------------

    def retry_primary(self) -> None:
        """While rows go to the fallback (or nowhere), check now and then whether the log's own directory takes
        them again, so the spool (and the health it reports) recovers without waiting for the next row."""
        with self._lock:
            if self.last_error is None or time.monotonic() < self._retry_primary_at:
                return
            self._retry_primary_at = time.monotonic() + PRIMARY_RETRY_S
        probe = self.primary_dir / "probe"
        try:  # room for a segment's first rows, not just a new name: a full disk still creates files
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.posix_fallocate(fd, 0, 64 * 1024)
            finally:
                os.close(fd)
                probe.unlink(missing_ok=True)
        except OSError:
            return
        with self._lock:
            if self._current is not None and self._current.fallback:
                self._current.closed = True
                self._current = None
            self._retry_primary_at = 0.0
            self.last_error = None

    def seal(self) -> None:
        """Close the current segment: the next row starts a new one, in the log's own directory if it can be
        written (and this one can be removed once its rows are in DuckDB)."""
        with self._lock:
            if self._current is not None:
                self._current.closed = True
                self._current = None
            self._retry_primary_at = 0.0

    @property
    def current_dir(self) -> Path | None:
        """Where rows go now (None: nowhere yet, or into memory after the last append failed)."""
        current = self._current
        return current.path.parent if current is not None else None

    def segments(self) -> list[Segment]:
        """The segments that may hold rows, oldest first. Check `closed` before reading: a segment closed before
        it was read to its end holds no more rows than what was read."""
        with self._lock:
            return list(self._segments)

    def read(self, segment: Segment, offset: int, max_bytes: int) -> tuple[list[tuple[bytes, int]], int]:
        """Complete lines from `offset`, about `max_bytes` of them (at least one, however long): (line, end offset)
        pairs, and the offset where the unread part starts."""
        lines: list[tuple[bytes, int]] = []
        try:
            with open(segment.path, "rb") as f:
                f.seek(offset)
                data = f.read(max_bytes)
                while data and b"\n" not in data:  # one line longer than max_bytes: read on to its end
                    more = f.read(max_bytes)
                    if not more:
                        break
                    data += more
        except FileNotFoundError:
            return [], offset
        end = offset
        for line in data.split(b"\n")[:-1]:
            end += len(line) + 1
            lines.append((line, end))
        return lines, end

    def file_size(self, segment: Segment) -> int:
        try:
            return segment.path.stat().st_size
        except FileNotFoundError:
            return 0

    def release(self, segment: Segment) -> bool:
        """Remove a closed segment whose rows are all in DuckDB; False when the file system refuses (kept, and
        tried again later)."""
        try:
            segment.path.unlink(missing_ok=True)
        except OSError:
            return False
        with self._lock:
            if segment in self._segments:
                self._segments.remove(segment)
            self._unsynced.discard(segment.path)
        return True

    def sync(self) -> None:
        """fsync the segments appended to since the last sync (and their directories), off the event loop."""
        with self._lock:
            paths, self._unsynced = self._unsynced, set()
        for path in paths | {p.parent for p in paths}:
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError:
                pass  # a failing disk shows up in the writes themselves
        if paths:
            self.fsyncs += 1

    def _leftover(self, path: Path, fallback: bool) -> Segment:
        return Segment(int(path.stem), path, fallback, leftover=True, closed=True, size=path.stat().st_size)


def private_dir(directory: Path) -> None:
    """Make `directory` (mode 0700) or check that an existing one is ours alone: a fallback under a shared temp
    directory could have been made by another user to read the rows (bodies included)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OSError(errno.EPERM, f"not a private directory of this user (mode {stat.filemode(info.st_mode)}, "
                                   f"owner uid {info.st_uid})")


def count_rows(segment: Segment) -> int:
    """How many rows a segment holds (its complete lines)."""
    try:
        with open(segment.path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except OSError:
        return 0


# A column's value written as a one-key object under one of these is a tagged value, not the row's own data.
TAGS = frozenset({"$datetime", "$decimal", "$dict"})


def encode_row(record: dict[str, Any]) -> bytes:
    """One row as one JSON line; datetimes and Decimals are tagged so `decode_row` gives them back, and so is a map
    that would read as a tag (a client's property named `$decimal`)."""
    return json.dumps(_tags_escaped(record), default=_json_default, separators=(",", ":")).encode() + b"\n"  # ASCII


def decode_row(line: bytes) -> dict[str, Any]:
    """The row `encode_row` wrote (a `.pending.jsonl` line of older llmtap too). ValueError for a line that is not
    one: not JSON, or JSON but not an object (a corrupted spool; the writer skips it rather than retry for ever)."""
    row = json.loads(line)
    if type(row) is not dict:
        raise ValueError(f"not a row but a JSON {type(row).__name__}")
    return _revive(row)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    raise TypeError(f"cannot spool {type(value).__name__}")


def _revive(record: dict[str, Any]) -> dict[str, Any]:
    for key, value in record.items():
        if type(value) is dict and len(value) == 1:  # only a tagged value needs a look (a row has a few)
            try:
                if "$datetime" in value:
                    record[key] = datetime.fromisoformat(value["$datetime"])
                elif "$decimal" in value:
                    record[key] = Decimal(value["$decimal"])
                elif "$dict" in value:
                    record[key] = value["$dict"]
            except (ValueError, TypeError, ArithmeticError):
                pass  # not a tag but a client's map, spooled by an llmtap older than `_tags_escaped`
    return record


def _looks_tagged(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and not TAGS.isdisjoint(value)


def _tags_escaped(record: dict[str, Any]) -> dict[str, Any]:
    """`record`, or a copy whose maps that would read back as tagged values are wrapped as {"$dict": map}."""
    for value in record.values():  # a plain loop: this runs for every call
        if _looks_tagged(value):
            return {key: {"$dict": value} if _looks_tagged(value) else value for key, value in record.items()}
    return record


def _segment_files(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.glob("*.jsonl") if p.stem.isdigit())
    except OSError:
        return []


def _remove_empty_dir(directory: Path, also: tuple[str, ...] = ()) -> None:
    try:
        for name in also:
            (directory / name).unlink(missing_ok=True)
        directory.rmdir()
    except OSError:
        pass  # not empty (rows wait in it), or already gone
