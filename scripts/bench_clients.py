"""The benchmark's clients, the same for every target: sequential keep-alive calls (http.client, the least a client can
add), concurrent keep-alive load (asyncio + aiohttp in several client processes, so the client is not the bottleneck),
and concurrent streams whose every event's arrival time is kept.

A `Target` says how to reach one way to the provider: straight to a port (the mock, a reverse proxy, llmtap's gateway)
or through an HTTPS proxy that intercepts TLS to api.openai.com (the client trusts the proxy's CA).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import multiprocessing
import ssl
import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

PATH = "/v1/chat/completions"
PROXIED_HOST = "api.openai.com"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "benchmark the gateway overhead"}]}
STREAM_BODY = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}


@dataclass(frozen=True)
class Target:
    """One way to the provider. `proxy_ca` set: `port` is an HTTPS proxy, the client tunnels to api.openai.com
    through it and trusts that CA file; otherwise the client talks plain HTTP to `port`."""

    name: str
    port: int
    proxy_ca: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://{PROXIED_HOST}{PATH}" if self.proxy_ca else f"http://127.0.0.1:{self.port}{PATH}"


@dataclass
class LoadResult:
    """What concurrent clients saw in the measured window: completed calls per second and their latency."""

    calls_per_s: float
    p50_ms: float
    p99_ms: float
    calls: int


@dataclass
class StreamTrace:
    """One stream of a concurrent burst: time to the first content event, the longest gap between events, and
    whether it ended properly ([DONE] seen)."""

    ttft_ms: float | None
    max_gap_ms: float
    finished: bool


# ---------------------------------------------------------------- sequential (one keep-alive connection)

def sequential_ms(target: Target, calls: int) -> list[float]:
    """Latency in ms of `calls` unstreamed calls one after another on one keep-alive connection (after one warm-up
    call, which also fills a cache)."""
    conn = _connection(target)
    payload = json.dumps(BODY).encode()
    try:
        _timed_call(conn, target, payload)
        return [_timed_call(conn, target, payload) for _ in range(calls)]
    finally:
        conn.close()


def sequential_streams_ms(target: Target, calls: int) -> tuple[list[float], list[float]]:
    """Time to the first content event and total time, in ms, of `calls` streamed calls one after another on one
    keep-alive connection (after one warm-up call)."""
    conn = _connection(target)
    payload = json.dumps(STREAM_BODY).encode()
    ttft, total = [], []
    try:
        _timed_stream(conn, target, payload)
        for _ in range(calls):
            first_ms, all_ms = _timed_stream(conn, target, payload)
            ttft.append(first_ms)
            total.append(all_ms)
        return ttft, total
    finally:
        conn.close()


def _connection(target: Target) -> http.client.HTTPConnection:
    if target.proxy_ca is None:
        return http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
    conn = http.client.HTTPSConnection("127.0.0.1", target.port, timeout=30,
                                       context=ssl.create_default_context(cafile=target.proxy_ca))
    conn.set_tunnel(PROXIED_HOST, 443)
    return conn


def _send(conn: http.client.HTTPConnection, target: Target, payload: bytes) -> http.client.HTTPResponse:
    conn.request("POST", PATH, payload, {**HEADERS, **target.headers})
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"{target.name}: HTTP {response.status}: {response.read()[:200]!r}")
    return response


def _timed_call(conn: http.client.HTTPConnection, target: Target, payload: bytes) -> float:
    started = time.perf_counter()
    _send(conn, target, payload).read()
    return (time.perf_counter() - started) * 1000


def _timed_stream(conn: http.client.HTTPConnection, target: Target, payload: bytes) -> tuple[float, float]:
    started = time.perf_counter()
    response = _send(conn, target, payload)
    first = None
    while line := response.readline():
        if first is None and has_content(line):
            first = time.perf_counter()
    ended = time.perf_counter()
    if first is None:
        raise RuntimeError(f"{target.name}: a stream without content")
    return (first - started) * 1000, (ended - started) * 1000


def has_content(line: bytes) -> bool:
    """Whether an SSE line is a chat.completion.chunk carrying some reply text (not the role-only first event)."""
    if not line.startswith(b"data: {"):
        return False
    choices = json.loads(line[6:]).get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


# ---------------------------------------------------------------- concurrent load (client processes)

def load(target: Target, clients: int, duration_s: float | None = None, calls: int | None = None,
         processes: int = 2) -> LoadResult:
    """Run `clients` concurrent keep-alive clients, spread over `processes` client processes (each an asyncio loop).
    Each client first makes one call (connecting: not counted); then they call for `duration_s` (counting the calls
    that end in that window), or until `calls` calls have been made."""
    processes = min(processes, clients)
    context = multiprocessing.get_context("fork")  # starts in milliseconds; the parent runs no threads meanwhile
    results: Any = context.Queue()
    jobs = [context.Process(target=_load_job, daemon=True, args=(
        target, clients // processes + (i < clients % processes), duration_s,
        None if calls is None else calls // processes + (i < calls % processes), results)) for i in range(processes)]
    for job in jobs:
        job.start()
    try:
        outcomes = [results.get(timeout=(duration_s or 3600) + 120) for _ in jobs]
    finally:
        for job in jobs:
            job.join(10)
            if job.is_alive():
                job.kill()
    if errors := [o for o in outcomes if isinstance(o, str)]:
        raise RuntimeError(f"{target.name}: {errors[0]}")
    latencies = [ms for o in outcomes for ms in o[0]]
    if not latencies:
        raise RuntimeError(f"{target.name}: no call completed with {clients} clients")
    calls_per_s = sum(len(o[0]) / o[1] for o in outcomes)  # the processes' windows nearly coincide: rates add
    return LoadResult(calls_per_s, statistics.median(latencies), p99(latencies), len(latencies))


def _load_job(target: Target, clients: int, duration_s: float | None, calls: int | None, results: Any) -> None:
    try:
        results.put(asyncio.run(_load_clients(target, clients, duration_s, calls)))
    except Exception as error:  # the parent reports it with the target's name
        results.put(f"{type(error).__name__}: {error}")


async def _load_clients(target: Target, clients: int, duration_s: float | None,
                        calls: int | None) -> tuple[list[float], float]:
    """Latencies of the calls counted, and the length of the window they were counted in (s)."""
    import aiohttp  # in the client processes only

    latencies: list[float] = []
    left = [calls if calls is not None else -1]  # -1: no limit
    window = [0.0, float("inf")]  # opens once every client has connected
    ssl_context = ssl.create_default_context(cafile=target.proxy_ca) if target.proxy_ca else None
    proxy = f"http://127.0.0.1:{target.port}" if target.proxy_ca else None
    payload = json.dumps(BODY).encode()
    headers = {**HEADERS, **target.headers}

    async def call(session: aiohttp.ClientSession) -> float:
        started = time.perf_counter()
        async with session.post(target.url, data=payload, headers=headers, proxy=proxy) as response:
            await response.read()
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
        return (time.perf_counter() - started) * 1000

    async def client(session: aiohttp.ClientSession, connected: asyncio.Event) -> None:
        await connected.wait()
        while time.perf_counter() < window[1] and left[0] != 0:
            left[0] -= 1
            latency_ms = await call(session)
            if time.perf_counter() <= window[1]:
                latencies.append(latency_ms)

    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, ssl=ssl_context or True))
                for _ in range(clients)]
    try:
        await asyncio.gather(*(call(session) for session in sessions))  # connect (and TLS) before measuring
        connected = asyncio.Event()
        tasks = [asyncio.create_task(client(session, connected)) for session in sessions]
        window[0] = time.perf_counter()
        window[1] = window[0] + duration_s if duration_s is not None else float("inf")
        connected.set()
        await asyncio.gather(*tasks)
        return latencies, min(window[1], time.perf_counter()) - window[0]
    finally:
        for session in sessions:
            await session.close()


# ---------------------------------------------------------------- concurrent streams

def stream_burst(target: Target, streams: int, timeout_s: float = 60) -> list[StreamTrace]:
    """Start `streams` streamed calls at once, each on its own connection; every event's arrival is timed."""
    return asyncio.run(_stream_burst(target, streams, timeout_s))


async def _stream_burst(target: Target, streams: int, timeout_s: float) -> list[StreamTrace]:
    import aiohttp

    payload = json.dumps(STREAM_BODY).encode()
    headers = {**HEADERS, **target.headers}
    connector = aiohttp.TCPConnector(limit=0, ssl=ssl.create_default_context(cafile=target.proxy_ca)
                                     if target.proxy_ca else True)
    proxy = f"http://127.0.0.1:{target.port}" if target.proxy_ca else None

    async def one(session: aiohttp.ClientSession) -> StreamTrace:
        started = time.perf_counter()
        ttft = None
        arrivals: list[float] = []
        finished = False
        try:
            async with session.post(target.url, data=payload, headers=headers, proxy=proxy) as response:
                async for line in response.content:
                    if not line.startswith(b"data: "):
                        continue
                    arrivals.append(time.perf_counter())
                    if ttft is None and has_content(line):
                        ttft = (arrivals[-1] - started) * 1000
                    finished = finished or line.startswith(b"data: [DONE]")
        except (aiohttp.ClientError, TimeoutError):
            finished = False
        gaps = [(b - a) * 1000 for a, b in zip(arrivals, arrivals[1:], strict=False)]
        return StreamTrace(ttft, max(gaps, default=0.0), finished)

    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return list(await asyncio.gather(*(one(session) for _ in range(streams))))


# ---------------------------------------------------------------- the mock's control API

def script_mock(mock_url: str, actions: list[dict[str, Any]]) -> None:
    """Queue actions for the mock's next provider calls (POST /_mock/script)."""
    request = urllib.request.Request(f"{mock_url}/_mock/script", json.dumps(actions).encode(),
                                     {"content-type": "application/json"}, method="POST")
    urllib.request.urlopen(request, timeout=10).read()


def reset_mock(mock_url: str) -> None:
    """Make the mock forget the calls it logged and any action no call consumed (DELETE /_mock/requests)."""
    urllib.request.urlopen(urllib.request.Request(f"{mock_url}/_mock/requests", method="DELETE"), timeout=10).read()


def p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.99 * len(ordered)) - 1))]
