"""The Consumption page's sums (daemon/storage/consumption.py, issue 17), against brute-force sums of the points.

One grid shared by series of different periods, clipped to the period asked for; a bucket is good only when every
interval of it has its point; the non-measured point of a metered node is meter - measured children, per bucket.
"""

import array
import datetime

from daemon.storage.consumption import bucket_sums, grid, hierarchy_loads
from daemon.storage.format import Q_CLOCK_NOT_SET, Q_VALID
from daemon.storage.query import SeriesData

TZ = datetime.timezone(datetime.timedelta(hours=2))
START = int(datetime.datetime(2024, 3, 1, tzinfo=TZ).timestamp())       # a Friday, local midnight


def series(period, count, first=START, skip=()):
    data = SeriesData("s", period, True)
    values = array.array("f", [float(1 + i % 7) for i in range(count)])
    quality = bytearray((0 if i in skip else Q_VALID | (Q_CLOCK_NOT_SET if i % 5 == 0 else 0)) for i in range(count))
    data.fill(first, values, quality)
    return data


def brute(data, buckets):
    out = []
    for b0, b1 in buckets:
        inside = [(data.values[i], data.quality[i] & Q_VALID) for i in range(len(data.values))
                  if b0 <= data.start + i * data.period < b1]
        valid = [v for v, ok in inside if ok]
        slots = sum(1 for t in range(b0, b1) if t % data.period == 0)
        out.append((sum(valid) if valid else None,
                    "missing" if not valid else "good" if len(valid) == slots else "partial"))
    return out


def test_weeks_of_a_month_are_clipped_to_it_in_local_time():
    end = int(datetime.datetime(2024, 4, 1, tzinfo=TZ).timestamp())
    weeks = grid("week", START, end, 7200)
    assert weeks[0] == (START, int(datetime.datetime(2024, 3, 4, tzinfo=TZ).timestamp()))      # Fri-Sun only
    assert weeks[-1][1] == end and len(weeks) == 5
    assert all(weeks[k][1] == weeks[k + 1][0] for k in range(len(weeks) - 1))


def test_series_of_different_periods_share_the_grid_and_say_their_gaps():
    end = START + 3 * 86400
    buckets = grid("day", START, end, 7200)
    ten = series(600, 3 * 144, skip=range(150, 160))           # a gap on the second day
    hourly = series(3600, 60, first=START + 3600)              # starts an hour late, stops after 60 hours
    for data in (ten, hourly):
        sums, qualities = bucket_sums(data, buckets)
        assert list(zip(sums, qualities, strict=True)) == brute(data, buckets)
    assert bucket_sums(ten, buckets)[1] == ["good", "partial", "good"]
    assert bucket_sums(hourly, buckets)[1] == ["partial", "good", "partial"]


def test_a_metered_node_gives_its_children_and_the_non_measured_point():
    doc = [{"id": "h1", "name": "Site", "fluid": "electricity", "next": 4, "items": [
        {"id": 1, "kind": "node", "name": "Site", "parent": None, "meter": "4:1"},
        {"id": 2, "kind": "circuit", "parent": 1, "circuit": "4:2"},
        {"id": 3, "kind": "circuit", "parent": 1, "circuit": "4:3"}]}]
    got = {"4:1": ([100.0, 50.0, None], ["good", "partial", "missing"]),
           "4:2": ([30.0, None, None], ["good", "missing", "missing"]),
           "4:3": ([20.0, 5.0, None], ["good", "good", "missing"])}
    node, loads = hierarchy_loads(doc, "h1", 1, got)
    assert node["v"] == [100.0, 50.0, None]
    assert [load["id"] for load in loads] == ["item:2", "item:3", "unmeasured"]
    assert loads[2]["v"] == [50.0, 45.0, None]
    assert loads[2]["q"] == ["good", "partial", "missing"]
