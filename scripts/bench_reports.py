"""How long llmtap's reports take on a large log, and what reading the log does to a gateway writing it.

Reports (default): on a 1M-row log with bodies and a 10M-row log without (made once by bench_log.py, reused from
`--dir`), each report is timed as a user runs it (`python -m llmtap.cli costs --by model --config …`, a new process
each time) and its query alone (the `llmtap.analytics.queries` function, in this process), medians of `--runs` runs
after one warm-up. Targets (issue 11): each report under 1 s at 1M rows, under 2 s at 10M.

Under load (`--under-load`): a real gateway (`llmtap start`, provider = scripts/mock_provider.py) logging into a copy
of the 1M-row log, driven at a steady `--rate` of chat completions by `--clients` threads, in three phases:
  idle           the gateway up, no calls: report commands in a loop
  load           calls only
  load+reports   calls and the report commands in a loop
and reports each command's latency (median, p95, max), the calls' latency and rate, and the gateway's row delay:
from a probe call's answer to its row being readable (a probe every second, its Helicone-Request-Id polled for).

    .venv/bin/python scripts/bench_reports.py [--dir DIR] [--sizes 1m,10m] [--runs 5] [--regenerate]
    .venv/bin/python scripts/bench_reports.py --under-load [--rate 100] [--seconds 30]

Results print as a table and are written as JSON (`--json`, default DIR/bench-reports.json).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from llmtap.analytics import queries
from llmtap.analytics.scope import Scope

import bench_log  # beside this script
from loopback import free_port, stop_all, wait_for_port

ROOT = Path(__file__).resolve().parent.parent

SIZES = {"1m": (1_000_000, True), "10m": (10_000_000, False)}  # name -> (rows, with bodies)
TARGET_S = {"1m": 1.0, "10m": 2.0}
SEARCH_TEXT = "ticket-4242"  # a ticket number a few calls in every million share (bench_log.py)
ABSENT_TEXT = "no-such-text-anywhere"  # the worst case of a search: every body read


@dataclass
class Report:
    """A report as a user runs it (`argv` after `llmtap`) and the query behind it (None: a command over raw SQL)."""

    name: str
    argv: list[str]
    query: Callable[[Path], Any] | None = None


def reports(log: Path) -> list[Report]:
    """The reports to time on `log`: each command family's main view, with the session and the search picked from
    the log so they find something."""
    week = Scope(since=datetime.now(UTC) - timedelta(days=7))
    session = _busiest_recent_session(log)
    found: list[Report] = [
        Report("sql count", ["sql", "SELECT count(*) FROM requests"]),
        Report("totals", [], lambda p: queries.totals(p, week)),
        Report("unpriced", [], lambda p: queries.unpriced(p, week)),
    ]
    month = week.with_time(datetime.now(UTC) - timedelta(days=30))
    return [*found,
            Report("costs --by model", ["costs", "--by", "model"],
                   lambda p: queries.costs(p, week, queries.dimension("model"))),
            Report("costs 30d --by property:workflow", ["costs", "--since", "30d", "--by", "property:workflow"],
                   lambda p: queries.costs(p, month, queries.dimension("property:workflow"))),
            Report("users", ["users"], lambda p: queries.users(p, week)),
            Report("trends", ["trends"], lambda p: queries.trends(p, week, "day")),
            Report("trends 30d --every hour", ["trends", "--since", "30d", "--every", "hour"],
                   lambda p: queries.trends(p, month, "hour")),
            Report("logs -n 20", ["logs", "-n", "20"], lambda p: queries.logs(p, Scope(), 20, True)),
            Report(f"logs -q {SEARCH_TEXT}", ["logs", "-q", SEARCH_TEXT],
                   lambda p: queries.logs(p, Scope(text=SEARCH_TEXT), 20, True)),
            Report(f"logs -q {ABSENT_TEXT}", ["logs", "-q", ABSENT_TEXT],
                   lambda p: queries.logs(p, Scope(text=ABSENT_TEXT), 20, True)),
            Report("sessions", ["sessions"], lambda p: queries.sessions(p, week, 50)),
            Report("trace SESSION", ["trace", session], lambda p: queries.trace(p, session)),
            Report("limits", ["limits"], lambda p: queries.limits(p, week))]


def _busiest_recent_session(log: Path) -> str:
    rows = queries.run(log, "SELECT session_id FROM requests WHERE created_at > now() - INTERVAL 1 DAY "
                            "AND session_id IS NOT NULL GROUP BY ALL ORDER BY count(*) DESC LIMIT 1")
    return rows.rows[0][0] if rows.rows else "none"


# ---------------------------------------------------------------------------------------------- the log files

def ensure_log(directory: Path, size: str, regenerate: bool) -> tuple[Path, dict[str, Any]]:
    """The benchmark log of `size` in `directory` (made when missing or when asked), and its row count and bytes."""
    rows, bodies = SIZES[size]
    path = directory / f"llmtap-{size}.duckdb"
    if regenerate or not path.exists():
        print(f"making {path} ({rows:,} rows, {'with' if bodies else 'without'} bodies)...", file=sys.stderr)
        made = bench_log.create(path, rows, bodies)
        print(f"  {made['rows']:,} rows in {made['seconds']:.0f} s", file=sys.stderr)
    written = queries.run(path, "SELECT count(*) FROM requests").rows[0][0]
    size_bytes = path.stat().st_size
    return path, {"rows": written, "bodies": bodies, "bytes": size_bytes,
                  "mb_per_million_rows": round(size_bytes / 1e6 / (written / 1e6), 1)}


def write_config(directory: Path, log: Path, extra: dict[str, Any] | None = None) -> Path:
    """A config whose log is `log` (JSON is YAML)."""
    path = directory / f"{log.stem}.yaml"
    path.write_text(json.dumps({"storage": {"path": str(log)}, **(extra or {})}))
    return path


# ---------------------------------------------------------------------------------------------- timing

def command_s(argv: list[str], config: Path | None) -> float:
    """Seconds one `llmtap` command takes as a user runs it: a new process, output into a pipe."""
    return command_times(argv, config)[0]


def command_times(argv: list[str], config: Path | None) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one `llmtap` command. The CPU time tells the command's own cost apart
    from waiting for a machine other processes keep busy."""
    cpu_before = _children_cpu_s()
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "llmtap.cli", *argv, *(["--config", str(config)] if config else [])],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"llmtap {' '.join(argv)} exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return elapsed, _children_cpu_s() - cpu_before


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def query_times(report: Report, log: Path) -> tuple[float, float]:
    """Wall and CPU seconds (all of this process's threads: DuckDB's too) of the query behind a report."""
    assert report.query is not None
    cpu_before, started = time.process_time(), time.perf_counter()
    report.query(log)
    return time.perf_counter() - started, time.process_time() - cpu_before


def medians(measure: Callable[[], tuple[float, float]], runs: int) -> dict[str, float]:
    """Wall time of a first run (the OS may have to read the file), then median and max wall time and median CPU time
    of `runs` more."""
    first, _ = measure()
    times = [measure() for _ in range(runs)]
    walls = [wall for wall, _ in times]
    return {"first_s": round(first, 3), "median_s": round(statistics.median(walls), 3), "max_s": round(max(walls), 3),
            "cpu_s": round(statistics.median(cpu for _, cpu in times), 3)}


def time_reports(directory: Path, sizes: list[str], runs: int, regenerate: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "runs": runs, "sizes": {}}
    for size in sizes:
        log, about = ensure_log(directory, size, regenerate)
        config = write_config(directory, log)
        startup = medians(partial(command_times, ["--help"], None), runs)
        timings = {}
        for report in reports(log):
            entry: dict[str, Any] = {"argv": report.argv}
            if report.argv:
                entry["command"] = medians(partial(command_times, report.argv, config), runs)
            if report.query is not None:
                entry["query"] = medians(partial(query_times, report, log), runs)
            timings[report.name] = entry
            print(f"  {size} {report.name}: {_short(entry)}", file=sys.stderr)
        results["sizes"][size] = {**about, "process_startup": startup, "reports": timings}
    return results


def _short(entry: dict[str, Any]) -> str:
    return ", ".join(f"{kind} {entry[kind]['median_s']:.3f} s (cpu {entry[kind]['cpu_s']:.3f} s)"
                     for kind in ("command", "query") if kind in entry)


def print_reports(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    for size, data in results["sizes"].items():
        startup = data["process_startup"]
        table = Table(title=f"{data['rows']:,} rows {'with' if data['bodies'] else 'without'} bodies: "
                            f"{data['bytes'] / 1e6:,.0f} MB ({data['mb_per_million_rows']} MB per million rows); "
                            f"target {TARGET_S[size]:.0f} s; `llmtap --help` takes {startup['median_s']:.2f} s "
                            f"(cpu {startup['cpu_s']:.2f} s)",
                      title_justify="left")
        for column in ("report", "command median s", "max s", "cpu s", "query median s", "first s", "cpu s", "target"):
            table.add_column(column, justify="left" if column == "report" else "right")
        for name, entry in data["reports"].items():
            command, query = entry.get("command"), entry.get("query")
            slowest = max(x["median_s"] for x in (command, query) if x)
            table.add_row(name, *(f"{x[k]:.3f}" if x else "" for x, k in (
                (command, "median_s"), (command, "max_s"), (command, "cpu_s"),
                (query, "median_s"), (query, "first_s"), (query, "cpu_s"))),
                          "ok" if slowest <= TARGET_S[size] else "MISSED")
        Console(width=140).print(table)


# ---------------------------------------------------------------------------------------------- under load

BODY = json.dumps({"model": "gpt-4o-mini",
                   "messages": [{"role": "user", "content": "steady load while reports read the log"}]}).encode()


def post(conn: http.client.HTTPConnection, headers: dict[str, str] | None = None) -> float:
    """One chat completion through the gateway; its latency in seconds."""
    started = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", BODY,
                 {"content-type": "application/json", "authorization": "Bearer sk-bench", **(headers or {})})
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}")
    return time.perf_counter() - started


@dataclass
class Phase:
    """What one phase of the under-load run saw."""

    name: str
    call_s: list[float] = field(default_factory=list)
    call_errors: int = 0
    row_delay_s: list[float] = field(default_factory=list)
    rows_missing: int = 0
    commands_s: dict[str, list[float]] = field(default_factory=dict)
    commands_cpu_s: dict[str, list[float]] = field(default_factory=dict)
    open_wait_s: list[float] = field(default_factory=list)  # the probe's waits for the gateway's lock
    seconds: float = 0.0
    load_average: float = 0.0  # of the machine over the last minute, at the phase's end

    def finish(self, threads: list[threading.Thread], started: float, join_s: float = 90) -> None:
        """The phase's threads joined (its `stop` set already) and its length and the machine's load noted."""
        for thread in threads:
            thread.join(join_s)
        self.seconds = time.perf_counter() - started
        self.load_average = os.getloadavg()[0]

    def summary(self) -> dict[str, Any]:
        return {"calls": len(self.call_s), "call_errors": self.call_errors,
                "calls_per_s": round(len(self.call_s) / self.seconds, 1) if self.seconds else 0,
                "call_ms": _percentiles([s * 1000 for s in self.call_s]),
                "row_delay_s": _percentiles(self.row_delay_s, digits=3), "rows_missing": self.rows_missing,
                "open_wait_s": _percentiles(self.open_wait_s, digits=3),
                "commands_s": {name: _percentiles(times, digits=3) for name, times in self.commands_s.items()},
                "commands_cpu_s": {name: _percentiles(times, digits=3) for name, times in self.commands_cpu_s.items()},
                "load_average": round(self.load_average, 1)}


def _percentiles(values: list[float], digits: int = 1) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    return {"n": len(ordered), "median": round(statistics.median(ordered), digits),
            "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], digits),
            "max": round(ordered[-1], digits)}


def load(port: int, rate_per_s: float, clients: int, stop: threading.Event, phase: Phase) -> list[threading.Thread]:
    """`clients` threads sending calls one after another, together at `rate_per_s` (as fast as they can when the
    gateway is slower)."""
    lock = threading.Lock()

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        interval_s = clients / rate_per_s
        next_at = time.monotonic() + offset * interval_s / clients
        while not stop.is_set():
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval_s
            try:
                elapsed = post(conn)
            except Exception:
                with lock:
                    phase.call_errors += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                continue
            with lock:
                phase.call_s.append(elapsed)
        conn.close()

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def probe(port: int, log: Path, stop: threading.Event, phase: Phase) -> threading.Thread:
    """Every second, one call with a known Helicone-Request-Id; its row delay is the time from the answer to the
    first read that finds the row (polled every 50 ms with a query DuckDB answers from its zone maps). Each read's
    wait for the file (the gateway holding it to write a batch) is kept too."""
    from llmtap.batch_writer import connect

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while not stop.is_set():
            request_id = str(uuid.uuid4())
            sent_at = datetime.now(UTC) - timedelta(seconds=1)
            post(conn, {"helicone-request-id": request_id})
            answered = time.perf_counter()
            while True:
                opening = time.perf_counter()
                with connect(log, timeout_s=30, read_only=True) as db:
                    phase.open_wait_s.append(time.perf_counter() - opening)
                    found = db.execute("SELECT count(*) FROM requests WHERE created_at > ? AND request_id = ?",
                                       [sent_at, request_id]).fetchall()[0][0]
                if found:
                    phase.row_delay_s.append(time.perf_counter() - answered)
                    break
                if time.perf_counter() - answered > 60:
                    phase.rows_missing += 1
                    break
                time.sleep(0.05)
            stop.wait(max(0.0, 1.0 - (time.perf_counter() - answered)))
        conn.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def reader_loop(commands: list[Report], config: Path, stop: threading.Event, phase: Phase,
                rounds: int | None = None) -> None:
    """The report commands one after another, as a user at a terminal runs them, until `stop` (or `rounds`)."""
    done = 0
    while not stop.is_set() and (rounds is None or done < rounds):
        for report in commands:
            wall_s, cpu_s = command_times(report.argv, config)
            phase.commands_s.setdefault(report.name, []).append(wall_s)
            phase.commands_cpu_s.setdefault(report.name, []).append(cpu_s)
        done += 1


@contextmanager
def gateway_over_copy(directory: Path, regenerate: bool, dashboard: bool = False) -> Iterator[LoadedGateway]:
    """A real gateway (`llmtap start`, provider = scripts/mock_provider.py) logging into a copy of the 1M-row log,
    with its dashboard when asked; stopped, and the copy removed, at the end."""
    source, about = ensure_log(directory, "1m", regenerate)
    workdir = Path(tempfile.mkdtemp(prefix="llmtap-bench-load-"))
    processes: list[subprocess.Popen] = []
    try:
        log = workdir / "data" / "llmtap.duckdb"
        log.parent.mkdir()
        shutil.copyfile(source, log)  # the gateway adds rows: the benchmark's log stays as made
        mock = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "mock_provider.py"), "--port", "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(mock)
        assert mock.stdout is not None
        mock_url = mock.stdout.readline().split()[1]
        gateway_port, dashboard_port = free_port(), free_port()
        config = write_config(workdir, log, {
            "listen": {"proxy": f"127.0.0.1:{free_port()}", "gateway": f"127.0.0.1:{gateway_port}",
                       "dashboard": f"127.0.0.1:{dashboard_port}" if dashboard else "off"},
            "providers": {"openai": {"upstream": mock_url}},
        })
        gateway = subprocess.Popen([sys.executable, "-m", "llmtap.cli", "start", "--config", str(config), "--", "-q"],
                                   env={**os.environ, "OPENAI_API_KEY": "sk-bench-env"}, cwd=workdir,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes.append(gateway)
        wait_for_port(gateway_port, timeout_s=60)
        if dashboard:
            wait_for_port(dashboard_port, timeout_s=60)
        yield LoadedGateway(about, log, config, gateway_port, dashboard_port if dashboard else None)
    finally:
        stop_all(processes, timeout_s=60)
        shutil.rmtree(workdir, ignore_errors=True)


@dataclass
class LoadedGateway:
    about: dict[str, Any]  # the log copied: rows, bytes, ...
    log: Path
    config: Path
    gateway_port: int
    dashboard_port: int | None


def under_load(directory: Path, rate_per_s: float, clients: int, seconds: float, regenerate: bool) -> dict[str, Any]:
    with gateway_over_copy(directory, regenerate) as loaded:
        log, config, gateway_port = loaded.log, loaded.config, loaded.gateway_port
        commands = [r for r in reports(log) if r.name in ("sql count", "costs --by model", "logs -n 20")]

        phases = []
        idle = Phase("idle")
        started = time.perf_counter()
        reader_loop(commands, config, threading.Event(), idle, rounds=5)
        idle.seconds = time.perf_counter() - started
        idle.load_average = os.getloadavg()[0]
        phases.append(idle)
        for name, with_readers in (("load", False), ("load+reports", True)):
            phase = Phase(name)
            stop = threading.Event()
            threads = [*load(gateway_port, rate_per_s, clients, stop, phase),
                       probe(gateway_port, log, stop, phase)]
            started = time.perf_counter()
            if with_readers:
                timer = threading.Timer(seconds, stop.set)
                timer.start()
                reader_loop(commands, config, stop, phase)
            else:
                stop.wait(seconds)
                stop.set()
            phase.finish(threads, started)
            phases.append(phase)
            print(f"  {name}: {json.dumps(phase.summary())}", file=sys.stderr)
        return {"log": loaded.about, "rate_per_s": rate_per_s, "clients": clients, "seconds": seconds,
                "phases": {phase.name: phase.summary() for phase in phases}}


def print_under_load(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(p: dict[str, float] | None, unit: str = "") -> str:
        return f"{p['median']} / {p['p95']} / {p['max']}{unit}" if p else ""

    table = Table(title=f"gateway over {results['log']['rows']:,} rows; {results['clients']} clients at "
                        f"{results['rate_per_s']:.0f} calls/s for {results['seconds']:.0f} s; median / p95 / max",
                  title_justify="left")
    table.add_column("phase")
    table.add_column("calls/s", justify="right")
    table.add_column("call ms", justify="right")
    table.add_column("row delay s", justify="right")
    table.add_column("read's wait for the file s", justify="right")
    names = sorted({n for phase in results["phases"].values() for n in phase["commands_s"]})
    for name in names:
        table.add_column(f"{name} s (cpu s)", justify="right")
    table.add_column("load average", justify="right")
    for phase_name, phase in results["phases"].items():
        table.add_row(phase_name, str(phase["calls_per_s"] or ""), fmt(phase["call_ms"]), fmt(phase["row_delay_s"]),
                      fmt(phase["open_wait_s"]),
                      *(f"{fmt(phase['commands_s'].get(n))} ({phase['commands_cpu_s'][n]['median']})"
                        if n in phase["commands_s"] else "" for n in names),
                      str(phase["load_average"]))
    Console(width=160).print(table)


def arguments(description: str, default_runs: int = 5) -> argparse.ArgumentParser:
    """The options every benchmark over the generated logs takes: where the logs are, runs, and the load's shape."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dir", type=Path, help="where the benchmark logs are kept and reused "
                                                 "(default: a directory under the system's temp directory)")
    parser.add_argument("--regenerate", action="store_true", help="make the logs again even when they exist")
    parser.add_argument("--runs", type=int, default=default_runs, help="runs per measurement, after one warm-up")
    parser.add_argument("--rate", type=float, default=100, help="calls per second under load")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients under load")
    parser.add_argument("--seconds", type=float, default=30, help="length of each loaded phase")
    parser.add_argument("--json", type=Path, help="where to write the results (default: in DIR)")
    return parser


def logs_dir(opts: argparse.Namespace) -> Path:
    directory = opts.dir or Path(tempfile.gettempdir()) / "llmtap-bench-reports"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_results(results: dict[str, Any], out: Path) -> None:
    out.write_text(json.dumps(results, indent=2))
    print(f"\nresults: {out}")


def main() -> None:
    parser = arguments((__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="1m,10m", help="which logs to time: 1m (with bodies), 10m (without)")
    parser.add_argument("--under-load", action="store_true", help="measure reads while a gateway writes instead")
    opts = parser.parse_args()
    directory = logs_dir(opts)
    if opts.under_load:
        results = under_load(directory, opts.rate, opts.clients, opts.seconds, opts.regenerate)
        print_under_load(results)
        write_results(results, opts.json or directory / "bench-under-load.json")
        return
    sizes = [s.strip() for s in opts.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"--sizes: expected 1m and/or 10m, got {', '.join(unknown)}")
    results = time_reports(directory, sizes, opts.runs, opts.regenerate)
    print_reports(results)
    write_results(results, opts.json or directory / "bench-reports.json")


if __name__ == "__main__":
    main()
