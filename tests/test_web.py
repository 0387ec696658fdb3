"""`llmtap start --web`: mitmweb takes the user's own `--set` options, shows each call's comment (model, tokens, cost)
in the flow list, and its status bar names the address the proxy really listens on."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llmtap.config import load_config
from llmtap.pipeline import mitmproxy_args

from conftest import Gateway, curl, free_port, start_gateway

CHROMIUM = Path("/usr/bin/chromium")


class Mitmweb:
    """mitmweb's HTTP API (the one its own page uses), with the token it printed."""

    def __init__(self, gateway: Gateway, timeout_s: float = 30):
        deadline = time.monotonic() + timeout_s
        while not (found := re.search(r"Web server listening at (http://\S+/)\?token=(\w+)", gateway.output())):
            assert time.monotonic() < deadline, gateway.output()
            time.sleep(0.1)
        self.url, self.token = found.group(1), found.group(2)

    def get(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def option(self, name: str) -> Any:
        return self.get("options.json")[name]["value"]


@pytest.fixture(scope="module")
def web_gateway(tmp_path_factory, mock_provider) -> Iterator[Gateway]:
    """A gateway under mitmweb, with the user's own value for an option llmtap sets itself (web_open_browser)."""
    # No display: mitmweb finds no browser to open and says so, whatever the machine has installed.
    env = {name: value for name, value in os.environ.items() if name not in ("DISPLAY", "WAYLAND_DISPLAY")}
    args = ("--web", "--", "--set", "web_open_browser=true", "--set", f"web_port={free_port()}")
    gw = start_gateway(tmp_path_factory.mktemp("web"), mock_provider, env=env, args=args)
    yield gw
    gw.stop()


def chat_call(gateway: Gateway, content: str) -> str:
    result = curl(f"{gateway.base_url}/chat/completions", "-H", "Content-Type: application/json",
                  "-d", json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}))
    assert result.status == 200
    gateway.row(result.headers["helicone-id"])  # the call has finished: its comment is written
    return result.headers["helicone-id"]


def test_the_users_own_set_of_an_option_llmtap_sets_wins(web_gateway):
    web = Mitmweb(web_gateway)
    assert web.option("web_open_browser") is True
    assert "Received multiple values" not in web_gateway.output()


def test_a_users_set_replaces_llmtaps_value_in_either_spelling():
    config = load_config(None)
    args = mitmproxy_args(config, None, True, ["--set", "web_open_browser=true", "--set=web_columns=path"])
    sets = [value for flag, value in zip(args, args[1:], strict=False) if flag == "--set"]
    assert "web_open_browser=false" not in sets and not [s for s in sets if s.startswith("web_columns=")]
    assert args[-3:] == ["--set", "web_open_browser=true", "--set=web_columns=path"]
    assert "store_streamed_bodies=true" in sets  # what the user did not set stays llmtap's

    by_flag = mitmproxy_args(config, None, True, ["--web-open-browser", "--no-upstream-cert"])
    assert not [s for s in by_flag if s.startswith(("web_open_browser=", "upstream_cert="))]


def test_the_flow_list_shows_each_calls_comment(web_gateway):
    web = Mitmweb(web_gateway)
    chat_call(web_gateway, "a comment column")
    assert "comment" in web.option("web_columns")
    comments = [flow["comment"] for flow in web.get("flows.json")]
    assert any(re.fullmatch(r"\$\S+ · \d+→\d+ tok · gpt-4o-mini\S* · [\d,]+ ms", c) for c in comments), comments


def test_the_status_bar_address_is_the_proxy_listener(web_gateway):
    web = Mitmweb(web_gateway)
    # mitmweb's status bar shows listen_host:listen_port ("*:8080" when unset), not the modes' own addresses.
    assert (web.option("listen_host"), web.option("listen_port")) == ("127.0.0.1", web_gateway.proxy_port)
    listening = {spec: server["listen_addrs"] for spec, server in web.get("state.json")["servers"].items()}
    assert listening[f"regular@127.0.0.1:{web_gateway.proxy_port}"] == [["127.0.0.1", web_gateway.proxy_port]]


@pytest.mark.skipif(not CHROMIUM.exists() or shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_what_a_person_sees_in_mitmweb(web_gateway, tmp_path):
    """The page itself, in a real browser: the comment column of the flow list and the status bar's address.
    (LLMTAP_SCREENSHOT=file.png keeps the screenshot, to look at.)"""
    sync_api = pytest.importorskip("playwright.sync_api")
    web = Mitmweb(web_gateway)
    chat_call(web_gateway, "seen in a browser")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 700})
            page.goto(f"{web.url}?token={web.token}")
            page.wait_for_selector("text=/\\$[0-9.]+ · \\d+→\\d+ tok · gpt-4o-mini/", timeout=15_000)
            page.screenshot(path=os.environ.get("LLMTAP_SCREENSHOT", tmp_path / "mitmweb.png"))
            footer = page.inner_text("footer")
        finally:
            browser.close()
    assert f"127.0.0.1:{web_gateway.proxy_port}" in footer and "*:8080" not in footer
