"""`llmtap` on the command line: a bad config stops start-up with one clear line, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest


def llmtap(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "llmtap.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("config, names", [
    ("listen: {proxy: 127.0.0.1:8080, gatway: 127.0.0.1:1}\n", "listen.gatway"),
    ("listen: {proxy: 'localhost:http'}\n", "listen.proxy"),
    ("providers: {openai: {upstream: 'ftp://x'}}\n", "providers.openai.upstream"),
    ("listen: {gateway: 0.0.0.0:8787}\n", "gateway.keys"),
    ("storage: [1, 2]\n", "storage"),
    ("listen: {proxy: [\n", "line"),
])
def test_bad_config_stops_start_with_one_line_naming_the_key(tmp_path, config, names):
    path = tmp_path / "llmtap.yaml"
    path.write_text(config)
    result = llmtap("start", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("llmtap: config error: ") and names in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_config_file_is_named(tmp_path):
    result = llmtap("start", "--config", "nowhere.yaml", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.strip() == "llmtap: config error: config file not found: nowhere.yaml"


def test_sql_before_any_call_says_there_is_no_log_yet(tmp_path):
    result = llmtap("sql", "SELECT 1", cwd=tmp_path)
    assert result.returncode == 1 and "no log yet" in result.stderr and "Traceback" not in result.stderr


def test_sql_error_is_one_line(fresh_gateway):
    gateway = fresh_gateway()
    result = llmtap("sql", "SELECT nope FROM requests", "--config", str(gateway.config_path), cwd=gateway.workdir)
    assert result.returncode == 1 and "nope" in result.stderr and "Traceback" not in result.stderr
