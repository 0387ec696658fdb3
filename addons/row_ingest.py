"""How a batch of rows physically enters the `requests` table: two ways in, one transaction each.

- `SpooledLines`, the usual way: the batch's spool lines (JSON text, as `spool.encode_row` wrote them) go to DuckDB as
  one string (a few for a batch of big bodies), and DuckDB parses them and casts every value itself. Python builds no
  object per row or per value, so the writer thread hardly holds the GIL: with the Python way below it held it for 5-8
  ms per batch (decoding lines, building tuples, the appender taking them), long enough to stall the event loop
  several times a second under load (the gateway's p99). Lines are read strictly (`from_json_strict`): a key missing,
  a value of the wrong type or a lone surrogate makes DuckDB refuse the whole batch, and the caller writes it the
  Python way.
- `Staging`, the Python way, for decoded rows (rows that waited in memory, a previous run's spool, a batch DuckDB
  refused as lines, and the bisection that finds a refused row): rows go through DuckDB's appender into a temporary
  table, with MAP, STRUCT and LIST values as JSON text (the appender turns a Python dict into a MAP slowly, ~20 us
  for even an empty one), then into `requests` in one `INSERT ... SELECT` that casts them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import duckdb

from .log_file import first_line
from .record import COLUMNS

logger = logging.getLogger(__name__)

TABLE = "requests"
DURABLE_COMMIT = "commit succeeded and is durable"  # DuckDB's words when only the checkpoint after a commit failed


def column_types(db: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The `requests` table's columns and their DuckDB types, in table order."""
    return dict(db.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
        "AND table_schema = 'main' ORDER BY ordinal_position", [TABLE]).fetchall())


def is_nested(kind: str) -> bool:
    """A MAP, STRUCT or LIST type (what JSON text is cast into)."""
    return kind.startswith(("MAP", "STRUCT")) or kind.endswith("]")


class SpooledLines:
    """Rows written by `spool.encode_row` (every column present, NULL as null; datetimes, Decimals and maps that look
    tagged wrapped in one-key objects), inserted by DuckDB from their JSON text."""

    def __init__(self, db: duckdb.DuckDBPyConnection):
        # only the columns a spooled row names (`CallRecord.as_row`): one the user added (or a newer llmtap, before a
        # downgrade) is left NULL, as the Python way leaves it, where naming it would make DuckDB refuse every line
        types = {name: kind for name, kind in column_types(db).items() if name in COLUMNS}
        structure = json.dumps({name: _parsed_as(kind) for name, kind in types.items()})
        names = ", ".join(f'"{name}"' for name in types)
        values = ", ".join(_value(name, kind) for name, kind in types.items())
        self.sql = (f"INSERT INTO {TABLE} ({names}) SELECT {values} FROM (SELECT from_json_strict(line, "
                    f"{_sql_text(structure)}) AS r FROM (SELECT unnest(string_split(?, chr(10))) AS line) "
                    "WHERE line <> '')")

    def insert(self, db: duckdb.DuckDBPyConnection, chunks: list[str], count: int) -> None:
        """Insert `count` rows, one JSON object per line of `chunks`, one statement per chunk, in one transaction: all
        land or none."""
        def insert_chunks() -> None:
            for chunk in chunks:
                db.execute(self.sql, [chunk])

        in_transaction(db, count, insert_chunks)


def _parsed_as(kind: str) -> Any:
    """What `from_json_strict` reads a column's value as."""
    if is_nested(kind):
        return "JSON"  # cast after a map that looked tagged is unwrapped
    if kind.startswith("TIMESTAMP"):
        return {"$datetime": "VARCHAR"}
    if kind.startswith("DECIMAL"):
        return {"$decimal": "VARCHAR"}
    if kind == "JSON":
        return "VARCHAR"  # a body is JSON text in a JSON string
    return kind


def _value(name: str, kind: str) -> str:
    """The SELECT expression giving a column its value from the parsed line `r`."""
    field = f'r."{name}"'
    if is_nested(kind):
        wrapped = f"""json_extract({field}, '$."$dict"')"""
        return f"CAST(CASE WHEN json_keys({field}) = ['$dict'] THEN {wrapped} ELSE {field} END AS {kind})"
    if kind.startswith("TIMESTAMP"):
        return f'CAST({field}."$datetime" AS {kind})'
    if kind.startswith("DECIMAL"):
        return f'CAST({field}."$decimal" AS {kind})'
    if kind == "JSON":
        return f"CAST({field} AS JSON)"
    return field


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Staging:
    """A temporary table shaped as `requests` but with text where `requests` has a MAP, STRUCT or LIST column: rows
    are appended there with those values as JSON text, then moved into `requests` with DuckDB casting them."""

    NAME = "llmtap_staging"

    def __init__(self, db: duckdb.DuckDBPyConnection):
        self.types = column_types(db)
        self.nested = {name for name, kind in self.types.items() if is_nested(kind)}
        columns = ", ".join(f'"{name}" {"VARCHAR" if name in self.nested else kind}'
                            for name, kind in self.types.items())
        db.execute(f"CREATE OR REPLACE TEMPORARY TABLE {self.NAME} ({columns})")

    def append(self, db: duckdb.DuckDBPyConnection, records: list[dict[str, Any]]) -> None:
        """Append rows in one transaction: all land or none."""
        columns = list(dict.fromkeys(column for record in records for column in record))  # a short row leaves NULLs
        nested = [column in self.nested for column in columns]
        rows = [tuple(json.dumps(value) if is_nested and value is not None else value
                      for value, is_nested in zip(map(record.get, columns), nested, strict=True))
                for record in records]
        names = ", ".join(f'"{column}"' for column in columns)
        values = ", ".join(f'CAST("{column}"::JSON AS {self.types[column]})' if is_nested else f'"{column}"'
                           for column, is_nested in zip(columns, nested, strict=True))
        appender = None

        def move() -> None:
            nonlocal appender
            appender = db.appender(self.NAME, columns=columns)
            appender.append_rows(rows)
            appender.flush()
            db.execute(f"INSERT INTO {TABLE} ({names}) SELECT {values} FROM {self.NAME}")
            db.execute(f"DELETE FROM {self.NAME}")

        try:
            in_transaction(db, len(records), move)
        except BaseException:
            if appender is not None:
                try:  # rows left in the appender would be flushed when it is garbage-collected: written twice
                    appender.clear()
                except Exception:
                    pass
            raise


def in_transaction(db: duckdb.DuckDBPyConnection, count: int, work: Callable[[], Any]) -> None:
    """Run `work` (which writes `count` rows) in one transaction, rolled back when it fails."""
    db.begin()
    try:
        work()
        db.commit()
    except BaseException as e:
        if DURABLE_COMMIT in str(e).lower():
            # DuckDB checkpoints inside a commit once the WAL is large (often, with the file held from batch to
            # batch); when that fails (a full disk: a checkpoint needs room in the file) the rows are in all the
            # same. Taken as written, they are not written twice; the next statement on this connection fails,
            # so the writer opens the file afresh, retrying until the checkpoint succeeds.
            logger.warning(f"llmtap: {count} rows were written, but DuckDB's checkpoint after them failed: "
                           f"{first_line(e)}")
            return
        try:
            db.rollback()  # a staging table's rows go with the transaction
        except Exception:
            pass
        raise
