"""The time llmtap's own code spends on one cache hit, hook by hook, without the network or mitmproxy's I/O.

Drives the real addons (the same list `llmtap start` runs) with mitmproxy's test flows in one process: one call fills
the cache, then every call is a hit served from memory. Prints the median time of each addon hook and their sum, the
"gateway time" llmtap adds to a hit. bench_overhead.py measures the same hits end to end, through sockets.

    .venv/bin/python scripts/bench_hit_path.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from llmtap.pipeline import make_addons
from mitmproxy import http
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow

BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "what the cache serves"}]}).encode()
ANSWER = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "from the cache"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
}).encode()
HOOKS = (("requestheaders", "request"), ("responseheaders", "response"))


async def one_call(addons: list, timings: dict[str, list[float]]) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.client_conn.proxy_mode = ProxyMode.parse("reverse:http://llmtap.gateway@8787")
    flow.request = http.Request.make("POST", "http://llmtap.gateway/v1/chat/completions", BODY, {
        "content-type": "application/json", "authorization": "Bearer k", "helicone-cache-enabled": "true"})
    for phase, hooks in enumerate(HOOKS):
        if phase == 1 and flow.response is None:  # a miss: the provider's answer
            flow.response = http.Response.make(200, ANSWER, {"content-type": "application/json"})
        for hook in hooks:
            for addon in addons:
                fn = getattr(addon, hook, None)
                if fn is None or (phase == 0 and flow.response is not None):
                    continue
                started = time.perf_counter()
                result = fn(flow)
                if inspect.isawaitable(result):
                    await result
                timings.setdefault(f"{type(addon).__name__}.{hook}", []).append(time.perf_counter() - started)
    return flow


async def call_all(addons: list, hook: str) -> None:
    for addon in addons:
        if (fn := getattr(addon, hook, None)) is not None and inspect.isawaitable(result := fn()):
            await result


async def main(calls: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="llmtap-hitpath-"))
    (workdir / "llmtap.yaml").write_text(json.dumps({
        "storage": {"path": str(workdir / "log.duckdb")}, "cache": {"path": str(workdir / "cache")},
        "certs": str(workdir / "certs")}))
    addons = make_addons()
    try:
        with taddons.context(*addons) as tctx:
            tctx.configure(addons[0], llmtap_config=str(workdir / "llmtap.yaml"))
            await call_all(addons, "running")
            await one_call(addons, {})
            await asyncio.sleep(0.1)  # the answer is stored
            timings: dict[str, list[float]] = {}
            for _ in range(calls):
                flow = await one_call(addons, timings)
            assert flow.response.headers["helicone-cache"] == "HIT"
            medians = {name: statistics.median(values) * 1e6 for name, values in timings.items()}
            for name, median in sorted(medians.items(), key=lambda item: -item[1]):
                print(f"{name:32} {median:8.1f} µs")
            print(f"{'llmtap time per hit (sum)':32} {sum(medians.values()):8.1f} µs  (median of {calls} hits)")
            await call_all(addons, "done")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    asyncio.run(main(parser.parse_args().calls))
