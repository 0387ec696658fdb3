"""`llmtap budgets`, `llmtap alerts list` and the dashboard's Alerts page over a real gateway's log: calls made with
the openai SDK (two users, a priced model, a call without a user, one the provider fails), every figure checked
against the rows' own `cost_usd` and counts read with plain SQL, while the gateway runs and after it stopped.

The alert history is the gateway's own (the `errors` rule really fires, and its channels, nothing listening, fail),
and test data for what one gateway run does not show in seconds (a delivered alert, a resolved one, a test notice):
rows INSERTed into the stopped gateway's log, as unit tests build DuckDB files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
import openai
import pytest
import yaml
from llmtap.batch_writer import read_log
from llmtap.money import format_usd

from browser import LAPTOP, PHONE
from conftest import Gateway, curl, free_port, in_terminal, start_gateway, stop, wait_for_port

CLOSED_HOOK = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there: a rule's channel, listed, never reached
PRICE_CENT = {"model": "gpt-4o", "usage": {"prompt_tokens": 4000, "completion_tokens": 0}}  # $2.50/M input: $0.01
RULES = [
    {"name": "user-spend", "metric": "spend_usd", "window": "month", "threshold": 0.015, "scope": "user",
     "action": "block"},
    {"name": "calls-today", "metric": "requests", "window": "day", "threshold": 1000, "action": "block"},
    {"name": "nobody-spend", "metric": "spend_usd", "window": "1d", "threshold": 2, "where": {"user": "nobody"},
     "channels": [{"webhook": CLOSED_HOOK}]},
    {"name": "errors", "metric": "error_rate", "window": "1h", "threshold": 10, "scope": "model", "min_requests": 2,
     "channels": [{"webhook": CLOSED_HOOK}, {"slack": CLOSED_HOOK}]},
    {"name": "team-spend", "metric": "spend_usd", "window": "1d", "threshold": 5, "scope": "property:Team",
     "channels": [{"webhook": CLOSED_HOOK}]},
]
CONFIG = {"alerts": RULES, "alerting": {"check_interval_s": 0.2, "delivery_backoff_s": 0.05}}


def llmtap(gw: Gateway, *args: str) -> str:
    """What `llmtap ARGS` prints (in a pipe: 80 columns) over the gateway's log."""
    result = subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--config", str(gw.config_path)],
                            cwd=gw.workdir, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def llmtap_json(gw: Gateway, *args: str) -> list[dict[str, Any]]:
    """`llmtap ARGS --json`, one dict per line, money as exact Decimals."""
    return [json.loads(line, parse_float=Decimal) for line in llmtap(gw, *args, "--json").splitlines()]


def sql(gw: Gateway, query: str) -> Any:
    """One value of a plain SQL query over the log."""
    return read_log(gw.db_path, query)[1][0][0]


def chat(gw: Gateway, user: str | None, model: str = "gpt-4o") -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key="k", max_retries=0)
    # max_tokens: a spend budget reserves a call's estimated cost before it goes (4,096 output tokens without a limit)
    client.chat.completions.create(model=model, messages=[{"role": "user", "content": "budget me"}], max_tokens=1,
                                   extra_headers={"Helicone-User-Id": user} if user else {})


@pytest.fixture(scope="module")
def calls(tmp_path_factory, mock_provider):
    """A gateway with RULES and six calls: carol 2 × $0.01 (past her $0.015), dave 1 × $0.01, two gpt-4o-mini calls
    without a user, one of which the provider fails (500)."""
    gw = start_gateway(tmp_path_factory.mktemp("alert-views"), mock_provider, CONFIG)
    try:
        for user in ("carol", "carol", "dave"):
            mock_provider.script(PRICE_CENT)
            chat(gw, user)
        chat(gw, None, "gpt-4o-mini")
        mock_provider.script({"status": 500})
        with pytest.raises(openai.InternalServerError):
            chat(gw, None, "gpt-4o-mini")
        assert len(gw.rows(count=5)) == 5
        fired = wait_for_alerts(gw, 2)  # `errors` fires for gpt-4o-mini (50% > 10%): one row per channel, both failed
        assert {(r[0], r[1], r[2], r[3]) for r in fired} == {("errors", "gpt-4o-mini", "webhook", "failed"),
                                                             ("errors", "gpt-4o-mini", "slack", "failed")}
        yield gw
    finally:
        gw.stop()


def wait_for_alerts(gw: Gateway, count: int, timeout_s: float = 20) -> list[tuple]:
    """The `alerts` table's (rule, scope_value, channel, outcome) rows, once it has `count` (its delivery retries
    each channel before it writes the row)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = read_log(gw.db_path, "SELECT rule, scope_value, channel, outcome FROM alerts ORDER BY created_at")[1]
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def expected_budgets(gw: Gateway) -> dict[tuple[str, str | None], dict[str, Any]]:
    """What each budget row must say, by (rule, scope value), from the log's rows with plain SQL."""
    def spent(where: str) -> Decimal:
        return sql(gw, f"SELECT coalesce(sum(cost_usd), 0) FROM requests WHERE {where}")

    carol, dave = spent("user_id = 'carol'"), spent("user_id = 'dave'")
    nameless = spent("user_id IS NULL")
    assert (carol, dave) == (Decimal("0.02"), Decimal("0.01"))  # the scripted usage, priced
    total = sql(gw, "SELECT count(*) FROM requests")
    return {
        ("user-spend", "carol"): {"used": carol, "left": 0, "used_pct": Decimal("133.3"), "over": True, "blocking": True},
        ("user-spend", "dave"): {"used": dave, "left": Decimal("0.005"), "used_pct": Decimal("66.7"), "over": False,
                                 "blocking": False},
        ("user-spend", None): {"used": nameless, "requests": 2, "over": False, "blocking": False},
        ("calls-today", None): {"used": total, "left": 1000 - total, "threshold": 1000, "blocking": False},
        ("nobody-spend", None): {"used": 0, "left": 2, "used_pct": 0, "requests": 0, "blocking": False},
        # no call carried a Team property: all of them count towards the calls without one
        ("team-spend", None): {"used": spent("true"), "requests": total, "over": False, "blocking": False},
    }


def check_budgets(gw: Gateway) -> None:
    rows = llmtap_json(gw, "budgets")
    want = expected_budgets(gw)
    assert [(row["rule"], row["scope_value"]) for row in rows] == list(want)  # rules in order; most used first
    for row in rows:
        for name, value in want[row["rule"], row["scope_value"]].items():
            assert row[name] == value, (row["rule"], row["scope_value"], name)
    month_end = datetime.now(UTC).replace(day=28) + timedelta(days=4)
    carol = rows[0]
    assert carol["window"] == datetime.now(UTC).strftime("%Y-%m") and carol["action"] == "block"
    assert carol["resets_at"] == month_end.replace(day=1, hour=0, minute=0, second=0, microsecond=0).isoformat()
    assert rows[-1]["window"] == "last 1d" and rows[-1]["resets_at"] is None


def check_rules(gw: Gateway) -> list[dict[str, Any]]:
    rows = llmtap_json(gw, "alerts", "list")
    by_rule = {row["rule"]: row for row in rows}
    assert [row["rule"] for row in rows] == [rule["name"] for rule in RULES]
    failed = sql(gw, "SELECT count(*) FILTER (WHERE status >= 400) * 100.0 / count(*) FROM requests "
                     "WHERE model_requested = 'gpt-4o-mini'")
    assert failed == 50
    errors = by_rule["errors"]
    assert (errors["value"], errors["value_scope"], errors["scope_values"], errors["over"], errors["state"]) == \
        (failed, "gpt-4o-mini", 2, 1, "over")
    assert errors["channels"] == ["webhook", "slack"] and errors["period"] == "last 1h"
    spend = by_rule["user-spend"]
    assert (spend["value"], spend["value_scope"], spend["over"], spend["state"], spend["action"]) == \
        (Decimal("0.02"), "carol", 1, "over", "block")
    calls = by_rule["calls-today"]
    assert (calls["value"], calls["state"], calls["scope_values"]) == (sql(gw, "SELECT count(*) FROM requests"),
                                                                       "ok", 1)
    assert (by_rule["nobody-spend"]["value"], by_rule["nobody-spend"]["where"]) == (0, {"user": ["nobody"]})
    team = by_rule["team-spend"]  # no call carried a Team property: all are the calls without one
    assert (team["value"], team["value_scope"], team["scope_values"], team["state"], team["scope"]) == \
        (sql(gw, "SELECT sum(cost_usd) FROM requests"), None, 1, "ok", "property:team")
    return rows


def test_budgets_and_rules_match_the_log_while_the_gateway_runs(calls):
    check_budgets(calls)
    check_rules(calls)


def test_alerts_endpoint_answers_what_the_commands_print(calls):
    answer = curl(f"http://127.0.0.1:{calls.dashboard_port}/api/alerts")
    assert answer.status == 200, answer.body
    body = json.loads(answer.body, parse_float=Decimal)
    assert set(body) == {"rules", "budgets", "history"}
    def measured(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:  # a rolling window ends at its own `now`
        return [{k: v for k, v in row.items() if k not in ("window_start", "window_end")} for row in rows]

    assert measured(body["budgets"]["rows"]) == measured(llmtap_json(calls, "budgets"))
    assert [row["rule"] for row in body["rules"]["rows"]] == [rule["name"] for rule in RULES]
    errors = body["rules"]["rows"][3]
    assert (errors["state"], errors["last_fired_scope"], errors["last_fired_delivered"]) == ("over", "gpt-4o-mini",
                                                                                             False)
    history = body["history"]["rows"]
    assert sorted(row["channel"] for row in history) == ["slack", "webhook"]
    assert {(row["rule"], row["kind"], row["scope_value"], row["metric_value"], row["outcome"]) for row in history} == \
        {("errors", "firing", "gpt-4o-mini", 50, "failed")}
    assert {row["channel"]: row["target"] for row in history} == {  # where it went, a Slack URL's secret path cut
        "webhook": CLOSED_HOOK, "slack": CLOSED_HOOK.removeprefix("http://").replace("/hook", "/…")}
    assert {row["detail"] for row in history} == {"connection refused"}
    assert curl(f"http://127.0.0.1:{calls.dashboard_port}/api/alerts?since=soon").status == 400


FIRED_AT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)


def notice_rows() -> list[tuple]:
    """Test data for the `alerts` table, older than the gateway's own alert: `team-spend` fired for the team
    `research` (the webhook failed, Slack took it) and resolved 5 minutes later, after an older firing;
    `nobody-spend` fired and no channel took it; a test notice of `calls-today` (never "last fired")."""
    def row(alert_id: str, at: datetime, rule: str, kind: str, scope_value: str | None, channel: str, outcome: str,
            detail: str) -> tuple:
        return (alert_id, at, rule, kind, "error_rate" if rule == "errors" else "spend_usd", "1h", at, "model",
                scope_value, 50.0 if rule == "errors" else 0.02, 10.0, f"llmtap: '{rule}'", channel, CLOSED_HOOK,
                outcome, detail, 4 if outcome == "failed" else 1)

    fired, resolved, spent, trial, old = (str(uuid.uuid4()) for _ in range(5))
    return [
        row(old, FIRED_AT - timedelta(hours=3), "team-spend", "firing", "research", "webhook", "sent", ""),
        row(fired, FIRED_AT, "team-spend", "firing", "research", "webhook", "failed", "<b>connection refused</b>"),
        row(fired, FIRED_AT, "team-spend", "firing", "research", "slack", "sent", "HTTP 200"),
        row(resolved, FIRED_AT + timedelta(minutes=5), "team-spend", "resolved", "research", "slack", "sent", ""),
        row(spent, FIRED_AT + timedelta(minutes=1), "nobody-spend", "firing", None, "webhook", "failed", "refused"),
        row(trial, FIRED_AT + timedelta(minutes=9), "calls-today", "test", None, "webhook", "sent", "HTTP 204"),
    ]


@pytest.fixture(scope="module")
def stopped(calls):
    """The same log once the gateway stopped, with `notice_rows` in its `alerts` table."""
    assert calls.stop() == 0
    with duckdb.connect(str(calls.db_path)) as db:
        db.executemany("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", notice_rows())
    return calls


def test_after_the_gateway_stopped_the_figures_stay_and_last_fired_shows(stopped):
    check_budgets(stopped)
    by_rule = {row["rule"]: row for row in check_rules(stopped)}
    errors, team, nobody = by_rule["errors"], by_rule["team-spend"], by_rule["nobody-spend"]
    fired_at = sql(stopped, "SELECT min(created_at) FROM alerts WHERE rule = 'errors'")
    assert (errors["last_fired_at"], errors["last_fired_scope"], errors["last_fired_delivered"],
            errors["resolved_at"]) == (fired_at.isoformat(), "gpt-4o-mini", False, None)  # the gateway's own
    assert (team["last_fired_at"], team["last_fired_scope"], team["last_fired_delivered"]) == \
        (FIRED_AT.isoformat(), "research", True)  # the failed webhook did not stop Slack taking it
    assert team["resolved_at"] == (FIRED_AT + timedelta(minutes=5)).isoformat()
    assert (nobody["last_fired_scope"], nobody["last_fired_delivered"], nobody["resolved_at"]) == (None, False, None)
    assert by_rule["calls-today"]["last_fired_at"] is None  # a test notice is not an alert


def test_tables_say_it_in_words(stopped):
    budgets = llmtap(stopped, "budgets")
    assert "user-spend (block): spend per user" in budgets and "resets" in budgets
    carol = next(line for line in budgets.splitlines() if "carol" in line)
    assert format_usd(Decimal("0.02")) in carol and "blocking" in carol and "133.3%" in carol
    assert "team-spend (notify): spend per property team, last 1d" in budgets and "(none)" in budgets
    status, drawn, _ = in_terminal(stopped.config_path, "alerts", "list", columns=220)  # wide: no cell folds
    listed = re.sub(r"\x1b\[[0-9;]*m", "", drawn)
    assert status == 0
    for text in ("user-spend", "errors", "50%", "gpt-4o-mini; 1 of 2", "not delivered", "resolved", "never"):
        assert text in listed, text


def test_a_log_no_gateway_of_this_version_migrated_lists_its_rules_as_never_fired(stopped, tmp_path):
    old_log = tmp_path / "old.duckdb"  # as an earlier llmtap left it: calls, no alerts table yet
    old_log.write_bytes(stopped.db_path.read_bytes())
    with duckdb.connect(str(old_log)) as db:
        db.execute("DROP TABLE alerts")
    config = yaml.safe_load(stopped.config_path.read_text())
    config["storage"]["path"] = str(old_log)
    config_path = stopped.workdir / "old-log.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "llmtap.cli", "alerts", "list", "--json", "--config",
                             str(config_path)], cwd=stopped.workdir, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(row["rule"], row["last_fired_at"]) for row in rows] == [(rule["name"], None) for rule in RULES]
    assert next(row for row in rows if row["rule"] == "errors")["state"] == "over"  # the calls are still measured


@pytest.fixture(scope="module")
def dashboard(stopped):
    """`llmtap dashboard` over the stopped log, at the address the gateway served it."""
    log = stopped.workdir / "dashboard.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "llmtap.cli", "dashboard", "--config",
                                    str(stopped.config_path)], cwd=stopped.workdir, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        wait_for_port(stopped.dashboard_port, process, log)
        yield f"http://127.0.0.1:{stopped.dashboard_port}"
    finally:
        stop(process)


def cells(row: Any) -> dict[str, str]:
    return {cell.get_attribute("data-col"): cell.inner_text().strip() for cell in row.locator("td").all()}


def test_alerts_page_shows_rules_budgets_and_history(dashboard, browser, screenshot):
    for name, size in (("laptop", LAPTOP), ("phone", PHONE)):
        page = browser.new_page(viewport=size)
        errors: list[str] = []
        page.on("pageerror", lambda e, seen=errors: seen.append(str(e)))
        page.goto(f"{dashboard}/alerts")
        page.wait_for_selector('main[data-state="ready"]', timeout=15000)
        assert not errors, errors
        tables = page.locator("main table")
        rules = [cells(row) for row in tables.nth(0).locator("tbody tr").all()]
        assert [row["rule"].split("\n")[0] for row in rules] == [rule["name"] for rule in RULES]
        assert rules[3]["state"] == "over" and rules[3]["value"].startswith("50%")
        assert rules[3]["last_fired_at"].endswith("for gpt-4o-mini (not delivered)")  # the gateway's own alert
        assert "for research\nresolved" in rules[4]["last_fired_at"]
        budgets = [cells(row) for row in tables.nth(1).locator("tbody tr").all()]
        carol = budgets[0]
        assert (carol["scope_value"], carol["blocking"], carol["left"]) == ("carol", "blocking", "$0")
        assert carol["used"] == f"{format_usd(Decimal('0.02'))} of {format_usd(Decimal('0.015'))}"
        history = [cells(row) for row in tables.nth(2).locator("tbody tr").all()]
        assert [(row["rule"], row["kind"]) for row in history[:3]] == \
            [("errors", "firing"), ("errors", "firing"), ("calls-today", "test")]  # newest first
        assert len(history) == 8
        refused = next(row for row in history if row["outcome"] == "failed" and row["rule"] == "team-spend")
        assert refused["detail"] == "<b>connection refused</b>"  # logged text shown as text, never as HTML
        assert page.locator("main b").count() == 0
        screenshot(page, f"alerts-{name}")
        page.close()
