"""The writer keeps the log open while rows flow, and lets go of it for readers in other processes.

Real DuckDB files, real subprocesses for the readers (DuckDB's lock is per process), a real gateway for the end to
end test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openai
from llmtap.batch_writer import read_log, read_request_path
from llmtap.record import COLUMNS
from llmtap.store import RecordStore

# A reader in another process as `llmtap` commands open the file: it waits for the lock, asking the writer for it.
ASKING_READER = """
import sys, time
from pathlib import Path
from llmtap.batch_writer import connect
started = time.monotonic()
with connect(Path(sys.argv[1]), timeout_s=10, read_only=True) as db:
    count = db.execute("SELECT count(*) FROM requests").fetchone()[0]
print(count, time.monotonic() - started)
"""
# A reader as the duckdb CLI opens the file: one try, no request.
PLAIN_READER = """
import sys, duckdb
try:
    duckdb.connect(sys.argv[1], read_only=True).close()
except duckdb.IOException as e:
    print(str(e).splitlines()[0])
else:
    print("opened")
"""


def row(i: int) -> dict:
    """A row as the Recorder builds it: every column named."""
    return {**dict.fromkeys(COLUMNS), "request_id": f"held-{i}", "created_at": datetime.now(UTC) + timedelta(microseconds=i), "way": "gateway",
            "status": 200, "model": "gpt-4o-mini", "request_body": json.dumps({"i": i}),
            "response_body": json.dumps({"ok": True})}


def run_reader(script: str, db_path: Path) -> str:
    return subprocess.run([sys.executable, "-c", script, str(db_path)], capture_output=True, text=True, check=True,
                          timeout=30).stdout.strip()


def write_batch(store: RecordStore, rows: range) -> None:
    """Append `rows` and wait until they are in DuckDB: one batch."""
    for i in rows:
        store.append(row(i))
    deadline = time.monotonic() + 10
    while store.written < rows.stop:
        assert time.monotonic() < deadline, f"only {store.written} of {rows.stop} rows written"
        time.sleep(0.005)


def test_twenty_batches_open_the_file_once(tmp_path):
    store = RecordStore(tmp_path / "log.duckdb", batch_window_s=0.01)
    store.open()
    try:
        for k in range(25):
            write_batch(store, range(3 * k, 3 * k + 3))
        assert store.batches.connections_opened == 1
    finally:
        store.close()
    assert not store.batches.holding, "a closed store lets go of the file"
    assert run_reader(PLAIN_READER, store.path) == "opened"
    assert read_log(store.path, "SELECT count(DISTINCT request_id), count(*) FROM requests")[1] == [(75, 75)]


def test_while_rows_keep_coming_a_batch_gathers_for_a_second_and_the_file_stays_held(tmp_path):
    """Each transaction costs DuckDB ~15 ms of CPU however few rows it holds: under load the writer makes about one
    a second (not four, with the quiet-time window of 0.25 s), and keeps the file meanwhile (reopening costs more)."""
    store = RecordStore(tmp_path / "log.duckdb")
    store.open()
    try:
        started = time.monotonic()
        i = 0
        while time.monotonic() - started < 3.0:  # up to 200 rows a second for 3 s (fewer on a busy machine)
            store.append(row(i))
            i += 1
            time.sleep(0.005)
    finally:
        store.close()
    assert read_log(store.path, "SELECT count(DISTINCT request_id), count(*) FROM requests")[1] == [(i, i)]
    batches = store.batches
    counts = (batches.line_batches, batches.line_batches_refused, batches.connections_opened)
    assert 2 <= batches.line_batches <= 6 and counts[1:] == (0, 1), f"transactions, refused, opens for 3 s: {counts}"


def test_held_for_long_the_file_is_let_go_and_opened_afresh_so_what_duckdb_caches_goes(tmp_path):
    store = RecordStore(tmp_path / "log.duckdb", batch_window_s=0.01)
    store.batches.max_hold_s = 0.3
    store.open()
    try:
        started = time.monotonic()
        k = 0
        while time.monotonic() - started < 1.0:  # rows flow for a second: the file is never idle
            write_batch(store, range(3 * k, 3 * k + 3))
            k += 1
        assert 2 <= store.batches.connections_opened <= 6  # one hold per 0.3 s, not one per batch
        assert k > 3 * store.batches.connections_opened
    finally:
        store.close()
    assert read_log(store.path, "SELECT count(DISTINCT request_id), count(*) FROM requests")[1] == [(3 * k, 3 * k)]


def test_a_reader_in_another_process_that_asks_gets_the_file_while_rows_flow(tmp_path):
    store = RecordStore(tmp_path / "log.duckdb", batch_window_s=0.05, idle_release_s=60)  # only the reader frees it
    store.open()
    flowing = threading.Event()
    flowing.set()

    def keep_appending():
        i = 10_000
        while flowing.is_set():
            store.append(row(i))
            i += 1
            time.sleep(0.01)

    writer = threading.Thread(target=keep_appending)
    try:
        write_batch(store, range(10))
        assert store.batches.holding
        writer.start()
        count, waited_s = run_reader(ASKING_READER, store.path).split()
        assert int(count) >= 10
        assert float(waited_s) < 0.5, f"the reader waited {float(waited_s):.2f} s for the file"
        assert store.batches.turns_given >= 1
        written = store.written
        deadline = time.monotonic() + 5
        while store.written < written + 20:  # the writer took the file back and goes on
            assert time.monotonic() < deadline, "the writer did not take the file back"
            time.sleep(0.05)
    finally:
        flowing.clear()
        if writer.is_alive():
            writer.join()
        store.close()
    assert not read_request_path(store.path).exists()
    assert store.rows_waiting == 0
    (ids, copies), = read_log(store.path, "SELECT count(DISTINCT request_id), count(*) FROM requests")[1]
    assert ids == copies == store.written


def test_a_quiet_writer_leaves_the_file_to_a_reader_that_does_not_ask(tmp_path):
    store = RecordStore(tmp_path / "log.duckdb", batch_window_s=0.01, idle_release_s=1.5)
    store.open()
    try:
        write_batch(store, range(5))
        written_at = time.monotonic()
        assert "lock" in run_reader(PLAIN_READER, store.path), "the writer holds the file right after a batch"
        while store.batches.holding:
            assert time.monotonic() - written_at < 2.5, "the writer did not let go of a quiet file"
            time.sleep(0.02)
        assert time.monotonic() - written_at >= 1.4
        assert run_reader(PLAIN_READER, store.path) == "opened"
        write_batch(store, range(5, 10))  # and takes it back for the next batch
        assert store.batches.connections_opened == 2
    finally:
        store.close()


def test_llmtap_sql_gets_the_file_quickly_under_continuous_load_and_no_call_is_lost(fresh_gateway):
    gateway = fresh_gateway()
    client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=20)
    ids: list[str] = []
    failures: list[BaseException] = []
    loading = threading.Event()
    loading.set()

    def call_continuously():
        while loading.is_set():
            try:
                raw = client.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "load"}],
                    extra_headers={"Helicone-Property-Run": "held"})
                ids.append(raw.headers["helicone-id"])
            except BaseException as e:  # reported after the thread stops
                failures.append(e)
                return

    caller = threading.Thread(target=call_continuously)
    caller.start()
    counts = []
    try:
        time.sleep(0.5)
        for _ in range(3):
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "llmtap.cli", "sql", "SELECT count(*) AS n FROM requests",
                                   "--format", "json", "--config", str(gateway.config_path)],
                                  cwd=gateway.workdir, env=gateway.env, capture_output=True, text=True, timeout=30)
            took_s = time.monotonic() - started
            assert done.returncode == 0, done.stderr
            assert took_s < 5, f"llmtap sql took {took_s:.1f} s under load"
            counts.append(json.loads(done.stdout)["n"])
    finally:
        loading.clear()
        caller.join()
    assert not failures, failures
    assert counts == sorted(counts) and counts[0] < counts[-1], counts
    deadline = time.monotonic() + 20
    while True:
        _, rows = read_log(gateway.db_path, "SELECT request_id FROM requests WHERE properties['run'] = 'held'")
        found = Counter(request_id for (request_id,) in rows)
        if set(ids) <= set(found) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert set(found) == set(ids) and max(found.values()) == 1, "every call once in the log"
