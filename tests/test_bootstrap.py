"""scripts/bootstrap.sh installs the project only when it must: `scripts/test`, `scripts/run`, `scripts/test` install
once. Run with the real bootstrap.sh and a stand-in `.venv/bin/python` that records what pip was asked to install
(the only stand-in: installing for real takes minutes and the network)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from conftest import ROOT

FAKE_PYTHON = """#!/usr/bin/env bash
# Says yes to the version check; records every pip install instead of running it.
if [ "$1 $2 $3" = "-m pip install" ]; then echo "${@: -1}" >> "$(dirname "$0")/../../pip-installs"; fi
exit 0
"""


def make_checkout(tmp_path: Path) -> Path:
    """A copy of the repository's bootstrap.sh and pyproject.toml beside a .venv whose python is the stand-in."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", tmp_path / "scripts")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def bootstrap(checkout: Path, extras: str) -> str:
    """What scripts/test ("test") or scripts/run ("") do first, each in a shell of its own; returns its output."""
    result = subprocess.run(["bash", "-c", f'set -euo pipefail; source scripts/bootstrap.sh; bootstrap_venv "{extras}"'],
                            cwd=checkout, capture_output=True, text=True, timeout=30, check=True)
    assert result.stderr == ""
    return result.stdout


def installs(checkout: Path) -> list[str]:
    """What pip was asked to install, `pip` (its upgrade) left out."""
    path = checkout / "pip-installs"
    return [line for line in path.read_text().splitlines() if line != "pip"] if path.exists() else []


def test_test_then_run_then_test_installs_once(tmp_path):
    checkout = make_checkout(tmp_path)
    outputs = [bootstrap(checkout, "test"), bootstrap(checkout, ""), bootstrap(checkout, "test")]
    assert outputs == ["llmtap: installing the project with [test] into .venv\n", "", ""]
    assert installs(checkout) == [".[test]"]


def test_run_then_test_installs_the_test_extras_once_and_run_then_installs_nothing(tmp_path):
    checkout = make_checkout(tmp_path)
    for extras in ("", "test", "", "test"):
        bootstrap(checkout, extras)
    assert installs(checkout) == [".", ".[test]"]


def test_a_changed_pyproject_installs_again_with_the_extras_installed_before(tmp_path):
    checkout = make_checkout(tmp_path)
    bootstrap(checkout, "test")
    with (checkout / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# a new dependency\n")
    bootstrap(checkout, "")  # scripts/run after a pull: the test extras stay installed and up to date
    bootstrap(checkout, "test")
    assert installs(checkout) == [".[test]", ".[test]"]


def test_a_stamp_written_by_the_older_bootstrap_is_read(tmp_path):
    checkout = make_checkout(tmp_path)
    digest = subprocess.run(["sha256sum", "pyproject.toml"], cwd=checkout, capture_output=True, text=True,
                            check=True).stdout[:16]
    (checkout / ".venv" / ".llmtap-installed").write_text(f"{digest} test\n")
    bootstrap(checkout, "")
    bootstrap(checkout, "test")
    assert installs(checkout) == []
