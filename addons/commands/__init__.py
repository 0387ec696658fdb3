"""The `llmtap` command group: one module per family of commands, each command's help its docstring.

`main` runs the group and turns every mistake a user can type (an unknown flag, a time or property that cannot be
read, a bad config) into one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import click

from ..locations import LOOKUP_ORDER

# Each command, as `module.attribute` in this package. A command's module is imported when that command runs (or
# `--help` lists it): `llmtap start` does not import rich, the reports' queries and every other command first.
COMMANDS = {
    "start": "gateway.start", "env": "gateway.env", "status": "gateway.status", "sql": "sql.sql",
    "cache": "cache.cache", "costs": "reports.costs", "users": "reports.users", "trends": "reports.trends",
    "budgets": "budgets.budgets", "logs": "logs.logs", "tail": "tail.tail", "export": "export.export",
    "alerts": "alerts.alerts", "sessions": "sessions.sessions", "trace": "sessions.trace", "limits": "limits.limits",
    "dashboard": "dashboard.dashboard",
}


class LazyGroup(click.Group):
    """A command group whose commands (`COMMANDS`) are imported when they are looked up, click's documented way of
    loading subcommands lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, attribute = where.rsplit(".", 1)
        command: click.Command = getattr(importlib.import_module(f".{module}", __name__), attribute)
        return command


@click.group(cls=LazyGroup, epilog=LOOKUP_ORDER, context_settings={"help_option_names": ["-h", "--help"]})
def llmtap() -> None:
    """A self-hosted AI gateway for LLM observability: every LLM call logged to DuckDB, with reports over it."""


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
