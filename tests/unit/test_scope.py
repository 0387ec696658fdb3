"""What a report is about: times and filters as a user types them, checked against a real DuckDB log so each filter
selects exactly the calls a user means."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from llmtap.analytics import queries
from llmtap.analytics.scope import Scope, ScopeError, parse_property, parse_status, parse_time
from llmtap.migrations import migrate

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("text, expected", [
    ("30m", NOW - timedelta(minutes=30)),
    ("24h", NOW - timedelta(hours=24)),
    ("7d", NOW - timedelta(days=7)),
    ("2w", NOW - timedelta(days=14)),
    ("1.5h", NOW - timedelta(minutes=90)),
    ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
    ("2026-11-01T09:30", datetime(2026, 11, 1, 9, 30, tzinfo=UTC)),
    ("2026-11-01T09:30+01:00", datetime(2026, 11, 1, 8, 30, tzinfo=UTC)),
])
def test_times_read_as_a_user_means_them(text, expected):
    assert parse_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "7 days", "-3d", "2026-13-01", ""])
def test_a_time_that_cannot_be_read_says_what_is_expected(text):
    with pytest.raises(ScopeError, match=r"expected 30m, 24h, 7d, 2w, a date"):
        parse_time(text, NOW)


@pytest.mark.parametrize("text", ["1000000d", "99999999999w", "0001-01-01T00:00+01:00"])
def test_a_time_outside_the_calendar_is_refused_not_a_crash(text):
    with pytest.raises(ScopeError, match="outside the years 1 to 9999"):
        parse_time(text, NOW)


def test_property_names_match_in_any_case_values_exactly():
    assert parse_property("Workflow=Research-Agent") == ("workflow", "Research-Agent")
    assert parse_property("step=a=b") == ("step", "a=b")
    for bad in ("workflow", "=x"):
        with pytest.raises(ScopeError, match="NAME=VALUE"):
            parse_property(bad)


@pytest.mark.parametrize("bad", ["fine", "42", "6xx", "700"])
def test_a_status_that_names_no_status_is_refused(bad):
    with pytest.raises(ScopeError, match="ok, error, a code"):
        parse_status(bad)


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "llmtap.duckdb"
    with duckdb.connect(str(path)) as db:
        migrate(db)
        calls = [  # request_id, minutes before NOW, model, model_requested, provider, user, properties, status, cache
            ("a", 10, "gpt-4o-mini-2024-07-18", "gpt-4o-mini", "openai", "alice", {"workflow": "research"}, 200, None),
            ("b", 60 * 30, "claude-haiku-4-5", "claude-haiku-4-5", "anthropic", "bob", {"workflow": "Research"}, 429,
             "MISS"),
            ("c", 5, None, "gpt-4o-mini", "openai", None, {}, None, "HIT"),
            ("d", 1, "gpt-4o", "gpt-4o", "openai", "alice", {"workflow": "research", "step": "fetch"}, 503, None),
        ]
        for request_id, minutes, model, asked, provider, user, properties, status, cache in calls:
            db.execute("INSERT INTO requests (request_id, created_at, way, model, model_requested, provider, user_id, "
                       "properties, status, cache_status, request_body) VALUES (?, ?, 'gateway', ?, ?, ?, ?, ?, ?, ?, ?)",
                       [request_id, NOW - timedelta(minutes=minutes), model, asked, provider, user, properties,
                        status, cache, f'{{"messages": [{{"role": "user", "content": "100% sure_{request_id}"}}]}}'])
    return path


def selected(log, scope: Scope) -> list[str]:
    where, params = scope.where()
    return [row[0] for row in queries.run(log, f"SELECT request_id FROM requests WHERE {where} ORDER BY 1", params).rows]


@pytest.mark.parametrize("scope, expected", [
    (Scope(), ["a", "b", "c", "d"]),
    (Scope(since=NOW - timedelta(hours=1)), ["a", "c", "d"]),
    (Scope(until=NOW - timedelta(minutes=5)), ["a", "b"]),  # until is exclusive: c started exactly then
    (Scope(models=("gpt-4o-mini",)), ["a", "c"]),  # the model asked for, when the answer named a dated snapshot
    (Scope(models=("gpt-4o-mini-2024-07-18", "gpt-4o")), ["a", "d"]),
    (Scope(providers=("anthropic",)), ["b"]),
    (Scope(users=("alice",)), ["a", "d"]),
    (Scope(properties=(("workflow", "research"),)), ["a", "d"]),  # values match exactly
    (Scope(properties=(("workflow", "research"), ("step", "fetch"))), ["d"]),
    (Scope(status="ok"), ["a"]),
    (Scope(status="error"), ["b", "c", "d"]),  # no status (no answer) is an error
    (Scope(status="429"), ["b"]),
    (Scope(status="5xx"), ["d"]),
    (Scope(cache="hit"), ["c"]),
    (Scope(cache="miss"), ["b"]),
    (Scope(text="100%"), ["a", "b", "c", "d"]),
    (Scope(text="SURE_A"), ["a"]),  # case-insensitive, and `_` is a character, not a wildcard
    (Scope(text="sure%a"), []),  # `%` is a character too
    (Scope(text="sure.a"), []),  # and so is anything a regular expression would read otherwise
    (Scope(text='"content": "100% SURE_B'), ["b"]),  # spaces, quotes: the body's JSON text as stored
    (Scope(text="(100% sure_[cd]"), []),
])
def test_each_filter_selects_the_calls_a_user_means(log, scope, expected):
    assert selected(log, scope) == expected


def test_totals_leave_unknown_prices_unknown(log):
    totals = queries.totals(log, Scope()).dicts()[0]
    assert totals["requests"] == 4 and totals["cost_usd"] is None and totals["unpriced"] == 4
    assert totals["errors"] == 3 and totals["cache_hits"] == 1 and totals["cache_misses"] == 1


@pytest.fixture
def aged_log(tmp_path):
    """Calls 10 minutes, 5 hours, 3 days, 20 days and 90 days old, each saying 'needle' in its prompt, written in
    time order as the gateway writes them; and one recent call that does not."""
    path = tmp_path / "aged.duckdb"
    now = datetime.now(UTC)
    with duckdb.connect(str(path)) as db:
        migrate(db)
        for request_id, age, text in [("d90", timedelta(days=90), "needle"), ("d20", timedelta(days=20), "Needle"),
                                      ("d3", timedelta(days=3), "NEEDLE"), ("h5", timedelta(hours=5), "needle"),
                                      ("m10", timedelta(minutes=10), "needle"), ("m1", timedelta(minutes=1), "hay")]:
            db.execute("INSERT INTO requests (request_id, created_at, way, request_body) VALUES (?, ?, 'gateway', ?)",
                       [request_id, now - age, f'{{"messages": [{{"role": "user", "content": "a {text} b"}}]}}'])
    return path


@pytest.mark.parametrize("limit, expected", [
    (1, ["m10"]),  # found in the last hour
    (2, ["m10", "h5"]),  # the hour, then the day
    (4, ["m10", "h5", "d3", "d20"]),
    (10, ["m10", "h5", "d3", "d20", "d90"]),  # every window, then the rest of the log
])
def test_a_text_search_finds_the_newest_matches_window_by_window(aged_log, limit, expected):
    assert [row[1] for row in queries.logs(aged_log, Scope(text="needle"), limit).rows] == expected


def test_a_text_search_keeps_the_scopes_own_time_range(aged_log):
    now = datetime.now(UTC)
    within = Scope(text="needle", since=now - timedelta(days=30), until=now - timedelta(hours=1))
    assert [row[1] for row in queries.logs(aged_log, within, 10).rows] == ["h5", "d3", "d20"]
    assert [row[1] for row in queries.logs(aged_log, Scope(text="needle", since=now - timedelta(days=2)), 10).rows] \
        == ["m10", "h5"]
