"""`llmtap logs`: the latest calls, newest first (as `llm logs` shows them), and `llmtap logs show ID`: one call
readably, its conversation by role, the answer, then tokens, cost, timings, attempts, properties and limits."""

from __future__ import annotations

import dataclasses
import functools
import sys
from collections.abc import Callable
from typing import Any

import click
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..analytics import queries
from ..analytics.queries import Rows
from ..analytics.scope import Scope
from ..config import Config
from ..money import format_usd
from ..render import literal, rich_table, table_cell_text
from .options import config_option, format_options, scope_options
from .output import emit, show, sql_limit
from .reading import read_log, warn_if_storage_unhealthy

HEADERS = {"tokens_in": "in", "tokens_out": "out", "cost_usd": "cost", "latency_ms": "ms"}


def _unless_subcommand(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run the group's own body (the list) only without a subcommand, before its options load a config: `logs show
    ID --config FILE` reads the config `show` is given, not one the lookup order finds."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if click.get_current_context().invoked_subcommand is not None:
            return None
        return command(*args, **kwargs)
    return wrapper


@click.group(invoke_without_command=True)
@_unless_subcommand
@config_option()
@scope_options(default_since=None)
@click.option("-n", "--count", type=click.IntRange(min=1), default=20, show_default=True, help="how many calls",
              callback=sql_limit)
@click.option("-q", "--query", "text", metavar="TEXT", help="only calls whose prompt or answer contains TEXT "
                                                           "(any case)")
@format_options
def logs(config: Config, scope: Scope, count: int, text: str | None, output_format: str) -> int:
    """The latest calls, newest first: time, id, model, user, tokens, cost, latency, cache, status.

    `llmtap logs show ID` shows one call (an id's first characters are enough)."""
    warn_if_storage_unhealthy(config)
    scope = dataclasses.replace(scope, text=text) if text else scope
    empty = "no calls logged" + (" in this scope" if scope != Scope() else "")
    if output_format != "table":
        emit(read_log(config, queries.logs, scope, count), output_format, empty)
        return 0

    def table(rows: Rows) -> None:
        if not rows.rows:
            print(empty)
            return
        laid_out = rich_table(rows.columns, rows.types, rows.rows, HEADERS)
        # Ten columns in 80: a line under the header, one space between columns, and only model and user wrap.
        laid_out.box, laid_out.show_edge, laid_out.padding = box.SIMPLE_HEAD, False, (0, 0)
        for column in laid_out.columns:
            column.no_wrap = column.header not in ("model", "user")
        show(laid_out)
    table(read_log(config, lambda log: queries.logs(log, scope, count, compact=True)))
    return 0


@logs.command("show")
@click.argument("request_id")
@config_option()
@click.option("--json", "as_json", is_flag=True, help="the whole row as one JSON object")
def show_call(request_id: str, config: Config, as_json: bool) -> int:
    """One call: its conversation by role, the answer, tokens, cost, timings, attempts, properties and limits.
    REQUEST_ID may be the first characters of the id, as `llmtap logs` shows it."""
    warn_if_storage_unhealthy(config)

    def render(rows: Rows) -> int:
        if not rows.rows:
            print(f"llmtap: no call with an id starting {request_id!r}", file=sys.stderr)
            return 1
        found = rows.dicts()
        if len(found) > 1 and found[0]["request_id"] != request_id:
            print(f"llmtap: {request_id!r} starts several ids ({found[0]['request_id']}, {found[1]['request_id']}"
                  ", …): give more of it", file=sys.stderr)
            return 1
        if as_json:
            emit(Rows(rows.columns, rows.types, rows.rows[:1]), "json", empty="")
        else:
            show(*call_view(found[0]))
        return 0

    return render(read_log(config, queries.call, request_id.strip()))


# ---------------------------------------------------------------------------------------------- one call

def call_view(row: dict[str, Any]) -> list[RenderableType]:
    """What `logs show` prints for one row: the heading, the conversation, the answer, then the details."""
    from ..wire.turns import call_turns  # the formats bring mitmproxy and genai-prices: only `logs show` needs them

    turns = call_turns(row["path"], row["request_body"], row["response_body"])
    heading = Text(literal(f"{row['request_id']}  {table_cell_text('created_at', row['created_at'])} UTC  "
                           f"{row['way']} → {row['provider'] or 'no provider'}  {row['method']} {row['path']}"),
                   style="bold")
    parts: list[RenderableType] = [heading]
    if not turns.known_format:
        parts.append(_section("request", turns.conversation))
        parts.append(_section("answer", turns.answer))
    else:
        parts.append(_section("conversation", turns.conversation))
        parts.append(_section("answer" + (" (streamed)" if row["stream"] else ""), turns.answer))
    parts.append(_section("details", details(row)))
    return parts


def details(row: dict[str, Any]) -> list[tuple[str, str]]:
    """The call's facts below its text, as (label, value) lines; what the row does not hold is left out."""
    lines: list[tuple[str, str]] = []

    def add(label: str, *values: Any, sep: str = "  ") -> None:
        text = sep.join(str(v) for v in values if v not in (None, "", [], {}))
        if text:
            lines.append((label, text))

    model = row["model"] or row["model_requested"]
    if row["model_requested"] and row["model"] and row["model_requested"] != row["model"]:
        model = f"{row['model']} (asked for {row['model_requested']})"
    add("model", model)
    add("status", row["status"] if row["status"] is not None else "no answer", row["error"], sep=" — ")
    add("tokens", *_tokens(row))
    add("cost", _cost(row))
    add("timings", *(f"{name} {table_cell_text('x_ms', row[column])} ms" for name, column in
                     (("latency", "latency_ms"), ("ttfb", "ttfb_ms"), ("ttft", "ttft_ms"))
                     if row[column] is not None))
    add("cache", row["cache_status"],
        f"saved {format_usd(row['cost_saved_usd'])}" if row["cost_saved_usd"] is not None else None)
    if row["attempts"] or row["retries"] or row["fallback_from"]:
        add("attempts", f"{row['attempts']} tries, {row['retries'] or 0} retries",
            f"fallback from {row['fallback_from']}" if row["fallback_from"] else None, sep=", ")
    for number, attempt in enumerate(row["attempt_log"] or [], 1):
        add(f"  try {number}", *_attempt(attempt))
    add("user", row["user_id"])
    add("session", row["session_id"], row["session_path"], row["session_name"])
    add("prompt", row["prompt_id"])
    add("key", row["key_owner"], row["key_hash"])
    add("properties", *(f"{k}={v}" for k, v in (row["properties"] or {}).items()))
    add("rate limits", *(f"{k}: {v}" for k, v in sorted((row["ratelimit"] or {}).items())), sep="\n")
    add("notes", *(row["notes"] or []), sep="\n")
    add("upstream", row["upstream"])
    return lines


def _tokens(row: dict[str, Any]) -> list[str]:
    def count(column: str) -> str | None:
        return f"{row[column]:,}" if row[column] is not None else None

    parts = []
    if row["input_tokens"] is not None:
        extra = ", ".join(f"{count(c)} {what}" for c, what in (("cached_input_tokens", "cached"),
                                                               ("cache_write_input_tokens", "written to cache"))
                          if row[c])
        parts.append(f"{count('input_tokens')} in" + (f" ({extra})" if extra else ""))
    if row["output_tokens"] is not None:
        reasoning = f" ({count('reasoning_tokens')} reasoning)" if row["reasoning_tokens"] else ""
        parts.append(f"{count('output_tokens')} out{reasoning}")
    return parts


def _cost(row: dict[str, Any]) -> str:
    if row["cost_usd"] is None:
        return f"unknown ($?): {row['price_error'] or 'no reason recorded'}"
    return f"{format_usd(row['cost_usd'])} ({row['price_source']})" if row["price_source"] else format_usd(
        row["cost_usd"])


def _attempt(attempt: dict[str, Any]) -> list[Any]:
    return [attempt.get("provider"), attempt.get("model"),
            attempt.get("status") if attempt.get("status") is not None else "no answer",
            f"{attempt['latency_ms']:,.0f} ms" if attempt.get("latency_ms") is not None else None,
            f"waited {attempt['wait_ms']:,.0f} ms" if attempt.get("wait_ms") else None,
            f"retry-after {attempt['retry_after_s']:g} s" if attempt.get("retry_after_s") is not None else None,
            attempt.get("error")]


def _section(title: str, lines: list[tuple[str, str]]) -> RenderableType:
    """A titled block of (label, text) lines; every text is shown as it is, never read as rich markup."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, text in lines:
        grid.add_row(Text(literal(label)), Text(literal(text)))
    return Group(Text(""), Text(title.upper(), style="bold"), grid)
