"""Storage that fails does not end logging: kill -9, a full or read-only disk, rows DuckDB refuses.

The disk tests mount a small tmpfs of their own (root or CAP_SYS_ADMIN needed; skipped with a message otherwise) and
always unmount it. Every other part is real: the `llmtap start` process, the openai SDK, DuckDB files, `llmtap` CLI.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import openai
import pytest

from llmtap.store import RecordStore, connect


def row(i: int, **changes) -> dict:
    """A row as the Recorder builds it."""
    return {"request_id": f"row-{i}", "created_at": datetime.now(timezone.utc) + timedelta(microseconds=i),
            "way": "gateway", "status": 200, "model": "gpt-4o-mini", "cost_usd": Decimal("0.0000123"),
            "properties": {"run": "bisect"}, "request_body": json.dumps({"i": i}),
            "response_body": json.dumps({"ok": True}), **changes}


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
    rejected = [json.loads(line) for line in store.rejected_path.read_text().splitlines()]
    assert [r["request_id"] for r in rejected] == ["row-1500"]
    assert (store.rows_salvaged, store.rows_rejected, store.written) == (2, 1, 2999)
    assert store.connections_opened == 1, "refused rows must be found within one connection, not one per row"
    assert not store.spill_path.exists(), "a spool whose rows are all written is removed"


def ask(client: openai.OpenAI, run: str, i: int) -> str:
    """One chat call; the Helicone-Id of its 2xx answer (the SDK raises on anything else)."""
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"{run} {i}"}],
        extra_headers={"Helicone-Property-Run": run})
    return raw.headers["helicone-id"]


def client_for(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0, timeout=20)


def rows_per_id(db_path: Path, run: str) -> Counter:
    with connect(db_path, timeout_s=10, read_only=True) as db:
        return Counter(r[0] for r in db.execute("SELECT request_id FROM requests WHERE properties['run'] = ?",
                                                 [run]).fetchall())


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
