"""A log file DuckDB cannot use fails `llmtap start` at once, says what to do, and is left exactly as it was."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from llmtap.log_file import log_file_problem
from llmtap.recorder import Recorder
from llmtap.settings import Settings
from mitmproxy import exceptions
from mitmproxy.test import taddons

from conftest import free_ports

FAILS_WITHIN_S = 15  # the import of mitmproxy and the config included; it waited 60 s before


def write_config(workdir: Path) -> Path:
    proxy_port, gateway_port = free_ports(2)
    config = {"listen": {"proxy": f"127.0.0.1:{proxy_port}", "gateway": f"127.0.0.1:{gateway_port}", "dashboard": "off"},
              "certs": str(workdir / "certs"), "storage": {"path": str(workdir / "data" / "llmtap.duckdb")}}
    path = workdir / "llmtap.yaml"
    path.write_text(yaml.safe_dump(config))
    (workdir / "data").mkdir()
    return path


def llmtap_start(workdir: Path, config: Path) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "llmtap.cli", "start", "--config", str(config)], cwd=workdir,
                            capture_output=True, text=True, timeout=120)
    return result, time.monotonic() - started


def snapshot(path: Path) -> tuple[bytes | None, int]:
    """What a user would compare: the file's bytes (None for a directory or link) and its mtime."""
    info = os.lstat(path)
    return (path.read_bytes() if path.is_file() and not path.is_symlink() else None), info.st_mtime_ns


def make_random_bytes(log: Path) -> None:
    log.write_bytes(os.urandom(100_000))


def make_empty_file(log: Path) -> None:
    log.touch()


def make_directory(log: Path) -> None:
    log.mkdir()
    (log / "something.txt").write_text("a user's file")


def make_symlink_loop(log: Path) -> None:
    log.symlink_to(log.name)  # unopenable for every user, root included


@pytest.mark.parametrize("make_unusable", [make_random_bytes, make_empty_file, make_directory, make_symlink_loop])
def test_an_unusable_log_fails_start_up_at_once_with_what_to_do_and_is_not_touched(tmp_path, make_unusable):
    config = write_config(tmp_path)
    log = tmp_path / "data" / "llmtap.duckdb"
    make_unusable(log)
    before = snapshot(log)
    time.sleep(0.01)  # a write would show as a later mtime

    result, took_s = llmtap_start(tmp_path, config)

    assert result.returncode == 2, result.stdout + result.stderr
    assert took_s < FAILS_WITHIN_S
    message = result.stderr.strip()
    assert message.count("\n") == 0, message  # one line
    assert str(log) in message and "Move it aside" in message and "has not changed it" in message
    assert "Traceback" not in result.stderr
    assert snapshot(log) == before
    assert sorted(p.name for p in log.parent.iterdir()) == ["llmtap.duckdb"]  # no spool, no health file beside it


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads and writes a file whatever its mode: the symlink loop above "
                                              "is the unopenable case that holds for root too")
@pytest.mark.parametrize("mode", [0o000, 0o444])
def test_a_log_this_user_may_not_write_fails_start_up_at_once(tmp_path, mode):
    config = write_config(tmp_path)
    log = tmp_path / "data" / "llmtap.duckdb"
    subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(log)!r}).close()"], check=True)
    log.chmod(mode)
    before = snapshot(log)
    try:
        result, took_s = llmtap_start(tmp_path, config)
    finally:
        log.chmod(0o644)
    assert result.returncode == 2 and took_s < FAILS_WITHIN_S, result.stderr
    assert str(log) in result.stderr and "Move it aside" in result.stderr
    assert snapshot(log) == before


def test_a_good_log_and_a_new_one_pass_the_check(tmp_path):
    new = tmp_path / "new.duckdb"
    assert log_file_problem(new) is None
    assert not new.exists()  # the check never creates it
    subprocess.run([sys.executable, "-c", f"import duckdb; duckdb.connect({str(new)!r}).close()"], check=True)
    assert log_file_problem(new) is None


def test_the_recorder_refuses_an_unusable_log_at_once_when_run_as_a_mitmproxy_addon(tmp_path):
    """`mitmdump -s` users get the same message from the Recorder, not a 30 s wait for a lock nobody holds."""
    config = write_config(tmp_path)
    log = tmp_path / "data" / "llmtap.duckdb"
    make_random_bytes(log)
    before = snapshot(log)
    settings = Settings()
    started = time.monotonic()
    with taddons.context(settings, Recorder(settings)) as tctx:
        with pytest.raises(exceptions.OptionsError, match="Move it aside"):
            tctx.options.update(llmtap_config=str(config))
    assert time.monotonic() - started < 5
    assert snapshot(log) == before


@pytest.mark.parametrize("make_unusable", [make_random_bytes, make_empty_file])
def test_llmtap_sql_on_an_unusable_log_says_what_to_do_at_once(tmp_path, make_unusable):
    config = write_config(tmp_path)
    log = tmp_path / "data" / "llmtap.duckdb"
    make_unusable(log)
    before = snapshot(log)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "llmtap.cli", "sql", "--config", str(config), "SELECT 1"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and time.monotonic() - started < 5  # it waited 10 s for a torn read to mend
    assert str(log) in result.stderr and "Move it aside" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(log) == before
