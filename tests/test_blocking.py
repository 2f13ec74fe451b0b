"""The one bounded pool for blocking work (daemon/blocking.py): its bound, and a library's run_in_executor(None).

The daemon makes the pool its loop's default executor, so a library that calls
``loop.run_in_executor(None, ...)`` itself (aiomqtt's blocking connect) runs on the same two workers and
within the same bound as our own blocking work, not on asyncio's unbounded default pool.
"""

import asyncio
import threading

import pytest

from daemon.blocking import BlockingExecutor, BlockingQueueFull


def test_work_past_the_bound_is_refused_and_the_rest_completes():
    async def scenario():
        pool = BlockingExecutor(workers=2, max_pending=3)
        release = threading.Event()
        try:
            jobs = [asyncio.ensure_future(pool.run(release.wait, 10)) for _ in range(3)]
            await asyncio.sleep(0)                       # the three are submitted
            pending = pool.pending
            with pytest.raises(BlockingQueueFull):
                await pool.run(lambda: "fourth")
            release.set()
            results = await asyncio.gather(*jobs)
            return pending, results, pool.pending, pool.completed
        finally:
            release.set()
            pool.shutdown()

    pending, results, after, completed = asyncio.run(scenario())
    assert pending == 3 and results == [True, True, True]
    assert after == 0 and completed == 3                 # the refused one never ran nor counted


def test_the_default_executor_of_the_loop_is_the_bounded_pool_once_installed():
    async def scenario():
        pool = BlockingExecutor(workers=2, max_pending=4)
        try:
            loop = asyncio.get_running_loop()
            pool.install_as_default(loop)
            names = [await loop.run_in_executor(None, lambda: threading.current_thread().name),
                     await asyncio.to_thread(lambda: threading.current_thread().name)]
            return names, pool.completed
        finally:
            pool.shutdown()

    names, completed = asyncio.run(scenario())
    assert all(name.startswith("blocking") for name in names), names
    assert completed == 2
