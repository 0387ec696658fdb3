"""Once the gateway runs, what start-up made is out of garbage collection: a full collection no longer walks it."""

from __future__ import annotations

import gc
import time

from llmtap.heap import FreezeStartupHeap
from llmtap.pipeline import make_addons


def full_collection_s() -> float:
    started = time.perf_counter()
    gc.collect()
    return time.perf_counter() - started


def test_running_freezes_the_start_up_heap_so_a_full_collection_skips_it():
    parts = make_addons()  # start-up's heap: genai-prices' data, the config, the modules
    frozen_before = gc.get_freeze_count()
    before = min(full_collection_s() for _ in range(3))
    try:
        FreezeStartupHeap().running()
        frozen = gc.get_freeze_count() - frozen_before
        after = min(full_collection_s() for _ in range(3))
    finally:
        gc.unfreeze()
    assert parts and frozen > 50_000
    assert after < before / 5, (before, after)
