"""The one door for blocking work (file syncs, tinydb writes, ftplib, crypto).

Everything that would block the event loop goes through ``run_blocking``:
one small thread pool and a bounded number of waiting jobs, so there is one
place to see and limit blocking work. A full queue refuses new work with
``BlockingQueueFull`` instead of growing without bound (SPEC §11).
"""

import asyncio
import concurrent.futures
import functools

MAX_WORKERS = 2
MAX_PENDING = 64


class BlockingQueueFull(RuntimeError):
    pass


class BlockingExecutor:
    def __init__(self, workers=MAX_WORKERS, max_pending=MAX_PENDING):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers,
                                                           thread_name_prefix="blocking")
        self.max_pending = max_pending
        self.pending = 0
        self.completed = 0

    async def run(self, func, *args, **kwargs):
        if self.pending >= self.max_pending:
            raise BlockingQueueFull("%d blocking jobs already waiting" % self.pending)
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, functools.partial(func, *args, **kwargs))
        finally:
            self.pending -= 1
            self.completed += 1

    def shutdown(self):
        self._pool.shutdown(wait=True)


_default = None


def executor():
    global _default
    if _default is None:
        _default = BlockingExecutor()
    return _default


async def run_blocking(func, *args, **kwargs):
    return await executor().run(func, *args, **kwargs)


def reset():
    """Shut the shared executor down (end of daemon / test)."""
    global _default
    if _default is not None:
        _default.shutdown()
        _default = None
