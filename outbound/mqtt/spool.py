"""The MQTT spool: every sample waits here, in order, until the broker has it (store and forward, issue 18).

Samples are records appended to segment files ``<seq>.seg`` in the spool directory (the sequence only grows).
A record is framed: 4 bytes of length, 4 bytes of CRC-32, then the sample as compact JSON. ``append`` is
instant (memory); a flusher writes what accumulated over FLUSH_AFTER_S in one batch, fsyncs it, off the loop, so
a burst of samples costs one fsync. A power cut can tear only the last batch of the last segment: opening the
spool reads every segment, keeps the records whose frame and CRC are whole and truncates the rest.

The read cursor (segment, offset, records read in it) says where the oldest unsent sample is; ``ack`` moves it
once the broker acknowledged everything before a position, and it is persisted (atomic JSON, coalesced, off
the loop) with the removal of the segments wholly behind it. After a restart, sending resumes at the cursor:
a sample acknowledged in the last instant before a cut may be sent again, none is skipped.

The spool is bounded (``max_bytes``, from mqtt.spool_mb): a batch that would overflow it first drops the OLDEST
segment, whose unsent samples are counted and reported through ``on_drop(count)`` (the mqtt-dropped event).
"""

import asyncio
import bisect
import collections
import json
import logging
import os
import struct
import zlib

from daemon.atomicfile import fsync_directory, read_json, write_json
from daemon.blocking import run_blocking
from outbound.mqtt import jsontext
from outbound.mqtt.modes import Sample

log = logging.getLogger("gateway.mqtt.spool")

SUFFIX = ".seg"
CURSOR = "cursor.json"
FRAME = struct.Struct(">II")            # length, CRC-32 of the payload
MAX_RECORD = 64 * 1024                  # a sample is ~100 bytes: a longer length is a torn or damaged frame
MB = 1024 * 1024
TAIL_BYTES = 64 * 1024                  # the newest flushed bytes kept in memory for the sender's next read
CURSOR_EVERY_S = 1.0                    # the cursor is written at most this often (issue 19, lean)
FLUSH_AFTER_S = 0.25                    # an append is written this long after it came (issue 19, lean)

# A position in the spool: segment number, byte offset in it, records before it in that segment.
Position = collections.namedtuple("Position", "seq offset index")


# issue 19 (lean): one encoder for every record (json.dumps with options builds a new JSONEncoder per call);
# the same options, so the same bytes.
_RECORD_JSON = json.JSONEncoder(separators=(",", ":"))


def encode_record(sample):
    payload = _record_text(sample)
    if payload is None:
        payload = _RECORD_JSON.encode(list(sample))
    payload = payload.encode()
    return FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def _record_text(sample):
    """The record's JSON as ``_RECORD_JSON`` writes it, formatted from its fields (jsontext.py); None when a
    field is not of the type a sample holds (the encoder then writes it)."""
    t, address, load, key, value, quality, history = sample
    value = jsontext.scalar(value)
    if value is None or type(t) is not int or type(address) is not int or type(load) is not int \
            or type(key) is not str or type(quality) is not str or type(history) is not bool:
        return None
    return "[%s,%s,%s,%s,%s,%s,%s]" % (int.__repr__(t), int.__repr__(address), int.__repr__(load),
                                       jsontext.string(key), value, jsontext.string(quality),
                                       "true" if history else "false")


def decode_records(data, offset=0, limit=None):
    """[(sample, end offset)] of the whole records of ``data`` from ``offset``, and the offset where the whole
    records end (a torn or damaged frame, or the end of ``data``)."""
    out = []
    while limit is None or len(out) < limit:
        if offset + FRAME.size > len(data):
            break
        length, crc = FRAME.unpack_from(data, offset)
        end = offset + FRAME.size + length
        if length > MAX_RECORD or end > len(data):
            break
        payload = data[offset + FRAME.size:end]
        if zlib.crc32(payload) != crc:
            break
        try:
            sample = Sample(*json.loads(payload))
        except (ValueError, TypeError):
            break
        out.append((sample, end))
        offset = end
    return out, offset


class _Segment:
    __slots__ = ("seq", "size", "count")

    def __init__(self, seq, size=0, count=0):
        self.seq, self.size, self.count = seq, size, count


class SampleSpool:
    """Samples waiting for the broker, oldest first; ``await open()`` before use, ``await close()`` at the end."""

    def __init__(self, directory, max_bytes, on_drop=None, segment_bytes=None):
        self.directory = directory
        self.max_bytes = int(max_bytes)
        self.segment_bytes = int(segment_bytes or max(4096, self.max_bytes // 8))
        self.on_drop = on_drop
        self.segments = collections.OrderedDict()      # seq -> _Segment, oldest first (flushed bytes only)
        self.cursor = Position(1, 0, 0)
        self.dropped = 0                               # samples dropped unsent since start
        self.torn = 0                                  # bytes of torn records cut off when opened
        self.write_error = None                        # the last write's failure, until one succeeds
        self._buffer = []                              # (encoded record, its sample) not yet written
        self._buffered = 0
        self._lock = asyncio.Lock()
        self._flusher = None
        self._flush_timer = None                       # the next flush, once something was appended
        self._persist = None
        self._persist_timer = None                     # the next write of the cursor, when one is due
        self._cursor_dirty = False
        self.flushed = asyncio.Event()                 # set after each flush (the sender waits on it)
        # issue 19 (lean): the samples the last flushes wrote, (seq, [record start], [record end], [sample]) in
        # that segment: a connected sender reads what was just flushed, so it is served from here, not read back
        # from the file and decoded (an executor round trip, a file read and a JSON decode per sample less);
        # bounded by TAIL_BYTES of records.
        self._tail = None
        self.file_reads = 0                            # reads that went to a segment file (tests count them)

    # ---------------------------------------------------------------- queries

    def used_bytes(self):
        return sum(segment.size for segment in self.segments.values())

    def pending(self):
        """Samples flushed and not yet acknowledged (those still in memory: ``buffered()``)."""
        total = 0
        for segment in self.segments.values():
            if segment.seq > self.cursor.seq:
                total += segment.count
            elif segment.seq == self.cursor.seq:
                total += segment.count - self.cursor.index
        return total

    def buffered(self):
        return len(self._buffer)

    def end(self):
        """The position after the last flushed sample."""
        if not self.segments:
            return self.cursor
        last = next(reversed(self.segments.values()))
        return Position(last.seq, last.size, last.count)

    # ---------------------------------------------------------------- lifecycle

    async def open(self):
        segments, cursor, torn = await run_blocking(_recover, self.directory)
        self.segments = collections.OrderedDict((s.seq, s) for s in segments)
        self.cursor, self.torn = cursor, torn
        if torn:
            log.warning("mqtt spool: %d byte(s) of a torn record cut off", torn)
        log.info("mqtt spool: %d sample(s) waiting (%d bytes)", self.pending(), self.used_bytes())

    async def close(self):
        """Write what is still in memory and the cursor."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        await self.flush()
        if self._persist_timer is not None:
            self._persist_timer.cancel()
            self._persist_timer = None
        if self._persist is not None:
            await asyncio.shield(self._persist)
        if self._cursor_dirty:
            await self._persist_cursor()

    # ---------------------------------------------------------------- writing

    def append(self, sample):
        """Queue one sample; a background flush FLUSH_AFTER_S later writes it (with those that come meanwhile:
        the polls of that time, not each poll's batch alone) and fsyncs."""
        record = encode_record(sample)
        self._buffer.append((record, sample))
        self._buffered += len(record)
        if self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self._start_flush)

    def _start_flush(self):
        self._flush_timer = None
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self.flush(), name="mqtt-spool-flush")
        # else: the flush under way writes what came meanwhile (its loop runs until the buffer is empty)

    async def flush(self):
        """Write and fsync everything appended so far. A write that fails (a full or broken disk) keeps the batch
        in memory, first in line, for the next flush (the next append), and is logged."""
        async with self._lock:
            while self._buffer:
                batch, self._buffer, self._buffered = self._buffer, [], 0
                try:
                    await self._write(batch)
                except OSError as exc:
                    self._buffer[:0] = batch
                    self._buffered = sum(len(record) for record, _sample in self._buffer)
                    self.write_error = str(exc)
                    log.error("mqtt spool: cannot write: %s", exc)
                    break
                self.write_error = None
            self.flushed.set()

    async def _write(self, batch):
        size = sum(len(record) for record, _sample in batch)
        dropped = 0
        if size > self.max_bytes:                      # more than the whole spool in memory: keep the newest
            while batch and size > self.max_bytes:
                size -= len(batch[0][0])
                batch.pop(0)
                dropped += 1
        write = self._write_segment(size)
        drop = []
        while self.used_bytes() + size > self.max_bytes and len(self.segments) > 1:
            oldest = next(iter(self.segments.values()))
            if oldest.seq == write.seq:
                break
            drop.append(oldest.seq)
            dropped += self._forget(oldest)
        new_file = write.size == 0
        await run_blocking(_append, self.directory, write.seq, b"".join(record for record, _s in batch), new_file, drop)
        self._keep_tail(write, batch)
        write.size += size
        write.count += len(batch)
        if drop:
            self._cursor_dirty = True
            self._schedule_persist()
        if dropped:
            self.dropped += dropped
            log.warning("mqtt spool full: %d unsent sample(s) dropped", dropped)
            if self.on_drop is not None:
                self.on_drop(dropped)

    def _keep_tail(self, segment, batch):
        """Remember ``batch``'s samples, just appended at ``segment.size``, after the tail when contiguous."""
        tail = self._tail
        if tail is None or tail[0] != segment.seq or not tail[2] or tail[2][-1] != segment.size:
            tail = self._tail = (segment.seq, [], [], [])
        _seq, starts, ends, samples = tail
        offset = segment.size
        for record, sample in batch:
            starts.append(offset)
            offset += len(record)
            ends.append(offset)
            samples.append(sample)
        if offset - starts[0] > TAIL_BYTES:             # the oldest go: they are read from the file
            cut = bisect.bisect_left(starts, offset - TAIL_BYTES)
            del starts[:cut], ends[:cut], samples[:cut]

    def _from_tail(self, segment, position, limit):
        """[(sample, position after it)] from ``position`` when the tail holds it and the segment's end, else None."""
        tail = self._tail
        if tail is None or tail[0] != segment.seq or not tail[2] or tail[2][-1] != segment.size:
            return None
        _seq, starts, ends, samples = tail
        first = bisect.bisect_left(starts, position.offset)
        if first == len(starts) or starts[first] != position.offset:
            return None                                 # before the tail (or not a record's start): the file
        last = min(len(starts), first + limit)
        return [(samples[i], Position(segment.seq, ends[i], position.index + 1 + i - first))
                for i in range(first, last)]

    def _write_segment(self, size):
        """The segment the next batch goes to: the last one, or a new one when it is full (or when the batch
        would overflow the spool while the last segment is the only one, so that it can be dropped)."""
        last = next(reversed(self.segments.values())) if self.segments else None
        if last is None:
            seq = max(self.cursor.seq, 1)
        elif last.size >= self.segment_bytes or (last.size and self.used_bytes() + size > self.max_bytes):
            seq = last.seq + 1
        else:
            return last
        segment = _Segment(seq)
        self.segments[seq] = segment
        if self.cursor.seq < seq and (last is None or self._behind(last)):
            self.cursor = Position(seq, 0, 0)
        return segment

    def _behind(self, segment):
        return self.cursor.seq == segment.seq and self.cursor.offset >= segment.size

    def _forget(self, segment):
        """Remove ``segment`` from the index; how many of its samples were unsent."""
        del self.segments[segment.seq]
        if segment.seq < self.cursor.seq:
            return 0
        unsent = segment.count - (self.cursor.index if segment.seq == self.cursor.seq else 0)
        following = next(iter(self.segments.values()))
        self.cursor = Position(following.seq, 0, 0)
        return unsent

    # ---------------------------------------------------------------- reading and acknowledging

    async def read(self, position, limit=200):
        """Up to ``limit`` flushed samples from ``position`` (None: the cursor): [(sample, position after it)].
        A position in a segment dropped meanwhile reads from the oldest one."""
        position = self.cursor if position is None else position
        for segment in list(self.segments.values()):
            if segment.seq < position.seq:
                continue
            if segment.seq > position.seq:
                position = Position(segment.seq, 0, 0)
            if position.offset >= segment.size:
                continue
            out = self._from_tail(segment, position, limit)
            if out:
                return out
            try:
                self.file_reads += 1
                data = await run_blocking(_read, self.directory, segment.seq, position.offset, segment.size)
            except FileNotFoundError:                   # dropped while it was read
                continue
            records, _end = decode_records(data, 0, limit)
            out, index = [], position.index
            for sample, end in records:
                index += 1
                out.append((sample, Position(segment.seq, position.offset + end, index)))
            if out:
                return out
            log.error("mqtt spool: segment %d is damaged at %d: skipped", segment.seq, position.offset)
            position = Position(segment.seq + 1, 0, 0)
        return []

    def ack(self, position):
        """Everything before ``position`` is with the broker: move the cursor (persisted soon, off the loop)."""
        if (position.seq, position.offset) <= (self.cursor.seq, self.cursor.offset):
            return
        if position.seq not in self.segments:           # its segment was dropped meanwhile
            return
        self.cursor = position
        self._cursor_dirty = True
        self._schedule_persist()

    def _schedule_persist(self):
        """Write the cursor CURSOR_EVERY_S from now (one write for every ack meanwhile: ~20 acks a second at
        200 changed values a second were as many atomic writes and fsyncs). A power cut may then send again up
        to that much of what the broker acknowledged (at least once, as before); none is skipped; a close writes
        it at once."""
        if self._persist_timer is None:
            self._persist_timer = asyncio.get_running_loop().call_later(CURSOR_EVERY_S, self._start_persist)

    def _start_persist(self):
        self._persist_timer = None
        if self._persist is not None and not self._persist.done():
            self._schedule_persist()                    # still writing the last one: the next in a while
            return
        self._persist = asyncio.get_running_loop().create_task(self._persist_cursor(), name="mqtt-cursor")

    async def _persist_cursor(self):
        async with self._lock:
            while self._cursor_dirty:
                self._cursor_dirty = False
                cursor = self.cursor
                done = [seq for seq, segment in self.segments.items()
                        if seq < cursor.seq or (seq == cursor.seq and cursor.offset >= segment.size
                                                and seq != next(reversed(self.segments)))]
                for seq in done:
                    del self.segments[seq]
                if done and cursor.seq in done:
                    cursor = self.cursor = Position(next(iter(self.segments)), 0, 0)
                await run_blocking(_save_cursor, self.directory, cursor, done)


# ---------------------------------------------------------------- blocking file work (the executor)

def _path(directory, seq):
    return os.path.join(directory, "%012d%s" % (seq, SUFFIX))


def _append(directory, seq, data, new_file, drop):
    for old in drop:
        try:
            os.unlink(_path(directory, old))
        except FileNotFoundError:
            pass
    with open(_path(directory, seq), "ab") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if new_file or drop:
        fsync_directory(directory)


def _read(directory, seq, offset, size):
    with open(_path(directory, seq), "rb") as handle:
        handle.seek(offset)
        return handle.read(size - offset)


def _save_cursor(directory, cursor, done):
    write_json(os.path.join(directory, CURSOR), {"seq": cursor.seq, "offset": cursor.offset, "index": cursor.index})
    for seq in done:
        try:
            os.unlink(_path(directory, seq))
        except FileNotFoundError:
            pass


def _recover(directory):
    """(segments, cursor, torn bytes) as a power cut left them: each segment cut after its last whole record,
    the segments behind the cursor removed, the cursor inside what is left."""
    os.makedirs(directory, exist_ok=True)
    seqs = sorted(int(name[:-len(SUFFIX)]) for name in os.listdir(directory)
                  if name.endswith(SUFFIX) and name[:-len(SUFFIX)].isdigit())
    try:
        saved = read_json(os.path.join(directory, CURSOR), default=None)
        cursor = Position(int(saved["seq"]), int(saved["offset"]), int(saved["index"]))
    except (ValueError, TypeError, KeyError):
        cursor = None                                   # none yet, or damaged: from the oldest segment
    segments, torn = [], 0
    for seq in seqs:
        path = _path(directory, seq)
        if cursor is not None and seq < cursor.seq:
            os.unlink(path)
            continue
        with open(path, "rb") as handle:
            data = handle.read()
        records, end = decode_records(data)
        if end < len(data):
            torn += len(data) - end
            with open(path, "r+b") as handle:
                handle.truncate(end)
                os.fsync(handle.fileno())
        segments.append(_Segment(seq, end, len(records)))
    if not segments:
        seq = cursor.seq if cursor is not None else 1
        return [], Position(seq, 0, 0), torn
    first = segments[0]
    if cursor is None or cursor.seq < first.seq or cursor.seq > segments[-1].seq:
        cursor = Position(first.seq, 0, 0)
    else:
        segment = next(s for s in segments if s.seq == cursor.seq)
        if cursor.offset > segment.size:                # cannot be (acks follow flushes): read it all again
            cursor = Position(segment.seq, 0, 0)
    return segments, cursor, torn
