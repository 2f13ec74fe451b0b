"""Atomic file replacement (write temp, fsync, rename, fsync dir) and a tinydb
storage built on it, so configuration survives a power cut intact (SPEC §4)."""

import json
import os

from tinydb.storages import Storage


def atomic_write(path, data):
    """Replace ``path`` by ``data`` (bytes) so a reader sees old or new, never half."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_directory(directory)


def fsync_directory(directory):
    """Make a rename inside ``directory`` durable (the entry itself is data)."""
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class AtomicJSONStorage(Storage):
    """tinydb storage: whole-document JSON, replaced atomically on each write."""

    def __init__(self, path, **_kwargs):
        self.path = path

    def read(self):
        try:
            with open(self.path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            return None
        if not raw.strip():
            return None
        return json.loads(raw)

    def write(self, data):
        atomic_write(self.path, json.dumps(data, sort_keys=True, indent=1).encode())

    def close(self):
        pass
