"""The dashboard's requests page over the analytics workload (tests/analytics_workload.py) and one call of our own
made through the same gateway: a prompt holding markup, an image part and a tool call. The JSON endpoints are read
directly; the page in a real chromium (tests/browser.py)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import openai
import pytest

from analytics_workload import OPS_KEY
from browser import LAPTOP, PHONE

pytest_plugins = ["browser"]

MARKUP = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned=2">'
MARKED_MESSAGES = [
    {"role": "system", "content": "You answer about the weather."},
    {"role": "user", "content": [{"type": "text", "text": f"dashboard-marked {MARKUP}"},
                                 {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
]


@pytest.fixture(scope="module")
def logged(analytics_gateway) -> tuple[Any, Any, str, list[str]]:
    """(gateway, workload, the marked call's id, every id in the log newest first)."""
    gateway, workload = analytics_gateway
    client = openai.OpenAI(base_url=gateway.base_url, api_key=OPS_KEY, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MARKED_MESSAGES, extra_headers={"Helicone-User-Id": "dora"})
    marked = raw.headers["helicone-id"]
    rows = gateway.rows("true", count=workload.calls + 1)
    newest_first = [r["request_id"] for r in sorted(rows, key=lambda r: (r["created_at"], r["request_id"]),
                                                    reverse=True)]
    assert marked in newest_first
    return gateway, workload, marked, newest_first


def get(gateway: Any, path: str, **query: Any) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{gateway.dashboard_port}/api/{path}?{urllib.parse.urlencode(query, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def ids_of(answer: dict) -> list[str]:
    return [row["id"] for row in answer["calls"]["rows"]]


# ---------------------------------------------------------------------------------------------- JSON

def test_paging_by_cursor_walks_every_call_once_and_back(logged):
    gateway, _, _, newest_first = logged
    seen, pages, cursor = [], [], None
    while True:
        status, page = get(gateway, "requests", limit=4, **({"before": cursor} if cursor else {}))
        assert status == 200 and page["total"] == len(newest_first)
        pages.append(page)
        seen += ids_of(page)
        cursor = page["next"]
        if cursor is None or len(seen) > len(newest_first):  # the bound: a cursor that stalls
            break
    assert seen == newest_first and len(pages) == -(-len(newest_first) // 4)
    # Back up from the oldest page: each `newer` cursor gives the page before it, the same calls.
    status, back = get(gateway, "requests", limit=4, after=pages[-1]["newer"])
    assert status == 200 and ids_of(back) == ids_of(pages[-2])
    assert get(gateway, "requests")[1]["newer"] is None


def test_filters_select_calls_and_a_text_search_is_not_counted(logged):
    gateway, workload, marked, _ = logged
    carol = {c.request_id for c in workload.sent.values() if c.user == "carol"}
    status, page = get(gateway, "requests", user="carol")
    assert status == 200 and set(ids_of(page)) == carol and page["total"] == len(carol)
    errors = {c.request_id for c in workload.sent.values() if c.status >= 400}
    assert set(ids_of(get(gateway, "requests", status="error")[1])) == errors
    status, found = get(gateway, "requests", q="dashboard-MARKED")
    assert status == 200 and ids_of(found) == [marked] and found["total"] is None
    assert found["calls"]["rows"][0]["user"] == "dora"


def test_a_text_search_pages_by_cursor_through_its_windows(logged):
    gateway, workload, marked, newest_first = logged
    seen, cursor = [], None
    while True:
        status, page = get(gateway, "requests", q="WORKLOAD", limit=3, **({"before": cursor} if cursor else {}))
        assert status == 200 and page["total"] is None
        seen += ids_of(page)
        if (cursor := page["next"]) is None or len(seen) > len(newest_first):  # the bound: a cursor that stalls
            break
    assert seen == [i for i in newest_first if i != marked] and set(seen) == set(workload.ids.values())


def test_bad_cursor_unknown_and_ambiguous_ids(logged):
    gateway, _, _, newest_first = logged
    for bad in ("yesterday", "2026-11-01T00:00:00~", "nonsense~abc", "2026-11-01T00:00:00~abc"):
        status, answer = get(gateway, "requests", before=bad)
        assert status == 400 and "cursor" in answer["error"], bad
    assert get(gateway, "requests/no-such-call")[0] == 404
    # a text search pages older only: forward from a call deep in it would read every body since, unbudgeted
    status, answer = get(gateway, "requests", q="mock", after="2026-11-01T00:00:00Z~abc")
    assert status == 400 and "text search" in answer["error"]
    status, answer = get(gateway, "requests", before="2999-01-01T00:00:00Z~")  # a time alone: the calls before it
    assert status == 200 and len(answer["calls"]["rows"]) == min(len(newest_first), 50)
    prefix = next(a[:1] for a in newest_first if sum(b.startswith(a[:1]) for b in newest_first) > 1)
    status, answer = get(gateway, f"requests/{prefix}")
    assert status == 409 and "several" in answer["error"]


def test_a_limit_that_is_not_a_plain_whole_number_is_a_400(logged):
    gateway = logged[0]
    # "²".isdigit() is True, yet int("²") fails: it was a 500
    for endpoint, bad in [("requests", "501"), *((e, b) for e in ("requests", "sessions")
                                                  for b in ("²", "٣", "1.5", "-1", "0"))]:
        status, answer = get(gateway, endpoint, limit=bad)
        assert status == 400 and answer["error"].startswith("limit: expected a whole number"), (endpoint, bad, answer)


def test_one_call_has_its_turns_attempts_and_cost(logged):
    gateway, workload, marked, _ = logged
    status, one = get(gateway, f"requests/{marked[:12]}")
    assert status == 200 and one["call"]["rows"][0]["request_id"] == marked
    roles = [t["role"] for t in one["conversation"]]
    assert roles == ["system", "user", "assistant", "tool"]
    assert "[image]" in one["conversation"][1]["text"] and MARKUP in one["conversation"][1]["text"]
    assert '→ get_weather({"city": "Paris"})' in one["conversation"][2]["text"]
    assert one["answer"][0]["role"] == "assistant" and "Mock reply" in one["answer"][0]["text"]
    assert one["request_body"]["messages"][3]["content"] == "sunny, 21 C"
    cost = one["cost"]
    assert cost["price_source"] == "genai-prices" and cost["tokens"]["input"] > 0
    split = cost["genai_prices_split"]
    assert split["matches_logged"] and split["input_usd"] + split["output_usd"] == pytest.approx(cost["cost_usd"])
    retried = get(gateway, f"requests/{workload.ids['carol_retried']}")[1]
    assert [a["status"] for a in retried["attempts"]] == [429, 200]
    unpriced = get(gateway, f"requests/{workload.ids['bob_unpriced']}")[1]["cost"]
    assert unpriced["cost_usd"] is None and "no price" in unpriced["price_error"]


# ---------------------------------------------------------------------------------------------- the page

@pytest.fixture(scope="module")
def page(browser, logged) -> Any:
    tab = browser.new_page(viewport=LAPTOP)
    tab.errors = []
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    yield tab
    tab.close()


def open_page(page: Any, gateway: Any, path: str) -> None:
    page.goto(f"http://127.0.0.1:{gateway.dashboard_port}{path}")
    page.wait_for_selector("main[data-state='ready']")


def expect(locator: Any) -> Any:
    """Playwright's polling assertions (imported here: without Playwright the browser fixture skips these tests)."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def table_column(page: Any, key: str) -> list[str]:
    return page.locator(f"td[data-col='{key}']").all_inner_texts()


def test_the_table_lists_the_calls_and_the_filter_bar_narrows_it(page, logged, screenshot):
    gateway, workload, _, newest_first = logged
    open_page(page, gateway, "/requests")
    assert page.inner_text("#requests-count") == f"1–{len(newest_first)} of {len(newest_first)} calls, newest first"
    assert len(table_column(page, "time")) == len(newest_first)
    models = set(table_column(page, "model"))
    assert {"gpt-4o-mini", "claude-haiku-4-5", "claude-sonnet-4-6", workload.models["unpriced"]} <= models
    assert {"alice", "bob", "carol", "dora"} <= set(table_column(page, "user"))
    assert "$?" in table_column(page, "cost_usd")  # the unpriced call
    assert page.locator("tr.error").count() == sum(c.status >= 400 for c in workload.sent.values())
    screenshot(page, "requests-list-laptop")

    # The shell's filter bar: user carol, then errors only.
    page.click("#filters-box summary")
    page.fill("#filters input[name=user]", "carol")
    page.click("#filters button[type=submit]")
    carol = workload.calls_by_user()["carol"]
    expect(page.locator("#requests-count")).to_have_text(re.compile(f"^1–{carol} of {carol} "))
    assert set(table_column(page, "user")) == {"carol"}
    page.select_option("#filters select[name=status]", "error")
    page.click("#filters button[type=submit]")
    expect(page.locator("#requests-count")).to_have_text(re.compile("^1–2 of 2 "))
    assert sorted(table_column(page, "status")) == ["429", "500"]
    open_page(page, gateway, "/requests?q=dashboard-marked")
    assert table_column(page, "user") == ["dora"] and "not counted" in page.inner_text("#requests-count")


def test_applying_a_filter_keeps_the_urls_other_values(page, logged):
    """A view reached by a link (two models, a status the list does not offer) keeps them when a filter is added."""
    gateway = logged[0]
    open_page(page, gateway, "/requests?model=gpt-4o-mini&model=claude-haiku-4-5&status=500")
    page.click("#filters-box summary")
    page.fill("#filters input[name='user']", "carol")
    page.click("#filters button[type='submit']")
    page.wait_for_url("**user=carol*")
    page.wait_for_selector("main[data-state='ready']")
    chips = [c.rsplit("×", 1)[0].strip() for c in page.locator("#chips .chip").all_inner_texts()]
    assert sorted(chips) == ["model: claude-haiku-4-5", "model: gpt-4o-mini", "status: 500", "user: carol"]
    assert table_column(page, "status") == ["500"] and table_column(page, "user") == ["carol"]


def test_older_and_newer_walk_every_call_once(page, logged):
    gateway, _, _, newest_first = logged
    open_page(page, gateway, "/requests?limit=6")
    seen, first_pages = [], []
    while True:
        links = page.locator("td[data-col='time'] a")
        seen += [urllib.parse.unquote(h.split("?")[0].rsplit("/", 1)[1]) for h in links.evaluate_all(
            "as => as.map(a => a.getAttribute('href'))")]
        first_pages.append(table_column(page, "time"))
        older = page.get_by_role("link", name="Older ›")
        if not older.count():
            break
        older.click()
        page.wait_for_selector(f"td[data-col='time'] a[href*='{newest_first[len(seen)]}']")
    assert seen == newest_first
    page.get_by_role("link", name="‹ Newer").click()
    page.wait_for_url("**after=*")
    expect(page.locator("td[data-col='time']")).to_have_text(first_pages[-2])
    # Another time range starts the list again from the newest call: the cursor belonged to the old view.
    page.click("#ranges button:has-text('30d')")
    page.wait_for_url("**since=30d*")
    assert "after=" not in page.url
    expect(page.locator("td[data-col='time']")).to_have_text(first_pages[0])


def test_a_row_opens_the_call_by_role_and_markup_stays_text(browser, page, logged, screenshot):
    gateway, _, marked, _ = logged
    open_page(page, gateway, "/requests?user=dora")
    page.locator("td[data-col='time'] a").first.click()
    page.wait_for_url(f"**/requests/{marked}*")
    page.wait_for_selector("main[data-state='ready'] .turn")
    roles = page.locator("section:has(h2:text-is('Conversation')) .turn-role").all_inner_texts()
    assert [r.lower() for r in roles] == ["system", "user", "assistant", "tool"]
    user_turn = page.locator(".turn[data-role='user'] .text").inner_text()
    assert MARKUP in user_turn and "[image]" in user_turn
    assert '→ get_weather({"city": "Paris"})' in page.locator(".turn[data-role='assistant'] .text").first.inner_text()
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined" and not page.errors
    details = page.locator("section:has(h2:text-is('Details'))").inner_text()
    assert "dora" in details and "ops-team" in details and "gpt-4o-mini" in details
    assert '"sunny, 21 C"' in page.locator("pre.raw-request").inner_text()
    screenshot(page, "requests-call-laptop")

    phone = browser.new_page(viewport=PHONE)
    try:
        open_page(phone, gateway, f"/requests/{marked}")
        assert phone.evaluate("typeof window.__pwned") == "undefined"
        screenshot(phone, "requests-call-phone")
        open_page(phone, gateway, "/requests")
        screenshot(phone, "requests-list-phone")
    finally:
        phone.close()


def test_the_call_view_shows_attempts_session_and_an_unknown_price(page, logged):
    gateway, workload, _, _ = logged
    open_page(page, gateway, f"/requests/{workload.ids['carol_retried']}")
    attempts = page.locator("section:has(h2:text-is('Attempts'))")
    assert attempts.locator("td[data-col='status']").all_inner_texts() == ["429", "200"]
    assert "2 tries, 1 retry" in attempts.inner_text()
    open_page(page, gateway, f"/requests/{workload.ids['alice_search']}")
    session = page.locator("section:has(h2:text-is('Details')) a[href^='/sessions/research-1']")
    assert session.inner_text() == "research-1"
    assert "/research/search" in page.locator("section:has(h2:text-is('Details'))").inner_text()
    assert "workflow=research-agent" in page.locator("section:has(h2:text-is('Details'))").inner_text()
    open_page(page, gateway, f"/requests/{workload.ids['bob_unpriced']}")
    assert "$? — genai-prices has no price" in page.locator("section:has(h2:text-is('Cost'))").inner_text()
