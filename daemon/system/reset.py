"""Factory reset (SPEC §7.2): nothing of the gateway is kept, and a power cut cannot leave half of it.

``request`` writes a marker in the state directory; the daemon then restarts, and at its next start, before
any part reads a file (``Gateway.__init__``), ``finish`` removes everything under the state directory —
accounts (back to the manual's default passwords), settings, topology, time series, event log, certificates,
pictures, the device key — and the marker last. A cut in the middle leaves the marker, so the next start
finishes the wipe. Blocking (small file operations): at start-up, or in the executor.
"""

import os
import shutil

from daemon.atomicfile import atomic_write, fsync_directory

MARKER = "factory-reset.pending"


def request(state_dir, who):
    """Ask for the wipe at the next start (``who`` is recorded in the marker, for the log)."""
    atomic_write(os.path.join(state_dir, MARKER), ("asked by %s\n" % who).encode("utf-8"))


def pending(state_dir):
    return os.path.exists(os.path.join(state_dir, MARKER))


def finish(state_dir):
    """Remove everything under ``state_dir`` but the marker, then the marker; the names removed."""
    removed = []
    for name in sorted(os.listdir(state_dir)):
        if name == MARKER:
            continue
        path = os.path.join(state_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        removed.append(name)
    os.unlink(os.path.join(state_dir, MARKER))
    fsync_directory(state_dir)
    return removed
