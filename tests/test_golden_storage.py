"""Golden chunk of the time-series store: the bytes on disk must not change silently.

A store written by one version of the gateway is read by the next one
after a firmware upgrade (and by a backup restored later), so the chunk
layout (docs/storage.md, daemon/storage/format.py: 24-byte header
``<HHIIId`` = magic "TS", slot, incarnation, absolute chunk number, CRC32,
counter base; then float32 values; then one quality byte per point; zero
padding to 4 KiB) is pinned here against a committed file,
``tests/golden/tsdb-chunk-v1.bin``, built from the fixed values below.

Regenerating the golden file: ONLY when the on-disk format version
(``format.SUPER_VERSION``) changes, i.e. when old stores can no longer be
read as they are. Then add the new file beside the old one under a new name
(``tsdb-chunk-v<N>.bin``), run ``PYTHONPATH=. python tests/test_golden_storage.py``
(it writes the file named by ``GOLDEN`` and refuses to overwrite an
existing one), and keep a test that the new code still reads (or migrates)
the old file. A failure here with the version unchanged means the code
changed the bytes of an existing format: fix the code, not the file.
"""

import array
import os
import struct
import sys
import zlib

from daemon.storage import format as fmt

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "golden", "tsdb-chunk-v1.bin")
FORMAT_VERSION = 1                    # the version GOLDEN belongs to

# The chunk: slot 3, incarnation 2, absolute chunk number 25, counter base 123456.5 Wh, in the default
# geometry (8784 points per series = 12 chunks of 732). Values are exact in float32.
SLOT, INCARNATION, NUMBER, BASE = 3, 2, 25, 123456.5
CHUNK_POINTS = 732
FIRST_VALUES = (1250.0, 1187.5, 0.0, 1302.25, 96.0, 4500000.0, -42.125)
# quality bytes, by hand: 0x01 valid, 0x02 incomplete, 0x04 clock not set, 0x08 accumulated, 0x10 backfilled
FIRST_QUALITY = b"\x01\x11\x00\x07\x09\x01\x01"


def golden_chunk():
    values = array.array("f", FIRST_VALUES + (0.0,) * (CHUNK_POINTS - len(FIRST_VALUES)))
    quality = FIRST_QUALITY + b"\x00" * (CHUNK_POINTS - len(FIRST_QUALITY))
    return fmt.encode_chunk(SLOT, INCARNATION, NUMBER, BASE, values, quality)


def committed():
    with open(GOLDEN, "rb") as handle:
        return handle.read()


def test_the_format_constants_are_the_documented_ones():
    assert fmt.SUPER_VERSION == FORMAT_VERSION, (
        "the on-disk format version changed: add tests/golden/tsdb-chunk-v%d.bin (see this file's docstring)"
        % fmt.SUPER_VERSION)
    assert fmt.split_points(8784) == (12, 732) == (12, CHUNK_POINTS)
    assert (fmt.CHUNK_BYTES, fmt.CHUNK_HEADER.size, fmt.CHUNK_MAGIC) == (4096, 24, 0x5453)
    assert (fmt.Q_VALID, fmt.Q_INCOMPLETE, fmt.Q_CLOCK_NOT_SET, fmt.Q_ACCUMULATED, fmt.Q_BACKFILLED) == (
        0x01, 0x02, 0x04, 0x08, 0x10)


def test_a_chunk_is_byte_for_byte_the_committed_golden_file():
    golden = committed()
    assert len(golden) == 4096
    assert golden_chunk() == golden


def test_the_golden_file_reads_as_written_out_by_hand():
    golden = committed()
    # header, little-endian: magic 0x5453 ("ST" on disk), slot 3, incarnation 2, chunk 25, crc32, base
    assert golden[:12] == bytes.fromhex("5354" "0300" "02000000" "19000000")
    assert golden[16:24] == struct.pack("<d", 123456.5) == bytes.fromhex("000000000824fe40")
    crc = zlib.crc32(golden[16:24 + CHUNK_POINTS * 5], zlib.crc32(golden[:12]))
    assert golden[12:16] == struct.pack("<I", crc) == bytes.fromhex("94164b14")
    # values: float32 little-endian, then the quality bytes, then zeros to the end of the page
    assert golden[24:28] == bytes.fromhex("00409c44")                 # 1250.0
    assert golden[24 + 5 * 4:24 + 6 * 4] == bytes.fromhex("4054894a")   # 4500000.0
    assert golden[24 + 6 * 4:24 + 7 * 4] == bytes.fromhex("008028c2")   # -42.125
    quality_at = 24 + CHUNK_POINTS * 4
    assert golden[quality_at:quality_at + 8] == b"\x01\x11\x00\x07\x09\x01\x01\x00"
    assert golden[quality_at + CHUNK_POINTS:] == b"\x00" * (4096 - 24 - CHUNK_POINTS * 5)

    decoded = fmt.decode_chunk(golden, CHUNK_POINTS)
    assert decoded, "the committed chunk no longer decodes (bad magic or CRC)"
    slot, incarnation, number, base, values, quality = decoded
    assert (slot, incarnation, number, base) == (3, 2, 25, 123456.5)
    assert array.array("f", values)[:7].tolist() == [1250.0, 1187.5, 0.0, 1302.25, 96.0, 4500000.0, -42.125]
    assert [fmt.quality_name(q) for q in quality[:7]] == [
        "good", "backfilled", "missing", "incomplete+clock_not_set", "accumulated", "good", "good"]
    # one flipped bit anywhere in the covered bytes is a torn chunk
    torn = bytearray(golden)
    torn[24 + 3 * 4] ^= 0x01
    assert fmt.decode_chunk(bytes(torn), CHUNK_POINTS) is False


if __name__ == "__main__":
    # Writes the golden file once (see the docstring: only for a new format version, under a new name).
    if fmt.SUPER_VERSION != FORMAT_VERSION:
        sys.exit("set FORMAT_VERSION and GOLDEN to the new version first")
    if os.path.exists(GOLDEN):
        sys.exit("%s exists: a golden file is never rewritten" % GOLDEN)
    os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
    with open(GOLDEN, "wb") as out:
        out.write(golden_chunk())
    print("wrote", GOLDEN)
