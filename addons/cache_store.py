"""Where cached answers live: a diskcache directory (SQLite plus files), bounded in bytes, least recently used out
first.

Each cache key holds a bucket of up to N answers (`Helicone-Cache-Bucket-Max-Size`), each with its own expiry. The
gateway calls this from one worker thread, never from mitmproxy's event loop, and keeps the buckets it used last in
memory (`HotBuckets`) so that a repeated hit does not wait for the disk; `llmtap cache` uses the store from the command
line, also while the gateway runs.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache

logger = logging.getLogger(__name__)

DB_FILE = "cache.db"  # diskcache's SQLite index; larger values live in files under two-hex-digit directories
MAX_ANSWER_SHARE = 8  # an answer larger than max_bytes / this is not stored: one answer must not flush the cache


@dataclass(frozen=True)
class Lookup:
    """What a bucket holds for a request: a hit (an answer and its index) when it is full, else how full it is."""

    answer: dict[str, Any] | None
    bucket_idx: int  # the answer's index on a hit; on a miss, the index the next stored answer gets

    @property
    def hit(self) -> bool:
        return self.answer is not None


def choose(entries: list[dict[str, Any]], bucket_max: int, now: float | None = None) -> Lookup:
    """Helicone's bucket rule: a full bucket serves one of its answers at random; one not yet full is a miss. Entries
    expired at `now` (default: the current time) do not count."""
    now = time.time() if now is None else now
    live = [e for e in entries if e["expires_at"] > now]
    if len(live) < bucket_max:
        return Lookup(None, len(live))
    index = random.randrange(len(live))
    return Lookup(live[index]["answer"], index)


class CacheUnreadable(Exception):
    """The cache's files are not a cache (garbage, or damaged): the message says which file and what to do."""


class CacheStore:
    def __init__(self, path: Path, max_bytes: int, clock: Callable[[], float] = time.time):
        self.path = path
        self.max_bytes = max_bytes
        self.clock = clock  # wall-clock seconds, for expiry: injectable so tests age entries without sleeping
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._cache = diskcache.Cache(str(path), size_limit=max_bytes, eviction_policy="least-recently-used")
        except sqlite3.DatabaseError as e:
            if isinstance(e, sqlite3.OperationalError):  # locked, out of space...: not something a reset fixes
                raise
            raise CacheUnreadable(
                f"the response cache {(path / DB_FILE).resolve()} is unreadable ({e}): run `llmtap cache clear` or "
                f"delete the directory {path.resolve()}, then start llmtap again"
            ) from None
        self._cleared_marker = path / "cleared"

    def entries(self, key: str) -> list[dict[str, Any]]:
        """The key's unexpired answers with their times; reading makes the key the most recently used."""
        return self._live_entries(key)

    def store(self, key: str, answer: dict[str, Any], max_age_s: int, bucket_max: int) -> list[dict[str, Any]] | None:
        """Add `answer` to the key's bucket unless the bucket is full or the answer is over an eighth of `max_bytes`;
        the bucket's entries, or None if not stored."""
        size = len(json.dumps(answer))
        if size > self.max_bytes // MAX_ANSWER_SHARE:
            logger.info(f"llmtap: an answer of {size:,} bytes is not cached: over 1/{MAX_ANSWER_SHARE} of the cache's "
                        f"max_bytes ({self.max_bytes:,})")
            return None
        now = self.clock()
        entries = self._live_entries(key)
        if len(entries) >= bucket_max:
            return None
        entries.append({"answer": answer, "stored_at": now, "expires_at": now + max_age_s})
        expire_in = max(e["expires_at"] for e in entries) - now
        self._cache.set(key, json.dumps(entries).encode(), expire=expire_in)
        return entries

    def generation(self) -> int:
        """Changes whenever `clear` runs, in any process: a gateway drops what it keeps in memory when it does."""
        try:
            return self._cleared_marker.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def stats(self) -> dict[str, Any]:
        keys = answers = 0
        oldest = None
        for key in self._cache.iterkeys():
            entries = self._live_entries(key)
            if entries:
                keys += 1
                answers += len(entries)
                first = min(e["stored_at"] for e in entries)
                oldest = first if oldest is None else min(oldest, first)
        return {"keys": keys, "answers": answers, "bytes": self._cache.volume(), "max_bytes": self.max_bytes,
                "oldest_stored_at": oldest, "path": str(self.path)}

    def clear(self, older_than_s: float | None = None) -> int:
        """Remove every answer (or those stored more than `older_than_s` ago); returns how many went."""
        self._cleared_marker.write_text(str(time.time_ns()))
        if older_than_s is None:
            count = sum(len(self._live_entries(key)) for key in self._cache.iterkeys())
            self._cache.clear()
            return count
        cutoff = self.clock() - older_than_s
        removed = 0
        for key in list(self._cache.iterkeys()):
            entries = self._live_entries(key)
            kept = [e for e in entries if e["stored_at"] >= cutoff]
            removed += len(entries) - len(kept)
            if not kept:
                self._cache.delete(key)
            elif len(kept) < len(entries):
                expire_in = max(e["expires_at"] for e in kept) - self.clock()
                self._cache.set(key, json.dumps(kept).encode(), expire=expire_in)
        return removed

    def close(self) -> None:
        self._cache.close()

    def _live_entries(self, key: str) -> list[dict[str, Any]]:
        raw = self._cache.get(key, retry=True)
        if raw is None:
            return []
        now = self.clock()
        return [e for e in json.loads(raw) if e["expires_at"] > now]


def discard_unreadable(path: Path) -> None:
    """Remove what diskcache keeps in `path` (its index and value files), for a cache that cannot be opened; other
    files in the directory are left alone."""
    for name in (DB_FILE, f"{DB_FILE}-wal", f"{DB_FILE}-shm"):
        (path / name).unlink(missing_ok=True)
    for child in path.iterdir():
        if child.is_dir() and re.fullmatch(r"[0-9a-f]{2}", child.name):
            shutil.rmtree(child)


class HotBuckets:
    """The most recently used buckets, in memory, within a byte budget: hits that need no disk."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._buckets: OrderedDict[str, tuple[list[dict[str, Any]], int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: str) -> list[dict[str, Any]] | None:
        if key not in self._buckets:
            return None
        self._buckets.move_to_end(key)
        return self._buckets[key][0]

    def put(self, key: str, entries: list[dict[str, Any]]) -> None:
        self._drop(key)
        size = len(json.dumps(entries))
        if size > self.max_bytes:
            return
        self._buckets[key] = (entries, size)
        self._bytes += size
        while self._bytes > self.max_bytes:
            self._drop(next(iter(self._buckets)))

    def clear(self) -> None:
        self._buckets.clear()
        self._bytes = 0

    def _drop(self, key: str) -> None:
        if key in self._buckets:
            self._bytes -= self._buckets.pop(key)[1]
