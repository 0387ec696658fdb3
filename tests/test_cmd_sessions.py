"""`llmtap sessions`, `llmtap trace` and `llmtap limits` over the shared workload (tests/analytics_workload.py), run
as a user runs them, while the gateway runs and after it stopped. What each command must print is worked out here
from what the workload sent and from each row read with plain SQL, not with the commands' queries."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

PLAIN_WIDTH = 80


def llmtap(gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--config", str(gateway.config_path)],
                          capture_output=True, text=True, timeout=60)


def ok(gateway, *args: str) -> str:
    result = llmtap(gateway, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def json_rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line, parse_float=Decimal) for line in text.splitlines()]


def logged(gateway, workload) -> list[dict[str, Any]]:
    return gateway.rows(count=workload.calls)


def end(row: dict[str, Any]) -> datetime:
    return row["created_at"] + timedelta(milliseconds=row["latency_ms"] or 0)


def expected_sessions(gateway, workload) -> list[dict[str, Any]]:
    """Each session the workload made, as `sessions --json` must show it, newest first."""
    rows = logged(gateway, workload)
    expected = []
    for session_id, session in workload.sessions.items():
        calls = [row for row in rows if row["session_id"] == session_id]
        assert len(calls) == len(session.paths)
        started = min(row["created_at"] for row in calls)
        priced = [row["cost_usd"] for row in calls if row["cost_usd"] is not None]
        expected.append({
            "session": session_id, "name": session.name, "calls": len(calls),
            "users": len({row["user_id"] for row in calls}),
            "models": len({row["model"] or row["model_requested"] for row in calls}),
            "cost_usd": sum(priced) if len(priced) == len(calls) else None,
            "unpriced": len(calls) - len(priced),
            "tokens": sum((row["input_tokens"] or 0) + (row["output_tokens"] or 0) for row in calls),
            "errors": sum(1 for row in calls if row["status"] is None or row["status"] >= 400),
            "started": started, "duration_ms": (max(end(row) for row in calls) - started) / timedelta(milliseconds=1)})
    return sorted(expected, key=lambda s: s["started"], reverse=True)


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A JSON row with its times read back as times, milliseconds as floats."""
    return {name: datetime.fromisoformat(value) if name in ("started", "created_at") and value else
            float(value) if name.endswith("_ms") and value is not None else value for name, value in row.items()}


def close_ms(row: dict[str, Any]) -> dict[str, Any]:
    """An expected row whose milliseconds match within a microsecond (Python's timedelta keeps whole microseconds,
    DuckDB adds a latency's fraction of one)."""
    return {name: pytest.approx(float(value), abs=0.001) if name.endswith("_ms") and value is not None else value
            for name, value in row.items()}


def test_sessions_json_and_csv_give_each_session_exactly(log_state):
    gateway, workload, _ = log_state
    expected = [close_ms(s) for s in expected_sessions(gateway, workload)]
    assert [s["session"] for s in expected] == ["research-2", "research-1"]
    assert all(s["cost_usd"] is not None and s["cost_usd"] > 0 for s in expected)  # every session call is priced
    assert [comparable(row) for row in json_rows(ok(gateway, "sessions", "--json"))] == expected
    csv_rows = list(csv.DictReader(io.StringIO(ok(gateway, "sessions", "--csv"))))
    assert [row["session"] for row in csv_rows] == ["research-2", "research-1"]
    assert [Decimal(row["cost_usd"]) for row in csv_rows] == [s["cost_usd"] for s in expected]
    assert [int(row["tokens"]) for row in csv_rows] == [s["tokens"] for s in expected]


def test_sessions_table_fits_80_columns_and_names_each_session(log_state):
    gateway, workload, _ = log_state
    text = ok(gateway, "sessions")
    assert max(len(line) for line in text.splitlines()) <= PLAIN_WIDTH
    for session in expected_sessions(gateway, workload):
        assert session["session"] in text
        assert f"{session['tokens']:,}" in text
    assert "Research" in text and "$?" not in text  # the name sits under the id, wrapped


def test_sessions_filters_and_an_empty_range_say_so(log_state):
    gateway, _, _ = log_state
    assert [row["session"] for row in json_rows(ok(gateway, "sessions", "--user", "bob", "--json"))] == ["research-2"]
    assert [row["session"] for row in json_rows(ok(gateway, "sessions", "-n", "1", "--json"))] == ["research-2"]
    result = llmtap(gateway, "sessions", "--user", "carol")
    assert result.returncode == 0 and result.stdout.startswith("no sessions in this range")
    result = llmtap(gateway, "sessions", "--since", "2019-01-01", "--until", "2020-01-01", "--json")
    assert result.returncode == 0 and result.stdout == "" and "no sessions" in result.stderr


def expected_trace(gateway, workload, session_id: str) -> list[dict[str, Any]]:
    rows = {row["request_id"]: row for row in logged(gateway, workload)}
    calls = [(rows[call.request_id], call) for call in workload.sent.values() if call.session_id == session_id]
    started = min(row["created_at"] for row, _ in calls)
    return [({
        "request_id": call.request_id, "path": call.session_path, "depth": call.session_path.count("/"),
        "offset_ms": (row["created_at"] - started) / timedelta(milliseconds=1),
        "created_at": row["created_at"], "model": row["model"] or row["model_requested"],
        "user": call.user, "status": call.status, "latency_ms": row["latency_ms"],
        "input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"], "cost_usd": row["cost_usd"],
        "error": row["error"]}) for row, call in sorted(calls, key=lambda rc: (rc[0]["created_at"], rc[1].request_id))]


def test_trace_json_gives_the_sessions_calls_with_path_depth_and_offset(log_state):
    gateway, workload, _ = log_state
    expected = expected_trace(gateway, workload, "research-1")
    assert [(c["path"], c["depth"]) for c in expected] == [
        ("/research", 1), ("/research/search", 2), ("/research/search/fetch", 3), ("/research/summarize", 2)]
    assert [comparable(row) for row in json_rows(ok(gateway, "trace", "research-1", "--json"))] == [
        close_ms(c) for c in expected]
    csv_rows = list(csv.DictReader(io.StringIO(ok(gateway, "trace", "research-2", "--csv"))))
    assert [(row["request_id"], row["path"], row["depth"]) for row in csv_rows] == [
        (c["request_id"], c["path"], str(c["depth"])) for c in expected_trace(gateway, workload, "research-2")]


def test_trace_draws_the_session_as_a_tree_with_its_totals(log_state):
    gateway, workload, _ = log_state
    text = ok(gateway, "trace", "research-1")
    lines = text.splitlines()
    assert lines[0] == "session research-1 (Research run)"
    assert max(len(line) for line in lines) <= PLAIN_WIDTH
    branches = [line.strip("│├└─ ") for line in lines if line.strip("│├└─ ").startswith("/")]
    assert branches == ["/research", "/research/search", "/research/search/fetch", "/research/summarize"]
    calls = expected_trace(gateway, workload, "research-1")
    leaves = [line.strip("│├└─ ") for line in lines if line.strip("│├└─ ").startswith("+")]
    assert [leaf.split()[:2] for leaf in leaves] == [[f"+{c['offset_ms'] / 1000:.3f}s", c["model"]] for c in calls]
    assert all(f"{c['input_tokens']}+{c['output_tokens']} tokens" in leaf for c, leaf in zip(calls, leaves, strict=True))
    totals = lines[lines.index(next(line for line in lines if line.startswith("totals"))):]
    total_tokens = sum(c["input_tokens"] + c["output_tokens"] for c in calls)
    assert re.search(rf"│\s+4 │ \$[0-9.]+ │\s+0 │\s+{total_tokens:,} │\s+0 │", "\n".join(totals)), totals


def test_trace_of_an_unknown_or_ambiguous_session_is_one_line(log_state):
    gateway, _, _ = log_state
    for prefix, problem in (("nope", "no session"), ("research-", "more than one session")):
        result = llmtap(gateway, "trace", prefix)
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.splitlines() == [
            f"llmtap: {problem} with an id starting {prefix!r} (see `llmtap sessions`)"]


BUDGET = {kind: re.compile(rf"(^|-)ratelimit-({a}-{b}|{b}-{a})$") for kind, (a, b) in {
    "requests_remaining": ("remaining", "requests"), "requests_limit": ("limit", "requests"),
    "tokens_remaining": ("remaining", "tokens"), "tokens_limit": ("limit", "tokens")}.items()}


def expected_limits(gateway, workload) -> dict[tuple, dict[str, Any]]:
    """Per (provider, model sent, key): the 429 tries with their retry-after in order, and each answer's budget."""
    groups: dict[tuple, dict[str, Any]] = defaultdict(lambda: {"tries": [], "budgets": []})
    for row in logged(gateway, workload):
        key = row["key_owner"] or row["key_hash"]
        for attempt in row["attempt_log"] or []:
            if attempt["status"] == 429:
                groups[(attempt["provider"], attempt["model"], key)]["tries"].append(attempt["retry_after_s"])
        sent = (row["attempt_log"] or [{}])[-1].get("model") or row["model_requested"] or row["model"]
        if row["status"] == 429 and not row["attempt_log"] and row["attempts"]:
            groups[(row["provider"], sent, key)]["tries"].append(float(row["ratelimit"]["retry-after"]))
        budget = {kind: next((float(v) for k, v in (row["ratelimit"] or {}).items() if pattern.search(k)), None)
                  for kind, pattern in BUDGET.items()}
        if any(value is not None for value in budget.values()) and row["cache_status"] != "HIT":
            groups[(row["provider"], sent, key)]["budgets"].append(budget)
    return groups


def test_limits_json_counts_every_429_and_the_budget_left(log_state):
    gateway, workload, _ = log_state
    groups = expected_limits(gateway, workload)
    rows = {(r["provider"], r["model"], r["key"]): r for r in json_rows(ok(gateway, "limits", "--json"))}
    assert set(rows) == set(groups)
    for group, seen in groups.items():
        row, budgets = rows[group], seen["budgets"]
        assert row["rate_limited"] == len(seen["tries"]), group
        assert row["retry_after_s"] == (seen["tries"][-1] if seen["tries"] else None), group
        requests_left = [b["requests_remaining"] for b in budgets if b["requests_remaining"] is not None]
        assert row["requests_remaining_min"] == (min(requests_left) if requests_left else None), group
        assert row["requests_remaining_now"] == (requests_left[-1] if requests_left else None), group
    ops = rows[("openai", workload.models["openai"], "ops-team")]
    assert ops["rate_limited"] == 2 and ops["retry_after_s"] == 1.0  # carol: the retried 429, then the one she saw
    near = rows[("openai", workload.models["openai"], "research-team")]
    assert near["requests_remaining_min"] == 3.0 and near["requests_limit"] == 10000.0
    assert near["requests_left_min_pct"] == Decimal("0.03")
    assert list(rows)[0] == ("openai", workload.models["openai"], "ops-team")  # most throttled first


def test_limits_table_is_a_tree_in_words_within_80_columns(log_state):
    gateway, workload, _ = log_state
    text = ok(gateway, "limits")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= PLAIN_WIDTH
    assert lines[0].startswith("throttling by provider, model and key")
    words = " ".join(line.strip("│├└─ ") for line in lines)  # a long line wraps: read the words in order
    assert "ops-team: 2 × 429, latest retry-after 1 s (last at " in words
    # bob's near-limit answer left 3 of 10,000 requests, and later research-team answers of the model left more
    assert re.search(r"research-team: no 429; requests left [0-9.]+% now, 0\.0% lowest", words), words
    assert {"openai", "anthropic", workload.models["openai"]} <= {line.strip("│├└─ ") for line in lines}


def test_nothing_throttled_says_so(log_state):
    gateway, _, _ = log_state
    result = llmtap(gateway, "limits", "--since", "2019-01-01", "--until", "2020-01-01")
    assert result.returncode == 0
    assert result.stdout.startswith("no throttling in this range: no 429 from a provider and no rate-limit headers")


def test_a_mistyped_flag_time_or_property_is_one_line_and_exit_2(analytics):
    gateway, _ = analytics
    for args, words in ((("sessions", "--since", "yesterday"), "expected 30m, 24h"),
                        (("limits", "--property", "workflow"), "NAME=VALUE"),
                        (("trace", "research-1", "--depth", "2"), "No such option")):
        result = llmtap(gateway, *args)
        assert result.returncode == 2 and result.stdout == ""
        [line] = result.stderr.splitlines()
        assert words in line
