"""The schema's views read what any provider sends, without naming providers."""

from __future__ import annotations

import duckdb
import pytest
from llmtap.migrations import migrate


@pytest.mark.parametrize("headers, budget", [
    ({"x-ratelimit-remaining-requests": "2", "x-ratelimit-limit-requests": "100"}, ("requests", 2.0, 100.0)),
    ({"anthropic-ratelimit-requests-remaining": "1", "anthropic-ratelimit-requests-limit": "50",
      "anthropic-ratelimit-input-tokens-remaining": "7"}, ("requests", 1.0, 50.0)),
    ({"x-ratelimit-remaining-tokens": "10", "x-ratelimit-limit-tokens": "1000"}, ("tokens", 10.0, 1000.0)),
])
def test_an_answer_near_its_providers_limit_is_a_throttling_event(headers, budget):
    db = duckdb.connect()
    migrate(db)
    insert = ("INSERT INTO requests (request_id, created_at, way, status, attempts, ratelimit) "
              "VALUES (?, now(), 'gateway', 200, 1, ?)")
    db.execute(insert, ["near", headers])
    db.execute(insert, ["far", {name: "1000" for name in headers}])  # all of its budget left
    rows = db.execute(
        "SELECT request_id, event, requests_remaining, requests_limit, tokens_remaining, tokens_limit FROM throttling"
    ).fetchall()
    kind, remaining, limit = budget
    expected = (remaining, limit, None, None) if kind == "requests" else (None, None, remaining, limit)
    assert rows == [("near", "near_limit", *expected)]
