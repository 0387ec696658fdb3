"""No record is ever lost: not under load, not while another process holds the DuckDB file, not at shutdown."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import openai
from llmtap.store import RecordStore, connect


@contextmanager
def file_held_by_another_process(db_path: Path):
    """A reader in another process (a user's duckdb shell, say) holding the file until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         f"import duckdb, sys; db = duckdb.connect({str(db_path)!r}, read_only=True); print('held', flush=True); "
         "sys.stdin.readline()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.stdin.close()
        holder.wait(10)


def call(base_url: str, i: int) -> str:
    client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"load {i}"}],
        extra_headers={"Helicone-Property-Run": "load"})
    return raw.headers["helicone-id"]


def test_sigterm_under_load_writes_every_row_even_while_the_file_is_busy(fresh_gateway):
    gateway = fresh_gateway()
    n = 200
    gateway.rows(timeout_s=0)  # the file exists and has its schema
    with file_held_by_another_process(gateway.db_path):
        with ThreadPoolExecutor(max_workers=20) as pool:
            ids = set(pool.map(lambda i: call(gateway.base_url, i), range(n)))
        assert len(ids) == n
        gateway.process.send_signal(subprocess.signal.SIGTERM)
        time.sleep(1)  # the gateway is shutting down and still cannot write
        assert gateway.process.poll() is None, f"exited without waiting for the file:\n{gateway.output()[-3000:]}"
    assert gateway.process.wait(30) == 0, gateway.output()[-3000:]
    with connect(gateway.db_path, read_only=True) as db:
        written = {row[0] for row in db.execute("SELECT request_id FROM requests WHERE properties['run'] = 'load'").fetchall()}
    assert written == ids, f"{len(ids - written)} rows missing:\n{gateway.output()[-3000:]}"


def test_rows_that_cannot_be_written_by_shutdown_are_kept_and_loaded_at_the_next_start(tmp_path):
    db_path = tmp_path / "log.duckdb"
    first = RecordStore(db_path, shutdown_wait_s=0.5)
    first.open()
    record = {"request_id": "spilled-1", "created_at": datetime.now(UTC), "way": "gateway",
              "properties": {"k": "v"}, "cost_usd": None}
    with file_held_by_another_process(db_path):
        first.append(record)
        first.close()  # gives up waiting after 0.5 s: the row goes to the spill file
        assert first.spill_path.exists()
    second = RecordStore(db_path)
    second.open()
    second.close()
    with connect(db_path, read_only=True) as db:
        rows = db.execute("SELECT request_id, way, properties FROM requests").fetchall()
    assert rows == [("spilled-1", "gateway", {"k": "v"})]
    assert not first.spill_path.exists()

