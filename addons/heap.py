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

What is left to collect is what calls throw away, and mitmproxy leaves much of it in reference cycles (its layers'
generators, the frames of the exceptions its type checks catch): ~100 objects a call. A call in flight outlives the
young generations, so its cycles are freed only by a full collection. Python runs one after every tenth collection of
the middle generation, and that one frees everything the calls of the last second or so left: 57 ms with the loop
stopped, measured during bursts of 128 streams (mitmproxy alone, whose heap is not frozen: 50-80 ms). `running`
therefore lets a full collection follow every collection of the middle generation (`gc.set_threshold(..., 1)`): each
frees a tenth as much, 10-12 ms at most in the same bursts, for ~20% more time in full collections (the frozen heap is
not walked, so a full collection costs little more than a middle one). Sequential calls see no more full collections
than before (8 in 6,000 calls): Python still holds one back until a quarter more objects outlived the young ones.
"""

from __future__ import annotations

import gc
import logging
import time

logger = logging.getLogger(__name__)

FULL_AFTER_MIDDLE_COLLECTIONS = 1  # Python's default is 10: ten times the garbage for each full collection to free


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
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_AFTER_MIDDLE_COLLECTIONS)
        gc.enable()
        logger.debug(f"llmtap: {gc.get_freeze_count():,} start-up objects left out of garbage collection "
                     f"({(time.perf_counter() - started) * 1000:.0f} ms)")
