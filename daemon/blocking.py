"""The one door for blocking work (file syncs, tinydb writes, ftplib, crypto).

Everything that would block the event loop goes through ``run_blocking``:
one small thread pool and a bounded number of waiting jobs, so there is one
place to see and limit blocking work. A full queue refuses new work with
``BlockingQueueFull`` instead of growing without bound (SPEC §11).
"""

import asyncio
import concurrent.futures
import functools
import threading

# Four: besides file and crypto work, the pool runs network jobs that may wait for their timeouts (ftplib,
# smtplib, and, as the loop's default executor, the name lookups of every outgoing connection and aiomqtt's
# connect): two such waits must not hold every worker while a settings or storage write waits.
MAX_WORKERS = 4
MAX_PENDING = 64


class BlockingQueueFull(RuntimeError):
    pass


class BoundedPool(concurrent.futures.ThreadPoolExecutor):
    """A thread pool that refuses work past ``max_pending`` jobs submitted and not finished.

    A ThreadPoolExecutor, so that the daemon can make it its loop's default executor: a library's own
    ``run_in_executor(None, ...)`` (aiomqtt's blocking connect) then goes through the same bounded pool."""

    def __init__(self, workers, max_pending):
        super().__init__(max_workers=workers, thread_name_prefix="blocking")
        self.max_pending = max_pending
        self.pending = 0
        self.completed = 0
        self._count_lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        with self._count_lock:
            if self.pending >= self.max_pending:
                raise BlockingQueueFull("%d blocking jobs already waiting" % self.pending)
            self.pending += 1
        try:
            future = super().submit(fn, *args, **kwargs)
        except BaseException:
            with self._count_lock:
                self.pending -= 1
            raise
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future):
        with self._count_lock:
            self.pending -= 1
            self.completed += 1


class BlockingExecutor:
    def __init__(self, workers=MAX_WORKERS, max_pending=MAX_PENDING):
        self._pool = BoundedPool(workers, max_pending)

    @property
    def max_pending(self):
        return self._pool.max_pending

    @property
    def pending(self):
        return self._pool.pending

    @property
    def completed(self):
        return self._pool.completed

    async def run(self, func, *args, **kwargs):
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(func, *args, **kwargs))

    def install_as_default(self, loop):
        """Make the pool ``loop``'s default executor (the daemon's loop: one bounded pool for everything)."""
        loop.set_default_executor(self._pool)

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
