"""Where llmtap keeps things per user, and which config a command reads when it is given none.

A command run without `--config` must read the config the running gateway uses, from whatever directory it is run
in: `llmtap start` records its config and pid in a small file of a per-user state directory, and `find_config`
looks, in order, at

1. `--config FILE`;
2. the `LLMTAP_CONFIG` environment variable;
3. the config of the gateway running now (the newest, when several run; `llmtap start` skips this step);
4. `config/llmtap.yaml` under the current directory, when it exists;
5. the built-in defaults, whose files (log, cache, CA) live in the per-user data directory, never the current one.

An explicit choice (1, 2) wins over what happens to run, and a running gateway over the current directory. A record
whose process is gone (or whose pid now belongs to another process) is ignored and removed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

CONFIG_ENV = "LLMTAP_CONFIG"
STATE_DIR_ENV = "LLMTAP_STATE_DIR"  # tests and several independent set-ups keep their records apart with it
CWD_CONFIG = Path("config/llmtap.yaml")

LOOKUP_ORDER = (
    "Without --config, a command reads: the LLMTAP_CONFIG environment variable; else the config of the gateway "
    "running now (recorded by `llmtap start` under $XDG_STATE_HOME/llmtap, or $LLMTAP_STATE_DIR; `start` itself "
    "skips this step); else config/llmtap.yaml under the "
    "current directory; else the built-in defaults, which keep the log, cache and CA under "
    "$XDG_DATA_HOME/llmtap (~/.local/share/llmtap). Relative paths in a config file resolve against that file's "
    "directory."
)


def user_data_dir() -> Path:
    """The per-user directory the built-in defaults keep their files in ($XDG_DATA_HOME/llmtap)."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "llmtap"


def user_state_dir() -> Path:
    """Where `llmtap start` records the running gateway ($LLMTAP_STATE_DIR, else $XDG_STATE_HOME/llmtap)."""
    if explicit := os.environ.get(STATE_DIR_ENV):
        return Path(explicit).absolute()
    return _xdg("XDG_STATE_HOME", ".local/state") / "llmtap"


def _xdg(variable: str, fallback_under_home: str) -> Path:
    value = os.environ.get(variable)
    # The XDG spec: a relative value is invalid and is ignored.
    return Path(value) if value and Path(value).is_absolute() else Path.home() / fallback_under_home


@dataclass(frozen=True)
class ConfigChoice:
    """The config file a command reads (None: the built-in defaults) and why, in words for the user."""

    path: Path | None
    why: str
    implicit: bool  # not named on the command line: the command says on stderr which file it read


def find_config(explicit: str | None, for_start: bool = False) -> ConfigChoice:
    """The config a command reads, in the order this module's docstring gives."""
    if explicit:
        return ConfigChoice(Path(explicit), "--config", implicit=False)
    if from_env := os.environ.get(CONFIG_ENV):
        return ConfigChoice(Path(from_env).absolute(), f"from {CONFIG_ENV}", implicit=True)
    if not for_start and (running := running_gateways()):
        newest = running[0]
        others = f"; {len(running) - 1} more running" if len(running) > 1 else ""
        return ConfigChoice(newest.config, f"the running gateway's, pid {newest.pid}{others}", implicit=True)
    if CWD_CONFIG.is_file():
        return ConfigChoice(CWD_CONFIG.absolute(), "config/llmtap.yaml in the current directory", implicit=True)
    return ConfigChoice(None, f"no config found; files under {user_data_dir()}", implicit=True)


@dataclass(frozen=True)
class RunningGateway:
    pid: int
    config: Path | None  # None: the built-in defaults
    started_at: float
    process_start: str | None = None  # the kernel's start time of `pid`, so a reused pid is not taken for it


def running_gateways() -> list[RunningGateway]:
    """The gateways whose `llmtap start` process is alive, newest first; records of dead ones are removed."""
    found = []
    for record in sorted((user_state_dir() / "gateways").glob("*.json")):
        try:
            data = json.loads(record.read_text())
            gateway = RunningGateway(int(data["pid"]), Path(data["config"]) if data["config"] else None,
                                     float(data["started_at"]), data.get("process_start"))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or not ours: never fatal to a command
        if _alive(gateway.pid) and gateway.process_start == _process_start(gateway.pid):
            found.append(gateway)
        else:
            record.unlink(missing_ok=True)
    return sorted(found, key=lambda g: g.started_at, reverse=True)


def record_running_gateway(config: Path | None) -> Path:
    """Record this process as a running gateway using `config`; returns the record, which the caller removes."""
    directory = user_state_dir() / "gateways"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    record = directory / f"{os.getpid()}.json"
    partial = record.with_suffix(".tmp")
    partial.write_text(json.dumps({"pid": os.getpid(), "config": str(config) if config else None,
                                   "started_at": time.time(), "process_start": _process_start(os.getpid())}))
    partial.replace(record)  # readers never see half a record
    return record


def _process_start(pid: int) -> str | None:
    """When the process `pid` started, in clock ticks since boot (Linux's /proc); None where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22, counted after the command name, which may hold spaces


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process holds the pid: alive, though the record is stale
    return True
