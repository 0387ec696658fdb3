"""`llmtap logs`, `logs show` and `export` over the shared analytics workload (tests/analytics_workload.py), while
the gateway runs and after it stopped: every call listed once, each filter selecting exactly the calls the workload
sent that way, a retried call's attempts and a cache hit's saving shown, and an export holding every call with its
exact cost. Expected values come from `Workload.sent` and from the rows read with plain SQL."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from typing import Any

from llmtap.batch_writer import read_log

from conftest import Gateway


def llmtap(gateway: Gateway, *args: str, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--config", str(gateway.config_path)],
                          capture_output=True, text=True, timeout=60, **kwargs)


def listed_ids(gateway: Gateway, *args: str) -> list[str]:
    result = llmtap(gateway, "logs", "--json", "-n", "1000", *args)
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["id"] for line in result.stdout.splitlines()]


def test_logs_lists_every_call_once_newest_first_and_filters_select_what_was_sent(log_state):
    gateway, workload, _ = log_state
    names, rows = read_log(gateway.db_path, "SELECT request_id, created_at FROM requests")
    newest_first = [r[0] for r in sorted(rows, key=lambda r: (r[1], r[0]), reverse=True)]
    assert listed_ids(gateway) == newest_first and set(newest_first) == set(workload.ids.values())

    def sent(keep: Any) -> set[str]:
        return {call.request_id for call in workload.sent.values() if keep(call)}

    assert set(listed_ids(gateway, "--user", "carol")) == sent(lambda c: c.user == "carol")
    assert set(listed_ids(gateway, "--status", "error")) == sent(lambda c: c.status >= 400)
    assert set(listed_ids(gateway, "--property", "WORKFLOW=support-bot")) == sent(
        lambda c: c.properties.get("workflow") == "support-bot")
    assert listed_ids(gateway, "--cache", "hit") == [workload.ids["carol_cache_hit"]]
    assert len(listed_ids(gateway, "-n", "3")) == 3


def test_logs_show_a_retried_call_and_a_cache_hit(log_state):
    gateway, workload, _ = log_state
    retried = llmtap(gateway, "logs", "show", workload.ids["carol_retried"][:12])
    assert retried.returncode == 0, retried.stderr
    text = retried.stdout
    assert "2 tries, 1 retries" in text and "429" in text and "retry-after 0.05 s" in text
    assert "workflow=support-bot" in text and "carol" in text and "ops-team" in text
    hit = llmtap(gateway, "logs", "show", workload.ids["carol_cache_hit"])
    saved = gateway.row(workload.ids["carol_cache_hit"])["cost_saved_usd"]
    assert "HIT" in hit.stdout and "saved $" in hit.stdout and saved > 0
    summarize = llmtap(gateway, "logs", "show", workload.ids["alice_summarize"])
    call = workload.sent["alice_summarize"]
    assert f"{call.session_id}  {call.session_path}" in summarize.stdout
    assert all(len(line) <= 80 for line in (text + hit.stdout + summarize.stdout).splitlines())


def test_export_jsonl_holds_every_call_with_its_exact_cost(log_state, tmp_path):
    gateway, workload, _ = log_state
    result = llmtap(gateway, "export", "--format", "jsonl", "--out", str(tmp_path / "calls.jsonl"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {workload.calls:,} calls to {tmp_path / 'calls.jsonl'} (JSONL)"
    exported = {line["request_id"]: line["cost_usd"] for line in map(
        lambda text: json.loads(text, parse_float=Decimal), (tmp_path / "calls.jsonl").read_text().splitlines())}
    names, rows = read_log(gateway.db_path, "SELECT request_id, cost_usd FROM requests")
    assert exported == dict(rows)
    assert exported[workload.ids["bob_unpriced"]] is None
