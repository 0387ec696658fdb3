"""The dashboard's Overview and Rate limits & cache pages over the analytics workload, sent through a real gateway
with the SDKs: the JSON endpoints hold the figures the log holds (counted here straight from the log, not from the
endpoints' own queries), and in a real browser the cards show them, the charts are drawn with the models named in
their legend, and a filter narrows the figures."""

from __future__ import annotations

import json
import math
import urllib.request
from decimal import Decimal
from typing import Any

import pytest

from browser import LAPTOP, PHONE

RANGE = "since=1h"  # the workload has just run


def get(gateway, path: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{gateway.dashboard_port}/api/{path}"
    with urllib.request.urlopen(url, timeout=30) as answer:
        return json.loads(answer.read(), parse_float=Decimal)


def one(gateway, sql: str) -> Any:
    return gateway.query(sql)[0][0]


def usd(value: Decimal) -> str:
    """Money as the page shows it (ui.js usd): 3 significant digits under a dollar, cents above."""
    if value == 0:
        return "$0"
    if value >= Decimal("0.9995"):
        return f"${value:,.2f}"
    decimals = 2 - math.floor(math.log10(value))
    return "$" + f"{value:.{decimals}f}".rstrip("0").rstrip(".")


@pytest.fixture(scope="module")
def page(browser):
    page = browser.new_page(viewport=LAPTOP)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    page.close()
    assert not errors, errors


def open_page(page, gateway, path: str) -> None:
    page.goto(f"http://127.0.0.1:{gateway.dashboard_port}/{path}")
    page.wait_for_selector("main[data-state=ready]", timeout=15000)


def card(page, kpi: str) -> tuple[str, str]:
    """A KPI card's value and note, as shown."""
    box = page.locator(f"[data-kpi={kpi}]")
    note = box.locator(".card-note")
    return box.locator(".card-value").inner_text(), note.inner_text() if note.count() else ""


def charts(page) -> list[dict[str, Any]]:
    """Every chart on the page as Chart.js holds it: its title, size drawn, and datasets (label, data)."""
    return page.evaluate("""() => [...document.querySelectorAll('canvas')].map((canvas) => {
        const chart = Chart.getChart(canvas);
        return {title: canvas.getAttribute('aria-label'), width: canvas.width, height: canvas.height,
                labels: chart ? chart.data.labels.length : 0,
                datasets: chart ? chart.data.datasets.map((d) => ({label: d.label, data: d.data})) : []};
    })""")


def test_overview_endpoint_has_the_workloads_figures(analytics):
    gateway, workload = analytics
    answer = get(gateway, f"overview?{RANGE}")
    summary = answer["summary"]["rows"][0]
    assert summary["requests"] == workload.calls
    assert summary["errors"] == sum(call.status >= 400 for call in workload.sent.values()) == 2  # the 500, the 429
    assert summary["cost_usd"] == one(gateway, "SELECT sum(cost_usd) FROM requests")
    assert summary["unpriced"] == one(gateway, "SELECT count(*) FROM requests WHERE cost_usd IS NULL") >= 1
    assert (summary["cache_hits"], summary["cache_misses"], summary["cache_hit_pct"]) == (1, 1, 50)
    assert summary["p95_ttft_ms"] is not None  # two streamed calls
    assert answer["step_s"] == 60
    series = answer["series"]["rows"]
    assert 60 <= len(series) <= 61  # every minute of the hour, those without calls too
    assert sum(row["requests"] for row in series) == workload.calls
    assert sum(row["errors"] for row in series) == 2
    # the provider's 429s, the retried one too, as the `throttling` view counts them
    assert sum(row["rate_limited"] for row in series) == one(
        gateway, "SELECT count(*) FROM throttling WHERE event = 'rate_limited'") == 2
    per_model = {}
    for row in answer["spend_by_model"]["rows"]:
        per_model[row["model"]] = per_model.get(row["model"], 0) + row["requests"]
    assert per_model == dict(gateway.query(
        "SELECT coalesce(model, model_requested), count(*) FROM requests GROUP BY ALL"))


def test_limits_endpoint_has_the_429s_the_budget_left_and_the_cache(analytics):
    gateway, workload = analytics
    answer = get(gateway, f"limits?{RANGE}")
    throttled = [row for row in answer["limits"]["rows"] if row["rate_limited"]]
    assert [(row["model"], row["key"], row["rate_limited"]) for row in throttled] == [
        (workload.models["openai"], "ops-team", 2)]  # carol's retried 429 and her 429
    headroom = answer["headroom"]["rows"]
    assert sum(row["rate_limited"] for row in headroom) == 2
    # bob_near_limit: the provider said 3 of 10000 requests were left
    assert float(min(row["requests_left_min_pct"] for row in headroom
                     if row["requests_left_min_pct"] is not None)) == pytest.approx(0.03)
    assert sum(row["cache_hits"] for row in answer["cache"]["rows"]) == 1
    summary = answer["summary"]["rows"][0]
    assert (summary["cache_hits"], summary["cache_hit_pct"], summary["saved_usd"]) == (
        1, 50, one(gateway, "SELECT sum(cost_saved_usd) FROM requests"))


def test_overview_page_shows_the_figures_and_draws_spend_by_model(analytics, page, screenshot):
    gateway, workload = analytics
    open_page(page, gateway, f"overview?{RANGE}")
    total = one(gateway, "SELECT sum(cost_usd) FROM requests")
    unpriced = one(gateway, "SELECT count(*) FROM requests WHERE cost_usd IS NULL")
    assert card(page, "spend") == (usd(total), f"+ {unpriced} call{'s' if unpriced > 1 else ''} without a price")
    assert card(page, "requests")[0] == str(workload.calls)
    assert card(page, "error-rate") == (f"{round(100 * 2 / workload.calls, 1):g}%", "2 errors")
    assert page.locator("[data-kpi=error-rate] a").get_attribute("href").endswith("status=error")
    assert card(page, "cache-hit-rate")[0] == "50%"
    assert card(page, "p50-latency")[0].endswith(" ms") and card(page, "p95-ttft")[0].endswith(" ms")
    drawn = {chart["title"]: chart for chart in charts(page)}
    assert set(drawn) == {"Spend by model", "Requests and errors", "Latency"}
    assert all(chart["width"] > 200 and chart["labels"] >= 60 for chart in drawn.values())
    models = {label for (label,) in gateway.query("SELECT DISTINCT coalesce(model, model_requested) FROM requests")}
    assert {d["label"] for d in drawn["Spend by model"]["datasets"]} == models  # the legend names every model
    # the bars sum the priced calls only, and say so
    calls, are = ("calls", "are") if unpriced > 1 else ("call", "is")
    assert page.locator("section.panel:has(h2:text-is('Spend by model')) .note").inner_text() == (
        f"{unpriced} {calls} without a price {are} not in the bars.")
    requests = next(d for d in drawn["Requests and errors"]["datasets"] if d["label"] == "requests")
    assert sum(requests["data"]) == workload.calls
    screenshot(page, "overview-laptop")
    page.set_viewport_size(PHONE)
    screenshot(page, "overview-phone")
    page.set_viewport_size(LAPTOP)


def test_a_user_filter_narrows_the_overview(analytics, page):
    gateway, workload = analytics
    open_page(page, gateway, f"overview?{RANGE}")
    page.click("#filters-box summary")
    page.fill("#filters input[name=user]", "carol")
    page.click("#filters button[type=submit]")
    carol = workload.calls_by_user()["carol"]
    page.wait_for_function(f"""() => document.querySelector('[data-kpi=requests] .card-value')
                                     .textContent === '{carol}'""", timeout=15000)
    assert "user=carol" in page.url
    carol_cost = one(gateway, "SELECT sum(cost_usd) FROM requests WHERE user_id = 'carol'")
    assert card(page, "spend")[0] == usd(carol_cost)
    assert card(page, "error-rate")[1] == "2 errors"  # both failures were carol's
    spend = next(chart for chart in charts(page) if chart["title"] == "Spend by model")
    carol_models = {m for (m,) in gateway.query(
        "SELECT DISTINCT coalesce(model, model_requested) FROM requests WHERE user_id = 'carol'")}
    assert {d["label"] for d in spend["datasets"]} == carol_models
    assert not any("claude" in model for model in carol_models)  # carol asked OpenAI's models only: alice's are gone


def test_limits_page_shows_throttling_headroom_and_the_cache(analytics, page, screenshot):
    gateway, workload = analytics
    open_page(page, gateway, f"limits?{RANGE}")
    assert card(page, "cache-hits")[0] == "1" and card(page, "cache-hit-rate")[0] == "50%"
    saved = one(gateway, "SELECT sum(cost_saved_usd) FROM requests")
    assert card(page, "saved")[0] == usd(saved)
    throttled = page.locator("table tbody tr", has=page.locator("td[data-col=key]", has_text="ops-team")).filter(
        has=page.locator("td[data-col=model]", has_text=workload.models["openai"]))
    assert throttled.locator("td[data-col=rate_limited]").inner_text() == "2"
    assert throttled.locator("td[data-col=retry_after_s]").inner_text() == "1 s"  # the latest 429 asked for 1 s
    drawn = {chart["title"]: chart for chart in charts(page)}
    assert set(drawn) == {"429s from providers", "Headroom: lowest budget left", "Cache hit rate",
                          "Saved by the cache"}
    assert all(chart["width"] > 200 for chart in drawn.values())
    assert sum(drawn["429s from providers"]["datasets"][0]["data"]) == 2
    requests_left = drawn["Headroom: lowest budget left"]["datasets"][0]
    assert requests_left["label"] == "requests left"
    assert min(v for v in requests_left["data"] if v is not None) == pytest.approx(0.03)
    screenshot(page, "limits-laptop")
    page.set_viewport_size(PHONE)
    screenshot(page, "limits-phone")
    page.set_viewport_size(LAPTOP)
