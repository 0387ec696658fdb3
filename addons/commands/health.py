"""What every command that reads the log says first when the log is missing rows."""

from __future__ import annotations

import sys

from ..config import Config


def warn_if_storage_unhealthy(config: Config) -> None:
    """One line on stderr when the log is missing rows, so a reader does not take a partial log for the whole."""
    from ..spool import fallback_spool_dir
    from ..store_health import read_health

    fallback = fallback_spool_dir(config.storage_path, config.storage.fallback_spool_dir)
    health = read_health(config.storage_path, fallback)
    if health is not None and health.failing:
        print(f"llmtap: warning: the log is missing rows ({health.reason}); {health.rows_waiting:,} wait, "
              f"{health.rows_lost:,} lost. See `llmtap status`.", file=sys.stderr)


