"""The shared analytics workload lands in the log as tests/analytics_workload.py describes it: the other analytics
tests' ground truth, checked here with plain SQL."""

from __future__ import annotations

import json
import subprocess
import sys

STATES_SEEN: list[str] = []


def test_every_user_has_the_calls_sent_for_them(analytics):
    gateway, workload = analytics
    rows = gateway.query("SELECT user_id, count(*) FROM requests GROUP BY user_id")
    assert dict(rows) == workload.calls_by_user() == {"alice": 5, "bob": 4, "carol": 5, None: 3}
    assert sum(count for _, count in rows) == workload.calls == 17


def test_every_call_is_logged_as_the_workload_says_it_was_sent(analytics):
    gateway, workload = analytics
    columns = ("request_id", "user_id", "way", "provider", "model_requested", "key_owner", "status", "stream",
               "session_id", "session_path", "properties")
    logged = {row["request_id"]: tuple(row[c] for c in columns) for row in gateway.rows(count=workload.calls)}
    assert logged == {call.request_id: (call.request_id, call.user, call.way, call.provider, call.model,
                                        call.key_owner, call.status, call.stream, call.session_id,
                                        call.session_path, call.properties) for call in workload.sent.values()}


def test_both_ways_in_both_providers_and_the_gateway_keys_owners(analytics):
    gateway, workload = analytics
    ways = gateway.query("SELECT way, provider, key_owner, count(*) FROM requests GROUP BY ALL ORDER BY ALL")
    assert ways == [("gateway", "anthropic", "ops-team", 1), ("gateway", "anthropic", "research-team", 2),
                    ("gateway", "openai", "ops-team", 5), ("gateway", "openai", "research-team", 5),
                    ("proxy", "anthropic", None, 2), ("proxy", "openai", None, 2)]
    streamed = gateway.query("SELECT request_id FROM requests WHERE stream ORDER BY created_at")
    assert streamed == [(workload.ids["alice_stream"],), (workload.ids["anon_stream"],)]


def test_property_names_sent_in_mixed_case_are_stored_lower_cased(analytics):
    gateway, workload = analytics
    names = gateway.query("SELECT DISTINCT unnest(map_keys(properties)) AS name FROM requests ORDER BY name")
    assert names == [("step",), ("workflow",)]
    workflows = gateway.query("SELECT properties['workflow'] AS workflow, count(*) FROM requests "
                              "WHERE properties['workflow'] IS NOT NULL GROUP BY ALL ORDER BY workflow")
    assert workflows == [("research-agent", 6), ("support-bot", 5)]
    assert workload.properties == {"workflow": {"research-agent", "support-bot"},
                                   "step": {"plan", "search", "fetch", "summarize"}}


def test_two_sessions_form_trees_of_paths(analytics):
    gateway, workload = analytics
    sessions = gateway.query("SELECT session_id, any_value(session_name), any_value(user_id), "
                             "list(session_path ORDER BY session_path) FROM requests "
                             "WHERE session_id IS NOT NULL GROUP BY session_id ORDER BY session_id")
    assert sessions == [
        ("research-1", "Research run", "alice",
         ["/research", "/research/search", "/research/search/fetch", "/research/summarize"]),
        ("research-2", "Research run", "bob", ["/research", "/research/search"]),
    ]
    assert {s.id: sorted(s.paths.values()) for s in workload.sessions.values()} == {
        session_id: paths for session_id, _, _, paths in sessions}


def test_the_same_cached_request_twice_is_a_miss_then_a_hit(analytics):
    gateway, workload = analytics
    miss, hit = (gateway.row(workload.ids[role]) for role in ("carol_cache_miss", "carol_cache_hit"))
    assert (miss["cache_status"], miss["attempts"]) == ("MISS", 1)
    assert (hit["cache_status"], hit["attempts"], hit["status"]) == ("HIT", 0, 200)
    assert hit["cost_saved_usd"] == miss["cost_usd"] > 0


def test_errors_and_429s_as_the_client_saw_them(analytics):
    gateway, workload = analytics
    error, retried, refused = (gateway.row(workload.ids[r]) for r in ("carol_error", "carol_retried", "carol_429"))
    assert (error["status"], error["attempts"]) == (500, 1)
    assert (retried["status"], retried["retries"]) == (200, 1)
    assert [(a["status"], a["retry_after_s"]) for a in retried["attempt_log"]] == [(429, 0.05), (200, None)]
    assert (refused["status"], refused["retries"]) == (429, 0)
    throttling = gateway.query("SELECT request_id, event, retry_after_s FROM throttling ORDER BY created_at")
    assert throttling == [(workload.ids["bob_near_limit"], "near_limit", None),
                          (workload.ids["carol_retried"], "rate_limited", 0.05),
                          (workload.ids["carol_429"], "rate_limited", 1.0)]


def test_providers_rate_limit_headers_are_logged(analytics):
    gateway, workload = analytics
    alice = gateway.row(workload.ids["alice_research"])["ratelimit"]
    assert alice["x-ratelimit-limit-requests"] == "10000" and "x-ratelimit-remaining-tokens" in alice
    assert "anthropic-ratelimit-requests-remaining" in gateway.row(workload.ids["alice_fetch"])["ratelimit"]


def test_only_the_model_genai_prices_does_not_know_has_an_unknown_cost(analytics):
    gateway, workload = analytics
    unknown = gateway.query("SELECT request_id, model, price_error FROM requests WHERE cost_usd IS NULL")
    assert len(unknown) == 1
    request_id, model, price_error = unknown[0]
    assert request_id == workload.ids["bob_unpriced"] and model == workload.models["unpriced"]
    assert workload.models["unpriced"] in price_error
    priced = gateway.query("SELECT DISTINCT model FROM requests WHERE cost_usd > 0 ORDER BY model")
    assert priced == [("claude-haiku-4-5",), ("claude-sonnet-4-6",), ("gpt-4o-mini-2024-07-18",)]


def test_a_cli_reads_the_whole_workload_while_the_gateway_runs_and_after_it_stopped(log_state):
    gateway, workload, state = log_state
    STATES_SEEN.append(state)
    assert gateway.process is not None and (gateway.process.poll() is None) == (state == "running")
    if state == "stopped":
        assert "running" in STATES_SEEN, "a stopped-gateway test ran before the running-gateway ones"
    result = subprocess.run(
        [sys.executable, "-m", "llmtap.cli", "sql", "SELECT user_id, count(*) AS calls FROM requests GROUP BY ALL",
         "--config", str(gateway.config_path)], capture_output=True, text=True, cwd=gateway.workdir, timeout=60)
    assert result.returncode == 0, result.stderr
    calls = {row["user_id"]: row["calls"] for row in map(json.loads, result.stdout.splitlines())}
    assert calls == workload.calls_by_user()


def test_analytics_starts_the_gateway_again_after_a_stopped_log_state(analytics):
    gateway, _ = analytics
    assert gateway.process is not None and gateway.process.poll() is None
