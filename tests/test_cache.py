"""Helicone's response cache through llmtap: instant, free hits that never leak across keys."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import anthropic
import openai
import pytest
from llmtap.cache_store import CacheStore
from llmtap.config import parse_config
from llmtap.money import format_usd

from conftest import curl

CACHE_ON = {"Helicone-Cache-Enabled": "true"}


def client(gateway, api_key="k") -> openai.OpenAI:
    return _client(gateway.base_url, api_key)


@functools.cache
def _client(base_url: str, api_key: str) -> openai.OpenAI:
    """One client per gateway and key, reused: making one costs ~70 ms, and some tests here make hundreds of calls."""
    return openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0)


def ask(gateway, content: str, headers: dict | None = None, api_key="k", **params):
    """One cache-enabled chat call; returns (completion, response headers)."""
    raw = client(gateway, api_key).chat.completions.with_raw_response.create(
        model=params.pop("model", "gpt-4o-mini"), messages=[{"role": "user", "content": content}],
        extra_headers={**CACHE_ON, **(headers or {})}, **params)
    return raw.parse(), raw.headers


def upstream_calls(mock_provider, content: str) -> int:
    return sum(1 for r in mock_provider.requests()
               if isinstance(r["body"], dict) and r["body"].get("messages", [{}])[-1].get("content") == content)


def test_seed_cache_table(gateway, mock_provider):
    question = "What is the capital of France?"
    mock_provider.script({"delay_ms": 500})  # the provider takes half a second; a hit must not
    first, first_headers = ask(gateway, question)
    second, second_headers = ask(gateway, question)
    assert (first_headers["helicone-cache"], second_headers["helicone-cache"]) == ("MISS", "HIT")
    assert second.choices[0].message.content == first.choices[0].message.content
    assert upstream_calls(mock_provider, question) == 1
    assert ask(gateway, question, model="gpt-4o")[1]["helicone-cache"] == "MISS"  # different model
    assert ask(gateway, question, temperature=0.7)[1]["helicone-cache"] == "MISS"  # different temperature

    miss = gateway.row(first_headers["helicone-id"])
    hit = gateway.row(second_headers["helicone-id"])
    assert (miss["cache_status"], hit["cache_status"]) == ("MISS", "HIT")
    assert hit["cost_usd"] == 0 and hit["cost_saved_usd"] == miss["cost_usd"] > 0 and hit["attempts"] == 0
    assert hit["output_tokens"] == miss["output_tokens"]
    assert miss["latency_ms"] >= 500 and hit["latency_ms"] < 100  # the hit never waited for the provider


def test_cache_control_max_age_is_how_long_the_gateway_keeps_the_answer(gateway, mock_provider):
    """The gateway stores the answer for exactly the `max-age` the client sent; that a lookup honours the expiry is
    tested with a clock moved by hand in unit/test_cache_unit.py, so no test here sleeps out a TTL."""
    question = "lives for 1234 s"
    ttl = {"Cache-Control": "max-age=1234"}
    sent_at = time.time()
    assert ask(gateway, question, ttl)[1]["helicone-cache"] == "MISS"
    answered_at = time.time()
    assert ask(gateway, question, ttl)[1]["helicone-cache"] == "HIT"
    assert upstream_calls(mock_provider, question) == 1

    def answers_alive_at(wall_time_s: float) -> int:
        """What the gateway's cache directory holds unexpired at `wall_time_s`, read through its own store."""
        cache_dir = gateway.workdir / "data" / "llmtap-cache"
        store = CacheStore(cache_dir, parse_config({}, None).cache_max_bytes, clock=lambda: wall_time_s)
        try:
            return store.stats()["answers"]
        finally:
            store.close()

    # Every other answer in this module's cache lives a week (the default): only this one expires in between.
    assert answers_alive_at(sent_at + 1233) - answers_alive_at(answered_at + 1235) == 1


def test_key_order_and_white_space_do_not_matter(gateway):
    first = curl(f"{gateway.base_url}/chat/completions", "-H", "Helicone-Cache-Enabled: true",
                 "-d", '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "order"}], "temperature": 0}')
    second = curl(f"{gateway.base_url}/chat/completions", "-H", "Helicone-Cache-Enabled: true",
                  "-d", '{ "temperature":0,"messages":[{"content":"order","role":"user"}],\n"model":"gpt-4o-mini"}')
    assert (first.headers["helicone-cache"], second.headers["helicone-cache"]) == ("MISS", "HIT")
    assert second.json() == first.json()


def test_bucket_keeps_several_answers_and_serves_them_once_full(gateway, mock_provider):
    question = "bucket of three"
    bucket = {"Helicone-Cache-Bucket-Max-Size": "3"}
    # Three different answers from the provider (told apart by their reported cached tokens).
    mock_provider.script(*({"usage": {"prompt_tokens_details": {"cached_tokens": n}}} for n in (1, 2, 3)))
    filled = [ask(gateway, question, bucket) for _ in range(3)]
    assert [h["helicone-cache"] for _, h in filled] == ["MISS"] * 3
    assert [h["helicone-cache-bucket-idx"] for _, h in filled] == ["0", "1", "2"]
    served = [ask(gateway, question, bucket) for _ in range(12)]
    assert all(h["helicone-cache"] == "HIT" for _, h in served)
    assert upstream_calls(mock_provider, question) == 3
    answers = {c.usage.prompt_tokens_details.cached_tokens: h["helicone-cache-bucket-idx"] for c, h in served}
    assert set(answers) <= {1, 2, 3} and len(answers) >= 2  # 12 random picks from 3: one answer alone is ~1e-5


def test_seeds_are_namespaces(gateway, mock_provider):
    question = "seeded"
    assert ask(gateway, question, {"Helicone-Cache-Seed": "a"})[1]["helicone-cache"] == "MISS"
    assert ask(gateway, question, {"Helicone-Cache-Seed": "b"})[1]["helicone-cache"] == "MISS"
    assert ask(gateway, question, {"Helicone-Cache-Seed": "a"})[1]["helicone-cache"] == "HIT"
    assert ask(gateway, question)[1]["helicone-cache"] == "MISS"  # no seed is a namespace of its own
    assert upstream_calls(mock_provider, question) == 3


def test_ignore_keys_leave_body_keys_out_of_the_key(gateway):
    ignore = {"Helicone-Cache-Ignore-Keys": "user, metadata"}
    assert ask(gateway, "ignore some keys", ignore, user="alice")[1]["helicone-cache"] == "MISS"
    assert ask(gateway, "ignore some keys", ignore, user="bob")[1]["helicone-cache"] == "HIT"
    assert ask(gateway, "ignore some keys", user="carol")[1]["helicone-cache"] == "MISS"


def test_one_key_never_gets_another_keys_answer_on_the_proxy_way_in(gateway, mock_provider):
    question = "tenant isolation via proxy"
    program = textwrap.dedent(f"""
        import json, sys, openai
        headers = []
        for key in sys.argv[1:]:
            raw = openai.OpenAI(api_key=key, max_retries=0).chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{{"role": "user", "content": {question!r}}}],
                extra_headers={{"Helicone-Cache-Enabled": "true"}})
            headers.append(raw.headers["helicone-cache"])
        print(json.dumps(headers))
    """)
    result = subprocess.run([sys.executable, "-c", program, "sk-tenant-a", "sk-tenant-b", "sk-tenant-a"],
                            env=gateway.proxy_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["MISS", "MISS", "HIT"]
    keys = [r["headers"]["authorization"] for r in mock_provider.requests()
            if r["body"].get("messages", [{}])[-1].get("content") == question]
    assert keys == ["Bearer sk-tenant-a", "Bearer sk-tenant-b"]


def test_one_gateway_key_never_gets_anothers_answer(fresh_gateway, mock_provider):
    gateway = fresh_gateway({"gateway": {"keys": [{"owner": "alice", "key": "gw-alice"}, {"owner": "bob", "key": "gw-bob"}]}})
    question = "tenant isolation via gateway"
    statuses = [ask(gateway, question, api_key=key)[1]["helicone-cache"] for key in ("gw-alice", "gw-bob", "gw-bob")]
    assert statuses == ["MISS", "MISS", "HIT"]
    assert upstream_calls(mock_provider, question) == 2


def test_stream_fills_the_cache_and_hits_replay_as_streams(gateway, mock_provider):
    question = "stream me from the cache"
    texts, statuses = [], []
    for _ in range(2):
        with client(gateway).chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": question}], extra_headers=CACHE_ON,
        ) as response:
            statuses.append(response.headers["helicone-cache"])
            chunks = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
        texts.append("".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]))
        assert all(c["choices"] for c in chunks)  # no usage chunk: this client did not ask for one
    assert statuses == ["MISS", "HIT"] and texts[0] == texts[1] == f"Mock reply to: {question}"
    # The streaming helper, asking for usage, gets it from the replay; an unstreamed request hits the same entry.
    with client(gateway).chat.completions.stream(
        model="gpt-4o-mini", messages=[{"role": "user", "content": question}], extra_headers=CACHE_ON,
        stream_options={"include_usage": True},
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == texts[0] and final.usage.completion_tokens == len(texts[0].split())
    completion, headers = ask(gateway, question)
    assert headers["helicone-cache"] == "HIT" and completion.choices[0].message.content == texts[0]
    assert upstream_calls(mock_provider, question) == 1


def test_anthropic_stream_hit_is_a_well_formed_messages_stream(gateway, mock_provider):
    question = "claude from the cache"
    results = []
    for _ in range(2):
        with anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key="k", max_retries=0).messages.stream(
            model="claude-sonnet-4-6", max_tokens=100, messages=[{"role": "user", "content": question}],
            extra_headers=CACHE_ON,
        ) as stream:
            text = "".join(stream.text_stream)
            results.append((stream.response.headers["helicone-cache"], text, stream.get_final_message().usage))
    assert [r[0] for r in results] == ["MISS", "HIT"]
    assert results[0][1] == results[1][1] == f"Mock reply to: {question}"
    assert results[0][2].output_tokens == results[1][2].output_tokens
    assert results[0][2].input_tokens == results[1][2].input_tokens
    assert upstream_calls(mock_provider, question) == 1


def test_errors_are_not_stored(gateway, mock_provider):
    question = "fails first"
    mock_provider.script({"status": 500})
    with pytest.raises(openai.InternalServerError):
        ask(gateway, question)
    assert ask(gateway, question)[1]["helicone-cache"] == "MISS"
    assert ask(gateway, question)[1]["helicone-cache"] == "HIT"


def test_concurrent_identical_requests_are_all_answered(gateway):
    question = "everyone at once"
    with ThreadPoolExecutor(max_workers=10) as pool:
        results = list(pool.map(lambda _: ask(gateway, question), range(10)))
    assert {c.choices[0].message.content for c, _ in results} == {f"Mock reply to: {question}"}
    assert ask(gateway, question)[1]["helicone-cache"] == "HIT"
    rows = gateway.rows("request_id IN ({})".format(",".join(f"'{h['helicone-id']}'" for _, h in results)), count=10)
    assert len(rows) == 10 and all(r["status"] == 200 for r in rows)


def test_cache_survives_a_restart_and_the_command_line_reads_and_clears_it(fresh_gateway, mock_provider):
    gateway = fresh_gateway()
    question = "remember me"
    assert ask(gateway, question)[1]["helicone-cache"] == "MISS"
    gateway.restart()
    assert ask(gateway, question)[1]["helicone-cache"] == "HIT"
    gateway.rows(count=2)

    def llmtap(*args):
        result = subprocess.run([sys.executable, "-m", "llmtap.cli", "cache", *args, "--config", str(gateway.config_path)],
                                cwd=gateway.workdir, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    stats = llmtap("stats")
    assert "1 under 1 keys" in stats and "1 hits, 1 misses (hit rate 50.0%)" in stats
    ((saved,),) = gateway.query("SELECT sum(cost_saved_usd) FROM requests")
    assert saved > 0 and stats.rstrip().endswith(f"saved {format_usd(saved)}")  # money as everywhere else
    assert "removed 0 cached answers" in llmtap("clear", "--older-than", "1h")
    assert ask(gateway, question)[1]["helicone-cache"] == "HIT"
    assert "removed 1 cached answers" in llmtap("clear")
    # A running gateway drops what it keeps in memory within half a second of a clear (cache.SYNC_INTERVAL_S).
    deadline = time.monotonic() + 5
    while (status := ask(gateway, question)[1]["helicone-cache"]) == "HIT" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status == "MISS"
    assert upstream_calls(mock_provider, question) == 2


def test_cache_stays_within_its_size_bound_least_recently_used_out_first(fresh_gateway, mock_provider):
    gateway = fresh_gateway({"cache": {"max_bytes": "256 KiB"}})
    padding = {"usage": {"padding": "x" * 8000}}  # makes each stored answer about 8 KB
    ask(gateway, "keep me warm")
    for i in range(60):  # about 480 KB of answers through a 256 KiB cache
        mock_provider.script(padding)
        ask(gateway, f"filler {i}")
        assert ask(gateway, "keep me warm")[1]["helicone-cache"] == "HIT"  # used all along: never evicted
    assert ask(gateway, "filler 0")[1]["helicone-cache"] == "MISS"  # least recently used: evicted
    assert ask(gateway, "filler 59")[1]["helicone-cache"] == "HIT"
    stats = subprocess.run([sys.executable, "-m", "llmtap.cli", "cache", "stats", "--config", str(gateway.config_path)],
                           cwd=gateway.workdir, capture_output=True, text=True, timeout=60).stdout
    size_line = next(line for line in stats.splitlines() if line.startswith("size"))
    used, limit = (int(n.replace(",", "")) for n in size_line.split()[1:4:2])
    assert limit == 256 * 1024 and limit * 0.5 < used <= limit


def test_hit_rows_make_the_weekly_saving_one_query(gateway):
    ask(gateway, "saving query")
    _, headers = ask(gateway, "saving query")
    gateway.row(headers["helicone-id"])
    ((saved,),) = gateway.query("SELECT sum(cost_saved_usd) FROM requests "
                                "WHERE cache_status = 'HIT' AND created_at > now() - INTERVAL 7 DAY")
    assert isinstance(saved, Decimal) and saved > 0


def test_a_stream_cut_short_is_not_stored(gateway, mock_provider):
    mock_provider.script({"cut_after": 3})
    client_ = client(gateway)
    with pytest.raises(openai.APIError):
        for _ in client_.chat.completions.create(model="gpt-4o-mini", stream=True, extra_headers=CACHE_ON,
                                                 messages=[{"role": "user", "content": "half an answer"}]):
            pass
    with client_.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "half an answer"}], extra_headers=CACHE_ON,
    ) as response:
        assert response.headers["helicone-cache"] == "MISS"
        assert any("[DONE]" in line for line in response.iter_lines())
