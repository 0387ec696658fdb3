"""Blocking budgets on llmtap's real pipeline with clocks moved by hand: a calendar day's budget refuses the call over
its threshold until the next UTC day; a rolling one frees as calls leave it; what a restart seeds them with.
(End to end through a real gateway: tests/test_budgets.py.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from mitmproxy import http

from .conftest import FakeClock, Pipeline, chat_body, completion


def budget(name: str, metric: str, window: str, threshold: float, **more) -> dict:
    return {"name": name, "metric": metric, "window": window, "threshold": threshold, "action": "block", **more}


@contextmanager
def restarted(first: Pipeline, wall_clock: FakeClock) -> Iterator[tuple[Pipeline, FakeClock]]:
    """`first` stopped and a new pipeline started on its config and log, as a restarted gateway, with the monotonic
    clock its limits run on: the same wall clock, a monotonic one of its own (a new process's starts anywhere).
    Stopped when the block ends."""
    first.close()
    clock = FakeClock(5000.0)
    pipeline = Pipeline(Path(first.context.options.llmtap_config), wall_clock, clock)
    try:
        yield pipeline, clock
    finally:
        pipeline.close()


def error_of(flow: http.HTTPFlow) -> dict:
    assert flow.response is not None
    return json.loads(flow.response.content or b"{}")["error"]


def test_a_day_budget_refuses_until_the_next_utc_day(llmtap, wall_clock, monotonic_clock):
    wall_clock.now = datetime(2026, 11, 27, 23, 59, 0, tzinfo=UTC).timestamp()
    pipeline = llmtap({"alerts": [budget("daily-calls", "requests", "day", 2, scope="user")]})
    ann = {"Helicone-User-Id": "ann"}
    assert [pipeline.call(headers=ann).response.status_code for _ in range(2)] == [200, 200]
    refused = pipeline.call(headers=ann)
    assert refused.response.status_code == 429 and refused.response.headers["retry-after"] == "60"
    error = error_of(refused)
    assert error["type"] == "llmtap_budget_exceeded" and error["budget"] == "daily-calls"
    assert error["message"] == ("budget 'daily-calls' reached for user 'ann': 2 requests used of 2 requests in "
                                "2026-11-27 (UTC); frees at 2026-11-28T00:00:00Z, in 60 s")
    assert pipeline.call(headers={"Helicone-User-Id": "bob"}).response.status_code == 200
    wall_clock.advance(59)
    monotonic_clock.advance(59)
    assert pipeline.call(headers=ann).response.status_code == 429
    wall_clock.advance(1)  # 2026-11-28 00:00:00 UTC: a new day, an empty budget
    monotonic_clock.advance(1)
    assert pipeline.call(headers=ann).response.status_code == 200
    rows = pipeline.rows()
    assert [r["status"] for r in rows] == [200, 200, 429, 200, 429, 200]
    assert all(r["error"].startswith("llmtap_budget_exceeded: budget 'daily-calls'") for r in rows if r["status"] == 429)
    assert len(pipeline.provider_requests) == 4


def test_after_a_restart_a_rolling_budget_frees_when_the_earlier_calls_leave_it(llmtap, wall_clock):
    """The second pipeline is a restart on the same log: it starts from what the first one's calls used, placed on its
    own monotonic clock by how long ago (wall clock) they were made."""
    first = llmtap({"alerts": [budget("minute-calls", "requests", "60s", 2, scope="user")]})
    ann = {"Helicone-User-Id": "ann"}
    assert [first.call(headers=ann).response.status_code for _ in range(2)] == [200, 200]
    wall_clock.advance(30)
    with restarted(first, wall_clock) as (again, clock):
        refused = again.call(headers=ann)
        assert refused.response.status_code == 429 and error_of(refused)["budget"] == "minute-calls"
        assert 29 <= int(refused.response.headers["retry-after"]) <= 31  # the earlier calls leave in ~30 s
        assert again.call(headers={"Helicone-User-Id": "bob"}).response.status_code == 200
        clock.advance(31)
        assert again.call(headers=ann).response.status_code == 200


def test_after_a_restart_rate_limit_policies_keep_their_windows(llmtap, wall_clock):
    """Header policies (per paying key and segment, `s=` naming a property in any case) and config rules (by their
    filter) start from the log too."""
    first = llmtap({"ratelimit": {"policies": [{"policy": "1;w=60", "properties": {"Team": "red"}}]}})
    feature = {"Helicone-RateLimit-Policy": "2;w=60;s=Feature", "Authorization": "Bearer tenant-key"}
    search = {**feature, "Helicone-Property-FEATURE": "search"}
    assert [first.call(headers=search).response.status_code for _ in range(2)] == [200, 200]
    assert first.call(headers={"Helicone-Property-Team": "red"}).response.status_code == 200
    # A row's time is when its request arrived, on the real clock: a loaded machine puts it seconds past the fake one.
    first_search_at = min(row["created_at"] for row in first.rows() if row["properties"].get("feature") == "search")
    wall_clock.advance(10)
    with restarted(first, wall_clock) as (again, clock):
        window_left_s = first_search_at.timestamp() + 60 - wall_clock()  # ~50 s
        over = again.call(headers={**feature, "helicone-property-feature": "search"})
        assert over.response.status_code == 429 and error_of(over)["policy"] == "2;w=60;s=Feature"
        assert abs(int(over.response.headers["retry-after"]) - window_left_s) <= 1
        assert again.call(headers={**feature, "Helicone-Property-Feature": "chat"}).response.status_code == 200
        other_key = {**search, "Authorization": "Bearer another-key"}  # a header policy counts per paying key
        assert again.call(headers=other_key).response.status_code == 200
        assert again.call(headers={"Helicone-Property-Team": "red"}).response.status_code == 429
        assert again.call(headers={"Helicone-Property-Team": "blue"}).response.status_code == 200
        clock.advance(window_left_s + 1)
        assert again.call(headers=search).response.status_code == 200


def test_an_unpriced_answered_call_holds_its_reservation_across_a_restart_too(llmtap, wall_clock):
    """A model without a known price reserves 10¢ and keeps it once answered (its cost cannot be priced): a spend
    budget of 15¢ lets one such call through and refuses the next, before and after a restart alike."""
    first = llmtap({"alerts": [budget("tiny", "spend_usd", "day", 0.15)]})
    unpriced = chat_body(model="openai/my-private-finetune-7b")
    answer = completion("hi", model="my-private-finetune-7b")
    assert first.call(body=unpriced, answer=answer).response.status_code == 200
    assert first.rows()[0]["cost_usd"] is None
    assert first.call(body=unpriced, answer=answer).response.status_code == 429  # 10¢ held + 10¢ > 15¢
    with restarted(first, wall_clock) as (again, clock):
        refused = again.call(body=unpriced, answer=answer)
        assert refused.response.status_code == 429 and error_of(refused)["budget"] == "tiny"
