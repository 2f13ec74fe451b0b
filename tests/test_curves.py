"""Meter caches (simulated meters) and the gateway's curve download with back-fill."""

import asyncio

from board.base import ManualClock
from board.simmeter import SimMeter
from conftest import polled, running_gateway, topology_with, wait_for
from core import curve_windows as win
from core import registry
from core.curve_windows import decode_b30_items, decode_trend_items, decode_trend_settings
from daemon.runtime.curves import CurveService, series_name
from daemon.state.topology import devices_from_simulation
from daemon.storage.store import Q_ACCUMULATED, Q_BACKFILLED, Q_CLOCK_NOT_SET, Q_INCOMPLETE, Q_VALID
from daemon.storage.service import Storage
from daemon.storage.format import Geometry
from core import modbus_rtu as rtu

T = 1_700_002_800.0 - 1_700_002_800 % 3600          # an hour boundary
LC_PAGE = win.B30_HEADER_WORDS + win.B30_ITEMS * win.B30_ITEM_WORDS


# ---------------------------------------------------------------- simulated windows (no bus)


def test_b30_window_serves_pages_of_the_meter_ring_and_refuses_bad_commands():
    clock = ManualClock(T + 1)
    meter = SimMeter("I-35", 4, 0xDC85E9, clock, loads=3, nominal_w=45000)
    clock.advance(6 * 3600)                                      # 36 records of 10 min per load
    held = meter.curves.load_curve(2, "lc_q_pos")
    assert len(held) == 36 and held[0][1] == 3 and held[1][1] == 2   # incomplete first period, clock not set
    assert [end for end, _f, _v in held] == [T + 600 * (k + 1) for k in range(36)]
    assert meter.write_registers(win.B30_COMMAND, [win.LAST_RECORD, 1, 2]) == 0
    words = meter.read_registers(win.B30_HEADER, LC_PAGE)
    header = words[:win.B30_HEADER_WORDS]
    numerator, denominator = header[6], header[7]
    assert header[:6] == [2, win.B30_ITEMS, 4, 1, 2, 600]          # newest page is record 1: next is 2
    items = decode_b30_items(words[win.B30_HEADER_WORDS:])
    assert [(end, flag, raw * numerator / denominator) for end, flag, raw in items] == held[24:]
    assert meter.write_registers(win.B30_COMMAND, [0, 1, 2]) == 0
    items = decode_b30_items(meter.read_registers(win.B30_HEADER, LC_PAGE)[win.B30_HEADER_WORDS:])
    assert [(end, flag, raw * numerator / denominator) for end, flag, raw in items] == held[:24]
    assert meter.write_registers(win.B30_COMMAND, [5, 1, 2]) == 0   # beyond the newest: empty items
    assert decode_b30_items(meter.read_registers(win.B30_HEADER, LC_PAGE)[win.B30_HEADER_WORDS:]) == []
    # bad commands change nothing
    assert meter.write_registers(win.B30_COMMAND, [0, 3, 0]) == rtu.ILLEGAL_DATA_VALUE     # no 4th load
    assert meter.write_registers(win.B30_COMMAND, [0, 0, 5]) == rtu.ILLEGAL_DATA_VALUE     # no 6th power type
    assert meter.write_registers(win.B30_COMMAND, [0, 0]) == rtu.ILLEGAL_DATA_ADDRESS      # partial command
    assert meter.read_registers(win.B30_COMMAND, 3) == [5, 1, 2]
    assert meter.read_registers(win.B30_HEADER, LC_PAGE + 1) == rtu.ILLEGAL_DATA_ADDRESS
    # a module without a load-curve cache has no such window
    u30 = SimMeter("U-30", 11, 0xD5038A, clock)
    assert u30.read_registers(win.B30_HEADER, LC_PAGE) == rtu.ILLEGAL_DATA_ADDRESS
    e23 = SimMeter("E23", 21, 0xE23001, clock)
    assert e23.read_registers(win.A14_HEADER, 6) == rtu.ILLEGAL_DATA_ADDRESS
    assert e23.write_registers(win.A14_COMMAND, [win.A14_RESET]) == rtu.ILLEGAL_DATA_ADDRESS


def test_a14_window_drains_a_read_pointer_per_power_type():
    clock = ManualClock(T + 1)
    meter = SimMeter("A-40", 20, 0xA40001, clock, nominal_w=60000)
    clock.advance(6 * 3600)
    held = meter.curves.load_curve(1, "lc_s")
    size = win.A14_HEADER_WORDS + win.A14_ITEMS * 4

    def batch():
        words = meter.read_registers(win.A14_HEADER, size)
        header = words[:win.A14_HEADER_WORDS]
        items = decode_b30_items(words[win.A14_HEADER_WORDS:], header[0])
        return header, [(end, flag, raw * header[4] / header[5]) for end, flag, raw in items]

    assert meter.write_registers(win.A14_COMMAND, [win.A14_SELECT + 4]) == 0          # S
    header, items = batch()
    assert header[:4] == [29, 4, 10, 4] and items == held[:29]                        # 29 x 10 min, VA
    assert batch()[1] == held[:29]                           # read again: same batch until acknowledged
    assert meter.write_registers(win.A14_COMMAND, [win.A14_NEXT]) == 0
    assert batch()[1] == held[29:]
    clock.advance(600)                                       # one more record arrives meanwhile ...
    assert meter.write_registers(win.A14_COMMAND, [win.A14_NEXT]) == 0   # ... the ack covers what was read
    assert batch()[1] == meter.curves.load_curve(1, "lc_s")[36:]
    assert meter.write_registers(win.A14_COMMAND, [win.A14_SELECT + 0]) == 0          # P+ has its own pointer
    assert batch()[0][0] == 29
    assert meter.write_registers(win.A14_COMMAND, [0x1234]) == rtu.ILLEGAL_DATA_VALUE
    assert meter.write_registers(win.A14_COMMAND, [1, 2]) == rtu.ILLEGAL_DATA_ADDRESS


def test_trend_log_items_are_registry_measurements_at_the_gateway_scale():
    clock = ManualClock(T + 1)
    meter = SimMeter("I-35", 4, 0xDC85E9, clock, loads=3, nominal_w=45000)
    clock.advance(3 * 3600)
    words = meter.read_registers(win.TREND_SETTINGS, win.TREND_SLOTS * win.TREND_SETTING_WORDS)
    items = decode_trend_settings(words)
    assert len(items) == 12 and items[0] == (0, "v1", 1) and (4, "q", 1) in items
    assert all(registry.get(key) for _slot, key, _load in items)
    slot = [s for s, key, load in items if (key, load) == ("p", 2)][0]
    assert meter.write_registers(win.TREND_COMMAND, [win.LAST_RECORD, slot]) == 0
    page = meter.read_registers(win.TREND_HEADER, win.TREND_HEADER_WORDS + win.TREND_ITEMS * 4)
    assert page[1:4] == [win.TREND_ITEMS, 4, 10]
    got = [(end, registry.from_gateway_raw("p", raw))
           for end, raw in decode_trend_items(page[win.TREND_HEADER_WORDS:])]
    assert got == meter.curves.trend_values("p", 2)[:18]    # 18 records so far, one page of 20
    end, average = got[-1]                                   # the period's average of the meter's model
    model = sum(meter.loads[1].power(end - 600 + k) for k in range(600)) / 600.0
    assert abs(average - model) < 0.03 * model
    assert meter.write_registers(win.TREND_COMMAND, [0, 12]) == rtu.ILLEGAL_DATA_VALUE
    # a U-30 logs its network voltages, at load 0
    u30 = SimMeter("U-30", 11, 0xD5038A, clock)
    u_items = decode_trend_settings(u30.read_registers(win.TREND_SETTINGS, 36))
    assert [(key, load) for _s, key, load in u_items][:3] == [("v1", 0), ("v2", 0), ("v3", 0)]


# ---------------------------------------------------------------- download and back-fill (real bus)

DIGIWARE = [{"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 3, "nominal_w": 45000},
            {"reference": "U-30", "address": 11, "netid": "D5038A"}]
RS485 = [{"reference": "A-40", "address": 20, "netid": "A40001", "nominal_w": 60000},
         {"reference": "E23", "address": 21, "netid": "E23001", "nominal_w": 9000}]
OVERRIDES = {"poll.min_cycle_ms": 300, "poll.backoff_max_s": 1}
CUT = (0xDC85E9, 0xA40001)
# Series are keyed by Device.uid: the NET ID, or reference + serial number for the A-40 and the E23, which
# have none (their simulated serial comes from the handle: A40001 -> A4000100 + order 00001)
A40_KEY, E23_KEY = "A-40-A400010000001", "E23-E230010000001"


def stored(storage, name):
    data = storage.store.read(name, 0, 2 ** 40)
    return [(t, v, q) for t, v, q in data.points() if q & Q_VALID]


def test_a_six_hour_cut_is_back_filled_from_the_meters_caches(tmp_path):
    clock = ManualClock(T + 1)
    geometry = Geometry(256, 8784, segments=8, segment_bytes=1 << 20)
    topology = topology_with(DIGIWARE, RS485, baud=115200)
    overrides = dict((d.uid, 10) for d in devices_from_simulation(topology))   # consumption every 10 min

    async def step(gateway, seconds):
        clock.advance(seconds)
        await polled(gateway)
        await gateway.curves.cycle()        # the gateway's own service; its lock serialises the background pass

    async def scenario():
        async with running_gateway(tmp_path, topology, OVERRIDES, clock, storage_geometry=geometry,
                                   curve_overrides=overrides) as gw:
            await gw.topology.replace(devices_from_simulation(topology))
            await polled(gw)
            storage, curves = gw.storage, gw.curves
            await curves.cycle()                                          # consumption baselines
            first_index = gw.cache.get(4, 1, "ea_pos").value
            first_e23 = gw.cache.get(21, 1, "ea_pos").value
            for _ in range(6):                                            # one hour, all answering
                await step(gw, 600)
            # a poll missed on a loaded machine before the cut is a (short) cut of its own: counted, to be allowed for
            false_cuts = sum(1 for r in gw.alarms.events() if r.get("event") == "raised" and r.get("alarm") == 3
                             and r.get("source") == "digiware:4")
            for netid in CUT:                                             # six hours without them
                gw.board.configure_meter(netid, silent=True)
            await wait_for(lambda: gw.cache.comm_lost(4) and gw.cache.comm_lost(20))
            for _ in range(12):
                await step(gw, 1800)
            for netid in CUT:
                gw.board.configure_meter(netid, silent=False)
            await wait_for(lambda: not gw.cache.comm_lost(4) and not gw.cache.comm_lost(20))
            await step(gw, 610)                                           # answers again: back-fill
            await step(gw, 600)
            last_index = gw.cache.get(4, 1, "ea_pos").value
            end = clock.time()
            assert curves.status()["devices"]["DC85E9"]["failures"] == 0

            # load curves: no gap, and exactly what the meters hold
            for address, netid, loads in ((4, "DC85E9", (1, 2, 3)), (20, A40_KEY, (1,))):
                meter = gw.board.find_meter(address=address)
                for load in loads:
                    for key in win.POWER_TYPES:
                        held = meter.curves.load_curve(load, key)
                        assert held[-1][0] >= end - 600 - 10                # up to the last complete period
                        got = stored(storage, series_name("load_curve", netid, load, key))
                        assert [(t, v) for t, v, _q in got] == [(e - 600, v) for e, _f, v in held], (netid, key)
                        flags = [q for _t, _v, q in got]
                        assert all(q & Q_CLOCK_NOT_SET for q in flags) and flags[0] & Q_INCOMPLETE
                        cut_start = T + 1 + 3600
                        assert all(q & Q_BACKFILLED for t, _v, q in got if cut_start + 1800 < t < end - 7200)
            # histories: every trend item of every meter that keeps one
            for address, netid in ((4, "DC85E9"), (20, A40_KEY), (11, "D5038A")):
                meter = gw.board.find_meter(address=address)
                for key, load in meter.curves.trend_items:
                    got = stored(storage, series_name("history", netid, load, key))
                    held = meter.curves.trend_values(key, load)
                    assert [(t, round(v, 3)) for t, v, _q in got] == [(e - 600, round(v, 3)) for e, v in held]
            # consumption: read by the gateway itself, so the cut stays a gap, but the
            # first reading after it carries everything consumed meanwhile
            name = series_name("consumption", "DC85E9", 1, "ea_pos")
            got = stored(storage, name)
            accumulated = [(t, q) for t, _v, q in got if q & Q_ACCUMULATED]
            after_cut = [(t, q) for t, q in accumulated if t > T + 6 * 3600]
            assert len(after_cut) == 1 and len(accumulated) - 1 <= false_cuts, (accumulated, false_cuts)
            assert abs(sum(v for _t, v, _q in got) - (last_index - first_index)) <= 1.0
            assert storage.store.last_index(name) == last_index
            # a meter that always answered: one point per 10-min boundary the gateway saw
            # (the clock jumped 30 min at a time during the cut: those carry 3 intervals)
            steady = stored(storage, series_name("consumption", E23_KEY, 1, "ea_pos"))
            assert [(t, q) for t, _v, q in steady[:6]] == [(T + 600 * k, Q_VALID) for k in range(6)]
            assert all(q == Q_VALID | Q_ACCUMULATED for _t, _v, q in steady[6:18])
            assert abs(sum(v for _t, v, _q in steady) - (gw.cache.get(21, 1, "ea_pos").value - first_e23)) <= 1.0
            # I-35: 3 x 5 consumption + 3 x 5 load curves + 12 trends; U-30: 10 trends;
            # 4 consumption + 5 load curves + 10 trends; E23: 5 consumption
            assert storage.status()["series"] == len(storage.store.series()) == 42 + 10 + 19 + 5

            # a gateway restart keeps counting from the stored index: no lost interval
            await curves.stop()
            await storage.stop()
            gw.storage = Storage(str(tmp_path / "tsdb"), gw.settings, gw.clock, geometry=geometry)
            await gw.storage.start()
            gw.curves = CurveService(gw.parts, gw.storage, overrides)          # not started: the test drives it
            assert gw.storage.status()["recovery"]["clean_shutdown"]
            before = gw.cache.get(21, 1, "ea_pos").value
            await step(gw, 600)
            after = gw.cache.get(21, 1, "ea_pos").value
            last = stored(gw.storage, series_name("consumption", E23_KEY, 1, "ea_pos"))[-1]
            assert last[2] == Q_VALID and abs(last[1] - (after - before)) <= 0.5

    asyncio.run(scenario())


def test_a_new_consumption_period_applies_from_the_next_boundary_of_its_own_grid(tmp_path):
    """storage.consumption_period_min (SPEC §4: 10-60 min) changes live: 60 -> 15 -> 60 min.

    The first point after each change starts on a boundary of the new period and carries exactly the
    energy consumed since the last reading (none counted twice, none lost); the series changes period,
    so, as docs/storage.md says, its points start anew (counted in series_resets)."""
    clock = ManualClock(T + 1)
    geometry = Geometry(64, 8784, segments=8, segment_bytes=1 << 20)
    topology = topology_with((), [RS485[1]], baud=115200)                  # the COUNTIS E23: consumption only

    async def step(gateway, seconds):
        clock.advance(seconds)
        await polled(gateway)
        await gateway.curves.cycle()

    async def scenario():
        async with running_gateway(tmp_path, topology, OVERRIDES, clock, storage_geometry=geometry) as gw:
            await gw.topology.replace(devices_from_simulation(topology))
            await polled(gw)
            storage = gw.storage
            await gw.curves.cycle()                                       # baseline at T (60 min by default)
            await step(gw, 3600)                                          # T + 3601: the hour [T, T+3600)
            (device_key,) = gw.curves.states                            # the E23's key in series names
            name = series_name("consumption", device_key, 1, "ea_pos")
            hourly = stored(storage, name)
            assert [(t, q) for t, _v, q in hourly] == [(T, Q_VALID)]
            series = [n for n in storage.store.series() if n.startswith("consumption/")]
            resets = storage.store.stats["series_resets"]

            index = gw.cache.get(21, 1, "ea_pos").value
            await gw.settings.set_many({"storage.consumption_period_min": 15})
            await gw.curves.cycle()                                       # T+3600 is this grid's boundary too
            assert stored(storage, name) == hourly
            await step(gw, 900)                                           # T + 4501
            await step(gw, 900)                                           # T + 5401
            quarter = stored(storage, name)
            assert [(t, q) for t, _v, q in quarter] == [(T + 3600, Q_VALID), (T + 4500, Q_VALID)]
            assert storage.store.read(name, 0, 2 ** 40).period == 900
            now_index = gw.cache.get(21, 1, "ea_pos").value
            assert abs(sum(v for _t, v, _q in quarter) - (now_index - index)) <= 1.0
            assert storage.store.stats["series_resets"] == resets + len(series)

            await gw.settings.set_many({"storage.consumption_period_min": 60})
            await gw.curves.cycle()                                       # T+5401: inside the hour T+3600..
            await step(gw, 1800)                                          # T + 7201: the hour's end
            back = stored(storage, name)
            assert [t for t, _v, _q in back] == [T + 3600]                # on the hour grid again
            assert storage.store.read(name, 0, 2 ** 40).period == 3600
            assert abs(back[0][1] - (gw.cache.get(21, 1, "ea_pos").value - now_index)) <= 1.0
    asyncio.run(scenario())
