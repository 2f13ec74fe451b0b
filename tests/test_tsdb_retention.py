"""Retention: 13 months of 60-min data for the 32-device reference site, straight
into the store (simulated time, no bus, no sleeping)."""

import array
import calendar
import os

from board.base import ManualClock
from board.sim import load_topology_file
from board.simcurves import CurveCache
from board.simmeter import SimMeter
from conftest import REFERENCE_TOPOLOGY
from core import catalogue
from daemon.storage import format as fmt
from daemon.runtime.curves import series_name
from daemon.state.topology import devices_from_simulation
from daemon.storage.store import CONSUMPTION_KEYS, LOAD_CURVE_KEYS, Series, TimeSeriesStore, geometry_from_settings

HOUR = 3600
START = calendar.timegm((2023, 3, 1, 0, 0, 0))      # month 1 = March 2023
KEPT = calendar.timegm((2023, 4, 1, 0, 0, 0))       # months 2..13 = April 2023 .. March 2024 (366 days)
END = calendar.timegm((2024, 4, 1, 0, 0, 0))        # 13 months later


def reference_devices():
    devices = devices_from_simulation(load_topology_file(REFERENCE_TOPOLOGY))
    assert len(devices) == 32
    return devices


def reference_series():
    """Every series the curve service keeps for the reference site (hourly)."""
    out = []
    for device in reference_devices():
        row = catalogue.product(device.reference)
        for load in device.load_numbers():
            mapping = catalogue.measurement_map(device.reference, load, device.network(load))
            for key in CONSUMPTION_KEYS:
                if key in mapping:
                    out.append(Series(series_name("consumption", device.uid, load, key), HOUR, counter=True))
            if load >= 1 and "load_curve" in row[catalogue.CURVES]:
                out += [Series(series_name("load_curve", device.uid, load, key), HOUR) for key in LOAD_CURVE_KEYS]
        if "history" in row[catalogue.CURVES]:
            meter = SimMeter(device.reference, device.address, device.address, ManualClock(START),
                             loads=len(device.loads) or None)
            for key, load in CurveCache(meter).trend_items:
                out.append(Series(series_name("history", device.uid, load, key), HOUR))
    return out


def value(column, n):
    """Exact in float32: what series ``column`` holds at hour number ``n``."""
    return float((n * 7 + column * 131) % 1000003)


def test_thirteen_months_keep_the_newest_twelve_in_a_file_that_never_changes_size(tmp_path):
    series = reference_series()
    assert 600 < len(series) <= geometry_from_settings(None).slots
    store = TimeSeriesStore(str(tmp_path), geometry_from_settings(None))
    created = os.stat(store.path)
    assert created.st_size == store.geometry.file_size and created.st_blocks * 512 >= created.st_size
    ts = START
    while ts < END:
        n = ts // HOUR
        store.add_row(series, ts, [value(c, n) for c in range(len(series))])
        ts += HOUR
        if (ts - START) % 86400 == 0:
            store.commit()                       # one commit a day keeps the test fast
    store.commit()
    for reopened in (False, True):
        if reopened:
            store.close()
            store = TimeSeriesStore(str(tmp_path), geometry_from_settings(None))
            assert store.recovery["clean_shutdown"] and store.recovery["bad_chunks"] == 0
        after = os.stat(store.path)
        assert (after.st_size, after.st_blocks) == (created.st_size, created.st_blocks)
        hours = (END - KEPT) // HOUR
        assert hours == store.geometry.points == 8784
        for column, s in enumerate(series):
            data = store.read(s.name, START, END)
            assert data.start == KEPT and len(data) == hours, s.name          # the newest 12 months
            assert data.valid_count() == hours
            expected = array.array("f", [value(column, n) for n in range(KEPT // HOUR, END // HOUR)])
            assert data.values == expected, s.name
            assert len(store.read(s.name, START, KEPT)) == 0                  # month 1 is gone
        # ... because month 13 was written over it: no chunk of the file still
        # holds a lap that ended before April 2023
        g = store.geometry
        first_kept_chunk = (KEPT // HOUR) // g.chunk_points
        slot = store.by_name[series[0].name].number
        for k in range(g.chunks):
            page = os.pread(store.fd, fmt.CHUNK_BYTES, g.chunk_offset(slot, k))
            number = fmt.decode_chunk(page, g.chunk_points)[2]
            assert number >= first_kept_chunk
        march_2024 = store.query([series[0].name], calendar.timegm((2024, 3, 1, 0, 0, 0)), END, "month")
        assert march_2024[series[0].name].quality(0) == "good"
    store.close()
