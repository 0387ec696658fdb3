"""The one way of reading the log: `run` a query and get `Rows` back; `scoped` turns a Scope into the `calls` CTE
every query starts from."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..batch_writer import read_log_typed, reading
from .scope import Scope


@dataclass
class Rows:
    """What a query returns: column names, their DuckDB types and the rows, in the query's order."""

    columns: list[str]
    types: list[str]
    rows: list[tuple]

    def __len__(self) -> int:
        return len(self.rows)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def only(self, names: Iterable[str]) -> Rows:
        """These rows with only the columns `names`, in that order (what a narrow view shows)."""
        keep = [self.columns.index(name) for name in names]
        return Rows([self.columns[i] for i in keep], [self.types[i] for i in keep],
                    [tuple(row[i] for i in keep) for row in self.rows])


def run(log: Path, sql: str, params: list[Any] | None = None) -> Rows:
    """Run one read-only query on the log, while a gateway may be writing it (waits for its lock, reads again after
    a torn read: batch_writer.read_log_typed)."""
    columns, types, rows = read_log_typed(log, sql, params)
    return Rows(columns, types, rows)


__all__ = ["Rows", "reading", "run", "scoped"]  # `reading`: several queries over one connection (batch_writer)


def scoped(scope: Scope) -> tuple[str, list[Any]]:
    """`calls`: the calls a scope selects, as a CTE every query starts from (DuckDB reads only the columns used)."""
    where, params = scope.where()
    return f"calls AS (SELECT * FROM requests WHERE {where})", params
