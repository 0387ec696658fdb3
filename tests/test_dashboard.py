"""The dashboard as a server: where it runs (in the gateway, or `llmtap dashboard` over a stopped gateway's log), who
may read it (loopback; a gateway key elsewhere; its own Host only), that it works offline, and that however often it
is read, the gateway's calls still land in the log. The pages themselves: test_dashboard_{overview,requests,people}."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from conftest import Gateway, free_port, stop, wait_for_port

GATEWAY_KEY = "gk-dashboard-test-0123456789"


def get(url: str, headers: dict[str, str] | None = None, timeout_s: float = 30) -> tuple[int, dict[str, Any], str]:
    """GET `url`: status, headers (names lower-cased) and body text, whatever the status."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()


def dashboard_url(gateway: Gateway) -> str:
    return f"http://127.0.0.1:{gateway.dashboard_port}"


def chat(gateway: Gateway, content: str, user: str = "dash-user") -> str:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="sk-client", max_retries=0)
    response = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": content}], extra_headers={"Helicone-User-Id": user})
    return response.headers["helicone-id"]


# ---------------------------------------------------------------------------------------------- in the gateway

def test_the_gateway_serves_the_dashboard_and_names_it_in_its_banner(gateway):
    assert f"dashboard        http://127.0.0.1:{gateway.dashboard_port}/" in gateway.output()
    status, headers, body = get(dashboard_url(gateway) + "/overview")
    assert status == 200 and headers["content-type"].startswith("text/html") and "/static/app.js" in body
    request_id = chat(gateway, "counted on the dashboard")
    gateway.row(request_id)
    status, _, body = get(dashboard_url(gateway) + "/api/seq")
    assert status == 200 and json.loads(body)["seq"] >= 0


def test_a_bad_argument_is_a_400_naming_it_and_an_unknown_endpoint_a_404(gateway):
    status, headers, body = get(dashboard_url(gateway) + "/api/seq?since=yesterdayish")
    assert status == 200  # /api/seq reads no scope: the argument is not its business
    for endpoint in ("overview", "requests", "users", "properties", "sessions", "limits", "alerts"):
        status, headers, body = get(f"{dashboard_url(gateway)}/api/{endpoint}?since=yesterdayish")
        assert status == 400 and headers["content-type"].startswith("application/json"), endpoint
        assert "since" in json.loads(body)["error"] and "yesterdayish" in json.loads(body)["error"]
    for name in ("no_such_thing", "Requests", "no-such-thing", ""):  # any name: a JSON 404, not tornado's HTML page
        status, headers, body = get(f"{dashboard_url(gateway)}/api/{name}")
        assert status == 404 and headers["content-type"].startswith("application/json"), name
        assert f"no endpoint /api/{name}" in json.loads(body)["error"]
    status, _, body = get(dashboard_url(gateway) + "/api/requests/")  # a trailing slash: the list, as without
    assert status == 200 and "calls" in json.loads(body)


def test_another_host_name_is_refused_so_a_web_page_elsewhere_cannot_read_it_by_dns_rebinding(gateway):
    for path in ("/api/seq", "/overview"):
        status, _, body = get(dashboard_url(gateway) + path, {"Host": f"attacker.example:{gateway.dashboard_port}"})
        assert status == 403 and "its own address" in json.loads(body)["error"]
    assert get(dashboard_url(gateway) + "/api/seq", {"Host": f"localhost:{gateway.dashboard_port}"})[0] == 200


def test_the_page_forbids_inline_script_and_framing(gateway):
    """The page's Content-Security-Policy: scripts and styles from the dashboard only, none inline, never framed; so
    even markup that reached the DOM could not run."""
    status, headers, _ = get(dashboard_url(gateway) + "/requests")
    policy = {d.split()[0]: d.split()[1:] for d in headers["content-security-policy"].split(";") if d.strip()}
    assert status == 200 and policy["default-src"] == ["'self'"] and "script-src" not in policy
    assert policy["frame-ancestors"] == ["'none'"] and "'unsafe-inline'" not in str(policy)
    assert headers["x-content-type-options"] == "nosniff"


def test_the_page_fetches_nothing_from_elsewhere(gateway, browser):
    """Offline: every script, style and font comes from the dashboard itself."""
    page = browser.new_page()
    origins: list[str] = []
    page.on("request", lambda request: origins.append(request.url))
    page.goto(dashboard_url(gateway) + "/overview")
    page.wait_for_selector("main[data-state]")
    page.wait_for_function("window.Chart !== undefined")
    page.close()
    assert origins and all(url.startswith(dashboard_url(gateway) + "/") for url in origins), origins


def test_new_calls_appear_without_a_reload_and_leave_what_the_user_is_typing(gateway, browser):
    """Live refresh: a call made while the Requests page is open shows up in its table by itself, and the refresh
    keeps a filter being typed and the open custom-range form as they were (it used to wipe and close them)."""
    page = browser.new_page()
    try:
        page.goto(dashboard_url(gateway) + "/requests")
        page.wait_for_selector("main[data-state='ready']")
        page.click("#filters-box summary")
        page.fill("#filters input[name='model']", "half-typed-model")
        page.click("#ranges button:has-text('custom')")
        page.fill("#custom-range input[name='since']", "2026-01-02T03:04")
        request_id = chat(gateway, "a call that lands while the page is open")
        page.wait_for_selector(f"main a[href^='/requests/{request_id}']", timeout=20_000)
        assert page.input_value("#filters input[name='model']") == "half-typed-model"
        assert page.is_visible("#custom-range")
        assert page.input_value("#custom-range input[name='since']") == "2026-01-02T03:04"
    finally:
        page.close()


def test_the_whole_throttling_table_stays_whole_while_calls_land(gateway, browser):
    """Rate limits & cache: "Show all" keeps every row through the live refresh a new call brings (a button's
    expansion used to fall back to the first 15 rows at the next call)."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key="sk-client", max_retries=0)

    def call(model: str) -> None:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "headroom"}])

    for n in range(16):  # one throttling row per model: more than the 15 shown at first
        call(f"gpt-limits-{n:02}")
    page = browser.new_page()
    try:
        page.goto(dashboard_url(gateway) + "/limits")
        page.wait_for_selector("main[data-state='ready']")
        page.get_by_text("Show all").click()
        page.wait_for_selector("main[data-state='ready'] td[data-col='model'] >> text=gpt-limits-15")
        call("gpt-limits-16")  # lands while the page is open: the page refreshes by itself
        page.wait_for_selector("td[data-col='model'] >> text=gpt-limits-16", timeout=20_000)
        assert page.locator("td[data-col='model']").filter(has_text="gpt-limits-").count() == 17
    finally:
        page.close()


HOSTILE_USER = "<img src=x onerror=window.pwned=1>"
HOSTILE_SESSION = "run/1%2F \"quoted\" 'x' <b>"
HOSTILE_VALUE = "\"><script>window.pwned=2</script>"


def test_markup_in_user_session_and_property_is_shown_as_text_on_every_page(gateway, browser):
    """Log values that look like markup, quotes, `/` and `%` in a session id: each page shows them as text, links
    to them work, and nothing runs."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key="sk-client", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hostile values"}],
        extra_headers={"Helicone-User-Id": HOSTILE_USER, "Helicone-Session-Id": HOSTILE_SESSION,
                       "Helicone-Property-Hostile": HOSTILE_VALUE})
    request_id = raw.headers["helicone-id"]
    assert gateway.rows("request_id = ?", [request_id], timeout_s=10)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        def shown(path: str) -> str:
            page.goto(dashboard_url(gateway) + path)
            page.wait_for_selector("main[data-state]")
            assert page.get_attribute("main", "data-state") == "ready", (path, page.inner_text("main"))
            return page.inner_text("main")

        assert HOSTILE_USER in shown("/users")
        assert HOSTILE_VALUE in shown("/properties?by=hostile")
        page.goto(dashboard_url(gateway) + "/sessions")
        page.wait_for_selector("main[data-state='ready']")
        page.get_by_role("link", name=HOSTILE_SESSION).click()  # the id's `/` and `%` survive the link
        page.wait_for_selector("main[data-state='ready'] .waterfall")
        assert HOSTILE_SESSION in page.inner_text("main")
        text = shown(f"/requests/{request_id}")
        assert HOSTILE_USER in text and HOSTILE_SESSION in text and HOSTILE_VALUE in text
        assert page.evaluate("window.pwned") is None and not errors, errors
    finally:
        page.close()


def test_on_a_phone_every_page_link_is_in_sight(gateway, browser):
    """At phone width the nav shows all seven pages (it used to run off the right edge from "Properties" on)."""
    from browser import PHONE

    page = browser.new_page(viewport=PHONE)
    try:
        page.goto(dashboard_url(gateway) + "/overview")
        page.wait_for_selector("main[data-state]")
        links = page.locator("#nav a")
        assert links.count() == 7
        for n in range(7):
            box = links.nth(n).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], links.nth(n).inner_text()
    finally:
        page.close()


def test_reading_the_dashboard_hard_never_holds_up_the_gateways_writes(gateway):
    """Four clients ask for the heaviest endpoints back to back while calls are made: each call's row still lands
    within a few seconds (the dashboard's own view of the log, which shares the writer's database, sees it), and a
    reader in another process (an `llmtap` command) still gets its turn at the file."""
    stopping = threading.Event()
    answered = []

    def hammer() -> None:
        while not stopping.is_set():
            for endpoint in ("overview?since=30d", "requests?since=30d", "users?since=30d", "limits?since=30d"):
                answered.append(get(f"{dashboard_url(gateway)}/api/{endpoint}")[0])

    readers = [threading.Thread(target=hammer) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + 30
        while not answered and time.monotonic() < deadline:  # the readers are at it before the first call
            time.sleep(0.01)
        landed_s, read_elsewhere_s = [], []
        for n in range(6):
            request_id = chat(gateway, f"written while the dashboard is read {n}")
            started = time.monotonic()
            while get(f"{dashboard_url(gateway)}/api/requests/{request_id}")[0] != 200:
                assert time.monotonic() - started < 15, f"call {n} never landed"
                time.sleep(0.05)
            landed_s.append(time.monotonic() - started)
            started = time.monotonic()
            assert gateway.rows("request_id = ?", [request_id], timeout_s=10)
            read_elsewhere_s.append(time.monotonic() - started)
    finally:
        stopping.set()
        for reader in readers:
            reader.join()
    assert answered and set(answered) == {200}, set(answered)
    assert max(landed_s) < 5, landed_s
    assert max(read_elsewhere_s) < 5, read_elsewhere_s


# ---------------------------------------------------------------------------------------------- beyond loopback

def write_config(workdir: Path, mock_url: str, dashboard: str, keys: bool) -> tuple[Path, int]:
    """A config with the gateway way in on a free loopback port (no proxy way in) and the dashboard at `dashboard`
    (HOST:PORT); with `keys`, one gateway key. The config's path and the gateway's port."""
    gateway_port = free_port()
    config: dict[str, Any] = {"listen": {"proxy": "off", "gateway": f"127.0.0.1:{gateway_port}", "dashboard": dashboard},
                              "certs": "certs", "storage": {"path": "data/llmtap.duckdb"},
                              "providers": {"openai": {"upstream": mock_url}}}
    if keys:
        config["gateway"] = {"keys": [{"owner": "dash", "key": GATEWAY_KEY}]}
    path = workdir / "llmtap.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, gateway_port


def test_a_dashboard_other_machines_could_reach_will_not_start_without_gateway_keys(tmp_path, mock_provider):
    config, _ = write_config(tmp_path, mock_provider.url, f"0.0.0.0:{free_port()}", keys=False)
    result = subprocess.run([sys.executable, "-m", "llmtap.cli", "dashboard", "--config", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "listen.dashboard" in result.stderr and "gateway.keys must be set" in result.stderr


def launch(log: Path, command: str, config: Path) -> tuple[subprocess.Popen, Path]:
    """`llmtap <command> --config <config>` in the background, its output into `log` (started in its directory)."""
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "llmtap.cli", command, "--config", str(config)],
                                   cwd=log.parent, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "OPENAI_API_KEY": "sk-llmtap-own"})
    return process, log


@pytest.fixture(scope="module")
def exposed_dashboard(tmp_path_factory, mock_provider):
    """A gateway whose dashboard listens on all addresses (reached here on loopback only), with a gateway key."""
    tmp_path = tmp_path_factory.mktemp("exposed")
    dashboard_port = free_port()
    config, gateway_port = write_config(tmp_path, mock_provider.url, f"0.0.0.0:{dashboard_port}", keys=True)
    process, log = launch(tmp_path / "gateway.log", "start", config)
    try:
        wait_for_port(gateway_port, process, log)
        wait_for_port(dashboard_port, process, log)
        yield f"http://127.0.0.1:{dashboard_port}", gateway_port
    finally:
        stop(process)


def test_beyond_loopback_every_endpoint_asks_for_a_gateway_key(exposed_dashboard):
    url, _ = exposed_dashboard
    status, headers, body = get(url + "/api/seq")
    assert status == 401 and "gateway key" in json.loads(body)["error"] and headers["www-authenticate"].startswith(
        "Bearer")
    assert get(url + "/api/seq", {"Authorization": "Bearer gk-wrong"})[0] == 401
    assert get(url + "/api/seq", {"Authorization": f"Bearer {GATEWAY_KEY}"})[0] == 200
    assert get(url + "/overview")[0] == 200  # the page holds no data; it asks for the key itself


def test_the_page_asks_for_the_key_once_and_then_shows(exposed_dashboard, browser, screenshot):
    url, _ = exposed_dashboard
    page = browser.new_page()
    page.goto(url + "/overview")
    page.wait_for_selector("form.key-prompt")
    screenshot(page, "dashboard-key-prompt")
    page.fill("form.key-prompt input", GATEWAY_KEY)
    page.click("form.key-prompt button")
    page.wait_for_selector("main[data-state=ready]")
    page.click("nav a:has-text('Users')")  # the key is kept for the tab: the next page asks no more
    page.wait_for_selector("main[data-state=ready] h1:has-text('Users')")
    assert page.query_selector("form.key-prompt") is None
    page.close()


# ---------------------------------------------------------------------------------------------- llmtap dashboard

def test_llmtap_dashboard_serves_a_stopped_gateways_log_and_stops_on_sigterm(fresh_gateway):
    gateway = fresh_gateway()
    request_id = chat(gateway, "read after the gateway stopped")
    gateway.row(request_id)
    refused = subprocess.run([sys.executable, "-m", "llmtap.cli", "dashboard", "--config", str(gateway.config_path)],
                             capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "a gateway is writing" in refused.stderr and "own dashboard" in refused.stderr
    assert gateway.stop() == 0
    process, log = launch(gateway.workdir / "dashboard.log", "dashboard", gateway.config_path)
    try:
        wait_for_port(gateway.dashboard_port, process, log)
        assert f"Open http://127.0.0.1:{gateway.dashboard_port}/" in log.read_text()
        status, _, body = get(dashboard_url(gateway) + "/api/seq")
        assert status == 200 and json.loads(body)["seq"] == 0  # the one call: rowid 0

        # A gateway starts writing the log meanwhile (its own dashboard off): reading it from here would hold the
        # file from its writer, so the page is told where to look instead.
        config = yaml.safe_load(gateway.config_path.read_text())
        config["listen"]["dashboard"] = "off"
        gateway.config_path.write_text(yaml.safe_dump(config))
        gateway.dashboard_port, port = None, gateway.dashboard_port
        gateway.launch()
        try:
            status, _, body = get(f"http://127.0.0.1:{port}/api/seq")
            assert status == 409 and "a gateway is writing" in json.loads(body)["error"]
        finally:
            assert gateway.stop() == 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        stop(process)
    assert "dashboard stopped" in log.read_text()


def test_llmtap_dashboard_says_in_one_line_when_its_address_is_taken_or_there_is_no_log(tmp_path, mock_provider):
    dashboard_port = free_port()
    config, _ = write_config(tmp_path, mock_provider.url, f"127.0.0.1:{dashboard_port}", keys=False)
    first, log = launch(tmp_path / "first.log", "dashboard", config)
    try:
        wait_for_port(dashboard_port, first, log)
        status, _, body = get(f"http://127.0.0.1:{dashboard_port}/api/seq")
        assert status == 503 and "no log yet" in json.loads(body)["error"]
        second = subprocess.run([sys.executable, "-m", "llmtap.cli", "dashboard", "--config", str(config)],
                                capture_output=True, text=True, timeout=60)
    finally:
        stop(first)
    assert second.returncode == 1 and "Traceback" not in second.stderr
    assert f"cannot listen on 127.0.0.1:{dashboard_port}" in second.stderr and len(second.stderr.splitlines()) == 1


def test_a_gateway_whose_dashboard_address_is_taken_says_so_and_does_not_start(tmp_path, mock_provider):
    """As mitmproxy does for its own listeners: at once, one line naming the address and what to do."""
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    config, _ = write_config(tmp_path, mock_provider.url, f"127.0.0.1:{taken}", keys=False)
    try:
        result = subprocess.run([sys.executable, "-m", "llmtap.cli", "start", "--config", str(config)], cwd=tmp_path,
                                capture_output=True, text=True, timeout=60)
    finally:
        holder.close()
    assert result.returncode != 0 and "Traceback" not in result.stdout + result.stderr
    assert f"the dashboard cannot listen on 127.0.0.1:{taken} (Address already in use). Set listen.dashboard" in (
        result.stdout + result.stderr)
