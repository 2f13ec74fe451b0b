"""The MQTT spool (outbound/mqtt/spool.py): records survive a reopen in order, a torn tail is cut off, the read
cursor carries over a restart, a full spool drops its oldest segment and counts the samples lost.

The expected bytes of a frame are built here from the frame's definition (length, CRC-32 as zlib computes it,
the sample as JSON), not with the spool's encoder."""

import asyncio
import json
import os
import struct
import zlib

from outbound.mqtt.modes import Sample
from outbound.mqtt.spool import SUFFIX, SampleSpool


def sample(n, history=False):
    return Sample(1_700_000_000_000 + n * 1000, 5, 1, "v1", 230.0 + n / 10, "good", history)


def frame(value):
    payload = json.dumps(list(value), separators=(",", ":")).encode()
    return struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


def segments(directory):
    return sorted(name for name in os.listdir(directory) if name.endswith(SUFFIX))


async def read_all(spool, position=None):
    out = []
    while True:
        batch = await spool.read(position, 7)
        if not batch:
            return out
        out.extend(batch)
        position = batch[-1][1]


def run(coroutine):
    return asyncio.run(coroutine)


def test_samples_come_back_in_order_after_a_reopen_and_the_file_holds_the_standard_frames(tmp_path):
    async def go():
        spool = SampleSpool(str(tmp_path), 10 ** 6)
        await spool.open()
        for n in range(50):
            spool.append(sample(n))
        await spool.flush()
        await spool.close()
        again = SampleSpool(str(tmp_path), 10 ** 6)
        await again.open()
        return [s for s, _p in await read_all(again)], again.pending()
    got, pending = run(go())
    assert got == [sample(n) for n in range(50)] and pending == 50
    names = segments(tmp_path)
    assert len(names) == 1
    assert (tmp_path / names[0]).read_bytes() == b"".join(frame(sample(n)) for n in range(50))


def test_a_torn_tail_is_cut_off_and_writing_goes_on_after_the_whole_records(tmp_path):
    async def write(count):
        spool = SampleSpool(str(tmp_path), 10 ** 6)
        await spool.open()
        for n in range(count):
            spool.append(sample(n))
        await spool.close()
    run(write(10))
    name = tmp_path / segments(tmp_path)[0]
    whole = name.read_bytes()
    torn = frame(sample(10))[:-5]                       # a power cut in the middle of the next write
    name.write_bytes(whole + torn)

    async def reopen():
        spool = SampleSpool(str(tmp_path), 10 ** 6)
        await spool.open()
        torn_bytes = spool.torn
        spool.append(sample(11))
        await spool.close()
        again = SampleSpool(str(tmp_path), 10 ** 6)
        await again.open()
        return torn_bytes, [s for s, _p in await read_all(again)]
    torn_bytes, got = run(reopen())
    assert torn_bytes == len(torn)
    assert got == [sample(n) for n in range(10)] + [sample(11)]


def test_a_record_with_a_bad_crc_at_the_tail_is_dropped(tmp_path):
    bad = bytearray(frame(sample(3)))
    bad[-2] ^= 0xFF                                     # a sector written half: the CRC no longer matches
    (tmp_path / ("%012d%s" % (1, SUFFIX))).write_bytes(frame(sample(1)) + frame(sample(2)) + bytes(bad))

    async def go():
        spool = SampleSpool(str(tmp_path), 10 ** 6)
        await spool.open()
        return [s for s, _p in await read_all(spool)]
    assert run(go()) == [sample(1), sample(2)]


def test_the_cursor_survives_a_restart_and_consumed_segments_are_removed(tmp_path):
    async def first():
        spool = SampleSpool(str(tmp_path), 10 ** 6, segment_bytes=600)
        await spool.open()
        for n in range(40):
            spool.append(sample(n))
            await spool.flush()                         # one batch each: the segments fill and rotate
        records = await read_all(spool)
        spool.ack(records[24][1])                       # the broker has the first 25
        await spool.close()
        return len(segments(tmp_path))
    files_after_ack = run(first())

    async def second():
        spool = SampleSpool(str(tmp_path), 10 ** 6, segment_bytes=600)
        await spool.open()
        return spool.pending(), [s for s, _p in await read_all(spool)]
    pending, got = run(second())
    assert pending == 15 and got == [sample(n) for n in range(25, 40)]
    total_bytes = 40 * len(frame(sample(0)))
    assert files_after_ack < -(-total_bytes // 600)    # the segments wholly acknowledged are gone


def test_a_full_spool_drops_the_oldest_segment_and_counts_what_was_lost(tmp_path):
    drops = []
    size = len(frame(sample(0)))

    async def go():
        spool = SampleSpool(str(tmp_path), 10 * size, on_drop=drops.append, segment_bytes=3 * size)
        await spool.open()
        for n in range(30):
            spool.append(sample(n))
            await spool.flush()
            assert spool.used_bytes() <= 10 * size
        kept = [s for s, _p in await read_all(spool)]
        return kept, spool.dropped, spool.pending()
    kept, dropped, pending = run(go())
    assert kept == [sample(n) for n in range(30 - len(kept), 30)]          # the newest, in order
    assert dropped == sum(drops) == 30 - len(kept) and pending == len(kept)
    assert 0 < len(kept) <= 10
    assert all(count <= 3 for count in drops)           # a segment at a time


def test_an_acknowledged_spool_drops_nothing_when_it_fills_again(tmp_path):
    drops = []
    size = len(frame(sample(0)))

    async def go():
        spool = SampleSpool(str(tmp_path), 10 * size, on_drop=drops.append, segment_bytes=3 * size)
        await spool.open()
        for n in range(30):
            spool.append(sample(n))
            await spool.flush()
            records = await spool.read(None, 100)
            spool.ack(records[-1][1])                   # the broker keeps up
            await asyncio.sleep(0)
        await spool.close()
        return spool.pending()
    assert run(go()) == 0 and drops == []


def test_the_sender_reads_what_was_just_flushed_from_memory_and_older_samples_from_the_file(tmp_path):
    """Issue 19 (lean): a connected sender's read of the newest flushes costs no file read; samples beyond the
    kept tail (spool.TAIL_BYTES) and after a reopen come from the file, the same samples in the same order."""
    from outbound.mqtt import spool as spool_mod
    per_record = len(frame(sample(0)))
    many = spool_mod.TAIL_BYTES // per_record + 50          # more than the tail holds

    async def go():
        spool = SampleSpool(str(tmp_path), 10 ** 7, segment_bytes=10 ** 7)
        await spool.open()
        live, position = [], None
        for n in range(20):                                 # flush, read, as a connected sender does
            spool.append(sample(n))
            await spool.flush()
            batch = await spool.read(position, 100)
            live.extend(batch)
            position = batch[-1][1]
        live_reads = spool.file_reads
        for n in range(20, 20 + many):                      # a backlog larger than the tail
            spool.append(sample(n))
            await spool.flush()
        backlog = [s for s, _p in await read_all(spool, position)]
        backlog_reads = spool.file_reads - live_reads
        await spool.close()
        again = SampleSpool(str(tmp_path), 10 ** 7, segment_bytes=10 ** 7)
        await again.open()
        return live, live_reads, backlog, backlog_reads, await read_all(again), again.file_reads
    live, live_reads, backlog, backlog_reads, reopened, reopened_reads = run(go())
    assert [s for s, _p in live] == [sample(n) for n in range(20)] and live_reads == 0
    assert backlog == [sample(n) for n in range(20, 20 + many)] and backlog_reads >= 1
    assert [s for s, _p in reopened] == [sample(n) for n in range(20 + many)] and reopened_reads >= 1
    assert live == reopened[:20]            # the positions too: the same (segment, offset, index) as from the file
