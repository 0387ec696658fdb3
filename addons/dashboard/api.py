"""The dashboard's JSON endpoints: what an endpoint receives, how it is registered, and how its answer is written.

An endpoint is a function `(log, request) -> dict` registered with `@endpoint("name")`, served at `/api/name` (and
`/api/name/<id>` when it takes an id). It asks the query layer (`analytics.queries`) and returns its `Rows` as they
are; `encode` writes them the way `llmtap ... --json` does: money as exact decimal numbers, JSON columns as JSON,
times as ISO text. The URL's arguments are the CLI's filters under the same names, so a view can be shared:

    since, until      1h, 24h, 7d, 30d, a date or an ISO time (until is exclusive)
    model, provider, user, session, key (a gateway key's owner)   repeatable
    property          NAME=VALUE, repeatable (all must match)
    status            ok, error, a code (429) or a class (5xx)
    cache             hit or miss
    q                 text in the prompt or the answer
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..alerts.rules import AlertRule
from ..analytics.queries import Rows
from ..analytics.scope import Scope, ScopeError, parse_cache, parse_property, parse_range, parse_status
from ..render import json_line

DEFAULT_SINCE = "7d"  # as the terminal reports: the last week unless the URL says otherwise


class ApiError(Exception):
    """An answer other than 200: its status and a one-line message (sent as `{"error": message}`)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Request:
    """What an endpoint is asked: the URL's arguments (each name with its values, in order) and the id after the
    endpoint's name, if any (`/api/requests/<id>`); and the config's alert rules, which no URL names."""

    arguments: Mapping[str, list[str]]
    item: str | None = None
    alert_rules: tuple[AlertRule, ...] = ()  # the config's `alerts`, which the Alerts page measures

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The last value given for `name` (an empty value counts as not given)."""
        values = [v for v in self.arguments.get(name, []) if v.strip()]
        return values[-1].strip() if values else default

    def args(self, name: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in self.arguments.get(name, []) if v.strip())

    def int_arg(self, name: str, default: int, low: int, high: int) -> int:
        text = self.arg(name)
        if text is None:
            return default
        # ASCII digits only: str.isdigit() also takes '²', which int() refuses (that was a 500)
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            raise ApiError(400, f"{name}: expected a whole number from {low} to {high}, got {text!r}")
        return int(text)

    def scope(self, default_since: str | None = DEFAULT_SINCE) -> Scope:
        """The time range and filters the URL names (see the module docstring); a value that cannot be read is a
        400 naming the argument."""
        try:
            since, until = parse_range(self.arg("since", default_since), self.arg("until"), datetime.now(UTC))
        except ScopeError as e:
            raise ApiError(400, str(e)) from None
        return Scope(since=since, until=until, models=self.args("model"), providers=self.args("provider"),
                     users=self.args("user"), sessions=self.args("session"), key_owners=self.args("key"),
                     properties=tuple(self._parsed("property", parse_property, v) for v in self.args("property")),
                     status=self._parsed("status", parse_status, self.arg("status")),
                     cache=self._parsed("cache", parse_cache, self.arg("cache")),
                     text=self.arg("q"))

    @staticmethod
    def _parsed(name: str, parse: Callable[[str], Any], value: str | None) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ScopeError as e:
            raise ApiError(400, f"{name}: {e}") from None


Endpoint = Callable[[Path, Request], dict[str, Any]]
ENDPOINTS: dict[str, Endpoint] = {}


def endpoint(name: str) -> Callable[[Endpoint], Endpoint]:
    """Register `function` as the endpoint `/api/<name>`."""

    def register(function: Endpoint) -> Endpoint:
        if name in ENDPOINTS:
            raise ValueError(f"two dashboard endpoints are named {name!r}")
        ENDPOINTS[name] = function
        return function
    return register


def encode(answer: Any) -> str:
    """An endpoint's answer as JSON: `Rows` as `{"columns", "types", "rows": [{column: value}, ...]}` (values as
    `--json` writes them), dicts and lists recursively, anything else as `json.dumps` writes it."""
    if isinstance(answer, Rows):
        rows = ", ".join(json_line(answer.columns, answer.types, row) for row in answer.rows)
        return (f'{{"columns": {json.dumps(answer.columns)}, "types": {json.dumps(answer.types)}, '
                f'"rows": [{rows}]}}')
    if isinstance(answer, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {encode(v)}" for k, v in answer.items()) + "}"
    if isinstance(answer, list | tuple):
        return "[" + ", ".join(encode(v) for v in answer) + "]"
    return json_line(["v"], [""], (answer,))[len('{"v": '):-1]  # one value, written as a row's cell is
