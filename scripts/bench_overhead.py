"""What llmtap adds to a call, against baselines measured in the same run: the one reproducible benchmark (issue 14).

Targets, each started once and shared by every round (rounds interleave them, so drift hits all alike):
  direct          the client talks to the mock provider (scripts/mock_provider.py)
  mitmdump        bare mitmdump as a reverse proxy in front of the mock: the floor of the gateway way in
  mitmdump stream the same, passing answers on as they arrive (an addon sets flow.response.stream): the floor for
                  streams, since a bare mitmdump holds each answer until it is whole and llmtap passes events on at once
  llmtap          the llmtap gateway (base-URL way in), default config: logging, bodies and pricing on
  mitmdump proxy  bare mitmdump in regular mode intercepting TLS; the client CONNECTs to api.openai.com:443 through it
                  and mitmproxy's own map_remote sends the call to the mock: the floor of the proxy way in
  mitmdump proxy stream  the same, streaming: the floor for streams through the proxy way in
  llmtap proxy    the same llmtap gateway's proxy listener (HTTPS_PROXY way in, TLS interception)
  cache hit       llmtap answering from its response cache (Helicone-Cache-Enabled: true)
  mitm echo       bare mitmdump whose one-line addon answers every request itself: the floor for a cache hit

Sections (--only picks some): latency (sequential keep-alive JSON calls: p50, p99, added latency), streams
(sequential streamed calls: time to first token; and bursts of concurrent streams with the mock's chunk gaps),
throughput (8, 32, 128 concurrent keep-alive clients: calls/s and p99), cache (hits vs direct), memory (gateway RSS
over many calls; on a 10M-row log vs an empty one), writer (RecordStore rows/s with bodies into a 10M-row log).
Figures are medians over rounds of each round's median / p99. Prints a table (stdout; progress on stderr) and writes
it with the machine's description as JSON (--json-out, default ./bench-results.json).

    scripts/bench [--rounds 5] [--calls 1000] [--only latency,streams] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench_clients import Target, load, p99, reset_mock, script_mock, sequential_ms, sequential_streams_ms, stream_burst
from bench_processes import Fleet, Gateway, rss_mib
from bench_rows import table_rows
from bench_table import describe, machine, render

SECTIONS = ("latency", "streams", "throughput", "cache", "memory", "writer")
JSON_TARGETS = ("direct", "mitmdump", "llmtap", "mitmdump proxy", "llmtap proxy")
STREAM_TARGETS = ("direct", "mitmdump stream", "llmtap", "mitmdump proxy stream", "llmtap proxy")
BURST_TARGETS = ("direct", "mitmdump stream", "llmtap")
DEFAULT_LOG_10M = Path("/work/bench-data/llmtap-10m.duckdb")
QUICK = {"rounds": 1, "calls": 30, "stream_calls": 10, "load_seconds": 0.3, "concurrency": (4,), "burst_streams": 16,
         "memory_calls": 100, "rss_warmup_calls": 20, "writer_rows": 500}

Samples = dict[str, list[float]]  # "measure|target" -> one figure per round


def main() -> None:
    opts = parse_args()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    sections = opts.only
    started = time.monotonic()
    machine_used = machine()  # the load average before the run: other work on the machine skews every figure
    workdir = Path(tempfile.mkdtemp(prefix="llmtap-bench-"))
    samples: Samples = defaultdict(list)
    extra: dict[str, object] = {}
    try:
        with Fleet(workdir) as fleet:
            mock_url = fleet.mock()
            targets, gateway = start_targets(fleet, mock_url)
            for round_no in range(opts.rounds):
                progress(f"round {round_no + 1}/{opts.rounds}")
                order = rotated(JSON_TARGETS, round_no)  # no target always runs right after llmtap's batch writes
                if "latency" in sections:
                    measure_latency(targets, order, opts.calls, samples)
                if "cache" in sections:
                    cache_targets = ("cache hit", "mitm echo") + (() if "latency" in sections else ("direct",))
                    measure_latency(targets, rotated(cache_targets, round_no), opts.calls, samples)
                if "streams" in sections:
                    measure_streams(targets, rotated(STREAM_TARGETS, round_no), opts.stream_calls, samples)
                    measure_bursts(targets, mock_url, opts, samples)
                if "throughput" in sections:
                    measure_throughput(targets, order, opts.concurrency, opts.load_seconds, samples)
                reset_mock(mock_url)  # the mock logs every call: forget them, not to grow through the run
            if "memory" in sections:
                extra["memory"] = measure_memory(fleet, gateway, targets["llmtap"], mock_url, opts, samples)
            if "writer" in sections:
                extra["writer"] = measure_writer(opts, workdir, samples)
            pids = list(fleet.started_pids)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    figures = {key: statistics.median(values) for key, values in samples.items()}
    rows = table_rows(figures, opts)
    print(f"\nmedians of {opts.rounds} rounds; {opts.calls} sequential calls and {opts.stream_calls} streams per "
          f"round and target; throughput over {opts.load_seconds:g} s at each concurrency; a chunk is held back when "
          f"its gap exceeds the mock's {opts.chunk_gap_ms} ms by more than {opts.held_back_ms} ms\n")
    machine_used["load_average_at_end"] = os.getloadavg()
    print(render(rows))
    print(f"\n{describe(machine_used)}")
    result = {"machine": machine_used, "command": sys.argv,
              "options": vars(opts), "wall_s": time.monotonic() - started, "rows": [row.as_json() for row in rows],
              "figures": figures, "per_round": samples, **extra, "workdir": str(workdir), "pids": pids}
    Path(opts.json_out).write_text(json.dumps(result, indent=2, default=str))
    progress(f"written {opts.json_out} in {result['wall_s']:.0f} s")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=1000, help="sequential JSON calls per round and target")
    parser.add_argument("--stream-calls", type=int, default=200, help="sequential streamed calls per round and target")
    parser.add_argument("--load-seconds", type=float, default=3.0, help="measured window at each concurrency")
    parser.add_argument("--concurrency", type=lambda text: tuple(int(n) for n in text.split(",")), default=(8, 32, 128),
                        help="comma-separated numbers of concurrent clients (default 8,32,128)")
    parser.add_argument("--burst-streams", type=int, default=128, help="concurrent streams in a burst")
    parser.add_argument("--chunk-gap-ms", type=int, default=20, help="the mock's gap between a burst's stream events")
    parser.add_argument("--held-back-ms", type=int, default=50,
                        help="a burst's event is held back when its gap exceeds the mock's by more than this")
    parser.add_argument("--memory-calls", type=int, default=100_000, help="calls while sampling the gateway's RSS")
    parser.add_argument("--rss-warmup-calls", type=int, default=5_000,
                        help="calls before reading RSS of a gateway on a 10M-row log and on an empty one")
    parser.add_argument("--writer-rows", type=int, default=50_000)
    parser.add_argument("--log-10m", type=Path, default=DEFAULT_LOG_10M if DEFAULT_LOG_10M.exists() else None,
                        help="a log of 10M rows (copied, never written); default %(default)s")
    parser.add_argument("--only", type=lambda text: tuple(text.split(",")), default=SECTIONS,
                        help=f"comma-separated sections of {', '.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="small counts: checks that it runs, measures nothing")
    parser.add_argument("--json-out", default="bench-results.json")
    opts = parser.parse_args()
    if unknown := set(opts.only) - set(SECTIONS):
        parser.error(f"--only: no section {', '.join(sorted(unknown))} (sections: {', '.join(SECTIONS)})")
    if opts.quick:
        for name, value in QUICK.items():
            if getattr(opts, name) == parser.get_default(name):
                setattr(opts, name, value)
    return opts


def start_targets(fleet: Fleet, mock_url: str) -> tuple[dict[str, Target], Gateway]:
    """Start the bare mitmdumps (reverse and proxy, each buffering and streaming; echo) and one llmtap gateway side
    by side; every target by name, and the gateway."""
    progress("starting the bare mitmdumps and the llmtap gateway")
    with ThreadPoolExecutor(max_workers=6) as starting:  # each start waits for its port: together, not in turn
        reverse = starting.submit(fleet.mitmdump_reverse, mock_url)
        reverse_streaming = starting.submit(fleet.mitmdump_reverse, mock_url, streaming=True)
        proxy = starting.submit(fleet.mitmdump_proxy, mock_url)
        proxy_streaming = starting.submit(fleet.mitmdump_proxy, mock_url, streaming=True)
        echo = starting.submit(fleet.mitm_echo)
        llmtap = starting.submit(fleet.llmtap, "llmtap", mock_url)
    gateway = llmtap.result()
    (proxy_port, proxy_ca), (proxy_streaming_port, proxy_streaming_ca) = proxy.result(), proxy_streaming.result()
    targets = [
        Target("direct", int(mock_url.rsplit(":", 1)[1])),
        Target("mitmdump", reverse.result()),
        Target("mitmdump stream", reverse_streaming.result()),
        Target("llmtap", gateway.gateway_port),
        Target("mitmdump proxy", proxy_port, str(proxy_ca)),
        Target("mitmdump proxy stream", proxy_streaming_port, str(proxy_streaming_ca)),
        Target("llmtap proxy", gateway.proxy_port, str(gateway.ca_bundle)),
        Target("cache hit", gateway.gateway_port, headers={"helicone-cache-enabled": "true"}),
        Target("mitm echo", echo.result()),
    ]
    return {t.name: t for t in targets}, gateway


def measure_latency(targets: dict[str, Target], names: tuple[str, ...], calls: int, samples: Samples) -> None:
    """One round of sequential keep-alive JSON calls to each target: p50 and p99 total latency."""
    for name in names:
        times_ms = sequential_ms(targets[name], calls)
        samples[f"json p50 ms|{name}"].append(statistics.median(times_ms))
        samples[f"json p99 ms|{name}"].append(p99(times_ms))
    progress(f"  latency: {_brief(samples, 'json p50 ms', names)}")


def rotated(names: tuple[str, ...], round_no: int) -> tuple[str, ...]:
    """`names` starting at a different one each round."""
    at = round_no % len(names)
    return names[at:] + names[:at]


def measure_streams(targets: dict[str, Target], names: tuple[str, ...], calls: int, samples: Samples) -> None:
    """One round of sequential streamed calls to each target: time to first token (p50, p99) and total (p50)."""
    for name in names:
        ttft_ms, total_ms = sequential_streams_ms(targets[name], calls)
        samples[f"stream ttft p50 ms|{name}"].append(statistics.median(ttft_ms))
        samples[f"stream ttft p99 ms|{name}"].append(p99(ttft_ms))
        samples[f"stream total p50 ms|{name}"].append(statistics.median(total_ms))
    progress(f"  streams: {_brief(samples, 'stream ttft p50 ms', STREAM_TARGETS)}")


def measure_bursts(targets: dict[str, Target], mock_url: str, opts: argparse.Namespace, samples: Samples) -> None:
    """One round of a burst of concurrent streams whose events the mock spaces `chunk_gap_ms` apart: streams with an
    event held back (or not finished), and time to first token."""
    for name in BURST_TARGETS:
        reset_mock(mock_url)
        script_mock(mock_url, [{"chunk_delay_ms": opts.chunk_gap_ms}] * opts.burst_streams)
        traces = stream_burst(targets[name], opts.burst_streams)
        late_ms = opts.chunk_gap_ms + opts.held_back_ms
        samples[f"burst stalled|{name}"].append(sum(not t.finished or t.max_gap_ms > late_ms for t in traces))
        ttft_ms = [t.ttft_ms for t in traces if t.ttft_ms is not None] or [float("nan")]
        samples[f"burst ttft p50 ms|{name}"].append(statistics.median(ttft_ms))
        samples[f"burst ttft p99 ms|{name}"].append(p99(ttft_ms))
        samples[f"burst max gap ms|{name}"].append(max(t.max_gap_ms for t in traces))
    reset_mock(mock_url)
    progress(f"  bursts: stalled {_brief(samples, 'burst stalled', BURST_TARGETS)}")


def measure_throughput(targets: dict[str, Target], names: tuple[str, ...], concurrency: tuple[int, ...],
                       load_s: float, samples: Samples) -> None:
    """One round of concurrent keep-alive clients at each concurrency against each target: calls/s and p99."""
    for clients in concurrency:
        for name in names:
            result = load(targets[name], clients, duration_s=load_s)
            samples[f"calls/s @{clients}|{name}"].append(result.calls_per_s)
            samples[f"p99 ms @{clients}|{name}"].append(result.p99_ms)
        progress(f"  throughput @{clients}: {_brief(samples, f'calls/s @{clients}', JSON_TARGETS)}")


def measure_memory(fleet: Fleet, gateway: Gateway, target: Target, mock_url: str, opts: argparse.Namespace,
                   samples: Samples) -> dict[str, object]:
    """The shared gateway's RSS over `memory_calls` calls at 8 clients (sampled every tenth); then, when a 10M-row
    log is at hand, the RSS of a fresh gateway on a copy of it and of one on an empty log after the same warm-up."""
    tenth = max(1, opts.memory_calls // 10)
    rss_series = [rss_mib(gateway.process.pid)]
    for i in range(10):
        load(target, 8, calls=tenth)
        rss_series.append(rss_mib(gateway.process.pid))
        reset_mock(mock_url)
        progress(f"  memory: {(i + 1) * tenth:,} calls, gateway RSS {rss_series[-1]:.1f} MiB")
    samples["rss after warm-up MiB|llmtap"].append(rss_series[1])
    samples["rss at end MiB|llmtap"].append(rss_series[-1])
    samples["rss growth %|llmtap"].append((rss_series[-1] - rss_series[1]) / rss_series[1] * 100)
    report: dict[str, object] = {"rss_mib_every_tenth": rss_series}
    if opts.log_10m is None:
        progress("  memory: no 10M-row log (--log-10m): RSS on a large log not measured")
        return report
    logs = {"llmtap-empty-log": None, "llmtap-10m-log": copy_log(opts.log_10m, fleet.workdir)}
    with ThreadPoolExecutor(max_workers=len(logs)) as starting:  # side by side; measured one after the other
        gateways = {name: starting.submit(fleet.llmtap, name, mock_url, db_path) for name, db_path in logs.items()}
    for name, started in gateways.items():
        fresh = started.result()
        load(Target(name, fresh.gateway_port), 8, calls=opts.rss_warmup_calls)
        samples[f"rss after {opts.rss_warmup_calls} calls MiB|{name}"].append(rss_mib(fresh.process.pid))
        fleet.stop(fresh.process)
        reset_mock(mock_url)
        progress(f"  memory: {name} RSS {samples[f'rss after {opts.rss_warmup_calls} calls MiB|{name}'][-1]:.1f} MiB")
    return report


def measure_writer(opts: argparse.Namespace, workdir: Path, samples: Samples) -> dict[str, object]:
    """RecordStore's rows/s with bodies into a copy of the 10M-row log (the copy the memory section used, if any)."""
    from bench_writer import writer_throughput  # imports llmtap and duckdb: only when measured

    if opts.log_10m is None:
        progress("  writer: no 10M-row log (--log-10m, or make one with scripts/bench_log.py): skipped")
        return {"skipped": "no 10M-row log"}
    log_copy = copy_log(opts.log_10m, workdir)
    progress(f"  writer: appending {opts.writer_rows:,} rows to a copy of {opts.log_10m}")
    result = writer_throughput(log_copy, opts.writer_rows)
    samples["writer rows/s|llmtap"].append(result.rows_per_s)
    progress(f"  writer: {result.rows_per_s:,.0f} rows/s ({result.rows_before:,} rows before)")
    return vars(result)


def copy_log(source: Path, workdir: Path) -> Path:
    """A copy of `source` in the work directory (made once): the benchmark never writes to the original."""
    copy = workdir / "log-10m" / source.name
    if not copy.exists():
        copy.parent.mkdir()
        progress(f"copying {source} ({source.stat().st_size / 1e6:,.0f} MB)")
        shutil.copyfile(source, copy)
    return copy


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    # `timeout`, CI and `kill` stop a run with SIGTERM, which would end this process at once and leave the mock, the
    # mitmdumps and the gateways running: unwind instead, so `Fleet` stops them and the work directory goes. A second
    # SIGTERM while they stop is ignored, not to cut the clean-up short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def _brief(samples: Samples, measure: str, names: tuple[str, ...]) -> str:
    return ", ".join(f"{name} {samples[f'{measure}|{name}'][-1]:.1f}" for name in names)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
