"""Stopping llmtap (SIGTERM, Ctrl-C) loses no call: it stops taking new ones at once, lets those in flight finish
within `shutdown.drain_s`, records any it had to cut as cut, and exits 0."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import threading
import time

import openai
import pytest

from conftest import start_mock_provider, stop


@pytest.fixture
def mocks():
    """Mock providers of the test's own (started with the given options), stopped after it."""
    started = []

    def start(*args: str):
        mock = start_mock_provider(*args)
        started.append(mock)
        return mock

    yield start
    for mock in started:
        stop(mock.process)


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_sigterm_mid_burst_finishes_calls_in_flight_and_logs_every_call_the_provider_saw(fresh_gateway, mocks):
    mock = mocks("--latency-ms", "1000")  # each answer takes a second
    gw = fresh_gateway(mock=mock)
    outcomes: dict[int, object] = {}
    signalled = threading.Event()

    async def burst() -> None:
        client = openai.AsyncOpenAI(base_url=gw.base_url, api_key="sk-x", max_retries=0, timeout=30)

        async def one(i: int) -> None:
            # 200 calls over 4 s; the signal comes in the middle, even when a loaded machine makes the gateway lag
            # a second or two behind the client (it came after the last call had been sent, once in a few CI runs)
            await asyncio.sleep(i * 0.02)
            try:
                answer = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": f"burst call {i}"}])
                outcomes[i] = answer.choices[0].message.content
            except openai.APIStatusError as e:
                outcomes[i] = e.status_code
            except openai.APIConnectionError:
                outcomes[i] = "no connection"

        try:
            await asyncio.gather(*(one(i) for i in range(200)))
        finally:
            await client.close()

    def sigterm_mid_burst() -> None:
        while len(mock.requests()) < 40:
            time.sleep(0.02)
        gw.process.send_signal(signal.SIGTERM)
        signalled.set()

    threading.Thread(target=sigterm_mid_burst, daemon=True).start()
    started = time.monotonic()
    asyncio.run(burst())
    assert signalled.is_set()
    assert refuses_connections(gw.gateway_port) and refuses_connections(gw.proxy_port)
    assert gw.process.wait(20) == 0
    assert time.monotonic() - started < 10 + 5  # well within the drain bound

    seen_by_provider = {r["body"]["messages"][-1]["content"] for r in mock.requests()}
    answered = {i for i, outcome in outcomes.items() if outcome == f"Mock reply to: burst call {i}"}
    refused = {i for i, outcome in outcomes.items() if outcome in (503, "no connection")}
    assert answered and refused, outcomes  # the signal came mid-burst
    assert answered | refused == set(range(200)), {i: o for i, o in outcomes.items() if i not in answered | refused}
    # Every call the provider saw was answered (none was in flight longer than the drain allows) ...
    assert seen_by_provider == {f"burst call {i}" for i in answered}
    # ... and has its row, with the answer the client got.
    rows = gw.rows("status = 200", count=len(answered))
    assert len(rows) == len(answered)
    assert {json.loads(r["request_body"])["messages"][-1]["content"] for r in rows} == seen_by_provider
    # Calls refused while stopping never reached the provider; those refused with a 503 have a row saying why.
    for row in gw.rows("status = 503"):
        assert row["error"].startswith("llmtap_shutting_down")
    assert "rows written" in gw.output().splitlines()[-1]


def test_a_call_slower_than_the_drain_is_cut_and_recorded_as_cut(fresh_gateway, mocks):
    mock = mocks("--chunk-delay-ms", "700")  # a stream that takes several seconds
    gw = fresh_gateway({"shutdown": {"drain_s": 1}}, mock=mock)
    mock.script({"hang": True, "model": "gpt-4o"})  # a plain call whose answer never comes
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-x", max_retries=0, timeout=30)
    results: dict[str, object] = {}
    first_chunk = threading.Event()

    def hanging_call() -> None:
        try:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hang"}])
            results["hang"] = "answered"
        except openai.APIError as e:
            results["hang"] = type(e).__name__

    def slow_stream() -> None:
        try:
            stream = client.chat.completions.create(
                model="gpt-4o-mini", stream=True,
                messages=[{"role": "user", "content": "a long answer that streams slowly word by word"}])
            for _ in stream:
                first_chunk.set()
            results["stream"] = "finished"
        except openai.APIError as e:
            results["stream"] = type(e).__name__

    callers = [threading.Thread(target=hanging_call), threading.Thread(target=slow_stream)]
    for caller in callers:
        caller.start()
    assert first_chunk.wait(15)
    while len(mock.requests()) < 2:
        time.sleep(0.02)
    signalled = time.monotonic()
    gw.process.send_signal(signal.SIGINT)  # Ctrl-C drains the same way
    assert gw.process.wait(20) == 0
    assert time.monotonic() - signalled < 1 + 4
    for caller in callers:
        caller.join(10)
    assert results == {"hang": "APIConnectionError", "stream": "APIConnectionError"}

    hung = gw.rows("model_requested = 'gpt-4o'")[0]
    assert hung["status"] is None  # the client never got a status
    assert "cut by llmtap's shutdown" in hung["error"] and "drain_s (1 s)" in hung["error"]
    streamed = gw.rows("model_requested = 'gpt-4o-mini'")[0]
    assert streamed["status"] == 200 and streamed["stream"] is True  # the client had its 200 and part of the answer
    assert "cut by llmtap's shutdown" in streamed["error"]
    assert "cut 2 calls still in flight after 1 s" in gw.output()


def test_a_second_signal_cuts_the_drain_short(fresh_gateway, mocks):
    mock = mocks()
    gw = fresh_gateway(mock=mock)  # the default drain: 10 s
    mock.script({"hang": True})
    caller = threading.Thread(target=lambda: pytest.raises(
        openai.APIConnectionError, openai.OpenAI(base_url=gw.base_url, api_key="sk-x", max_retries=0).chat.completions
        .create, model="gpt-4o-mini", messages=[{"role": "user", "content": "hang"}]))
    caller.start()
    while not mock.requests():
        time.sleep(0.02)
    gw.process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + 10
    while "llmtap: stopping: new calls are refused" not in gw.output():  # the first signal has begun the drain
        assert time.monotonic() < deadline, gw.output()
        time.sleep(0.02)
    signalled = time.monotonic()
    gw.process.send_signal(signal.SIGINT)
    assert gw.process.wait(20) == 0
    assert time.monotonic() - signalled < 4
    caller.join(10)
    assert "cut by llmtap's shutdown" in gw.rows()[0]["error"]
