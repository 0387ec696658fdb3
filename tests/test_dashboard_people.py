"""The dashboard's Users, Properties and Sessions pages over the shared workload's log (tests/analytics_workload.py),
as a person sees them in a real browser, and their JSON endpoints. The figures a page shows are checked against what
`llmtap users / costs --json` print over the same log, the session tree against the paths the workload sent."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from llmtap.money import format_usd

from browser import LAPTOP, PHONE
from conftest import Gateway, curl


def llmtap_json(gw: Gateway, *args: str) -> list[dict[str, Any]]:
    """What `llmtap <args> --json` prints over the gateway's log, one dict per line (money as exact Decimals)."""
    result = subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--json", "--config", str(gw.config_path)],
                            cwd=gw.workdir, capture_output=True, text=True, timeout=60, check=True)
    return [json.loads(line, parse_float=Decimal) for line in result.stdout.splitlines()]


def api(gw: Gateway, path: str) -> tuple[int, Any]:
    answer = curl(f"http://127.0.0.1:{gw.dashboard_port}/api/{path}")
    return answer.status, json.loads(answer.body, parse_float=Decimal)


def cost_text(cost: Decimal | None, unpriced: int) -> str:
    """A cost as the pages show it: `$1.23`, `$?` unknown, `$1.23+?` when some calls have no price."""
    return f"{format_usd(cost)}+?" if cost is not None and unpriced else format_usd(cost)


def sums(rows: list[dict[str, Any]]) -> tuple[str, str]:
    """The requests and cost of `rows` added up, as a table shows them."""
    costs = [row["cost_usd"] for row in rows if row["cost_usd"] is not None]
    return (f"{sum(row['requests'] for row in rows):,}",
            cost_text(sum(costs, Decimal(0)) if costs else None, sum(row["unpriced"] for row in rows)))


def cells(row: Any) -> dict[str, str]:
    """A table row's cells by column key (`data-col`), as their text."""
    return {cell.get_attribute("data-col"): cell.inner_text().strip() for cell in row.locator("td").all()}


@pytest.fixture
def open_page(browser, analytics):
    """`open_page(path, size)`: a new tab at that size on the gateway's dashboard, once the page has rendered."""
    gw, _ = analytics
    pages = []

    def opened(path: str, size: dict[str, int] = LAPTOP) -> Any:
        page = browser.new_page(viewport=size)
        pages.append(page)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"http://127.0.0.1:{gw.dashboard_port}{path}")
        page.wait_for_selector('main[data-state="ready"]', timeout=15000)
        assert not errors, errors
        return page
    yield opened
    for page in pages:
        page.close()


def test_users_page_lists_each_users_figures_and_links_to_their_requests(analytics, open_page, screenshot):
    gw, workload = analytics
    expected = llmtap_json(gw, "users")
    assert {row["user"] for row in expected} == {*workload.users, None}
    page = open_page("/users")
    shown = [cells(row) for row in page.locator("main tbody tr").all()]
    assert [row["user"] for row in shown] == [row["user"] or "(no user)" for row in expected]
    for row, want in zip(shown, expected, strict=True):
        assert row["requests"] == str(want["requests"])
        assert row["cost_usd"] == cost_text(want["cost_usd"], want["unpriced"]), want["user"]
        assert row["models"] == want["models"]
    assert [row["requests"] for row in shown if row["user"] == "alice"] == [str(workload.calls_by_user()["alice"])]
    assert page.locator("main tbody tr", has_text="(no user)").locator("a").count() == 0  # no filter selects them
    screenshot(page, "users-laptop")
    screenshot(open_page("/users", PHONE), "users-phone")

    page.get_by_role("link", name="alice", exact=True).click()
    page.wait_for_url("**/requests?**")
    assert parse_qs(urlsplit(page.url).query)["user"] == ["alice"]


def test_properties_page_nests_steps_under_workflows_with_the_reports_figures(analytics, open_page, screenshot):
    gw, workload = analytics
    expected = llmtap_json(gw, "costs", "--by", "property:workflow", "--then", "property:step")
    page = open_page("/properties?by=workflow&then=step")
    assert page.locator("select[name=by]").input_value() == "workflow"
    assert page.locator("select[name=then]").input_value() == "step"
    # The report's groups under a bold subtotal per workflow (their sums), and the total last.
    want: list[tuple[str, ...]] = []
    for workflow in dict.fromkeys(row["workflow"] for row in expected):
        steps = [row for row in expected if row["workflow"] == workflow]
        want.append(("subtotal", workflow or "(no workflow)", *sums(steps)))
        want += [("child", row["step"] or "(no step)", *sums([row])) for row in steps]
    want.append(("total", "Total", *sums(expected)))
    shown = [(row.get_attribute("class"), *(cells(row)[key] for key in ("value", "requests", "cost_usd")))
             for row in page.locator("main tbody tr").all()]
    assert shown == want
    # every workflow the workload sent is there, the research steps under research-agent
    assert {row["workflow"] for row in expected} == workload.properties["workflow"] | {None}
    assert {row["step"] for row in expected if row["workflow"] == "research-agent"} == {
        "plan", "search", "fetch", "summarize"}
    link = page.locator("main tbody tr.child a", has_text="fetch")
    assert parse_qs(urlsplit(link.get_attribute("href")).query)["property"] == [
        "workflow=research-agent", "step=fetch"]
    assert page.locator("main canvas").count() == 1  # the bar chart of cost per workflow
    screenshot(page, "properties-laptop")
    screenshot(open_page("/properties?by=workflow&then=step", PHONE), "properties-phone")

    page.locator("select[name=by]").select_option("step")  # the picker moves the URL, the table follows
    page.wait_for_url("**by=step**")
    assert "then=" not in page.url
    page.locator("main thead th", has_text="step").wait_for()

    nothing = open_page("/properties?user=alice&model=claude-haiku-4-5&session=research-2")  # no such calls
    assert "No call in this time range and filters carries a property" in nothing.locator("main").inner_text()


def test_sessions_page_lists_sessions_and_opens_one_as_a_tree(analytics, open_page, screenshot):
    gw, workload = analytics
    page = open_page("/sessions")
    listed = {row.locator("a").inner_text(): cells(row) for row in page.locator("main tbody tr").all()}
    assert list(listed) == ["research-2", "research-1"]  # newest first
    assert listed["research-1"]["calls"] == "4" and listed["research-2"]["calls"] == "2"
    assert listed["research-1"]["session"].splitlines() == ["research-1", "Research run"]  # the name under the id
    screenshot(page, "sessions-laptop")
    screenshot(open_page("/sessions", PHONE), "sessions-phone")

    page.get_by_role("link", name="research-1", exact=True).click()
    page.wait_for_url("**/sessions/research-1**")
    page.locator(".waterfall").wait_for()
    roles = [role for role, call in workload.sent.items() if call.session_id == "research-1"]  # in arrival order
    calls = page.locator(".wf-row:not(.wf-head)").all()
    assert [call.get_attribute("data-depth") for call in calls] == ["1", "2", "3", "2"]
    assert [call.get_attribute("data-request") for call in calls] == [workload.ids[role] for role in roles]
    assert [call.locator(".wf-path").inner_text() for call in calls] == [
        workload.sessions["research-1"].paths[role] for role in roles]
    rows = [gw.row(workload.ids[role]) for role in roles]
    assert [call.locator(".wf-model").inner_text() for call in calls] == [
        row["model"] or row["model_requested"] for row in rows]
    assert [call.locator(".wf-path a").get_attribute("href").split("?")[0] for call in calls] == [
        f"/requests/{workload.ids[role]}" for role in roles]
    assert page.locator('[data-kpi="calls"] .card-value').inner_text() == "4"
    screenshot(page, "session-laptop")
    phone = open_page("/sessions/research-1", PHONE)
    phone.locator(".waterfall").wait_for()
    screenshot(phone, "session-phone")


def test_endpoints_answer_as_the_reports_do(analytics):
    gw, workload = analytics
    status, users = api(gw, "users")
    assert status == 200 and users["users"]["rows"] == llmtap_json(gw, "users")
    status, narrowed = api(gw, "users?user=alice")
    assert [row["user"] for row in narrowed["users"]["rows"]] == ["alice"]

    status, properties = api(gw, "properties")  # no `by`: the most used property
    names = properties["names"]["rows"]
    assert status == 200 and names[0]["name"] == properties["by"] == "workflow" and properties["then"] is None
    assert {row["name"] for row in names} == set(workload.properties)
    assert [{k: v for k, v in row.items() if k != "kind"} for row in properties["costs"]["rows"]
            if row["kind"] == "group"] == llmtap_json(gw, "costs", "--by", "property:workflow")
    status, split = api(gw, "properties?by=Workflow&then=step")
    groups = [{k: v for k, v in row.items() if k != "kind"} for row in split["costs"]["rows"] if row["kind"] == "group"]
    assert groups == llmtap_json(gw, "costs", "--by", "property:workflow", "--then", "property:step")
    total = split["costs"]["rows"][-1]
    assert (total["kind"], total["requests"]) == ("total", workload.calls)
    status, none = api(gw, "properties?user=nobody-here")
    assert status == 200 and (none["names"]["rows"], none["by"], none["costs"]) == ([], None, None)
    assert api(gw, "properties?by=step&then=step")[0] == 400

    status, sessions = api(gw, "sessions?limit=1")
    assert status == 200 and [row["session"] for row in sessions["sessions"]["rows"]] == ["research-2"]  # newest
    status, one = api(gw, f"sessions/{quote('research-1')}")
    assert status == 200 and one["session"]["rows"][0]["calls"] == 4
    assert [row["depth"] for row in one["trace"]["rows"]] == [1, 2, 3, 2]
    assert api(gw, "sessions/research-")[0] == 409  # a prefix of both
    assert api(gw, "sessions/research-9")[0] == 404
    status, bad = api(gw, "sessions?limit=lots")
    assert status == 400 and "limit" in bad["error"]
