"""`llmtap export`: the log's calls as files other tools read (Parquet by day, CSV, JSON lines), written by DuckDB."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from ..analytics import queries
from ..analytics.scope import Scope
from ..config import Config
from .options import config_option, scope_options
from .reading import read_log, require_log, warn_if_storage_unhealthy


@click.command()
@config_option()
@scope_options(default_since=None)
@click.option("--format", "file_format", type=click.Choice(queries.EXPORT_FORMATS), default="parquet",
              show_default=True, help="parquet: a directory partitioned by day; csv, jsonl: one file")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), metavar="PATH",
              help="the file (csv, jsonl) or directory (parquet) to write")
@click.option("--overwrite", is_flag=True, help="replace PATH when it exists")
def export(config: Config, scope: Scope, file_format: str, out: Path, overwrite: bool) -> int:
    """Write the calls (every column, exact money) to Parquet, CSV or JSON lines for other tools; works while the
    gateway runs. Parquet is partitioned by day: read it with read_parquet('PATH/*/*.parquet',
    hive_partitioning = true) in DuckDB, or pandas.read_parquet('PATH')."""
    warn_if_storage_unhealthy(config)
    log = require_log(config)  # before touching --out
    if out.resolve() in (log.resolve(), log.resolve().with_name(log.name + ".wal")):  # --overwrite would delete it
        raise click.BadParameter(f"{out} is the log itself: choose another PATH", param_hint="'--out'")
    if out.exists() or out.is_symlink():
        if not overwrite:
            print(f"llmtap: {out} exists (add --overwrite to replace it)", file=sys.stderr)
            return 1
        if problem := _cannot_replace(out):
            print(f"llmtap: {problem}", file=sys.stderr)
            return 1
        shutil.rmtree(out) if out.is_dir() and not out.is_symlink() else out.unlink()
    written = read_log(config, queries.export, scope, file_format, out.absolute())
    rows = int(written.rows[0][0]) if written.rows else 0
    if rows == 0:  # DuckDB still made the file (a header, nothing) or the directory: take it back, as we say
        shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
        print("llmtap: no calls in this scope: nothing written", file=sys.stderr)
        return 0
    what = "a directory of Parquet files by day" if file_format == "parquet" else file_format.upper()
    print(f"wrote {rows:,} calls to {out} ({what})")
    return 0


def _cannot_replace(out: Path) -> str | None:
    """Why `--overwrite` leaves `out` alone: a directory that is not an earlier Parquet export (only `day=…`
    directories) is not llmtap's to delete."""
    if out.is_dir() and not out.is_symlink():
        strangers = [p.name for p in out.iterdir() if not (p.is_dir() and p.name.startswith("day="))]
        if strangers:
            return f"{out} is a directory holding more than an export ({strangers[0]}, …): choose another --out"
    return None
