"""Large blocks go back to the system when freed (glibc's malloc).

glibc serves a block above its mmap threshold with its own mapping, unmapped at free; but after such a
block is freed it raises the threshold to that block's size (up to 32 MiB), so the next ones come from
the heap of the freeing thread's arena and stay there. Argon2id's working memory is such a block
(19 MiB per password check, daemon/security/accounts.py), allocated in the blocking executor's
threads: twelve Admin logins left the daemon 37 MB larger (the soak bench's "detections" row, which
logs in for each). A fixed threshold turns the adjustment off: large blocks stay mapped and are
returned at free. Elsewhere than glibc this does nothing.

Freed small blocks are another matter: glibc keeps the pages of free chunks in its heaps (the start-up's
imports, settings and topology parsing, the first poll cycle's decoding leave a few megabytes free).
``trim_heap`` (malloc_trim) hands them back; the daemon calls it once its start-up is over and then every
``TRIM_EVERY_S`` through the blocking executor (a walk of the heaps, ~1 ms, the GIL released by ctypes).
Measured on the reference site with every service on: -2.3 MB at the first call, 0.1-1 MB at the next ones
(bench/RESULTS.md "Lean on a Pi, the heap trimmed").
"""

import asyncio

from daemon.blocking import run_blocking
from daemon.libc import libc as _libc

M_MMAP_THRESHOLD = -3                  # mallopt parameter number (malloc.h)
LARGE_BLOCK = 1 << 20                  # blocks of 1 MiB and more: their own mapping, returned at free
TRIM_FIRST_S = 20.0                    # the first trim: start-up and the first poll cycles are over
TRIM_EVERY_S = 60.0                    # then this often


def return_large_blocks(threshold=LARGE_BLOCK):
    """Fix glibc's mmap threshold; True when glibc took it."""
    libc = _libc()
    try:
        return libc is not None and libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1
    except AttributeError:
        return False


def trim_heap():
    """Return the free pages of glibc's heaps to the system; True when glibc released some (blocking: ~1 ms)."""
    libc = _libc()
    try:
        return libc is not None and libc.malloc_trim(0) == 1
    except AttributeError:
        return False


async def trim_loop(first=TRIM_FIRST_S, every=TRIM_EVERY_S):
    """Trim the heap after start-up, then periodically, off the loop (the one blocking executor)."""
    await asyncio.sleep(first)
    while True:
        await run_blocking(trim_heap)
        await asyncio.sleep(every)
