"""Every setting at its bounds, every SPEC §10 default, and a settings file that is not valid JSON.

The expected values are literals: SPEC §10 (and the §1, §3, §4 values it
summarises) copied here, and each row's bounds written out, so a change of
the schema's table is a change of this file too, never passed silently.
"""

import asyncio
import json
import os

import pytest

from conftest import running_gateway, topology_with
from daemon.security.secrets import SecretBox
from daemon.state import settings as settings_mod
from daemon.state.settings import SettingError, Settings, check_value, parse_value
from daemon.state.topology import Device, limit_problem

# SPEC §10 "Defaults and limits", row by row, as setting name -> default (what the schema has).
SPEC_10_DEFAULTS = {
    # Digiware bus: 38400 8N1 (8 data bits is not a setting: RTU framing)
    "bus.digiware.baud": 38400, "bus.digiware.parity": "N", "bus.digiware.stop_bits": 1,
    # RS485 port: master, 38400, 1 stop bit, no parity
    "bus.rs485.mode": "master", "bus.rs485.baud": 38400, "bus.rs485.stop_bits": 1, "bus.rs485.parity": "N",
    # Modbus TCP: port 502, 32 connections
    "modbus.port": 502, "modbus.max_connections": 32,
    # SNMP: disabled; port 161; traps to port 162; trap period 3600 s
    "snmp.enabled": False, "snmp.port": 161, "snmp.trap.port1": 162, "snmp.trap.port2": 162,
    "snmp.trap.period_s": 3600,
    # BACnet: disabled; port 47808; main instance 100
    "bacnet.enabled": False, "bacnet.port": 47808, "bacnet.main_instance": 100,
    # SNTP: ... UTC (the only SNTP part the schema has)
    "time.utc_offset_min": 0,
    # HTTPS: port 443
    "https.port": 443,
}
# SPEC §3.2 defaults: v1 public / private, v2c publicV2 / privateV2, trap community trap, v3 users control / admin.
SPEC_3_2_DEFAULTS = {
    "snmp.v1.read_community": "public", "snmp.v1.write_community": "private",
    "snmp.v2c.read_community": "publicV2", "snmp.v2c.write_community": "privateV2",
    "snmp.trap.community": "trap", "snmp.v3.read_user": "control", "snmp.v3.write_user": "admin",
}
# SPEC §4: "1 year at 60 min, 3 months at 15 min (a fixed number of points per series)": 366 x 24 = 91.5 x 96.
SPEC_4_POINTS = 8784
# SPEC §10 rows the schema has no setting for (reported, not invented): the prefixes such settings would take.
SPEC_10_NOT_IN_SCHEMA = {
    "network.": "Ethernet (Pi) 192.168.0.4 / 255.255.255.0, gateway 192.168.0.1",
    "sntp.": "SNTP disabled; 0.pool.ntp.org:123; every 3600 s",
    "smtp.": "SMTP disabled; port 465; secure",
    "push.": "Data push none; site name SITE; server name = NET ID",
    "session.": "Session 3 attempts, 3600 s lock, 86400 s session",
    "firewall.": "Firewall 1,000,000 bit/s, 2000 requests/s, 30 s ban; whitelist off, <=10 rules",
    "hierarchy.": "Hierarchies 10, 32 nodes and 50 circuits each",
    "photoview.": "Photoviews 21 pages, image <=10,485,760 bytes, <=1920x1080",
}

# Every row: name -> (type, default, bounds). Bounds from the SPEC are marked; the others are ours.
ROWS = {
    "gateway.name": ("str", "M-70", (1, 32)),
    "gateway.modbus_address": ("int", 1, (1, 247)),                    # Modbus: unit addresses 1..247
    "gateway.area": ("str", "", (0, 32)),
    "gateway.location": ("str", "", (0, 64)),
    "gateway.contact": ("str", "", (0, 64)),
    "gateway.description": ("str", "Energy-metering gateway", (0, 128)),
    "time.utc_offset_min": ("int", 0, (-720, 840)),                    # UTC-12:00 .. UTC+14:00
    "time.dst": ("bool", False, None),
    "bus.digiware.baud": ("int", 38400, (9600, 115200)),               # SPEC §1: 9600-115200
    "bus.digiware.parity": ("enum", "N", ("N", "E", "O")),
    "bus.digiware.stop_bits": ("int", 1, (1, 2)),
    "bus.digiware.timeout_ms": ("int", 100, (10, 5000)),
    "bus.digiware.retries": ("int", 1, (0, 5)),
    "bus.rs485.mode": ("enum", "master", ("master", "slave")),        # SPEC §1: master or slave
    "bus.rs485.baud": ("int", 38400, (9600, 115200)),                  # SPEC §1: 9600-115200
    "bus.rs485.parity": ("enum", "N", ("N", "E", "O")),
    "bus.rs485.stop_bits": ("int", 1, (1, 2)),
    "bus.rs485.address": ("int", 1, (1, 247)),
    "bus.rs485.timeout_ms": ("int", 100, (10, 5000)),
    "bus.rs485.retries": ("int", 1, (0, 5)),
    "poll.min_cycle_ms": ("int", 0, (0, 3600000)),
    "poll.stale_after_s": ("int", 2, (1, 3600)),
    "poll.backoff_max_s": ("int", 60, (1, 3600)),
    "discovery.mode": ("enum", "fast", ("fast", "full")),              # SPEC §1: FAST and FULL
    "discovery.first_address": ("int", 1, (1, 247)),
    "discovery.last_address": ("int", 247, (1, 247)),
    "discovery.timeout_ms": ("int", 60, (10, 5000)),
    "discovery.auto_resolve": ("bool", True, None),
    "http.port": ("int", 80, (1, 65535)),
    "http.bind": ("str", "0.0.0.0", (1, 64)),
    "https.port": ("int", 443, (1, 65535)),
    "modbus.enabled": ("bool", True, None),
    "modbus.port": ("int", 502, (1, 65535)),
    "modbus.bind": ("str", "0.0.0.0", (1, 64)),
    "modbus.max_connections": ("int", 32, (1, 32)),                    # SPEC §3.1: at most 32
    "modbus.idle_timeout_s": ("int", 60, (1, 3600)),
    "snmp.enabled": ("bool", False, None),
    "snmp.port": ("int", 161, (1, 65535)),
    "snmp.bind": ("str", "0.0.0.0", (1, 64)),
    "snmp.v1.read_community": ("str", "public", (1, 32)),
    "snmp.v1.write_community": ("str", "private", (1, 32)),
    "snmp.v2c.read_community": ("str", "publicV2", (1, 32)),
    "snmp.v2c.write_community": ("str", "privateV2", (1, 32)),
    "snmp.v3.read_user": ("str", "control", (1, 32)),
    "snmp.v3.read_auth": ("enum", "SHA", ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")),   # SPEC §3.2
    "snmp.v3.read_auth_password": ("str", "Control-2024", (8, 16)),   # SPEC §3.2: 8-16 characters
    "snmp.v3.read_priv": ("enum", "AES", ("none", "DES", "AES", "AES256")),                        # SPEC §3.2
    "snmp.v3.read_priv_password": ("str", "Control-2024", (8, 16)),   # SPEC §3.2
    "snmp.v3.write_user": ("str", "admin", (1, 32)),
    "snmp.v3.write_auth": ("enum", "SHA", ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")),
    "snmp.v3.write_auth_password": ("str", "Admin-2024!", (8, 16)),   # SPEC §3.2
    "snmp.v3.write_priv": ("enum", "AES", ("none", "DES", "AES", "AES256")),
    "snmp.v3.write_priv_password": ("str", "Admin-2024!", (8, 16)),   # SPEC §3.2
    "snmp.trap.community": ("str", "trap", (1, 32)),
    "snmp.trap.version": ("enum", "v2c", ("v1", "v2c", "v3")),         # SPEC §3.2: v1/v2c, and v3
    "snmp.trap.broadcast": ("bool", False, None),                      # SPEC §3.2: to broadcast or to up to 2 hosts
    "snmp.trap.host1": ("str", "", (0, 64)),
    "snmp.trap.port1": ("int", 162, (1, 65535)),
    "snmp.trap.host2": ("str", "", (0, 64)),
    "snmp.trap.port2": ("int", 162, (1, 65535)),
    "snmp.trap.period_s": ("int", 3600, (1, 86400)),
    "snmp.trap.mode": ("enum", "trap", ("trap", "inform")),
    "snmp.trap.inform_timeout_s": ("int", 5, (1, 60)),
    "snmp.trap.inform_retries": ("int", 2, (0, 10)),
    "bacnet.enabled": ("bool", False, None),
    "bacnet.port": ("int", 47808, (1, 65535)),
    "bacnet.bind": ("str", "0.0.0.0", (1, 64)),
    "bacnet.main_instance": ("int", 100, (0, 4194000)),
    "bacnet.network": ("int", 1000, (1, 65534)),                       # BACnet network numbers 1..65534
    "bacnet.time_sync": ("bool", False, None),                         # off: who may set the clock is a choice
    "policy.modbus_write": ("bool", False, None),
    "policy.snmp": ("bool", True, None),
    "policy.bacnet": ("bool", True, None),
    "policy.modbus_slave": ("bool", True, None),
    "events.capacity": ("int", 2000, (100, 100000)),
    "alarms.check_s": ("int", 10, (1, 3600)),
    "storage.points_per_series": ("int", 8784, (1464, 35136)),
    "storage.consumption_period_min": ("int", 60, (10, 60)),           # SPEC §4: 10-60 min
    "log.level": ("enum", "info", ("debug", "info", "warning", "error")),
}


def test_every_row_of_the_schema_is_written_out_here():
    assert sorted(ROWS) == sorted(row[0] for row in settings_mod.SCHEMA)
    for row in settings_mod.SCHEMA:
        assert ROWS[row[0]] == (row[1], row[2], row[3]), row[0]


def test_the_spec_defaults():
    settings = Settings()
    for name, value in dict(SPEC_10_DEFAULTS, **SPEC_3_2_DEFAULTS).items():
        assert settings.get(name) == value and type(settings.get(name)) is type(value), name
    assert settings.get("storage.points_per_series") == SPEC_4_POINTS
    # SPEC §10 devices / circuits 32 / 192 are the topology's caps (tests/test_topology.py refuses beyond them)
    assert limit_problem([Device("digiware", a, "I-60", a) for a in range(1, 33)]) is None          # 32 and 192
    assert "at most 32 devices" in limit_problem([Device("digiware", a, "U-30", a) for a in range(1, 34)])


def test_spec_rows_the_schema_lacks_are_listed_not_invented():
    names = [row[0] for row in settings_mod.SCHEMA]
    for prefix, what in SPEC_10_NOT_IN_SCHEMA.items():
        assert not [n for n in names if n.startswith(prefix)], (
            "%s now has settings: pin the SPEC §10 defaults (%s) in SPEC_10_DEFAULTS" % (prefix, what))


def cases(name):
    """(value, accepted) around the row's bounds: below, at, above (each choice and one outside for enums)."""
    kind, _default, bounds = ROWS[name]
    if kind == "int":
        low, high = bounds
        return [(low - 1, False), (low, True), (high, True), (high + 1, False)]
    if kind == "str":
        low, high = bounds
        out = [("x" * low, True), ("x" * high, True), ("x" * (high + 1), False)]
        return ([("x" * (low - 1), False)] if low > 0 else []) + out
    if kind == "enum":
        return [(choice, True) for choice in bounds] + [(bounds[0].swapcase() + "?", False), ("", False)]
    return [(True, True), (False, True), (1, False), ("true", False), (None, False)]


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_row_below_at_and_above_its_bounds(name):
    for value, accepted in cases(name):
        if accepted:
            assert check_value(name, value) == value, (name, value)
        else:
            with pytest.raises(SettingError):
                check_value(name, value)
        if ROWS[name][0] == "int":       # the command line and the forms parse text: same bounds
            if accepted:
                assert parse_value(name, str(value)) == value
            else:
                with pytest.raises(SettingError) as info:
                    parse_value(name, str(value))
                assert name in str(info.value) and str(value) in str(info.value)
    if ROWS[name][0] == "int":
        with pytest.raises(SettingError):
            check_value(name, True)       # a bool is not a number here
    if ROWS[name][0] == "bool":
        assert parse_value(name, "true") is True and parse_value(name, "off") is False


def test_the_bounds_are_stored_and_read_back_and_one_value_beyond_changes_nothing(tmp_path):
    path = str(tmp_path / "settings.json")
    box = SecretBox.for_state_dir(str(tmp_path))
    for end in (0, 1):
        values = {}
        for name, (kind, _default, bounds) in ROWS.items():
            if kind == "int":
                values[name] = bounds[end]
            elif kind == "str":
                values[name] = "s" * max(bounds[end], 1)
            elif kind == "enum":
                values[name] = bounds[-end]
            else:
                values[name] = bool(end)

        async def scenario():
            settings = Settings(path, secret_box=box)
            await settings.set_many(values)
            for name, (kind, _d, bounds) in ROWS.items():
                if kind in ("int", "str"):
                    beyond = bounds[end] + (1 if end else -1) if kind == "int" else "s" * (bounds[1] + 1)
                    with pytest.raises(SettingError):
                        await settings.set_many({"gateway.area": "changed", name: beyond})
        asyncio.run(scenario())
        again = Settings(path, secret_box=box)
        assert again.load_problem is None
        assert dict((name, again.get(name)) for name in ROWS) == values, end


def test_a_settings_file_that_is_not_json_restores_the_good_copy(tmp_path, caplog):
    path = tmp_path / "settings.json"

    async def save(values):
        await Settings(str(path)).set_many(values)
    asyncio.run(save({"snmp.enabled": True}))
    asyncio.run(save({"modbus.idle_timeout_s": 77}))
    good = path.read_bytes()
    assert (tmp_path / "settings.json.bak").read_bytes() == good
    path.write_bytes(good.replace(b"}", b"", 1))                      # a hand edit that broke the JSON

    settings = Settings(str(path))
    assert settings.get("modbus.idle_timeout_s") == 77 and settings.get("snmp.enabled") is True
    assert str(path) in settings.load_problem and "restored" in settings.load_problem
    assert str(path) in caplog.text
    assert (tmp_path / "settings.json.corrupt").read_bytes() == good.replace(b"}", b"", 1)
    assert path.read_bytes() == good and Settings(str(path)).load_problem is None

    for broken in (b"", b"\xff\xfe{", b"null", json.dumps({"settings": [1]}).encode()):
        path.write_bytes(broken)
        assert Settings(str(path)).get("modbus.idle_timeout_s") == 77, broken

    # one bad value in a good document: its default, said (not silent)
    path.write_text(json.dumps({"settings": {"1": {"name": "modbus.idle_timeout_s", "value": 0}}}))
    one = Settings(str(path))
    assert one.get("modbus.idle_timeout_s") == 60 and "modbus.idle_timeout_s" in one.load_problem

    # no good copy at all: the defaults, said
    path.write_bytes(b"{oops")
    os.remove(str(tmp_path / "settings.json.bak"))
    fresh = Settings(str(path))
    assert fresh.get("snmp.enabled") is False and "no good copy" in fresh.load_problem


def test_the_gateway_starts_on_the_good_copies_of_broken_files(tmp_path):
    state = tmp_path / "state"
    site = topology_with([{"reference": "U-30", "address": 11, "netid": "D5038A"}])

    async def first():
        async with running_gateway(state, site, {}) as gw:
            await gw.settings.set_many({"modbus.idle_timeout_s": 77})
            await gw.topology.replace([Device("digiware", 11, "U-30", "D5038A")])
    asyncio.run(first())
    for name in ("settings.json", "topology.json"):
        (state / name).write_bytes(b"\x00" * 40)                          # a damaged medium

    async def second():
        async with running_gateway(state, site, {}) as gw:
            assert gw.settings.get("modbus.idle_timeout_s") == 77
            assert [d.netid for d in gw.topology.devices] == ["D5038A"]
            assert "settings.json" in gw.settings.load_problem and "topology.json" in gw.topology.load_problem
    asyncio.run(second())
