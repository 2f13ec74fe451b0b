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
from daemon import api, i18n
from daemon.security.rights import Caller
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
    # SNTP: disabled; 0.pool.ntp.org:123; every 3600 s; UTC
    "sntp.enabled": False, "sntp.server": "0.pool.ntp.org", "sntp.port": 123, "sntp.period_s": 3600,
    "time.utc_offset_min": 0,
    # SMTP: disabled; port 465; secure
    "smtp.enabled": False, "smtp.port": 465, "smtp.secure": True,
    # Data push: none; site name SITE; server name = NET ID (empty: the NET ID)
    "push.protocol": "none", "push.site_name": "SITE", "push.server_name": "",
    # Ethernet (Pi): 192.168.0.4 / 255.255.255.0, gateway 192.168.0.1
    "network.address": "192.168.0.4", "network.netmask": "255.255.255.0", "network.gateway": "192.168.0.1",
    # Firewall: 1,000,000 bit/s, 2000 requests/s, 30 s ban; whitelist off (its <=10 rules are a table, not settings)
    "firewall.max_bandwidth_bps": 1000000, "firewall.max_requests_per_s": 2000, "firewall.ban_s": 30,
    "firewall.whitelist.enabled": False,
    # HTTPS: port 443
    "https.port": 443,
    # Session: 3 attempts, 3600 s lock, 86400 s session
    "session.max_attempts": 3, "session.lockout_s": 3600, "session.lifetime_s": 86400,
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
    "bus.digiware.baud": ("intenum", 38400, (9600, 19200, 38400, 57600, 115200)),   # SPEC §1: 9600-115200
    "bus.digiware.parity": ("enum", "N", ("N", "E", "O")),
    "bus.digiware.stop_bits": ("int", 1, (1, 2)),
    "bus.digiware.timeout_ms": ("int", 100, (10, 5000)),
    "bus.digiware.retries": ("int", 1, (0, 5)),
    "bus.rs485.mode": ("enum", "master", ("master", "slave")),        # SPEC §1: master or slave
    "bus.rs485.baud": ("intenum", 38400, (9600, 19200, 38400, 57600, 115200)),      # the standard RS485 speeds
    "bus.rs485.parity": ("enum", "N", ("N", "E", "O")),
    "bus.rs485.stop_bits": ("int", 1, (1, 2)),
    "bus.rs485.address": ("int", 1, (1, 247)),
    "bus.rs485.timeout_ms": ("int", 100, (10, 5000)),
    "bus.rs485.retries": ("int", 1, (0, 5)),
    "poll.min_cycle_ms": ("int", 0, (0, 3600000)),
    "poll.stale_after_s": ("int", 2, (1, 3600)),
    "poll.backoff_max_s": ("int", 60, (1, 3600)),
    "poll.avg_s": ("int", 30, (1, 3600)),             # issue 19: each slow tier's rate
    "poll.thd_s": ("int", 30, (1, 3600)),
    "poll.maxmin_s": ("int", 30, (1, 3600)),
    "poll.energy_s": ("int", 60, (1, 3600)),
    "poll.load_curve_s": ("int", 60, (1, 3600)),
    "discovery.mode": ("enum", "fast", ("fast", "full")),              # SPEC §1: FAST and FULL
    "discovery.first_address": ("int", 1, (1, 247)),
    "discovery.last_address": ("int", 247, (1, 247)),
    "discovery.timeout_ms": ("int", 60, (10, 5000)),
    "discovery.auto_resolve": ("bool", True, None),
    "http.port": ("int", 80, (1, 65535)),
    "http.bind": ("str", "0.0.0.0", (1, 64)),
    "https.port": ("int", 443, (1, 65535)),
    "https.redirect": ("enum", "auto", ("auto", "on", "off")),         # issue 15: on the Pi, not on the sim board
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
    "session.max_attempts": ("int", 3, (1, 20)),
    "session.lockout_s": ("int", 3600, (60, 86400)),
    "session.lifetime_s": ("int", 86400, (60, 604800)),
    "password.expiry_days": ("int", 365, (30, 3650)),                  # SPEC §7.1: yearly
    "events.capacity": ("int", 2000, (100, 100000)),
    "alarms.check_s": ("int", 10, (1, 3600)),
    "storage.points_per_series": ("int", 8784, (1464, 35136)),
    "storage.consumption_period_min": ("int", 60, (10, 60)),           # SPEC §4: 10-60 min
    "upgrade.healthy_after_s": ("int", 60, (5, 3600)),                 # issue 15: a trial slot kept after
    "upgrade.trial_timeout_s": ("int", 600, (5, 7200)),                # ... or rolled back after
    "log.level": ("enum", "info", ("debug", "info", "warning", "error")),
    # issue 18: the Modbus TCP client of generic devices (a LAN answers in well under a second; 10 s bounds a stall)
    "generic.tcp_timeout_ms": ("int", 1000, (100, 10000)),
    "generic.tcp_retries": ("int", 1, (0, 5)),                         # as the buses' retries
    # issue 14: the settings of SPEC §5, §7.2, §8 and §10 that had none (wired by later issues)
    "sntp.enabled": ("bool", False, None),                             # SPEC §10: SNTP disabled
    "sntp.server": ("host", "0.pool.ntp.org", (1, 253)),               # SPEC §5: 0.pool.ntp.org; DNS names <= 253
    "sntp.port": ("int", 123, (1, 65535)),                             # SPEC §5: 123
    "sntp.period_s": ("int", 3600, (60, 86400)),                       # SPEC §5: 3600 s
    "network.dhcp": ("bool", False, None),                             # SPEC §10: a static address by default
    "network.address": ("ipv4", "192.168.0.4", (7, 15)),               # SPEC §10; "1.1.1.1" to "255.255.255.255"
    "network.netmask": ("netmask", "255.255.255.0", (7, 15)),          # SPEC §10
    "network.gateway": ("ipv4", "192.168.0.1", (0, 15)),               # SPEC §10; empty: no router
    "network.dns1": ("ipv4", "", (0, 15)),
    "network.dns2": ("ipv4", "", (0, 15)),
    "network.domain": ("host", "", (0, 253)),
    "network.proxy.enabled": ("bool", False, None),
    "network.proxy.host": ("host", "", (0, 253)),
    "network.proxy.port": ("int", 8080, (1, 65535)),
    "network.vlan.enabled": ("bool", False, None),
    "network.vlan.id": ("int", 1, (1, 4094)),                          # IEEE 802.1Q: 1..4094
    "push.site_name": ("str", "SITE", (1, 32)),                        # SPEC §10: SITE
    "push.server_name": ("str", "", (0, 32)),                          # SPEC §10: the NET ID (empty)
    "push.protocol": ("enum", "none", ("none", "ftp", "http")),        # SPEC §10: none; §5: FTP(S), HTTP(S)
    "push.host": ("host", "", (0, 253)),
    "push.port": ("int", 21, (1, 65535)),
    "push.user": ("str", "", (0, 64)),
    "push.password": ("str", "", (0, 64)),
    "push.folder": ("str", "", (0, 128)),
    "push.secure": ("bool", False, None),
    "push.tls_mode": ("enum", "explicit", ("explicit", "implicit")),   # SPEC §5: explicit or implicit TLS
    "push.ftp_mode": ("enum", "passive", ("passive", "active")),       # SPEC §5: passive or active
    "push.format": ("enum", "csv", ("csv", "ems")),                    # SPEC §5: CSV, EMS
    "push.upload_log": ("bool", False, None),
    "push.spool_mb": ("int", 64, (1, 1024)),                             # store and forward's room (issue 16)
    "push.schedule.energy.mode": ("enum", "off", ("off", "every", "daily", "weekly")),     # SPEC §5
    "push.schedule.energy.every_min": ("int", 60, (10, 10080)),        # 10 min (the shortest period) to a week
    "push.schedule.energy.time": ("time", "00:00", (5, 5)),
    "push.schedule.energy.weekday": ("enum", "mon", ("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
    "push.schedule.measurements.mode": ("enum", "off", ("off", "every", "daily", "weekly")),
    "push.schedule.measurements.every_min": ("int", 60, (10, 10080)),
    "push.schedule.measurements.time": ("time", "00:00", (5, 5)),
    "push.schedule.measurements.weekday": ("enum", "mon", ("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
    "push.schedule.load_curves.mode": ("enum", "off", ("off", "every", "daily", "weekly")),
    "push.schedule.load_curves.every_min": ("int", 60, (10, 10080)),
    "push.schedule.load_curves.time": ("time", "00:00", (5, 5)),
    "push.schedule.load_curves.weekday": ("enum", "mon", ("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
    "smtp.enabled": ("bool", False, None),                             # SPEC §10: disabled
    "smtp.host": ("host", "", (0, 253)),
    "smtp.port": ("int", 465, (1, 65535)),                             # SPEC §10: 465
    "smtp.secure": ("bool", True, None),                               # SPEC §10: secure
    "smtp.tls_mode": ("enum", "implicit", ("implicit", "starttls")),    # SMTPS (465) or STARTTLS (587)
    "smtp.auth": ("bool", False, None),
    "smtp.user": ("str", "", (0, 64)),
    "smtp.password": ("str", "", (0, 64)),
    "notify.sender": ("email", "", (0, 254)),                          # RFC 5321: an address is <= 254 characters
    "notify.recipient1": ("email", "", (0, 254)),                      # SPEC §5: up to 3 recipients
    "notify.recipient2": ("email", "", (0, 254)),
    "notify.recipient3": ("email", "", (0, 254)),
    "notify.language": ("enum", "en", ("en", "fr")),                   # SPEC §7: English and French
    "notify.min_criticality": ("enum", "critical", ("information", "non_critical", "critical")),   # SPEC §5
    "notify.min_interval_min": ("int", 60, (1, 1440)),
    "bluetooth.enabled": ("bool", False, None),                        # SPEC §1: BLE disabled by default
    "policy.banner": ("bool", False, None),
    "policy.usb": ("bool", True, None),
    "policy.bluetooth": ("bool", False, None),                         # SPEC §1: disabled (security policy)
    "policy.cloud": ("bool", False, None),
    "policy.ftps_mandatory": ("bool", False, None),
    "policy.smtp": ("bool", True, None),
    "policy.smtps_mandatory": ("bool", False, None),
    "firewall.enabled": ("bool", True, None),
    "firewall.max_bandwidth_bps": ("int", 1000000, (10000, 1000000000)),   # SPEC §10: 1,000,000 bit/s
    "firewall.max_requests_per_s": ("int", 2000, (10, 100000)),        # SPEC §10: 2000 requests/s
    "firewall.ban_s": ("int", 30, (1, 3600)),                          # SPEC §10: 30 s
    "firewall.whitelist.enabled": ("bool", False, None),               # SPEC §10: whitelist off
    # issue 18: the MQTT publisher
    "mqtt.enabled": ("bool", False, None),
    "mqtt.host": ("host", "", (0, 253)),
    "mqtt.port": ("int", 8883, (1, 65535)),                            # IANA: secure-mqtt 8883
    "mqtt.tls": ("bool", True, None),
    "mqtt.client_id": ("str", "", (0, 64)),
    "mqtt.keep_alive_s": ("int", 60, (5, 3600)),
    "mqtt.user": ("str", "", (0, 64)),
    "mqtt.password": ("str", "", (0, 128)),
    "mqtt.client_cert": ("str", "", (0, 8192)),
    "mqtt.client_key": ("str", "", (0, 8192)),
    "mqtt.mode": ("enum", "json", ("json", "sparkplug")),
    "mqtt.qos": ("intenum", 1, (0, 1)),                                # MQTT 3.1.1 §4.3: QoS 2 not offered
    "mqtt.topic_template": ("str", "{site}/{server}/{device}/{load}/{measurement}", (1, 255)),     # issue 18
    "mqtt.publish": ("enum", "change", ("change", "period")),
    "mqtt.period_s": ("int", 60, (1, 86400)),
    "mqtt.min_interval_s": ("int", 0, (0, 3600)),                      # 0: every change, as issue 18 asks
    "mqtt.group_id": ("str", "M70", (1, 64)),
    "mqtt.edge_node_id": ("str", "", (0, 64)),
    "mqtt.primary_host_id": ("str", "", (0, 64)),
    "mqtt.spool_mb": ("int", 16, (1, 1024)),
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


# The text types that hold an address or a time: (accepted values, refused values), the longest allowed among them.
HOST_253 = "a" * 63 + "." + "b" * 63 + "." + "c" * 63 + "." + "d" * 61
EMAIL_254 = "l" * 64 + "@" + "d" * 63 + "." + "e" * 63 + "." + "f" * 58 + ".fr"
TYPED_TEXT = {
    "ipv4": (["1.1.1.1", "192.168.0.4", "255.255.255.255"],
             ["1.2.3", "256.1.1.1", "01.2.3.4", "1.2.3.4.5", " 1.2.3.4", "a.b.c.d", "1.2.3.4/24", "::1",
              "1.2.3.4\n"]),
    "netmask": (["255.255.255.0", "128.0.0.0", "255.255.255.255", "255.255.248.0"],
                ["255.0.255.0", "0.0.0.0", "255.255.255.1", "1.2.3.4", "255.255.255", "24"]),
    "host": (["a", "0.pool.ntp.org", "smtp-1.example.com", "10.0.0.1", HOST_253],
             ["bad_host", "-a.example", "a-.example", "a..b", "a" * 64 + ".com", "999.1.1.1", "1.2.3",
              "host name", HOST_253 + "d", "ex\u00e9mple.fr", "a.b."]),
    "email": (["a@b.fr", "first.last+tag@example.com", EMAIL_254],
              ["a@b", "@example.com", "a@", "a b@example.com", "a@@example.com", "a@example..com", "a@1.2.3.4",
               ".a@example.com", "a.@example.com", "l" * 65 + "@example.com", EMAIL_254 + "r", "a@b.fr, c@d.fr"]),
    "time": (["00:00", "07:30", "23:59"], ["24:00", "7:30", "12:60", "12h30", "12:3", "-1:00", "12:30:00"]),
}


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
    if kind == "intenum":      # each choice; a number between two choices, and one past each end
        between = [(low + high) // 2 for low, high in zip(bounds, bounds[1:]) if high - low > 1]
        return ([(choice, True) for choice in bounds] + [(n, False) for n in between]
                + [(bounds[0] - 1, False), (bounds[-1] + 1, False)])
    if kind in TYPED_TEXT:
        good = [(value, True) for value in TYPED_TEXT[kind][0] if bounds[0] <= len(value) <= bounds[1]]
        return good + [("", bounds[0] == 0), (5, False), (None, False)] + [(v, False) for v in TYPED_TEXT[kind][1]]
    return [(True, True), (False, True), (1, False), ("true", False), (None, False)]


@pytest.mark.parametrize("name", sorted(ROWS))
def test_every_row_below_at_and_above_its_bounds(name):
    for value, accepted in cases(name):
        if accepted:
            assert check_value(name, value) == value, (name, value)
        else:
            with pytest.raises(SettingError):
                check_value(name, value)
        if ROWS[name][0] in ("int", "intenum"):       # the command line and the forms parse text: same bounds
            if accepted:
                assert parse_value(name, str(value)) == value
            else:
                with pytest.raises(SettingError) as info:
                    parse_value(name, str(value))
                assert name in str(info.value) and str(value) in str(info.value)
    if ROWS[name][0] in ("int", "intenum"):
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
            elif kind in ("enum", "intenum"):
                values[name] = bounds[-end]
            elif kind in TYPED_TEXT:
                values[name] = TYPED_TEXT[kind][0][-end]
            else:
                values[name] = bool(end)

        async def scenario():
            settings = Settings(path, secret_box=box)
            await settings.set_many(values)
            for name, (kind, _d, bounds) in ROWS.items():
                if kind in ("int", "intenum", "str") or kind in TYPED_TEXT:
                    beyond = (bounds[end] + (1 if end else -1) if kind == "int" else bounds[-1] + 1 if kind == "intenum"
                              else "s" * (bounds[1] + 1))
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


# What a form shows for each value type (a secret text is a password field whatever its name).
KIND_OF_TYPE = {"bool": "checkbox", "int": "number", "enum": "select", "intenum": "select", "str": "text",
                "ipv4": "ip", "netmask": "ip",
                "host": "hostname", "email": "email", "time": "time"}


def test_every_row_has_a_form_field_a_screen_and_its_texts_in_english_and_french():
    for spec in settings_mod.SCHEMA:
        expected = "password" if spec.secret else KIND_OF_TYPE[spec.type]
        assert spec.kind == expected and spec.kind in settings_mod.KINDS, spec.name
        assert spec.secret is (spec.kind == "password"), spec.name
        assert spec.page in settings_mod.PAGES and spec in settings_mod.page_rows(spec.page)
        assert spec[:7] == (spec.name, spec.type, spec.default, spec.bounds, spec.profile, spec.secret, spec.live)
        assert spec.profile in ("admin", "cyber") and isinstance(spec.live, bool)
        keys = [spec.label, spec.help, "page.%s.title" % spec.page, "section.%s.%s.title" % (spec.page, spec.section)]
        keys += [spec.choice(value) for value in spec.bounds] if spec.type in ("enum", "intenum") else []
        for language in ("en", "fr"):
            for key in keys:
                assert i18n.has(key, language) and i18n.text(key, language).strip(), (key, language)
        assert spec.label == "setting.%s.label" % spec.name and spec.help == "setting.%s.help" % spec.name
    # every default passes its own row's check (a typo in a new default would not be caught elsewhere)
    for spec in settings_mod.SCHEMA:
        assert check_value(spec.name, spec.default) == spec.default, spec.name
    # a screen's rows come in table order, its sections grouped
    rows = settings_mod.page_rows("protocols.network")
    assert [r.name for r in rows][:3] == ["network.dhcp", "network.address", "network.netmask"]
    assert [r.section for r in rows] == ["ip"] * 7 + ["proxy"] * 3 + ["vlan"] * 2


NEW_TYPES = {"ipv4": "network.address", "netmask": "network.netmask", "host": "sntp.server", "email": "notify.sender",
             "time": "push.schedule.energy.time", "int": "sntp.port"}


def test_a_bad_value_of_each_new_type_is_refused_with_its_message_and_nothing_is_saved(tmp_path):
    path = tmp_path / "settings.json"
    box = SecretBox.for_state_dir(str(tmp_path))
    good = {"network.address": "10.1.2.3", "smtp.password": "s3cret", "push.schedule.energy.time": "06:15"}

    async def scenario():
        settings = Settings(str(path), secret_box=box)
        await settings.set_many(good)
        before = path.read_bytes()
        for kind, name in NEW_TYPES.items():
            bad_values = TYPED_TEXT[kind][1] if kind in TYPED_TEXT else [0, 65536, "123", 12.5]
            for bad in bad_values:
                with pytest.raises(SettingError) as info:
                    await settings.set_many({"gateway.area": "changed", "smtp.host": "mail.example.com", name: bad})
                assert [field for field, _message in info.value.fields] == [name], (name, bad)
                english, french = info.value.text("en"), info.value.text("fr")
                assert english == str(info.value) and english.startswith(name + ": ") and french != english
                if kind in TYPED_TEXT and bad.strip() and bad.isprintable():
                    assert repr(bad)[:30] in english and repr(bad)[:30] in french, (english, french)
                assert path.read_bytes() == before, (name, bad)
                assert settings.get("gateway.area") == "" and settings.get("smtp.host") == ""
        assert dict((n, settings.get(n)) for n in good) == good
    asyncio.run(scenario())
    assert Settings(str(path), secret_box=box).get("smtp.password") == "s3cret"
    # the forms' text: a stray blank around an address is dropped, not stored
    assert parse_value("network.dns1", " 9.9.9.9 ") == "9.9.9.9" and parse_value("sntp.server", "pool.ntp.org\n")
    with pytest.raises(SettingError) as info:
        parse_value("sntp.port", "ntp")
    assert str(info.value) == "sntp.port: expected an integer, got 'ntp'"
    assert info.value.text("fr") == "sntp.port : nombre entier attendu, reçu 'ntp'"


def test_a_form_with_several_bad_fields_gets_one_message_per_field_in_either_language():
    settings = Settings()
    form = {"gateway.name": "", "network.vlan.id": 4095, "notify.recipient1": "ops@example.com",
            "notify.recipient2": "ops(at)example.com", "no.such.setting": 1, "notify.language": "de"}
    with pytest.raises(SettingError) as info:
        settings.check_many(form)
    fields = dict(info.value.fields)
    assert list(fields) == ["gateway.name", "network.vlan.id", "notify.recipient2", "no.such.setting",
                            "notify.language"]
    assert fields["network.vlan.id"].text("en") == "4095 is outside 1..4094"
    assert fields["network.vlan.id"].text("fr") == "4095 est hors de la plage 1..4094"
    assert fields["gateway.name"].text("en") == "text of 1 to 32 characters expected"
    assert fields["gateway.name"].text("fr") == "texte de 1 à 32 caractères attendu"
    assert fields["notify.language"].text("fr") == "'de' ne fait pas partie des choix : en, fr"
    assert fields["no.such.setting"].text("en") == "unknown setting 'no.such.setting'"
    english = str(info.value)
    assert "network.vlan.id: 4095 is outside 1..4094" in english and "unknown setting 'no.such.setting'" in english
    assert "notify.recipient2 : 'ops(at)example.com' n'est pas une adresse e-mail" in info.value.text("fr")
    assert settings.get("notify.recipient1") == ""          # the good field of a refused form is not applied either
    # an oversized field is quoted cut short: the answer to a megabyte is not a megabyte
    for name, huge in (("network.domain", "a" * 1000000), ("notify.language", "é" * 1000000), ("x" * 1000000, 1)):
        with pytest.raises(SettingError) as info:
            settings.check_many({name: huge})
        assert len(info.value.text("fr")) < 200 and len(str(info.value)) < 200
    # a rule across settings (the topology's) stays a plain text, the same in both languages
    plain = SettingError("refused: the topology would have 11 devices")
    assert plain.fields == [] and plain.text("fr") == str(plain)


def test_the_door_refuses_a_bad_form_with_each_fields_message_and_the_profile_rule_of_new_rows(tmp_path):
    state = tmp_path / "state"

    async def scenario():
        async with running_gateway(state, topology_with(), {}) as gw:
            admin = gw.door(Caller("web", "admin"))
            await admin.set_settings({"network.address": "10.0.0.7", "network.gateway": "10.0.0.1",   # one subnet
                                      "notify.language": "fr"})
            path = state / "settings.json"
            before = path.read_bytes()
            form = {"network.address": "10.0.0.300", "network.netmask": "255.255.0.255", "smtp.port": 0,
                    "notify.recipient1": "someone@example.org"}
            with pytest.raises(api.Refused) as info:
                await admin.set_settings(form)
            assert info.value.reason == api.BAD_VALUE
            details = json.loads(json.dumps(info.value.details))           # plain data, ready for a JSON answer
            assert [d["field"] for d in details] == ["network.address", "network.netmask", "smtp.port"]
            french = [i18n.text(d["key"], "fr", **d["params"]) for d in details]
            assert french == ["'10.0.0.300' n'est pas une adresse IPv4 telle que 192.168.0.4",
                              "'255.255.0.255' n'est pas un masque de sous-réseau tel que 255.255.255.0",
                              "0 est hors de la plage 1..65535"]
            assert [d["message"] for d in details][2] == "0 is outside 1..65535"
            assert path.read_bytes() == before and gw.settings.get("notify.recipient1") == ""
            # the new rows' profiles: the firewall is Cyber Security's, the network the Admin's, the User nobody's
            with pytest.raises(api.Refused) as info:
                await admin.set_settings({"firewall.max_requests_per_s": 500})
            assert info.value.reason == api.RIGHTS
            with pytest.raises(api.Refused) as info:
                await gw.door(Caller("web", "user")).set_settings({"network.dhcp": True})
            assert info.value.reason == api.RIGHTS
            await gw.door(Caller("web", "cyber")).set_settings({"firewall.max_requests_per_s": 500})
            assert path.read_bytes() != before
        async with running_gateway(state, topology_with(), {}) as gw:
            assert gw.settings.get("firewall.max_requests_per_s") == 500 and gw.settings.get("notify.language") == "fr"
            assert gw.settings.get("network.address") == "10.0.0.7" and gw.settings.load_problem is None
    asyncio.run(scenario())
