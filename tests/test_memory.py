"""Argon2id's working memory goes back to the system after each password check (daemon/memory.py).

Run in a child process (a fresh heap): after one hash in the main thread (glibc then raises its threshold),
two executor-like threads check passwords; the resident set after the checks is compared with before. Without the fixed mmap threshold glibc keeps one 19 MiB block per
thread's arena (+38 MB measured); with it the growth is a few hundred kilobytes.
"""

import subprocess
import sys
import textwrap

from conftest import REPO

CHILD = textwrap.dedent("""
    import sys, concurrent.futures
    from daemon.memory import return_large_blocks
    from daemon.security import accounts
    fixed = sys.argv[1] == "fixed"
    if fixed:
        assert return_large_blocks()
    def rss_kb():
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS"))
    stored = accounts._hash("Soak-bench-2026!")
    before = rss_kb()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: accounts._matches(stored, "Soak-bench-2026!"), range(8)))
        print(rss_kb() - before)
""")

GROWTH_LIMIT_KB = 5 * 1024          # the soak bench's RSS target


def grown_kb(mode):
    out = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_password_checks_leave_the_resident_set_where_it_was():
    assert grown_kb("fixed") < GROWTH_LIMIT_KB


def test_without_the_fixed_threshold_the_heap_keeps_argon2s_blocks():
    """The control: the measurement sees what the fix removes (glibc retains at least one 19 MiB block)."""
    assert grown_kb("glibc-default") > GROWTH_LIMIT_KB


# Free blocks in the middle of the heap (every other one of ~64 MB of 16,000-byte blocks: below glibc's
# mmap threshold, above pymalloc's): glibc keeps their pages until malloc_trim.
TRIM_CHILD = textwrap.dedent("""
    import sys
    from daemon.memory import trim_heap
    def rss_kb():
        return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS"))
    blocks = [bytearray(16000) for _ in range(4000)]
    del blocks[::2]
    before = rss_kb()
    if sys.argv[1] == "trim":
        assert trim_heap()
    print(before - rss_kb())
""")

RELEASED_KB = 10 * 1024              # of the ~30 MB freed


def released_kb(mode):
    out = subprocess.run([sys.executable, "-c", TRIM_CHILD, mode], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_trim_returns_the_free_pages_of_the_heap():
    assert released_kb("trim") > RELEASED_KB


def test_without_the_trim_the_free_pages_stay_resident():
    """The control: the freed blocks alone give nothing back."""
    assert released_kb("none") < RELEASED_KB


def test_the_trim_loop_trims_through_the_blocking_executor(monkeypatch):
    import asyncio
    import threading
    from daemon import memory

    threads = []
    monkeypatch.setattr(memory, "trim_heap", lambda: threads.append(threading.current_thread().name))

    async def run():
        task = asyncio.ensure_future(memory.trim_loop(first=0.01, every=0.01))
        while len(threads) < 3:
            await asyncio.sleep(0.01)
        task.cancel()

    asyncio.run(run())
    assert all(name.startswith("blocking") for name in threads), threads
