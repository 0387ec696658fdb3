"""The benchmark's results: one row per measure (baseline, llmtap, their ratio, the issue's target and whether it is
met), rendered as an aligned table, and the machine they were measured on."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One measure. `ratio` is llmtap / baseline; `passed` is None when the measure has no target (shown for
    context) or could not be taken."""

    section: str
    measure: str
    baseline_name: str
    baseline: float | None
    llmtap: float | None
    target: str = ""
    check: Callable[[float, float | None], bool] | None = None  # (value judged, ratio) -> target met

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0) or self.llmtap is None:
            return None
        return self.llmtap / self.baseline

    @property
    def passed(self) -> bool | None:
        if self.check is None or self.llmtap is None:
            return None
        return self.check(self.llmtap, self.ratio)

    def as_json(self) -> dict[str, object]:
        return {"section": self.section, "measure": self.measure, "baseline_name": self.baseline_name,
                "baseline": self.baseline, "llmtap": self.llmtap, "ratio": self.ratio, "target": self.target,
                "passed": self.passed}


def ratio_at_most(limit: float) -> Callable[[float, float | None], bool]:
    """A target on the ratio to the baseline: llmtap / baseline <= `limit`."""
    return lambda _value, ratio: ratio is not None and ratio <= limit


def ratio_at_least(limit: float) -> Callable[[float, float | None], bool]:
    """A target on the ratio to the baseline: llmtap / baseline >= `limit`."""
    return lambda _value, ratio: ratio is not None and ratio >= limit


def value_at_most(limit: float) -> Callable[[float, float | None], bool]:
    """A target on llmtap's own figure: <= `limit`."""
    return lambda value, _ratio: value <= limit


def value_at_least(limit: float) -> Callable[[float, float | None], bool]:
    """A target on llmtap's own figure: >= `limit`."""
    return lambda value, _ratio: value >= limit


def render(rows: list[Row]) -> str:
    """The rows as a plain aligned table (pipes and logs keep it), a section heading line before each section."""
    header = ("measure", "baseline", "", "llmtap", "ratio", "target", "met")
    lines: list[tuple[str, ...]] = []
    for row in rows:
        lines.append((row.measure, row.baseline_name, _number(row.baseline), _number(row.llmtap),
                      "" if row.ratio is None else f"x{row.ratio:.2f}", row.target,
                      {True: "pass", False: "FAIL", None: ""}[row.passed]))
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    right = {2, 3, 4}
    out, section = [], None

    def fmt(cells: tuple[str, ...]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths,
                                                                                                strict=True))).rstrip()

    out.append(fmt(header))
    for row, cells in zip(rows, lines, strict=True):
        if row.section != section:
            section = row.section
            out.append(f"-- {section}")
        out.append(fmt(cells))
    return "\n".join(out)


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def machine() -> dict[str, object]:
    """What the figures were measured on: CPU, cores, RAM, Python, mitmproxy and duckdb versions, git commit."""
    import duckdb
    from mitmproxy.version import VERSION

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True,
                            text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(mem_kib / 1024 ** 2, 1),
            "python": sys.version.split()[0], "mitmproxy": VERSION, "duckdb": duckdb.__version__,
            "os": platform.platform(), "git_commit": commit, "load_average_at_start": os.getloadavg()}


def describe(machine: dict[str, object]) -> str:
    """One line saying what the figures were measured on, for under the table."""
    return (f"{machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM; Python {machine['python']}, "
            f"mitmproxy {machine['mitmproxy']}, duckdb {machine['duckdb']}; llmtap {machine['git_commit']}; "
            f"load average {_loads(machine.get('load_average_at_start'))} at the start, "
            f"{_loads(machine.get('load_average_at_end'))} at the end")


def _loads(loads: object) -> str:
    return "/".join(f"{n:.1f}" for n in loads) if isinstance(loads, tuple | list) else "?"
