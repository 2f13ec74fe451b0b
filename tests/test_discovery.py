"""Auto-detection on the simulated board: FAST vs FULL, conflicts, triggers."""

import asyncio
import collections

import pytest

from board.base import ManualClock
from conftest import demo_topology, detect, running_gateway, status_of, topology_with, wait_for
from core import modbus_rtu as rtu
from daemon.api import Refused
from daemon.runtime.bus import DISCOVERY
from daemon.security.rights import Caller
from daemon.state.topology import Device, Topology, devices_from_simulation
from protocols.bacnet import BacnetService
from protocols.modbus.tcp import ModbusTcpService
from protocols.snmp.agent import SnmpService
from snmp_support import METROLOGY, run as snmp_tool

EXPECTED_DEMO = [
    ("digiware", 4, "I-35", "DC85E9", [(1, "3P+N"), (2, "3P+N"), (3, "3P+N")]),
    ("digiware", 5, "I-35", "DC85EA", [(1, "3P+N"), (2, "3P+N"), (3, "3P+N")]),
    ("digiware", 11, "U-30", "D5038A", []),
    ("digiware", 13, "IO-20", "C0E45C", []),
    ("digiware", 14, "I-35", "DC8601", [(1, "3P+N"), (2, "3P+N")]),
    ("digiware", 15, "IO-10", "C0E45D", []),
    ("rs485", 20, "A-40", "", [(1, "3P+N")]),             # DIRIS A and COUNTIS: no NET ID
    ("rs485", 21, "E23", "", [(1, "3P+N")]),
]


def summary(gateway):
    return [(d.bus, d.address, d.reference, d.netid, [(x["load"], x["network"]) for x in d.loads])
            for d in gateway.topology.devices]


def test_full_detection_finds_the_demo_topology_exactly(tmp_path):
    async def scenario():
        async with running_gateway(tmp_path / "s", demo_topology()) as gw:
            await detect(gw, "full")
            assert summary(gw) == EXPECTED_DEMO
            # the keys are what a preset topology of the same site uses (curve series, cursors)
            assert [d.uid for d in gw.topology.devices] == [d.uid for d in devices_from_simulation(demo_topology())]
            assert [d.uid for d in gw.topology.devices][-2:] == ["A-40-A400010000001", "E23-E230010000001"]
            # the topology was stored and is read back by a new process
            from daemon.state.topology import Topology
            assert [d.as_dict() for d in Topology(str(tmp_path / "s" / "topology.json")).devices] == \
                gw.topology.as_list()
    asyncio.run(scenario())


def test_fast_detection_skips_countis_and_other_diris_a(tmp_path):
    topo = demo_topology()
    topo["buses"]["rs485"]["meters"].append({"reference": "A-10", "address": 22, "netid": "A10001"})
    async def scenario():
        async with running_gateway(tmp_path / "s", topo) as gw:
            await detect(gw, "fast")
            found = summary(gw)
            assert [x[1] for x in found] == [4, 5, 11, 13, 14, 15, 20]   # A-40 yes, E23 and A-10 no
            await detect(gw, "full")
            assert [x[1] for x in summary(gw)] == [4, 5, 11, 13, 14, 15, 20, 21, 22]
    asyncio.run(scenario())


def test_a_meter_busy_right_after_its_move_is_asked_again_and_the_conflict_clears(tmp_path):
    """A device given a new address by its NET ID may answer "slave device busy" (exception 06, the Modbus
    Application Protocol's code for a device still processing) to the first request there: the resolution asks
    again, finds it, and clears alarm 4; one try would leave the alarm up and the meter out of the topology."""
    topo = topology_with([
        {"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 1},
        {"reference": "I-35", "address": 4, "netid": "DC85EA", "loads": 1},
    ])

    async def scenario():
        async with running_gateway(tmp_path / "s", topo) as gw:
            moved = gw.board.find_meter(netid=0xDC85EA)
            busy = {"after_move": 0, "answered_busy": 0}
            move, answer = moved.broadcast_write, moved.handle_pdu

            def broadcast_write(start, words):
                address = moved.address
                move(start, words)
                if moved.address != address:
                    busy["after_move"] = 1                  # its next request: still busy

            def handle_pdu(pdu):
                if busy["after_move"]:
                    busy["after_move"] -= 1
                    busy["answered_busy"] += 1
                    return bytes((pdu[0] | 0x80, 0x06))     # exception 06: slave device busy
                return answer(pdu)
            moved.broadcast_write, moved.handle_pdu = broadcast_write, handle_pdu
            raised = []
            gw.alarms.on_event(lambda r: raised.append((r["alarm"], r["event"], r["source"])))
            await detect(gw, "fast")
            assert busy["answered_busy"] == 1
            assert (4, "cleared", "digiware:4") in raised and not any(n == 4 for n, _s in gw.alarms.active)
            assert sorted(d.netid for d in gw.topology.devices) == ["DC85E9", "DC85EA"]
    asyncio.run(scenario())


def test_two_meters_on_one_address_are_given_their_own_addresses(tmp_path):
    topo = topology_with([
        {"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 1},
        {"reference": "I-35", "address": 4, "netid": "DC85EA", "loads": 1},
        {"reference": "IO-10", "address": 6, "netid": "C0E45D"},
    ])
    async def scenario():
        async with running_gateway(tmp_path / "s", topo) as gw:
            raised = []
            gw.alarms.on_event(lambda r: raised.append((r["alarm"], r["event"], r["source"])))
            await detect(gw, "fast")
            assert (4, "raised", "digiware:4") in raised
            assert (4, "cleared", "digiware:4") in raised
            assert not any(n == 4 for n, _s in gw.alarms.active)
            devices = dict((d.netid, d.address) for d in gw.topology.devices)
            assert set(devices) == {"DC85E9", "DC85EA", "C0E45D"}
            assert len(set(devices.values())) == 3 and devices["C0E45D"] == 6
            assert devices["DC85E9"] == 4                     # lowest NET ID keeps the address
            moved = gw.board.find_meter(netid=0xDC85EA)
            assert moved.address == devices["DC85EA"] != 4
            # both are polled at their own address now
            await wait_for(lambda: gw.cache.get(devices["DC85EA"], 1, "i1").quality == "good")
            await wait_for(lambda: gw.cache.get(4, 1, "i1").quality == "good")
    asyncio.run(scenario())


def test_addr_button_held_three_seconds_starts_detection(tmp_path):
    async def scenario():
        async with running_gateway(tmp_path / "s", demo_topology()) as gw:
            gw.board.press_button(1.0)                        # a short press does nothing
            await asyncio.sleep(0.1)
            assert gw.discovery.state == "idle"
            gw.board.press_button(3.2)
            await wait_for(lambda: gw.discovery.state == "done", guard=60)
            assert gw.discovery.mode == "fast" and len(gw.topology.devices) == 7
    asyncio.run(scenario())


def test_progress_is_reported_while_scanning(tmp_path):
    async def scenario():
        async with running_gateway(tmp_path / "s", demo_topology()) as gw:
            seen = []
            gw.discovery.start("full")
            while gw.discovery.running():
                seen.append(gw.discovery.status()["progress"])
                await asyncio.sleep(0.05)
            assert seen == sorted(seen) and 0 < len(set(seen)) and gw.discovery.progress == 1.0
            assert any(0 < p < 1 for p in seen)
            try:
                gw.discovery.start("bogus")
            except ValueError:
                pass
            else:
                raise AssertionError("an unknown mode must be refused")
            assert gw.discovery.state == "done"
    asyncio.run(scenario())


RS485_PMDS = [{"reference": "E23", "address": 21, "netid": "E23001", "nominal_w": 9000},
              {"reference": "A-40", "address": 20, "netid": "A40001", "nominal_w": 60000},
              {"reference": "E14", "address": 22, "netid": "E14001", "nominal_w": 3000}]


def test_full_detection_finds_countis_and_diris_a_whose_identification_ends_at_66_words(tmp_path):
    clock = ManualClock(1_700_000_000.0)

    async def scenario():
        async with running_gateway(tmp_path / "s", topology_with((), RS485_PMDS), clock=clock) as gw:
            engine = gw.engines["rs485"]
            for address in (20, 21, 22):          # on the wire: exception 02 one word past the 66-word block
                try:
                    await engine.read_registers(address, 0xC350, 67, DISCOVERY, retries=0)
                except rtu.ModbusException as exc:
                    assert exc.code == rtu.ILLEGAL_DATA_ADDRESS
                else:
                    raise AssertionError("a read of 67 words at 0xC350 must be refused")
            await detect(gw, "full")
            found = dict((d.address, d) for d in gw.topology.devices)
            assert sorted((a, d.reference, d.netid) for a, d in found.items()) == [
                (20, "A-40", ""), (21, "E23", ""), (22, "E14", "")]
            assert found[21].uid == "E23-E230010000001" and found[21].name == "E23@21"
            assert found[22].loads == [{"load": 1, "network": "1P+N", "name": "Load 1"}]   # single phase only
            await wait_for(lambda: all(gw.cache.get(a, 1, "freq").quality == "good" for a in (20, 21, 22)))
            status = dict((d["address"], d) for d in status_of(gw)["devices"])
            for address in (20, 21, 22):
                meter = gw.board.find_meter(address=address)
                freq = status[address]["values"]["1"]["freq"]["value"]
                assert 49.9 < freq < 50.1, (address, freq)                    # not 500.0 Hz
                assert abs(freq - meter.values(1)["freq"]) <= (0.001 if address != 20 else 0.01)
                assert status[address]["netid"] == ""                         # no NET ID, not 000000
            # FAST finds the A-40 (FAST-detectable) the same way, without its NET ID; the E23 and E14 it does
            # not look for, but they answer its reads and are known: found, not removed
            await detect(gw, "fast")
            assert [(d.address, d.netid, d.not_found) for d in gw.topology.devices] == [
                (20, "", False), (21, "", False), (22, "", False)]
    asyncio.run(scenario())


def test_a_device_without_net_id_keeps_its_address_and_the_others_move(tmp_path):
    topo = topology_with((), [{"reference": "E23", "address": 21, "netid": "E23001"},
                              {"reference": "B-30 RS485", "address": 21, "netid": "B30001", "loads": 1},
                              {"reference": "E23", "address": 23, "netid": "E23002"},
                              {"reference": "E24", "address": 23, "netid": "E24002"}])

    async def scenario():
        async with running_gateway(tmp_path / "s", topo) as gw:
            raised = []
            gw.alarms.on_event(lambda r: raised.append((r["alarm"], r["event"], r["source"])))
            await detect(gw, "full")
            devices = dict((d.uid, d) for d in gw.topology.devices)
            # at 21: the E23 (no NET ID, cannot be moved by one) keeps it, the B-30 is moved by its NET ID
            assert devices["E23-E230010000001"].address == 21
            assert devices["B30001"].address not in (21, 23) and gw.board.find_meter(netid=0xB30001).address == \
                devices["B30001"].address
            assert (4, "raised", "rs485:21") in raised and (4, "cleared", "rs485:21") in raised
            # at 23: two devices without a NET ID cannot be told apart: the conflict stays (alarm 4)
            assert (4, "rs485:23") in gw.alarms.active and not any(d.address == 23 for d in devices.values())
            await wait_for(lambda: gw.cache.get(21, 1, "i1").quality == "good")
            await wait_for(lambda: gw.cache.get(devices["B30001"].address, 1, "i1").quality == "good")
    asyncio.run(scenario())


def renamed(device, name, area):
    return Device(device.bus, device.address, device.reference, device.netid, name, area, device.loads, device.serial)


# A compact site (addresses 1-5, no gap) and a generous answer time, so that on a loaded machine every
# detection finds every meter that answers: what these tests look at is what a detection does with it.
COMPACT = topology_with([{"reference": "I-35", "address": 1, "netid": "DC85E9", "loads": 3},
                         {"reference": "U-30", "address": 2, "netid": "D5038A"},
                         {"reference": "IO-10", "address": 3, "netid": "C0E45D"}],
                        [{"reference": "A-40", "address": 4, "netid": "A40001"},
                         {"reference": "E23", "address": 5, "netid": "E23001"}])           # E23: FULL only
COMPACT_SCAN = {"discovery.first_address": 1, "discovery.last_address": 5, "discovery.timeout_ms": 500}


def test_a_fast_detection_keeps_what_it_does_not_find_and_a_synchronise_removes_it(tmp_path):
    """FULL, the user names two meters, one meter falls silent, FAST: every device is still there with its
    name and area, the silent one flagged "not found" (in /api/status too, and after a restart); only a
    synchronise, which a profile without the right is refused, removes it."""
    async def scenario():
        async with running_gateway(tmp_path / "s", COMPACT, COMPACT_SCAN) as gw:
            await detect(gw, "full")
            assert [d.address for d in gw.topology.devices] == [1, 2, 3, 4, 5]
            named = {1: ("Feeder 1", "Hall A"), 5: ("Boiler room", "Basement")}      # 5: the COUNTIS, FULL only
            await gw.topology.replace([renamed(d, *named[d.address]) if d.address in named else d
                                       for d in gw.topology.devices])
            gw.board.configure_meter(0xD5038A, silent=True)                           # the U-30 at 2
            await detect(gw, "fast")
            devices = dict((d.address, d) for d in gw.topology.devices)
            assert sorted(devices) == [1, 2, 3, 4, 5]
            assert [(a, (devices[a].name, devices[a].area)) for a in sorted(named)] == sorted(named.items())
            assert [a for a, d in sorted(devices.items()) if d.not_found] == [2]
            assert gw.discovery.status()["changes"]["not_found"] == ["D5038A"]
            assert "1 not found (kept)" in gw.discovery.status()["message"]
            status = dict((d["address"], d) for d in status_of(gw)["devices"])
            assert [a for a, d in sorted(status.items()) if d["not_found"]] == [2]
            assert status[1]["name"] == "Feeder 1" and status[5]["area"] == "Basement"
            assert [d.not_found for d in Topology(str(tmp_path / "s" / "topology.json")).devices] == \
                [d.not_found for d in gw.topology.devices]                              # stored with the topology

            with pytest.raises(Refused) as refused:
                gw.door(Caller("web", "advanced")).start_detection("fast", synchronise=True)
            assert refused.value.reason == "rights" and not gw.discovery.running()
            with pytest.raises(Refused):
                gw.door(Caller("button")).start_detection("fast", synchronise=True)
            gw.door(Caller("web", "admin")).start_detection("fast", synchronise=True)
            await gw.discovery.wait()
            assert gw.discovery.state == "done", gw.discovery.status()
            devices = dict((d.address, d) for d in gw.topology.devices)
            assert sorted(devices) == [1, 3, 4, 5]
            assert gw.discovery.status()["changes"]["removed"] == ["D5038A"]
            assert (devices[1].name, devices[5].name) == ("Feeder 1", "Boiler room")
            assert not any(d.not_found for d in devices.values())

            # the meter answers again: the next detection adds it back (with the name the gateway makes)
            gw.board.configure_meter(0xD5038A, silent=False)
            await detect(gw, "fast")
            assert gw.topology.device(2).name == "U-30@2 - D5038A" and not gw.topology.device(2).not_found
    asyncio.run(scenario())


# Tasks that live for one transaction or one pass of their loop (bounded there), and the timers of sleeping
# tasks and of the bus waiting for an answer: they come and go with the traffic. Everything else must not grow.
PASSING_TASKS = ("EventReader._check_one", "CurveService._download_bus", "BacnetStack._sync")
PASSING_TIMERS = ("_set_result_unless_cancelled", "Timeout._on_timeout", "BusEngine._on_deadline")


def census(gw):
    """(long-lived tasks by coroutine, other scheduled handles by callback, passing tasks, listeners)."""
    loop = asyncio.get_running_loop()
    tasks = collections.Counter(getattr(t.get_coro(), "__qualname__", "?") for t in asyncio.all_tasks())
    passing = sum(tasks.pop(name, 0) for name in PASSING_TASKS)
    timers = collections.Counter(getattr(h._callback, "__qualname__", "?") for h in loop._scheduled
                                 if not h.cancelled())
    for name in PASSING_TIMERS:
        timers.pop(name, None)
    listeners = (len(gw.topology._listeners), len(gw.cache._subscribers), len(gw.settings._listeners),
                 len(gw.alarms._listeners))
    return tasks, timers, passing, listeners


def nothing_added(now, first, devices):
    """No long-lived task, timer or listener more than after the first detection; passing tasks bounded."""
    return not now[0] - first[0] and not now[1] - first[1] and now[3] == first[3] and now[2] <= 2 * devices


def test_detections_back_to_back_leave_nothing_behind_and_rebuild_only_what_changed(tmp_path):
    """Six detections of the same site (FAST and FULL in turn, SNMP walked between them) leave no more tasks,
    scheduled handles or listeners than the first did, and rebuild nothing: no new topology version, the same
    poll plans, BACnet devices and SNMP index. A real change (a meter removed by a synchronise) rebuilds that
    meter only. Before, FAST and FULL replaced the topology in turn and every front end rebuilt every time."""
    settings = dict(COMPACT_SCAN, **{"snmp.enabled": True, "snmp.port": 0, "snmp.bind": "127.0.0.1",
                                     "bacnet.enabled": True, "bacnet.port": 0, "bacnet.bind": "127.0.0.1",
                                     "modbus.enabled": True, "modbus.port": 0, "modbus.bind": "127.0.0.1"})

    async def walk(snmp):
        code, out, err = await snmp_tool("snmpbulkwalk", "-v2c", "-c", "publicV2", "-On", "-Cr50",
                                         "127.0.0.1:%d" % snmp.port, METROLOGY)
        assert code == 0 and out.count("\n") > 100, err

    async def scenario():
        async with running_gateway(tmp_path / "s", COMPACT, settings,
                                   services=[SnmpService, BacnetService, ModbusTcpService]) as gw:
            snmp, bacnet = gw.services[0], gw.services[1]
            await detect(gw, "full")
            await wait_for(lambda: bacnet.stack.settled() and len(bacnet.stack.meters) == 5)
            await wait_for(lambda: sorted(gw.pollers["digiware"].states) == [1, 2, 3])     # the poller planned them
            await walk(snmp)
            version = gw.topology.version
            metrology = dict((seg.name, seg) for seg in snmp.index.segments)["metrology"]
            entries, states, meters = metrology.entries, dict(gw.pollers["digiware"].states), dict(bacnet.stack.meters)
            first = census(gw)
            for mode in ("fast", "full") * 3:
                await detect(gw, mode)
                assert gw.discovery.status()["changes"] == {"added": [], "updated": [], "not_found": [],
                                                            "removed": []}, gw.discovery.status()
                await walk(snmp)
            assert gw.topology.version == version and metrology.entries is entries
            assert gw.pollers["digiware"].states == states and bacnet.stack.meters == meters
            await wait_for(lambda: nothing_added(census(gw), first, len(gw.topology.devices)))

            # one meter gone for good: only it is dropped, the others keep their plans, BACnet devices and OIDs
            gw.board.configure_meter(0xD5038A, silent=True)             # the U-30 at 2
            gw.door(Caller("web", "admin")).start_detection("fast", synchronise=True)
            await gw.discovery.wait()
            assert gw.discovery.status()["changes"]["removed"] == ["D5038A"] and gw.topology.version == version + 1
            await wait_for(lambda: bacnet.stack.settled() and 2 not in bacnet.stack.meters)
            poller = gw.pollers["digiware"]
            await wait_for(lambda: 2 not in poller.states)
            assert sorted(poller.states) == [1, 3] and all(poller.states[a] is states[a] for a in poller.states)
            assert sorted(bacnet.stack.meters) == [1, 3, 4, 5]
            assert all(bacnet.stack.meters[a] is meters[a] for a in bacnet.stack.meters)
            await walk(snmp)
            kept = [oid for oid in metrology.entries if oid in entries]
            assert len(kept) == len(metrology.entries) < len(entries)
            assert all(metrology.entries[oid][0] is entries[oid][0] for oid in kept)     # encodings reused
    asyncio.run(scenario())
