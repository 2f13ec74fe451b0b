"""On-disk layout of the time-series store (docs/storage.md): pure encode/decode.

One preallocated file, three regions, all page aligned::

    [superblock 4 KiB][journal: segments x segment_bytes][data: slots x chunks x 4 KiB]

* **Data**: every series owns a *slot*: a ring of ``points`` values cut into
  ``chunks`` chunks of ``chunk_points`` points. A chunk is one 4 KiB page:
  a 24-byte header (magic, slot, incarnation, absolute chunk number, CRC32,
  counter base), then float32 values, then one quality byte per point. A
  chunk is written in place once, when it is complete, so an SD card sees
  one aligned page per ``chunk_points`` samples.
* **Journal**: a ring of segments holding *records*; a record is one commit
  (a batch of points of one interval) with its own header and CRC32. Points
  live in the journal until their chunk is written in place; a torn record
  is detected by its CRC and is the only thing lost.

Nothing here does I/O: the store (daemon/storage/store.py) reads and writes bytes.
"""

import array
import math
import struct
import zlib

PAGE = 4096
CHUNK_BYTES = PAGE
VALUE_BYTES = 4          # float32
QUALITY_BYTES = 1

# ---------------------------------------------------------------- superblock

SUPER_MAGIC = b"OM70TSDB"
SUPER_VERSION = 1
# magic, version, slots, points, chunk_points, chunks, segments, segment_bytes, created, crc
_SUPER = struct.Struct("<8sIIIIIIId")


class FormatError(ValueError):
    """The file is not a store of ours, or its geometry is inconsistent."""


# ---------------------------------------------------------------- chunks

CHUNK_MAGIC = 0x5453     # "TS"
# magic, slot, incarnation, absolute chunk number, crc32, counter base (float64)
CHUNK_HEADER = struct.Struct("<HHIIId")
MAX_CHUNK_POINTS = (CHUNK_BYTES - CHUNK_HEADER.size) // (VALUE_BYTES + QUALITY_BYTES)   # 814

# Quality byte of one point: bit 0 = a value is there; the others qualify it.
Q_MISSING = 0
Q_VALID = 0x01
Q_INCOMPLETE = 0x02      # the meter flagged the period incomplete
Q_CLOCK_NOT_SET = 0x04   # the meter's clock was not set when it recorded the point
Q_ACCUMULATED = 0x08     # counter delta that also covers missed intervals before it
Q_BACKFILLED = 0x10      # downloaded from the meter's cache after a communication cut
QUALITY_FLAGS = ((Q_INCOMPLETE, "incomplete"), (Q_CLOCK_NOT_SET, "clock_not_set"),
                 (Q_ACCUMULATED, "accumulated"), (Q_BACKFILLED, "backfilled"))


def quality_name(code):
    """"missing", "good", or the flags joined by "+" (e.g. "backfilled+clock_not_set")."""
    if not code & Q_VALID:
        return "missing"
    flags = [name for bit, name in QUALITY_FLAGS if code & bit]
    return "+".join(flags) if flags else "good"


def split_points(points):
    """(chunks, chunk_points) for a ring of at least ``points`` points.

    A chunk count that divides ``points`` exactly is preferred, so the ring
    holds exactly what was asked (8784 = 12 x 732: one leap year of hours);
    otherwise the ring is rounded up to whole chunks.
    """
    if points < 1:
        raise FormatError("points per series must be positive")
    k0 = -(-points // MAX_CHUNK_POINTS)
    for k in range(k0, 2 * k0 + 1):
        if points % k == 0:
            return k, points // k
    return k0, -(-points // k0)


class Geometry:
    """Sizes of every region, fixed at creation: the file never grows."""

    __slots__ = ("slots", "points", "chunk_points", "chunks", "segments", "segment_bytes")

    def __init__(self, slots, points, segments=None, segment_bytes=1 << 20):
        if not 1 <= slots <= 0xFFFF:
            raise FormatError("slots must be 1..65535")
        self.chunks, self.chunk_points = split_points(points)
        self.points = self.chunks * self.chunk_points
        self.slots = slots
        if segment_bytes % PAGE or segment_bytes < PAGE:
            raise FormatError("segment size must be a multiple of %d" % PAGE)
        self.segment_bytes = segment_bytes
        if segments is None:
            segments = self.default_segments(slots, self.chunk_points, segment_bytes)
        if segments < 3:
            raise FormatError("the journal needs at least 3 segments")
        self.segments = segments

    @staticmethod
    def default_segments(slots, chunk_points, segment_bytes):
        """Room for twice what can be pending (every slot one chunk short of full).

        With equal periods the oldest segment is then always free when the
        journal wraps: nothing has to be flushed early (docs/storage.md).
        """
        live = slots * chunk_points * POINT_BYTES
        return max(3, int(math.ceil(2.0 * live / segment_bytes)) + 1)

    @property
    def journal_offset(self):
        return PAGE

    @property
    def data_offset(self):
        return PAGE + self.segments * self.segment_bytes

    @property
    def slot_bytes(self):
        return self.chunks * CHUNK_BYTES

    @property
    def file_size(self):
        return self.data_offset + self.slots * self.slot_bytes

    def chunk_offset(self, slot, chunk_number):
        return self.data_offset + slot * self.slot_bytes + (chunk_number % self.chunks) * CHUNK_BYTES

    def as_dict(self):
        return dict((name, getattr(self, name)) for name in self.__slots__)

    def __eq__(self, other):
        return isinstance(other, Geometry) and self.as_dict() == other.as_dict()

    def __repr__(self):
        return "<Geometry %r>" % self.as_dict()


def encode_superblock(geometry, created):
    body = _SUPER.pack(SUPER_MAGIC, SUPER_VERSION, geometry.slots, geometry.points, geometry.chunk_points,
                       geometry.chunks, geometry.segments, geometry.segment_bytes, created)
    block = body + struct.pack("<I", zlib.crc32(body))
    return block + b"\x00" * (PAGE - len(block))


def decode_superblock(block):
    """(Geometry, created) from the first page; FormatError if it is not ours."""
    if len(block) < _SUPER.size + 4:
        raise FormatError("file too short for a superblock")
    body = block[:_SUPER.size]
    (crc,) = struct.unpack_from("<I", block, _SUPER.size)
    magic, version, slots, points, chunk_points, chunks, segments, segment_bytes, created = _SUPER.unpack(body)
    if magic != SUPER_MAGIC:
        raise FormatError("not a time-series store (bad magic)")
    if zlib.crc32(body) != crc:
        raise FormatError("superblock checksum mismatch")
    if version != SUPER_VERSION:
        raise FormatError("unsupported store version %d" % version)
    geometry = Geometry(slots, points, segments, segment_bytes)
    if (geometry.chunks, geometry.chunk_points, geometry.points) != (chunks, chunk_points, points):
        raise FormatError("inconsistent chunk geometry in the superblock")
    return geometry, created


def chunk_payload_size(chunk_points):
    return chunk_points * (VALUE_BYTES + QUALITY_BYTES)


def encode_chunk(slot, incarnation, number, base, values, quality):
    """One 4 KiB page: header + float32 values + quality bytes, zero padded."""
    payload = values.tobytes() + bytes(quality)
    head = struct.pack("<HHII", CHUNK_MAGIC, slot, incarnation, number)
    base_bytes = struct.pack("<d", base)
    crc = zlib.crc32(base_bytes + payload, zlib.crc32(head))
    page = head + struct.pack("<I", crc) + base_bytes + payload
    return page + b"\x00" * (CHUNK_BYTES - len(page))


def decode_chunk(page, chunk_points):
    """(slot, incarnation, number, base, values bytes, quality bytes) or None if invalid.

    A page that was never written (zeros), belongs to an old lap, or was torn
    by a power cut is simply "not there": the caller treats its points as
    missing. Validity is magic + CRC; the caller checks slot/incarnation/number.
    """
    if len(page) < CHUNK_HEADER.size:
        return None
    magic, slot, incarnation, number, crc, base = CHUNK_HEADER.unpack_from(page)
    if magic != CHUNK_MAGIC:
        return None
    end = CHUNK_HEADER.size + chunk_payload_size(chunk_points)
    if len(page) < end:
        return None
    body = page[CHUNK_HEADER.size - 8:end]          # base + payload
    if zlib.crc32(body, zlib.crc32(page[:12])) != crc:
        return False                                # written by us but torn: corrupt
    values_end = CHUNK_HEADER.size + VALUE_BYTES * chunk_points
    return slot, incarnation, number, base, page[CHUNK_HEADER.size:values_end], page[values_end:end]


# ---------------------------------------------------------------- journal records

RECORD_MAGIC = 0x314A5354        # "TSJ1"
# magic, sequence, redo (oldest sequence still needed), directory generation,
# payload length, commit time, crc32
RECORD_HEADER = struct.Struct("<IQQIIdI")

OP_SPAN = 1     # n u32, first slot u16, count u16, quality u8 (0xFF: one per point), values f32 [, qualities]
OP_CHUNK = 3    # slot u16, chunk number u32, base f64, values, qualities (a whole chunk image)
OP_BASE = 4     # slot u16, chunk number u32, base f64 (counter index before the chunk's first point)
OP_CLOSE = 5    # clean shutdown marker

SPAN_HEAD = struct.Struct("<BIHHB")
PER_POINT = 0xFF
POINT_BYTES = VALUE_BYTES + QUALITY_BYTES     # worst case of a journal entry
CHUNK_HEAD = struct.Struct("<BHId")
BASE_OP = struct.Struct("<BHId")


def encode_spans(n, entries):
    """Points sharing the period number ``n``: [(slot, value, quality)] sorted by slot.

    Consecutive slots form one span: 4 bytes per point when the span's
    qualities are all equal (the usual case), 5 otherwise, plus 10 per span.
    Series of one device get consecutive slots, so an interval of a whole
    site is a few spans.
    """
    parts = []
    start = 0
    count = len(entries)
    while start < count:
        stop = start + 1
        while stop < count and entries[stop][0] == entries[stop - 1][0] + 1 and stop - start < 0xFFFF:
            stop += 1
        run = entries[start:stop]
        values = array.array("f", [v for _s, v, _q in run]).tobytes()
        qualities = bytes(q for _s, _v, q in run)
        if qualities.count(qualities[0]) == len(qualities) and qualities[0] != PER_POINT:
            parts.append(SPAN_HEAD.pack(OP_SPAN, n, run[0][0], len(run), qualities[0]) + values)
        else:
            parts.append(SPAN_HEAD.pack(OP_SPAN, n, run[0][0], len(run), PER_POINT) + values + qualities)
        start = stop
    return b"".join(parts)


def encode_chunk_image(slot, number, base, values, quality):
    return CHUNK_HEAD.pack(OP_CHUNK, slot, number, base) + values.tobytes() + bytes(quality)


def encode_base(slot, number, base):
    return BASE_OP.pack(OP_BASE, slot, number, base)


def encode_close():
    return bytes((OP_CLOSE,))


def decode_ops(payload, chunk_points):
    """Yield decoded operations of one record's payload, in order.

    ("span", n, first slot, values bytes, quality bytes),
    ("chunk", slot, number, base, values bytes, quality bytes), ("base", slot, number, base),
    ("close",). A malformed payload raises FormatError (its CRC was good, so
    that would be a bug, not a torn write).
    """
    view = memoryview(payload)
    pos = 0
    end = len(payload)
    while pos < end:
        op = view[pos]
        if op == OP_SPAN:
            _op, n, first, count, quality = SPAN_HEAD.unpack_from(view, pos)
            pos += SPAN_HEAD.size
            values_end = pos + count * VALUE_BYTES
            stop = values_end + (count if quality == PER_POINT else 0)
            if stop > end:
                raise FormatError("span past the end of its record")
            qualities = bytes(view[values_end:stop]) if quality == PER_POINT else bytes((quality,)) * count
            yield ("span", n, first, bytes(view[pos:values_end]), qualities)
            pos = stop
        elif op == OP_CHUNK:
            _op, slot, number, base = CHUNK_HEAD.unpack_from(view, pos)
            pos += CHUNK_HEAD.size
            stop = pos + chunk_payload_size(chunk_points)
            if stop > end:
                raise FormatError("chunk image past the end of its record")
            values_end = pos + chunk_points * VALUE_BYTES
            yield ("chunk", slot, number, base, bytes(view[pos:values_end]), bytes(view[values_end:stop]))
            pos = stop
        elif op == OP_BASE:
            _op, slot, number, base = BASE_OP.unpack_from(view, pos)
            pos += BASE_OP.size
            yield ("base", slot, number, base)
        elif op == OP_CLOSE:
            pos += 1
            yield ("close",)
        else:
            raise FormatError("unknown journal operation %d" % op)


def encode_record(seq, redo, generation, commit_time, payload):
    """One journal record. ``redo``: records older than this hold nothing that is
    not already in place (a recovery starts there, like a WAL checkpoint)."""
    head = struct.pack("<IQQIId", RECORD_MAGIC, seq, redo, generation, len(payload), commit_time)
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + struct.pack("<I", crc) + payload


def scan_segment(data, min_seq=0):
    """Valid records at the start of one segment's bytes, then how the scan ended.

    Returns (records, end_offset, torn) where records = [(offset, seq, redo,
    generation, time, payload)]. Records must follow each other with rising
    sequence numbers; the scan stops at the first thing that is not the next
    record: zeros or an older lap's bytes end it cleanly, a header that
    announces the next record but fails its CRC is a torn write (``torn`` =
    its sequence number).
    """
    records = []
    pos = 0
    last_seq = min_seq
    size = len(data)
    torn = None
    while pos + RECORD_HEADER.size <= size:
        magic, seq, redo, generation, length, commit_time, crc = RECORD_HEADER.unpack_from(data, pos)
        if magic != RECORD_MAGIC or seq <= last_seq:
            break
        stop = pos + RECORD_HEADER.size + length
        if stop > size:
            torn = seq if not records or seq == last_seq + 1 else None
            break
        payload = bytes(data[pos + RECORD_HEADER.size:stop])
        head = data[pos:pos + RECORD_HEADER.size - 4]
        if zlib.crc32(payload, zlib.crc32(bytes(head))) != crc:
            if not records or seq == last_seq + 1:
                torn = seq
            break
        records.append((pos, seq, redo, generation, commit_time, payload))
        last_seq = seq
        pos = stop
    return records, pos, torn
