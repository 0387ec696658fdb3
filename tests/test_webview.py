"""What a person sees in mitmweb: each LLM flow says what it was, and its bodies read as a conversation."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from datetime import UTC, datetime
from decimal import Decimal

import openai
from llmtap.record import CallRecord
from llmtap.webview import describe

from conftest import OPENAI_ENV_KEY, free_port


def web_get(port: int, token: str, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}?token={token}", timeout=10) as response:
        return json.loads(response.read())


def test_mitmweb_shows_a_summary_comment_and_a_chat_view(fresh_gateway, mock_provider):
    web_port = free_port()
    gateway = fresh_gateway(args=("--web", "--", "--set", f"web_port={web_port}", "--set", "web_host=127.0.0.1"))
    client = openai.OpenAI(base_url=gateway.base_url, api_key="k", max_retries=0)
    # 100 tokens in, 167 out at gpt-4o-mini's $0.15 / $0.60 per million: $0.0001152, which must not read $0.0001.
    mock_provider.script({"usage": {"prompt_tokens": 100, "completion_tokens": 167, "total_tokens": 267}})
    client.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "show me in mitmweb"}])
    for _ in client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": "stream in mitmweb"}]):
        pass
    gateway.rows(count=2)
    deadline = time.monotonic() + 10
    while not (token := re.search(r"token=([0-9a-f]+)", gateway.output())) and time.monotonic() < deadline:
        time.sleep(0.1)
    flows = web_get(web_port, token.group(1), "/flows")
    assert len(flows) == 2
    assert re.fullmatch(r"\$0\.000115 · 100→167 tok · gpt-4o-mini-2024-07-18 · [\d,]+ ms", flows[0]["comment"])
    for flow, text in zip(flows, ("show me in mitmweb", "stream in mitmweb"), strict=True):
        assert re.fullmatch(r"\$[0-9.]+ · \d+→\d+ tok · gpt-4o-mini-2024-07-18 · [\d,]+ ms", flow["comment"])
        response = web_get(web_port, token.group(1), f"/flows/{flow['id']}/response/content/auto.json")
        assert response["view_name"] == "LLM call"
        assert response["text"].endswith(f"[assistant]\n  Mock reply to: {text}")
        request = web_get(web_port, token.group(1), f"/flows/{flow['id']}/request/content/auto.json")
        assert f"[user]\n  {text}" in request["text"]
    first_request = web_get(web_port, token.group(1), f"/flows/{flows[0]['id']}/request/content/auto.json")
    assert first_request["text"].startswith("[system]\n  Be brief.\n[user]")
    # The provider key the gateway injected is not on show (under mitmweb it is never put on the flow at all).
    assert OPENAI_ENV_KEY not in json.dumps(flows)


def a_record(**columns) -> CallRecord:
    return CallRecord(request_id="r1", created_at=datetime.now(UTC), way="gateway", **columns)


def test_comment_reads_like_the_issue_example():
    record = a_record(model="gpt-4o-mini", input_tokens=1234, output_tokens=56, cost_usd=Decimal("0.00041"),
                      latency_ms=812.4)
    assert describe(record) == "$0.00041 · 1,234→56 tok · gpt-4o-mini · 812 ms"


def test_comment_says_when_the_price_is_unknown_and_why_a_call_failed():
    record = a_record(model=None, model_requested="gpt-5-nano", cost_usd=None, latency_ms=3.0, status=503,
                      error="server_error: overloaded")
    assert describe(record) == "$? · gpt-5-nano · 3 ms · 503 server_error: overloaded"


def test_comment_says_a_cache_hit_and_what_it_saved():
    record = a_record(model="gpt-4o-mini", input_tokens=10, output_tokens=5, cost_usd=Decimal(0),
                      cost_saved_usd=Decimal("0.0123"), latency_ms=1.2, cache_status="HIT")
    assert describe(record) == "$0 · 10→5 tok · gpt-4o-mini · 1 ms · cache HIT (saved $0.0123)"


def test_masking_a_sent_request_twice_changes_nothing():
    from llmtap.credentials import redact_secrets
    from mitmproxy.test import tutils

    request = tutils.treq(headers=[(b"authorization", b"Bearer sk-proj-0123456789abcdef"), (b"x-api-key", b"short")])
    redact_secrets(request)
    once = dict(request.headers)
    redact_secrets(request)
    assert dict(request.headers) == once
    assert once["authorization"] == "Bearer sk-…cdef (redacted by llmtap)" and once["x-api-key"] == "(redacted by llmtap)"
