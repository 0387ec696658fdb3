"""The response cache's expiry on llmtap's real pipeline, with time moved by hand: an answer is served until its
`max-age` has passed, never after. (End to end, with real clients: test_cache.py.)"""

from __future__ import annotations

from .conftest import chat_body

CACHE_ON = {"Helicone-Cache-Enabled": "true"}


def test_an_entry_is_served_before_max_age_and_not_after(llmtap, wall_clock):
    pipeline = llmtap()
    headers = {**CACHE_ON, "Cache-Control": "max-age=60"}
    body = chat_body("short-lived answer")
    assert pipeline.call(body, headers).response.headers["helicone-cache"] == "MISS"
    wall_clock.advance(59.9)
    hit = pipeline.call(body, headers)
    assert hit.response.headers["helicone-cache"] == "HIT" and len(pipeline.provider_requests) == 1
    wall_clock.advance(0.1)  # exactly 60 s old: expired
    assert pipeline.call(body, headers).response.headers["helicone-cache"] == "MISS"
    assert len(pipeline.provider_requests) == 2
    assert pipeline.call(body, headers).response.headers["helicone-cache"] == "HIT"  # the new answer replaced it
    rows = pipeline.rows()
    assert [r["cache_status"] for r in rows] == ["MISS", "HIT", "MISS", "HIT"]
    assert [r["attempts"] for r in rows] == [1, 0, 1, 0]


def test_expiry_holds_for_answers_read_back_from_disk(llmtap, wall_clock):
    """A second gateway on the same cache directory has nothing in memory: the expiry is read from disk."""
    first = llmtap()
    cache_dir = first.settings.config.cache_path
    headers = {**CACHE_ON, "Cache-Control": "max-age=30"}
    body = chat_body("from disk")
    assert first.call(body, headers).response.headers["helicone-cache"] == "MISS"
    first.close()
    second = llmtap({"cache": {"path": str(cache_dir)}})
    wall_clock.advance(29)
    assert second.call(body, headers).response.headers["helicone-cache"] == "HIT"
    wall_clock.advance(1)
    assert second.call(body, headers).response.headers["helicone-cache"] == "MISS"
    assert len(second.provider_requests) == 1


def test_the_default_max_age_is_a_week(llmtap, wall_clock):
    pipeline = llmtap()
    body = chat_body("a week")
    assert pipeline.call(body, CACHE_ON).response.headers["helicone-cache"] == "MISS"
    wall_clock.advance(7 * 24 * 3600 - 1)
    assert pipeline.call(body, CACHE_ON).response.headers["helicone-cache"] == "HIT"
    wall_clock.advance(1)
    assert pipeline.call(body, CACHE_ON).response.headers["helicone-cache"] == "MISS"


def test_a_hit_costs_nothing_and_records_what_it_saved(llmtap):
    pipeline = llmtap()
    body = chat_body("saving")
    miss, hit = pipeline.call(body, CACHE_ON), pipeline.call(body, CACHE_ON)
    assert hit.response.content == miss.response.content and len(pipeline.provider_requests) == 1
    miss_row, hit_row = pipeline.rows()
    assert hit_row["cost_usd"] == 0 and hit_row["cost_saved_usd"] == miss_row["cost_usd"] > 0
    assert hit_row["output_tokens"] == miss_row["output_tokens"] == 5
