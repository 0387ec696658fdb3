"""Storage that fails does not end logging: kill -9, a full or read-only disk, rows DuckDB refuses.

The disk tests mount a small tmpfs of their own (root or CAP_SYS_ADMIN needed; skipped with a message otherwise) and
always unmount it. Every other part is real: the `llmtap start` process, the openai SDK, DuckDB files, `llmtap` CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import openai
import pytest
from llmtap import cli
from llmtap.batch_writer import read_log
from llmtap.record import COLUMNS
from llmtap.spool import Spool, encode_row
from llmtap.store import RecordStore, connect
from llmtap.store_health import Health, HealthFile, health_path


def row(i: int, **changes) -> dict:
    """A row as the Recorder builds it: every column named."""
    return {**dict.fromkeys(COLUMNS), "request_id": f"row-{i}", "created_at": datetime.now(UTC) + timedelta(microseconds=i),
            "way": "gateway", "status": 200, "model": "gpt-4o-mini", "cost_usd": Decimal("0.0000123"),
            "properties": {"run": "bisect"}, "request_body": json.dumps({"i": i}),
            "response_body": json.dumps({"ok": True}), **changes}


# The writer holds the file while rows flow, so DuckDB checkpoints inside a batch's commit (every 16 MB of WAL by
# default). A checkpoint needs room in the file itself; here the file may not grow (RLIMIT_FSIZE: a write past it fails
# as on a full disk) while its WAL still can: DuckDB then says the COMMIT is durable but the checkpoint failed.
CHECKPOINT_FAILS = textwrap.dedent('''
    import json, resource, signal, sys, time
    from datetime import UTC, datetime, timedelta
    from pathlib import Path
    from llmtap.batch_writer import connect
    from llmtap.record import COLUMNS
    from llmtap.store import RecordStore

    path, fallback = Path(sys.argv[1]), Path(sys.argv[2])
    created = RecordStore(path)  # create and migrate, then one batch of filler straight into the file
    created.open()
    created.close()
    with connect(path) as db:
        db.execute("INSERT INTO requests (request_id, created_at, way, status, request_body) SELECT 'filler-' || i, "
                   "now() + to_microseconds(i), 'gateway', 200, json_object('pad', repeat(md5(i::VARCHAR), 10)) "
                   "FROM range(30000) r(i)")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails (EFBIG), as on a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 200_000, resource.RLIM_INFINITY))
    store = RecordStore(path, batch_window_s=0.01, idle_release_s=60, fallback_spool_dir=fallback)
    store.open()

    def row(i):
        return {**dict.fromkeys(COLUMNS), "request_id": f"row-{i}", "created_at": datetime.now(UTC) +
                timedelta(microseconds=i), "way": "gateway", "status": 200,
                "request_body": json.dumps({"pad": "%064x" % hash(("pad", i)) * 16})}

    store.append(row(0))
    while store.written < 1:
        time.sleep(0.01)
    with connect(path) as db:  # the writer's own database: a checkpoint after every few batches, not every 16 MB
        db.execute("SET checkpoint_threshold = '64KB'")
    for i in range(1, 2001):
        store.append(row(i))
        if i % 50 == 0:
            time.sleep(0.02)  # batches, not one
    deadline = time.monotonic() + 10
    while store.batches.connections_opened < 2 and time.monotonic() < deadline:
        time.sleep(0.05)  # a checkpoint failed: the writer had to open the file again
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))  # space is back
    deadline = time.monotonic() + 30
    while store.rows_waiting and time.monotonic() < deadline:
        time.sleep(0.05)
    store.close()
    with connect(path, read_only=True) as db:
        rows, ids = db.execute("SELECT count(*), count(DISTINCT request_id) FROM requests "
                               "WHERE request_id LIKE 'row-%'").fetchone()
    print(json.dumps({"rows": rows, "ids": ids, "reopened": store.batches.connections_opened,
                      "line_batches": store.batches.line_batches, "refused": store.batches.line_batches_refused}))
''')


def test_a_batch_durable_before_a_checkpoint_failed_for_want_of_space_is_not_written_twice(tmp_path):
    done = subprocess.run([sys.executable, "-c", CHECKPOINT_FAILS, str(tmp_path / "log.duckdb"), str(tmp_path / "fb")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["reopened"] >= 2, "no checkpoint failed: the test did not test anything"
    assert result["line_batches"] >= 2 and result["refused"] == 0, f"rows did not go the usual way (lines): {result}"
    assert result["rows"] == result["ids"] == 2001, result


@pytest.mark.parametrize("backlog", ["appended at once", "left by a previous run"])
def test_a_backlog_bigger_than_one_batch_is_written_batch_after_batch_without_waiting(tmp_path, backlog):
    # A batch cut by bytes (rows with long bodies) ends mid-line more often than not: the writer must still see that
    # more rows wait, not idle a tick (and let go of the file) between the batches of a backlog.
    rows = [row(i, request_body=json.dumps({"pad": "x" * 1000, "i": i})) for i in range(300)]  # five batches' worth
    store = RecordStore(tmp_path / "log.duckdb", batch_window_s=0.01, max_batch_bytes=64_000)
    if backlog == "left by a previous run":
        store.spill_path.mkdir()
        (store.spill_path / "000000000001.jsonl").write_bytes(b"".join(encode_row(r) for r in rows))
    store.open()
    try:
        if backlog == "appended at once":
            for r in rows:
                store.append(r)
        deadline = time.monotonic() + 20
        while store.rows_waiting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert store.rows_waiting == 0
        assert store.batches.connections_opened == 1, "the writer went idle between the batches of a backlog"
    finally:
        store.close()
    assert read_log(store.path, "SELECT count(DISTINCT request_id), count(*) FROM requests")[1] == [(300, 300)]


def test_a_few_refused_rows_in_a_big_batch_cost_one_connection_and_lose_no_good_row(tmp_path):
    db_path = tmp_path / "log.duckdb"
    store = RecordStore(db_path, batch_window_s=60)  # one batch: close() ends the gathering
    store.open()
    rows = [row(i) for i in range(3000)]
    rows[700]["request_body"] = "{not json"  # refused with its body, written without
    rows[2100]["response_body"] = "[also not json"
    rows[1500]["created_at"] = None  # refused even without bodies: kept in the rejected file
    for r in rows:
        store.append(r)
    store.close()

    with connect(db_path, read_only=True) as db:
        written = dict(db.execute("SELECT request_id, error FROM requests").fetchall())
        bodies = db.execute("SELECT request_body, response_body FROM requests WHERE request_id = 'row-700'").fetchone()
    assert set(written) == {f"row-{i}" for i in range(3000)} - {"row-1500"}
    assert "bodies not stored" in written["row-700"] and "bodies not stored" in written["row-2100"]
    assert bodies == (None, None)
    rejected = [json.loads(line) for line in store.batches.rejected_path.read_text().splitlines()]
    assert [r["request_id"] for r in rejected] == ["row-1500"]
    assert (store.batches.rows_salvaged, store.batches.rows_rejected, store.written) == (2, 1, 2999)
    assert store.batches.connections_opened == 1, "refused rows must be found within one connection, not one per row"
    assert store.batches.line_batches_refused == 1, "DuckDB refuses the batch's lines; the Python way finds the rows"
    assert not store.spill_path.exists(), "a spool whose rows are all written is removed"


def test_a_spool_left_by_a_crash_is_replayed_without_its_torn_last_line_nor_rows_already_written(tmp_path):
    db_path = tmp_path / "log.duckdb"
    rows = [row(i) for i in range(5)]
    first = RecordStore(db_path)
    first.open()
    first.append(rows[1])
    first.close()  # row-1 is in DuckDB; a crashed run leaves its spool behind, written rows included:
    spool = first.spill_path
    spool.mkdir()
    (spool / "000000000007.jsonl").write_bytes(b"".join(encode_row(r) for r in rows[1:3]) + encode_row(rows[3])[:40])
    db_path.with_name(db_path.name + ".pending.jsonl").write_bytes(encode_row(rows[4]))  # older llmtap's spill

    second = RecordStore(db_path)
    second.open()
    second.close()
    with connect(db_path, read_only=True) as db:
        ids = sorted(r[0] for r in db.execute("SELECT request_id FROM requests").fetchall())
    assert ids == ["row-1", "row-2", "row-4"]
    assert second.batches.rows_already_written == 1
    assert not spool.exists() and not db_path.with_name(db_path.name + ".pending.jsonl").exists()


def test_a_spool_of_an_older_llmtap_with_a_property_named_like_a_tag_is_replayed_whole(tmp_path):
    """Older llmtap spooled a client's map as is: {"$decimal": "x"} there was a property, not a tag, and neither it
    nor the rows after it may be lost (the writer failed on it in a loop)."""
    db_path = tmp_path / "log.duckdb"
    first = RecordStore(db_path)
    first.open()
    first.close()  # the log exists; a crashed run of an older llmtap left its spool behind:
    spool = first.spill_path
    spool.mkdir()
    tagged_like = row(1, properties={"$decimal": "x"})
    older_line = encode_row({**tagged_like, "properties": None}).replace(b'"properties":null', b'"properties":{"$decimal":"x"}')
    (spool / "000000000007.jsonl").write_bytes(older_line + encode_row(row(2)))

    store = RecordStore(db_path)
    store.open()
    store.close()
    with connect(db_path, read_only=True) as db:
        rows = db.execute("SELECT request_id, properties FROM requests ORDER BY request_id").fetchall()
    assert rows == [("row-1", {"$decimal": "x"}), ("row-2", {"run": "bisect"})]


@pytest.mark.parametrize("interval_s", [0, 0.01])
def test_the_spool_is_fsynced_only_when_an_interval_is_set(tmp_path, interval_s):
    store = RecordStore(tmp_path / "log.duckdb", batch_window_s=0.01, fsync_interval_s=interval_s)
    store.open()
    for i in range(5):
        store.append(row(i))
        time.sleep(0.03)
    store.close()
    assert (store.spool.fsyncs > 0) == (interval_s > 0)


def test_status_fails_when_a_running_gateway_cannot_even_write_its_health(tmp_path, capsys):
    db_path = tmp_path / "log.duckdb"
    (tmp_path / "llmtap.yaml").write_text(f"storage: {{path: {db_path}, fallback_spool_dir: {tmp_path / 'fb'}}}\n")
    holder = Spool(db_path, tmp_path / "fb")
    holder.open()  # as a running gateway does
    try:
        HealthFile(db_path, holder.fallback_dir).write(Health())
        assert cli.main(["status", "--config", str(tmp_path / "llmtap.yaml")]) == 0
        stale = json.loads(health_path(db_path).read_text())
        stale["updated_at"] = (datetime.now(UTC) - timedelta(seconds=60)).isoformat()
        health_path(db_path).write_text(json.dumps(stale))
        assert cli.main(["status", "--config", str(tmp_path / "llmtap.yaml")]) == 1
        assert "has not updated its health for 60 s" in capsys.readouterr().out
    finally:
        holder.close()


def ask(client: openai.OpenAI, run: str, i: int) -> str:
    """One chat call; the Helicone-Id of its 2xx answer (the SDK raises on anything else)."""
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"{run} {i}"}],
        extra_headers={"Helicone-Property-Run": run})
    return raw.headers["helicone-id"]


def client_for(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=20)


def rows_per_id(db_path: Path, run: str) -> Counter:
    _, rows = read_log(db_path, "SELECT request_id FROM requests WHERE properties['run'] = ?", [run])
    return Counter(request_id for (request_id,) in rows)


def wait_for_rows(db_path: Path, run: str, ids: list[str], timeout_s: float = 20) -> Counter:
    deadline = time.monotonic() + timeout_s
    while True:
        counts = rows_per_id(db_path, run)
        if set(ids) <= set(counts) or time.monotonic() > deadline:
            return counts
        time.sleep(0.2)


def test_kill_9_mid_burst_loses_no_answered_call_and_duplicates_none(fresh_gateway):
    gateway = fresh_gateway()
    gateway.rows(timeout_s=0)
    answered: list[str] = []
    clients = threading.local()

    def one(i: int) -> None:
        if not hasattr(clients, "client"):
            clients.client = client_for(gateway)
        try:
            answered.append(ask(clients.client, "kill9", i))
        except openai.APIError:
            pass  # the gateway died under this call: no answer, nothing promised

    with ThreadPoolExecutor(max_workers=16) as pool:
        for i in range(300):
            pool.submit(one, i)
        deadline = time.monotonic() + 60
        while len(answered) < 120 and time.monotonic() < deadline:
            time.sleep(0.005)
        gateway.process.kill()
    gateway.process.wait()
    assert len(answered) >= 120, gateway.output()[-3000:]
    in_log_at_kill = rows_per_id(gateway.db_path, "kill9")

    gateway.launch()
    counts = wait_for_rows(gateway.db_path, "kill9", answered)
    missing = set(answered) - set(counts)
    assert not missing, f"{len(missing)} answered calls have no row:\n{gateway.output()[-3000:]}"
    assert max(counts.values()) == 1, f"rows written twice: {[i for i, n in counts.items() if n > 1][:5]}"
    print(f"{len(answered)} answered, {len(set(answered) - set(in_log_at_kill))} of them only in the spool at the kill")


@dataclass
class SmallDisk:
    """A tmpfs of the test's own: filled, freed and remounted read-only under a running gateway."""

    path: Path

    def fill(self) -> None:
        stat = os.statvfs(self.path)
        subprocess.run(["fallocate", "-l", str(stat.f_bavail * stat.f_frsize), str(self.path / "filler")], check=True)

    def free(self) -> None:
        (self.path / "filler").unlink()

    def remount(self, mode: str) -> None:
        """`ro` or `rw`; retried while a file is open for writing on it (for a moment, during a write)."""
        for _ in range(200):
            result = subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], capture_output=True, text=True)
            if result.returncode == 0:
                return
            time.sleep(0.02)
        raise AssertionError(f"remount,{mode} failed: {result.stderr}")


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"the full/read-only disk tests mount a tmpfs, which is not permitted here "
                    f"({mounted.stderr.strip() or 'mount failed'}); run them as root or with CAP_SYS_ADMIN")
    try:
        yield SmallDisk(mount_point)
    finally:
        for _ in range(100):  # a gateway that is still exiting may hold a file for a moment
            if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["umount", "-l", str(mount_point)])


def llmtap(gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--config", str(gateway.config_path)],
                          cwd=gateway.workdir, env=gateway.env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def gateway_on(small_disk, fresh_gateway):
    """Start a gateway whose log is on the small disk (set up before, so torn down after, the gateways)."""

    def start(fallback: Path):
        db_path = small_disk.path / "llmtap.duckdb"
        gateway = fresh_gateway({"storage": {"path": str(db_path), "fallback_spool_dir": str(fallback),
                                             "shutdown_wait_s": 1}})
        gateway.db_path = db_path
        return gateway

    return start


def calls(gateway, run: str, n: int) -> list[str]:
    client = client_for(gateway)
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda i: ask(client, run, i), range(n)))


def wait_for(check, timeout_s: float = 20, every_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(every_s)


def test_a_full_disk_fails_loudly_keeps_every_answered_row_and_writing_resumes_when_space_returns(
        small_disk, gateway_on, tmp_path):
    fallback = tmp_path / "fallback"
    gateway = gateway_on(fallback)
    before = calls(gateway, "full", 10)
    assert set(wait_for_rows(gateway.db_path, "full", before)) == set(before)

    small_disk.fill()
    during = calls(gateway, "full", 60)  # every call still answered 200
    status = wait_for(lambda: (s := llmtap(gateway, "status")).returncode != 0 and "cannot write to" in s.stdout and s)
    assert status, f"llmtap status did not report the full disk:\n{llmtap(gateway, 'status').stdout}"
    assert "No space left on device" in status.stdout and str(fallback) in status.stdout, status.stdout
    sql = llmtap(gateway, "sql", "SELECT count(*) AS n FROM requests")
    assert "warning: the log is missing rows" in sql.stderr, sql.stderr

    small_disk.free()
    counts = wait_for_rows(gateway.db_path, "full", before + during)
    assert set(counts) == set(before + during), f"{len(set(during) - set(counts))} rows missing after space returned"
    assert max(counts.values()) == 1
    assert wait_for(lambda: llmtap(gateway, "status").returncode == 0), llmtap(gateway, "status").stdout
    log = gateway.output()
    assert "cannot write to" in log and "writing to" in log and "again after" in log, log[-3000:]
    assert log.count("cannot write to") <= 3, "a storage failure is logged at intervals, not per row or per retry"


def test_a_read_only_disk_at_shutdown_keeps_the_rows_for_the_next_start(small_disk, gateway_on, tmp_path):
    fallback = tmp_path / "fallback"
    gateway = gateway_on(fallback)
    answered = calls(gateway, "readonly", 20)
    small_disk.remount("ro")
    answered += calls(gateway, "readonly", 20)  # answered while nothing can be written beside the log
    gateway.process.terminate()
    assert gateway.process.wait(60) == 0, gateway.output()[-3000:]  # every row was kept somewhere
    assert list(fallback.glob("*/*.jsonl")), "rows the read-only disk refused wait in the fallback spool"
    assert "the next start writes them" in gateway.output()

    small_disk.remount("rw")
    gateway.launch()
    counts = wait_for_rows(gateway.db_path, "readonly", answered)
    assert set(counts) == set(answered), f"{len(set(answered) - set(counts))} rows lost:\n{gateway.output()[-3000:]}"
    assert max(counts.values()) == 1
    assert wait_for(lambda: not list(fallback.glob("*/*.jsonl"))), "the fallback spool is emptied once written"


def test_rows_nothing_could_keep_make_the_exit_status_say_so(small_disk, gateway_on):
    gateway = gateway_on(small_disk.path / "fallback")  # no way off the disk
    calls(gateway, "lost", 5)
    small_disk.remount("ro")
    calls(gateway, "lost", 10)  # answered; their rows can only wait in memory
    gateway.process.terminate()
    assert gateway.process.wait(60) == 1, gateway.output()[-3000:]
    assert "rows could not be kept anywhere" in gateway.output()
