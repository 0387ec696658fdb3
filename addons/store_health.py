"""The store's health, in a small file beside the log: what `llmtap status` prints and the reading commands warn of.

The file has a fixed size and is rewritten in place (one `os.pwrite` at offset 0), so updating it takes no new disk
space: it can still say "failing" when the disk is full. When it cannot be written at all (a read-only file system)
a copy goes to the fallback spool directory; readers take the newer of the two.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from .spool import private_dir, spool_dir

HEALTH_BYTES = 4096
FALLBACK_NAME = "health.json"
STALE_AFTER_S = 10.0  # a running gateway rewrites its health every second or so; older means it cannot


@dataclass
class Health:
    state: str = "ok"  # "ok", or "failing": rows are not reaching DuckDB or the spool, or some were lost
    since: str = ""  # when the state began (ISO 8601, UTC)
    reason: str | None = None
    rows_waiting: int = 0  # in the spool or in memory, not yet in DuckDB
    rows_lost: int = 0  # rows no spool and no memory could keep, since the gateway started
    rows_written: int = 0  # since the gateway started
    spool: str | None = None  # where new rows are spooled ("memory" when no spool takes them)
    pid: int = 0
    running: bool = True  # False once the gateway has stopped
    updated_at: str = ""

    @property
    def failing(self) -> bool:
        return self.state != "ok" or self.rows_lost > 0


def health_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".health.json")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class HealthFile:
    """Writes `Health` beside the log (or, failing that, into the fallback spool directory)."""

    def __init__(self, db_path: Path, fallback_dir: Path):
        self.path = health_path(db_path)
        self.fallback_path = fallback_dir / FALLBACK_NAME
        self._fallback_used = False

    def write(self, health: Health) -> bool:
        """False when neither place could be written."""
        health.updated_at = now_iso()
        data = _encode(health)
        if _write_in_place(self.path, data):
            if self._fallback_used:
                self.fallback_path.unlink(missing_ok=True)
                self._fallback_used = False
            return True
        try:
            private_dir(self.fallback_path.parent)
        except OSError:
            return False
        self._fallback_used = _write_in_place(self.fallback_path, data)
        return self._fallback_used


def read_health(db_path: Path, fallback_dir: Path) -> Health | None:
    """The newest health a gateway wrote for this log, or None when none ever did."""
    found = [h for h in (_read(health_path(db_path)), _read(fallback_dir / FALLBACK_NAME)) if h is not None]
    return max(found, key=lambda h: h.updated_at, default=None)


def age_s(health: Health) -> float:
    """Seconds since the health was written."""
    try:
        return (datetime.now(UTC) - datetime.fromisoformat(health.updated_at)).total_seconds()
    except ValueError:
        return float("inf")


def gateway_running(db_path: Path) -> bool:
    """Whether a gateway holds this log's spool now (its lock, not a pid that may have been reused)."""
    try:
        fd = os.open(spool_dir(db_path) / "lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock it may have taken
    return False


def _encode(health: Health) -> bytes:
    data = json.dumps(asdict(health)).encode()
    if len(data) >= HEALTH_BYTES:
        health.reason = (health.reason or "")[:HEALTH_BYTES // 2] + "…"
        data = json.dumps(asdict(health)).encode()
    return data + b" " * (HEALTH_BYTES - 1 - len(data)) + b"\n"


def _write_in_place(path: Path, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)  # never O_TRUNC: the blocks it has are reused
    except OSError:
        return False
    try:
        return os.pwrite(fd, data, 0) == len(data)
    except OSError:
        return False
    finally:
        os.close(fd)


def _read(path: Path) -> Health | None:
    for _ in range(3):  # a read can meet a write half done: read again
        try:
            raw = json.loads(path.read_bytes().strip(b" \n\0") or b"null")
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            continue
        if isinstance(raw, dict):
            known = {f.name for f in fields(Health)}
            return Health(**{k: v for k, v in raw.items() if k in known})
        return None
    return None
