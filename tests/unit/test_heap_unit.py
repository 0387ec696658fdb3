"""Once the gateway runs, what start-up made is out of garbage collection: a full collection no longer walks it."""

from __future__ import annotations

import gc
import statistics
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


class CyclicCall:
    """What a call in flight leaves for the collector: objects in a reference cycle, as mitmproxy's layers make."""

    def __init__(self) -> None:
        self.parts = [{"call": self} for _ in range(100)]


def garbage_freed_by_each_full_collection(calls: int, in_flight: int) -> list[int]:
    """Run `calls` calls, `in_flight` at a time, each dropped when a later one starts: how many objects each full
    collection freed."""
    freed: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            freed.append(info["collected"])

    flight: list[CyclicCall] = []
    gc.callbacks.append(note)
    try:
        for _ in range(calls):
            flight.append(CyclicCall())
            if len(flight) > in_flight:
                flight.pop(0)
    finally:
        gc.callbacks.remove(note)
    return freed


def test_a_full_collection_frees_a_little_garbage_often_not_a_second_of_calls_at_once():
    # Calls in flight outlive the young generations, so only full collections free their cycles; each one stops the
    # event loop for as long as it takes to free what it finds. Python's default lets ten middle collections' worth
    # gather first: ~93,000 objects here, against ~17,500 (and 57 ms with the loop stopped in a burst of 128 streams,
    # against 10-12 ms).
    defaults = gc.get_threshold()
    parts = make_addons()
    gc.collect()
    try:
        FreezeStartupHeap().running()
        freed = garbage_freed_by_each_full_collection(calls=3_000, in_flight=128)
    finally:
        gc.unfreeze()
        gc.set_threshold(*defaults)
    assert parts and len(freed) >= 10, freed
    assert statistics.median(freed) < 40_000, freed
