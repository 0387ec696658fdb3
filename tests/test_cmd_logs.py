"""`llmtap logs`, `logs show`, `tail` and `export` on a real gateway's log, as a user runs them: subprocesses over the
log the gateway writes (while it runs, and after it stopped), checked against the calls the test made and the rows
read with plain SQL."""

from __future__ import annotations

import csv
import io
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import duckdb
import openai
import pytest
from llmtap.batch_writer import read_log
from llmtap.money import format_usd

from conftest import Gateway, MockProvider, in_terminal, start_gateway

PROMPT = "Explain [bold]this[/bold] and \x1b[31mred\x1b[0m please"
IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
LOG_COLUMNS = ("time", "id", "model", "user", "tokens_in", "tokens_out", "cost_usd", "latency_ms", "cache", "status")


@pytest.fixture(scope="module")
def gw(tmp_path_factory, mock_provider) -> Iterator[Gateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("logs"), mock_provider)
    yield gateway
    gateway.stop()


@pytest.fixture(scope="module")
def calls(gw: Gateway, mock_provider: MockProvider) -> dict[str, str]:
    """Five calls, both SDKs, and their request ids: a priced chat call with a markup-and-ANSI prompt (alice), an
    Anthropic call with a system prompt, an image, a tool call and its result (bob), a streamed call to a model
    without a price (carol), a call the provider fails (alice), and one by a user whose id is rich markup."""
    chat = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
    ids = {}
    ids["markup"] = chat.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"Helicone-User-Id": "alice", "Helicone-Property-Workflow": "research"}).headers["helicone-id"]
    claude = anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key="k", max_retries=0)
    ids["claude"] = claude.messages.with_raw_response.create(
        model="claude-sonnet-4-6", max_tokens=100, system="Be brief.", extra_headers={"Helicone-User-Id": "bob"},
        messages=[
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": IMAGE}},
                {"type": "text", "text": "what is in the picture?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "tu_1", "name": "lookup", "input": {"q": "pixel"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "tu_1", "content": "a white pixel"},
                {"type": "text", "text": "so?"}]}]).headers["helicone-id"]
    with chat.chat.completions.with_streaming_response.create(
            model="openai/my-private-model", messages=[{"role": "user", "content": "stream without a price"}],
            stream=True, extra_headers={"Helicone-User-Id": "carol"}) as streamed:
        ids["stream"] = streamed.headers["helicone-id"]
        for _ in streamed.iter_lines():
            pass
    mock_provider.script({"status": 500})
    with pytest.raises(openai.InternalServerError) as failed:
        chat.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "fail me"}],
                                     extra_headers={"Helicone-User-Id": "alice"})
    ids["error"] = failed.value.response.headers["helicone-id"]
    ids["odd user"] = chat.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "who am I"}],
        extra_headers={"Helicone-User-Id": "[/bold]"}).headers["helicone-id"]
    gw.rows(count=5)
    return ids


def llmtap(gw: Gateway, *args: str, cwd: Path | None = None, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--config", str(gw.config_path)],
                          capture_output=True, text=True, timeout=60, cwd=cwd, **kwargs)


def logged(gw: Gateway) -> list[dict[str, Any]]:
    """Every row, newest first, read with plain SQL."""
    names, rows = read_log(gw.db_path, "SELECT * FROM requests")
    found = [dict(zip(names, row, strict=True)) for row in rows]
    return sorted(found, key=lambda r: (r["created_at"], r["request_id"]), reverse=True)


def expected_line(row: dict[str, Any]) -> dict[str, Any]:
    return {"time": row["created_at"].isoformat(), "id": row["request_id"],
            "model": row["model"] or row["model_requested"], "user": row["user_id"],
            "tokens_in": row["input_tokens"], "tokens_out": row["output_tokens"], "cost_usd": row["cost_usd"],
            "latency_ms": row["latency_ms"], "cache": row["cache_status"], "status": row["status"]}


def check_logs_json_and_csv(gw: Gateway, calls: dict[str, str]) -> None:
    rows = logged(gw)
    assert {r["request_id"] for r in rows} >= set(calls.values())
    listed = llmtap(gw, "logs", "--json")
    assert listed.returncode == 0, listed.stderr
    got = [json.loads(line, parse_float=Decimal) for line in listed.stdout.splitlines()]
    assert got == [{**expected_line(r), "latency_ms": Decimal(repr(r["latency_ms"]))} for r in rows]
    unpriced = next(line for line in got if line["id"] == calls["stream"])
    assert unpriced["cost_usd"] is None and unpriced["user"] == "carol"
    assert next(line for line in got if line["id"] == calls["error"])["status"] == 500

    as_csv = llmtap(gw, "logs", "--csv", "-n", "2", "--user", "alice")
    assert as_csv.returncode == 0, as_csv.stderr
    alice = [r for r in rows if r["user_id"] == "alice"][:2]
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [list(LOG_COLUMNS)] + [
        ["" if v is None else format(v.normalize(), "f") if isinstance(v, Decimal) else str(v)
         for v in expected_line(r).values()] for r in alice]


def test_logs_lists_the_calls_newest_first_exactly_in_json_and_csv(gw, calls):
    check_logs_json_and_csv(gw, calls)


def test_logs_table_shows_short_ids_unknown_prices_and_fits_80_columns(gw, calls):
    table = llmtap(gw, "logs")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), table.stdout
    for request_id in calls.values():
        assert request_id[:8] in table.stdout
    assert "$?" in table.stdout and "carol" in table.stdout and "500" in table.stdout
    cost = gw.row(calls["markup"])["cost_usd"]
    assert cost > 0 and "$0.00" not in table.stdout.replace("$0.000", "")


def test_logs_query_finds_calls_by_prompt_and_by_answer_text(gw, calls):
    by_prompt = llmtap(gw, "logs", "--json", "-q", "STREAM WITHOUT")
    assert [json.loads(line)["id"] for line in by_prompt.stdout.splitlines()] == [calls["stream"]]
    by_answer = llmtap(gw, "logs", "--json", "-q", "mock reply to: so?")
    assert [json.loads(line)["id"] for line in by_answer.stdout.splitlines()] == [calls["claude"]]
    nothing = llmtap(gw, "logs", "-q", "no call says this")
    assert nothing.returncode == 0 and nothing.stdout.strip() == "no calls logged in this scope"


def run_in_terminal(gw: Gateway, *args: str) -> str:
    """What a command prints on a terminal; it must succeed."""
    status, shown, errors = in_terminal(gw.config_path, *args, columns=100)
    assert status == 0, errors
    return shown


def test_logs_show_renders_the_turns_and_shows_logged_text_literally(gw, calls):
    shown = run_in_terminal(gw, "logs", "show", calls["markup"][:10])
    assert "[bold]this[/bold]" in shown  # not read as rich markup
    assert "\\x1b[31mred\\x1b[0m" in shown and "\x1b[31mred" not in shown  # an escape shows, it does not colour
    assert "Mock reply to: Explain [bold]this[/bold]" in shown
    assert "workflow=research" in shown and "alice" in shown
    listed = run_in_terminal(gw, "logs")
    assert "[/bold]" in listed and calls["odd user"][:8] in listed  # a user id that is rich markup, shown as typed

    claude = llmtap(gw, "logs", "show", calls["claude"])
    assert claude.returncode == 0, claude.stderr
    text = claude.stdout
    for expected in ("system", "Be brief.", "[image]", "what is in the picture?", "→ lookup(", "← a white pixel",
                     "Mock reply to: so?", "bob"):
        assert expected in text, expected
    row = gw.row(calls["claude"])
    assert f"{row['input_tokens']:,} in" in text and f"{row['output_tokens']:,} out" in text
    assert all(len(line) <= 80 for line in text.splitlines())

    streamed = llmtap(gw, "logs", "show", calls["stream"])
    assert "ANSWER (STREAMED)" in streamed.stdout and "Mock reply to: stream without a price" in streamed.stdout
    assert "unknown ($?)" in streamed.stdout and "my-private-model" in streamed.stdout

    failed = llmtap(gw, "logs", "show", calls["error"])
    assert "500" in failed.stdout and "error" in failed.stdout.lower()


def test_logs_show_json_is_the_whole_row(gw, calls):
    shown = llmtap(gw, "logs", "show", calls["markup"], "--json")
    assert shown.returncode == 0, shown.stderr
    (line,) = shown.stdout.splitlines()
    got = json.loads(line, parse_float=Decimal)
    row = gw.row(calls["markup"])
    assert set(got) == set(row) and got["request_id"] == calls["markup"] and got["cost_usd"] == row["cost_usd"]
    assert got["request_body"]["messages"][0]["content"] == PROMPT and got["properties"] == {"workflow": "research"}


def test_logs_show_an_unknown_or_ambiguous_id_is_one_line_and_exit_1(gw, calls):
    unknown = llmtap(gw, "logs", "show", "no-such-id")
    assert unknown.returncode == 1 and unknown.stdout == ""
    assert unknown.stderr.strip().splitlines() == ["llmtap: no call with an id starting 'no-such-id'"]
    ambiguous = llmtap(gw, "logs", "show", "")
    assert ambiguous.returncode == 1 and len(ambiguous.stderr.strip().splitlines()) == 1
    assert "several ids" in ambiguous.stderr


def test_a_mistyped_time_flag_or_format_is_one_line_and_exit_2(gw, calls):
    for args in (("logs", "--since", "yesterday"), ("logs", "--nope"), ("logs", "--property", "workflow"),
                 ("export", "--format", "xls", "--out", "x"), ("tail", "--status", "okay")):
        result = llmtap(gw, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr


class Lines:
    """A process's output lines as they come, read on a thread so a test can wait for one with a timeout."""

    def __init__(self, stream: Any) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in stream], daemon=True).start()

    def next(self, timeout_s: float) -> str:
        return self.lines.get(timeout=timeout_s)


def test_tail_shows_each_call_once_as_it_lands_with_running_totals(gw, calls, mock_provider):
    process = subprocess.Popen([sys.executable, "-m", "llmtap.cli", "tail", "--json", "--config", str(gw.config_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = Lines(process.stdout), Lines(process.stderr)
    try:
        assert err.next(30).startswith("llmtap: following ")
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        # A slow call starts first and ends last: it lands after the quick one, and is still shown, once.
        mock_provider.script({"delay_ms": 1500, "model": "gpt-4o-mini-slow"})
        slow: dict[str, str] = {}

        def slow_call() -> None:
            raw = client.chat.completions.with_raw_response.create(
                model="openai/gpt-4o-mini-slow", messages=[{"role": "user", "content": "slow"}])
            slow["id"], slow["ended"] = raw.headers["helicone-id"], str(time.monotonic())

        thread = threading.Thread(target=slow_call)
        thread.start()
        time.sleep(0.2)  # let the slow call start first: its created_at is the earlier one
        quick = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "quick"}],
            extra_headers={"Helicone-User-Id": "dave"})
        quick_ended = time.monotonic()
        first = json.loads(out.next(10), parse_float=Decimal)
        quick_shown_after_s = time.monotonic() - quick_ended
        thread.join(30)
        second = json.loads(out.next(10), parse_float=Decimal)
        slow_shown_after_s = time.monotonic() - float(slow["ended"])
        print(f"tail: quick call shown {quick_shown_after_s:.2f} s after it ended, slow {slow_shown_after_s:.2f} s")
        assert first["id"] == quick.headers["helicone-id"] and first["user"] == "dave"
        assert second["id"] == slow["id"]
        assert quick_shown_after_s < 1.5 and slow_shown_after_s < 1.5
        quick_row, slow_row = gw.row(first["id"]), gw.row(second["id"])
        assert quick_row["created_at"] > slow_row["created_at"]  # the order they ended in, not the one they began
        assert first["cost_usd"] == quick_row["cost_usd"] and (first["calls"], second["calls"]) == (1, 2)
        assert second["spend_usd"] == quick_row["cost_usd"] + (slow_row["cost_usd"] or 0)
        assert (second["errors"], second["cache_hits"]) == (0, 0)
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    with pytest.raises(queue.Empty):  # nothing shown twice
        out.next(0.5)
    assert err.next(5).startswith("2 calls, spend $")


def test_tail_prints_a_line_per_call_and_the_totals_on_ctrl_c(gw, calls):
    process = subprocess.Popen([sys.executable, "-m", "llmtap.cli", "tail", "--user", "erin", "--config",
                                str(gw.config_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = Lines(process.stdout), Lines(process.stderr)
    try:
        assert err.next(30).startswith("llmtap: following ")
        client = openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0)
        for user in ("someone else", "erin"):
            request_id = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "tail me"}],
                extra_headers={"Helicone-User-Id": user}).headers["helicone-id"]
        line = out.next(10)
        row = gw.row(request_id)
        assert line.split() == [row["created_at"].strftime("%H:%M:%S"), row["model"], "erin",
                                f"{row['input_tokens']}→{row['output_tokens']}", "tok", format_usd(row["cost_usd"]),
                                f"{row['latency_ms']:,.0f}", "ms", "200"]
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    assert out.next(5) == f"1 call, spend {format_usd(row['cost_usd'])}, 0 errors, 0 cache hits\n"


def check_exports(gw: Gateway, tmp_path: Path) -> None:
    rows = {r["request_id"]: r for r in logged(gw)}
    parquet = llmtap(gw, "export", "--out", "calls", cwd=tmp_path)
    assert parquet.returncode == 0, parquet.stderr
    assert parquet.stdout.strip() == f"wrote {len(rows):,} calls to calls (a directory of Parquet files by day)"
    days = {r["created_at"].strftime("%Y-%m-%d") for r in rows.values()}
    assert {p.name for p in (tmp_path / "calls").iterdir()} == {f"day={d}" for d in days}
    exported = duckdb.connect().execute(
        "SELECT request_id, cost_usd, typeof(cost_usd), properties, day::VARCHAR FROM "
        "read_parquet(?, hive_partitioning = true)", [str(tmp_path / "calls" / "*" / "*.parquet")]).fetchall()
    assert sorted(exported) == sorted((i, r["cost_usd"], "DECIMAL(18,10)", r["properties"],
                                       r["created_at"].strftime("%Y-%m-%d")) for i, r in rows.items())

    again = llmtap(gw, "export", "--out", "calls", cwd=tmp_path)
    assert again.returncode == 1 and again.stderr.strip() == "llmtap: calls exists (add --overwrite to replace it)"
    replaced = llmtap(gw, "export", "--out", "calls", "--overwrite", "--user", "bob", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [
        str(tmp_path / "calls" / "*" / "*.parquet")]).fetchone() == (1,)

    as_csv = llmtap(gw, "export", "--format", "csv", "--out", "calls.csv", cwd=tmp_path)
    assert as_csv.returncode == 0, as_csv.stderr
    with (tmp_path / "calls.csv").open() as f:
        got = {line["request_id"]: line for line in csv.DictReader(f)}
    assert set(got) == set(rows)
    for request_id, row in rows.items():
        cost = got[request_id]["cost_usd"]
        assert (Decimal(cost) if cost else None) == row["cost_usd"]
        assert json.loads(got[request_id]["properties"] or "null") == row["properties"]

    as_jsonl = llmtap(gw, "export", "--format", "jsonl", "--out", "calls.jsonl", cwd=tmp_path)
    assert as_jsonl.returncode == 0, as_jsonl.stderr
    lines = [json.loads(line, parse_float=Decimal) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert {line["request_id"]: line["cost_usd"] for line in lines} == {i: r["cost_usd"] for i, r in rows.items()}
    markup = next(line for line in lines if line["request_body"] and line["properties"].get("workflow"))
    assert markup["request_body"]["messages"][0]["content"] == PROMPT


def test_export_writes_parquet_by_day_csv_and_jsonl_with_exact_money_while_the_gateway_runs(gw, calls, tmp_path):
    assert gw.process is not None and gw.process.poll() is None
    check_exports(gw, tmp_path)


def test_logs_and_export_read_the_same_after_the_gateway_stopped(gw, calls, tmp_path):
    assert gw.stop() == 0
    check_logs_json_and_csv(gw, calls)
    shown = llmtap(gw, "logs", "show", calls["claude"][:12])
    assert shown.returncode == 0 and "Mock reply to: so?" in shown.stdout
    check_exports(gw, tmp_path)


def test_no_log_yet_is_said_plainly(tmp_path):
    config = tmp_path / "llmtap.yaml"
    config.write_text(f"storage: {{path: {tmp_path / 'none.duckdb'}}}\n")
    for args in (("logs",), ("logs", "show", "abc"), ("tail",), ("export", "--out", str(tmp_path / "x"))):
        result = subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--config", str(config)],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and result.stderr.strip().startswith("llmtap: no log yet at "), result.stderr
