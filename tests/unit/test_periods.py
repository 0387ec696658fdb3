"""The periods reports group by (`--by hour|day|week|month`, `trends --every`) are UTC periods, at their edges too."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest
from llmtap.analytics import queries
from llmtap.migrations import migrate

CALLS = [  # each call's time, and the UTC hour, day, week (its Monday) and month it falls in
    (datetime(2026, 11, 1, 5, 59, 59, 999999, tzinfo=UTC),  # the last microsecond of an hour, on a Sunday
     datetime(2026, 11, 1, 5), date(2026, 11, 1), date(2026, 10, 26), date(2026, 11, 1)),
    (datetime(2026, 11, 1, 6, tzinfo=UTC),  # New York leaves summer time at this instant
     datetime(2026, 11, 1, 6), date(2026, 11, 1), date(2026, 10, 26), date(2026, 11, 1)),
    (datetime(2026, 11, 2, 0, tzinfo=UTC),  # a Monday's first microsecond: a new week
     datetime(2026, 11, 2, 0), date(2026, 11, 2), date(2026, 11, 2), date(2026, 11, 1)),
    (datetime(2026, 10, 31, 23, 59, 59, 999999, tzinfo=UTC),  # a month's last microsecond
     datetime(2026, 10, 31, 23), date(2026, 10, 31), date(2026, 10, 26), date(2026, 10, 1)),
    (datetime(2026, 11, 1, 3, 30, tzinfo=UTC) + timedelta(hours=-5),  # 22:30 UTC the day before: a call near
     datetime(2026, 10, 31, 22), date(2026, 10, 31), date(2026, 10, 26), date(2026, 10, 1)),  # midnight in New York
]


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "llmtap.duckdb"
    with duckdb.connect(str(path)) as db:
        migrate(db)
        for n, (at, *_) in enumerate(CALLS):
            db.execute("INSERT INTO requests (request_id, created_at, way) VALUES (?, ?, 'gateway')", [str(n), at])
    return path


@pytest.mark.parametrize("period, column", [("hour", 1), ("day", 2), ("week", 3), ("month", 4)])
def test_a_call_falls_in_its_utc_period_whatever_the_readers_time_zone(log, period, column):
    expected = [call[column] for call in CALLS]
    sql = f"SELECT {queries.DIMENSIONS[period]} FROM requests ORDER BY request_id::INTEGER"
    assert [row[0] for row in queries.run(log, sql).rows] == expected
    with duckdb.connect(str(log), read_only=True) as db:  # a reader whose session is not in UTC (the duckdb CLI)
        db.execute("SET TimeZone = 'America/New_York'")
        assert [row[0] for row in db.execute(sql).fetchall()] == expected
