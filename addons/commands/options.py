"""The options commands share, defined once: `--config`, the time range and filters of a report, and the output
format. Each decorator turns what was typed into what a command needs (a loaded `Config`, a `Scope`, a format), so
a command's body never parses; a value that cannot be read is a click usage error (one line, exit status 2)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from ..analytics.scope import TIME_HELP, Scope, ScopeError, parse_cache, parse_property, parse_status, parse_time
from ..config import Config, ConfigError, load_config
from ..locations import find_config


class ConfigProblem(click.ClickException):
    """The config file is missing or invalid: one line, exit status 2 (as a usage error)."""

    exit_code = 2

    def format_message(self) -> str:
        return f"config error: {self.message}"


def load_chosen_config(path: str | None, for_start: bool = False) -> Config:
    """The config `--config` names, else the one the lookup order finds (said on stderr, so `eval "$(llmtap env)"`
    still reads only export lines)."""
    choice = find_config(path, for_start=for_start)
    if choice.implicit:
        print(f"llmtap: config {choice.path or 'built-in defaults'} ({choice.why})", file=sys.stderr)
    try:
        return load_config(choice.path)
    except ConfigError as e:
        raise ConfigProblem(str(e)) from None


def config_option(for_start: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--config FILE`; the command receives `config`, the loaded Config."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @click.option("--config", "config_path", metavar="FILE",
                      help="YAML config (default: see `llmtap --help`)")
        @functools.wraps(command)
        def wrapper(*args: Any, config_path: str | None, **kwargs: Any) -> Any:
            return command(*args, config=load_chosen_config(config_path, for_start), **kwargs)
        return wrapper
    return decorate


def _parsed(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback running `parse` on each value, a ScopeError becoming a usage error naming the option."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        try:
            if isinstance(value, tuple):
                return tuple(parse(v) for v in value)
            return None if value is None else parse(value)
        except ScopeError as e:
            raise click.BadParameter(str(e), ctx=ctx, param=param) from None
    return callback


def scope_options(default_since: str | None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The time range and the filters every report shares; the command receives `scope`, a Scope.
    `default_since`: the start when no --since is given (`7d` for reports, None for everything)."""
    since_help = f"calls from this time on: {TIME_HELP}" + (f" (default {default_since})" if default_since else
                                                             " (default: from the first call)")
    options = [
        click.option("--since", help=since_help),
        click.option("--until", help="calls before this time (same forms as --since; default: now)"),
        click.option("-m", "--model", "models", multiple=True, help="the model answered or asked for (repeatable)"),
        click.option("--provider", "providers", multiple=True, help="provider name as in the config (repeatable)"),
        click.option("--user", "users", multiple=True, help="Helicone-User-Id (repeatable)"),
        click.option("--property", "properties", multiple=True, metavar="NAME=VALUE",
                     callback=_parsed(parse_property),
                     help="a Helicone-Property-<Name> value, name in any case (repeatable: all must match)"),
        click.option("--session", "sessions", multiple=True, help="Helicone-Session-Id (repeatable)"),
        click.option("--status", callback=_parsed(parse_status), help="ok, error, a code (429) or a class (5xx)"),
        click.option("--cache", callback=_parsed(parse_cache), help="hit or miss"),
        click.option("--key-owner", "key_owners", multiple=True, help="the gateway key's owner (repeatable)"),
    ]

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def wrapper(*args: Any, since: str | None, until: str | None, models: tuple[str, ...],
                    providers: tuple[str, ...], users: tuple[str, ...], properties: tuple[tuple[str, str], ...],
                    sessions: tuple[str, ...], status: str | None, cache: str | None, key_owners: tuple[str, ...],
                    **kwargs: Any) -> Any:
            now = datetime.now(UTC)
            start, end = _time("--since", since or default_since, now), _time("--until", until, now)
            if start is not None and end is not None and end <= start:  # an empty range is a mix-up, not a finding
                started = f"--since {since}" if since else f"--since (default {default_since})"
                raise click.BadParameter(f"--until {until} is not after {started}", param_hint="'--until'")
            scope = Scope(since=start, until=end,
                          models=models, providers=providers, users=users, properties=properties,
                          sessions=sessions, status=status, cache=cache, key_owners=key_owners)
            return command(*args, scope=scope, **kwargs)
        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper
    return decorate


def _time(option: str, text: str | None, now: datetime) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text, now)
    except ScopeError as e:
        raise click.BadParameter(str(e), param_hint=f"'{option}'") from None


def format_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--json` (one object per line) and `--csv`; the command receives `output_format`: json, csv, or table (a rich
    table on a terminal, plain text fitted to 80 columns in a pipe)."""

    @click.option("--json", "as_json", is_flag=True, help="one JSON object per line")
    @click.option("--csv", "as_csv", is_flag=True, help="CSV with a header line")
    @functools.wraps(command)
    def wrapper(*args: Any, as_json: bool, as_csv: bool, **kwargs: Any) -> Any:
        if as_json and as_csv:
            raise click.UsageError("choose one of --json and --csv")
        return command(*args, output_format="json" if as_json else "csv" if as_csv else "table", **kwargs)
    return wrapper
