"""Storage benchmark: the fixed-size time-series store at the 32-device / 192-circuit cap.

    .venv/bin/python bench/storage.py [--dir DIR] [--sqlite-days 30]

Prints, each with a reference measured in the same run:

* creation time and size of the store (2304 series x 8784 points) vs writing
  the same number of bytes sequentially (+ fsync) on the same disk;
* bytes written to the disk per logged sample (the process's I/O accounting,
  /proc/self/io write_bytes), for a day of 60-min intervals and amortised over
  a full chunk cycle (each chunk written once in place), vs SQLite doing the
  same writes (slot-indexed rows, WAL, one durable transaction per interval);
* time to read a 1-year hourly series and a 1-year daily aggregate of one
  circuit, warm and cold (page cache of the file dropped), vs the disk's raw
  sequential read of the same bytes and vs SQLite;
* memory: RSS growth with every series open and pending, and the peak of a
  streaming export of a year of 10 series.
Targets: <= 16 bytes written per sample, <= 100 ms for the 1-year series.
"""

import argparse
import calendar
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import time
import tracemalloc

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from daemon.storage.format import Geometry  # noqa: E402
from daemon.storage.store import Series, TimeSeriesStore, geometry_from_settings  # noqa: E402

HOUR = 3600
YEAR_START = calendar.timegm((2023, 4, 1, 0, 0, 0))
YEAR_END = calendar.timegm((2024, 4, 1, 0, 0, 0))       # 366 days


def write_bytes():
    with open("/proc/self/io") as handle:
        for line in handle:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    raise RuntimeError("no /proc/self/io")


def rss_kib():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def best(func, repeat=5):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return min(times)


# ---------------------------------------------------------------- references

def sequential_write(directory, size):
    """Seconds to write ``size`` bytes sequentially and fsync (the disk's floor)."""
    path = os.path.join(directory, "seqwrite.tmp")
    block = bytes(1 << 20)
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for offset in range(0, size, len(block)):
            os.write(fd, block[:size - offset])
        os.fsync(fd)
    finally:
        os.close(fd)
    elapsed = time.perf_counter() - started
    return elapsed, path


def sequential_read_rate(path, size):
    """Cold sequential read rate of the disk in bytes/s (file pages dropped first)."""
    drop_cache(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        started = time.perf_counter()
        done = 0
        while done < size:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            done += len(chunk)
        return done / (time.perf_counter() - started)
    finally:
        os.close(fd)


def folio_amplification(directory):
    """Pages dirtied by one 4 KiB write after a 48 KiB read of the same file,
    with normal readahead and with POSIX_FADV_RANDOM (what the store uses)."""
    out = {}
    for label, advice in (("readahead", None), ("random", os.POSIX_FADV_RANDOM)):
        path = os.path.join(directory, "folio.tmp")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, bytes(32 << 20))
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            if advice is not None:
                os.posix_fadvise(fd, 0, 0, advice)
            for offset in range(0, 32 << 20, 48 << 10):
                os.pread(fd, 48 << 10, offset)
            pages = []
            for i in range(50):
                before = write_bytes()
                os.pwrite(fd, b"x" * 4096, (16 << 20) + i * 3 * 4096)
                os.fdatasync(fd)
                pages.append((write_bytes() - before) / 4096.0)
            out[label] = sum(pages) / len(pages)
        finally:
            os.close(fd)
            os.unlink(path)
    return out


class SqliteReference:
    """The same series in SQLite: one row per (slot, ring position), updated in place.

    ``key`` "slot, pos" keeps a series together (fast reads, scattered writes);
    "pos, slot" keeps an interval together (compact writes, a series' year
    spread over the whole table).
    """

    def __init__(self, path, slots, points, key="slot, pos"):
        self.points = points
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")         # durable commits, like the store's fsync
        self.db.execute("CREATE TABLE points (slot INTEGER, pos INTEGER, value REAL, quality INTEGER,"
                        " PRIMARY KEY (%s)) WITHOUT ROWID" % key)
        self.slots = slots

    def prefill(self, start, hours):
        self.db.execute("BEGIN")
        for h in range(hours):
            n = start // HOUR + h
            self.db.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, 1)",
                                [(slot, n % self.points, float(n)) for slot in range(self.slots)])
        self.db.execute("COMMIT")
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def interval(self, ts, values):
        n = ts // HOUR
        self.db.execute("BEGIN")
        self.db.executemany("INSERT OR REPLACE INTO points VALUES (?, ?, ?, 1)",
                            [(slot, n % self.points, v) for slot, v in enumerate(values)])
        self.db.execute("COMMIT")

    def year(self, slot):
        return self.db.execute("SELECT pos, value, quality FROM points WHERE slot = ? ORDER BY pos",
                               (slot,)).fetchall()

    def close(self):
        self.db.close()


# ---------------------------------------------------------------- measurements

def measure(directory, sqlite_days):
    out = {}
    geometry = geometry_from_settings(None)
    store_dir = os.path.join(directory, "tsdb")

    # creation, best of 3, alternating with the reference (the first allocation
    # on a freshly trimmed disk costs more, whoever does it)
    creates, refs = [], []
    for attempt in range(3):
        shutil.rmtree(store_dir, ignore_errors=True)
        started = time.perf_counter()
        store = TimeSeriesStore(store_dir, geometry)
        creates.append(time.perf_counter() - started)
        store.close()
        ref_s, ref_path = sequential_write(directory, geometry.file_size)
        refs.append(ref_s)
        if attempt < 2:
            os.unlink(ref_path)
    out["create_s"], out["seq_write_s"] = min(creates), min(refs)
    out["size"] = geometry.file_size
    out["geometry"] = geometry
    out["seq_read_Bps"] = sequential_read_rate(ref_path, geometry.file_size)
    os.unlink(ref_path)
    store = TimeSeriesStore(store_dir, geometry)

    # a day of 60-min intervals for every series of the cap, one commit per interval
    series = [Series("consumption/%04d" % i if i % 2 else "load_curve/%04d" % i, HOUR, counter=(i % 2 == 1))
              for i in range(geometry.slots)]
    rss_before = rss_kib()
    day_start = YEAR_START + 2 * 86400          # not on a chunk boundary
    store.add_row(series, day_start - HOUR, [0.0] * len(series))
    store.commit()
    before = write_bytes()
    for h in range(24):
        store.add_row(series, day_start + h * HOUR, [float(h + i % 97) for i in range(len(series))])
        store.commit()
    out["day_bytes"] = write_bytes() - before
    out["day_samples"] = 24 * len(series)
    out["rss_open_kib"] = rss_kib() - rss_before
    store.close()

    # steady state: a whole chunk cycle, so every chunk is written once in place
    cycle_dir = os.path.join(directory, "cycle")
    cycle_geometry = Geometry(geometry.slots, 1464, segments=geometry.segments)
    cycle = TimeSeriesStore(cycle_dir, cycle_geometry)
    base = (YEAR_START // HOUR // cycle_geometry.chunk_points) * cycle_geometry.chunk_points * HOUR
    cycle.add_row(series, base, [0.0] * len(series))
    cycle.commit()
    before = write_bytes()
    started = time.perf_counter()
    for n in range(1, cycle_geometry.chunk_points + 1):
        cycle.add_row(series, base + n * HOUR, [float(n)] * len(series))
        cycle.commit()
    out["cycle_s"] = time.perf_counter() - started
    out["cycle_bytes"] = write_bytes() - before
    out["cycle_samples"] = cycle_geometry.chunk_points * len(series)
    out["cycle_chunk_writes"] = cycle.stats["chunk_writes"]
    cycle.close()
    shutil.rmtree(cycle_dir)

    # smaller sites (demo site: 76 series; reference site: 714), same cycle
    out["sites"] = []
    for count in (76, 256, 714):
        store_small = TimeSeriesStore(cycle_dir, cycle_geometry)
        subset = series[:count]
        store_small.add_row(subset, base, [0.0] * count)
        store_small.commit()
        before = write_bytes()
        for n in range(1, cycle_geometry.chunk_points + 1):
            store_small.add_row(subset, base + n * HOUR, [float(n)] * count)
            store_small.commit()
        spent = write_bytes() - before
        out["sites"].append((count, spent / float(cycle_geometry.chunk_points * count),
                             spent / float(cycle_geometry.chunk_points)))
        store_small.close()
        shutil.rmtree(cycle_dir)

    # SQLite doing the day's writes (after a prefill, so its B-tree has a realistic size)
    sqlite_path = os.path.join(directory, "reference.sqlite")
    sqlite = SqliteReference(sqlite_path, geometry.slots, geometry.points)
    sqlite.prefill(day_start - sqlite_days * 86400, sqlite_days * 24)
    before = write_bytes()
    for h in range(24):
        sqlite.interval(day_start + h * HOUR, [float(h + i % 97) for i in range(len(series))])
    out["sqlite_day_bytes"] = write_bytes() - before
    sqlite.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    time_major_path = os.path.join(directory, "time-major.sqlite")
    time_major = SqliteReference(time_major_path, geometry.slots, geometry.points, key="pos, slot")
    time_major.prefill(day_start - sqlite_days * 86400, sqlite_days * 24)
    before = write_bytes()
    for h in range(24):
        time_major.interval(day_start + h * HOUR, [float(h + i % 97) for i in range(len(series))])
    out["sqlite_tm_day_bytes"] = write_bytes() - before
    time_major.close()
    os.unlink(time_major_path)

    # a full year in a few series, to read back (a store of its own)
    store_dir = os.path.join(directory, "year")
    store = TimeSeriesStore(store_dir, geometry)
    year = [Series("year/%d" % i, HOUR, counter=(i == 0)) for i in range(10)]
    ts = YEAR_START
    index = 1e6
    while ts < YEAR_END:
        index += 1000.0
        store.add(year[0], ts, 1000.0, index=index)
        store.add_row(year[1:], ts, [float(ts // HOUR % 1000)] * 9)
        ts += HOUR
        if (ts - YEAR_START) % (7 * 86400) == 0:
            store.commit()
    store.commit()
    sqlite.db.execute("BEGIN")
    sqlite.db.executemany("INSERT OR REPLACE INTO points VALUES (0, ?, ?, 1)",
                          [(n % geometry.points, float(n)) for n in range(YEAR_START // HOUR, YEAR_END // HOUR)])
    sqlite.db.execute("COMMIT")

    def read_year():
        data = store.read("year/1", YEAR_START, YEAR_END)
        assert len(data) == 8784
        return data.as_dict()

    def read_year_raw():
        data = store.read("year/1", YEAR_START, YEAR_END)
        assert data.valid_count() == 8784
        return data

    def read_daily():
        result = store.query(["year/0"], YEAR_START, YEAR_END, "day")["year/0"]
        assert len(result) == 366 and result.values[10] == 24000.0
        return result.as_dict()

    out["year_raw_warm_s"] = best(read_year_raw)
    out["year_warm_s"] = best(read_year)
    out["daily_warm_s"] = best(read_daily)
    cold = []
    for func in (read_year, read_daily):
        samples = []
        for _ in range(3):
            drop_cache(store.path)
            started = time.perf_counter()
            func()
            samples.append(time.perf_counter() - started)
        cold.append(min(samples))
    out["year_cold_s"], out["daily_cold_s"] = cold
    out["year_bytes"] = geometry.slot_bytes                   # one pread of the series' ring
    out["sqlite_year_warm_s"] = best(lambda: sqlite.year(0))
    sqlite.close()
    drop_cache(sqlite_path)
    sqlite = sqlite3.connect(sqlite_path)
    started = time.perf_counter()
    rows = sqlite.execute("SELECT pos, value, quality FROM points WHERE slot = 0 ORDER BY pos").fetchall()
    out["sqlite_year_cold_s"] = time.perf_counter() - started
    assert len(rows) == geometry.points
    sqlite.close()
    out["sqlite_size"] = os.path.getsize(sqlite_path)

    # memory of a streaming export of a year of 10 series
    tracemalloc.start()
    rows = 0
    for _row in store.export([s.name for s in year], YEAR_START, YEAR_END):
        rows += 1
    out["export_peak"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    out["export_rows"] = rows
    # the same year loaded at once, for comparison
    tracemalloc.start()
    loaded = [store.read(s.name, YEAR_START, YEAR_END).as_dict() for s in year]
    out["loaded_peak"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del loaded

    # recovery time after a kill with a full cycle of pending points is measured by
    # the reopen of a store closed without its marker
    os.close(store.fd)
    started = time.perf_counter()
    reopened = TimeSeriesStore(store_dir, geometry)
    out["reopen_s"] = time.perf_counter() - started
    out["reopen_points"] = reopened.recovery["points_replayed"]
    reopened.close()
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["folio"] = folio_amplification(directory)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default=None, help="where to create the files (default: a temp dir)")
    parser.add_argument("--sqlite-days", type=int, default=30, help="days of data SQLite holds before the run")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="bench-storage-", dir=args.dir)
    try:
        r = measure(directory, args.sqlite_days)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    g = r["geometry"]
    mb = 1e6
    print("time-series store at the cap: %d series (192 circuits x 10 + 32 devices x 12) x %d points"
          % (g.slots, g.points))
    print("  = 1 year at 60 min / 91.5 days at 15 min; %d chunks of %d points; journal %d x %d KiB"
          % (g.chunks, g.chunk_points, g.segments, g.segment_bytes // 1024))
    print("creation (best of 3): %.2f s for %.1f MB; sequential write+fsync of the same bytes %.2f s: ratio %.2f"
          % (r["create_s"], r["size"] / mb, r["seq_write_s"], r["create_s"] / r["seq_write_s"]))
    day = r["day_bytes"] / float(r["day_samples"])
    steady = r["cycle_bytes"] / float(r["cycle_samples"])
    sqlite_day = r["sqlite_day_bytes"] / float(r["day_samples"])
    print("bytes written per sample (write_bytes of the process):")
    print("  a day of 60-min intervals, %d samples/interval: %.2f B/sample (%.0f KiB per interval)"
          % (g.slots, day, r["day_bytes"] / 24.0 / 1024))
    print("  amortised over a chunk cycle (%d intervals, %d chunks written in place): %.2f B/sample"
          " (target <= 16)" % (r["cycle_samples"] // g.slots, r["cycle_chunk_writes"], steady))
    for count, per_sample, per_interval in r["sites"]:
        print("  amortised, a site of %d series: %.1f B/sample, %.1f KiB per interval (one page per"
              " commit is the floor)" % (count, per_sample, per_interval / 1024))
    sqlite_tm = r["sqlite_tm_day_bytes"] / float(r["day_samples"])
    print("  SQLite, same day of writes (WAL, synchronous=FULL, %d days preloaded):" % args.sqlite_days)
    print("    rows keyed (slot, pos), a series together: %.1f B/sample: ratio store/SQLite %.4f"
          % (sqlite_day, day / sqlite_day))
    print("    rows keyed (pos, slot), an interval together: %.1f B/sample: ratio store/SQLite %.3f"
          % (sqlite_tm, day / sqlite_tm))
    print("  commit time at the cap (encode + write + fdatasync): %.1f ms per interval of %d samples"
          % (1000 * r["cycle_s"] / (r["cycle_samples"] // g.slots), g.slots))
    disk_floor = r["year_bytes"] / r["seq_read_Bps"]
    print("reading one circuit (disk sequential read %.0f MB/s; the series' ring is %d KiB):"
          % (r["seq_read_Bps"] / mb, r["year_bytes"] // 1024))
    print("  1-year hourly series, 8784 points: %.2f ms read (warm); as JSON-ready lists: warm %.2f ms,"
          " cold %.2f ms (target <= 100 ms); cold / disk floor %.0f (CPU-bound: the disk part is %.3f ms)"
          % (1000 * r["year_raw_warm_s"], 1000 * r["year_warm_s"], 1000 * r["year_cold_s"],
             r["year_cold_s"] / disk_floor, 1000 * disk_floor))
    print("  1-year daily aggregate (366 sums): warm %.2f ms, cold %.2f ms"
          % (1000 * r["daily_warm_s"], 1000 * r["daily_cold_s"]))
    print("  SQLite (slot, pos), same year of one series as rows: warm %.2f ms (ratio store/SQLite %.2f),"
          " cold %.2f ms (ratio %.2f); SQLite file %.1f MB for %d days of %d series"
          % (1000 * r["sqlite_year_warm_s"], r["year_warm_s"] / r["sqlite_year_warm_s"],
             1000 * r["sqlite_year_cold_s"], r["year_cold_s"] / r["sqlite_year_cold_s"],
             r["sqlite_size"] / mb, args.sqlite_days + 1, g.slots))
    print("memory: RSS +%.1f MiB with all %d series open and pending; export of a year of 10 series"
          " (%d rows) peaks at %.2f MiB vs %.1f MiB to load the same at once; max RSS %.0f MiB"
          % (r["rss_open_kib"] / 1024.0, g.slots, r["export_rows"], r["export_peak"] / 1048576.0,
             r["loaded_peak"] / 1048576.0, r["maxrss_mib"]))
    print("recovery after a kill: %.2f s to reopen, %d points replayed from the journal"
          % (r["reopen_s"], r["reopen_points"]))
    print("page cache: one 4 KiB write after 48 KiB reads dirties %.1f pages with readahead, %.1f with"
          " POSIX_FADV_RANDOM (kernel %s): ratio %.0f" % (r["folio"]["readahead"], r["folio"]["random"],
                                                         os.uname().release, r["folio"]["readahead"]
                                                         / max(r["folio"]["random"], 1e-9)))


if __name__ == "__main__":
    main()
