"""Rows for programs: JSON columns as JSON, money as exact decimals, nothing a JSON parser would refuse."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from llmtap.render import cell_text, json_line


def test_a_json_column_is_a_json_value_with_its_numbers_as_written():
    line = json_line(["request_body"], ["JSON"], ('{"temperature": 0.10, "n": 1, "big": 1e400}',))
    assert line == '{"request_body": {"temperature": 0.10, "n": 1, "big": 1e400}}'


def test_money_maps_lists_and_times_are_json_values():
    row = (Decimal("0.0000115000"), {"step": "a"}, [{"status": 503, "latency_ms": 1.5}], None,
           datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), float("nan"), True)
    columns = ["cost_usd", "properties", "attempt_log", "notes", "created_at", "x", "stream"]
    types = ["DECIMAL(18,10)", "MAP(VARCHAR, VARCHAR)", "STRUCT(status INTEGER, latency_ms DOUBLE)[]", "VARCHAR[]",
             "TIMESTAMP WITH TIME ZONE", "DOUBLE", "BOOLEAN"]
    line = json_line(columns, types, row)
    assert line.startswith('{"cost_usd": 0.0000115, ')
    assert json.loads(line) == {"cost_usd": 0.0000115, "properties": {"step": "a"},
                                "attempt_log": [{"status": 503, "latency_ms": 1.5}], "notes": None,
                                "created_at": "2026-01-02T03:04:05+00:00", "x": None, "stream": True}


def test_a_json_column_nested_deeper_than_python_follows_stays_its_text():
    deep = "[" * 100_000 + "]" * 100_000
    assert json.loads(json_line(["body"], ["JSON"], (deep,))) == {"body": deep}


def test_csv_cells_keep_exact_decimals_and_write_json_for_structures():
    assert cell_text(Decimal("0.0000115000")) == "0.0000115"
    assert cell_text({"a": [1, Decimal("2.50")]}) == '{"a": [1, 2.5]}'
    assert cell_text(None) == "" and cell_text('{"k": 1}', "JSON") == '{"k": 1}'


def test_a_table_shows_a_logged_escape_sequence_instead_of_sending_it_to_the_terminal():
    import io

    from llmtap.render import rich_table
    from rich.console import Console

    screen = io.StringIO()
    Console(file=screen, force_terminal=True, width=120).print(
        rich_table(["user", "model"], ["VARCHAR", "VARCHAR"], [("\x1b[31mred\x1b[0m", "m\x07[/b]")]))
    drawn = screen.getvalue()
    assert "\x1b[31mred" not in drawn and "\\x1b[31mred\\x1b[0m" in drawn  # shown, not obeyed
    assert "m\\x07[/b]" in drawn
