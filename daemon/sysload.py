"""The board's CPU, RAM and storage indicators for the Diagnosis page (SPEC §7.2), read from the OS.

Linux's ``/proc/stat`` (CPU time, as the share used since the previous
reading), ``/proc/meminfo`` (RAM available to programs), ``/proc/self/status``
(this daemon's resident memory) and ``os.statvfs`` of the state directory
(its filesystem's use). ``read`` touches the disk's filesystem, so the door
runs it in the blocking executor; ``SystemLoad`` keeps one reading for
``MAX_AGE_S`` so pages polling in many tabs cost one reading, not one each.
A figure the OS does not give (another system, a missing file) is None.
"""

import asyncio
import os
import time

MAX_AGE_S = 1.0


def _cpu_times(path="/proc/stat"):
    """(busy, total) jiffies of all CPUs since boot, or None."""
    try:
        with open(path, encoding="ascii") as handle:
            fields = handle.readline().split()
    except (OSError, ValueError):
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:] if v.isdigit()]
    if len(values) < 4:
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)        # idle + iowait
    total = sum(values[:8])                                         # guest time is counted in user already
    return total - idle, total


def _meminfo(path="/proc/meminfo", keys=("MemTotal", "MemAvailable", "VmRSS")):
    """{key: bytes} of the ``key: N kB`` lines of a /proc file."""
    found = {}
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            for line in handle:
                name, _, rest = line.partition(":")
                if name in keys:
                    parts = rest.split()
                    if parts and parts[0].isdigit():
                        found[name] = int(parts[0]) * 1024
    except OSError:
        pass
    return found


def _percent(part, whole):
    return None if not whole or part is None else round(100.0 * part / whole, 1)


def read(state_dir, previous_cpu=None):
    """(figures, cpu sample): blocking reads of /proc and statvfs; CPU use since ``previous_cpu`` (since boot
    without one)."""
    cpu = _cpu_times()
    if cpu is None:
        cpu_percent = None
    elif previous_cpu is not None and cpu[1] > previous_cpu[1]:
        cpu_percent = _percent(cpu[0] - previous_cpu[0], cpu[1] - previous_cpu[1])
    else:
        cpu_percent = _percent(cpu[0], cpu[1])
    try:
        load1 = os.getloadavg()[0]
    except OSError:
        load1 = None
    memory = _meminfo()
    memory.update(_meminfo("/proc/self/status"))
    total, available = memory.get("MemTotal"), memory.get("MemAvailable")
    used = None if total is None or available is None else total - available
    try:
        fs = os.statvfs(state_dir)
        disk_total, disk_free = fs.f_blocks * fs.f_frsize, fs.f_bavail * fs.f_frsize
        disk_used = disk_total - fs.f_bfree * fs.f_frsize
    except OSError:
        disk_total = disk_free = disk_used = None
    figures = {
        "cpu": {"percent": cpu_percent, "load_1min": None if load1 is None else round(load1, 2),
                "cores": os.cpu_count()},
        "ram": {"total_bytes": total, "used_bytes": used, "percent": _percent(used, total),
                "daemon_bytes": memory.get("VmRSS")},
        "disk": {"path": state_dir, "total_bytes": disk_total, "used_bytes": disk_used, "free_bytes": disk_free,
                 "percent": _percent(disk_used, disk_total)},
    }
    return figures, cpu


class SystemLoad:
    """The latest reading (at most ``MAX_AGE_S`` old on the monotonic clock); one read at a time."""

    def __init__(self, state_dir):
        self.state_dir = state_dir
        self._figures, self._read_at, self._cpu = None, None, None
        self._reading = None

    async def figures(self, run_blocking, now):
        """The figures with ``ts`` (``now()`` when they were read); ``run_blocking(func, *args)`` reads."""
        fresh = self._read_at is not None and time.monotonic() - self._read_at < MAX_AGE_S
        if not fresh:
            if self._reading is None or self._reading.done():
                self._reading = asyncio.ensure_future(self._read(run_blocking, now))
            await asyncio.shield(self._reading)
        return self._figures

    async def _read(self, run_blocking, now):
        figures, self._cpu = await run_blocking(read, self.state_dir, self._cpu)
        figures["ts"] = now()
        self._figures, self._read_at = figures, time.monotonic()
