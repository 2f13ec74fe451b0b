"""The export spool (outbound/export/spool.py): entries kept in the order of put, whole or not at all across a
SIGKILL at any instant, leftovers of an interrupted put or remove cleared at open, bounded with the oldest
dropped (reported), files moved in from another file system. No gateway: the spool is plain files; the
event for a dropped file through a real door is in tests/test_export_transports.py.
"""

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from outbound.export.spool import DAMAGED, FULL, TOO_LARGE, Spool

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
META = {"data_type": "LoadCurve", "device": "Meter07", "start": 1765000000, "end": 1765003600}


def make_file(directory, index, size=None):
    """A finished file whose bytes say which it is: ``<index>|`` then filler."""
    path = os.path.join(str(directory), "out-%d.csv" % index)
    body = ("%d|" % index).encode()
    with open(path, "wb") as handle:
        handle.write(body + b"." * ((size if size is not None else 50 + index) - len(body)))
    return path


def read(entry):
    with open(entry.path, "rb") as handle:
        return handle.read()


def spool_files(directory):
    return sorted(os.listdir(directory))


def test_put_keeps_order_name_size_and_meta_and_a_reopened_spool_finds_them(tmp_path):
    async def scenario():
        spool = Spool(str(tmp_path / "spool"), 10 ** 6)
        await spool.open()
        ids = []
        for index in range(5):
            path = make_file(tmp_path, index)
            ids.append(await spool.put(path, "F%d.csv" % index, dict(META, device="Meter%02d" % index)))
            assert not os.path.exists(path)                                  # moved in, not copied
        assert ids == sorted(ids) and len(set(ids)) == 5
        entries = spool.entries()
        assert [e.name for e in entries] == ["F%d.csv" % i for i in range(5)]
        assert [read(e)[:2] for e in entries] == [b"%d|" % i for i in range(5)]
        assert [e.size for e in entries] == [50 + i for i in range(5)]
        assert spool.used_bytes() == sum(50 + i for i in range(5)) and spool.count() == 5
        assert entries[3].meta == dict(META, device="Meter03")
        assert await spool.remove(entries[1].id) and not await spool.remove(entries[1].id)
        assert not os.path.exists(entries[1].path)

        again = Spool(str(tmp_path / "spool"), 10 ** 6)
        await again.open()
        assert [(e.id, e.name, e.size, e.meta) for e in again.entries()] == \
            [(e.id, e.name, e.size, e.meta) for e in spool.entries()]
        newer = await again.put(make_file(tmp_path, 9), "F9.csv", META)
        assert newer > max(ids)                                              # the order of put survives a restart
        with pytest.raises(ValueError):
            await again.put(make_file(tmp_path, 10), "../escape.csv", META)
    asyncio.run(scenario())


def test_open_clears_what_an_interrupted_put_or_remove_left_and_keeps_the_rest(tmp_path):
    directory = str(tmp_path / "spool")

    async def fill():
        spool = Spool(directory, 10 ** 6)
        await spool.open()
        for index in range(3):
            await spool.put(make_file(tmp_path, index), "F%d.csv" % index, META)
        return spool.entries()

    entries = asyncio.run(fill())
    # a put cut before its commit: data moved in as .part, meta maybe written
    with open(os.path.join(directory, "000000000010.part"), "wb") as handle:
        handle.write(b"half")
    with open(os.path.join(directory, "000000000010.meta"), "w") as handle:
        json.dump({"name": "G.csv", "size": 4, "meta": META}, handle)
    with open(os.path.join(directory, "000000000011.meta.tmp"), "w") as handle:
        handle.write('{"na')
    # a remove cut after the data went: the meta alone stays
    os.unlink(entries[0].path)
    # a damaged entry: data without meta, and data of another size than its meta says
    with open(os.path.join(directory, "000000000007.data"), "wb") as handle:
        handle.write(b"orphan")
    with open(entries[2].path, "ab") as handle:
        handle.write(b"more")
    with open(os.path.join(directory, "notes.txt"), "w") as handle:   # not the spool's: left alone
        handle.write("keep")
    dropped = []

    async def reopen():
        spool = Spool(directory, 10 ** 6, on_drop=lambda entry, reason: dropped.append((entry.name, reason)))
        await spool.open()
        return spool

    spool = asyncio.run(reopen())
    assert [e.name for e in spool.entries()] == ["F1.csv"]
    assert sorted(reason for _name, reason in dropped) == [DAMAGED, DAMAGED]
    assert spool_files(directory) == sorted([os.path.basename(entries[1].path),
                                             os.path.basename(entries[1].path)[:-5] + ".meta", "notes.txt"])
    assert spool.used_bytes() == entries[1].size


def test_a_full_spool_drops_the_oldest_and_a_file_larger_than_the_spool_is_dropped_itself(tmp_path):
    dropped = []

    async def scenario():
        spool = Spool(str(tmp_path / "spool"), 300, on_drop=lambda entry, reason: dropped.append((entry, reason)))
        await spool.open()
        for index in range(3):
            await spool.put(make_file(tmp_path, index, size=100), "F%d.csv" % index, META)
        assert dropped == [] and spool.used_bytes() == 300
        await spool.put(make_file(tmp_path, 3, size=150), "F3.csv", META)      # needs the room of two
        assert [(e.name, reason) for e, reason in dropped] == [("F0.csv", FULL), ("F1.csv", FULL)]
        assert dropped[0][0].meta == META and dropped[0][0].size == 100
        assert [e.name for e in spool.entries()] == ["F2.csv", "F3.csv"] and spool.used_bytes() == 250
        big = make_file(tmp_path, 4, size=301)
        assert await spool.put(big, "F4.csv", META) is None
        assert dropped[-1][0].name == "F4.csv" and dropped[-1][1] == TOO_LARGE and not os.path.exists(big)
        assert [e.name for e in spool.entries()] == ["F2.csv", "F3.csv"]
        await spool.set_max_bytes(160)                                         # push.spool_mb made smaller
        assert [e.name for e in spool.entries()] == ["F3.csv"] and dropped[-1][0].name == "F2.csv"
        assert len(spool_files(tmp_path / "spool")) == 2                        # F3's data and meta only
    asyncio.run(scenario())


def test_a_file_from_another_file_system_is_copied_in_then_removed(tmp_path):
    if not os.path.isdir("/dev/shm"):
        pytest.skip("no tmpfs at /dev/shm")
    elsewhere = tempfile.mkdtemp(dir="/dev/shm")

    async def scenario():
        spool = Spool(str(tmp_path / "spool"), 10 ** 6)
        await spool.open()
        path = make_file(elsewhere, 1, size=5000)
        await spool.put(path, "F1.csv", META)
        assert not os.path.exists(path) and read(spool.entries()[0])[:2] == b"1|"
        assert spool.entries()[0].size == 5000
    try:
        asyncio.run(scenario())
    finally:
        os.rmdir(elsewhere)


CHILD = r"""
import asyncio, os, sys
sys.path.insert(0, %(repo)r)
from outbound.export.spool import Spool

async def main(directory, work, index):
    spool = Spool(directory, 10 ** 9)
    await spool.open()
    while True:
        path = os.path.join(work, "f%%d" %% index)
        with open(path, "wb") as handle:
            handle.write(b"%%d|" %% index + b"#" * (1000 + index %% 5000))
        await spool.put(path, "F%%d.csv" %% index, {"device": str(index)})
        print("put", index, flush=True)
        if index %% 3 == 0 and spool.count() > 3:          # delivered: the oldest leaves
            oldest = spool.entries()[0]
            print("removing", oldest.meta["device"], flush=True)
            await spool.remove(oldest.id)
            print("removed", oldest.meta["device"], flush=True)
        index += 1

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_sigkill_at_any_instant_leaves_every_put_entry_whole_and_in_order(tmp_path):
    """A child puts (and now and then removes) files as fast as it can and is killed at a random instant, six
    times: each reopened spool holds exactly the entries whose put returned and whose remove did not, give or
    take the one put and the one remove cut by the kill; in order, each whole, no temporary file left."""
    directory, work = str(tmp_path / "spool"), str(tmp_path / "work")
    os.makedirs(work)
    script = tmp_path / "child.py"
    script.write_text(CHILD % {"repo": REPO})
    rng = random.Random(16)
    known = set()                 # what the spool holds, as verified after the previous round
    start = 0
    for _round in range(6):
        child = subprocess.Popen([sys.executable, str(script), directory, work, str(start)],
                                 stdout=subprocess.PIPE, text=True)
        first = child.stdout.readline()                        # running: let it go a random while, then kill
        time.sleep(rng.uniform(0.01, 0.3))
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate()
        # the kill may cut the child's last line: only whole "word number" lines count
        lines = [words for words in (line.split() for line in [first] + rest.splitlines())
                 if len(words) == 2 and words[1].isdigit()]
        put = [int(i) for word, i in lines if word == "put"]
        removing = [int(i) for word, i in lines if word == "removing"]
        removed = [int(i) for word, i in lines if word == "removed"]
        expected = (known | set(put)) - set(removed)
        in_flight_put = {(put[-1] + 1) if put else start}
        in_flight_remove = set(removing) - set(removed)

        async def reopen():
            spool = Spool(directory, 10 ** 9)
            await spool.open()
            return spool
        spool = asyncio.run(reopen())
        entries = spool.entries()
        present = [int(e.meta["device"]) for e in entries]
        assert expected - in_flight_remove <= set(present) <= expected | in_flight_put, (put, removed, present)
        assert present == sorted(present) and [e.id for e in entries] == sorted(e.id for e in entries)
        for entry in entries:
            index = int(entry.meta["device"])
            assert entry.name == "F%d.csv" % index and read(entry) == b"%d|" % index + b"#" * (1000 + index % 5000)
        assert not [n for n in os.listdir(directory) if n.endswith((".part", ".tmp"))]
        known = set(present)
        start = max(known | in_flight_put) + 1
