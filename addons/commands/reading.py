"""How a command reads the log: one warning first when the log is missing rows, and one line (exit status 1) when
the log is missing or DuckDB cannot read it, the same for every command."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..analytics.queries import Rows
from ..analytics.scope import ScopeError
from ..config import Config
from ..log_file import first_line


class ReadFailed(click.ClickException):
    """The log is missing, DuckDB cannot read it, or the query failed: one line, exit status 1 (not a mistyped
    command line: that is 2)."""

    exit_code = 1


def require_log(config: Config) -> Path:
    """The config's log file; ReadFailed when no gateway has written it yet."""
    if not config.storage_path.exists():
        raise ReadFailed(f"no log yet at {config.storage_path} (start the gateway and make a call)")
    return config.storage_path


def read_log(config: Config, query: Callable[..., Rows], *args: Any) -> Rows:
    """`query(log, *args)` over the config's log. A missing or unreadable log, or a failed query, raises ReadFailed;
    a combination of options no single option's parser could refuse (a ScopeError from the query) is a usage
    error."""
    import duckdb

    from ..log_file import log_file_problem

    log = require_log(config)
    try:
        return query(log, *args)
    except ScopeError as e:
        raise click.UsageError(str(e)) from None
    except duckdb.IOException as e:  # the file itself: say what to do, as start-up would
        raise ReadFailed(log_file_problem(log) or f"cannot read the log {log}: {first_line(e)}") from None
    except duckdb.Error as e:  # the query (`llmtap sql`'s own, say): DuckDB's words say what is wrong
        raise ReadFailed(first_line(e)) from None


def warn_if_storage_unhealthy(config: Config) -> None:
    """One line on stderr when the log is missing rows, so a reader does not take a partial log for the whole."""
    from ..spool import fallback_spool_dir
    from ..store_health import read_health

    fallback = fallback_spool_dir(config.storage_path, config.storage.fallback_spool_dir)
    health = read_health(config.storage_path, fallback)
    if health is not None and health.failing:
        print(f"llmtap: warning: the log is missing rows ({health.reason}); {health.rows_waiting:,} wait, "
              f"{health.rows_lost:,} lost. See `llmtap status`.", file=sys.stderr)


