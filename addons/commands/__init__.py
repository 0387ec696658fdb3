"""The `llmtap` command group: one module per family of commands, each command's help its docstring.

`main` runs the group and turns every mistake a user can type (an unknown flag, a time or property that cannot be
read, a bad config) into one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import sys

import click

from ..locations import LOOKUP_ORDER
from . import cache, dashboard, export, gateway, limits, logs, reports, sessions, sql, tail
from .alerts import alerts as alert_commands


@click.group(epilog=LOOKUP_ORDER, context_settings={"help_option_names": ["-h", "--help"]})
def llmtap() -> None:
    """A self-hosted AI gateway for LLM observability: every LLM call logged to DuckDB, with reports over it."""


for command in (gateway.start, gateway.env, gateway.status, sql.sql, cache.cache,
                reports.costs, reports.users, reports.trends,
                logs.logs, tail.tail, export.export,
                alert_commands,
                sessions.sessions, sessions.trace, limits.limits, dashboard.dashboard):
    llmtap.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Run `llmtap` with `argv` (default: the command line); the exit status."""
    try:
        result = llmtap.main(args=argv, prog_name="llmtap", standalone_mode=False)
    except click.exceptions.Abort:
        print("llmtap: interrupted", file=sys.stderr)
        return 130
    except click.ClickException as e:
        where = e.ctx.command_path if isinstance(e, click.UsageError) and e.ctx else "llmtap"
        print(f"{where}: {e.format_message()}", file=sys.stderr)
        return e.exit_code
    if isinstance(result, int):  # a command's exit status; --help and the like return None
        return result
    return 0
