"""Supervision of long-running tasks: a crash is logged and the task restarts.

A service that raises is never allowed to take the daemon down (DESIGN.md,
rules of the loop); it restarts after a back-off that doubles up to a cap,
and the count of restarts is kept for the status page.
"""

import asyncio
import logging

log = logging.getLogger("gateway.supervise")


async def cancel_and_wait(task):
    """Cancel ``task`` (if any) and wait until it has finished unwinding."""
    if task is None or task.done():
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if asyncio.current_task().cancelling():
            raise           # our caller is being cancelled too: that cancel is not ours to swallow


class Supervised:
    def __init__(self, name, body, first_backoff=0.5, max_backoff=30.0):
        self.name = name
        self.body = body            # coroutine function, runs forever
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.restarts = 0
        self.last_error = None
        self._task = None

    def start(self):
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        return self._task

    async def _run(self):
        backoff = self.first_backoff
        while True:
            try:
                await self.body()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:   # the boundary: log, count, restart
                self.restarts += 1
                self.last_error = "%s: %s" % (type(exc).__name__, exc)
                log.exception("%s crashed (restart %d in %.1f s)", self.name, self.restarts, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def stop(self):
        await cancel_and_wait(self._task)
