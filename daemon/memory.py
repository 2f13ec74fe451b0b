"""Large blocks go back to the system when freed (glibc's malloc).

glibc serves a block above its mmap threshold with its own mapping, unmapped at free; but after such a
block is freed it raises the threshold to that block's size (up to 32 MiB), so the next ones come from
the heap of the freeing thread's arena and stay there. Argon2id's working memory is such a block
(19 MiB per password check, daemon/security/accounts.py), allocated in the blocking executor's
threads: twelve Admin logins left the daemon 37 MB larger (the soak bench's "detections" row, which
logs in for each). A fixed threshold turns the adjustment off: large blocks stay mapped and are
returned at free. Elsewhere than glibc this does nothing.
"""

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3                  # mallopt parameter number (malloc.h)
LARGE_BLOCK = 1 << 20                  # blocks of 1 MiB and more: their own mapping, returned at free


def return_large_blocks(threshold=LARGE_BLOCK):
    """Fix glibc's mmap threshold; True when glibc took it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1
    except (OSError, AttributeError):
        return False
