"""Event loop lag: how late the loop runs a timer, sampled all the time in every worker.

One event loop serves every request and stream of a worker, so anything that holds it — a
large body parsed, a schema explained, a blocking call — delays all of them by as long. A
timer is set every `interval_s`; when it fires late, the delay is how long the loop was
held. Each sample goes to a histogram and the longest to a gauge (`/metrics`), which is also
how `bench/` measures the stall a single request causes. Cost: one timer callback per
interval, a few microseconds each.
"""

from __future__ import annotations

import asyncio

from prometheus_client import Gauge, Histogram

# A stall of S seconds shows as a lag between S minus this and S: fine enough for the tens
# of milliseconds that matter, rare enough (100 callbacks a second) to cost nothing measurable.
INTERVAL_S = 0.01


class LoopLagMonitor:
    def __init__(self, histogram: Histogram, longest: Gauge, interval_s: float = INTERVAL_S):
        self._histogram = histogram
        self._longest = longest
        self._interval_s = interval_s
        self._worst = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._due = loop.time() + self._interval_s
        self._handle = loop.call_at(self._due, self._tick, loop)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        now = loop.time()
        lag = max(now - self._due, 0.0)
        self._histogram.observe(lag)
        if lag > self._worst:
            self._worst = lag
            self._longest.set(lag)
        self._due = now + self._interval_s
        self._handle = loop.call_at(self._due, self._tick, loop)
