"""The response cache under issue 8: one credential never gets another's answer, identical calls in flight make one
upstream call, one huge answer cannot blow the cache's byte bound, and a broken cache file stops start-up clearly.

Every case goes through the real gateway process and real clients (curl, the openai SDK).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from conftest import curl

CACHE_ON = "Helicone-Cache-Enabled: true"


def cached_call_through_proxy(gateway, question: str, *headers: str):
    """curl through the proxy way in to OpenAI with the cache on and only the credentials in `headers`."""
    extra = [arg for header in headers for arg in ("-H", header)]
    return curl("--proxy", gateway.proxy_url, "--cacert", str(gateway.ca_cert),
                "https://api.openai.com/v1/chat/completions", "-H", "Content-Type: application/json",
                "-H", CACHE_ON, *extra,
                "-d", json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]}))


def upstream_calls(mock_provider, content: str) -> list[dict]:
    return [r for r in mock_provider.requests()
            if isinstance(r["body"], dict) and r["body"].get("messages", [{}])[-1].get("content") == content]


def basic(user: str, password: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_and_raw_token_callers_never_share_cached_answers(gateway, mock_provider):
    for name, first, second in [
        ("basic", basic("ann", "pw-ann"), basic("bob", "pw-bob")),
        ("raw token", "Authorization: raw-token-ann-0001", "Authorization: raw-token-bob-0002"),
        ("cookie", "Cookie: session=ann", "Cookie: session=bob"),
    ]:
        question = f"cache isolation for {name}"
        mock_provider.script(*[{"any_auth": True}] * 2)  # an upstream that takes these credentials; two calls reach it
        statuses = [cached_call_through_proxy(gateway, question, header).headers["helicone-cache"]
                    for header in (first, second, second, first)]
        assert statuses == ["MISS", "MISS", "HIT", "HIT"], name
        assert len(upstream_calls(mock_provider, question)) == 2, name


def test_gateway_callers_whose_credentials_llmtap_replaces_still_never_share_answers(gateway, mock_provider):
    # No gateway keys: llmtap sends its own provider key in place of whatever the caller sent.
    question = "cache isolation on the gateway way in"
    url = f"http://127.0.0.1:{gateway.gateway_port}/v1/chat/completions"
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}]})
    statuses = [curl(url, "-H", "Content-Type: application/json", "-H", CACHE_ON, "-H", header, "-d", body)
                .headers["helicone-cache"] for header in (basic("ann", "pw-ann"), basic("bob", "pw-bob"),
                                                          basic("bob", "pw-bob"))]
    assert statuses == ["MISS", "MISS", "HIT"]
    assert len(upstream_calls(mock_provider, question)) == 2


def test_callers_without_a_credential_share_only_the_no_credential_namespace(gateway, mock_provider):
    question = "cache without any credential"
    mock_provider.script(*[{"any_auth": True}] * 2)
    statuses = [cached_call_through_proxy(gateway, question, *headers).headers["helicone-cache"]
                for headers in ((), (), ("Authorization: Bearer sk-someone",))]
    assert statuses == ["MISS", "HIT", "MISS"]
    assert len(upstream_calls(mock_provider, question)) == 2



def test_credential_fingerprint_names_every_credential_and_never_nothing():
    from llmtap.credentials import NO_CREDENTIAL, credential_fingerprint
    from mitmproxy.test import tutils

    def request(*headers: tuple[str, str], path: str = "/v1/chat/completions"):
        req = tutils.treq(path=path.encode())
        for name in ("authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization", "cookie"):
            req.headers.pop(name, None)
        for name, value in headers:
            req.headers.add(name, value)
        return req

    assert credential_fingerprint(request()) == NO_CREDENTIAL
    names = [credential_fingerprint(r) for r in (
        request(("Authorization", "Basic YTpi")), request(("Authorization", "Basic YTpj")),
        request(("Authorization", "raw-token")), request(("x-goog-api-key", "raw-token")),
        request(("Proxy-Authorization", "Basic YTpi")), request(("Cookie", "s=1")),
        request(path="/v1/models?key=g-1"), request(path="/v1/models?KEY=g-2"),
        request(("Authorization", "Bearer a"), ("Cookie", "s=1")),
    )]
    assert len(set(names)) == len(names) and NO_CREDENTIAL not in names
    assert credential_fingerprint(request(("authorization", "Basic YTpi"))) == names[0]  # header case does not count
    assert "YTpi" not in names[0]


def ask_cached(gateway, question: str):
    import openai

    client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}],
        extra_headers={"Helicone-Cache-Enabled": "true"})
    return raw.parse().choices[0].message.content, raw.headers


def test_100_concurrent_identical_calls_make_one_upstream_call(gateway, mock_provider):
    question = "one upstream call for a hundred"
    mock_provider.script({"delay_ms": 500})  # the first call is still on its way when the others arrive
    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(lambda _: ask_cached(gateway, question), range(100)))
    assert len(upstream_calls(mock_provider, question)) == 1
    assert {content for content, _ in results} == {f"Mock reply to: {question}"}
    ids = ",".join(f"'{headers['helicone-id']}'" for _, headers in results)
    rows = gateway.rows(f"request_id IN ({ids})", count=100)
    assert sorted(r["cache_status"] for r in rows) == ["HIT"] * 99 + ["MISS"]
    assert all(r["status"] == 200 for r in rows)


def cache_stats(gateway) -> str:
    return subprocess.run([sys.executable, "-m", "llmtap.cli", "cache", "stats", "--config", str(gateway.config_path)],
                          cwd=gateway.workdir, capture_output=True, text=True, timeout=60).stdout


def test_an_answer_over_an_eighth_of_the_cache_bound_is_not_stored(fresh_gateway, mock_provider):
    gateway = fresh_gateway({"cache": {"max_bytes": "1 MiB"}})
    for question, huge_bytes in (("a 200 KB answer", 200_000), ("a 3 MB answer", 3_000_000)):
        mock_provider.script({"huge_body_bytes": huge_bytes}, {"huge_body_bytes": huge_bytes})
        statuses = [ask_cached(gateway, question)[1]["helicone-cache"] for _ in range(2)]
        assert statuses == ["MISS", "MISS"], question
        assert len(upstream_calls(mock_provider, question)) == 2
    assert [ask_cached(gateway, "a small answer")[1]["helicone-cache"] for _ in range(2)] == ["MISS", "HIT"]
    size_line = next(line for line in cache_stats(gateway).splitlines() if line.startswith("size"))
    used = int(size_line.split()[1].replace(",", ""))
    assert used < 1024 * 1024 // 8


def test_when_the_first_call_fails_the_waiting_calls_go_upstream_themselves(gateway, mock_provider):
    import openai

    question = "the leader fails"
    mock_provider.script({"delay_ms": 400, "status": 503})

    def call(_):
        try:
            return ask_cached(gateway, question)[1]["helicone-cache"]
        except openai.APIStatusError as e:
            return e.status_code

    with ThreadPoolExecutor(max_workers=5) as pool:
        outcomes = list(pool.map(call, range(5)))
    assert sorted(map(str, outcomes)) == ["503", "MISS", "MISS", "MISS", "MISS"]
    assert len(upstream_calls(mock_provider, question)) == 5


def test_a_garbage_cache_file_stops_start_up_with_a_message_naming_it(tmp_path, mock_provider):
    from conftest import free_ports, start_gateway

    cache_db = tmp_path / "data" / "llmtap-cache" / "cache.db"  # where the default cache.path puts it
    cache_db.parent.mkdir(parents=True)
    cache_db.write_bytes(b"this is not a SQLite database\n" * 1000)
    config = tmp_path / "llmtap.yaml"
    proxy_port, gateway_port = free_ports(2)
    config.write_text(f"listen: {{proxy: '127.0.0.1:{proxy_port}', gateway: '127.0.0.1:{gateway_port}', dashboard: 'off'}}\n"
                      "certs: certs\nstorage: {path: data/llmtap.duckdb}\n")
    defaults_home = tmp_path / "xdg-data"  # where the built-in defaults would keep a log and a cache
    result = subprocess.run([sys.executable, "-m", "llmtap.cli", "start", "--config", str(config)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "XDG_DATA_HOME": str(defaults_home)})
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output
    # mitmproxy goes back to the option's default when start-up fails: that is this config, not the built-in one
    assert not defaults_home.exists()
    message = next((line for line in output.splitlines() if "cache.db" in line), output)
    assert str(cache_db.resolve()) in message and "llmtap cache clear" in message

    cleared = subprocess.run([sys.executable, "-m", "llmtap.cli", "cache", "clear", "--config", str(config)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert cleared.returncode == 0 and "unreadable" in cleared.stdout
    gateway = start_gateway(tmp_path, mock_provider)  # the same cache directory, now empty: starts and caches
    try:
        assert [ask_cached(gateway, "after a cache reset")[1]["helicone-cache"] for _ in range(2)] == ["MISS", "HIT"]
    finally:
        gateway.stop()
