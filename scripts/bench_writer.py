"""How fast llmtap's own RecordStore gets rows with bodies into a DuckDB file that already holds millions of rows.

A feeder appends rows shaped as the Recorder builds them (a CallRecord's `as_row`, bodies of about 1.5 KB) as fast as
it can; the clock runs from the first append until the store says no row waits (`rows_waiting == 0`), and a query
then checks every row is in the file.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
from llmtap.record import CallRecord
from llmtap.store import RecordStore

PROMPT = ("Summarise the following support conversation for the on-call engineer, listing what the customer tried, "
          "what failed, and which account settings were involved. ") * 4
REPLY = ("The customer tried to rotate their API key twice; both attempts failed because the organisation policy "
         "requires an owner to approve key changes. Settings involved: SSO enforcement, key expiry of 30 days. ") * 3


@dataclass
class WriterResult:
    """Rows appended, the seconds until all were in DuckDB, the rate, and the file's row count before and after."""

    rows: int
    seconds: float
    rows_per_s: float
    rows_before: int
    rows_after: int


def writer_throughput(log_path: Path, rows: int, timeout_s: float = 600) -> WriterResult:
    """Append `rows` realistic rows to `log_path` through a RecordStore and time them into DuckDB. Writes to the
    file: give it a copy."""
    rows_before = _row_count(log_path)
    batch = [bench_row(i) for i in range(rows)]  # built before the clock starts: the store is measured, not this
    store = RecordStore(log_path)
    store.open()
    try:
        started = time.perf_counter()
        for row in batch:
            store.append(row)
        deadline = time.monotonic() + timeout_s
        while store.rows_waiting and time.monotonic() < deadline:
            time.sleep(0.005)
        seconds = time.perf_counter() - started
        waiting = store.rows_waiting
    finally:
        store.close()
    if waiting:
        raise RuntimeError(f"{waiting:,} rows still waited after {timeout_s:.0f} s")
    rows_after = _row_count(log_path)
    if rows_after != rows_before + rows:
        raise RuntimeError(f"the log holds {rows_after:,} rows, expected {rows_before + rows:,}")
    return WriterResult(rows, seconds, rows / seconds, rows_before, rows_after)


def bench_row(i: int) -> dict[str, Any]:
    """One finished chat completion as the Recorder logs it: usage, price, timings and both bodies."""
    request = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "You are a support assistant."},
                                                     {"role": "user", "content": f"{PROMPT} (ticket {i})"}]}
    answer = {"id": f"chatcmpl-{i}", "object": "chat.completion", "created": 1764230400,
              "model": "gpt-4o-mini-2024-07-18",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}],
              "usage": {"prompt_tokens": 131, "completion_tokens": 97, "total_tokens": 228}}
    return CallRecord(
        request_id=str(uuid.uuid4()), created_at=datetime.now(UTC), way="gateway", provider="openai", method="POST",
        host="127.0.0.1:8787", path="/v1/chat/completions", model="gpt-4o-mini-2024-07-18",
        model_requested="gpt-4o-mini",
        status=200, stream=False, latency_ms=812.5, ttfb_ms=811.9, input_tokens=131, output_tokens=97, total_tokens=228,
        cost_usd=Decimal("0.00007785"), price_source="bundled", cache_status="MISS", attempts=1, retries=0,
        user_id=f"user-{i % 50}", session_id=f"session-{i % 400}", properties={"app": "support-bot", "bench": "writer"},
        key_hash="a1b2c3d4e5f60718", request_body=json.dumps(request), response_body=json.dumps(answer),
        upstream="https://api.openai.com",
    ).as_row()


def _row_count(log_path: Path) -> int:
    if not log_path.exists():
        return 0
    with duckdb.connect(str(log_path), read_only=True) as db:
        tables = {name for (name,) in db.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "requests" not in tables:
            return 0
        row = db.execute("SELECT count(*) FROM requests").fetchone()
        return int(row[0]) if row else 0
