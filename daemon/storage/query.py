"""What reads of the time-series store return: raw series, aggregates, export rows.

Pure (no I/O): the store fills ``SeriesData`` from its chunks; aggregation
and the export merge work on those. Times are the *start* of each interval
(a 60-min point stamped 10:00 covers 10:00-11:00), so an hour, day, week or
month bucket holds the intervals that start inside it.
"""

import array
import calendar
import heapq
import math
import time

from daemon.storage.format import Q_VALID, quality_name

STEPS = ("hour", "day", "week", "month")


class SeriesData:
    """Raw points of one series: regular grid from ``start`` every ``period`` s."""

    def __init__(self, name, period, counter):
        self.name = name
        self.period = period
        self.counter = counter
        self.start = None
        self.values = array.array("f")
        self.quality = bytearray()
        self.indexes = None       # counter series: index at the end of each point (None if unknown)

    def fill(self, start, values, quality, bases=None):
        self.start = start
        self.values = values
        self.quality = quality
        if bases is not None:
            indexes = []
            for first, running, count in bases:
                for i in range(first, first + count):
                    if self.quality[i] & Q_VALID:
                        running += self.values[i]
                    indexes.append(None if math.isnan(running) else running)
            self.indexes = indexes

    def __len__(self):
        return len(self.values)

    def times(self):
        return [self.start + i * self.period for i in range(len(self.values))]

    def points(self):
        """(ts, value or None, quality code) for every grid point."""
        start, period, quality = self.start, self.period, self.quality
        for i, value in enumerate(self.values):
            q = quality[i]
            yield start + i * period, (value if q & Q_VALID else None), q

    def index_points(self):
        """(ts, index at the end of the point or None, quality code): a counter series' readings
        (``points`` for a series without indexes)."""
        if self.indexes is None:
            yield from self.points()
            return
        start, period, quality, indexes = self.start, self.period, self.quality, self.indexes
        for i, index in enumerate(indexes):
            q = quality[i]
            yield start + i * period, (index if q & Q_VALID else None), q

    def valid_count(self):
        return sum(1 for q in self.quality if q & Q_VALID)

    def as_dict(self):
        quality = self.quality
        out = {"name": self.name, "period_s": self.period, "counter": self.counter, "step": "raw",
               "t": self.times(),
               "v": [v if quality[i] & Q_VALID else None for i, v in enumerate(self.values)],
               "q": [quality_name(q) for q in quality]}
        if self.indexes is not None:
            out["index"] = self.indexes
        return out


class Aggregate:
    """Buckets of one series: sum (counters) or mean/min/max (gauges), with quality.

    Quality per bucket: "good" when every interval of the bucket has a value,
    "partial" when some do (gaps, a bucket still filling, or cut by the
    requested range or the retention), "missing" when none.
    """

    def __init__(self, name, step, counter):
        self.name = name
        self.step = step
        self.counter = counter
        self.times = []
        self.values = []
        self.minimum = []
        self.maximum = []
        self.counts = []
        self.expected = []

    def __len__(self):
        return len(self.times)

    def quality(self, i):
        if self.counts[i] == 0:
            return "missing"
        return "good" if self.counts[i] == self.expected[i] else "partial"

    def as_dict(self):
        out = {"name": self.name, "step": self.step, "counter": self.counter, "t": list(self.times),
               "v": list(self.values), "count": list(self.counts),
               "q": [self.quality(i) for i in range(len(self.times))]}
        if not self.counter:
            out["min"] = list(self.minimum)
            out["max"] = list(self.maximum)
        return out


def bucket(step, ts, utc_offset_s=0):
    """(start, end) of the ``step`` bucket holding ``ts``, in local time of the offset."""
    local = int(ts) + utc_offset_s
    if step == "hour":
        start = local - local % 3600
        return start - utc_offset_s, start + 3600 - utc_offset_s
    if step == "day":
        start = local - local % 86400
        return start - utc_offset_s, start + 86400 - utc_offset_s
    if step == "week":                          # ISO weeks: Monday 00:00
        days = local // 86400
        start = (days - (days + 3) % 7) * 86400
        return start - utc_offset_s, start + 7 * 86400 - utc_offset_s
    if step == "month":
        tm = time.gmtime(local)
        start = calendar.timegm((tm.tm_year, tm.tm_mon, 1, 0, 0, 0))
        year, month = (tm.tm_year + 1, 1) if tm.tm_mon == 12 else (tm.tm_year, tm.tm_mon + 1)
        return start - utc_offset_s, calendar.timegm((year, month, 1, 0, 0, 0)) - utc_offset_s
    raise ValueError("step must be one of %s" % ", ".join(STEPS))


def aggregate(data, step, utc_offset_s=0):
    """Aggregate ``data`` (SeriesData) into ``step`` buckets."""
    out = Aggregate(data.name, step, data.counter)
    bucket(step, 0)                              # refuse an unknown step even for empty data
    if not len(data):
        return out
    values, quality, period, start = data.values, data.quality, data.period, data.start
    end = None
    total = count = expected = 0
    low = high = None
    for i in range(len(values)):
        t = start + i * period
        if end is None or t >= end:
            if end is not None:
                _close(out, data.counter, total, count, expected, low, high)
            b_start, end = bucket(step, t, utc_offset_s)
            out.times.append(b_start)
            expected = -(-end // period) - (-(-b_start // period))   # grid points in the bucket
            total = count = 0
            low = high = None
        if quality[i] & Q_VALID:
            v = values[i]
            total += v
            count += 1
            if low is None or v < low:
                low = v
            if high is None or v > high:
                high = v
    _close(out, data.counter, total, count, expected, low, high)
    return out


def _close(out, counter, total, count, expected, low, high):
    if count == 0:
        out.values.append(None)
    else:
        out.values.append(total if counter else total / count)
    out.minimum.append(low)
    out.maximum.append(high)
    out.counts.append(count)
    out.expected.append(expected)


def _tagged(pieces, column, indexes):
    for piece in pieces:
        for t, value, q in (piece.index_points() if indexes else piece.points()):
            yield t, column, value, q


def iter_rows(piece_iterators, indexes=False):
    """Merge series (iterators of SeriesData pieces) into rows by timestamp.

    Yields (ts, cells) with one cell per series: (value or None, quality
    name), or None where that series has no interval starting at ts.
    ``indexes``: counter series give their index at the end of each point.
    """
    width = len(piece_iterators)
    merged = heapq.merge(*[_tagged(pieces, column, indexes) for column, pieces in enumerate(piece_iterators)])
    row_ts = None
    cells = None
    for t, column, value, q in merged:
        if t != row_ts:
            if cells is not None:
                yield row_ts, cells
            row_ts = t
            cells = [None] * width
        cells[column] = (value, quality_name(q))
    if cells is not None:
        yield row_ts, cells
