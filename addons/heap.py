"""The objects llmtap makes while it starts are left out of Python's garbage collection from then on.

Start-up leaves a large heap that lives as long as the process: genai-prices' price data, the config, mitmproxy's
and DuckDB's modules. A full collection walks all of it, ~140 ms on this project's 2-core machine, and Python runs
one whenever enough objects have outlived the younger generations: a stall of the event loop, and of every call in
flight, a few times a minute under load. `gc.freeze()` once the gateway runs moves what exists then into a permanent
generation that collections skip (what the Python docs suggest for a long-lived heap made at start-up); garbage the
calls make is still collected as before.
"""

from __future__ import annotations

import gc
import logging
import time

logger = logging.getLogger(__name__)


class FreezeStartupHeap:
    def running(self) -> None:
        started = time.perf_counter()
        gc.collect()  # what start-up threw away goes now, not into the permanent generation
        gc.freeze()
        logger.debug(f"llmtap: {gc.get_freeze_count():,} start-up objects left out of garbage collection "
                     f"({(time.perf_counter() - started) * 1000:.0f} ms)")
