"""The C library through ctypes, loaded once for the modules that call it directly (the timerfd of
daemon/runtime/finetimer.py, the heap of daemon/memory.py)."""

import ctypes
import ctypes.util
import functools


@functools.cache
def libc():
    """The process's C library (errno kept for ``ctypes.get_errno``), or None where it cannot be loaded."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    except OSError:
        return None
