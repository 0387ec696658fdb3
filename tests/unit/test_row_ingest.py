"""The writer's two ways into DuckDB give the same rows: spool lines DuckDB parses itself (`SpooledLines`, the usual
way) and decoded rows through the appender (`Staging`, for everything else). Real DuckDB files, rows as the Recorder
builds them (`CallRecord.as_row`), lines as the spool holds them (`encode_row`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from llmtap.batch_writer import BatchWriter, Entry, spooled
from llmtap.migrations import migrate
from llmtap.record import AttemptRecord, CallRecord
from llmtap.spool import encode_row

START = datetime(2026, 11, 27, 9, 30, 15, 123456, tzinfo=UTC)


def varied_rows() -> list[dict]:
    """Rows that use every column type, with the values that need care: tags, escapes, non-ASCII, extremes."""
    full = CallRecord(
        request_id="full", created_at=START, way="gateway", provider="openai", method="POST", host="127.0.0.1:8787",
        path="/v1/chat/completions", model="gpt-4o-mini-2024-07-18", model_requested="gpt-4o-mini", status=200,
        stream=True, latency_ms=812.4999999999999, ttfb_ms=0.1, ttft_ms=1e-7, input_tokens=2**40,
        output_tokens=0, cached_input_tokens=3, cache_write_input_tokens=4, reasoning_tokens=5, total_tokens=2**40 + 12,
        cost_usd=Decimal("12345678.0123456789"), cost_saved_usd=Decimal("0"), price_source="bundled",
        cache_status="MISS", attempts=3, retries=2, fallback_from="gpt-4o", user_id="ünïcödé 😀 \"quoted\" \\ back",
        session_id="s\n1", session_path="/a/b", session_name="tab\there", prompt_id="p'1",
        properties={"app": "support-bot", "$decimal": "not a tag", "empty": ""}, key_hash="a1b2", key_owner="team",
        ratelimit={"x-ratelimit-remaining-requests": "99"}, upstream="https://api.openai.com",
        request_body=json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "héllo 😀\u2028"}]}),
        response_body=json.dumps({"choices": [], "n": 1.5e300}), notes=["ignored Helicone-Foo", "ünï"],
        attempt_log=[AttemptRecord(provider="openai", model="gpt-4o", status=429, latency_ms=1.5, wait_ms=200.0,
                                   retry_after_s=0.2, error="rate limited"),
                     AttemptRecord(provider="anthropic", model="claude", status=200)],
    ).as_row()
    tag_shaped = CallRecord(request_id="tag-shaped", created_at=START + timedelta(seconds=1), way="proxy",
                            properties={"$dict": "x"}, ratelimit={"$datetime": "2026-01-01T00:00:00"}).as_row()
    sparse = CallRecord(request_id="sparse", created_at=datetime(2026, 11, 27, 12, 0, tzinfo=timezone(timedelta(hours=5))),
                        way="gateway", error="upstream unreachable", properties={}, notes=[], attempt_log=[]).as_row()
    return [full, tag_shaped, sparse]


def new_log(path: Path) -> BatchWriter:
    with duckdb.connect(str(path)) as db:
        migrate(db)
    return BatchWriter(path, path.with_name("rejected.jsonl"), path.parent / "fallback")


def table(path: Path) -> list[dict]:
    with duckdb.connect(str(path), read_only=True) as db:
        cursor = db.execute("SELECT * FROM requests ORDER BY request_id")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_duckdb_reading_spool_lines_writes_exactly_what_the_appender_writes(tmp_path):
    rows = varied_rows()
    by_lines, by_appender = new_log(tmp_path / "lines.duckdb"), new_log(tmp_path / "appender.duckdb")

    by_lines.write([spooled(encode_row(row).rstrip(b"\n")) for row in rows])
    by_appender.write([Entry(dict(row), from_memory=True, leftover=False)
                       for row in rows])
    by_lines.release()
    by_appender.release()

    assert (by_lines.line_batches, by_lines.line_batches_refused, by_lines.written) == (1, 0, 3)
    assert by_appender.line_batches == 0
    written = table(tmp_path / "lines.duckdb")
    assert written == table(tmp_path / "appender.duckdb")
    full, sparse, tag_shaped = written
    assert full["user_id"] == "ünïcödé 😀 \"quoted\" \\ back" and full["cost_usd"] == Decimal("12345678.0123456789")
    assert full["created_at"] == START and full["properties"]["$decimal"] == "not a tag"
    assert full["attempt_log"][0]["retry_after_s"] == 0.2 and full["notes"] == ["ignored Helicone-Foo", "ünï"]
    assert tag_shaped["properties"] == {"$dict": "x"}
    assert tag_shaped["ratelimit"] == {"$datetime": "2026-01-01T00:00:00"}
    assert sparse["created_at"] == datetime(2026, 11, 27, 7, 0, tzinfo=UTC) and sparse["model"] is None


@pytest.mark.parametrize("fault", ["body not JSON", "lone surrogate", "column missing", "unreadable line",
                                   "JSON but not a row"])
def test_a_batch_duckdb_will_not_read_as_lines_is_written_the_python_way_losing_no_good_row(tmp_path, fault):
    rows = varied_rows()
    lines = [encode_row(row).rstrip(b"\n") for row in rows]
    if fault == "body not JSON":
        lines[1] = encode_row({**rows[1], "request_body": "{not json"}).rstrip(b"\n")
    elif fault == "lone surrogate":
        lines[1] = encode_row({**rows[1], "user_id": "half \ud800 a pair"}).rstrip(b"\n")
    elif fault == "column missing":
        lines[1] = encode_row({key: value for key, value in rows[1].items() if key != "model"}).rstrip(b"\n")
    elif fault == "JSON but not a row":  # a corrupted spool: the writer retried such a batch for ever
        lines.insert(1, b"[]")
    else:
        lines.insert(1, b'{"request_id": "torn')
    writer = new_log(tmp_path / "log.duckdb")

    writer.write([spooled(line) for line in lines])
    writer.release()

    assert (writer.line_batches, writer.line_batches_refused) == (1, 1)
    written = {row["request_id"]: row for row in table(tmp_path / "log.duckdb")}
    assert written["full"] == table_of_one(tmp_path, rows[0])
    if fault == "lone surrogate":  # as before DuckDB read lines: the appender refuses it too, the rejected file keeps it
        assert sorted(written) == ["full", "sparse"] and writer.rows_rejected == 1
        assert json.loads(writer.rejected_path.read_text())["user_id"] == "half \ud800 a pair"
    else:
        assert sorted(written) == ["full", "sparse", "tag-shaped"]
    if fault == "body not JSON":
        assert writer.rows_salvaged == 1
    if fault in ("unreadable line", "JSON but not a row"):
        assert writer.lines_unreadable == 1


def table_of_one(tmp_path: Path, row: dict) -> dict:
    """`row` as the appender writes it alone, to compare with."""
    writer = new_log(tmp_path / "one.duckdb")
    writer.write([Entry(dict(row), from_memory=True, leftover=False)])
    writer.release()
    [written] = table(tmp_path / "one.duckdb")
    return written


def test_a_batch_of_big_bodies_fits_the_writers_memory_limit_as_lines(tmp_path):
    """DuckDB needs several times a line's text while it parses it: a batch of calls with big bodies (16 MB of lines,
    a quarter of the limit here; 64 MB in a batch with the usual 512 MB) must not run the writer out of memory, which
    it takes for a storage failure and retries for ever, logging nothing more."""
    body = json.dumps({"messages": [{"role": "user", "content": "x" * 500_000}]})
    rows = [CallRecord(request_id=f"big-{i}", created_at=START + timedelta(seconds=i), way="gateway",
                       request_body=body, response_body=body).as_row() for i in range(16)]
    with duckdb.connect(str(tmp_path / "log.duckdb")) as db:
        migrate(db)
    writer = BatchWriter(tmp_path / "log.duckdb", tmp_path / "rejected.jsonl", tmp_path / "fallback",
                         memory_limit_mb=64)

    writer.write([spooled(encode_row(row).rstrip(b"\n")) for row in rows])
    writer.release()

    assert (writer.line_batches, writer.line_batches_refused, writer.written) == (1, 0, 16)
    assert [row["request_body"] for row in table(tmp_path / "log.duckdb")] == [body] * 16


def test_a_column_the_user_added_to_the_table_leaves_rows_on_the_usual_way_in(tmp_path):
    """A column llmtap does not know (added by hand to annotate calls, or by a newer llmtap before a downgrade) is
    left NULL by both ways; DuckDB must not refuse every batch of lines for lacking it (each then pays for a parse that
    fails and for the Python way, the GIL-bound work the lines way exists to avoid)."""
    writer = new_log(tmp_path / "log.duckdb")
    with duckdb.connect(str(tmp_path / "log.duckdb")) as db:
        db.execute("ALTER TABLE requests ADD COLUMN rating INTEGER")

    writer.write([spooled(encode_row(row).rstrip(b"\n")) for row in varied_rows()])
    writer.release()

    assert (writer.line_batches, writer.line_batches_refused, writer.written) == (1, 0, 3)
    assert [row["rating"] for row in table(tmp_path / "log.duckdb")] == [None] * 3
