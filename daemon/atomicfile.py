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


def read_json(path, default=None):
    """The JSON document at ``path``; ``default`` when it does not exist or is empty.

    A document that exists but does not parse raises ValueError: callers
    decide whether that is a fallback or an error.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return default
    if not raw.strip():
        return default
    return json.loads(raw)


def write_json(path, doc, **dumps_options):
    """Replace ``path`` by ``doc`` as JSON, atomically."""
    options = {"sort_keys": True, "separators": (",", ":")}
    options.update(dumps_options)
    atomic_write(path, json.dumps(doc, **options).encode())


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
        return read_json(self.path)

    def write(self, data):
        write_json(self.path, data, indent=1, separators=None)

    def close(self):
        pass
