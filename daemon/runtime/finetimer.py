"""A wake-up of the event loop at a monotonic time, to the tenth of a millisecond.

The loop's own timers wait in epoll, whose timeout is whole milliseconds
(rounded up): a 1.75 ms inter-frame silence becomes 2-3 ms, ~0.8 ms lost per
transaction, 4 % of a read at 115200 baud (bench/poll_cycle.py). A Linux
timerfd armed at the wanted CLOCK_MONOTONIC time (``time.monotonic``'s clock)
is a readable descriptor the loop watches like the serial port: it fires on
time, and nothing spins. Where timerfd is not available (not Linux), the loop's
``call_at`` stands in.
"""

import asyncio
import ctypes
import heapq
import os
import time
import weakref

from daemon.libc import libc

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc():
    """The C library with its timerfd calls declared; None without them."""
    lib = libc()
    try:
        lib.timerfd_create.argtypes = (ctypes.c_int, ctypes.c_int)
        lib.timerfd_settime.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.c_void_p)
    except AttributeError:                 # no C library (None), or one without timerfd
        return None
    return lib


_LIBC = _libc() if time.get_clock_info("monotonic").implementation == "clock_gettime(CLOCK_MONOTONIC)" else None


class FineTimer:
    """One timerfd watched by the running loop (``open``) until ``close``: one callback at a time (``call_at``)."""

    def __init__(self):
        self._fd = -1
        self._loop = None
        self._callback = None       # what the armed timer calls when it fires
        self._handle = None         # without timerfd: the loop's timer handle instead
        self._spec = _Itimerspec()  # made once: ctypes structures cost more than the call
        self._spec_ref = ctypes.byref(self._spec)
        self.wakeups = 0            # callbacks run by the timerfd (the tests count them)

    def open(self):
        """Watch a new timerfd from the running loop; without timerfd, the loop's own timers stand in."""
        self._loop = asyncio.get_running_loop()
        if _LIBC is None:
            return
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            return
        self._fd = fd
        self._loop.add_reader(fd, self._on_fire)

    def close(self):
        self.cancel()
        if self._fd >= 0:
            try:
                self._loop.remove_reader(self._fd)
            except (ValueError, OSError, RuntimeError):
                pass
            os.close(self._fd)
            self._fd = -1

    def call_at(self, when, callback):
        """Call ``callback()`` from the loop at monotonic time ``when`` (replaces the one armed before).
        The bus engine's silence: a callback, not a task's wake-up (docs/architecture.md, "Bus engine: one
        wake-up per attempt")."""
        self._callback = callback
        if self._fd >= 0:
            sec = int(when)
            value = self._spec.it_value
            value.tv_sec, value.tv_nsec = sec, max(1, int((when - sec) * 1e9))
            if _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, self._spec_ref, None) == 0:
                return
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_at(self._loop.time() + (when - time.monotonic()), self._on_fire)

    def cancel(self):
        """Forget the armed callback and disarm the timer (a fire already on its way does nothing)."""
        if self._callback is None:
            return
        self._callback = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        elif self._fd >= 0:
            value = self._spec.it_value
            value.tv_sec = value.tv_nsec = 0             # zero: disarmed
            _LIBC.timerfd_settime(self._fd, 0, self._spec_ref, None)

    def _on_fire(self):
        if self._handle is not None:
            self._handle = None
        elif self._fd >= 0:
            try:
                os.read(self._fd, 8)
            except OSError:       # read before it fired (re-armed): not a wake-up
                return
        callback, self._callback = self._callback, None
        if callback is not None:
            if self._fd >= 0:
                self.wakeups += 1
            callback()


class _Call:
    """A callback of a FineScheduler; ``cancel()`` as asyncio's TimerHandle."""

    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when, callback):
        self.when, self.callback, self.cancelled = when, callback, False

    def __lt__(self, other):
        return self.when < other.when

    def cancel(self):
        self.cancelled = True


class FineScheduler:
    """Callbacks at monotonic times to the tenth of a millisecond, on one timerfd for a loop (``scheduler``).

    What the loop's ``call_at`` does, without its whole-millisecond rounding: a client of the loop share
    (daemon/loopshare.py) that overdrew its credit by 0.1 ms waited 1 ms, not 0.25."""

    def __init__(self, loop, fd):
        self._loop = weakref.ref(loop)
        self._fd = fd
        self._calls = []
        self.fired = 0                      # callbacks run (the tests count them)
        loop.add_reader(fd, self._on_fire)

    def call_at(self, when, callback):
        call = _Call(when, callback)
        heapq.heappush(self._calls, call)
        if self._calls[0] is call:
            self._arm(when)
        return call

    def _arm(self, when):
        sec = int(when)
        spec = _Itimerspec(_Timespec(0, 0), _Timespec(sec, max(1, int((when - sec) * 1e9))))
        _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None)

    def _on_fire(self):
        try:
            os.read(self._fd, 8)
        except OSError:                     # re-armed before it was read: nothing due yet
            pass
        now = time.monotonic()
        while self._calls and (self._calls[0].cancelled or self._calls[0].when <= now):
            call = heapq.heappop(self._calls)
            if not call.cancelled:
                self.fired += 1
                call.callback()
        while self._calls and self._calls[0].cancelled:
            heapq.heappop(self._calls)
        if self._calls:
            self._arm(self._calls[0].when)


_SCHEDULERS = weakref.WeakKeyDictionary()


def scheduler(loop):
    """The FineScheduler of ``loop`` (made at the first call), or None where timerfd is not available."""
    found = _SCHEDULERS.get(loop)
    if found is not None or _LIBC is None:
        return found
    fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
    if fd < 0:
        return None
    found = _SCHEDULERS[loop] = FineScheduler(loop, fd)
    weakref.finalize(loop, os.close, fd)            # the descriptor lives as long as its loop
    return found
