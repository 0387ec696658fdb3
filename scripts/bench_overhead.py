"""How much time llmtap adds to a call, against baselines measured in the same run.

Three ways to reach the same mock provider (scripts/mock_provider.py), all on loopback:
  direct     the client talks to the mock
  mitmdump   a bare mitmdump reverse proxy in front of it (what any mitmproxy-based gateway starts from)
  llmtap     the llmtap gateway (base-URL way in), logging every call to DuckDB
  cache hit  the same gateway answering from its response cache (Helicone-Cache-Enabled: true)
  mitm echo  a bare mitmdump whose one-line addon answers every request itself: the floor for a cache hit

For each, several rounds of: sequential unstreamed calls (median latency), sequential streamed calls (median
latency), and concurrent calls (throughput). Reports medians over rounds and ratios to both baselines, and the
gateway time of cache hits as the log records it (arrival of the request to the answer, inside the gateway).

    .venv/bin/python scripts/bench_overhead.py [--rounds 5] [--calls 200] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from loopback import free_port, stop_all, wait_for_port  # beside this script

ROOT = Path(__file__).resolve().parent.parent
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "benchmark the gateway overhead"}]}
STREAM_BODY = {**BODY, "stream": True}
CANNED_ANSWER = {"id": "chatcmpl-echo", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "canned"},
                              "finish_reason": "stop"}],
                 "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10}}
ECHO_ADDON = """
from mitmproxy import http

def request(flow):
    flow.response = http.Response.make(200, {answer}, {{"content-type": "application/json"}})
"""


def call(conn: http.client.HTTPConnection, body: dict, headers: dict | None = None) -> float:
    payload = json.dumps(body).encode()
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", payload,
                 {"content-type": "application/json", "authorization": "Bearer sk-bench", **(headers or {})})
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}")
    return elapsed


def sequential_ms(port: int, body: dict, calls: int, headers: dict | None = None) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    call(conn, body, headers)  # warm the connection (and the cache)
    times = [call(conn, body, headers) for _ in range(calls)]
    conn.close()
    return statistics.median(times) * 1000


def throughput_rps(port: int, calls: int, concurrency: int, headers: dict | None = None) -> float:
    per_thread = calls // concurrency

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(per_thread):
            call(conn, BODY, headers)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return per_thread * concurrency / (time.perf_counter() - started)


def hit_gateway_ms(workdir: Path) -> str:
    """Median and p99 latency_ms of the sequential cache hits: time inside the gateway, without network or queueing."""
    sys.path.insert(0, str(ROOT))
    from llmtap.store import connect

    time.sleep(1)  # the last batch of rows
    with connect(workdir / "data" / "llmtap.duckdb", read_only=True) as db:
        median, p99 = db.execute("SELECT median(latency_ms), quantile_cont(latency_ms, 0.99) FROM requests "
                                 "WHERE cache_status = 'HIT' AND properties['bench'] = 'sequential'").fetchone()
    return f"{median:.3f} ms / {p99:.3f} ms"


def start(args: list[str], env: dict | None = None, cwd: Path | None = None) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    opts = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="llmtap-bench-"))
    processes = []
    try:
        mock = start([sys.executable, str(ROOT / "scripts" / "mock_provider.py"), "--port", "0"])
        processes.append(mock)
        mock_url = mock.stdout.readline().split()[1]
        mock_port = int(mock_url.rsplit(":", 1)[1])

        bare_port = free_port()
        mitmdump = shutil.which("mitmdump", path=str(Path(sys.executable).parent))
        processes.append(start([mitmdump, "-q", "--mode", f"reverse:{mock_url}@127.0.0.1:{bare_port}",
                                "--set", f"confdir={workdir / 'bare-certs'}"]))

        echo_port = free_port()
        echo_addon = workdir / "echo.py"
        echo_addon.write_text(ECHO_ADDON.format(answer=json.dumps(json.dumps(CANNED_ANSWER))))
        processes.append(start([mitmdump, "-q", "--mode", f"reverse:http://127.0.0.1:9@127.0.0.1:{echo_port}",
                                "-s", str(echo_addon), "--set", f"confdir={workdir / 'bare-certs'}",
                                "--set", "connection_strategy=lazy"]))  # nothing to connect to: it answers itself

        gateway_port, proxy_port = free_port(), free_port()
        (workdir / "llmtap.yaml").write_text(json.dumps({
            "listen": {"proxy": f"127.0.0.1:{proxy_port}", "gateway": f"127.0.0.1:{gateway_port}"},
            "providers": {"openai": {"upstream": mock_url}},
        }))
        env = {**os.environ, "OPENAI_API_KEY": "sk-bench-env"}
        processes.append(start([sys.executable, "-m", "llmtap.cli", "start", "--config", "llmtap.yaml", "--", "-q"],
                               env=env, cwd=workdir))
        hit = {"helicone-cache-enabled": "true", "helicone-property-bench": "sequential"}
        targets = {"direct": (mock_port, None), "mitmdump": (bare_port, None), "llmtap": (gateway_port, None),
                   "mitm echo": (echo_port, None), "cache hit": (gateway_port, hit)}
        for port, _ in targets.values():
            wait_for_port(port)

        results: dict[str, dict[str, list[float]]] = {name: {"json": [], "stream": [], "rps": []} for name in targets}
        for round_no in range(opts.rounds):
            for name, (port, headers) in targets.items():
                results[name]["json"].append(sequential_ms(port, BODY, opts.calls, headers))
                results[name]["stream"].append(sequential_ms(port, STREAM_BODY, opts.calls, headers))
                concurrent = headers and {**headers, "helicone-property-bench": "concurrent"}
                results[name]["rps"].append(throughput_rps(port, opts.calls, opts.concurrency, concurrent))
            print(f"round {round_no + 1}/{opts.rounds} done", file=sys.stderr)

        median = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}
        print(f"\nmedians of {opts.rounds} rounds; {opts.calls} calls per measurement; "
              f"throughput with {opts.concurrency} concurrent clients\n")
        print(f"{'':10}{'json ms':>10}{'stream ms':>11}{'calls/s':>10}")
        for name, m in median.items():
            print(f"{name:10}{m['json']:>10.2f}{m['stream']:>11.2f}{m['rps']:>10.0f}")
        for name, base in (("llmtap", "direct"), ("llmtap", "mitmdump"), ("cache hit", "mitm echo")):
            b, m = median[base], median[name]
            print(f"\n{name} vs {base}: json latency x{m['json'] / b['json']:.2f} ({m['json'] - b['json']:+.2f} ms), "
                  f"stream latency x{m['stream'] / b['stream']:.2f} ({m['stream'] - b['stream']:+.2f} ms), "
                  f"throughput x{m['rps'] / b['rps']:.2f}")
        print(f"\ncache hits one at a time, gateway time from the log (median / p99): {hit_gateway_ms(workdir)}")
    finally:
        stop_all(processes, timeout_s=30)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
