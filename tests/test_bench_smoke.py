"""The benchmark (scripts/bench_overhead.py) runs end to end on small counts. It asserts no timing: machines are noisy;
only that every section measured something and that the run left none of its processes behind."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from llmtap.store import RecordStore

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = {"latency", "streams", "throughput", "cache", "memory", "writer"}


def small_log(path: Path, rows: int = 20) -> Path:
    """A log with a few rows, standing in for the 10M-row one (copied by the benchmark, never written)."""
    store = RecordStore(path)
    store.open()
    for i in range(rows):
        store.append({"request_id": f"row-{i}", "created_at": datetime.now(UTC), "way": "gateway", "status": 200})
    store.close()
    return path


def test_the_benchmark_measures_every_section_on_small_counts_and_leaves_no_process(tmp_path):
    log = small_log(tmp_path / "small.duckdb")
    out = tmp_path / "bench.json"
    run = run_bench(["--quick", "--log-10m", str(log), "--json-out", str(out)], tmp_path, timeout_s=110)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(out.read_text())

    rows = result["rows"]
    assert {row["section"] for row in rows} == SECTIONS
    for row in rows:
        figures = [v for v in (row["baseline"], row["llmtap"]) if v is not None]
        assert figures and all(math.isfinite(v) for v in figures), row
        if row["target"]:
            assert row["passed"] in (True, False), row  # judged: the figure was taken
    assert result["writer"]["rows_after"] == result["writer"]["rows_before"] + result["options"]["writer_rows"]
    assert result["machine"]["cores"] and result["machine"]["mitmproxy"] and result["machine"]["duckdb"]
    assert "rows/s with bodies" in run.stdout  # the table is printed

    assert result["pids"]
    for pid in result["pids"]:
        assert not Path(f"/proc/{pid}").exists() or _reused_by_another(pid), f"process {pid} still runs"
    workdir = result["workdir"]
    assert not Path(workdir).exists()
    assert not [cmd for cmd in _command_lines() if workdir in cmd], "a process of the run still runs"


def run_bench(args: list[str], cwd: Path, timeout_s: float) -> subprocess.CompletedProcess:
    """Run the benchmark with `args`; past `timeout_s` stop it with SIGTERM, on which it stops every process it
    started (`subprocess.run`'s timeout kills it outright and would leave them all running through the suite)."""
    bench = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "bench_overhead.py"), *args], cwd=cwd,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = bench.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        bench.terminate()
        _, stderr = bench.communicate(timeout=60)
        raise AssertionError(f"the benchmark ran over {timeout_s:g} s:\n{stderr[-3000:]}") from None
    return subprocess.CompletedProcess(bench.args, bench.returncode, stdout, stderr)


def _reused_by_another(pid: int) -> bool:
    """A pid reused since the run by an unrelated process is not the run's: its command line says so."""
    try:
        return "bench" not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return True


def _command_lines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return lines


def test_the_benchmark_stopped_with_sigterm_stops_every_process_it_started(tmp_path):
    """`timeout`, CI and `kill` stop a run with SIGTERM, not Ctrl-C: the mock, the mitmdumps and the gateway go too."""
    bench = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "bench_overhead.py"), "--quick", "--only", "cache",
                              "--json-out", str(tmp_path / "bench.json")], cwd=tmp_path,
                             env={**os.environ, "TMPDIR": str(tmp_path)}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    started: dict[int, int] = {}
    try:
        assert bench.stderr is not None
        for line in bench.stderr:  # "round 1/1": every process of the run has started
            if "round 1/" in line:
                break
        else:
            raise AssertionError(f"the benchmark ended before its first round (exit {bench.wait()})")
        started = _children(bench.pid)
        assert len(started) >= 5, started  # the mock, three mitmdumps, the gateway
        bench.send_signal(signal.SIGTERM)
        bench.wait(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
        still_running = [pid for pid, started_at in started.items() if _start_time(pid) == started_at]
        for pid in still_running:  # leave nothing behind for the next test, whatever the outcome
            os.kill(pid, signal.SIGKILL)
    assert not still_running, f"processes {still_running} outlived the benchmark"
    assert not list(tmp_path.glob("llmtap-bench-*")), "the run's work directory is left behind"


def _children(pid: int) -> dict[int, int]:
    """The processes whose parent is `pid`, with their start times (a pid reused later has another)."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and int(stat[1]) == pid:
            children[int(entry.name)] = int(stat[19])
    return children


def _start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks after boot), None when no such process runs."""
    stat = _stat(pid)
    return int(stat[19]) if stat else None


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/`pid`/stat after the command name (state first), None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
