"""`llmtap tail`: calls as they land in the log, one line each, with running totals, until Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading
import time
from contextlib import nullcontext
from typing import Any

import click
from rich.live import Live
from rich.text import Text

from ..analytics import queries
from ..analytics.queries import Rows
from ..analytics.scope import Scope
from ..config import Config
from ..log_file import first_line
from ..money import format_usd
from ..render import json_line, literal, table_cell_text
from .options import config_option, format_options, scope_options
from .output import console
from .reading import require_log, warn_if_storage_unhealthy

POLL_S = 0.3  # one quick read-only query per poll: new rows show within a second of the writer's batch


@click.command()
@config_option()
@scope_options(default_since=None)
@format_options
def tail(config: Config, scope: Scope, output_format: str) -> int:
    """Calls as they happen (time, model, user, tokens, cost, latency, cache, status) with running totals: calls,
    spend, errors, cache hits. Ctrl-C stops it and prints the totals."""
    import duckdb

    warn_if_storage_unhealthy(config)
    log = require_log(config)
    out = console()
    last: dict[str, Any] = {}
    interrupted = stop_on_ctrl_c()
    try:
        start = after = queries.last_seq(log)
        print(f"llmtap: following {log}; Ctrl-C stops", file=sys.stderr, flush=True)
        live = Live(Text("waiting for calls…"), console=out, transient=True) if (
            output_format == "table" and out.is_terminal) else nullcontext()
        with live:
            while not interrupted.is_set():
                rows = queries.tail(log, scope, start, after)
                for row in rows.rows:
                    print_call(rows, row, output_format, live if isinstance(live, Live) else None)
                if rows.rows:
                    last = rows.dicts()[-1]
                    after = last["seq"]
                    if isinstance(live, Live):
                        live.update(Text(totals_line(last), style="bold"))
                time.sleep(POLL_S)
    except (KeyboardInterrupt, duckdb.InterruptException):  # Ctrl-C, between polls or during one
        pass
    except duckdb.Error as e:
        if not interrupted.is_set():  # else a read Ctrl-C cut short, in DuckDB's words
            print(f"llmtap: cannot read the log {log}: {first_line(e)}", file=sys.stderr)
            return 1
    print(totals_line(last), file=sys.stderr if output_format != "table" else sys.stdout, flush=True)
    return 0


def stop_on_ctrl_c() -> threading.Event:
    """An event Ctrl-C sets, besides raising KeyboardInterrupt: DuckDB, checking for signals while it opens the file
    or reads, may turn the interrupt into an error of its own that a retry swallows; the loop still ends."""
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        interrupted.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    return interrupted


COLUMNS = ("time", "model", "user", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "cache", "status")


def print_call(rows: Rows, row: tuple, output_format: str, live: Live | None) -> None:
    """One call as it lands: a JSON object (with the running totals), a CSV line, or a line of text."""
    if output_format == "json":
        print(json_line(rows.columns, rows.types, row), flush=True)
        return
    values = dict(zip(rows.columns, row, strict=True))
    if output_format == "csv":
        import csv

        from ..render import cell_text

        writer = csv.writer(sys.stdout)
        if values["calls"] == 1:
            writer.writerow(rows.columns)
        writer.writerow([cell_text(v, t) for v, t in zip(row, rows.types, strict=True)])
        sys.stdout.flush()
        return
    line = call_line(values)
    if live is not None:
        live.console.print(Text(line))
    else:
        print(line, flush=True)


def call_line(values: dict[str, Any]) -> str:
    """`09:30:01 gpt-4o-mini alice 12→34 tok $0.0000082 350 ms HIT 200`, what the row holds, under 80 columns."""
    tokens = (f"{table_cell_text('n', values['tokens_in'])}→{table_cell_text('n', values['tokens_out'])} tok"
              if values["tokens_in"] is not None or values["tokens_out"] is not None else "")
    latency = f"{table_cell_text('latency_ms', values['latency_ms'])} ms" if values["latency_ms"] is not None else ""
    status = str(values["status"]) if values["status"] is not None else "failed"
    parts = [values["time"].strftime("%H:%M:%S"), _cut(values["model"] or "?", 24), _cut(values["user"] or "-", 12),
             tokens, table_cell_text("cost_usd", values["cost_usd"]), latency, values["cache"] or "", status]
    return literal(" ".join(p for p in parts if p))


def totals_line(last: dict[str, Any]) -> str:
    """The running totals after the last call seen (all zero when none came)."""
    calls = last.get("calls", 0)
    spend = format_usd(last["spend_usd"]) if last.get("spend_usd") is not None else "$0" if not last.get(
        "unpriced") else "$?"
    unpriced = f" (+{last['unpriced']:,} unpriced)" if last.get("unpriced") else ""
    return (f"{_count(calls, 'call')}, spend {spend}{unpriced}, {_count(last.get('errors', 0), 'error')}, "
            f"{_count(last.get('cache_hits', 0), 'cache hit')}")


def _count(number: int, what: str) -> str:
    return f"{number:,} {what}" + ("" if number == 1 else "s")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
