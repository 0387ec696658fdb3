"""The benchmark (scripts/bench_overhead.py) runs end to end on small counts. It asserts no timing: machines are noisy;
only that every section measured something and that the run left none of its processes behind."""

from __future__ import annotations

import json
import math
import os
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
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_overhead.py"), "--quick", "--log-10m", str(log),
                          "--json-out", str(out)], capture_output=True, text=True, timeout=110, cwd=tmp_path)
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
