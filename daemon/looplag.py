"""Event-loop lag monitor: how late a periodic timer fires, as percentiles."""

import asyncio
import time
from collections import deque

from daemon.supervise import cancel_and_wait


class LoopLagMonitor:
    def __init__(self, interval=0.05, window=2000):
        self.interval = interval
        self.samples = deque(maxlen=window)
        self.max_lag = 0.0
        self._task = None

    def start(self):
        self._task = asyncio.get_running_loop().create_task(self._run(), name="looplag")

    async def stop(self):
        await cancel_and_wait(self._task)

    async def _run(self):
        while True:
            expected = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            lag = max(0.0, time.monotonic() - expected)
            self.samples.append(lag)
            self.max_lag = max(self.max_lag, lag)

    def reset(self):
        self.samples.clear()
        self.max_lag = 0.0

    def summary(self):
        data = sorted(self.samples)
        if not data:
            return {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0, "samples": 0}

        def pct(p):
            return round(1000 * data[min(len(data) - 1, int(p * len(data)))], 3)
        return {"p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": round(1000 * self.max_lag, 3),
                "samples": len(data)}
