"""How fast the dashboard's pages are on a large log, and what reading it does to a gateway writing that log.

Pages (default): `llmtap dashboard` over the 1M-row log with bodies (made once by bench_log.py, reused from `--dir`,
as bench_reports.py does), each page loaded `--runs` times in Debian's chromium after one warm-up. A page's time runs
from the navigation's start to the page drawn (the shell's `llmtap:ready` mark: data read, rows laid out, charts
drawn): what a person waits. The browser driver's wall time, which adds its own round trips, is shown beside it.
Each page's JSON endpoint is timed alone too (HTTP, no browser). Target (issue 12): every page under 1 s.

Under load (`--under-load`): a real gateway (`llmtap start`, provider = scripts/mock_provider.py) logging into a copy
of the 1M-row log at a steady `--rate` of calls, first alone, then while `--readers` clients load the dashboard's
endpoints (the gateway's own, in its process) one after another without pause, far harder than a person refreshing.
It reports the calls' latency and the gateway's row delay (from a call's answer to its row being readable) in both
phases: reading the dashboard must never hold the writes up by more than a few seconds.

    .venv/bin/python scripts/bench_dashboard.py [--dir DIR] [--runs 5]
    .venv/bin/python scripts/bench_dashboard.py --under-load [--rate 100] [--seconds 30] [--readers 2]

Results print as a table and are written as JSON (`--json`, default DIR/bench-dashboard.json).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from llmtap.analytics import queries
from llmtap.analytics.scope import Scope

import bench_reports  # beside this script: the logs, the load, the probe
from loopback import free_port, stop_all, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from browser import CHROMIUM, CHROMIUM_ARGS, LAPTOP  # noqa: E402  (the tests' own browser set-up)

TARGET_S = 1.0


def pages(log: Path) -> list[tuple[str, str, str]]:
    """(name, page URL path, its endpoint's path) for every page, with a call, a session and a property picked
    from the log so each shows something."""
    call = queries.logs(log, Scope(), 1).dicts()[0]["id"]
    session = bench_reports._busiest_recent_session(log)
    found, absent = bench_reports.SEARCH_TEXT, bench_reports.ABSENT_TEXT  # a few calls hold it; none does
    return [
        ("overview 7d", "/overview", "/api/overview"),
        ("overview 30d", "/overview?since=30d", "/api/overview?since=30d"),
        ("overview 24h", "/overview?since=24h", "/api/overview?since=24h"),
        ("requests", "/requests", "/api/requests"),
        ("requests user=…", "/requests?user=user-0042", "/api/requests?user=user-0042"),
        ("requests q=…", f"/requests?q={found}", f"/api/requests?q={found}"),
        ("requests q=absent", f"/requests?q={absent}", f"/api/requests?q={absent}"),
        ("one request", f"/requests/{call}", f"/api/requests/{call}"),
        ("users", "/users", "/api/users"),
        ("properties", "/properties?by=workflow&then=step", "/api/properties?by=workflow&then=step"),
        ("sessions", "/sessions", "/api/sessions"),
        ("one session", f"/sessions/{session}", f"/api/sessions/{session}"),
        ("rate limits & cache", "/limits", "/api/limits"),
        ("rate limits & cache 30d", "/limits?since=30d", "/api/limits?since=30d"),
        ("alerts", "/alerts", "/api/alerts"),
    ]


# The Alerts page's rules: a gateway-wide daily spend, a per-user monthly budget (one row per user of the log), and a
# per-model hourly error rate, as a team would set them.
ALERT_RULES = [
    {"name": "daily-spend", "metric": "spend_usd", "window": "day", "threshold": 50,
     "channels": [{"webhook": "http://127.0.0.1:9/hook"}]},
    {"name": "user-monthly-budget", "metric": "spend_usd", "window": "month", "threshold": 20, "scope": "user",
     "action": "block"},
    {"name": "model-errors", "metric": "error_rate", "window": "1h", "threshold": 5, "scope": "model",
     "min_requests": 20, "channels": [{"webhook": "http://127.0.0.1:9/hook"}]},
]


def _get_s(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status}")
    return time.perf_counter() - started


def time_pages(directory: Path, runs: int, regenerate: bool, only: str | None = None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    log, about = bench_reports.ensure_log(directory, "1m", regenerate)
    port = free_port()
    config = bench_reports.write_config(directory, log, {"listen": {"dashboard": f"127.0.0.1:{port}"},
                                                         "alerts": ALERT_RULES})
    server = subprocess.Popen([sys.executable, "-m", "llmtap.cli", "dashboard", "--config", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {"log": about, "runs": runs, "pages": {}}
    try:
        wait_for_port(port, timeout_s=60)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=LAPTOP)
            for name, path, endpoint in pages(log):
                if only is not None and only not in name:
                    continue
                page_s, wall_s, api_s = [], [], []
                for run in range(runs + 1):  # the first is a warm-up (DuckDB's and the OS's caches)
                    started = time.perf_counter()
                    page.goto(base + path)
                    page.wait_for_selector("main[data-state]", timeout=120_000)
                    page.wait_for_function("Array.from(document.querySelectorAll('canvas'))"
                                           ".every(c => window.Chart && Chart.getChart(c))")
                    waited = time.perf_counter() - started
                    if page.get_attribute("main", "data-state") != "ready":
                        raise RuntimeError(f"{name}: {page.inner_text('main')[:300]}")
                    # From the navigation's start to the page drawn, as the page itself measures it (the shell
                    # marks `llmtap:ready`); the wall time also holds the browser driver's own round trips.
                    drawn_ms = page.evaluate("performance.getEntriesByName('llmtap:ready')[0].startTime")
                    api_elapsed = _get_s(base + endpoint)
                    if run:
                        page_s.append(drawn_ms / 1000)
                        wall_s.append(waited)
                        api_s.append(api_elapsed)
                results["pages"][name] = {"page_s": _stats(page_s), "wall_s": _stats(wall_s), "api_s": _stats(api_s)}
                print(f"  {name}: {json.dumps(results['pages'][name])}", file=sys.stderr)
            browser.close()
    finally:
        stop_all([server])
    return results


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def print_pages(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"dashboard over {results['log']['rows']:,} rows with bodies; median / max of "
                        f"{results['runs']} runs (target: every page under {TARGET_S:g} s)", title_justify="left")
    for column in ("page", "drawn s", "driver's wall s", "endpoint alone s", "under target"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for name, entry in results["pages"].items():
        page_s, wall_s, api_s = entry["page_s"], entry["wall_s"], entry["api_s"]
        table.add_row(name, f"{page_s['median']} / {page_s['max']}", f"{wall_s['median']} / {wall_s['max']}",
                      f"{api_s['median']} / {api_s['max']}", "yes" if page_s["max"] < TARGET_S else "NO")
    Console(width=120).print(table)


# ---------------------------------------------------------------------------------------------- under load

def under_load(directory: Path, rate_per_s: float, clients: int, seconds: float, readers: int,
               regenerate: bool) -> dict[str, Any]:
    with bench_reports.gateway_over_copy(directory, regenerate, dashboard=True) as loaded:
        endpoints = [f"http://127.0.0.1:{loaded.dashboard_port}{endpoint}" for _, _, endpoint in pages(loaded.log)]
        phases = {}
        for name, reading in (("load", False), ("load+dashboard", True)):
            phase = bench_reports.Phase(name)
            stop = threading.Event()
            threads = [*bench_reports.load(loaded.gateway_port, rate_per_s, clients, stop, phase),
                       bench_reports.probe(loaded.gateway_port, loaded.log, stop, phase)]
            reads: list[float] = []
            if reading:
                threads += [threading.Thread(target=_read_all, args=(endpoints, stop, reads), daemon=True)
                            for _ in range(readers)]
                for thread in threads[-readers:]:
                    thread.start()
            started = time.perf_counter()
            stop.wait(seconds)
            stop.set()
            phase.finish(threads, started, join_s=120)
            summary = phase.summary()
            summary["dashboard_reads"] = bench_reports._percentiles(reads, digits=3)
            phases[name] = summary
            print(f"  {name}: {json.dumps(summary)}", file=sys.stderr)
        return {"log": loaded.about, "rate_per_s": rate_per_s, "clients": clients, "seconds": seconds,
                "readers": readers, "phases": phases}


def _read_all(endpoints: list[str], stop: threading.Event, reads: list[float]) -> None:
    """One dashboard client reading every endpoint in turn, without pause, until `stop`."""
    while not stop.is_set():
        for url in endpoints:
            if stop.is_set():
                return
            try:
                reads.append(_get_s(url))
            except Exception as e:  # noqa: BLE001  (counted as what it is: a failed read)
                print(f"  dashboard read failed: {url}: {e}", file=sys.stderr)


def print_under_load(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(p: dict[str, float] | None) -> str:
        return f"{p['median']} / {p['p95']} / {p['max']}" if p else ""

    table = Table(title=f"gateway over {results['log']['rows']:,} rows; {results['clients']} clients at "
                        f"{results['rate_per_s']:.0f} calls/s for {results['seconds']:.0f} s, "
                        f"{results['readers']} dashboard readers; median / p95 / max", title_justify="left")
    for column in ("phase", "calls/s", "call ms", "row delay s", "dashboard read s", "load average"):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for name, phase in results["phases"].items():
        table.add_row(name, str(phase["calls_per_s"]), fmt(phase["call_ms"]), fmt(phase["row_delay_s"]),
                      fmt(phase["dashboard_reads"]), str(phase["load_average"]))
    Console(width=140).print(table)


def main() -> None:
    parser = bench_reports.arguments((__doc__ or "").splitlines()[0])
    parser.add_argument("--under-load", action="store_true", help="measure a gateway's writes while it is read")
    parser.add_argument("--readers", type=int, default=2, help="dashboard clients reading without pause")
    parser.add_argument("--only", help="time only the pages whose name holds this text (e.g. alerts)")
    opts = parser.parse_args()
    directory = bench_reports.logs_dir(opts)
    if opts.under_load:
        results = under_load(directory, opts.rate, opts.clients, opts.seconds, opts.readers, opts.regenerate)
        print_under_load(results)
        bench_reports.write_results(results, opts.json or directory / "bench-dashboard-under-load.json")
    else:
        results = time_pages(directory, opts.runs, opts.regenerate, opts.only)
        print_pages(results)
        bench_reports.write_results(results, opts.json or directory / "bench-dashboard.json")


if __name__ == "__main__":
    main()
