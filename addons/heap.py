"""Python's garbage collector while the gateway starts, and the heap start-up leaves out of it from then on.

Start-up builds a large heap that lives as long as the process: mitmproxy's, DuckDB's and llmtap's modules and the
config. Collected as it grows, it is walked again and again: a full collection runs each time a quarter more objects
have outlived the younger generations, ~0.6 s of the 2.3 s the gateway's modules took to import on this project's
2-core machine. So `llmtap start` holds collections (`hold_collections`) before it imports mitmproxy and the addons,
until the gateway runs, and leaves the modules out of every later collection once they are imported (`keep_imported`,
`gc.freeze()`): modules never become garbage. The cyclic garbage the imports themselves leave (about 2,400 objects,
~0.5 MB) is kept with them, once.

Once the gateway runs, a full collection walks what is left of start-up's heap (~140 ms when it was all of it), and
Python runs one whenever enough objects have outlived the younger generations: a stall of the event loop, and of
every call in flight, a few times a minute under load. `FreezeStartupHeap` therefore collects what configuring the
addons threw away, moves what exists then into the permanent generation that collections skip (what the Python docs
suggest for a long-lived heap made at start-up), and turns collection back on: garbage the calls make is collected as
before. (genai-prices' price data is loaded just before, by Recorder.running, to be part of it.)
"""

from __future__ import annotations

import gc
import logging
import time

logger = logging.getLogger(__name__)


def hold_collections() -> None:
    """No garbage collection runs until `FreezeStartupHeap.running` (or `gc.enable()`)."""
    gc.disable()


def keep_imported() -> None:
    """Everything that exists now (modules just imported, their classes and functions) is left out of every later
    collection."""
    gc.freeze()


class FreezeStartupHeap:
    def running(self) -> None:
        started = time.perf_counter()
        gc.collect()  # what start-up threw away since `keep_imported` goes now, not into the permanent generation
        gc.freeze()
        gc.enable()
        logger.debug(f"llmtap: {gc.get_freeze_count():,} start-up objects left out of garbage collection "
                     f"({(time.perf_counter() - started) * 1000:.0f} ms)")
