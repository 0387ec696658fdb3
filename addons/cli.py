"""The `llmtap` command (`llmtap.cli:main`, `python -m llmtap.cli`): the command group lives in `commands/`."""

from __future__ import annotations

import sys

from .commands import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
