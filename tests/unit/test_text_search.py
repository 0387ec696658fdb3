"""A budgeted text search (the dashboard's): it reads bodies newest first for about its budget, says how far back it
read, and a search continued from there finds the older calls, none twice and none skipped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from llmtap.analytics import queries
from llmtap.analytics.scope import Scope
from llmtap.migrations import migrate

NOW = datetime.now(UTC).replace(microsecond=0)
# A call every 5 minutes for 6 hours; every 7th says "needle".
CALLS = [(f"c{n:04d}", NOW - timedelta(minutes=5 * n + 1), "needle" if n % 7 == 0 else "hay") for n in range(72)]


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "llmtap.duckdb"
    with duckdb.connect(str(path)) as db:
        migrate(db)
        db.executemany("INSERT INTO requests (request_id, created_at, way, request_body) VALUES (?, ?, 'gateway', ?)",
                       [[rid, at, json.dumps({"messages": [{"role": "user", "content": text}]})]
                        for rid, at, text in CALLS])
    return path


def test_without_a_budget_the_search_reads_the_whole_scope(log):
    found, searched_since = queries.search_calls(log, Scope(text="NEEDLE"), 50)
    assert [r["id"] for r in found.dicts()] == [rid for rid, _, text in CALLS if text == "needle"]
    assert searched_since is None


def test_a_spent_budget_stops_after_the_first_window_and_a_continued_search_finds_the_rest_once(log):
    found, searched_since = queries.search_calls(log, Scope(text="needle"), 50, budget_s=0)
    assert searched_since is not None and NOW - timedelta(hours=1, seconds=1) <= searched_since <= NOW
    seen = [r["id"] for r in found.dicts()]
    before = (searched_since, "")
    for _ in range(20):  # each continued search reads its first window (an hour) at least
        found, searched_since = queries.search_calls(log, Scope(text="needle"), 50, before=before, budget_s=0)
        seen += [r["id"] for r in found.dicts()]
        if searched_since is None:
            break
        assert searched_since < before[0]
        before = (searched_since, "")
    assert seen == [rid for rid, _, text in CALLS if text == "needle"]
