"""`llmtap costs`, `llmtap users` and `llmtap trends` over the shared workload's log (tests/analytics_workload.py), as
a user runs them: while the gateway runs and after it stopped. JSON and CSV are checked exactly against what a plain
SQL read of each row adds up to (an independent computation, not the report's query); tables by what a reader looks
for."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from analytics_workload import UNPRICED_MODEL, Workload
from conftest import Gateway


def llmtap(gw: Gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--config", str(gw.config_path)],
                          cwd=gw.workdir, capture_output=True, text=True, timeout=60)


def logged(gw: Gateway, workload: Workload) -> list[dict[str, Any]]:
    """Every row, read with plain SQL: what the expected figures are computed from."""
    rows = gw.rows(count=workload.calls)
    assert len(rows) == workload.calls
    return rows


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line, parse_float=Decimal) for line in text.splitlines()]


def csv_text(rows: list[dict[str, Any]]) -> str:
    """`rows` as llmtap writes CSV: exact decimals, ISO times, empty for NULL."""
    def cell(name: str, value: Any) -> str:
        if value is None:
            return ""
        if name.endswith("_pct"):  # a DOUBLE, written as Python writes a float
            return repr(float(value))
        if isinstance(value, Decimal):
            return "0" if value == 0 else format(value.normalize(), "f")
        if isinstance(value, datetime | date):
            return value.isoformat()
        return str(value)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(rows[0].keys())
    writer.writerows([[cell(name, value) for name, value in row.items()] for row in rows])
    return out.getvalue().replace("\r\n", "\n")


def priced_sum(costs: Iterable[Decimal | None]) -> Decimal | None:
    known = [cost for cost in costs if cost is not None]
    return sum(known, Decimal(0)) if known else None


def pct(part: Decimal | int, whole: Decimal | int) -> Decimal:
    return (Decimal(100) * Decimal(part) / Decimal(whole)).quantize(Decimal("0.01"), ROUND_HALF_UP)


def model_of(row: dict[str, Any]) -> str:
    return row["model"] or row["model_requested"]


def group_costs(rows: list[dict[str, Any]], key: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
    """What `llmtap costs --json` must print, computed from the rows: one dict per group, most spent first."""
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    total = priced_sum(row["cost_usd"] for row in rows)
    expected = []
    for value, members in groups.items():
        cost = priced_sum(member["cost_usd"] for member in members)
        priced = [member for member in members if member["cost_usd"] is not None]
        expected.append({
            "group": value, "requests": len(members),
            "input_tokens": sum(member["input_tokens"] or 0 for member in members),
            "output_tokens": sum(member["output_tokens"] or 0 for member in members),
            "cost_usd": cost,
            "avg_cost_usd": None if cost is None else (cost / len(priced)).quantize(Decimal("1e-10"), ROUND_HALF_UP),
            "saved_usd": sum((member["cost_saved_usd"] or Decimal(0) for member in members), Decimal(0)),
            "share_pct": None if cost is None or not total else pct(cost, total),
            "unpriced": len(members) - len(priced),
        })
    expected.sort(key=lambda g: (g["cost_usd"] is None, -(g["cost_usd"] or 0), -g["requests"], g["group"] is None,
                                 g["group"] or ""))
    return expected


def p95(values: list[float]) -> float:
    """The 95th percentile by linear interpolation between the closest ranks (as DuckDB's quantile_cont)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * 0.95
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def test_costs_per_model(log_state):
    gw, workload, _ = log_state
    rows = logged(gw, workload)
    expected = [{"model": g.pop("group"), **g} for g in group_costs(rows, model_of)]
    unpriced = [row for row in rows if row["cost_usd"] is None]
    assert unpriced and {model_of(row) for row in unpriced} >= {UNPRICED_MODEL}
    result = llmtap(gw, "costs", "--json")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == expected
    assert f"{len(unpriced)} call{'s' * (len(unpriced) != 1)} without a price" in result.stderr
    assert UNPRICED_MODEL in result.stderr
    result = llmtap(gw, "costs", "--csv")
    assert result.returncode == 0 and result.stdout == csv_text(expected)

    table = llmtap(gw, "costs")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    end = next(n for n, line in enumerate(lines) if line.startswith("total"))
    shown = [line.split() for line in lines[3:end + 1] if len(line.split()) > 2]  # not a wrapped name's rest
    assert len(shown) == len(expected) + 1
    assert all(group["model"].startswith(row[0]) for group, row in zip(expected, shown, strict=False))
    for group, row in zip(expected, shown, strict=False):
        assert row[1] == f"{group['requests']:,}"
        assert ("$?" in row) == (group["cost_usd"] is None)  # unknown, never $0
    assert shown[-1][1] == str(len(rows)) and "100.0%" in shown[-1]
    assert f"{len(unpriced)} call" in lines[end + 1] and UNPRICED_MODEL in "".join(lines[end + 1:]).replace("\n", "")


def test_costs_per_workflow_then_step(log_state):
    gw, workload, _ = log_state
    rows = logged(gw, workload)
    expected = group_costs(rows, lambda row: (row["properties"].get("workflow"), row["properties"].get("step")))
    # Workflows by their total cost, steps by theirs within each: re-order the per-(workflow, step) groups so.
    workflow_order: dict[Any, tuple] = {}
    for g in group_costs(rows, lambda row: row["properties"].get("workflow")):
        workflow_order[g["group"]] = (g["cost_usd"] is None, -(g["cost_usd"] or 0), -g["requests"],
                                      g["group"] is None, g["group"] or "")
    expected.sort(key=lambda g: workflow_order[g["group"][0]])  # stable: keeps the steps' order within
    expected = [{"workflow": g["group"][0], "step": g["group"][1], **{k: v for k, v in g.items() if k != "group"}}
                for g in expected]
    result = llmtap(gw, "costs", "--by", "property:Workflow", "--then", "property:STEP", "--json")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == expected
    assert {g["step"] for g in expected if g["workflow"] == "research-agent"} == workload.properties["step"]

    table = llmtap(gw, "costs", "--by", "property:workflow", "--then", "property:step").stdout.splitlines()
    assert max(len(line) for line in table) <= 80
    end = next(n for n, line in enumerate(table) if line.startswith("total"))
    shown = [(line.startswith("  "), line.split()[0]) for line in table[3:end] if len(line.split()) > 2]
    # each workflow (its subtotal), then its steps indented under it; no value is "(none)"
    wanted: list[tuple[bool, str]] = []
    previous: object = object()
    for group in expected:
        if group["workflow"] != previous:
            wanted.append((False, group["workflow"] or "(none)"))
            previous = group["workflow"]
        wanted.append((True, group["step"] or "(none)"))
    assert len(shown) == len(wanted)
    assert all(indented == want_indented and want.startswith(label)  # a long name wraps onto the next line
               for (indented, label), (want_indented, want) in zip(shown, wanted, strict=True))


def test_users(log_state):
    gw, workload, _ = log_state
    rows = logged(gw, workload)
    by_user: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_user[row["user_id"]].append(row)
    assert {user: len(members) for user, members in by_user.items()} == workload.calls_by_user()
    expected = []
    for user, members in by_user.items():
        counts = Counter(model_of(member) for member in members)
        mix = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        latencies = [member["latency_ms"] for member in members]
        expected.append({
            "user": user, "requests": len(members), "cost_usd": priced_sum(m["cost_usd"] for m in members),
            "unpriced": sum(m["cost_usd"] is None for m in members),
            "avg_latency_ms": sum(latencies) / len(latencies), "p95_latency_ms": p95(latencies),
            "error_pct": pct(sum(m["status"] is None or m["status"] >= 400 for m in members), len(members)),
            "models": ", ".join(f"{model} {round(100 * n / len(members))}%" for model, n in mix),
            "last_seen": max(m["created_at"] for m in members).astimezone(UTC).isoformat(),
        })
    expected.sort(key=lambda u: (u["cost_usd"] is None, -(u["cost_usd"] or 0), -u["requests"], u["user"] is None,
                                 u["user"] or ""))
    result = llmtap(gw, "users", "--json")
    assert result.returncode == 0, result.stderr
    got = json_lines(result.stdout)
    for line, want in zip(got, expected, strict=True):
        for name in ("avg_latency_ms", "p95_latency_ms"):  # floats: the same mean by another summation order
            assert float(line.pop(name)) == pytest.approx(want.pop(name))
        assert line == want

    result = llmtap(gw, "users", "--csv")
    assert result.returncode == 0
    assert [(r["user"], r["requests"], r["error_pct"]) for r in csv.DictReader(io.StringIO(result.stdout))] == [
        (u["user"] or "", str(u["requests"]), repr(float(u["error_pct"]))) for u in expected]

    lines = llmtap(gw, "users").stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for user in expected:
        line = next(line for line in lines if line.startswith(user["user"] or "(no user)"))
        assert line.split()[1 if user["user"] else 2] == str(user["requests"])
        assert f"{user['error_pct']:.1f}%" in line
        assert ("+?" in line) == bool(user["unpriced"] and user["cost_usd"] is not None)  # a partial sum says so
        top_model = user["models"].split(", ")[0]
        more = len(user["models"].split(", ")) - 1
        assert top_model.split()[0][:12] in line and (more == 0 or f"+{more} more" in "\n".join(lines))

    cut = llmtap(gw, "users", "-n", "2").stdout.splitlines()  # the table's first 2 users, and how many are left out
    shown = [line for line in cut if line.startswith(tuple(u["user"] or "(no user)" for u in expected))]
    assert [line.split()[0] for line in shown] == [u["user"] or "(no" for u in expected[:2]]
    assert f"… and {len(expected) - 2} more users (-n 0 shows all; --json/--csv give every row)" in cut
    assert len(json_lines(llmtap(gw, "users", "-n", "2", "--json").stdout)) == len(expected)  # a program gets all


def test_trends(log_state):
    gw, workload, _ = log_state
    rows = logged(gw, workload)
    today = datetime.now(UTC).date()
    days = [today - timedelta(days=n) for n in range(7, -1, -1)]  # --since 7d: a week ago's day to today
    assert {row["created_at"].astimezone(UTC).date() for row in rows} == {today}
    total_usd = priced_sum(row["cost_usd"] for row in rows)
    unpriced = sum(row["cost_usd"] is None for row in rows)
    expected = [{"day": day.isoformat(), "requests": 0, "cost_usd": Decimal(0), "unpriced": 0} for day in days[:-1]]
    expected.append({"day": today.isoformat(), "requests": len(rows), "cost_usd": total_usd, "unpriced": unpriced})
    result = llmtap(gw, "trends", "--json")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == expected
    assert llmtap(gw, "trends", "--csv").stdout == csv_text(expected)

    by_user = json_lines(llmtap(gw, "trends", "--by", "user", "--json").stdout)
    assert [(line["day"], line["user"], line["requests"]) for line in by_user[:7]] == [
        (day.isoformat(), None, 0) for day in days[:-1]]
    todays = by_user[7:]
    assert sorted((line["user"] or "", line["requests"]) for line in todays) == sorted(
        (user or "", n) for user, n in workload.calls_by_user().items())
    assert {(line["period_requests"], line["period_cost_usd"]) for line in todays} == {(len(rows), total_usd)}

    picture = llmtap(gw, "trends").stdout.splitlines()
    assert max(len(line) for line in picture) <= 80
    assert [line.split()[0] for line in picture[1:9]] == [day.isoformat() for day in days]
    assert "█" in picture[8] and picture[8].split()[-1] == str(len(rows))
    assert all(line.split()[1:] == ["$0", "0"] for line in picture[1:8])  # days without calls: empty bars
    split = llmtap(gw, "trends", "--by", "user", "--since", "1d").stdout.splitlines()
    assert max(len(line) for line in split) <= 80
    assert [line.split()[0] for line in split if line.startswith("  ")] == [
        line["user"] or "(none)" for line in todays]


@pytest.mark.parametrize("args, says", [
    (("costs", "--by", "colour"), "expected one of model, provider"),
    (("costs", "--then", "property:"), "expected one of model"),
    (("users", "--since", "yesterday"), "expected 30m, 24h, 7d"),
    (("trends", "--every", "year"), "'year' is not one of"),
    (("costs", "--property", "workflow"), "NAME=VALUE"),
    (("costs", "--by", "model", "--then", "MODEL"), "--then must name another dimension"),
])
def test_a_mistyped_option_is_one_line_and_exit_2(tmp_path, args, says):
    config = tmp_path / "llmtap.yaml"
    config.write_text(f"storage:\n  path: {tmp_path / 'llmtap.duckdb'}\n")
    import duckdb
    from llmtap.migrations import migrate
    with duckdb.connect(str(tmp_path / "llmtap.duckdb")) as db:
        migrate(db)
    result = subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and says in result.stderr


def test_no_log_and_no_calls_are_said_plainly(tmp_path):
    config = tmp_path / "llmtap.yaml"
    config.write_text(f"storage:\n  path: {tmp_path / 'llmtap.duckdb'}\n")
    run = lambda *args: subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--config", str(config)],  # noqa: E731
                                       capture_output=True, text=True, timeout=60)
    missing = run("costs")
    assert missing.returncode == 1 and missing.stderr.strip() == (
        f"llmtap: no log yet at {tmp_path / 'llmtap.duckdb'} (start the gateway and make a call)")
    import duckdb
    from llmtap.migrations import migrate
    with duckdb.connect(str(tmp_path / "llmtap.duckdb")) as db:
        migrate(db)
    for command in ("costs", "users", "trends"):
        empty = run(command)
        assert empty.returncode == 0 and empty.stdout == "no calls in this time range and filters\n"
    assert run("costs", "--json").stdout == ""
    assert run("costs", "--csv").stdout == "model,requests,input_tokens,output_tokens,cost_usd,avg_cost_usd,saved_usd," \
                                           "share_pct,unpriced\n"

    (tmp_path / "llmtap.duckdb").write_bytes(b"not a DuckDB file, but something else entirely" * 100)
    for command in ("costs", "users", "trends"):
        unreadable = run(command)
        assert unreadable.returncode == 1 and unreadable.stdout == ""
        assert len(unreadable.stderr.splitlines()) == 1 and unreadable.stderr.startswith("llmtap: ")
