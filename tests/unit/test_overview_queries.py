"""The overview and headroom queries on a real DuckDB log built here: bucket widths, buckets aligned to UTC and
gap-filled, percentiles, an unknown price kept unknown (a bucket of only unpriced calls too), every 429 try counted,
a cache hit's replayed headers left out of the headroom."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest
from llmtap.analytics import queries
from llmtap.analytics.scope import Scope, ScopeError
from llmtap.migrations import migrate

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
HOUR = Scope(since=T0, until=T0 + timedelta(hours=1))
STEP_S = 900  # four buckets: 10:00, 10:15, 10:30, 10:45


def openai_budget(requests_left: int, tokens_left: int) -> dict[str, str]:
    return {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": str(requests_left),
            "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": str(tokens_left)}


def try_(status: int) -> dict:
    return {"provider": "openai", "model": "gpt-4o", "status": status, "latency_ms": 5.0, "wait_ms": None,
            "retry_after_s": 1.0 if status == 429 else None, "error": None}


def call(request_id: str, minute: float, **fields) -> dict:
    return {"request_id": request_id, "created_at": T0 + timedelta(minutes=minute), "way": "gateway",
            "provider": "openai", "model": "gpt-4o-mini", "model_requested": "gpt-4o-mini", "status": 200,
            "attempts": 1, "latency_ms": 100.0, "input_tokens": 10, "output_tokens": 5,
            "cost_usd": Decimal("0.001"), **fields}


CALLS = [
    call("early", -1),  # before the range
    call("a", 1, stream=True, ttft_ms=50.0, cache_status="MISS", ratelimit=openai_budget(50, 500)),
    # a cache hit: free, saved a's cost; its headers are a's, replayed: no news about the budget
    call("b", 5, latency_ms=300.0, cost_usd=Decimal("0.002"), cost_saved_usd=Decimal("0.001"), cache_status="HIT",
         ratelimit=openai_budget(1, 1)),
    # alone in its bucket, and without a price
    call("c", 20, provider="anthropic", model="claude-haiku-4-5", model_requested="claude-haiku-4-5", status=500,
         latency_ms=200.0, cost_usd=None, price_error="no price", stream=True, ttft_ms=150.0,
         ratelimit={"anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "5"}),
    # two 429s retried to a 200, then a 429 not retried: three 429s from the provider
    call("d", 40, model="gpt-4o", model_requested="gpt-4o", latency_ms=400.0, cost_usd=Decimal("0.010"),
         attempts=3, retries=2, attempt_log=[try_(429), try_(429), try_(200)], ratelimit=openai_budget(20, 100)),
    call("e", 41, status=429, latency_ms=10.0, cost_usd=Decimal("0")),
    call("late", 60),  # `until` is exclusive
]


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "llmtap.duckdb"
    with duckdb.connect(str(path)) as db:
        migrate(db)
        for row in CALLS:
            db.execute(f"INSERT INTO requests ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                       list(row.values()))
    return path


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


@pytest.mark.parametrize(("span", "step_s"), [
    (timedelta(minutes=30), 60), (timedelta(hours=1), 60), (timedelta(hours=2), 900), (timedelta(days=1), 900),
    (timedelta(days=7), 3600), (timedelta(days=30), 21600), (timedelta(days=90), 86400)])
def test_a_charts_step_keeps_it_between_a_few_and_about_180_points(span, step_s):
    assert queries.step_for(T0, T0 + span, now=T0) == step_s
    assert queries.step_for(T0 - span, None, now=T0) == step_s  # an open range ends now
    assert 4 <= span.total_seconds() / step_s <= 180 or span < timedelta(hours=1)


def test_a_7_day_range_chosen_a_moment_ago_is_still_hourly():
    assert queries.step_for(T0 - timedelta(days=7), None, now=T0 + timedelta(seconds=2)) == 3600


def test_summary_has_the_cards_figures(log):
    s = queries.summary(log, HOUR).dicts()[0]
    assert (s["requests"], s["errors"], s["error_pct"]) == (5, 2, 40)  # the 500 and the 429
    assert s["cost_usd"] == Decimal("0.013") and s["unpriced"] == 1
    assert s["avg_cost_usd"] == Decimal("0.013") / 4  # per priced call
    # latencies 10, 100, 200, 300, 400: linear interpolation, as quantile_cont does
    assert s["p50_latency_ms"] == 200 and s["p95_latency_ms"] == pytest.approx(300 + 0.8 * 100)
    assert s["p50_ttft_ms"] == 100 and s["p95_ttft_ms"] == pytest.approx(50 + 0.95 * 100)  # streamed: a and c
    assert (s["input_tokens"], s["output_tokens"]) == (50, 25)
    assert (s["cache_hits"], s["cache_misses"], s["cache_hit_pct"], s["saved_usd"]) == (1, 1, 50, Decimal("0.001"))


def test_summary_of_only_unpriced_calls_has_an_unknown_cost(log):
    s = queries.summary(log, Scope(providers=("anthropic",))).dicts()[0]
    assert s["requests"] == 1 and s["cost_usd"] is None and s["avg_cost_usd"] is None and s["unpriced"] == 1


def test_series_fills_every_bucket_of_the_range_and_keeps_unknown_cost_unknown(log):
    rows = queries.series(log, HOUR, STEP_S).dicts()
    assert [r["bucket"] for r in rows] == [at(0), at(15), at(30), at(45)]
    first, unpriced, throttled, empty = rows
    assert (first["requests"], first["errors"], first["cost_usd"], first["unpriced"]) == (2, 0, Decimal("0.003"), 0)
    assert first["p50_latency_ms"] == 200 and first["p95_latency_ms"] == pytest.approx(100 + 0.95 * 200)
    assert (first["cache_hits"], first["cache_misses"], first["cache_hit_pct"], first["saved_usd"]) == (
        1, 1, 50, Decimal("0.001"))
    assert (unpriced["requests"], unpriced["errors"], unpriced["cost_usd"], unpriced["unpriced"]) == (1, 1, None, 1)
    assert unpriced["cache_hit_pct"] is None  # no cached call: no rate, not 0%
    assert (throttled["requests"], throttled["errors"], throttled["rate_limited"]) == (2, 1, 3)
    assert throttled["cost_usd"] == Decimal("0.010") and throttled["p50_latency_ms"] == 205
    assert empty == {"bucket": at(45), "requests": 0, "errors": 0, "rate_limited": 0, "cost_usd": 0, "unpriced": 0,
                     "p50_latency_ms": None, "p95_latency_ms": None, "cache_hits": 0, "cache_misses": 0,
                     "cache_hit_pct": None, "saved_usd": 0}  # no calls spent $0


def test_series_without_a_start_begins_at_the_first_calls_bucket(log):
    rows = queries.series(log, Scope(until=T0 + timedelta(hours=1)), STEP_S).rows
    assert rows[0][0] == at(-15) and rows[-1][0] == at(45) and len(rows) == 5  # 09:59 falls in 09:45


def test_series_of_an_empty_scope_are_no_rows_and_a_bad_step_is_refused(log):
    assert queries.series(log, Scope(users=("nobody",)), STEP_S).rows == []
    with pytest.raises(ScopeError, match="bucket width"):
        queries.series(log, HOUR, 0)
    with pytest.raises(ScopeError, match="buckets"):
        queries.series(log, Scope(since=T0 - timedelta(days=365)), 60)


def test_spend_by_model_names_the_top_models_and_sums_the_rest_as_other(log):
    rows = queries.spend_by_model(log, HOUR, STEP_S, top=1).rows
    assert rows == [
        (at(0), "other", 2, 2, Decimal("0.003"), 0),  # gpt-4o-mini
        (at(15), "other", 2, 1, None, 1),  # claude-haiku-4-5, unpriced: unknown, not $0
        (at(30), "gpt-4o", 1, 1, Decimal("0.010"), 0),  # the scope's most expensive model
        (at(30), "other", 2, 1, Decimal("0"), 0),
    ]
    named = queries.spend_by_model(log, HOUR, STEP_S).dicts()
    assert [(r["model"], r["rank"]) for r in named] == [
        ("gpt-4o-mini", 2), ("claude-haiku-4-5", 3), ("gpt-4o", 1), ("gpt-4o-mini", 2)]


def test_headroom_series_has_the_429s_and_the_lowest_budget_left_per_bucket(log):
    rows = queries.headroom_series(log, HOUR, STEP_S).rows
    assert rows == [
        (at(0), 0, 50.0, 50.0),  # b's 1% is a cache hit replaying old headers: not counted
        (at(15), 0, 10.0, None),  # anthropic's header names; no tokens figure sent
        (at(30), 3, 20.0, 10.0),
        (at(45), 0, None, None),
    ]
