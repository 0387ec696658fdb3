"""The costs, users and trends queries on a real DuckDB log built here, where the edges are easy to pin: prices that
are unknown stay unknown, groups without a value, periods without calls, an empty scope, shares and totals."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import duckdb
import pytest
from llmtap.analytics import queries
from llmtap.analytics.queries import dimension
from llmtap.analytics.scope import Scope, ScopeError
from llmtap.migrations import migrate

WEEK = Scope(since=datetime(2026, 11, 20, tzinfo=UTC), until=datetime(2026, 11, 27, tzinfo=UTC))  # 7 whole days

# request_id, time, model, user, properties, cost_usd, saved_usd, status, latency_ms, input/output tokens
CALLS = [
    ("a", datetime(2026, 11, 21, 9, 0), "gpt-4o-mini", "alice", {"workflow": "research", "step": "fetch"},
     Decimal("0.000150"), None, 200, 100.0, 1000, 100),
    ("b", datetime(2026, 11, 21, 9, 30), "gpt-4o-mini", "alice", {"workflow": "research", "step": "summarize"},
     Decimal("0.000300"), None, 200, 200.0, 1000, 250),
    ("c", datetime(2026, 11, 21, 23, 59), "gpt-4o", "bob", {"workflow": "research", "step": "summarize"},
     Decimal("0.002500"), None, 200, 300.0, 500, 125),
    ("d", datetime(2026, 11, 24, 12, 0), "local-llama", "alice", {}, None, None, 200, 400.0, 80, 20),
    ("e", datetime(2026, 11, 24, 13, 0), "gpt-4o-mini", None, {"workflow": "chat"},
     Decimal("0.0000082"), None, 429, 500.0, 10, 0),
    ("f", datetime(2026, 11, 24, 14, 0), "gpt-4o-mini", "alice", {"workflow": "research", "step": "fetch"},
     Decimal("0"), Decimal("0.000150"), 200, 5.0, 1000, 100),  # a cache hit: free, and it saved a's cost
    ("g", datetime(2026, 11, 26, 23, 59, 59), "local-llama", "carol", {}, None, None, None, 1000.0, None, None),
    ("late", datetime(2026, 11, 27, 0, 0), "gpt-4o", "bob", {}, Decimal("1"), None, 200, 1.0, 1, 1),  # --until
]


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "llmtap.duckdb"
    with duckdb.connect(str(path)) as db:
        migrate(db)
        for request_id, at, model, user, properties, cost, saved, status, latency, tokens_in, tokens_out in CALLS:
            db.execute("INSERT INTO requests (request_id, created_at, way, model, model_requested, user_id, properties,"
                       " cost_usd, cost_saved_usd, status, latency_ms, input_tokens, output_tokens, price_error) "
                       "VALUES (?, ?, 'gateway', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [request_id, at.replace(tzinfo=UTC), model, model, user, properties, cost, saved, status,
                        latency, tokens_in, tokens_out, None if cost is not None else f"no price for {model}"])
    return path


def test_costs_per_model_sum_priced_calls_and_count_the_others(log):
    rows = queries.costs(log, WEEK, dimension("model")).dicts()
    assert [(r["model"], r["requests"], r["cost_usd"], r["unpriced"], r["kind"]) for r in rows] == [
        ("gpt-4o", 1, Decimal("0.0025"), 0, "group"),
        ("gpt-4o-mini", 4, Decimal("0.0004582"), 0, "group"),
        ("local-llama", 2, None, 2, "group"),  # unknown, not $0
        (None, 7, Decimal("0.0029582"), 2, "total"),
    ]
    mini, total = rows[1], rows[3]
    assert mini["avg_cost_usd"] == Decimal("0.0004582") / 4
    assert mini["saved_usd"] == Decimal("0.00015") and mini["input_tokens"] == 3010 and mini["output_tokens"] == 450
    assert mini["share_pct"] == round(float(100 * Decimal("0.0004582") / Decimal("0.0029582")), 2)
    assert rows[2]["share_pct"] is None and total["share_pct"] == 100
    assert total["avg_cost_usd"] == Decimal("0.0029582") / 5  # per priced call


def test_costs_per_workflow_then_step_is_the_seeds_view(log):
    rows = queries.costs(log, WEEK, dimension("property:Workflow"), dimension("property:STEP")).dicts()
    assert [(r["workflow"], r["step"], r["requests"], r["input_tokens"], r["cost_usd"], r["kind"]) for r in rows] == [
        ("research", None, 4, 3500, Decimal("0.00295"), "subtotal"),  # each workflow's total, by cost, then its steps
        ("research", "summarize", 2, 1000 + 500, Decimal("0.0028"), "group"),
        ("research", "fetch", 2, 2000, Decimal("0.00015"), "group"),
        ("chat", None, 1, 10, Decimal("0.0000082"), "subtotal"),
        ("chat", None, 1, 10, Decimal("0.0000082"), "group"),
        (None, None, 2, 80, None, "subtotal"),  # no workflow at all, and unpriced: last
        (None, None, 2, 80, None, "group"),
        (None, None, 7, 3590, Decimal("0.0029582"), "total"),
    ]
    assert rows[0]["share_pct"] == round(float(100 * Decimal("0.00295") / Decimal("0.0029582")), 2)


def test_costs_per_day_come_in_time_order_and_only_days_with_calls(log):
    rows = queries.costs(log, WEEK, dimension("day")).rows
    assert [(row[0], row[1]) for row in rows] == [
        (date(2026, 11, 21), 3), (date(2026, 11, 24), 3), (date(2026, 11, 26), 1), (None, 7)]


def test_costs_of_an_empty_scope_are_no_rows(log):
    assert queries.costs(log, Scope(users=("nobody",)), dimension("user")).rows == []


def test_then_must_differ_from_by(log):
    with pytest.raises(ScopeError, match="--then"):
        queries.costs(log, WEEK, dimension("model"), dimension("Model"))


def test_users_latency_errors_and_model_mix(log):
    rows = queries.users(log, WEEK).dicts()
    assert [r["user"] for r in rows] == ["bob", "alice", None, "carol"]  # most spent first; unknown cost last
    alice = rows[1]
    assert alice["requests"] == 4 and alice["cost_usd"] == Decimal("0.00045") and alice["unpriced"] == 1
    assert alice["avg_latency_ms"] == pytest.approx((100 + 200 + 400 + 5) / 4)
    latencies = sorted([100.0, 200.0, 400.0, 5.0])  # p95 by linear interpolation between the two largest
    assert alice["p95_latency_ms"] == pytest.approx(latencies[2] + 0.85 * (latencies[3] - latencies[2]))
    assert alice["error_pct"] == 0 and alice["models"] == "gpt-4o-mini 75%, local-llama 25%"
    assert alice["last_seen"] == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    nobody, carol = rows[2], rows[3]
    assert nobody["error_pct"] == 100 and nobody["cost_usd"] == Decimal("0.0000082")  # the 429
    assert carol["error_pct"] == 100 and carol["cost_usd"] is None  # no answer at all is an error too


def test_trends_show_every_day_of_the_range_those_without_calls_too(log):
    rows = queries.trends(log, WEEK, "day").rows
    assert rows == [
        (date(2026, 11, 20), 0, 0, 0),
        (date(2026, 11, 21), 3, Decimal("0.00295"), 0),
        (date(2026, 11, 22), 0, 0, 0),
        (date(2026, 11, 23), 0, 0, 0),
        (date(2026, 11, 24), 3, Decimal("0.0000082"), 1),
        (date(2026, 11, 25), 0, 0, 0),
        (date(2026, 11, 26), 1, None, 1),  # only an unpriced call: unknown, not $0
    ]  # --until 2026-11-27 is exclusive: no 27th


def test_trends_per_week_start_on_monday_and_hours_are_gap_filled(log):
    weeks = queries.trends(log, WEEK, "week").rows
    assert [(row[0], row[1]) for row in weeks] == [(date(2026, 11, 16), 3), (date(2026, 11, 23), 4)]
    hours = queries.trends(log, Scope(since=datetime(2026, 11, 24, 11, 30, tzinfo=UTC),
                                      until=datetime(2026, 11, 24, 15, 0, tzinfo=UTC)), "hour").rows
    assert [(row[0], row[1]) for row in hours] == [
        (datetime(2026, 11, 24, 11), 0), (datetime(2026, 11, 24, 12), 1), (datetime(2026, 11, 24, 13), 1),
        (datetime(2026, 11, 24, 14), 1)]


def test_trends_by_model_split_each_period_and_carry_its_total(log):
    rows = queries.trends(log, Scope(since=datetime(2026, 11, 21, tzinfo=UTC),
                                     until=datetime(2026, 11, 23, tzinfo=UTC)), "day", dimension("model")).dicts()
    assert [(r["day"], r["model"], r["requests"], r["cost_usd"], r["period_requests"], r["period_cost_usd"])
            for r in rows] == [
        (date(2026, 11, 21), "gpt-4o", 1, Decimal("0.0025"), 3, Decimal("0.00295")),
        (date(2026, 11, 21), "gpt-4o-mini", 2, Decimal("0.00045"), 3, Decimal("0.00295")),
        (date(2026, 11, 22), None, 0, 0, 0, 0),
    ]


def test_trends_of_an_empty_scope_are_no_rows(log):
    assert queries.trends(log, Scope(users=("nobody",)), "day").rows == []
    with pytest.raises(ScopeError, match="hour, day, week, month"):
        queries.trends(log, WEEK, "year")


def test_a_property_named_like_a_report_column_gets_its_own_column(log):
    with duckdb.connect(str(log)) as db:
        db.execute("INSERT INTO requests (request_id, created_at, way, model, user_id, properties, cost_usd) "
                   "VALUES ('k', '2026-11-25 10:00:00+00', 'gateway', 'gpt-4o', 'dave', "
                   "MAP {'kind': 'batch', 'user': 'team-a'}, 0.5)")
    by_kind = queries.costs(log, WEEK, dimension("property:kind"))
    assert len(set(by_kind.columns)) == len(by_kind.columns)
    assert [(r["property:kind"], r["kind"]) for r in by_kind.dicts()][:1] == [("batch", "group")]
    split = queries.costs(log, WEEK, dimension("property:User"), dimension("user")).dicts()
    assert ("team-a", "dave", "group") in [(r["property:user"], r["user"], r["kind"]) for r in split]
    with pytest.raises(ScopeError, match="quote"):
        dimension('property:a"b')
