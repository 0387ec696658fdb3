"""A loop-lag monitor for a running gateway: how long llmtap's event loop was kept from running, and when.

A mitmproxy script (llmtap passes mitmproxy arguments on), so it measures the real gateway with no change to it:

    llmtap start -- -s scripts/loop_lag.py --set loop_lag_stall_ms=5

Every `loop_lag_tick_ms` a task asks to wake up; how late it wakes is the loop's lag, the time every call in flight
was held up by something running on the loop (or by the GIL held in another thread). Each stall longer than
`loop_lag_stall_ms` is logged as it happens (a warning), and when the gateway stops one line on stderr sums up:
ticks, median, p99 and max lag, and the stalls. The ticks cost a little CPU: measure with it, benchmark without it.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import sys
import time
from collections import deque

from mitmproxy import ctx

logger = logging.getLogger(__name__)
KEPT_TICKS = 500_000  # ~17 minutes of 2 ms ticks for the summary's median and p99; stalls are counted throughout


class LoopLag:
    def __init__(self) -> None:
        self.lags_ms: deque[float] = deque(maxlen=KEPT_TICKS)  # the latest ticks: bounded, however long it runs
        self.stalls = 0
        self._task: asyncio.Task | None = None

    def load(self, loader) -> None:
        # Whole milliseconds: mitmproxy's --set cannot parse a float option, so `--set loop_lag_stall_ms=5` failed.
        loader.add_option("loop_lag_tick_ms", int, 2, "How often the loop-lag monitor wakes up (ms).")
        loader.add_option("loop_lag_stall_ms", int, 5, "Log each lag longer than this (ms).")

    def running(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            tick_s = ctx.options.loop_lag_tick_ms / 1000
            asked = time.perf_counter()
            await asyncio.sleep(tick_s)
            lag_ms = max(0.0, (time.perf_counter() - asked - tick_s) * 1000)
            self.lags_ms.append(lag_ms)
            if lag_ms > ctx.options.loop_lag_stall_ms:
                self.stalls += 1
                logger.warning(f"loop lag: the event loop was held up {lag_ms:.1f} ms")

    def done(self) -> None:
        if self._task is not None:
            self._task.cancel()
        if len(self.lags_ms) < 2:
            return
        lags = sorted(self.lags_ms)
        p99 = statistics.quantiles(lags, n=100)[98]
        print(f"loop lag: the last {len(lags):,} ticks, median {statistics.median(lags):.2f} ms, p99 {p99:.2f} ms, "
              f"max {lags[-1]:.1f} ms, {self.stalls:,} stalls over {ctx.options.loop_lag_stall_ms:g} ms",
              file=sys.stderr, flush=True)  # printed: the summary is wanted even under mitmdump -q


addons = [LoopLag()]
