"""Device alarms read from the meters' event logs: centralised, logged once, trapped.

The simulated meters log threshold alarms, logical alarms and injected
power-quality events / device alarms (board/simevents.py) in the event-log
window of core/meter_events.py; the gateway's reader (daemon/runtime/device_alarms.py)
fetches them over the simulated bus. Traps are received by net-snmp's
snmptrapd on loopback.
"""

import asyncio
import collections
import json
import os

import pytest

from board.base import ManualClock
from conftest import (demo_devices, demo_topology, http_json, keeping_event_log, running_gateway, service_door,
                      status_of, wait_for, web_login, web_server)
from core import meter_events as ev
from daemon.runtime.device_alarms import HISTORY_LOGGED
from daemon.state.topology import Device
from protocols.snmp.agent import SnmpService
from protocols.snmp.traps import TrapSender
from snmp_support import ENTERPRISE, Site, TrapReceiver

I35_AT_5, U30_AT_11, IO10_AT_15 = 0xDC85EA, 0xD5038A, 0xC0E45D
METER_ALARM, PQ_EVENT, ACTIVE_SYSTEM = ("%s.10.30.0.%d" % (ENTERPRISE, n) for n in (5, 6, 3))
OBJ = "%s.10.30.5.%%d.0" % ENTERPRISE
NUMBER, SOURCE, CRITICALITY, STATE, ADDRESS, LOAD, VALUE, DURATION = (OBJ % n for n in (1, 2, 4, 8, 9, 10, 12, 13))
RAISED, CLEARED, ACTIVE = "1", "2", "3"
T0 = 1_700_000_000.0


def _device_records(gateway, netid=None):
    return [r for r in gateway.alarms.events() if r.get("event") == "device-alarm"
            and (netid is None or r["netid"] == "%06X" % netid)]


# ---------------------------------------------------------------- the record convention


def test_records_round_trip_and_bad_records_are_refused():
    for kind, (name, _category, _stateful) in ev.KINDS.items():
        index = 1 if kind in (4, 5) else 17
        for start in (True, False):
            cause = ev.encode_cause(kind, start, 3, 2, index)
            words = ev.encode_item(70000, 753315200, cause, 10000, -1234, 5678)
            event = ev.decode_item(words, 70000)
            assert (event["kind"], event["start"], event["load"], event["criticality"], event["index"]) == \
                (name, start, 3, "critical", index)
            assert (event["key"], event["raw_value"], event["raw_reference"], event["datetime"]) == \
                ("i1", -1234, 5678, 753315200)
    good = ev.encode_item(5, 1, ev.encode_cause(1, True, 1, 1, 1), 10000, 1, 1)
    bad = {
        "kind 0": [5, 0, 1, 0x0841, 0, 10000, 0, 1, 0, 1],
        "kind 9": [5, 0, 1, 0x9841, 0, 10000, 0, 1, 0, 1],
        "index 0": [5, 0, 1, 0x1840, 0, 10000, 0, 1, 0, 1],
        "criticality 3": [5, 0, 1, 0x18C1, 0, 10000, 0, 1, 0, 1],
        "unknown dip type": [5, 0, 1, ev.encode_cause(4, True, 0, 0, 1) + 8, 0, 11000, 0, 1, 0, 1],
        "unknown service ID": [5, 0, 1, ev.encode_cause(1, True, 1, 1, 1), 0x7FFF, 0xFFFF, 0, 1, 0, 1],
        "short": good[:9],
    }
    for why, words in bad.items():
        with pytest.raises(ev.BadRecord):
            ev.decode_item(words, 5)
    with pytest.raises(ev.BadRecord):
        ev.decode_item(good, 6)                       # not the record asked for
    assert ev.decode_item(good, 5 + 65536)["rec"] == 5 + 65536


# ---------------------------------------------------------------- end to end, with traps


def test_meter_alarms_and_power_quality_events_reach_snmptrapd(tmp_path):
    """On a ManualClock: the test moves the gateway's time, so the trap period is counted exactly (one reminder
    per period), and every log is read when the test says (``look``) rather than after a wait."""
    clock = ManualClock(T0)
    period = 60

    async def body():
        async with TrapReceiver(tmp_path) as rx:
            settings = {"snmp.trap.host1": "127.0.0.1", "snmp.trap.port1": rx.port, "snmp.trap.period_s": period,
                        "alarms.check_s": 1}
            async with Site(tmp_path, settings, clock=clock) as s:
                board = s.gw.board

                async def look(netid):
                    """The gateway reads the meter's event log now (what its reader does every check_s)."""
                    meter, device, engine = _meter_and_device(s.gw, netid)
                    await s.gw.event_reader.check_device(engine, device)

                def count(trap, **where):
                    return rx.count(trap, **where)

                # Threshold alarms configured in the I-35 at 5: I1 of loads 1 and 2 above 1 mA (true at once).
                # Alarm 102 stays active to the end: its reminders show when the trap period has been served.
                slot_1, slot_2 = ({"slot": n, "load": n, "key": "i1", "op": ">", "threshold": 0.001,
                                   "criticality": "critical"} for n in (1, 2))
                board.configure_alarms(I35_AT_5, alarms=[slot_1, slot_2])
                await look(I35_AT_5)
                alarm_101 = {NUMBER: "101", ADDRESS: "5", LOAD: "1", SOURCE: "digiware:5:1"}
                alarm_102 = {NUMBER: "102", ADDRESS: "5", LOAD: "2", SOURCE: "digiware:5:2"}
                await wait_for(lambda: count(METER_ALARM, **dict(alarm_101, **{STATE: RAISED})) == 1
                               and count(METER_ALARM, **dict(alarm_102, **{STATE: RAISED})) == 1)
                trap = [vb for t, vb in rx.traps() if t == METER_ALARM and vb[NUMBER] == "101"][0]
                assert trap[CRITICALITY] == "3" and int(trap[VALUE]) > 1     # I1 in mA, the gateway scale
                # Re-sent once per trap period of the gateway's clock: two periods, two reminders each.
                for reminders in (1, 2):
                    clock.advance(period)
                    await wait_for(lambda: count(METER_ALARM, **dict(alarm_101, **{STATE: ACTIVE})) == reminders
                                   and count(METER_ALARM, **dict(alarm_102, **{STATE: ACTIVE})) == reminders)
                # While active it is a row of gwAlarmTable and of the status document.
                row = "%s.10.30.4.1.7.101.%s" % (ENTERPRISE, ".".join(str(b) for b in b"digiware:5:1"))
                rc, values, text = await s.get(s.v2c(), row)
                assert values[row] == '"measurement alarm"', text
                assert [a["alarm"] for a in status_of(s.gw)["device_alarms"]["list"]] == [101, 102]

                # A higher threshold: the meter ends alarm 101, the gateway sends the clear once. The clock
                # stood still since the last period: the clear comes after exactly those two reminders.
                board.configure_alarms(I35_AT_5, alarms=[dict(slot_1, threshold=100000), slot_2])
                await look(I35_AT_5)
                await wait_for(lambda: count(METER_ALARM, **dict(alarm_101, **{STATE: CLEARED})) == 1)
                assert count(METER_ALARM, **dict(alarm_101, **{STATE: ACTIVE})) == 2
                rc, values, text = await s.get(s.v2c(), row)
                assert values[row].startswith("No Such Instance")

                # A 120 ms dip to 180.5 V on V1, logged by the U-30 at 11.
                board.inject_event(U30_AT_11, kind="power_quality", index=1, key="v1", value=180.5,
                                   duration_ms=120)
                await look(U30_AT_11)
                dip = {NUMBER: "401", ADDRESS: "11", LOAD: "0"}
                await wait_for(lambda: count(PQ_EVENT, **dict(dip, **{STATE: CLEARED})) == 1)
                assert count(PQ_EVENT, **dict(dip, **{STATE: RAISED})) == 1
                assert count(PQ_EVENT, **dict(dip, **{STATE: CLEARED, DURATION: "120", VALUE: "18050"})) == 1

                # A logical alarm on input 2 of the IO-10 at 15.
                board.configure_alarms(IO10_AT_15, logical_inputs=[2])
                board.configure_meter(IO10_AT_15, inputs=0b10)
                await look(IO10_AT_15)
                logical = {NUMBER: "202", ADDRESS: "15"}
                await wait_for(lambda: count(METER_ALARM, **dict(logical, **{STATE: RAISED})) == 1)
                board.configure_meter(IO10_AT_15, inputs=0)
                await look(IO10_AT_15)
                await wait_for(lambda: count(METER_ALARM, **dict(logical, **{STATE: CLEARED})) == 1)

                # Two more periods: alarm 102 is reminded (so the re-sending ran at the new time), the ended
                # ones are not. Then 102 ends; its clear comes after everything sent before it.
                clock.advance(2 * period)
                await wait_for(lambda: count(METER_ALARM, **dict(alarm_102, **{STATE: ACTIVE})) == 3)
                board.configure_alarms(I35_AT_5, alarms=[])
                await look(I35_AT_5)
                await wait_for(lambda: count(METER_ALARM, **dict(alarm_102, **{STATE: CLEARED})) == 1)
                sent = collections.Counter((t, vb.get(NUMBER), vb.get(STATE)) for t, vb in rx.traps()
                                           if t in (METER_ALARM, PQ_EVENT))
                assert sent == {(METER_ALARM, "101", RAISED): 1, (METER_ALARM, "101", ACTIVE): 2,
                                (METER_ALARM, "101", CLEARED): 1, (METER_ALARM, "102", RAISED): 1,
                                (METER_ALARM, "102", ACTIVE): 3, (METER_ALARM, "102", CLEARED): 1,
                                (PQ_EVENT, "401", RAISED): 1, (PQ_EVENT, "401", CLEARED): 1,
                                (METER_ALARM, "202", RAISED): 1, (METER_ALARM, "202", CLEARED): 1}, sent
                # The event log holds each start and end once, with the meters' record numbers.
                records = _device_records(s.gw)
                seen = collections.Counter((r["netid"], r["rec"]) for r in records)
                assert seen and max(seen.values()) == 1
                assert sorted((r["alarm"], r["state"]) for r in records if r["alarm"] in (101, 102)) == [
                    (101, "end"), (101, "start"), (102, "end"), (102, "start")]
                assert [(r["alarm"], r["state"]) for r in records if r["alarm"] != 102] == [
                    (101, "start"), (101, "end"), (401, "start"), (401, "end"), (202, "start"), (202, "end")]
    asyncio.run(body())


# ---------------------------------------------------------------- direct reads: counts, losses, refusals

QUIET = {"alarms.check_s": 3600}        # the background reader looks once; the tests drive the rest


def device_traps(sender):
    """The device alarms a trap sender holds active (system alarms, the default passwords' among them, aside)."""
    return [key for key in sender.active if key[0] == "device alarm"]


def _meter_and_device(gateway, netid):
    meter = gateway.board.find_meter(netid=netid)
    device = [d for d in gateway.topology.devices if d.netid == "%06X" % netid][0]
    return meter, device, gateway.engines[device.bus]


async def _preset(gateway):
    await gateway.topology.replace(demo_devices())
    await wait_for(lambda: gateway.event_reader.status()["checks"] >= 5)   # every log looked at once


def test_an_idle_check_is_one_read_and_new_records_cost_a_page_each(tmp_path):
    async def body():
        async with running_gateway(tmp_path / "state", demo_topology(), QUIET) as gw:
            await _preset(gw)
            meter, device, engine = _meter_and_device(gw, U30_AT_11)
            reads, writes = meter.events.header_reads, meter.events.command_writes
            for _ in range(3):
                await gw.event_reader.check_device(engine, device)
            assert (meter.events.header_reads - reads, meter.events.command_writes - writes) == (3, 0)
            for _ in range(15):                       # 30 records: 3 pages of 12
                gw.board.inject_event(U30_AT_11, kind="power_quality", index=3, key="v2", value=0,
                                      duration_ms=2000)
            reads, writes = meter.events.header_reads, meter.events.command_writes
            await gw.event_reader.check_device(engine, device)
            assert (meter.events.header_reads - reads, meter.events.command_writes - writes) == (4, 3)
            assert len(_device_records(gw, U30_AT_11)) == 30
            assert gw.device_alarms.cursors[device.netid].next == meter.events.next_number == 30
            assert not gw.device_alarms.active
    asyncio.run(body())


def test_overwritten_records_are_counted_lost_and_bad_ones_refused(tmp_path):
    async def body():
        async with running_gateway(tmp_path / "state", demo_topology(), QUIET) as gw:
            await _preset(gw)
            meter, device, engine = _meter_and_device(gw, U30_AT_11)
            meter.events.records = collections.deque(meter.events.records, maxlen=16)
            for _ in range(20):                       # 40 records, the meter keeps the last 16
                gw.board.inject_event(U30_AT_11, kind="power_quality", index=2, key="v3", value=260.0,
                                      duration_ms=40)
            await gw.event_reader.check_device(engine, device)
            assert gw.device_alarms.counters["lost_records"] == 24
            assert len(_device_records(gw, U30_AT_11)) == 16
            assert any(r.get("event") == "device-log" and r.get("count") == 24 for r in gw.alarms.events())

            # A record that breaks the convention is refused and skipped; the next one still counts.
            with meter.lock:
                meter.events.records.append([40 & 0xFFFF, 0, 0, 0xF841, 0, 0, 0, 0, 0, 0])
                meter.events.next_number += 1
            gw.board.inject_event(U30_AT_11, kind="device", index=1, start=True, criticality="critical")
            await gw.event_reader.check_device(engine, device)
            assert gw.device_alarms.counters["refused_records"] == 1
            assert [a["name"] for a in gw.device_alarms.active_list()] == ["phase rotation"]
            assert gw.device_alarms.cursors[device.netid].next == 42

            # A page that is not the one asked for (another master moved the window) changes nothing.
            gw.board.inject_event(U30_AT_11, kind="device", index=1, start=False, criticality="critical")
            real_read = meter.events.read
            meter.events.read = lambda start, count: [w ^ 0x5 if i == 3 else w
                                                      for i, w in enumerate(real_read(start, count))]
            before = len(gw.alarms.events())
            await gw.event_reader.check_device(engine, device)
            assert gw.device_alarms.counters["refused_pages"] == 1
            assert gw.device_alarms.cursors[device.netid].next == 42 and len(gw.device_alarms.active) == 1
            assert [r["event"] for r in gw.alarms.events()[before:]] == ["device-log"]
            meter.events.read = real_read
            await gw.event_reader.check_device(engine, device)
            assert not gw.device_alarms.active and gw.device_alarms.cursors[device.netid].next == 43
    asyncio.run(body())


@pytest.mark.parametrize("cursor_file_lost", [False, True])
def test_a_restart_neither_repeats_nor_loses_a_record(tmp_path, cursor_file_lost):
    async def body():
        state = tmp_path / "state"
        async with running_gateway(state, demo_topology(), QUIET) as gw:
            await _preset(gw)
            gw.board.configure_alarms(I35_AT_5, alarms=[{"slot": 2, "load": 2, "key": "p", "op": ">",
                                                         "threshold": 1}])
            meter, device, engine = _meter_and_device(gw, I35_AT_5)
            for _ in range(3):
                gw.board.inject_event(I35_AT_5, kind="power_quality", index=4, load=2, key="i2", value=80.0,
                                      duration_ms=500)
            await wait_for(lambda: meter.events.next_number == 7)       # the alarm start + 3 x 2
            await gw.event_reader.check_device(engine, device)
            assert [a["alarm"] for a in gw.device_alarms.active_list()] == [102]
            log = meter.events
        # The gateway is off; the meter goes on logging.
        log.inject(log.meter.clock.time(), "power_quality", 1, load=0, key="v1", value=150.0, duration_ms=60)
        log.configure(alarms=[])                      # the slot is removed: its alarm ends
        if cursor_file_lost:                          # a cut between the event log write and the cursor's
            os.remove(state / "event-cursors.json")

        kept = keeping_event_log(log, I35_AT_5)
        async with running_gateway(state, demo_topology(), QUIET, prepare_board=kept) as gw:
            meter, device, engine = _meter_and_device(gw, I35_AT_5)
            await gw.event_reader.check_device(engine, device)
            records = _device_records(gw, I35_AT_5)
            assert sorted(r["rec"] for r in records) == list(range(10))
            assert not gw.device_alarms.active
    asyncio.run(body())


# ---------------------------------------------------------------- the simulation API and /api/alarms


def test_simulation_api_sets_alarms_and_refuses_bad_input(tmp_path):
    web = web_server()

    async def body():
        async with running_gateway(tmp_path / "state", demo_topology(), QUIET, services=[web]) as gw:
            await _preset(gw)
            base = "http://127.0.0.1:%d" % web.server.port          # bound to 0 by the server
            admin = await asyncio.to_thread(web_login, base, "admin")   # the simulation routes need Admin
            meter, device, engine = _meter_and_device(gw, I35_AT_5)
            slot = {"slot": 3, "load": 1, "key": "i1", "op": ">", "threshold": 0.001}
            refused = [
                ("/api/sim/meters/DC85EA/alarms", {"alarms": [dict(slot, key="nope")]}, 400),
                ("/api/sim/meters/DC85EA/alarms", {"alarms": [dict(slot, op="=")]}, 400),
                ("/api/sim/meters/DC85EA/alarms", {"alarms": [dict(slot, load=9)]}, 400),
                ("/api/sim/meters/DC85EA/alarms", {"alarms": [dict(slot, colour="red")]}, 400),
                ("/api/sim/meters/DC85EA/alarms", {"alarms": "all"}, 400),
                ("/api/sim/meters/DC85EA/alarms", {"logical_inputs": [1]}, 400),       # an I-35 has none
                ("/api/sim/meters/ABCDEF/alarms", {"alarms": [slot]}, 404),
                ("/api/sim/meters/E23001/alarms", {"alarms": [slot]}, 400),           # keeps no log
                ("/api/sim/meters/DC85EA/events", {"kind": "power_quality", "index": 9}, 400),
                ("/api/sim/meters/DC85EA/events", {"kind": "power_quality", "index": 1, "load": 7}, 400),
                ("/api/sim/meters/DC85EA/events", {"kind": "power_quality", "index": 1, "duration_ms": True}, 400),
                ("/api/sim/meters/DC85EA/events", {"kind": "threshold", "index": 1}, 400),
                ("/api/sim/meters/DC85EA/events", {"kind": "device", "index": 1, "criticality": "dire"}, 400),
                ("/api/sim/meters/DC85EA", {"inputs": 256}, 400),
                # a good part and a bad part: refused whole, nothing applied
                ("/api/sim/meters/DC85EA/alarms", {"alarms": [slot], "logical_inputs": [1]}, 400),
                ("/api/sim/meters/DC85EA/alarms", {"alarms": [dict(slot, threshold=float("inf"))]}, 400),
                ("/api/sim/meters/DC85EA/alarms", {"alarms": [dict(slot, threshold=1e12)]}, 400),
                ("/api/sim/meters/DC85EA/alarms", {"alarms": [slot, dict(slot, key="i2")]}, 400),
                ("/api/sim/meters/DC85EA/alarms", {"alarms": [dict(slot, slot=1.9)]}, 400),
                ("/api/sim/meters/DC85EA/events", {"kind": "power_quality", "index": 1, "key": "v1",
                                                   "value": float("nan")}, 400),
                ("/api/sim/meters/DC85EA/events", {"kind": "power_quality", "index": 1,
                                                   "duration_ms": 2 ** 31}, 400),
            ]
            for path, payload, code in refused:
                status, answer = await asyncio.to_thread(admin.post, path, payload)
                assert status == code and answer.get("error"), (path, payload, answer)
            assert meter.events.slots == [] and meter.events.next_number == 0

            assert (await asyncio.to_thread(admin.post, "/api/sim/meters/DC85EA/alarms", {"alarms": [slot]}))[0] == 200
            device_alarm = {"kind": "device", "index": 2, "load": 2, "criticality": "critical"}
            assert (await asyncio.to_thread(admin.post, "/api/sim/meters/DC85EA/events", device_alarm))[0] == 200
            await wait_for(lambda: meter.events.next_number == 2)     # the threshold alarm starts at the next poll
            await gw.event_reader.check_device(engine, device)
            status, answer = await asyncio.to_thread(http_json, base + "/api/alarms")
            assert status == 200
            assert sorted((a["alarm"], a["load"], a["criticality"]) for a in answer["devices"]) == [
                (103, 1, "non-critical"), (502, 2, "critical")]
    asyncio.run(body())


def test_a_meter_that_refuses_the_window_is_asked_again_an_hour_later(tmp_path):
    async def body():
        async with running_gateway(tmp_path / "state", demo_topology(), {"alarms.check_s": 1}) as gw:
            meter = gw.board.find_meter(netid=I35_AT_5)
            with meter.lock:
                meter.events = None                   # this one answers exception 02 on 0x0280
            await _preset(gw)
            state = gw.event_reader.states["%06X" % I35_AT_5]
            await wait_for(lambda: state.errors == 1)
            assert state.last_error == "exception 2" and state.checks == 0
            assert state.next_due >= gw.clock.time() + 3000
            others = [s for netid, s in gw.event_reader.states.items() if netid != "%06X" % I35_AT_5]
            await wait_for(lambda: min(s.checks for s in others) >= 3)   # the others go on every second
            assert state.errors == 1 and "%06X" % I35_AT_5 not in gw.device_alarms.cursors
    asyncio.run(body())


# ---------------------------------------------------------------- first contact, log restarts, moves, removals


def test_first_contact_history_is_kept_short_and_announces_only_what_is_still_active(tmp_path):
    """A U-30 that logged 41 records before the gateway knew it; the first read is cut by a timeout."""
    def history(board):
        log = board.find_meter(netid=U30_AT_11).events
        t = log.meter.clock.time() - 3600
        log.inject(t, "device", 2, criticality="critical")                  # CT disconnected, still active
        for n in range(20):
            log.inject(t + 60 * n, "power_quality", 1, key="v1", value=200.0, duration_ms=80)

    async def body():
        async with running_gateway(tmp_path / "state", demo_topology(), QUIET, prepare_board=history) as gw:
            heard = []
            gw.device_alarms.on_event(lambda alarm, state: heard.append((alarm["alarm"], state)))
            meter = gw.board.find_meter(netid=U30_AT_11)
            real_read, reads = meter.events.read, []

            def read_then_fall_silent(start, count):
                reads.append(start)
                if len(reads) == 2:                   # after the first page, the meter stops answering
                    meter.silent = True
                return real_read(start, count)
            meter.events.read = read_then_fall_silent
            await gw.topology.replace(demo_devices())
            await wait_for(lambda: gw.event_reader.states.get("%06X" % U30_AT_11) is not None
                           and gw.event_reader.states["%06X" % U30_AT_11].errors == 1)
            cursor = gw.device_alarms.cursors["%06X" % U30_AT_11]
            assert (cursor.next, cursor.history) == (12, 41) and heard == []
            meter.events.read = real_read
            with meter.lock:
                meter.silent = False
            meter, device, engine = _meter_and_device(gw, U30_AT_11)
            await wait_for(lambda: not gw.cache.comm_lost(11))
            await gw.event_reader.check_device(engine, device)
            assert (cursor.next, cursor.history) == (41, None)
            assert heard == [(502, "raised")]         # the history's dips are not announced
            kept = _device_records(gw, U30_AT_11)
            assert sorted(r["rec"] for r in kept if not r.get("from_history")) == list(range(41 - HISTORY_LOGGED, 41))
            assert [(r["alarm"], r["rec"]) for r in kept if r.get("from_history")] == [(502, 0)]
            gw.board.inject_event(U30_AT_11, kind="power_quality", index=2, key="v2", value=270.0, duration_ms=30)
            await gw.event_reader.check_device(engine, device)
            assert heard[1:] == [(402, "raised"), (402, "cleared")]   # after the history: live
    asyncio.run(body())


@pytest.mark.parametrize("cursor_file_lost", [False, True])
def test_a_meter_log_restart_ends_its_alarms_and_survives_a_gateway_restart(tmp_path, cursor_file_lost):
    async def body():
        state = tmp_path / "state"
        async with running_gateway(state, demo_topology(), QUIET) as gw:
            await _preset(gw)
            meter, device, engine = _meter_and_device(gw, U30_AT_11)
            heard = []
            gw.device_alarms.on_event(lambda alarm, st: heard.append((alarm["alarm"], st)))
            gw.board.inject_event(U30_AT_11, kind="device", index=1, criticality="critical")
            for _ in range(2):
                gw.board.inject_event(U30_AT_11, kind="power_quality", index=3, key="v1", value=0.0,
                                      duration_ms=900)
            await gw.event_reader.check_device(engine, device)
            assert [a["alarm"] for a in gw.device_alarms.active_list()] == [501]
            log = meter.events
            with meter.lock:                          # the meter's log is reset (0x0220 bit 1), then logs a dip
                log.records.clear()
                log.next_number = 0
            gw.board.inject_event(U30_AT_11, kind="power_quality", index=1, key="v3", value=190.0, duration_ms=50)
            await gw.event_reader.check_device(engine, device)
            assert not gw.device_alarms.active and gw.device_alarms.counters["log_restarts"] == 1
            assert heard[-3:] == [(501, "cleared"), (401, "raised"), (401, "cleared")]
            cursor = gw.device_alarms.cursors[device.netid]
            assert (cursor.gen, cursor.next) == (1, 2)
        if cursor_file_lost:
            os.remove(state / "event-cursors.json")

        kept = keeping_event_log(log, U30_AT_11)
        async with running_gateway(state, demo_topology(), QUIET, prepare_board=kept) as gw:
            cursor = gw.device_alarms.cursors["%06X" % U30_AT_11]
            assert (cursor.gen, cursor.next) == (1, 2)
            meter, device, engine = _meter_and_device(gw, U30_AT_11)
            await gw.event_reader.check_device(engine, device)
            assert gw.device_alarms.counters["log_restarts"] == 0 and not gw.device_alarms.active
            records = _device_records(gw, U30_AT_11)
            counted = collections.Counter((r.get("gen"), r.get("rec")) for r in records if "rec" in r)
            assert max(counted.values()) == 1 and {(1, 0), (1, 1)} <= set(counted)
    asyncio.run(body())


def test_an_alarm_ends_under_the_identity_it_started_with_and_removed_devices_end_theirs(tmp_path):
    async def body():
        state = tmp_path / "state"
        async with running_gateway(state, demo_topology(), QUIET) as gw:
            await _preset(gw)
            sender = TrapSender(service_door(gw, SnmpService))
            at_11, moved_to_12 = Device("digiware", 11, "U-30", "D5038A"), Device("digiware", 12, "U-30", "D5038A")
            start = ev.decode_item(ev.encode_item(0, 753315200, ev.encode_cause(5, True, 0, 2, 3), 0, 0, 0), 0)
            end = ev.decode_item(ev.encode_item(1, 753315260, ev.encode_cause(5, False, 0, 2, 3), 0, 0, 0), 1)
            gw.device_alarms.apply(at_11, start)
            assert device_traps(sender) == [("device alarm", 503, "digiware:11:0")]
            gw.device_alarms.apply(moved_to_12, end)         # the module was re-addressed meanwhile
            assert not device_traps(sender) and not gw.device_alarms.active
            assert _device_records(gw)[-1]["source"] == "digiware:11:0"

            gw.device_alarms.apply(at_11, dict(start, rec=2))
            assert len(gw.device_alarms.active) == 1
        async with running_gateway(state, demo_topology(), QUIET) as gw:
            assert len(gw.device_alarms.active) == 1              # restored from the event log
            await gw.topology.replace([d for d in demo_devices() if d.netid != "D5038A"])
            await wait_for(lambda: not gw.device_alarms.active)   # the U-30 left while the gateway was off
            assert _device_records(gw)[-1]["state"] == "end" and _device_records(gw)[-1]["forgotten"]
    asyncio.run(body())


def test_concurrent_commits_write_a_whole_cursor_file(tmp_path):
    async def body():
        async with running_gateway(tmp_path / "state", demo_topology(), QUIET) as gw:
            await _preset(gw)
            center = gw.device_alarms
            for n in range(30):
                for netid in ("D5038A", "DC85E9"):
                    center.cursors[netid].next += 1
                await asyncio.gather(center.commit(), center.commit(), center.commit())
            with open(tmp_path / "state" / "event-cursors.json", encoding="utf-8") as handle:
                saved = json.load(handle)
            assert saved["D5038A"][1] == center.cursors["D5038A"].next and \
                saved["DC85E9"][1] == center.cursors["DC85E9"].next
    asyncio.run(body())
