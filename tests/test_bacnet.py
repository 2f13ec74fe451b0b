"""BACnet/IP server through an independent client stack (@bacnet-js/client under Node.js).

The gateway runs the demo site on the simulated board with a frozen clock,
so what BACnet serves must equal what the simulated meters hold.
"""

import asyncio
import subprocess
import sys

import pytest

from bacnet_support import DEMO_ADDRESSES, MAIN, NET, Site, nothing_answered_so_far
from bacnet_peer import (
    ANALOG_INPUT, BINARY_INPUT, BINARY_OUTPUT, BINARY_PV_TAG, DEVICE, NULL_TAG, PROP, BacnetError, RawUdp, bvlc,
    npdu, rpm_values, values_of,
)
from board.base import ManualClock
from conftest import REPO, demo_devices, resolution, status_of, udp_port_is_free, wait_for
from core import registry
from protocols.bacnet import points

T0 = 1_700_000_000.0


def close_to(a, b):
    return abs(a - b) <= max(1e-4, abs(b) * 1e-6)      # values travel as IEEE float32


def meter_value(s, address, load, key):
    """The simulated meter's value as the gateway holds it: the cache, checked against the meter
    within the register's resolution (frozen clock, so the meter does not move)."""
    meter = s.gw.board.find_meter(address=address)
    cached = s.gw.cache.get(address, load, key)
    assert cached.quality == "good"
    assert abs(cached.value - meter.values(load)[key]) <= resolution(meter.reference, load, key)
    return cached.value


def test_who_is_finds_the_gateway_and_every_meter_and_the_router(tmp_path):
    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            found = await s.node.call("whoIs", target=dict(s.gateway, net=0xFFFF))
            by_id = dict((d["deviceId"], d) for d in found)
            assert sorted(by_id) == [MAIN] + [MAIN + a for a in DEMO_ADDRESSES]
            assert by_id[MAIN]["net"] is None                                  # the router itself
            for address in DEMO_ADDRESSES:
                assert by_id[MAIN + address]["net"] == NET and by_id[MAIN + address]["adr"] == [address]
            assert all(d["vendorId"] == 65535 and d["maxApdu"] == 1476 for d in found)
            # instance ranges
            ranged = await s.node.call("whoIs", target=dict(s.gateway, net=0xFFFF), low=105, high=114)
            assert sorted(d["deviceId"] for d in ranged) == [105, 111, 113, 114]
            # a local Who-Is (no DNET) stays on the IP network: the gateway answers alone
            local = await s.node.call("whoIs", target=s.gateway)
            assert [d["deviceId"] for d in local] == [MAIN]
            # Who-Is-Router-To-Network (any network, then ours, then one we do not reach)
            async with RawUdp() as raw:
                raw.send(bvlc(npdu(b"", expecting_reply=False, network_message=0x00)), s.port)
                kind, answer = await raw.answer()
                assert kind == "net" and answer["type"] == 0x01 and answer["body"] == NET.to_bytes(2, "big")
                raw.send(bvlc(npdu(NET.to_bytes(2, "big"), expecting_reply=False, network_message=0x00)), s.port)
                kind, answer = await raw.answer()
                assert kind == "net" and answer["type"] == 0x01 and answer["body"] == NET.to_bytes(2, "big")
                raw.send(bvlc(npdu((2000).to_bytes(2, "big"), expecting_reply=False, network_message=0x00)),
                         s.port)
                await nothing_answered_so_far(raw, s)
    asyncio.run(scenario())


def test_present_values_units_names_and_properties_equal_the_meters(tmp_path):
    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            # ReadProperty: V1 of load 2 = AI 204 of device 104 (SPEC §3.3)
            pv = values_of(await s.node.call("rp", target=s.meter(4), type=ANALOG_INPUT, instance=204,
                                             property=PROP["present_value"]))
            assert close_to(pv[0], meter_value(s, 4, 2, "v1"))
            name = values_of(await s.node.call("rp", target=s.meter(4), type=ANALOG_INPUT, instance=204,
                                               property=PROP["object_name"]))
            assert name == ["Voltage V1 L2"]
            # ReadPropertyMultiple: present value and units of every AI of every load
            device = s.gw.topology.device(4)
            ais = [p for p in points.device_points(device) if p.kind == points.ANALOG_INPUT]
            assert len(ais) == 150                           # 3 loads × 50 measurements of an I-35
            answer = rpm_values(await s.node.call("rpm", target=s.meter(4), specs=[
                {"type": ANALOG_INPUT, "instance": p.instance,
                 "properties": [PROP["present_value"], PROP["units"]]} for p in ais[:60]]))
            for p in ais[:60]:
                got = answer[(ANALOG_INPUT, p.instance)]
                assert close_to(got[PROP["present_value"]][0], meter_value(s, 4, p.load, p.key)), p
                assert got[PROP["units"]] == [registry.get(p.key)[registry.BACNET_UNITS]]
            # the object list is the device + its points, and the other meters answer too
            object_list = values_of(await s.node.call("rp", target=s.meter(4), type=DEVICE, instance=104,
                                                      property=PROP["object_list"]))
            assert len(object_list) == 1 + len(points.device_points(device))
            for key, instance in (("i1", 111), ("p", 121), ("ea_pos", 156)):
                pv = values_of(await s.node.call("rp", target=s.meter(20), type=ANALOG_INPUT, instance=instance,
                                                 property=PROP["present_value"]))
                assert close_to(pv[0], meter_value(s, 20, 1, key)), key
            # load 0 = device-level values: LL = 00
            pv = values_of(await s.node.call("rp", target=s.meter(11), type=ANALOG_INPUT, instance=4,
                                             property=PROP["present_value"]))
            assert close_to(pv[0], meter_value(s, 11, 0, "v1"))
            state = values_of(await s.node.call("rp", target=s.meter(15), type=BINARY_INPUT, instance=2,
                                                property=PROP["present_value"]))
            assert state == [meter_value(s, 15, 0, "in_2")]
            # ALL / REQUIRED / OPTIONAL on an AI with min/max and average
            every = rpm_values(await s.node.call("rpm", target=s.meter(4), specs=[
                {"type": ANALOG_INPUT, "instance": 111, "properties": [PROP["all"]]}]))[(ANALOG_INPUT, 111)]
            required = rpm_values(await s.node.call("rpm", target=s.meter(4), specs=[
                {"type": ANALOG_INPUT, "instance": 111, "properties": [PROP["required"]]}]))[(ANALOG_INPUT, 111)]
            optional = rpm_values(await s.node.call("rpm", target=s.meter(4), specs=[
                {"type": ANALOG_INPUT, "instance": 111, "properties": [PROP["optional"]]}]))[(ANALOG_INPUT, 111)]
            assert set(required) == {75, 77, 79, 85, 111, 36, 81, 117}
            assert {28, 103, 69, 65, 125, 149, 150, 512, 513} <= set(optional)
            assert set(every) == set(required) | set(optional) - {PROP["property_list"]}
            assert close_to(every[PROP["average_value"]][0], meter_value(s, 4, 1, "avg_i1"))
            assert close_to(every[PROP["min_pres_value"]][0], meter_value(s, 4, 1, "i1"))   # frozen: min = max
            assert close_to(every[PROP["max_pres_value"]][0], meter_value(s, 4, 1, "i1"))
            assert every[PROP["reliability"]] == [0] and every[PROP["status_flags"]][0]["value"] == [0]
            # Device optional properties (SPEC §3.3)
            dev = rpm_values(await s.node.call("rpm", target=s.gateway, specs=[
                {"type": DEVICE, "instance": MAIN, "properties": [PROP["all"]]}]))[(DEVICE, MAIN)]
            assert dev[PROP["location"]] == ["Switchboard B2"]
            assert dev[PROP["serial_number"]] == [s.gw.identity["serial"]]
            assert dev[PROP["utc_offset"]] == [-60]                  # BACnet counts west of UTC positive
            assert {56, 57, 24, 28} <= set(dev)                    # Local_Date/Time, DST, Description
            assert PROP["property_list"] not in dev                 # ALL leaves Property_List out
            # frozen clock T0 = 2023-11-14 22:13:20 UTC; the site is UTC+1 (time.utc_offset_min = 60)
            assert dev[56] == ["2023-11-14T00:00:00.000Z"] and dev[57] == ["1900-01-01T23:13:20.000Z"]
            plist = values_of(await s.node.call("rp", target=s.gateway, type=DEVICE, instance=MAIN,
                                                property=PROP["property_list"]))
            assert {56, 57, 58, 119, 24, 372, 28} <= set(plist)
            with pytest.raises(BacnetError, match="Class:1 - Code:31"):      # object / unknown-object
                await s.node.call("rp", target=s.meter(4), type=ANALOG_INPUT, instance=9999,
                                  property=PROP["present_value"])
            with pytest.raises(BacnetError, match="Class:2 - Code:32"):      # property / unknown-property
                await s.node.call("rp", target=s.meter(4), type=ANALOG_INPUT, instance=204, property=87)
    asyncio.run(scenario())


def test_a_silent_meter_flips_reliability_and_status_flags(tmp_path):
    async def scenario():
        async with Site(tmp_path, {"poll.backoff_max_s": 1}, clock=ManualClock(T0)) as s:
            specs = [{"type": ANALOG_INPUT, "instance": 4,
                      "properties": [PROP["present_value"], PROP["status_flags"], PROP["reliability"]]}]
            before = rpm_values(await s.node.call("rpm", target=s.meter(11), specs=specs))[(ANALOG_INPUT, 4)]
            assert before[PROP["reliability"]] == [0] and before[PROP["status_flags"]][0]["value"] == [0]
            s.gw.board.configure_meter(0xD5038A, silent=True)
            await wait_for(lambda: s.gw.cache.comm_lost(11), guard=30)
            after = rpm_values(await s.node.call("rpm", target=s.meter(11), specs=specs))[(ANALOG_INPUT, 4)]
            assert after[PROP["reliability"]] == [12]                          # communication-failure
            assert after[PROP["status_flags"]][0]["value"] == [2]              # the fault bit
            system_status = values_of(await s.node.call("rp", target=s.meter(11), type=DEVICE, instance=111,
                                                        property=112))
            assert system_status == [4]                                        # non-operational
            s.gw.board.configure_meter(0xD5038A, silent=False)
            await wait_for(lambda: not s.gw.cache.comm_lost(11), guard=30)
            again = rpm_values(await s.node.call("rpm", target=s.meter(11), specs=specs))[(ANALOG_INPUT, 4)]
            assert again[PROP["reliability"]] == [0]
    asyncio.run(scenario())


def test_write_property_drives_the_io10_output_only_when_the_policy_allows(tmp_path):
    async def scenario():
        async with Site(tmp_path) as s:
            io10 = s.gw.board.find_meter(address=15)
            assert io10.outputs & 1 == 0
            with pytest.raises(BacnetError, match="Class:2 - Code:40"):        # write-access-denied
                await s.node.call("wp", target=s.meter(15), type=BINARY_OUTPUT, instance=1,
                                  property=PROP["present_value"], tag=BINARY_PV_TAG, value=1, priority=8)
            assert io10.outputs & 1 == 0
            await s.gw.settings.set_many({"policy.modbus_write": True})
            await s.node.call("wp", target=s.meter(15), type=BINARY_OUTPUT, instance=1,
                              property=PROP["present_value"], tag=BINARY_PV_TAG, value=1, priority=8)
            assert io10.outputs & 1 == 1
            pv = values_of(await s.node.call("rp", target=s.meter(15), type=BINARY_OUTPUT, instance=1,
                                             property=PROP["present_value"]))
            assert pv == [1]
            slots = values_of(await s.node.call("rp", target=s.meter(15), type=BINARY_OUTPUT, instance=1,
                                                property=PROP["priority_array"]))
            assert slots[7] == 1 and all(v is None for i, v in enumerate(slots) if i != 7)
            # a lower priority does not win over 8; relinquishing 8 falls back to it
            await s.node.call("wp", target=s.meter(15), type=BINARY_OUTPUT, instance=1,
                              property=PROP["present_value"], tag=BINARY_PV_TAG, value=0, priority=12)
            assert io10.outputs & 1 == 1
            await s.node.call("wp", target=s.meter(15), type=BINARY_OUTPUT, instance=1,
                              property=PROP["present_value"], tag=NULL_TAG, value=None, priority=8)
            assert io10.outputs & 1 == 0
            # other properties and objects are not writable
            with pytest.raises(BacnetError, match="Class:2 - Code:40"):
                await s.node.call("wp", target=s.meter(4), type=ANALOG_INPUT, instance=204,
                                  property=PROP["present_value"], tag=4, value=1.0)
            with pytest.raises(BacnetError, match="Class:2 - Code:40"):
                await s.node.call("wp", target=s.meter(15), type=BINARY_OUTPUT, instance=1,
                                  property=PROP["object_name"], tag=7, value="x")
            assert s.service.site.counters.get("writes") == 3
    asyncio.run(scenario())


def test_who_has_finds_an_object_by_name_and_by_identifier(tmp_path):
    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            found = await s.node.call("whoHas", target=dict(s.gateway, net=0xFFFF), name="Digital output 2")
            assert sorted(f["deviceId"]["instance"] for f in found) == [113, 115]      # IO-20 and IO-10
            assert all(f["objectId"] == {"type": BINARY_OUTPUT, "instance": 2} for f in found)
            found = await s.node.call("whoHas", target=dict(s.gateway, net=0xFFFF),
                                      objectId={"type": ANALOG_INPUT, "instance": 304})
            assert sorted(f["deviceId"]["instance"] for f in found) == [104, 105]      # the 3-load I-35s
            assert all(f["objectName"] == "Voltage V1 L3" for f in found)
            assert await s.node.call("whoHas", target=dict(s.gateway, net=0xFFFF), name="no such object") == []
    asyncio.run(scenario())


def test_time_synchronization_sets_the_clock_only_when_allowed(tmp_path):
    async def scenario():
        async with Site(tmp_path, {"bacnet.time_sync": False}) as s:
            board = s.gw.board
            offset = getattr(board, "time_offset", 0)
            await s.node.call("timeSyncUTC", target=s.gateway, iso="2030-01-02T03:04:05Z")
            # the refusal counted proves the gateway handled it; only then is the unchanged clock a result
            await wait_for(lambda: s.service.site.counters.get("time_sync_refused") == 1)
            assert getattr(board, "time_offset", 0) == offset
            assert s.service.site.counters.get("time_sync_applied", 0) == 0
            await s.gw.settings.set_many({"bacnet.time_sync": True})
            await s.node.call("timeSyncUTC", target=s.gateway, iso="2030-01-02T03:04:05Z")
            await wait_for(lambda: s.service.site.counters.get("time_sync_applied") == 1)
            assert abs(s.gw.clock.time() - 1893553445.0) < 5          # the one clock the gateway reads
            # local time: the gateway is UTC+1 here (time.utc_offset_min = 60)
            await s.node.call("timeSync", target=s.gateway, iso="2030-01-02T04:04:05Z")
            await wait_for(lambda: s.service.site.counters.get("time_sync_applied") == 2)
            assert abs(s.gw.clock.time() - 1893553445.0) < 5          # the one clock the gateway reads
    asyncio.run(scenario())


def test_the_service_follows_its_switches_and_the_topology(tmp_path):
    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            port = s.port
            assert not udp_port_is_free(port)
            await s.gw.settings.set_many({"policy.bacnet": False})
            await wait_for(lambda: not s.service.running)
            assert udp_port_is_free(port) and s.port is None
            closed = {"address": "127.0.0.1:%d" % port}
            assert await s.node.call("whoIs", target=dict(closed, net=0xFFFF), wait_ms=300) == []
            await s.gw.settings.set_many({"policy.bacnet": True})
            await wait_for(lambda: s.service.running and s.service.stack.settled())
            found = await s.node.call("whoIs", target=dict(s.gateway, net=0xFFFF))
            assert len(found) == 1 + len(DEMO_ADDRESSES)
            # the COUNTIS E23 leaves the site, an I-35 gets a new name
            devices = [d for d in demo_devices() if d.address != 21]
            devices[0].name = "Feeder 4"
            devices[2].name = "Frequency"           # the U-30's name = one of its objects' names
            await s.gw.topology.replace(devices)
            await wait_for(lambda: s.service.stack.settled() and 21 not in s.service.stack.meters)
            found = await s.node.call("whoIs", target=dict(s.gateway, net=0xFFFF))
            assert sorted(d["deviceId"] for d in found) == [MAIN] + [MAIN + a for a in DEMO_ADDRESSES if a != 21]
            name = values_of(await s.node.call("rp", target=s.meter(4), type=DEVICE, instance=104,
                                               property=PROP["object_name"]))
            assert name == ["Feeder 4"]
            name = values_of(await s.node.call("rp", target=s.meter(11), type=DEVICE, instance=111,
                                               property=PROP["object_name"]))
            assert name == ["Frequency [111]"]
            status = status_of(s.gw)["services"]["bacnet"]
            assert status["running"] and status["devices"] == len(DEMO_ADDRESSES)
    asyncio.run(scenario())


def test_ede_file_and_pics_from_the_state_dir_and_from_the_daemon(tmp_path):
    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            served = s.gw.documents["bacnet-ede.csv"][1]()
            pics = s.gw.documents["bacnet-pics.md"][1]()
            return served, pics, s.state_dir
    served, pics, state_dir = asyncio.run(scenario())
    out = subprocess.run([sys.executable, "-m", "tools.ede", "--state-dir", str(state_dir)],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [line.split(";") for line in out.stdout.splitlines() if not line.startswith("#") and line.count(";") > 10]
    by_key = dict((r[0], r) for r in rows)
    assert by_key["DEV104.AI204"][1:5] == ["104", "Voltage V1 L2", "0", "204"]
    assert by_key["DEV104.AI204"][14] == str(registry.U_VOLTS)
    assert by_key["DEV115.BO1"][3:5] == ["4", "1"] and by_key["DEV115.BO1"][9] == "Y"
    assert by_key["DEV100"][3] == "8"
    devices = demo_devices()
    expected = 1 + len(devices) + sum(len(points.device_points(d)) for d in devices)
    assert len(rows) == expected
    served_rows = [line for line in served.splitlines() if not line.startswith(("#", "TIMESTAMP"))]
    assert served_rows == [line for line in out.stdout.splitlines() if not line.startswith(("#", "TIMESTAMP"))]
    assert "DS-RPM-B" in pics and "| 115 |" in pics
