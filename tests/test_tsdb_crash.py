"""Crash safety: a writer process is killed (SIGKILL) at random instants while it
writes; every restart opens the store with no corruption and at most the
interval being written lost.

The writer is this file run as a script (``python test_tsdb_crash.py writer
DIR START``): it commits one interval after another and prints each interval
number once its commit returned, so the test knows what was acknowledged.
"""

import os
import random
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from daemon.storage.store import Series, TimeSeriesStore  # noqa: E402
from daemon.storage.format import Geometry  # noqa: E402

KILLS = 60
MIN_ACKS = 1464 * 5 // 4 // KILLS       # commits seen before a kill: 60 kills wrap the 1464-point rings
T0 = 1_700_000_000 // 87840 * 87840      # on a chunk boundary of both periods
# Small on purpose: the 1464-point rings wrap, and a journal much smaller than
# what can be pending forces early chunk flushes, so kills land in every path.
GEOMETRY = dict(slots=64, points=1464, segments=5, segment_bytes=16384)
FAST = [Series("fast/%02d" % i, 60) for i in range(48)]
SLOW = [Series("slow/%02d" % i, 120) for i in range(8)]


def value(column, n):
    return float((n * 31 + column * 1009) % 999983)


def writer(directory, start):
    store = TimeSeriesStore(directory, Geometry(**GEOMETRY))
    n = start
    while True:
        ts = T0 + 60 * n
        store.add_row(FAST, ts, [value(c, n) for c in range(len(FAST))])
        if n % 2 == 0:
            store.add_row(SLOW, ts, [value(100 + c, n // 2) for c in range(len(SLOW))])
        store.commit()
        sys.stdout.write("%d\n" % n)
        sys.stdout.flush()
        n += 1


def check(store, last_ack):
    """Every acknowledged interval is there; beyond it, at most the one in flight."""
    newest = None
    for column, series in enumerate(FAST + SLOW):
        slow = series in SLOW
        data = store.read(series.name, 0, 2 ** 40)
        points = [(t, v) for t, v, q in data.points() if v is not None]
        assert points, series.name
        last_n = (points[-1][0] - T0) // 60
        assert last_n <= last_ack + 1, (series.name, last_n, last_ack)          # nothing invented
        for t, v in points:
            n = (t - T0) // 60
            expected = value(100 + column - len(FAST), n // 2) if slow else value(column, n)
            assert v == expected, (series.name, n, v, expected)
        # no hole: the ring holds a contiguous run ending at the newest point
        period = series.period
        assert [t for t, _v in points] == list(range(points[0][0], points[-1][0] + period, period)), series.name
        acked = last_ack - (last_ack % 2) if slow else last_ack
        assert last_n >= acked, (series.name, last_n, acked)                    # nothing acknowledged lost
        if not slow:
            newest = last_n if newest is None else min(newest, last_n)
    return newest


def test_sigkill_at_random_instants_never_corrupts_and_loses_at_most_the_interval_in_flight(tmp_path):
    directory = str(tmp_path / "tsdb")
    rng = random.Random(7)
    start = 0
    reports = []
    for kill in range(KILLS):
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "writer", directory, str(start)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # Let it commit a number of intervals first (a count, not a time, so a slow or
            # loaded machine still wraps the rings), then kill it at a random instant.
            seen = [proc.stdout.readline() for _ in range(rng.randint(MIN_ACKS, 2 * MIN_ACKS))]
            assert all(seen), proc.stderr.read().decode()
            time.sleep(rng.uniform(0.0, 0.03))
        finally:
            proc.kill()
            proc.wait()
        acks = [int(x) for x in seen] + [int(x) for x in proc.stdout.read().split()]
        proc.stdout.close()
        proc.stderr.close()
        assert acks == list(range(start, start + len(acks)))
        store = TimeSeriesStore(directory, Geometry(**GEOMETRY))
        try:
            recovery = store.recovery
            assert not recovery["clean_shutdown"]              # the kill is detected ...
            assert recovery["bad_chunks"] == 0                 # ... and nothing is corrupt
            assert recovery["torn_records"] <= 1
            reports.append(recovery)
            newest = check(store, acks[-1])
        finally:
            store.close(clean=False)
        start = newest + 1
    assert start > 1464                                        # the rings wrapped at least once
    # recoveries really had work to do: chunks completed in the journal were written in place
    assert sum(r["chunks_rewritten"] for r in reports) >= KILLS // 4


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "writer":
    writer(sys.argv[2], int(sys.argv[3]))
