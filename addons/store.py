"""Where records go: one DuckDB file, written by one thread in batches through DuckDB's appender.

`RecordStore.append` only puts a row on a queue, so mitmproxy's event loop never waits on DuckDB. The writer thread
opens the file for each batch and closes it after, so `llmtap` commands (and the duckdb CLI) can read it between
batches while the gateway runs. When the file is busy the writer waits and tries again; rows wait in memory, and at
shutdown whatever still cannot be written goes to a JSON-lines spill file beside the database, which the next start
loads. A row is never dropped.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from .migrations import migrate

logger = logging.getLogger(__name__)

TABLE = "requests"
_STOP = object()


class RecordStore:
    def __init__(self, path: Path, batch_window_s: float = 0.25, max_batch: int = 5000, shutdown_wait_s: float = 15.0):
        self.path = path
        self.spill_path = path.with_name(path.name + ".pending.jsonl")  # rows to load at the next start
        self.rejected_path = path.with_name(path.name + ".rejected.jsonl")  # rows DuckDB refused even without bodies
        self.batch_window_s = batch_window_s
        self.max_batch = max_batch
        self.shutdown_wait_s = shutdown_wait_s
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closing_since: float | None = None
        self.written = 0

    def open(self) -> None:
        """Create or migrate the file, load rows a previous run spilled, and start the writer thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with connect(self.path, timeout_s=30) as db:
            applied = migrate(db)
        if applied:
            logger.info(f"llmtap: {self.path}: applied {', '.join(applied)}")
        if self.spill_path.exists():
            self._load_spill()
        self._thread = threading.Thread(target=self._run, name="llmtap-store", daemon=True)
        self._thread.start()

    def append(self, record: dict[str, Any]) -> None:
        """Queue one row (column name -> value); returns at once."""
        self._queue.put(record)

    def close(self) -> None:
        """Write every queued row (or spill it), then stop the writer."""
        if self._thread is None:
            return
        self._closing_since = time.monotonic()
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            deadline = time.monotonic() + self.batch_window_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            if _STOP in batch:
                stopping = True
                batch = [r for r in batch if r is not _STOP]
                while True:  # everything queued before the stop is written too
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
            if batch:
                self._write_until_done(batch)

    def _write_until_done(self, batch: list[dict[str, Any]]) -> None:
        wait = 0.05
        while True:
            try:
                self._write(batch)
                return
            except duckdb.IOException as e:  # the file is held by another process: wait, never drop
                if self._closing_since is not None and time.monotonic() - self._closing_since > self.shutdown_wait_s:
                    self._spill(batch, reason=str(e))
                    return
                logger.warning(f"llmtap: {self.path} is busy, {len(batch)} rows wait: {e}")
                time.sleep(wait)
                wait = min(wait * 2, 1.0)
            except duckdb.Error as e:
                logger.error(f"llmtap: writing {len(batch)} rows failed ({e}); writing them one by one")
                self._write_one_by_one(batch)
                return

    def _write(self, batch: list[dict[str, Any]]) -> None:
        columns = list(dict.fromkeys(column for record in batch for column in record))  # a short row leaves NULLs
        with connect(self.path, timeout_s=0) as db:
            appender = db.appender(TABLE, columns=columns)
            appender.append_rows([tuple(record.get(c) for c in columns) for record in batch])
            appender.flush()
        self.written += len(batch)

    def _write_one_by_one(self, batch: list[dict[str, Any]]) -> None:
        for record in batch:
            try:
                self._write([record])
            except duckdb.IOException as e:
                self._spill([record], reason=str(e))
            except duckdb.Error as e:
                self._write_without_bodies(record, reason=str(e).splitlines()[0])

    def _write_without_bodies(self, record: dict[str, Any], reason: str) -> None:
        """A row DuckDB refuses (a body it cannot take as JSON, say) is written without its bodies, saying why;
        one it still refuses is kept in the rejected file, never retried in a loop."""
        salvaged = {**record, "request_body": None, "response_body": None,
                    "error": "; ".join(filter(None, [record.get("error"), f"bodies not stored: {reason}"]))}
        try:
            self._write([salvaged])
        except duckdb.Error as e:
            self._spill([record], reason=str(e), path=self.rejected_path)

    def _spill(self, batch: list[dict[str, Any]], reason: str, path: Path | None = None) -> None:
        path = path or self.spill_path
        with path.open("a", encoding="utf-8") as spill:
            for record in batch:
                spill.write(json.dumps(record, default=_json_default) + "\n")
        logger.error(f"llmtap: {len(batch)} rows could not be written ({reason}); kept in {path}")

    def _load_spill(self) -> None:
        loading = self.spill_path.with_name(self.spill_path.name + ".loading")
        self.spill_path.rename(loading)
        records = [_from_spill(json.loads(line)) for line in loading.read_text(encoding="utf-8").splitlines() if line]
        self._write_one_by_one(records)
        loading.unlink()
        logger.info(f"llmtap: loaded {len(records)} rows a previous run could not write")


@contextmanager
def connect(path: Path, timeout_s: float = 10.0, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the file, waiting up to `timeout_s` while another process holds it; closed on exit."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
    try:
        yield db
    finally:
        db.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    raise TypeError(f"cannot spill {type(value).__name__}")


def _from_spill(record: dict[str, Any]) -> dict[str, Any]:
    def revive(value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            if "$datetime" in value:
                return datetime.fromisoformat(value["$datetime"])
            if "$decimal" in value:
                return Decimal(value["$decimal"])
        return value

    return {k: revive(v) for k, v in record.items()}
