"""SPEC §1 capacity: 32 devices, 192 circuits, 10 devices on a bus at 9600 baud; a bad topology file.

The limits are literals copied from SPEC §1 / §10 ("Up to 32 devices and 192
circuits (loads) in total. At 9600 baud at most 10 devices on that bus."),
never read from the code. A topology beyond them is refused whole, with a
message that names the limit, and the topology in place (memory and file)
is kept; detection shows that message as its status and raises no alarm.
"""

import asyncio
import json
import os

import pytest

from conftest import other_alarms, other_raised, running_gateway, topology_with
from daemon.state.settings import SettingError, Settings
from daemon.state.topology import Device, Topology, TopologyRefused, merge_detected

SPEC_DEVICES, SPEC_CIRCUITS = 32, 192
SLOW_BAUD, SPEC_DEVICES_AT_SLOW_BAUD = 9600, 10


def sixes(count, first_address=1, bus="digiware"):
    """``count`` I-60 modules (6 circuits each) at consecutive addresses."""
    return [Device(bus, first_address + n, "I-60", 0xA00000 + first_address + n) for n in range(count)]


def voltages(count, first_address=1, bus="digiware"):
    """``count`` U-30 modules (no circuit) at consecutive addresses."""
    return [Device(bus, first_address + n, "U-30", 0xB00000 + first_address + n) for n in range(count)]


def refused(topology, devices):
    with pytest.raises(TopologyRefused) as info:
        asyncio.run(topology.replace(devices))
    return str(info.value)


def test_the_device_and_circuit_caps_are_32_and_192(tmp_path):
    path = str(tmp_path / "topology.json")
    topology = Topology(path)
    at_cap = sixes(SPEC_DEVICES)                             # 32 devices, 32 x 6 = 192 circuits
    assert sum(len(d.loads) for d in at_cap) == SPEC_CIRCUITS
    asyncio.run(topology.replace(at_cap))
    assert len(topology.devices) == 32 and topology.version == 1
    kept = open(path, "rb").read()

    message = refused(topology, voltages(SPEC_DEVICES + 1))              # 33 devices, no circuit
    assert "33 devices" in message and "at most 32 devices" in message
    over = sixes(SPEC_DEVICES - 1) + [Device("rs485", 40, "I-60", 0xA00040,
                                             loads=[{"load": n, "network": "1P+N", "name": "Load %d" % n}
                                                    for n in range(1, 8)])]   # 31 x 6 + 7 = 193
    message = refused(topology, over)
    assert "193 circuits" in message and "at most 192 circuits" in message
    # refused whole: the topology in place is kept, in memory and on disk, and nobody was told of a change
    assert [d.address for d in topology.devices] == list(range(1, 33)) and topology.version == 1
    assert open(path, "rb").read() == kept
    assert len(Topology(path).devices) == 32
    asyncio.run(topology.replace(voltages(SPEC_DEVICES)))                  # 32 devices without circuits: fine
    assert topology.version == 2


def test_at_9600_baud_at_most_10_devices_on_that_bus(tmp_path):
    async def scenario():
        settings = Settings(str(tmp_path / "settings.json"))
        await settings.set_many({"bus.rs485.baud": SLOW_BAUD})
        topology = Topology(str(tmp_path / "topology.json"), settings)
        ten_slow = voltages(SPEC_DEVICES_AT_SLOW_BAUD, 1, "rs485")
        await topology.replace(ten_slow + voltages(22, 11, "digiware"))    # 10 at 9600 and 22 at 38400: 32
        with pytest.raises(TopologyRefused) as info:
            await topology.replace(voltages(SPEC_DEVICES_AT_SLOW_BAUD + 1, 1, "rs485"))
        message = str(info.value)
        assert "11 devices on the rs485 bus at 9600 baud" in message and "at most 10 devices" in message
        assert len(topology.on_bus("rs485")) == 10 and topology.version == 1
        # the same 11 devices on the 38400-baud Digiware bus are fine
        await topology.replace(voltages(SPEC_DEVICES_AT_SLOW_BAUD + 1, 1, "digiware"))
        assert len(topology.on_bus("digiware")) == 11

        # the other way round: slowing down a bus that carries 11 devices is refused, nothing changes
        with pytest.raises(SettingError) as info:
            await settings.set_many({"bus.digiware.baud": SLOW_BAUD, "bus.digiware.retries": 3})
        assert "11 devices on the digiware bus at 9600 baud" in str(info.value)
        assert settings.get("bus.digiware.baud") == 38400 and settings.get("bus.digiware.retries") == 1
        await settings.set_many({"bus.digiware.baud": 19200})               # above 9600 the rule does not apply
        await topology.replace(voltages(SPEC_DEVICES_AT_SLOW_BAUD, 1, "digiware"))
        await settings.set_many({"bus.digiware.baud": SLOW_BAUD})           # 10 devices at 9600: allowed
        assert Settings(str(tmp_path / "settings.json")).get("bus.digiware.baud") == 9600
    asyncio.run(scenario())


def test_detection_that_finds_33_devices_is_refused_with_its_reason_and_no_alarm(tmp_path):
    meters = [{"reference": "U-30", "address": a, "netid": "B0%04X" % a} for a in range(1, SPEC_DEVICES + 2)]
    site = topology_with(meters, baud=115200)

    async def scenario():
        async with running_gateway(tmp_path / "state", site, {"discovery.last_address": 34}) as gw:
            before = [Device("digiware", 1, "U-30", "B00001")]
            await gw.topology.replace(before)
            version = gw.topology.version
            assert gw.discovery.start("fast")
            await gw.discovery.wait()
            status = gw.discovery.status()
            assert status["state"] == "failed", status
            assert "33 devices" in status["message"] and "at most 32 devices" in status["message"], status
            assert gw.topology.version == version and [d.netid for d in gw.topology.devices] == ["B00001"]
            assert other_alarms(gw) == {}
            assert other_raised(gw) == []
    asyncio.run(scenario())


def test_a_topology_file_that_is_not_json_restores_the_good_copy(tmp_path, caplog):
    path = tmp_path / "topology.json"
    topology = Topology(str(path))
    asyncio.run(topology.replace(voltages(2)))
    asyncio.run(topology.replace(voltages(3)))
    good = path.read_bytes()
    assert (tmp_path / "topology.json.bak").read_bytes() == good            # the copy is of the newest document
    path.write_bytes(good[:len(good) // 2])                                   # cut short by hand or by the medium

    again = Topology(str(path))
    assert [d.address for d in again.devices] == [1, 2, 3]
    assert str(path) in again.load_problem and "restored" in again.load_problem
    assert str(path) in caplog.text                                          # said in the log, naming the file
    assert (tmp_path / "topology.json.corrupt").read_bytes() == good[:len(good) // 2]   # kept for inspection
    assert path.read_bytes() == good and Topology(str(path)).load_problem is None

    for broken in (b"", b"\x00" * 64, b"[1, 2]", json.dumps({"devices": [1, 2]}).encode()):
        path.write_bytes(broken)
        assert [d.address for d in Topology(str(path)).devices] == [1, 2, 3], broken

    # no good copy either: an empty topology, said, never a crash
    path.write_bytes(b"{not json")
    os.remove(str(tmp_path / "topology.json.bak"))
    empty = Topology(str(path))
    assert empty.devices == [] and "no good copy" in empty.load_problem
    assert (tmp_path / "topology.json.corrupt").read_bytes() == b"{not json"


def test_a_detection_merges_names_areas_and_load_names_and_flags_what_it_did_not_find():
    loads = [{"load": 1, "network": "3P", "name": "Pump"}, {"load": 2, "network": "3P+N", "name": "Lights"}]
    known = [Device("digiware", 4, "I-35", "DC85E9", "Feeder", "Hall", loads),
             Device("digiware", 7, "U-30", "D5038A", "Voltages", "Hall"),
             Device("digiware", 9, "IO-10", "C0E45D", "Doors"),
             Device("rs485", 21, "E23", "", "Boiler", serial="E230010000001")]
    found = [Device("digiware", 5, "I-35", "DC85E9", loads=[{"load": 1, "network": "1P+N", "name": "Load 1"}]),
             Device("digiware", 9, "IO-20", "C0E45C")]             # another device now answers at 9
    merged, changes = merge_detected(known, found, {"digiware"})
    by_uid = dict((d.uid, d) for d in merged)
    # moved to 5, loads as detected (load 2 was disabled), the user's names kept
    feeder = by_uid["DC85E9"]
    assert (feeder.address, feeder.name, feeder.area) == (5, "Feeder", "Hall")
    assert feeder.loads == [{"load": 1, "network": "1P+N", "name": "Pump"}]
    assert (by_uid["D5038A"].address, by_uid["D5038A"].name, by_uid["D5038A"].not_found) == (7, "Voltages", True)
    assert "C0E45D" not in by_uid and by_uid["C0E45C"].address == 9    # its address answers for another device
    assert by_uid["E23-E230010000001"] is known[3]                      # a bus not scanned: left as it is
    assert changes == {"added": ["C0E45C"], "updated": ["DC85E9"], "not_found": ["D5038A"], "removed": ["C0E45D"]}
    assert [d.address for d in merged] == [5, 7, 9, 21]
    # found again: the flag goes; a synchronise removes what is not found
    merged, changes = merge_detected(merged, [Device("digiware", 7, "U-30", "D5038A")], {"digiware"})
    assert not [d for d in merged if d.not_found and d.uid == "D5038A"]
    assert dict((d.uid, d.name) for d in merged)["D5038A"] == "Voltages"
    merged, changes = merge_detected(merged, [Device("digiware", 7, "U-30", "D5038A")], {"digiware"},
                                     remove_missing=True)
    assert [d.uid for d in merged] == ["D5038A", "E23-E230010000001"]
    assert sorted(changes["removed"]) == ["C0E45C", "DC85E9"]
    # an address the detection did not scan: left as it is, even by a synchronise
    far = Device("digiware", 40, "U-30", "D50040", "Far away")
    merged, changes = merge_detected(merged + [far], [], {"digiware"}, remove_missing=True, addresses=range(1, 25))
    assert [d.uid for d in merged] == ["E23-E230010000001", "D50040"] and changes["removed"] == ["D5038A"]
