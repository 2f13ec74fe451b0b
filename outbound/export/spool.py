"""The export spool: finished files wait here, in order, until a server has them (store and forward, SPEC §5).

One entry is two files in the spool directory, named by a sequence number that only grows (the order of
``put``): ``<seq>.meta`` (JSON: file name, size, data type, device, start, end) and ``<seq>.data`` (the file's
bytes as the server will receive them). ``put`` moves the file in as ``<seq>.part`` and fsyncs it, writes the
meta (temp, fsync, rename), then renames ``.part`` to ``.data`` and fsyncs the directory: that last rename is
the commit, so a power cut at any instant leaves either a whole entry or none. ``remove`` unlinks the data
first, then the meta. Opening the spool deletes what an interrupted put or remove left (``.part``, ``.tmp``, a
meta without data) and keeps every committed entry, in order.

The spool is bounded (``max_bytes``, from push.spool_mb): a put that would overflow it first drops the
OLDEST entries, each reported through ``on_drop(entry, reason)`` (the export-dropped event); a file larger
than the whole spool is itself dropped. Every file operation runs in the one executor (daemon/blocking.py).
"""

import asyncio
import collections
import json
import logging
import os
import shutil

from daemon.atomicfile import fsync_directory
from daemon.blocking import run_blocking

log = logging.getLogger("gateway.push.spool")

DATA, META, PART, TMP = ".data", ".meta", ".part", ".tmp"
SEQ_DIGITS = 12
META_KEYS = ("data_type", "device", "start", "end")
MB = 1024 * 1024

Entry = collections.namedtuple("Entry", "id name size meta path")

# reasons an entry leaves the spool undelivered (the event's ``reason``)
FULL = "full"              # dropped to make room for a newer file
TOO_LARGE = "too_large"    # larger than the whole spool
DAMAGED = "damaged"        # found without its meta, of another size than it was put with, or unreadable


class Spool:
    """Finished export files waiting for delivery, oldest first; ``await open()`` before use."""

    def __init__(self, directory, max_bytes, on_drop=None):
        self.directory = directory
        self.max_bytes = int(max_bytes)
        self.on_drop = on_drop
        self._entries = collections.OrderedDict()       # id -> Entry, in the order of put
        self._used = 0
        self._next = 1
        self._lock = asyncio.Lock()
        self.opened = False
        self.resize_task = None                         # the last push.spool_mb change being applied
        self.dropped = 0                                # entries dropped undelivered since start

    # ---------------------------------------------------------------- queries

    def entries(self):
        """The waiting entries, oldest first."""
        return list(self._entries.values())

    def used_bytes(self):
        return self._used

    def count(self):
        return len(self._entries)

    # ---------------------------------------------------------------- commands

    async def open(self):
        """Create the directory, clear what an interrupted put or remove left, index the committed entries."""
        async with self._lock:
            found, damaged, next_seq = await run_blocking(_recover, self.directory)
            self._entries.clear()
            self._used = 0
            for entry in found:
                self._add(entry)
            self._next = next_seq
            self.opened = True
        for entry in damaged:
            self._dropped(entry, DAMAGED)
        if found or damaged:
            log.info("export spool: %d file(s) waiting (%d bytes), %d damaged removed", len(found), self._used,
                     len(damaged))

    async def put(self, path, name, meta):
        """Move the finished file ``path`` into the spool as ``name``; the entry id, or None when the file is
        larger than the whole spool (then it is dropped, with its event). Older entries make room first."""
        if os.sep in name or name.startswith(".") or not name:
            raise ValueError("a file name, not a path: %r" % name)
        meta = dict((key, meta.get(key)) for key in META_KEYS)
        async with self._lock:
            size = await run_blocking(os.path.getsize, path)
            if size > self.max_bytes:
                await run_blocking(_unlink, path)
                dropped = [Entry(None, name, size, meta, None)]
                seq = None
            else:
                dropped = await self._make_room(size)
                seq = self._next
                self._next += 1
                entry = await run_blocking(_commit, self.directory, seq, path, name, size, meta)
                self._add(entry)
        for entry in dropped:
            self._dropped(entry, TOO_LARGE if seq is None else FULL)
        return seq

    async def remove(self, entry_id):
        """The entry was delivered: forget it (nothing happens when it is gone already)."""
        async with self._lock:
            entry = self._entries.pop(entry_id, None)
            if entry is None:
                return False
            self._used -= entry.size
            await run_blocking(_delete, self.directory, entry_id)
            return True

    async def discard(self, entry_id, reason=DAMAGED):
        """Drop an entry that cannot be sent (its file unreadable), with its event; False when it is gone."""
        async with self._lock:
            entry = self._entries.pop(entry_id, None)
            if entry is None:
                return False
            self._used -= entry.size
            await run_blocking(_delete, self.directory, entry_id)
        self._dropped(entry, reason)
        return True

    def __contains__(self, entry_id):
        return entry_id in self._entries

    async def set_max_bytes(self, max_bytes):
        """A new bound (push.spool_mb changed): the oldest entries beyond it are dropped now."""
        async with self._lock:
            self.max_bytes = int(max_bytes)
            dropped = await self._make_room(0)
        for entry in dropped:
            self._dropped(entry, FULL)

    # ---------------------------------------------------------------- inside

    def _add(self, entry):
        self._entries[entry.id] = entry
        self._used += entry.size

    async def _make_room(self, size):
        dropped = []
        while self._entries and self._used + size > self.max_bytes:
            entry_id, entry = next(iter(self._entries.items()))
            del self._entries[entry_id]
            self._used -= entry.size
            await run_blocking(_delete, self.directory, entry_id)
            dropped.append(entry)
        return dropped

    def _dropped(self, entry, reason):
        self.dropped += 1
        log.warning("export spool: %s dropped undelivered (%s, %d bytes)", entry.name, reason, entry.size)
        if self.on_drop is not None:
            try:
                self.on_drop(entry, reason)
            except Exception:                     # the event is a report; the spool must go on
                log.exception("export spool: reporting a dropped file failed")


def drop_recorder(door):
    """``on_drop`` for a Spool: each file dropped undelivered is an ``export-dropped`` event in the event log."""
    def record(entry, reason):
        door.record_event("export-dropped", "%s dropped undelivered (%s, %d bytes)" % (entry.name, reason, entry.size),
                          "non-critical", file=entry.name, size=entry.size, reason=reason,
                          **dict((key, value) for key, value in entry.meta.items() if value is not None))
    return record


async def open_spool(door):
    """The push door's spool, opened: in the state directory, bounded by push.spool_mb (a change applies at
    once), each file dropped undelivered an ``export-dropped`` event."""
    spool = Spool(directory_of(door), max_bytes_of(door), on_drop=drop_recorder(door))
    await spool.open()

    def changed(name, _value):
        if name == "push.spool_mb":
            spool.resize_task = asyncio.get_running_loop().create_task(spool.set_max_bytes(max_bytes_of(door)))
    door.on_setting_change(changed)
    return spool


def directory_of(door):
    """The spool's directory in the state directory."""
    return door.state_path("export-spool")


def max_bytes_of(door):
    return int(door.setting("push.spool_mb")) * MB


# ---------------------------------------------------------------- blocking file work (executor only)

def _base(directory, seq):
    return os.path.join(directory, "%0*d" % (SEQ_DIGITS, seq))


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _commit(directory, seq, source, name, size, meta):
    """Move ``source`` in as entry ``seq``: data as .part (fsynced), meta (atomic), then .part -> .data."""
    base = _base(directory, seq)
    part = base + PART
    try:
        os.rename(source, part)
        moved = True
    except OSError:                              # another file system: copy, the source goes once committed
        shutil.copyfile(source, part)
        moved = False
    _fsync_file(part)
    document = json.dumps({"name": name, "size": size, "meta": meta}, sort_keys=True).encode()
    fd = os.open(base + META + TMP, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, document)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(base + META + TMP, base + META)
    os.replace(part, base + DATA)
    fsync_directory(directory)
    if not moved:
        _unlink(source)
    return Entry(seq, name, size, meta, base + DATA)


def _delete(directory, seq):
    base = _base(directory, seq)
    _unlink(base + DATA)                         # first: without its data an entry is gone
    _unlink(base + META)
    fsync_directory(directory)


def _recover(directory):
    """(committed entries by sequence, damaged entries removed, next sequence) of a spool directory."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    names = os.listdir(directory)
    seqs = {}
    removed = False
    for file_name in names:
        stem, _dot, _rest = file_name.partition(".")
        suffix = file_name[len(stem):]
        if not stem.isdigit() or suffix not in (DATA, META, PART, META + TMP):
            continue                              # not ours: left alone
        if suffix in (PART, META + TMP):          # an interrupted put
            _unlink(os.path.join(directory, file_name))
            removed = True
            continue
        seqs.setdefault(int(stem), set()).add(suffix)
    found, damaged = [], []
    for seq in sorted(seqs):
        base = _base(directory, seq)
        if DATA not in seqs[seq]:                 # an interrupted remove (or put before its commit)
            _unlink(base + META)
            removed = True
            continue
        entry = _read_entry(base, seq)
        if entry is None or META not in seqs[seq]:
            size = os.path.getsize(base + DATA)
            damaged.append(Entry(seq, os.path.basename(base + DATA), size, {}, None))
            _unlink(base + DATA)
            _unlink(base + META)
            removed = True
            continue
        found.append(entry)
    if removed:
        fsync_directory(directory)
    next_seq = max(seqs) + 1 if seqs else 1
    return found, damaged, next_seq


def _read_entry(base, seq):
    """The entry whose meta and data agree, else None."""
    try:
        with open(base + META, "rb") as handle:
            document = json.loads(handle.read())
        name, size, meta = document["name"], int(document["size"]), dict(document["meta"])
        if os.path.getsize(base + DATA) != size or not isinstance(name, str):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Entry(seq, name, size, dict((key, meta.get(key)) for key in META_KEYS), base + DATA)
