"""Sessions, traces and throttling over a real DuckDB log built in the test: the edges (unknown prices, paths to
clean, levels without calls, headers of any provider's shape, NULL keys) pinned where they are easy to state."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest
import yaml
from llmtap.analytics import queries
from llmtap.analytics.scope import Scope
from llmtap.migrations import migrate

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
COLUMNS = ("request_id", "created_at", "session_id", "session_path", "session_name", "user_id", "model",
           "model_requested", "provider", "status", "latency_ms", "input_tokens", "output_tokens", "cost_usd",
           "key_hash", "key_owner", "ratelimit", "attempts", "attempt_log")


def insert(log, *calls: dict) -> None:
    with duckdb.connect(str(log)) as db:
        migrate(db)
        for call in calls:
            row = {"way": "gateway", "attempts": 1, **call}
            names = ", ".join(row)
            db.execute(f"INSERT INTO requests ({names}) VALUES ({', '.join('?' for _ in row)})", list(row.values()))


def call(request_id: str, offset_s: float, **fields) -> dict:
    return {"request_id": request_id, "created_at": T0 + timedelta(seconds=offset_s), "provider": "openai",
            "model": "gpt-4o-mini-2024-07-18", "model_requested": "gpt-4o-mini", "status": 200, "latency_ms": 500.0,
            "input_tokens": 10, "output_tokens": 5, "cost_usd": Decimal("0.0000045"), **fields}


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "llmtap.duckdb"
    insert(path,
           call("s1-a", 0, session_id="s1", session_path="/research", session_name="first", user_id="alice"),
           call("s1-b", 2, session_id="s1", session_path="research//search/fetch/", user_id="bob",
                model="claude-haiku-4-5", model_requested="claude-haiku-4-5", cost_usd=None, latency_ms=1250.0),
           call("s1-c", 3, session_id="s1", session_path=None, status=429, input_tokens=None, output_tokens=None,
                cost_usd=Decimal("0"), latency_ms=20.0),
           call("s2-a", 60, session_id="s2", session_path="/", user_id="alice", session_name="second"),
           call("loose", 90))
    return path


def test_a_session_with_an_unpriced_call_has_an_unknown_cost_and_says_how_many(log):
    rows = queries.sessions(log, Scope()).dicts()
    assert [row["session"] for row in rows] == ["s2", "s1"]  # newest first; the call without a session is none
    s1 = rows[1]
    assert s1 == {"session": "s1", "name": "first", "calls": 3, "users": 2, "models": 2, "cost_usd": None,
                  "unpriced": 1, "tokens": 30, "errors": 1, "started": T0,
                  "duration_ms": pytest.approx(3250.0)}  # to the end of the call ending last: s1-b at 3.25 s (s1-c at 3.02)
    assert rows[0]["cost_usd"] == Decimal("0.0000045") and rows[0]["unpriced"] == 0


def test_session_duration_runs_to_the_call_that_ends_last(tmp_path):
    path = tmp_path / "llmtap.duckdb"
    insert(path, call("a", 0, session_id="s", latency_ms=9000.0), call("b", 1, session_id="s", latency_ms=100.0))
    assert queries.sessions(path, Scope()).dicts()[0]["duration_ms"] == pytest.approx(9000.0)


def test_an_empty_scope_has_no_sessions(log):
    assert queries.sessions(log, Scope(since=T0 + timedelta(days=1))).rows == []
    assert queries.sessions(log, Scope(users=("carol",))).rows == []


def test_trace_cleans_paths_and_gives_depth_and_offset(log):
    rows = queries.trace(log, "s1").dicts()
    assert [(r["request_id"], r["path"], r["depth"], r["offset_ms"]) for r in rows] == [
        ("s1-a", "/research", 1, 0.0), ("s1-b", "/research/search/fetch", 3, 2000.0), ("s1-c", None, 0, 3000.0)]
    assert [r["path"] for r in queries.trace(log, "s2").dicts()] == [None]  # "/" is the root


def test_a_session_id_prefix_finds_one_session_or_says_it_is_ambiguous(log):
    assert queries.sessions_matching(log, "s1").rows == [("s1",)]
    assert [row[0] for row in queries.sessions_matching(log, "s").rows] == ["s1", "s2"]
    assert queries.sessions_matching(log, "nope").rows == []
    insert(log, call("z", 100, session_id="zeta-42"))
    assert queries.sessions_matching(log, "ze").rows == [("zeta-42",)]


def run_cli(tmp_path, log, *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "llmtap.yaml"
    config.write_text(yaml.safe_dump({"storage": {"path": str(log)}}))
    return subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", [("sessions",), ("trace", "s1"), ("limits",)])
def test_a_missing_or_unreadable_log_is_one_line_and_exit_1(tmp_path, args):
    missing = run_cli(tmp_path, tmp_path / "none.duckdb", *args)
    assert (missing.returncode, missing.stdout) == (1, "")
    assert missing.stderr.splitlines() == [
        f"llmtap: no log yet at {tmp_path / 'none.duckdb'} (start the gateway and make a call)"]
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database" * 1000)
    unreadable = run_cli(tmp_path, garbage, *args)
    assert (unreadable.returncode, unreadable.stdout) == (1, "")
    [line] = unreadable.stderr.splitlines()
    assert line.startswith(f"llmtap: {garbage} cannot be read: ")


def test_a_cache_hit_says_nothing_about_the_budget_now(tmp_path):
    path = tmp_path / "llmtap.duckdb"
    insert(path, call("a", 0, key_hash="k", ratelimit=openai_budget(90, 900)),
           call("b", 1, key_hash="k", ratelimit=openai_budget(10, 100)),
           call("hit", 2, key_hash="k", ratelimit=openai_budget(90, 900), cache_status="HIT"))
    [row] = queries.limits(path, Scope()).dicts()
    assert (row["requests_left_now_pct"], row["seen_at"]) == (10.0, T0 + timedelta(seconds=1))


def test_trace_tree_shows_levels_without_calls_as_branches(log, tmp_path):
    result = run_cli(tmp_path, log, "trace", "s1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "session s1 (first)"
    tree = [line.strip("│├└─ ") for line in lines[1:7]]
    assert tree[0] == "/research"
    assert tree[1].startswith("+0.000s gpt-4o-mini-2024-07-18 500 ms 10+5 tokens $0.0000045 200")
    assert tree[2:4] == ["/research/search", "/research/search/fetch"]  # /research/search has no call of its own
    assert tree[4].startswith("+2.000s claude-haiku-4-5 1,250 ms 10+5 tokens $? 200")
    assert tree[5].startswith("+3.000s gpt-4o-mini-2024-07-18 20 ms ?+? tokens $0 429")  # no path: at the root
    assert max(len(line) for line in lines) <= 80


def openai_budget(requests_left: int, tokens_left: int) -> dict:
    return {"x-ratelimit-limit-requests": "100", "x-ratelimit-remaining-requests": str(requests_left),
            "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": str(tokens_left)}


def test_limits_count_every_429_try_and_read_any_providers_budget_headers(tmp_path):
    path = tmp_path / "llmtap.duckdb"
    retried = [{"provider": "openai", "model": "gpt-4o-mini", "status": 429, "latency_ms": 5.0, "wait_ms": 1000.0,
                "retry_after_s": 1.0, "error": None},
               {"provider": "openai", "model": "gpt-4o-mini", "status": 429, "latency_ms": 5.0, "wait_ms": 2000.0,
                "retry_after_s": 2.0, "error": None},
               {"provider": "openai", "model": "gpt-4o-mini", "status": 200, "latency_ms": 5.0, "wait_ms": None,
                "retry_after_s": None, "error": None}]
    insert(path,
           call("a", 0, key_hash="sha256:k1", ratelimit=openai_budget(10, 500)),
           call("b", 1, key_hash="sha256:k1", ratelimit=openai_budget(50, 100), attempts=3, retries=2,
                attempt_log=retried),
           call("c", 2, key_hash="sha256:k1", ratelimit=openai_budget(90, 900)),
           call("d", 3, provider="anthropic", model="claude-haiku-4-5", model_requested="claude-haiku-4-5",
                key_hash=None, status=429, ratelimit={"anthropic-ratelimit-requests-limit": "50",
                                                       "anthropic-ratelimit-requests-remaining": "0",
                                                       "retry-after": "7"}),
           call("e", 4, provider="anthropic", model="claude-haiku-4-5", model_requested="claude-haiku-4-5",
                key_hash=None, ratelimit={"anthropic-ratelimit-requests-limit": "50",
                                          "anthropic-ratelimit-requests-remaining": "40"}),
           call("f", 5, key_hash="sha256:k2"))  # no headers, no 429: nothing to say
    rows = {(r["provider"], r["key"]): r for r in queries.limits(path, Scope()).dicts()}
    assert list(rows) == [("openai", "sha256:k1"), ("anthropic", None)]  # most throttled first
    openai, anthropic = rows[("openai", "sha256:k1")], rows[("anthropic", None)]
    assert openai["model"] == "gpt-4o-mini"  # the model sent: the 429s and the dated answers meet in one row
    assert (openai["rate_limited"], openai["retry_after_s"]) == (2, 2.0)
    assert (openai["requests_remaining_min"], openai["requests_limit"], openai["requests_left_min_pct"]) == (
        10.0, 100.0, 10.0)
    assert (openai["tokens_remaining_min"], openai["tokens_left_min_pct"]) == (100.0, 10.0)
    assert (openai["requests_remaining_now"], openai["requests_left_now_pct"], openai["tokens_left_now_pct"]) == (
        90.0, 90.0, 90.0)
    assert openai["seen_at"] == T0 + timedelta(seconds=2)
    assert (anthropic["rate_limited"], anthropic["retry_after_s"]) == (1, 7.0)
    assert (anthropic["requests_left_min_pct"], anthropic["requests_left_now_pct"]) == (0.0, 80.0)
    assert anthropic["tokens_left_min_pct"] is None
    assert queries.limits(path, Scope(users=("nobody",))).rows == []


def test_limits_json_is_one_object_per_group(tmp_path):
    path = tmp_path / "llmtap.duckdb"
    insert(path, call("a", 0, key_hash="sha256:k1", ratelimit=openai_budget(10, 500)))
    result = run_cli(tmp_path, path, "limits", "--since", "2026-11-01", "--json")
    assert result.returncode == 0, result.stderr
    [row] = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["requests_left_now_pct"] == 10.0 and row["rate_limited"] == 0 and row["last_rate_limited"] is None
