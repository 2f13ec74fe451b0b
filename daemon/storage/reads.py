"""Reads of the store: series, newest point, counter index, ranges, queries,
export, status and snapshot.

Why apart: reads never change what is stored; they only have to see what
the commits left, wherever it is.

Invariant kept here: a read sees exactly what the last commit left, under
the store lock and without changing the store (``status`` only refreshes
``last_status``): a chunk kept in memory first (it is newer than its page),
its page on disk otherwise, and only pages of the slot's current
incarnation. Memory stays bounded: a long read takes a slot's ring in one
pread, an export streams one chunk per series at a time, and ``snapshot``
copies through the store's own descriptor (no readahead).

``ReadsMixin`` is one part of ``TimeSeriesStore`` (daemon/storage/store.py);
it uses the store's lock, file, geometry, slots and ``_read_chunk``.
"""

import array
import math
import os
import shutil

from daemon.storage import format as fmt
from daemon.storage.format import Q_VALID
from daemon.storage.query import SeriesData, aggregate, iter_rows


class ReadsMixin:
    """The read half of ``TimeSeriesStore``."""

    # ------------------------------------------------------------ reading

    def series(self):
        """Names of the stored series with their period, kind and the start times of their oldest and
        newest points still held (None when empty)."""
        with self._lock:
            return dict((s.series.name, {"period_s": s.series.period, "counter": s.series.counter,
                                         "first": self._first(s), "newest": self._newest_time(s)})
                        for s in self.slots if s is not None)

    def _first(self, slot):
        if slot.newest is None:
            return None
        first = max(slot.oldest if slot.oldest is not None else slot.newest, slot.newest - self.geometry.points + 1)
        return first * slot.series.period

    @staticmethod
    def _newest_time(slot):
        return None if slot.newest is None else slot.newest * slot.series.period

    def newest(self, name):
        """Start time of the newest point of ``name``, or None."""
        with self._lock:
            slot = self.by_name.get(name)
            if slot is None or slot.newest is None:
                return None
            return slot.newest * slot.series.period

    def last_index(self, name):
        """Counter series: the index at the end of the newest point (None if unknown)."""
        with self._lock:
            slot = self.by_name.get(name)
            if slot is None or slot.newest is None or not slot.series.counter:
                return None
            number = slot.newest // self.geometry.chunk_points
            base, values, quality = self._chunk_content(slot, number)
            if quality is None or math.isnan(base):
                return None
            total = base
            for v, q in zip(values, quality):
                if q & Q_VALID:
                    total += v
            return total

    def _chunk_content(self, slot, number, ring=None):
        """(base, array of values, quality bytes) of one chunk, or (nan, None, None).

        ``ring``: the slot's whole ring already read (one pread for long reads).
        """
        chunk = slot.chunks.get(number)
        if chunk is not None:
            return chunk.base, chunk.values, chunk.quality
        page = None
        if ring is not None:
            position = (number % self.geometry.chunks) * fmt.CHUNK_BYTES
            page = ring[position:position + fmt.CHUNK_BYTES]
        found = self._read_chunk(slot, number, page)
        if not found:
            return math.nan, None, None
        base, values, quality = found
        return base, array.array("f", values), quality

    def read(self, name, start, end):
        """Raw points of one series with start time in [start, end): SeriesData."""
        with self._lock:
            slot = self.by_name.get(name)
            if slot is None:
                raise KeyError("no series %r" % name)
            return self._read_slot(slot, start, end)

    def _read_slot(self, slot, start, end):
        g = self.geometry
        period = slot.series.period
        n0 = -(-int(start) // period)
        n1 = -(-int(end) // period) - 1
        if slot.newest is not None:
            n0 = max(n0, slot.newest - g.points + 1, slot.oldest if slot.oldest is not None else n0)
            n1 = min(n1, slot.newest)
        else:
            n1 = n0 - 1
        data = SeriesData(slot.series.name, period, slot.series.counter)
        if n1 < n0:
            data.start = n0 * period
            return data
        first, last = n0 // g.chunk_points, n1 // g.chunk_points
        ring = None
        if last > first:
            ring = os.pread(self.fd, g.slot_bytes, g.chunk_offset(slot.number, 0))
        values = array.array("f")
        quality = bytearray()
        bases = []
        for number in range(first, last + 1):
            base, chunk_values, chunk_quality = self._chunk_content(slot, number, ring)
            if chunk_values is None:
                chunk_values = array.array("f", bytes(4 * g.chunk_points))
                chunk_quality = bytes(g.chunk_points)
            lo = max(n0 - number * g.chunk_points, 0)
            hi = min(n1 - number * g.chunk_points, g.chunk_points - 1)
            if slot.series.counter:
                running = base
                for i in range(lo):
                    if chunk_quality[i] & Q_VALID:
                        running += chunk_values[i]
                bases.append((len(values), running, hi - lo + 1))
            values.extend(chunk_values[lo:hi + 1])
            quality.extend(chunk_quality[lo:hi + 1])
        data.fill(n0 * period, values, quality, bases if slot.series.counter else None)
        return data

    def query(self, names, start, end, step=None, utc_offset_s=0):
        """{name: SeriesData}: raw points, or aggregated by "hour", "day", "week", "month"."""
        out = {}
        for name in names:
            data = self.read(name, start, end)
            out[name] = data if step in (None, "raw") else aggregate(data, step, utc_offset_s)
        return out

    def iter_chunks(self, name, start, end):
        """SeriesData pieces of at most one chunk each (streaming reads)."""
        with self._lock:
            slot = self.by_name.get(name)
            if slot is None:
                raise KeyError("no series %r" % name)
            period = slot.series.period
            step = self.geometry.chunk_points * period
        t = start
        while t < end:
            piece_end = min(end, (t // step + 1) * step)
            with self._lock:
                piece = self._read_slot(slot, t, piece_end)
            yield piece
            t = piece_end

    def export(self, names, start, end, indexes=False, newest_first=False):
        """Iterator of (ts, [(value, quality name) or None per name]) in time order.

        Reads one chunk per series at a time: memory stays bounded whatever
        the range (a year of 192 circuits streams through a few MiB).
        ``indexes``: a counter series gives its index at the end of each point
        instead of the point's energy. ``newest_first``: rows in reverse time
        order, read window by window backwards (a window is one chunk of the
        shortest period: still bounded).
        """
        if not newest_first:
            return iter_rows([self.iter_chunks(name, start, end) for name in names], indexes)
        return self._export_backwards(list(names), start, end, indexes)

    def _export_backwards(self, names, start, end, indexes):
        with self._lock:
            slots = [self.by_name.get(name) for name in names]
            if any(slot is None for slot in slots):
                raise KeyError("no series %r" % names[slots.index(None)])
            held = [self._first(slot) for slot in slots if slot.newest is not None]
            window = self.geometry.chunk_points * min(slot.series.period for slot in slots) if slots else 0
        if not held:
            return
        start = max(start, min(held))
        high = end
        while high > start:
            low = max(start, ((high - 1) // window) * window)
            rows = list(iter_rows([self.iter_chunks(name, low, high) for name in names], indexes))
            rows.reverse()
            yield from rows
            high = low

    # ------------------------------------------------------------ status, snapshot

    def status(self):
        """Size, use, oldest/newest point, errors (takes the lock: see ``last_status``)."""
        with self._lock:
            self.last_status = self._compute_status()
            return dict(self.last_status)

    def _compute_status(self):
        g = self.geometry
        used = [s for s in self.slots if s is not None]
        points = 0
        oldest = newest = None
        for s in used:
            if s.newest is None:
                continue
            first = max(s.oldest if s.oldest is not None else s.newest, s.newest - g.points + 1)
            points += s.newest - first + 1
            t_old, t_new = first * s.series.period, s.newest * s.series.period
            oldest = t_old if oldest is None else min(oldest, t_old)
            newest = t_new if newest is None else max(newest, t_new)
        live = sum(1 for refs in self._seg_refs if refs)
        return {
            "path": self.path, "size_bytes": g.file_size, "series": len(used), "series_capacity": g.slots,
            "points_per_series": g.points, "use": round(points / float(g.slots * g.points), 6),
            "oldest": oldest, "newest": newest, "write_errors": self.stats["write_errors"],
            "last_error": self.last_error, "journal": {"segments": g.segments, "live_segments": live,
                                                      "head": self._head},
            "stats": dict(self.stats), "recovery": dict(self.recovery),
            "geometry_mismatch": bool(self.requested_geometry is not None
                                      and self.requested_geometry != g),
        }

    def snapshot(self, destination):
        """A consistent copy of the store into ``destination`` (for backups).

        Held under the store lock: commits wait, readers too; the copy opens
        like the original (its journal replays what is not in place yet). It
        is read through the store's own descriptor (no readahead: see
        __init__) so copying does not make later writes more expensive.
        """
        os.makedirs(destination, exist_ok=True)
        store_name, directory_name = os.path.basename(self.path), os.path.basename(self.dir_path)
        target = os.path.join(destination, store_name)
        with self._lock:
            os.fdatasync(self.fd)
            out = os.open(target + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                size = self.geometry.file_size
                step = 1 << 20
                for offset in range(0, size, step):
                    data = os.pread(self.fd, min(step, size - offset), offset)
                    os.pwrite(out, data, offset)
                os.fsync(out)
            finally:
                os.close(out)
            os.replace(target + ".tmp", target)
            if os.path.exists(self.dir_path):
                shutil.copyfile(self.dir_path, os.path.join(destination, directory_name))
        return [target, os.path.join(destination, directory_name)]
