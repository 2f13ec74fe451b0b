"""A fixed-size, power-cut-safe log of small JSON records.

The file is preallocated as ``capacity`` slots of ``SLOT`` bytes. A record is
written into the slot after the newest one: header (magic, length, sequence,
CRC32) + JSON. On open, every slot is checked; slots with a bad CRC (a write
cut by a power loss) are ignored, so the log never needs repair and never
grows. Reads and writes are blocking: callers go through daemon.blocking.
Old records are overwritten in order; ``record(seq)`` lets a writer see what
the next writes will overwrite (daemon/state/alarms.py re-records an alarm
still active before its "raised" record goes).
"""

import json
import os
import struct
import threading
import zlib

SLOT = 512
_HEADER = struct.Struct(">HHQI")   # magic, payload length, sequence, crc32
_MAGIC = 0xE7E1


class RingLog:
    def __init__(self, path, capacity=2000):
        self.path = path
        self.capacity = capacity
        self._records = {}        # seq -> record (dict)
        self._seq_in = {}         # slot -> seq of the record it holds
        self.next_seq = 1
        self.corrupt_slots = 0
        # append() runs in the executor while records() is read on the loop:
        # the two maps change together under this lock.
        self._lock = threading.Lock()
        self._open()

    def _open(self):
        size = self.capacity * SLOT
        exists = os.path.exists(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if not exists or os.fstat(fd).st_size != size:
                os.ftruncate(fd, size)
                os.fsync(fd)
            data = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        newest = 0
        for slot in range(self.capacity):
            chunk = data[slot * SLOT:(slot + 1) * SLOT]
            magic, length, seq, crc = _HEADER.unpack_from(chunk)
            if magic != _MAGIC:
                continue
            payload = chunk[_HEADER.size:_HEADER.size + length]
            if length > SLOT - _HEADER.size or zlib.crc32(payload) != crc:
                self.corrupt_slots += 1
                continue
            try:
                self._records[seq] = json.loads(payload)
            except ValueError:
                self.corrupt_slots += 1
                continue
            self._seq_in[slot] = seq
            newest = max(newest, seq)
        self.next_seq = newest + 1

    def append(self, record):
        """Write one record (blocking, fsync'd); returns its sequence number."""
        payload = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
        if len(payload) > SLOT - _HEADER.size:
            record = dict(record, detail=str(record.get("detail", ""))[:120], truncated=True)
            payload = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()[:SLOT - _HEADER.size]
        seq = self.next_seq
        slot = (seq - 1) % self.capacity
        chunk = _HEADER.pack(_MAGIC, len(payload), seq, zlib.crc32(payload)) + payload
        chunk += b"\x00" * (SLOT - len(chunk))
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, chunk, slot * SLOT)
            os.fsync(fd)
        finally:
            os.close(fd)
        with self._lock:
            self._records.pop(self._seq_in.get(slot), None)     # the record this one overwrites
            self._records[seq] = record
            self._seq_in[slot] = seq
            self.next_seq = seq + 1
        return seq

    def record(self, seq):
        """The record of sequence ``seq`` while the ring still holds it, else None."""
        with self._lock:
            if self._seq_in.get((seq - 1) % self.capacity) != seq:
                return None
            return self._records.get(seq)

    def records(self):
        """All records, oldest first, each with its ``seq``."""
        with self._lock:
            return [dict(self._records[s], seq=s) for s in sorted(self._records)]

    def __len__(self):
        return len(self._records)
