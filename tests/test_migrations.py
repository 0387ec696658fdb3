"""The schema's views read what any provider sends, without naming providers."""

from __future__ import annotations

import duckdb
import pytest
from llmtap.migrations import MIGRATIONS, migrate


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


OLD_PROPERTIES = {  # as logs written before ingestion lower-cased property names hold them
    "mixed": {"Workflow": "a", "step": "x"},
    "duplicate": {"Workflow": "old", "workflow": "new"},  # the later entry is the one a later header would have set
    "three_cases": {"workflow": "first", "WORKFLOW": "last", "Step": "s"},
    "lower": {"workflow": "w"},
    "empty": {},
    "none": None,
}


def test_a_log_with_mixed_case_property_names_is_lower_cased_at_the_next_start(tmp_path, fresh_gateway):
    db_path = tmp_path / "gw0" / "data" / "llmtap.duckdb"  # where fresh_gateway's first gateway keeps its log
    db_path.parent.mkdir(parents=True)
    with duckdb.connect(str(db_path)) as db:
        before_m007 = [fn for fn in MIGRATIONS if fn.__name__ < "m007"]
        db.execute("CREATE TABLE llmtap_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
        for fn in before_m007:  # the schema exactly as an older llmtap left it
            fn(db)
            db.execute("INSERT INTO llmtap_migrations VALUES (?, now())", [fn.__name__])
        for request_id, properties in OLD_PROPERTIES.items():
            db.execute("INSERT INTO requests (request_id, created_at, way, properties) VALUES (?, now(), 'gateway', ?)",
                       [request_id, properties])

    gateway = fresh_gateway()

    assert "applied m007_property_names_lower_case" in gateway.output()
    stored = dict(gateway.query("SELECT request_id, properties FROM requests"))
    assert stored == {
        "mixed": {"workflow": "a", "step": "x"},
        "duplicate": {"workflow": "new"},
        "three_cases": {"workflow": "last", "step": "s"},
        "lower": {"workflow": "w"},
        "empty": {},
        "none": None,
    }
    found = gateway.query("SELECT request_id, properties['workflow'] FROM requests "
                          "WHERE properties['workflow'] IS NOT NULL ORDER BY request_id")
    assert found == [("duplicate", "new"), ("lower", "w"), ("mixed", "a"), ("three_cases", "last")]
