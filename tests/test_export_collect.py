"""The collector on a gateway with simulated meters (ManualClock-driven, as tests/test_curves.py does).

One gateway for the module: ``site`` runs the scenario once and keeps what the tests check (the rendered files,
what the store holds, what the simulated meters themselves recorded or counted). The files are read back by a
parser written from the manuals' annexes (tests/test_export_formats.py), not by outbound/export/formats.py.
"""

import asyncio
import os
import re
import time

import pytest

from board.base import ManualClock
from conftest import polled, running_gateway, topology_with
from daemon import i18n
from daemon.runtime.curves import series_name
from daemon.security.rights import Caller
from daemon.state.topology import devices_from_simulation
from daemon.storage.format import Q_CLOCK_NOT_SET, Q_VALID, Geometry
from daemon.storage.store import Series, TimeSeriesStore
from outbound.export.collect import Collector, SiteNotNamed
from test_export_formats import parse_csv, parse_ems, utc

T = 1_700_002_800.0 - 1_700_002_800 % 3600          # an hour boundary
DIGIWARE = [{"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 3, "nominal_w": 45000},
            {"reference": "U-30", "address": 11, "netid": "D5038A"}]
OVERRIDES = {"poll.min_cycle_ms": 300, "poll.backoff_max_s": 1}
FILE_NAME = re.compile(r"^(?P<site>[A-Za-z0-9@.+-]+)_(?P<server>[A-Za-z0-9@.+-]+)_(?P<device>[A-Za-z0-9@.+-]+)_"
                       r"(?P<type>Index|Avg|LoadCurve)_(?P<date>\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d)\.csv$")
ENERGY_KEYS = ("ea_pos", "ea_neg", "er_pos", "er_neg", "es")
OPC_GOOD, OPC_UNCERTAIN, OPC_UNCERTAIN_SUBNORMAL = 192, 64, 88


def read_text(files):
    out = {}
    for f in files:
        with open(f.path, encoding="utf-8", newline="") as handle:
            out[f.name] = handle.read()
    return out


def stored(store, name):
    data = store.read(name, 0, 2 ** 40)
    indexes = data.indexes or [None] * len(data)
    return [(t, v, q, i) for (t, v, q), i in zip(data.points(), indexes, strict=True)]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    base = tmp_path_factory.mktemp("export")
    clock = ManualClock(T + 1)
    geometry = Geometry(96, 2000, segments=4, segment_bytes=1 << 20)
    topology = topology_with(DIGIWARE, (), baud=115200)
    overrides = {"DC85E9": 10, "D5038A": 10}                             # consumption every 10 min
    out = {"meter_index": {}}

    async def step(gw, seconds, meter):
        clock.advance(seconds)
        await polled(gw)
        await gw.curves.cycle()
        boundary = int(clock.time() // 600) * 600
        out["meter_index"][boundary] = dict(((load, key), meter.values(load)[key])
                                            for load in (1, 2, 3) for key in ENERGY_KEYS)

    async def scenario():
        async with running_gateway(base / "state", topology, OVERRIDES, clock, storage_geometry=geometry,
                                   curve_overrides=overrides) as gw:
            await gw.topology.replace(devices_from_simulation(topology))
            await polled(gw)
            await gw.curves.cycle()                                      # consumption baselines
            i35 = gw.board.find_meter(address=4)
            for _ in range(6):
                await step(gw, 600, i35)
            door = gw.door(Caller("push"))
            out["netid"] = door.identity()["netid"]
            tmp1, tmp2 = str(base / "tmp1"), str(base / "tmp2")
            os.makedirs(tmp1)
            os.makedirs(tmp2)
            collector = Collector(door, tmp1)

            # EMS with the default site name: nothing rendered
            await gw.settings.set_many({"push.format": "ems"})
            try:
                await collector.render("load_curves", clock.time(), clock.time())
            except SiteNotNamed as exc:
                out["site_not_named"] = not os.listdir(tmp1)
                out["site_not_named_text"] = (str(exc), exc.text, door.alarm_active())
            await gw.settings.set_many({"push.site_name": "socomec", "push.schedule.load_curves.mode": "every",
                                        "push.schedule.load_curves.every_min": 30})

            # load curves (EMS): two renders + commits around three more steps; one render not committed
            now1 = clock.time()
            first = await collector.render("load_curves", now1, now1)
            out["lc_first"], out["lc_first_text"] = first, read_text(first)
            await collector.commit(first)
            out["lc_again_empty"] = await collector.render("load_curves", now1, now1)
            for _ in range(3):
                await step(gw, 600, i35)
            now2 = clock.time()
            uncommitted = await collector.render("load_curves", now2, now2)
            out["lc_uncommitted_text"] = read_text(uncommitted)
            second = await collector.render("load_curves", now2, now2)
            out["lc_second"], out["lc_second_text"] = second, read_text(second)
            await collector.commit(second)
            out["lc_held"] = dict(((load, key), i35.curves.load_curve(load, key))
                                  for load in (1, 2, 3) for key in ("lc_p_pos", "lc_p_neg", "lc_q_pos", "lc_q_neg",
                                                                    "lc_s"))
            out["lc_stored"] = dict(((load, key), stored(gw.storage.store,
                                                         series_name("load_curve", "DC85E9", load, key)))
                                    for load, key in out["lc_held"])

            # measurement histories (EMS), from a second collector over the same cursor file
            other = Collector(door, tmp2)
            histories = await other.render("measurements", now2, now2)
            out["hist"], out["hist_text"] = histories, read_text(histories)
            out["hist_held"] = {}
            for address, netid in ((4, "DC85E9"), (11, "D5038A")):
                meter = gw.board.find_meter(address=address)
                out["hist_held"][netid] = dict(((key, load), meter.curves.trend_values(key, load))
                                               for key, load in meter.curves.trend_items)
            out["hist_stored"] = dict((name, stored(gw.storage.store, name)) for name in gw.storage.store.series()
                                      if name.startswith("history/"))

            # energy indexes (CSV)
            await gw.settings.set_many({"push.format": "csv", "push.server_name": "E5C801"})
            energy = await other.render("energy", now2, now2)
            out["energy"], out["energy_text"] = energy, read_text(energy)
            out["energy_stored"] = dict(((load, key), stored(gw.storage.store,
                                                             series_name("consumption", "DC85E9", load, key)))
                                        for load in (1, 2, 3) for key in ENERGY_KEYS)

            # reconcile: a file still in the spool moves a cursor; an older one does not move it back
            third = Collector(door, tmp2)
            out["cursor_loaded"] = third.cursor("load_curves", "DC85E9")
            spooled = [{"data_type": "measurements", "device": "D5038A", "end": T + 1800},
                       {"data_type": "load_curves", "device": "DC85E9", "end": T}]
            out["reconciled"] = third.reconcile(spooled)
            out["after_reconcile"] = (third.cursor("measurements", "D5038A"), third.cursor("load_curves", "DC85E9"))
            out["reread"] = Collector(door, tmp2).cursor("measurements", "D5038A")
            out["after_reconcile_render"] = [f for f in await third.render("measurements", now2, now2)
                                             if f.device == "D5038A"]
            out["now1"], out["now2"] = now1, now2
    asyncio.run(scenario())
    return out


def quality_of(flags):
    """The meters' item flags (core/curve_windows: 1 incomplete, 2 clock not set) as the manual's OPC codes."""
    return OPC_UNCERTAIN_SUBNORMAL if flags & 1 else OPC_UNCERTAIN if flags & 2 else OPC_GOOD


def test_ems_with_site_named_site_renders_nothing(site):
    assert site["site_not_named"] is True
    message, text, alarm = site["site_not_named_text"]
    assert "SITE" in message and text == {"key": "export.site_not_named", "params": {"site": "SITE"}}
    assert alarm is None                         # the collector renders; raising alarm 6 is the service's part
    for language, words in (("en", "nothing was exported"), ("fr", "rien n'a été exporté")):
        assert words in i18n.text(text["key"], language, **text["params"])


def test_load_curves_are_the_meters_own_points_in_two_adjacent_files(site):
    (first,), (second,) = site["lc_first"], site["lc_second"]        # the I-35 only: the U-30 keeps none
    assert first.device == second.device == "DC85E9" and first.data_type == "load_curves"
    assert first.end == second.start                                  # adjacent: no gap, no overlap
    assert first.start == T and second.end <= site["now2"]
    rows = {}
    keys = None
    for f in (first, second):
        head, keys, data = parse_ems(site["lc_first_text" if f is first else "lc_second_text"][f.name])
        assert head["Data Type"] == "LoadCurve" and head["Site name"] == "socomec"
        assert head["Transfer Cycle (sec)"] == "1800" and head["TimeZone"] == "UTC"
        assert len(data) == f.rows
        for index, date, value, quality in data:
            key = (index, date)
            assert key not in rows                                   # no duplicate across the two files
            rows[key] = (int(value), int(quality))
            assert f.start <= utc(date) < f.end
    assert len(keys) == 15
    for k in keys:
        assert re.match(r"^(P\+|P-|Q\+|Q-|S) of Load [123] of I-35@4 - DC85E9$", k["Name"]), k["Name"]
        assert k["Key"] == "socomec|%s|4|%s|ANA|%s" % (site["netid"], k["Index"], k["Data Id"])
        load, key = int(k["Index"]), {"12200": "lc_p_pos", "12201": "lc_p_neg", "12202": "lc_q_pos",
                                      "12203": "lc_q_neg", "12204": "lc_s"}[k["Data Id"]]
        held = site["lc_held"][(load, key)]
        exported = sorted((utc(d), v, q) for (i, d), (v, q) in rows.items() if i == k["Index Key"])
        # the simulated meter's own records (stamped at their end; the file at the interval's start)
        assert exported == [(end - 600, round(v), quality_of(flags)) for end, flags, v in held
                            if end - 600 < second.end]
        assert [(t, round(v)) for t, v, q, _i in site["lc_stored"][(load, key)] if q] == \
            [(t, v) for t, v, _q in exported]
    assert {q for _v, q in rows.values()} == {OPC_UNCERTAIN, OPC_UNCERTAIN_SUBNORMAL}   # clocks not set


def test_a_render_not_committed_is_rendered_the_same_and_nothing_new_gives_no_file(site):
    assert site["lc_uncommitted_text"] == site["lc_second_text"]
    assert site["lc_again_empty"] == []


def test_file_names_follow_the_pattern(site):
    names = [f.name for key in ("lc_first", "lc_second", "hist", "energy") for f in site[key]]
    assert len(names) == 5
    for name in names:
        match = FILE_NAME.match(name)
        assert match, name
        assert match.group("site") == "socomec"
        when = site["now1"] if name == site["lc_first"][0].name else site["now2"]      # the export time (UTC+0)
        assert match.group("date") == time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(when))
    assert {FILE_NAME.match(n).group("device") for n in names} == {"I-35@4-DC85E9", "U-30@11-D5038A"}
    assert FILE_NAME.match(site["energy"][0].name).group("server") == "E5C801"
    assert FILE_NAME.match(site["hist"][0].name).group("server") == site["netid"]


def test_histories_are_the_meters_trend_logs_at_the_manuals_coefficients(site):
    assert sorted(f.device for f in site["hist"]) == ["D5038A", "DC85E9"]
    for f in site["hist"]:
        head, keys, data = parse_ems(site["hist_text"][f.name])
        assert head["Data Type"] == "Avg" and head["Transfer Cycle (sec)"] == "N/A"
        held = site["hist_held"][f.device]
        assert len(keys) == len(held) and len(data) == f.rows > 0
        for k in keys:
            key = [m for (m, load) in held if load == int(k["Index"]) and
                   series_name("history", f.device, load, m) in site["hist_stored"]
                   and _data_id(m) == int(k["Data Id"])][0]
            load = int(k["Index"])
            coef = int(k["Coef"])
            exported = sorted((utc(d), int(v), int(q)) for i, d, v, q in data if i == k["Index Key"])
            assert exported == [(end - 600, round(v * coef), OPC_GOOD) for end, v in held[(key, load)]
                                if end - 600 < f.end]
            assert f.end >= held[(key, load)][-1][0] - 1200       # only the interval not downloaded yet is left
            stored = site["hist_stored"][series_name("history", f.device, load, key)]
            assert [(t, round(v * coef)) for t, v, q, _i in stored if q] == [(t, v) for t, v, _q in exported]
            if k["Unit"] == "V":
                assert coef == 100
            if k["Unit"] == "A":
                assert coef == 1000


def _data_id(key):
    from core import registry
    return registry.get(key)[registry.DATA_ID]


def test_energy_indexes_are_the_meters_counters_in_wh_newest_first(site):
    (f,) = site["energy"]                                            # the U-30 counts no energy
    device, columns, data = parse_csv(site["energy_text"][f.name])
    assert device == {"Device name": "I-35@4 - DC85E9", "IP Address": "0.0.0.0", "Modbus Address": "4",
                      "Begin date": "2023-11-14T23:00:00", "End date": time.strftime("%Y-%m-%dT%H:%M:%S",
                                                                                     time.gmtime(f.end))}
    assert f.start == T
    assert [c["Measured value"] for c in columns] == ["EA+", "EA-", "ER+", "ER-", "ES"] * 3
    assert [c["Load Name"] for c in columns] == ["Load 1"] * 5 + ["Load 2"] * 5 + ["Load 3"] * 5
    assert {c["Unit"] for c in columns[:2]} == {"Wh"} and {c["Nature"] for c in columns} == {"Elec"}
    assert {c["Scale"] for c in columns} == {"1.0000000"} and {c["Usage"] for c in columns} == {"Undefined"}
    stamps = [utc(d) for d, _v in data]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == len(stamps) == f.rows == 9
    order = [(load, key) for load in (1, 2, 3) for key in ENERGY_KEYS]
    for date, values in data:
        boundary = utc(date)                                          # an index is stamped when it was read
        meter = site["meter_index"][boundary]
        for (load, key), written in zip(order, values, strict=True):
            # the meter's own counter, as its registers show it: kWh + 10 Wh steps (board/simregisters.py)
            assert -2 <= meter[(load, key)] - int(written) < 12, (date, load, key)
            point = [i for t, _v, q, i in site["energy_stored"][(load, key)] if t + 600 == boundary and q]
            assert point and int(written) == round(point[0])
    assert utc(data[0][0]) == f.end and utc(data[-1][0]) == f.start + 600


def test_cursors_persist_and_reconcile_with_the_spool(site):
    assert site["cursor_loaded"] == site["lc_second"][0].end
    assert site["reconciled"] is True
    assert site["after_reconcile"] == (T + 1800, site["lc_second"][0].end)     # never back
    assert site["reread"] == T + 1800                                         # written at once
    (f,) = site["after_reconcile_render"]
    assert f.start == T + 1800


def test_the_store_exports_indexes_newest_first_window_by_window(tmp_path):
    """What render_series reads: the store's rows reversed in bounded windows, counters as their indexes."""
    store = TimeSeriesStore(str(tmp_path), Geometry(16, 2000, segments=4, segment_bytes=1 << 16))
    energy, power = Series("consumption/X/1/ea_pos", 600, counter=True), Series("load_curve/X/1/lc_s", 300)
    index, expected = 5000.0, {}
    for n in range(1500):
        if n != 700:                                                   # one interval missed: a gap
            index += n % 7
            store.add(energy, T + 600 * n, float(n % 7), Q_VALID, index)
            expected[T + 600 * n] = index
        store.add(power, T + 600 * n, float(n))
        store.add(power, T + 600 * n + 300, float(-n), Q_VALID | Q_CLOCK_NOT_SET)
    store.commit()
    names = [energy.name, power.name]
    start, end = T + 600 * 100, T + 600 * 1400 + 300
    forward = list(store.export(names, start, end, indexes=True))
    rows = store.export(names, start, end, indexes=True, newest_first=True)
    assert not isinstance(rows, list)                                   # a stream, not the range in memory
    backward = list(rows)
    assert backward == forward[::-1] and len(backward) == 400 + 2 * 900 + 1     # the 300-s ring holds 2000 points
    assert backward[0] == (T + 600 * 1400, [(expected[T + 600 * 1400], "good"), (1400.0, "good")])
    assert backward[1][1] == [None, (-1399.0, "clock_not_set")]
    by_time = dict(backward)
    assert by_time[T + 600 * 700][0] == (None, "missing")               # the gap: no index, quality missing
    assert all(by_time[t][0] == (i, "good") for t, i in expected.items() if start <= t < end)
    assert [r[1][0] for r in store.export([energy.name], start, start + 1200)] == [(2.0, "good"), (3.0, "good")]
    assert list(store.export(names, end, end, newest_first=True)) == []
