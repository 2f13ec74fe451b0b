"""The Bluetooth scan and its sources on the simulated board (issue 18; SPEC §1 BLE sources, §8 policy).

One gateway on the demo topology (four simulated sensors: pvvx, BTHome, Ruuvi, one encrypted BTHome), its SNMP
agent, a ManualClock. What is checked, by counts and states, never by timing:
- no scan runs while either switch is off (the simulated radio counts its starts), off by default;
- with both on, the sensors' advertisements (real frame bytes built by board/simble.py) are heard and decoded
  into the values the sensors were given in the topology file (the independent source), each with its age and
  quality; the encrypted one is listed with its refusal; the "bluetooth" LED is on;
- switching either switch off stops a running scan at once (the LED goes off in the settings' own call,
  later advertisements are not taken in, the radio is stopped);
- a heard value goes stale when its sensor stops advertising and the clock moves;
- sources: added (Admin) only for a sensor heard in a readable frame, refused otherwise with a reason and
  nothing written; refused to User; a device of the topology (kept across a restart in the state directory),
  whose values reach the cache with quality (stale when the sensor stops, communication lost and system
  alarm 3 once silent for long); removed with its values.
"""

import asyncio
import json
import os

import pytest
from board.base import ManualClock
from conftest import demo_topology, running_gateway, wait_for
from snmp_support import mib_path, run
from daemon.api import Refused
from daemon.security.rights import Caller
from protocols.snmp import mibdef
from protocols.snmp.agent import SnmpService

T0 = 1_790_000_000.0
SNMP = {"snmp.enabled": True, "snmp.port": 0, "snmp.bind": "127.0.0.1"}
METROLOGY = "1.3.6.1.4.1.4555.10.20.20.1"        # table 20 (instantaneous), then service ID . address . load


async def snmpget(gw, *names):
    """{name: value text} read by net-snmp's snmpget (v2c, our MIB for the names) from the gateway's agent."""
    port = next(s for s in gw.services if isinstance(s, SnmpService)).port
    rc, out, err = await run("snmpget", "-m", "+" + mibdef.MIB_NAME, "-M", "+" + mib_path(), "-v2c", "-c",
                             "publicV2", "-r", "1", "-t", "2", "-OQ", "-Oe", "127.0.0.1:%d" % port, *names)
    assert rc == 0, out + err
    return [line.split(" = ", 1)[1].strip() for line in out.splitlines() if " = " in line]
PVVX, BTHOME, RUUVI, ENCRYPTED = "A4:C1:38:8D:18:B2", "54:48:E6:8F:80:A5", "CB:B8:33:4C:88:4F", "A4:C1:38:00:00:E1"


def sim_values(address):
    """What the topology file says the simulated sensor measures (the independent source)."""
    return next(s["values"] for s in demo_topology()["ble"] if s["address"] == address)


def stored_sources(state):
    """The Bluetooth devices of the topology file as written (the state directory, read as JSON)."""
    with open(os.path.join(state, "topology.json"), encoding="utf-8") as handle:
        devices = json.load(handle)["devices"].values()
    return [d for d in devices if (d.get("link") or {}).get("kind") == "ble"]


def heard(gw, address):
    return next((r for r in gw.door(Caller("web", "admin")).bluetooth_heard() if r["address"] == address), None)


async def _scenario(state):
    seen = {}
    clock = ManualClock(T0)
    async with running_gateway(state, demo_topology(), SNMP, clock=clock, services=[SnmpService]) as gw:
        radio = gw.board.radio
        admin, cyber, user = (gw.door(Caller("web", p)) for p in ("admin", "cyber", "user"))
        seen["default"] = (radio.starts, gw.board.leds["bluetooth"], admin.bluetooth_status()["running"])
        await admin.set_settings({"bluetooth.enabled": True})             # the policy still forbids it
        await asyncio.sleep(0.2)
        seen["enabled_only"] = (radio.starts, radio.scanning, radio.emit(PVVX))
        await cyber.set_settings({"policy.bluetooth": True})
        await wait_for(lambda: radio.scanning)
        await wait_for(lambda: all(heard(gw, a) for a in (PVVX, BTHOME, RUUVI, ENCRYPTED)))
        seen["on"] = (radio.starts, gw.board.leds["bluetooth"], admin.bluetooth_status())
        seen["heard"] = dict((a, heard(gw, a)) for a in (PVVX, BTHOME, RUUVI, ENCRYPTED))
        try:
            user.bluetooth_heard()
        except Refused as exc:
            seen["user_heard"] = exc.reason

        # sources
        seen["added"] = await admin.add_bluetooth_source(PVVX.lower(), "Cold room", "Basement")
        refusals = {}
        for label, args in (("encrypted", (ENCRYPTED, "Encrypted one", "")),
                            ("unheard", ("00:11:22:33:44:55", "X", "")),
                            ("bad_address", ("A4-C1-38-8D-18-B2", "Y", "")), ("duplicate", (PVVX, "Again", "")),
                            ("empty_name", (BTHOME, "  ", "")), ("name_taken", (BTHOME, "cold ROOM", "")),
                            ("long_area", (BTHOME, "Office", "x" * 33))):
            try:
                await admin.add_bluetooth_source(*args)
            except Refused as exc:
                refusals[label] = (exc.reason, exc.details[0]["key"])
        try:
            await user.add_bluetooth_source(BTHOME, "Office", "")
        except Refused as exc:
            refusals["user"] = (exc.reason, None)
        seen["refusals"] = refusals
        seen["file"] = stored_sources(state)
        seen["listed"] = admin.bluetooth_sources()
        device = seen["added"]["device"]
        await wait_for(lambda: gw.cache.get(device, 1, "temperature").quality == "good")
        seen["cache"] = dict((k, (gw.cache.get(device, 1, k).value, gw.cache.get(device, 1, k).quality))
                             for k in ("temperature", "humidity", "battery", "battery_v", "pressure"))
        seen["extras"] = gw.cache.extras_keys(device)
        seen["summary"] = (admin.device_summary(device).state, admin.device_counters(device)["answers"])
        oids = ["%s.%d.%d.1" % (METROLOGY, sid, device) for sid in (16000, 16001, 16003, 16004)]
        seen["snmp"] = await snmpget(gw, *oids + ["%s::gwLoadQuality.%d.1" % (mibdef.MIB_NAME, device),
                                        "%s::gwDevReference.%d" % (mibdef.MIB_NAME, device)])
        seen["heard_source"] = heard(gw, PVVX)["source"]

        # stale: the sensor stops, the clock moves past three of its intervals (and the 10 s floor)
        radio.configure(RUUVI, silent=True)
        radio.configure(PVVX, silent=True)
        count = heard(gw, RUUVI)["count"]
        clock.advance(30.0)
        await wait_for(lambda: heard(gw, BTHOME)["quality"] == "good" and heard(gw, BTHOME)["values_age_s"] < 30)
        seen["stale"] = (heard(gw, RUUVI)["quality"], heard(gw, RUUVI)["count"] - count, heard(gw, BTHOME)["quality"])
        seen["source_stale"] = (gw.cache.get(device, 1, "temperature").quality, admin.bluetooth_sources()[0]["values"]
                                ["temperature"][1], (3, "ble:%d" % device) in gw.alarms.active)
        seen["snmp_stale"] = await snmpget(gw, "%s::gwLoadQuality.%d.1" % (mibdef.MIB_NAME, device))
        clock.advance(60.0)                 # 90 s silent: past the 60 s floor of a lost source (the 5 s watch may
                                            # see it first: a lost source counts a timeout per check)
        gw.ble.check_sources()
        seen["source_lost"] = (gw.cache.get(device, 1, "temperature").quality,
                               (3, "ble:%d" % device) in gw.alarms.active, admin.device_summary(device).state)
        radio.configure(PVVX, silent=False)
        await wait_for(lambda: gw.cache.get(device, 1, "temperature").quality == "good")
        seen["source_back"] = (3, "ble:%d" % device) in gw.alarms.active
        seen["counters"] = (gw.ble.counters[device].as_dict(), gw.ble.counters[1].as_dict()["answers"])

        # either switch off stops a running scan at once
        before = radio.stops
        await cyber.set_settings({"policy.bluetooth": False})
        seen["policy_off_now"] = gw.board.leds["bluetooth"]
        received = gw.ble.received
        if radio.scanning:
            radio.emit(PVVX)          # an advertisement racing the stop is not taken in
        await wait_for(lambda: not radio.scanning)
        seen["policy_off"] = (radio.stops - before, gw.ble.received - received, gw.board.leds["bluetooth"],
                              radio.emit(PVVX))
        await cyber.set_settings({"policy.bluetooth": True})
        await wait_for(lambda: radio.scanning)
        starts = radio.starts
        await admin.set_settings({"bluetooth.enabled": False})
        seen["enabled_off_now"] = gw.board.leds["bluetooth"]
        await wait_for(lambda: not radio.scanning)
        seen["enabled_off"] = (radio.starts - starts, radio.emit(PVVX), admin.bluetooth_status()["running"])

        seen["removed_missing"] = None
        try:
            await admin.remove_bluetooth_source(BTHOME)
        except Refused as exc:
            seen["removed_missing"] = (exc.reason, exc.details[0]["key"])
    # a restart keeps the sources and, the switch off, runs no scan
    async with running_gateway(state, demo_topology(), clock=ManualClock(T0)) as gw:
        admin = gw.door(Caller("web", "admin"))
        seen["after_restart"] = (admin.bluetooth_sources(), gw.board.radio.starts)
        device = admin.bluetooth_sources()[0]["device"]
        await admin.remove_bluetooth_source(PVVX)
        seen["after_remove"] = admin.bluetooth_sources()
        seen["file_after_remove"] = stored_sources(state)
        seen["cache_after_remove"] = (gw.cache.keys(device, 1), gw.door(Caller("web", "admin")).device(device))
    return seen


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    return asyncio.run(_scenario(str(tmp_path_factory.mktemp("ble"))))


def test_no_scan_while_either_switch_is_off(seen):
    assert seen["default"] == (0, "off", False)
    assert seen["enabled_only"] == (0, False, False)
    assert seen["after_restart"][1] == 0          # bluetooth.enabled was left off


def test_the_sensors_are_heard_with_the_values_they_advertise(seen):
    starts, led, status = seen["on"]
    assert starts == 1 and led == "on" and status["running"] and status["policy"] and status["enabled"]
    for address, fmt in ((PVVX, "pvvx"), (BTHOME, "bthome"), (RUUVI, "ruuvi")):
        row = seen["heard"][address]
        assert row["format"] == fmt and row["refusal"] is None and row["quality"] == "good"
        assert row["values_age_s"] is not None and row["rssi"] < 0 and row["count"] >= 1
        expected = sim_values(address)
        assert {k: row["values"][k] for k in expected} == pytest.approx(expected, abs=0.005)
    assert seen["heard"][PVVX]["name"] == "ATC_8D18B2"
    encrypted = seen["heard"][ENCRYPTED]
    assert (encrypted["format"], encrypted["values"], encrypted["refusal"], encrypted["quality"]) == \
        ("bthome", None, "encrypted", None)
    assert seen["user_heard"] == "rights"


def test_sources_are_added_refused_and_kept(seen):
    device = seen["added"]["device"]
    assert seen["added"] == {"address": PVVX, "name": "Cold room", "area": "Basement", "format": "pvvx",
                             "device": device}
    assert device == 247                         # the highest free Modbus address
    assert seen["refusals"] == {
        "encrypted": ("bad_value", "ble.error.not_heard"), "unheard": ("bad_value", "ble.error.not_heard"),
        "bad_address": ("bad_value", "ble.error.address"), "duplicate": ("bad_value", "ble.error.already"),
        "empty_name": ("bad_value", "web.devices.error.empty"), "name_taken": ("bad_value", "ble.error.name_taken"),
        "long_area": ("bad_value", "ble.error.area"), "user": ("rights", None)}
    assert [(d["address"], d["name"], d["area"], d["bus"], d["link"]) for d in seen["file"]] == \
        [(device, "Cold room", "Basement", "ble", {"kind": "ble", "mac": PVVX, "format": "pvvx"})]   # refusals: none
    assert [dict(e, values=None) for e in seen["listed"]] == [dict(seen["added"], values=None)]
    assert seen["heard_source"] == "Cold room"
    assert [dict(e, values=None) for e in seen["after_restart"][0]] == [dict(seen["added"], values=None)]
    assert seen["removed_missing"] == ("not_found", "ble.error.no_source")
    assert seen["after_remove"] == [] and seen["file_after_remove"] == []
    assert seen["cache_after_remove"] == ([], None)


def test_a_sources_values_reach_the_cache_with_quality(seen):
    expected = sim_values(PVVX)
    got = seen["cache"]
    assert got["temperature"] == (pytest.approx(expected["temperature"]), "good")
    assert got["humidity"] == (pytest.approx(expected["humidity"]), "good")
    assert got["battery"] == (expected["battery"], "good")
    assert got["battery_v"] == (pytest.approx(expected["voltage"]), "good")
    assert got["pressure"] == (None, "not_supported")          # a pvvx thermometer has no barometer
    assert seen["extras"] == {1: frozenset({"user:packet", "user:flags"})}
    assert seen["source_stale"] == ("stale", "stale", False)
    # net-snmp reads them with our MIB (its DISPLAY-HINT over the gateway-scale integer, its UNITS)
    assert seen["snmp"] == ["%.2f degC" % expected["temperature"], "%.2f %%" % expected["humidity"],
                            "%d %%" % expected["battery"], "%.3f V" % expected["voltage"], "1", "Bluetooth sensor"]
    assert seen["snmp_stale"] == ["2"]                         # gwLoadQuality stale(2)
    assert seen["source_lost"] == ("comm_lost", True, "comm_lost")
    state, answers = seen["summary"]        # the one device summary every protocol reads: a source, as a meter
    assert state == "ok" and answers >= 1, seen["summary"]
    assert seen["source_back"] is False
    counters, none = seen["counters"]
    assert counters["answers"] >= 2 and counters["timeouts"] >= 1 and counters["last_success"] is not None
    assert none == 0                     # an address without a source


def test_a_silent_sensor_goes_stale(seen):
    quality, new_frames, other = seen["stale"]
    assert (quality, new_frames, other) == ("stale", 0, "good")


def test_switching_off_stops_the_scan_at_once(seen):
    assert seen["policy_off_now"] == "off"
    stops, taken_in, led, emitted = seen["policy_off"]
    assert (stops, taken_in, led, emitted) == (1, 0, "off", False)
    assert seen["enabled_off_now"] == "off"
    assert seen["enabled_off"] == (0, False, False)
