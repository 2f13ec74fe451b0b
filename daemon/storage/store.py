"""The fixed-size time-series store: consumption curves, load curves, histories.

Why this shape (figures in docs/storage.md and bench/RESULTS-storage.md):

* One file, preallocated at creation from the settings (``Geometry``): it
  never grows; each series owns a ring of ``points`` points, so the oldest
  points are overwritten in order, whatever the number of devices.
* A series' ring is stored series-major in 4 KiB chunks, so a year of one
  series is one contiguous read. A chunk is filled in memory and written in
  place once, when it is complete; until then its points live in the write
  journal (daemon/storage/journal.py).

Invariant kept here: the file never changes size; a slot's pages only ever
hold chunks of the series the directory gives that slot (its incarnation),
and the directory is saved before any journal record refers to a new slot;
queued points reach memory, the journal and the disk only through
``commit``, under the store lock.

``TimeSeriesStore`` is this module (file, directory of slots, chunks, the
write path: add / commit / apply / flush / close) combined with
``JournalMixin`` (journal.py: records, replay, segments, retries) and
``ReadsMixin`` (reads.py: reads, queries, export, status, snapshot). It is
blocking (file I/O); the daemon uses it through
``daemon.storage.service.Storage``, which runs every call in
``daemon.blocking.run_blocking`` and turns write errors into events while
the daemon keeps running.
"""

import array
import logging
import math
import os
import threading

from core import registry
from daemon.atomicfile import fsync_directory, read_json, write_json
from daemon.state import settings as settings_mod
from daemon.state.topology import Topology
from daemon.storage import format as fmt

# re-exported: callers (curves, web views) take the quality bits from here
from daemon.storage.format import (  # noqa: F401
    Q_ACCUMULATED,
    Q_BACKFILLED,
    Q_CLOCK_NOT_SET,
    Q_INCOMPLETE,
    Q_MISSING,
    Q_VALID,
    Geometry,
    quality_name,
)

# MAX_RETRY_BYTES re-exported: commit() names it, the journal keeps it
from daemon.storage.journal import MAX_RETRY_BYTES, JournalMixin  # noqa: F401
from daemon.storage.reads import ReadsMixin

log = logging.getLogger("gateway.tsdb")

# ---------------------------------------------------------------- capacity (SPEC §1, §4)

MAX_DEVICES = Topology.MAX_DEVICES
MAX_CIRCUITS = Topology.MAX_CIRCUITS
# Per circuit: the energy indexes (consumption curves) and the load-curve
# powers the registry knows; per device: the meter's trend log (B-30: 12 items).
CONSUMPTION_KEYS = tuple(row[registry.KEY] for row in registry.MEASUREMENTS if row[registry.KIND] == "energy")
LOAD_CURVE_KEYS = tuple(row[registry.KEY] for row in registry.MEASUREMENTS if row[registry.KIND] == "load_curve")
SERIES_PER_CIRCUIT = len(CONSUMPTION_KEYS) + len(LOAD_CURVE_KEYS)
HISTORY_ITEMS_PER_DEVICE = 12

STORE_FILE = "store.dat"
DIRECTORY_FILE = "series.json"


def setting(settings, name):
    """A setting's value, or its schema default without a settings store (tools, benches)."""
    return settings.get(name) if settings is not None else settings_mod.row(name)[settings_mod.DEFAULT]


def default_slots(max_devices=MAX_DEVICES, max_circuits=MAX_CIRCUITS):
    return max_circuits * SERIES_PER_CIRCUIT + max_devices * HISTORY_ITEMS_PER_DEVICE


def geometry_from_settings(settings=None):
    return Geometry(default_slots(), setting(settings, "storage.points_per_series"))


class StoreFull(Exception):
    """Every slot belongs to a series still in use: a new series cannot be added."""


class Series:
    """What a slot holds: a name, its integration period (s), counter or gauge.

    Counter series (consumption curves) store the energy consumed in each
    interval (exact in float32 for integer Wh up to 16.7 MWh) and each chunk
    keeps the index before its first point, so indexes can be rebuilt.
    """

    __slots__ = ("name", "period", "counter")

    def __init__(self, name, period_s, counter=False):
        if not isinstance(name, str) or not 0 < len(name) <= 128:
            raise ValueError("series name must be 1..128 characters")
        period_s = int(period_s)
        if not 1 <= period_s <= 86400:
            raise ValueError("period must be 1..86400 s")
        self.name = name
        self.period = period_s
        self.counter = bool(counter)

    def __repr__(self):
        return "<Series %s %ds%s>" % (self.name, self.period, " counter" if self.counter else "")


# ---------------------------------------------------------------- in-memory state

class _Chunk:
    """A chunk being filled (or about to be written) in memory."""

    __slots__ = ("number", "values", "quality", "base", "segments", "needs_image", "dirty")

    def __init__(self, number, points):
        self.number = number
        self.values = array.array("f", bytes(4 * points))
        self.quality = bytearray(points)
        self.base = math.nan
        self.segments = set()      # journal segments holding points of this chunk
        self.needs_image = False   # holds content that is not in the journal (came from disk)
        self.dirty = False         # differs from what is on disk


class _Slot:
    __slots__ = ("number", "series", "incarnation", "since", "chunks", "current", "newest", "oldest",
                 "in_use")

    def __init__(self, number, series, incarnation, since):
        self.number = number
        self.series = series
        self.incarnation = incarnation
        self.since = since          # directory generation at which this incarnation began
        self.chunks = {}            # chunk number -> _Chunk kept in memory
        self.current = None         # chunk number of the newest point
        self.newest = None          # period number of the newest point
        self.oldest = None
        self.in_use = False         # written or declared during this run


# ---------------------------------------------------------------- the store

class TimeSeriesStore(JournalMixin, ReadsMixin):
    """Blocking store on one preallocated file (+ a small series directory)."""

    def __init__(self, directory, geometry=None, clock=None):
        self.directory = directory
        self.path = os.path.join(directory, STORE_FILE)
        self.dir_path = os.path.join(directory, DIRECTORY_FILE)
        self.clock = clock
        self._lock = threading.RLock()
        self._in_lock = threading.Lock()
        self._incoming = []
        self._retry_ops = []
        self.stats = {"commits": 0, "points": 0, "journal_bytes": 0, "chunk_writes": 0, "forced_flushes": 0,
                      "dropped_old": 0, "dropped_full": 0, "lost_points": 0, "series_resets": 0,
                      "write_errors": 0}
        self.last_error = None
        self.created = False
        os.makedirs(directory, exist_ok=True)
        if not os.path.exists(self.path):
            self._create(geometry or geometry_from_settings())
        self.fd = os.open(self.path, os.O_RDWR)
        # No readahead: on recent kernels a large read fills the page cache with
        # large folios, and a later 4 KiB write into one dirties (and writes
        # back) the whole folio: up to 512x more bytes on the SD card
        # (measured, docs/storage.md). Reads here are whole chunks or rings anyway.
        os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_RANDOM)
        try:
            self.geometry, self.created_at = fmt.decode_superblock(os.pread(self.fd, fmt.PAGE, 0))
            if os.fstat(self.fd).st_size != self.geometry.file_size:
                raise fmt.FormatError("store file size does not match its geometry")
            self.requested_geometry = geometry
            self._load_directory()
            self._scan_slots()
            self.recovery = self._replay()
            self.last_status = self._compute_status()    # read without the lock (event loop)
        except BaseException:
            os.close(self.fd)
            raise

    # ------------------------------------------------------------ creation

    def _create(self, geometry):
        """Preallocate the whole file under a temporary name, then rename.

        Written with zeros, so every block is allocated now (a full disk fails
        here, not later) and none is converted during the first lap (fallocate's
        unwritten extents would be, growing the extent tree with metadata
        writes; zero-filling them is also 4x slower than plain writes).
        """
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            zeros = bytes(1 << 20)
            for offset in range(0, geometry.file_size, len(zeros)):
                os.pwrite(fd, zeros[:geometry.file_size - offset], offset)
            created = self.clock.time() if self.clock else 0.0
            os.pwrite(fd, fmt.encode_superblock(geometry, created), 0)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)   # no large folios left behind
        finally:
            os.close(fd)
        if os.path.exists(self.dir_path):
            os.unlink(self.dir_path)
        os.replace(tmp, self.path)
        fsync_directory(self.directory)
        self.created = True
        log.info("time-series store created: %s, %d bytes (%d series x %d points)",
                 self.path, geometry.file_size, geometry.slots, geometry.points)

    # ------------------------------------------------------------ directory (slot -> series)

    def _load_directory(self):
        self._directory_dirty = False
        self.generation = 0
        self.slots = [None] * self.geometry.slots
        self.by_name = {}
        self.incarnations = {}
        doc = read_json(self.dir_path, {})
        self.generation = int(doc.get("generation", 0))
        self.incarnations = dict((int(k), int(v)) for k, v in doc.get("incarnations", {}).items())
        for name, entry in doc.get("series", {}).items():
            number = int(entry["slot"])
            if not 0 <= number < self.geometry.slots or self.slots[number] is not None:
                continue
            series = Series(name, entry["period"], entry.get("counter", False))
            slot = _Slot(number, series, int(entry["incarnation"]), int(entry["since"]))
            self.slots[number] = slot
            self.by_name[name] = slot

    def _save_directory(self):
        doc = {"generation": self.generation,
               "incarnations": dict((str(k), v) for k, v in sorted(self.incarnations.items())),
               "series": dict((s.series.name, {"slot": s.number, "period": s.series.period,
                                               "counter": s.series.counter, "incarnation": s.incarnation,
                                               "since": s.since})
                              for s in self.slots if s is not None)}
        write_json(self.dir_path, doc)

    def _slot_for(self, series):
        """The slot of ``series``, assigning (and saving the directory) if needed."""
        slot = self.by_name.get(series.name)
        if slot is not None and slot.series.period == series.period and slot.series.counter == series.counter:
            slot.in_use = True
            return slot
        if slot is not None:        # period changed: the old points mean something else
            log.warning("series %s changed from %d s to %d s: its points start anew",
                        series.name, slot.series.period, series.period)
            self.stats["series_resets"] += 1
            number = slot.number
            self._forget_slot(slot)
        else:
            number = self._free_slot()
        self.generation += 1
        incarnation = self.incarnations.get(number, 0) + 1
        self.incarnations[number] = incarnation
        slot = _Slot(number, series, incarnation, self.generation)
        slot.in_use = True
        self.slots[number] = slot
        self.by_name[series.name] = slot
        self._directory_dirty = True        # saved once, before this commit's journal records
        return slot

    def _free_slot(self):
        for number, slot in enumerate(self.slots):
            if slot is None:
                return number
        # Reclaim the series written longest ago among those not used in this run.
        idle = [s for s in self.slots if not s.in_use]
        if not idle:
            raise StoreFull("all %d series slots are in use" % self.geometry.slots)
        victim = min(idle, key=lambda s: -1 if s.newest is None else s.newest * s.series.period)
        log.warning("reusing the slot of idle series %s", victim.series.name)
        number = victim.number
        self._forget_slot(victim)
        return number

    def _forget_slot(self, slot):
        for chunk in slot.chunks.values():
            self._release(slot.number, chunk)
        self.slots[slot.number] = None
        self.by_name.pop(slot.series.name, None)

    # ------------------------------------------------------------ opening: scan (replay: journal.py)

    def _read_chunk(self, slot, number, page=None):
        """Decoded chunk ``number`` of ``slot`` from disk, None if absent, False if corrupt."""
        if page is None:
            page = os.pread(self.fd, fmt.CHUNK_BYTES, self.geometry.chunk_offset(slot.number, number))
        decoded = fmt.decode_chunk(page, self.geometry.chunk_points)
        if not decoded:
            return decoded
        s, incarnation, n, base, values, quality = decoded
        if s != slot.number or incarnation != slot.incarnation or n != number:
            return None
        return base, values, quality

    def _scan_slots(self):
        """Newest/oldest point of every series and a check of every chunk."""
        g = self.geometry
        self.bad_chunks = 0
        for slot in self.slots:
            if slot is None:
                continue
            region = os.pread(self.fd, g.slot_bytes, g.chunk_offset(slot.number, 0))
            numbers = []
            for k in range(g.chunks):
                page = region[k * fmt.CHUNK_BYTES:(k + 1) * fmt.CHUNK_BYTES]
                decoded = fmt.decode_chunk(page, g.chunk_points)
                if decoded is False:
                    self.bad_chunks += 1
                    continue
                if decoded is None:
                    continue
                s, incarnation, number, _base, _values, quality = decoded
                if s == slot.number and incarnation == slot.incarnation and number % g.chunks == k:
                    numbers.append((number, quality))
            if not numbers:
                continue
            newest_number, quality = max(numbers)
            valid = [i for i, q in enumerate(quality) if q & Q_VALID]
            if valid:
                slot.current = newest_number
                slot.newest = newest_number * g.chunk_points + valid[-1]
            # chunks older than one ring behind the newest are left-overs of a past lap
            alive = [(n, q) for n, q in numbers if n > newest_number - g.chunks]
            oldest_number, quality = min(alive)
            valid = [i for i, q in enumerate(quality) if q & Q_VALID]
            if valid:
                slot.oldest = oldest_number * g.chunk_points + valid[0]

    # ------------------------------------------------------------ writing

    def add(self, series, ts, value, quality=Q_VALID, index=None):
        """Queue one point (start of its interval ``ts``); written at the next commit.

        Cheap and non-blocking: safe to call from the event loop.
        """
        with self._in_lock:
            self._incoming.append((series, ts, value, quality, index))

    def add_row(self, series_list, ts, values, quality=Q_VALID):
        """Queue one point for each series of ``series_list`` at ``ts`` (bulk writers)."""
        with self._in_lock:
            self._incoming.append((series_list, ts, values, quality, False))

    def pending_points(self):
        with self._in_lock:
            return sum(len(item[0]) if item[4] is False else 1 for item in self._incoming)

    def commit(self):
        """Write what was queued: one journal record batch, then completed chunks.

        Raises OSError when the disk refuses; nothing queued is lost then (it
        is kept and retried at the next commit, up to MAX_RETRY_BYTES).
        """
        with self._in_lock:
            batch, self._incoming = self._incoming, []
        with self._lock:
            ops = list(self._retry_ops)
            self._retry_ops = []
            try:
                ops.extend(self._apply_batch(batch))
                if not ops and not self._completed():
                    return 0
                self._flush_completed(ops=ops)
            except OSError as exc:
                self.stats["write_errors"] += 1
                self.last_error = "%s" % exc
                self.last_status = self._compute_status()
                raise
            self.stats["commits"] += 1
            self.last_error = None
            self.last_status = self._compute_status()
            return len(batch)

    def _apply_batch(self, batch):
        """Apply queued points in memory; returns journal ops [(bytes, chunk keys)]."""
        rows = {}       # period number -> {slot: (value, quality, chunk number)}, the last one wins
        bases = []
        for item in batch:
            if item[4] is False:                      # add_row
                series_list, ts, values, quality, _ = item
                points = [(series, value, None) for series, value in zip(series_list, values)]
            else:
                series, ts, value, quality, index = item
                points = [(series, value, index)]
            for series, value, index in points:
                try:
                    slot = self._slot_for(series)
                except StoreFull:
                    self.stats["dropped_full"] += 1
                    continue
                n = int(ts // series.period)
                if not 0 <= n <= 0xFFFFFFFF:
                    self.stats["dropped_old"] += 1
                    continue
                kept = slot.chunks.get(n // self.geometry.chunk_points)
                had_base = kept is not None and not math.isnan(kept.base)
                chunk = self._apply(slot, n, value, quality, index)
                if chunk is None:
                    self.stats["dropped_old"] += 1
                    continue
                self.stats["points"] += 1
                stored = chunk.quality[n - chunk.number * self.geometry.chunk_points]
                rows.setdefault(n, {})[slot.number] = (value, stored, chunk.number)
                if index is not None and not had_base and not math.isnan(chunk.base):
                    bases.append((fmt.encode_base(slot.number, chunk.number, chunk.base),
                                  {(slot.number, chunk.number)}))
        ops = []
        for n in sorted(rows):
            entries = sorted(rows[n].items())
            ops.append((fmt.encode_spans(n, [(s, v, q) for s, (v, q, _c) in entries]),
                        set((s, c) for s, (_v, _q, c) in entries)))
        # a base op follows the row that created its chunk (replay applies in order)
        return ops + bases

    def _chunk_for(self, slot, number):
        """The in-memory chunk ``number`` of ``slot``: kept, loaded from disk or new.

        None when the point is older than what the ring keeps.
        """
        chunk = slot.chunks.get(number)
        if chunk is not None:
            return chunk
        g = self.geometry
        if slot.current is not None and number <= slot.current - g.chunks:
            return None
        chunk = _Chunk(number, g.chunk_points)
        page = os.pread(self.fd, fmt.CHUNK_BYTES, g.chunk_offset(slot.number, number))
        decoded = fmt.decode_chunk(page, g.chunk_points)
        if decoded:
            s, incarnation, on_disk, base, values, quality = decoded
            if s == slot.number and incarnation == slot.incarnation:
                if on_disk > number:
                    return None         # a newer lap is already there
                if on_disk == number:
                    chunk.values = array.array("f", values)
                    chunk.quality = bytearray(quality)
                    chunk.base = base
                    chunk.needs_image = True
        slot.chunks[number] = chunk
        return chunk

    def _apply(self, slot, n, value, quality, index):
        """Put one point into its in-memory chunk; the chunk, or None if too old."""
        g = self.geometry
        if slot.newest is not None and n <= slot.newest - g.points:
            return None
        number = n // g.chunk_points
        chunk = self._chunk_for(slot, number)
        if chunk is None:
            return None
        offset = n - number * g.chunk_points
        quality = (quality | Q_VALID) if quality else Q_MISSING
        before = chunk.values[offset]
        chunk.values[offset] = value if quality else 0.0
        if chunk.values[offset] != before or chunk.quality[offset] != quality:
            chunk.quality[offset] = quality
            chunk.dirty = True
        if index is not None and math.isnan(chunk.base):
            chunk.base = float(index) - float(chunk.values[offset])
            chunk.dirty = True
        if quality:
            if slot.newest is None or n > slot.newest:
                slot.newest = n
            if slot.oldest is None or n < slot.oldest:
                slot.oldest = n
        if slot.current is None or number > slot.current:
            slot.current = number
        return chunk

    def _completed(self):
        """Chunks to write in place: every kept chunk older than its slot's newest."""
        out = []
        for slot in self.slots:
            if slot is None or not slot.chunks:
                continue
            for number in sorted(slot.chunks):
                if number < slot.current:
                    out.append((slot, slot.chunks[number]))
        return out

    def _flush_completed(self, ops=None, replaying=False):
        """Journal ``ops`` (+ images of chunks that need one), then write completed chunks."""
        ops = list(ops or ())
        if self._directory_dirty:
            try:
                self._save_directory()
            except OSError:
                self._keep_for_retry(ops)
                raise
            self._directory_dirty = False
        done = self._completed()
        for slot, chunk in done:
            if chunk.dirty and chunk.needs_image:
                ops.append((fmt.encode_chunk_image(slot.number, chunk.number, chunk.base, chunk.values,
                                                   chunk.quality), {(slot.number, chunk.number)}))
                chunk.needs_image = False
        if ops:
            try:
                self._journal(ops)
            except OSError:
                self._keep_for_retry(ops)
                raise
        written = 0
        to_write = [(slot, chunk) for slot, chunk in done if chunk.dirty]
        if to_write:
            for slot, chunk in to_write:
                self._write_chunk(slot, chunk)
            os.fdatasync(self.fd)
            written = len(to_write)
        for slot, chunk in done:
            self._release(slot.number, chunk)
            del slot.chunks[chunk.number]
        return written

    def _write_chunk(self, slot, chunk):
        page = fmt.encode_chunk(slot.number, slot.incarnation, chunk.number,
                                chunk.base, chunk.values, chunk.quality)
        os.pwrite(self.fd, page, self.geometry.chunk_offset(slot.number, chunk.number))
        chunk.dirty = False
        self.stats["chunk_writes"] += 1

    def close(self, clean=True):
        """Commit what is queued, mark a clean shutdown, close the file."""
        with self._lock:
            if self.fd is None:
                return
            try:
                self.commit()
                if clean:
                    self._journal([(fmt.encode_close(), set())])
            finally:
                os.close(self.fd)
                self.fd = None
