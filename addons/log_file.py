"""Whether the log file (`storage.path`) can be the log, checked once before the gateway starts.

A file DuckDB cannot open (random bytes, an empty file, a directory, no permission) fails start-up at once with one
line that names it and says what to do, instead of a wait for a lock that no one holds. The check only reads: it
never creates, writes or locks the file for writing, so a file the user may want to rescue stays as it was.
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

import duckdb

LOCK_HELD = "could not set lock"  # DuckDB's words when another process has the file open


def log_file_problem(path: Path) -> str | None:
    """Why `path` cannot be the log, as one line that says what to do; None when it can, when it does not exist yet
    (the store creates it), or when another process holds it (the store waits for that one)."""
    where = os.path.abspath(path)  # not resolve(): a symlink loop must be reported, not raised
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as e:  # a symlink loop, a path through a file, a directory llmtap may not enter
        return _problem(where, f"cannot be opened ({e.strerror})")
    if stat.S_ISDIR(info.st_mode):
        return _problem(where, "is a directory, not a DuckDB file")
    if not stat.S_ISREG(info.st_mode):  # a FIFO or device: DuckDB would block on it or read garbage
        return _problem(where, "is not a regular file")
    try:
        duckdb.connect(str(path), read_only=True).close()
    except duckdb.Error as e:
        if LOCK_HELD in str(e).lower():
            return None
        return _problem(where, f"cannot be opened by DuckDB ({first_line(e)})")
    if not os.access(path, os.R_OK | os.W_OK):
        return _problem(where, "cannot be written by this user (permission denied)")
    return None


def _problem(where: str, what: str) -> str:
    move = shlex.join(["mv", where, f"{where}.broken"])
    return (f"the log {where} {what}. llmtap has not changed it. Move it aside ({move}) to start a new log, or set "
            "storage.path in the config to another file.")


def first_line(error: BaseException) -> str:
    """An error's first line (DuckDB's messages go on for several), or its type when it has no words."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
