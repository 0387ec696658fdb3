"""The typed row and the table agree: every field of `CallRecord` is a column of `requests`, and the other way round."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import duckdb
from llmtap.migrations import migrate
from llmtap.record import COLUMNS, AttemptRecord, CallRecord


def test_record_fields_are_the_tables_columns(tmp_path):
    db = duckdb.connect(str(tmp_path / "log.duckdb"))
    migrate(db)
    table = [name for (name,) in db.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'requests' ORDER BY ordinal_position"
    ).fetchall()]
    assert sorted(COLUMNS) == sorted(table)
    (attempt_log_type,) = db.execute(
        "SELECT data_type FROM information_schema.columns WHERE table_name = 'requests' AND column_name = 'attempt_log'"
    ).fetchone()
    struct_fields = re.findall(r'"?(\w+)"? [A-Z]+', attempt_log_type.removeprefix("STRUCT("))
    assert sorted(struct_fields) == sorted(AttemptRecord.__dataclass_fields__)


def test_a_row_names_every_column_and_keeps_falsy_values():
    record = CallRecord(request_id="r1", created_at=datetime.now(UTC), way="gateway", cost_usd=Decimal(0),
                        attempt_log=[AttemptRecord(provider="openai", model="gpt-4o", status=429)])
    row = record.as_row()
    assert list(row) == list(COLUMNS)  # the writer's DuckDB reads spooled rows strictly: a missing key is a fault
    assert row["cost_usd"] == Decimal(0) and row["properties"] == {} and row["model"] is None
    assert row["attempt_log"] == [{"provider": "openai", "model": "gpt-4o", "status": 429, "latency_ms": None,
                                   "wait_ms": None, "retry_after_s": None, "error": None}]
