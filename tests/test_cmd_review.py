"""Edges a user hits that the family tests do not: logged text that is rich markup in the trees `trace` and
`limits` draw on a terminal, a huge -n, an age reaching before year 1. Each runs the real CLI on a real gateway's
log (or, for a bad flag, no log at all)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import openai
import pytest

from conftest import Gateway, in_terminal, start_gateway

MARKUP_SESSION = "s[/bold]1"
MARKUP_PATH = "/plan[/x]/"
MARKUP_MODEL = "gpt-4o-mini[/b]"


@pytest.fixture(scope="module")
def gw(tmp_path_factory, mock_provider) -> Iterator[Gateway]:
    gateway = start_gateway(tmp_path_factory.mktemp("review"), mock_provider)
    chat = openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)
    # A model name with a slash is routed by a provider's name (no pattern without one matches it); OpenAI answers
    # with the model as asked, markup and all.
    chat.chat.completions.create(model=f"openai/{MARKUP_MODEL}", messages=[{"role": "user", "content": "hi"}],
                                 extra_headers={"Helicone-Session-Id": MARKUP_SESSION,
                                                "Helicone-Session-Name": "[/i] name",
                                                "Helicone-Session-Path": MARKUP_PATH})
    gateway.rows(count=1)
    yield gateway
    gateway.stop()


def llmtap(gw: Gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmtap.cli", *args, "--config", str(gw.config_path)],
                          capture_output=True, text=True, timeout=60)


def test_trace_on_a_terminal_shows_a_session_id_name_path_and_model_that_look_like_markup(gw):
    status, shown, errors = in_terminal(gw.config_path, "trace", MARKUP_SESSION, columns=120)
    assert status == 0, errors
    assert MARKUP_SESSION in shown and "[/i] name" in shown and "/plan[/x]" in shown and MARKUP_MODEL in shown


def test_limits_on_a_terminal_shows_a_model_that_looks_like_markup(gw):
    status, shown, errors = in_terminal(gw.config_path, "limits", columns=120)
    assert status == 0, errors
    assert MARKUP_MODEL in shown


def test_a_huge_count_lists_every_call_instead_of_failing(gw):
    for command in ("logs", "sessions"):
        listed = llmtap(gw, command, "-n", "99999999999999999999", "--json")
        assert listed.returncode == 0, listed.stderr
        assert len(listed.stdout.splitlines()) == 1


def test_an_age_before_year_one_is_a_one_line_usage_error(gw):
    for age in ("1000000d", "99999999999d"):
        result = llmtap(gw, "costs", "--since", age)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("file_format", ["parquet", "csv", "jsonl"])
def test_an_export_of_no_calls_leaves_no_file_behind(gw, tmp_path, file_format):
    out = tmp_path / f"calls.{file_format}"
    result = llmtap(gw, "export", "--format", file_format, "--out", str(out), "--user", "nobody")
    assert result.returncode == 0 and "nothing written" in result.stderr, result.stderr
    assert not out.exists()  # as it says: a later export to the same PATH needs no --overwrite


def test_an_until_before_the_since_says_so_instead_of_finding_no_calls(gw):
    for args in (("--since", "2026-11-20", "--until", "2026-11-10"), ("--until", "8d")):  # reports start 7d ago
        result = llmtap(gw, "costs", *args)
        assert result.returncode == 2 and "is not after --since" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert llmtap(gw, "logs", "--until", "8d").returncode == 0  # logs start at the first call: nothing to clash


def test_export_never_overwrites_the_log_itself(gw):
    for log_file in (gw.db_path, gw.db_path.with_name(gw.db_path.name + ".wal")):
        result = llmtap(gw, "export", "--format", "csv", "--out", str(log_file), "--overwrite")
        assert result.returncode == 2 and "the log" in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert gw.db_path.exists() and llmtap(gw, "logs", "--json").stdout.count("\n") == 1
