"""Sessions: `llmtap sessions` lists them, `llmtap trace SESSION_ID` shows one as a tree of its calls."""

from __future__ import annotations

from typing import Any

import click
from rich.text import Text
from rich.tree import Tree

from ..analytics import queries
from ..analytics.queries import Rows
from ..analytics.scope import Scope
from ..config import Config
from ..render import literal, rich_table, table_cell_text
from .options import config_option, format_options, scope_options
from .output import emit, show, sql_limit
from .reading import ReadFailed, read_log, warn_if_storage_unhealthy

SESSION_HEADERS = {"cost_usd": "cost", "unpriced": "no price", "duration_ms": "duration ms"}
TABLE_COLUMNS = ("session", "calls", "cost_usd", "tokens", "errors", "started", "duration_ms")
TOTAL_COLUMNS = ("calls", "cost_usd", "unpriced", "tokens", "errors", "duration_ms")


@click.command()
@config_option()
@scope_options(default_since="7d")
@click.option("-n", "--count", type=click.IntRange(min=0), default=50, show_default=True,
              help="the newest N sessions; 0 for all", callback=sql_limit)
@format_options
def sessions(config: Config, scope: Scope, count: int, output_format: str) -> None:
    """Sessions (calls sharing a Helicone-Session-Id), newest first: calls, users, models, cost, tokens, errors,
    start and duration. A session's cost is unknown ($?) when one of its calls has no price; `no price` counts
    those calls."""
    warn_if_storage_unhealthy(config)
    rows = read_log(config, queries.sessions, scope, count or None)
    if output_format == "table":
        rows = named(rows).only(TABLE_COLUMNS)
    emit(rows, output_format, empty="no sessions in this range (calls carry one with Helicone-Session-Id)",
         headers=SESSION_HEADERS)


@click.command()
@click.argument("session_id")
@config_option()
@format_options
def trace(session_id: str, config: Config, output_format: str) -> None:
    """One session as a tree by Helicone-Session-Path (/a/b nests under /a), each call with its start after the
    session's first call, model, latency, tokens, cost and status; then the session's totals. SESSION_ID may be a
    unique prefix. --json/--csv give the calls as rows, with their path, depth and offset."""
    warn_if_storage_unhealthy(config)
    matches = [row[0] for row in read_log(config, queries.sessions_matching, session_id).rows]
    if len(matches) != 1:
        problem = "no session" if not matches else "more than one session"
        raise ReadFailed(f"{problem} with an id starting {session_id!r} (see `llmtap sessions`)")
    calls = read_log(config, queries.trace, matches[0])
    if output_format != "table":
        emit(calls, output_format, empty=f"no calls in session {matches[0]}")
        return
    totals = read_log(config, queries.session_totals, matches[0])
    show(session_tree(matches[0], totals.dicts()[0]["name"], calls.dicts()), totals_table(totals))


def session_tree(session_id: str, name: str | None, calls: list[dict[str, Any]]) -> Tree:
    """The calls as a rich Tree: one branch per path level (a level without calls of its own included), each call
    a leaf under its path in the order it arrived; calls without a path at the root."""
    # Text, not str: a session id, name, path, model or error is logged text, never read as rich markup.
    root = Tree(Text(literal(f"session {session_id}" + (f" ({name})" if name else ""))))
    branches: dict[str, Tree] = {}
    for call in calls:
        node = root
        if call["path"] is not None:
            levels = call["path"].strip("/").split("/")
            for depth in range(1, len(levels) + 1):
                path = "/" + "/".join(levels[:depth])
                if path not in branches:
                    branches[path] = node.add(Text(literal(path)))
                node = branches[path]
        node.add(Text(literal(call_text(call))))
    return root


def call_text(call: dict[str, Any]) -> str:
    """One call in words: `+1.204s gpt-4o-mini 812 ms 31+12 tokens $0.0000121 200`."""
    tokens = f"{table_cell_text('t', call['input_tokens']) or '?'}+{table_cell_text('t', call['output_tokens']) or '?'}"
    status = str(call["status"]) if call["status"] is not None else "no answer"
    parts = [f"+{call['offset_ms'] / 1000:.3f}s", call["model"] or "?",
             f"{table_cell_text('latency_ms', call['latency_ms']) or '?'} ms", f"{tokens} tokens",
             table_cell_text("cost_usd", call["cost_usd"]), status]
    if call["error"]:
        parts.append(call["error"])
    return " ".join(parts)


def totals_table(totals: Rows) -> Any:
    """The session's totals row as a table."""
    kept = totals.only(TOTAL_COLUMNS)
    return rich_table(kept.columns, kept.types, kept.rows, SESSION_HEADERS, title="totals")


def named(sessions: Rows) -> Rows:
    """Sessions with each name under its id in the `session` cell, so a table of them fits 80 columns."""
    at_id, at_name = sessions.columns.index("session"), sessions.columns.index("name")
    return Rows(sessions.columns, sessions.types, [
        tuple(f"{row[at_id]}\n{row[at_name]}" if i == at_id and row[at_name] else value for i, value in enumerate(row))
        for row in sessions.rows])
