"""The issue's targets (issue 14) as table rows: which figure of the run is compared with which baseline, and how.

`figures` maps "measure|target" to the median over rounds; a figure a run did not take (a section left out by --only)
gives a row without numbers, neither passed nor failed.
"""

from __future__ import annotations

import argparse

from bench_table import Row, ratio_at_least, ratio_at_most, value_at_least, value_at_most

WAYS = (("gateway way", "mitmdump", "llmtap"), ("proxy way", "mitmdump proxy", "llmtap proxy"))
# Streams are compared with mitmdumps that stream too: a bare one holds each answer until it is whole.
STREAM_WAYS = (("gateway way", "mitmdump stream", "llmtap"), ("proxy way", "mitmdump proxy stream", "llmtap proxy"))


def table_rows(figures: dict[str, float], opts: argparse.Namespace) -> list[Row]:
    """Every measure of the benchmark, in the order the table shows them."""
    return [*_latency(figures), *_streams(figures, opts), *_throughput(figures, opts), *_cache(figures),
            *_memory(figures, opts), *_writer(figures)]


def _latency(f: dict[str, float]) -> list[Row]:
    rows = [Row("latency", "p50 total ms (the mock alone)", "direct", f.get("json p50 ms|direct"), None),
            Row("latency", "p99 total ms (the mock alone)", "direct", f.get("json p99 ms|direct"), None)]
    for way, floor, gateway in WAYS:
        rows += [
            Row("latency", f"p50 total ms, {way}", floor, f.get(f"json p50 ms|{floor}"),
                f.get(f"json p50 ms|{gateway}")),
            Row("latency", f"added p50 ms, {way}", floor, _added(f, "json p50 ms", floor),
                _added(f, "json p50 ms", gateway), "<= x1.15", ratio_at_most(1.15)),
            Row("latency", f"p99 total ms, {way}", floor, f.get(f"json p99 ms|{floor}"),
                f.get(f"json p99 ms|{gateway}"), "<= x1.3", ratio_at_most(1.3)),
        ]
    return rows


def _streams(f: dict[str, float], opts: argparse.Namespace) -> list[Row]:
    rows = [Row("streams", "TTFT p50 ms (the mock alone)", "direct", f.get("stream ttft p50 ms|direct"), None)]
    for way, floor, gateway in STREAM_WAYS:
        rows += [
            Row("streams", f"added TTFT p50 ms, {way}", floor, _added(f, "stream ttft p50 ms", floor),
                _added(f, "stream ttft p50 ms", gateway), "<= x1.2", ratio_at_most(1.2)),
            Row("streams", f"TTFT p99 ms, {way}", floor, f.get(f"stream ttft p99 ms|{floor}"),
                f.get(f"stream ttft p99 ms|{gateway}")),
            Row("streams", f"stream total p50 ms, {way}", floor, f.get(f"stream total p50 ms|{floor}"),
                f.get(f"stream total p50 ms|{gateway}")),
        ]
    burst = f"{opts.burst_streams} streams"
    return rows + [
        Row("streams", f"{burst}: stalled (the mock alone)", "direct", f.get("burst stalled|direct"), None),
        Row("streams", f"{burst}: stalled (held back > {opts.held_back_ms} ms or unfinished)", "mitmdump stream",
            f.get("burst stalled|mitmdump stream"), f.get("burst stalled|llmtap"), "0", value_at_most(0)),
        Row("streams", f"{burst}: longest event gap ms (mock: {opts.chunk_gap_ms})", "mitmdump stream",
            f.get("burst max gap ms|mitmdump stream"), f.get("burst max gap ms|llmtap")),
        Row("streams", f"{burst}: TTFT p50 ms", "mitmdump stream", f.get("burst ttft p50 ms|mitmdump stream"),
            f.get("burst ttft p50 ms|llmtap")),
        Row("streams", f"{burst}: TTFT p99 ms", "mitmdump stream", f.get("burst ttft p99 ms|mitmdump stream"),
            f.get("burst ttft p99 ms|llmtap")),
    ]


def _throughput(f: dict[str, float], opts: argparse.Namespace) -> list[Row]:
    rows = []
    for clients in opts.concurrency:
        rows.append(Row("throughput", f"calls/s @{clients} (the mock alone)", "direct",
                        f.get(f"calls/s @{clients}|direct"), None))
        for way, floor, gateway in WAYS:
            rows += [
                Row("throughput", f"calls/s @{clients}, {way}", floor, f.get(f"calls/s @{clients}|{floor}"),
                    f.get(f"calls/s @{clients}|{gateway}"), ">= x0.85", ratio_at_least(0.85)),
                Row("throughput", f"p99 ms @{clients}, {way}", floor, f.get(f"p99 ms @{clients}|{floor}"),
                    f.get(f"p99 ms @{clients}|{gateway}")),
            ]
    return rows


def _cache(f: dict[str, float]) -> list[Row]:
    return [
        Row("cache", "cache hit p50 ms vs a call to the mock", "direct", f.get("json p50 ms|direct"),
            f.get("json p50 ms|cache hit"), "< x1.0", lambda _value, ratio: ratio is not None and ratio < 1.0),
        Row("cache", "cache hit p50 ms vs an answering mitmdump", "mitm echo", f.get("json p50 ms|mitm echo"),
            f.get("json p50 ms|cache hit")),
        Row("cache", "cache hit p99 ms", "direct", f.get("json p99 ms|direct"), f.get("json p99 ms|cache hit")),
    ]


def _memory(f: dict[str, float], opts: argparse.Namespace) -> list[Row]:
    warmed = f"rss after {opts.rss_warmup_calls} calls MiB"
    return [
        Row("memory", f"gateway RSS MiB, end of {opts.memory_calls:,} calls", "after 10%",
            f.get("rss after warm-up MiB|llmtap"), f.get("rss at end MiB|llmtap")),
        Row("memory", "gateway RSS growth % after warm-up", "", None, f.get("rss growth %|llmtap"), "< 10%",
            lambda value, _ratio: value < 10),
        Row("memory", f"gateway RSS MiB after {opts.rss_warmup_calls:,} calls, 10M-row log", "empty log",
            f.get(f"{warmed}|llmtap-empty-log"), f.get(f"{warmed}|llmtap-10m-log"), "<= x1.1", ratio_at_most(1.1)),
    ]


def _writer(f: dict[str, float]) -> list[Row]:
    return [Row("writer", "rows/s with bodies into a 10M-row log", "", None, f.get("writer rows/s|llmtap"),
                ">= 5,000", value_at_least(5000))]


def _added(f: dict[str, float], measure: str, name: str) -> float | None:
    """What `name` adds to a call to the mock alone (its figure minus direct's)."""
    value, direct = f.get(f"{measure}|{name}"), f.get(f"{measure}|direct")
    return None if value is None or direct is None else value - direct

