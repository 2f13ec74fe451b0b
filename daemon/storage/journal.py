"""The store's write journal: records, replay at opening, segments, retries.

Why a journal (figures in docs/storage.md): writing every value in place
would dirty one page per series per interval, so points first go to a
journal (one sequential, CRC-protected record per commit, i.e. per interval)
and a chunk is written in place once, when it is complete. Bytes written per
sample = one journal entry (7 bytes) + 1/chunk_points of a page (~5.6 bytes).

Invariant kept here: every point not yet safely in place is in a record of a
live segment. A segment is reused only when no kept chunk still has points
in it (``_seg_refs``; ``_force_flush`` writes such chunks first, and their
next write in place journals a full image first), and every record names
the oldest record a recovery needs (``_redo``). Hence, at a power cut: a
torn journal record fails its CRC and is the only loss (the interval being
written); a torn chunk is rebuilt from the journal; an unclean shutdown is
detected (no close marker) and reported. Records the disk refused are kept
for the next commit, up to MAX_RETRY_BYTES.

``JournalMixin`` is one part of ``TimeSeriesStore`` (daemon/storage/store.py):
it uses the store's file, geometry, slots and write path (``_apply``,
``_chunk_for``, ``_write_chunk``, ``_flush_completed``) and owns the journal
state (``_seq``, ``_head``, ``_head_offset``, ``_seg_first``, ``_seg_refs``,
set up by ``_replay`` when the store opens; ``_retry_ops``).
"""

import array
import logging
import math
import os

from daemon.storage import format as fmt
from daemon.storage.format import Q_VALID

log = logging.getLogger("gateway.tsdb")

MAX_RETRY_BYTES = 4 << 20     # journal payload kept in memory while the disk refuses writes


class JournalMixin:
    """The journal half of ``TimeSeriesStore`` (called under the store lock)."""

    # ------------------------------------------------------------ opening: replay

    def _replay(self):
        """Re-apply the journal, write completed chunks, find where to append."""
        g = self.geometry
        records = []
        torn = []
        ends = {}
        self._seg_first = [None] * g.segments
        for segment in range(g.segments):
            data = os.pread(self.fd, g.segment_bytes, g.journal_offset + segment * g.segment_bytes)
            found, end, torn_seq = fmt.scan_segment(data)
            ends[segment] = end
            for offset, seq, redo, generation, commit_time, payload in found:
                records.append((seq, segment, redo, generation, commit_time, payload))
            if found:
                self._seg_first[segment] = found[0][1]
            if torn_seq is not None:
                torn.append((torn_seq, segment))
        records.sort()
        self._seg_refs = [set() for _ in range(g.segments)]
        newest_seq = records[-1][0] if records else 0
        redo_from = records[-1][2] if records else 0
        clean = False
        last_commit = None
        applied = 0
        replayed = 0
        for seq, segment, _redo, generation, commit_time, payload in records:
            last_commit = commit_time
            clean = False
            if seq < redo_from:
                continue            # everything in it was already in place
            replayed += 1
            for op in fmt.decode_ops(payload, g.chunk_points):
                if op[0] == "close":
                    clean = True
                    continue
                applied += self._replay_op(op, generation, segment)
        torn_records = [s for s, seg in torn if s == newest_seq + 1]
        if records:
            self._seq = newest_seq + 1
            self._head = records[-1][1]
            self._head_offset = ends[self._head]
        else:
            self._seq, self._head, self._head_offset = 1, 0, 0
        flushed = self._flush_completed(replaying=True)
        report = {"records": len(records), "records_replayed": replayed, "points_replayed": applied,
                  "torn_records": len(torn_records), "bad_chunks": self.bad_chunks, "chunks_rewritten": flushed,
                  "clean_shutdown": clean or not records, "last_commit": last_commit}
        if records and not clean:
            log.warning("time-series store: unclean shutdown detected; last complete commit at %s, "
                        "%d torn record(s), %d corrupt chunk(s) rebuilt from the journal",
                        last_commit, len(torn_records), self.bad_chunks)
        return report

    def _replay_op(self, op, generation, segment):
        kind = op[0]
        if kind == "span":
            _k, n, first, values, quality = op
            count = 0
            for i, value in enumerate(array.array("f", values)):
                number = first + i
                slot = self.slots[number] if number < len(self.slots) else None
                if slot is None or generation < slot.since:
                    continue
                chunk = self._apply(slot, n, value, quality[i], None)
                if chunk is not None:
                    self._hold(slot.number, chunk, segment)
                    count += 1
            return count
        if kind == "close":
            return 0
        slot = self.slots[op[1]] if op[1] < len(self.slots) else None
        if slot is None or generation < slot.since:
            return 0
        if kind == "chunk":
            _k, _s, number, base, values, quality = op
            chunk = self._chunk_for(slot, number)
            if chunk is None:
                return 0
            chunk.values = array.array("f", values)
            chunk.quality = bytearray(quality)
            chunk.base = base
            chunk.dirty = True
            chunk.needs_image = False
            self._hold(slot.number, chunk, segment)
            self._note_points(slot, number, chunk)
            return 1
        if kind == "base":
            _k, _s, number, base = op
            chunk = slot.chunks.get(number)
            if chunk is not None and math.isnan(chunk.base):
                chunk.base = base
                chunk.dirty = True
            return 0
        return 0

    def _note_points(self, slot, number, chunk):
        valid = [i for i, q in enumerate(chunk.quality) if q & Q_VALID]
        if valid:
            base = number * self.geometry.chunk_points
            slot.newest = max(slot.newest if slot.newest is not None else -1, base + valid[-1])
            slot.oldest = base + valid[0] if slot.oldest is None else min(slot.oldest, base + valid[0])
            slot.current = max(slot.current if slot.current is not None else -1, number)

    # ------------------------------------------------------------ segment references

    def _hold(self, slot_number, chunk, segment):
        chunk.segments.add(segment)
        self._seg_refs[segment].add((slot_number, chunk.number))

    def _release(self, slot_number, chunk):
        for segment in chunk.segments:
            self._seg_refs[segment].discard((slot_number, chunk.number))
        chunk.segments.clear()

    # ------------------------------------------------------------ appending

    def _journal(self, ops):
        """Append ops as records (each fits one segment), then make them durable."""
        g = self.geometry
        limit = g.segment_bytes - fmt.RECORD_HEADER.size
        batch, keys, size = [], set(), 0
        groups = []
        for payload, op_keys in ops:
            if len(payload) > limit:
                raise ValueError("journal operation larger than a segment")
            if size + len(payload) > limit and batch:
                groups.append((b"".join(batch), keys))
                batch, keys, size = [], set(), 0
            batch.append(payload)
            keys |= op_keys
            size += len(payload)
        if batch:
            groups.append((b"".join(batch), keys))
        now = self.clock.time() if self.clock else 0.0
        for payload, op_keys in groups:
            size = fmt.RECORD_HEADER.size + len(payload)
            if self._head_offset + size > g.segment_bytes:
                self._next_segment()
            if self._head_offset == 0:
                self._seg_first[self._head] = self._seq
            record = fmt.encode_record(self._seq, self._redo(), self.generation, now, payload)
            os.pwrite(self.fd, record, g.journal_offset + self._head * g.segment_bytes + self._head_offset)
            self._head_offset += len(record)
            self._seq += 1
            self.stats["journal_bytes"] += len(record)
            for slot_number, number in op_keys:
                slot = self.slots[slot_number]
                chunk = slot.chunks.get(number) if slot is not None else None
                if chunk is not None:
                    self._hold(slot_number, chunk, self._head)
        os.fdatasync(self.fd)

    def _redo(self):
        """Oldest record sequence a recovery needs: the first record of the
        oldest segment that still holds points not yet in place."""
        live = [self._seg_first[g] for g, refs in enumerate(self._seg_refs) if refs]
        live.append(self._seg_first[self._head] if self._seg_first[self._head] is not None else self._seq)
        return min(x for x in live if x is not None)

    def _next_segment(self):
        """Move the head to the next segment; flush early what still lives there."""
        nxt = (self._head + 1) % self.geometry.segments
        if self._seg_refs[nxt]:
            self._force_flush(nxt)
        self._head = nxt
        self._head_offset = 0

    def _force_flush(self, segment):
        """Write the chunks whose points are still only in ``segment`` (partial chunks).

        Happens when series of very different periods share the journal: a
        slow series' chunk would otherwise pin old segments. Its next write
        in place then journals a full image first, so a torn page never
        loses what was flushed here.
        """
        os.fdatasync(self.fd)      # the records written so far in this commit
        keys = sorted(self._seg_refs[segment])
        for slot_number, number in keys:
            slot = self.slots[slot_number]
            chunk = slot.chunks.get(number) if slot is not None else None
            if chunk is None:
                self._seg_refs[segment].discard((slot_number, number))
                continue
            self._write_chunk(slot, chunk)
            self.stats["forced_flushes"] += 1
        os.fdatasync(self.fd)
        for slot_number, number in keys:
            slot = self.slots[slot_number]
            chunk = slot.chunks.get(number) if slot is not None else None
            if chunk is not None:
                self._release(slot_number, chunk)
                chunk.needs_image = True
        self._seg_refs[segment].clear()

    def _keep_for_retry(self, ops):
        kept = 0
        for payload, keys in reversed(ops):
            kept += len(payload)
            if kept > MAX_RETRY_BYTES:
                self.stats["lost_points"] += max(1, len(payload) // fmt.POINT_BYTES)
                continue
            self._retry_ops.insert(0, (payload, keys))
