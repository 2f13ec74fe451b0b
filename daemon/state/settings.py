"""Settings: one schema table, one store.

Every setting is one row: dotted name, type, default, bounds or choices, the
profile allowed to change it, whether it is a secret, whether it applies
live, and the form field that shows it; the rows sit under the screen
(``page``) and the part of it (``section``) where the web shows them. Their
label and help text are catalogue keys derived from the name
(``setting.<name>.label``, ``.help``, ``.choice.<value>``: daemon/i18n.py).
The CLI's ``--set``, the web forms, validation and storage all read this
table. Values are stored in ``state-dir/settings.json`` (tinydb, atomic
replace, a good copy kept as ``settings.json.bak``); only values that differ
from the default are kept.

A refusal names each refused setting with a catalogue message
(``SettingError.fields``), so a form shows one message per field in the
user's language; ``str()`` of it stays the English text the CLI prints.

A settings file that is not a valid document is moved aside and its
good copy restored (daemon/atomicfile.py); ``Settings.load_problem`` says
what happened, naming the file, and so does the log. A single bad value in a
good document falls back to its default, with a warning.
"""

import asyncio
import collections
import ipaddress
import logging
import re

from tinydb import TinyDB

from core import poll_tiers
from daemon.atomicfile import AtomicJSONStorage
from daemon.blocking import run_blocking
from daemon.i18n import Message

log = logging.getLogger("gateway.settings")

PARITY = ("N", "E", "O")
AUTH = ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512")       # SPEC §3.2
PRIV = ("none", "DES", "AES", "AES256")
SCHEDULE = ("off", "every", "daily", "weekly")                        # SPEC §5: every X min, or at a time of day/week
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ANY_PORT = (1, 65535)
BAUDS = (9600, 19200, 38400, 57600, 115200)    # SPEC §1: 9600–115200; the standard RS485 speeds of Socomec meters

# Value types: bool, int (bounds min, max), enum (choices), intenum (an int, one of the bounds: the standard line
# speeds a meter offers, not any number in a range), and text types whose bounds are a length
# (min, max; min 0: may be empty): str, ipv4 (dotted quad), netmask, host (name or IPv4), email, time (HH:MM).
TEXT_TYPES = ("str", "ipv4", "netmask", "host", "email", "time")
# Form field kinds: what a form shows for a row.
KINDS = ("text", "number", "select", "checkbox", "password", "ip", "hostname", "email", "time")

# (page, section, rows); a row: name, type, default, bounds or choices, profile, secret, live, field kind.
_TABLE = (
    ("system.identification", "gateway", (
        ("gateway.name", "str", "M-70", (1, 32), "admin", False, True, "text"),
        ("gateway.modbus_address", "int", 1, (1, 247), "admin", False, True, "number"),
        ("gateway.area", "str", "", (0, 32), "admin", False, True, "text"),
        ("gateway.location", "str", "", (0, 64), "admin", False, True, "text"),
        ("gateway.contact", "str", "", (0, 64), "admin", False, True, "text"),
        ("gateway.description", "str", "Energy-metering gateway", (0, 128), "admin", False, True, "text"),
    )),
    ("protocols.field", "time", (
        ("time.utc_offset_min", "int", 0, (-720, 840), "admin", False, True, "number"),
        ("time.dst", "bool", False, None, "admin", False, True, "checkbox"),
        ("sntp.enabled", "bool", False, None, "admin", False, True, "checkbox"),
        ("sntp.server", "host", "0.pool.ntp.org", (1, 253), "admin", False, True, "hostname"),
        ("sntp.port", "int", 123, ANY_PORT, "admin", False, True, "number"),
        ("sntp.period_s", "int", 3600, (60, 86400), "admin", False, True, "number"),
    )),
    ("protocols.field", "digiware", (
        ("bus.digiware.baud", "intenum", 38400, BAUDS, "admin", False, False, "select"),
        ("bus.digiware.parity", "enum", "N", PARITY, "admin", False, False, "select"),
        ("bus.digiware.stop_bits", "int", 1, (1, 2), "admin", False, False, "number"),
        ("bus.digiware.timeout_ms", "int", 100, (10, 5000), "admin", False, True, "number"),
        ("bus.digiware.retries", "int", 1, (0, 5), "admin", False, True, "number"),
    )),
    ("protocols.field", "rs485", (
        ("bus.rs485.mode", "enum", "master", ("master", "slave"), "admin", False, False, "select"),
        ("bus.rs485.baud", "intenum", 38400, BAUDS, "admin", False, False, "select"),
        ("bus.rs485.parity", "enum", "N", PARITY, "admin", False, False, "select"),
        ("bus.rs485.stop_bits", "int", 1, (1, 2), "admin", False, False, "number"),
        ("bus.rs485.address", "int", 1, (1, 247), "admin", False, False, "number"),
        ("bus.rs485.timeout_ms", "int", 100, (10, 5000), "admin", False, True, "number"),
        ("bus.rs485.retries", "int", 1, (0, 5), "admin", False, True, "number"),
    )),
    ("system.advanced", "polling", (
        ("poll.min_cycle_ms", "int", 0, (0, 3600000), "admin", False, True, "number"),
        ("poll.stale_after_s", "int", 2, (1, 3600), "admin", False, True, "number"),   # floor of the freshness rule
        ("poll.backoff_max_s", "int", 60, (1, 3600), "admin", False, True, "number"),
    ) + tuple((poll_tiers.setting(tier), "int", poll_tiers.period(tier), (1, 3600), "admin", False, True, "number")
              for tier in poll_tiers.SLOW)),      # each slow tier's rate (issue 19), defaults from its table
    ("devices.sources", "detection", (
        ("discovery.mode", "enum", "fast", ("fast", "full"), "admin", False, True, "select"),
        ("discovery.first_address", "int", 1, (1, 247), "admin", False, True, "number"),
        ("discovery.last_address", "int", 247, (1, 247), "admin", False, True, "number"),
        ("discovery.timeout_ms", "int", 60, (10, 5000), "admin", False, True, "number"),
        ("discovery.auto_resolve", "bool", True, None, "admin", False, True, "checkbox"),
    )),
    ("security.https", "web", (
        ("http.port", "int", 80, ANY_PORT, "cyber", False, False, "number"),
        ("http.bind", "str", "0.0.0.0", (1, 64), "cyber", False, False, "text"),
        ("https.port", "int", 443, ANY_PORT, "cyber", False, False, "number"),
        # HTTP answers with a redirect to HTTPS: "auto" does on the Raspberry Pi, not on the simulated board
        ("https.redirect", "enum", "auto", ("auto", "on", "off"), "cyber", False, True, "select"),
    )),
    ("protocols.field", "modbus_tcp", (
        ("modbus.enabled", "bool", True, None, "admin", False, True, "checkbox"),
        ("modbus.port", "int", 502, ANY_PORT, "cyber", False, True, "number"),
        ("modbus.bind", "str", "0.0.0.0", (1, 64), "cyber", False, True, "text"),
        ("modbus.max_connections", "int", 32, (1, 32), "cyber", False, True, "number"),
        ("modbus.idle_timeout_s", "int", 60, (1, 3600), "admin", False, True, "number"),
    )),
    ("protocols.field", "snmp", (
        ("snmp.enabled", "bool", False, None, "admin", False, True, "checkbox"),
        ("snmp.port", "int", 161, ANY_PORT, "cyber", False, True, "number"),
        ("snmp.bind", "str", "0.0.0.0", (1, 64), "cyber", False, True, "text"),
    )),
    ("protocols.field", "snmp_communities", (
        ("snmp.v1.read_community", "str", "public", (1, 32), "admin", True, True, "password"),
        ("snmp.v1.write_community", "str", "private", (1, 32), "admin", True, True, "password"),
        ("snmp.v2c.read_community", "str", "publicV2", (1, 32), "admin", True, True, "password"),
        ("snmp.v2c.write_community", "str", "privateV2", (1, 32), "admin", True, True, "password"),
    )),
    ("protocols.field", "snmp_v3", (
        ("snmp.v3.read_user", "str", "control", (1, 32), "admin", False, True, "text"),
        ("snmp.v3.read_auth", "enum", "SHA", AUTH, "admin", False, True, "select"),
        ("snmp.v3.read_auth_password", "str", "Control-2024", (8, 16), "admin", True, True, "password"),
        ("snmp.v3.read_priv", "enum", "AES", PRIV, "admin", False, True, "select"),
        ("snmp.v3.read_priv_password", "str", "Control-2024", (8, 16), "admin", True, True, "password"),
        ("snmp.v3.write_user", "str", "admin", (1, 32), "admin", False, True, "text"),
        ("snmp.v3.write_auth", "enum", "SHA", AUTH, "admin", False, True, "select"),
        ("snmp.v3.write_auth_password", "str", "Admin-2024!", (8, 16), "admin", True, True, "password"),
        ("snmp.v3.write_priv", "enum", "AES", PRIV, "admin", False, True, "select"),
        ("snmp.v3.write_priv_password", "str", "Admin-2024!", (8, 16), "admin", True, True, "password"),
    )),
    ("protocols.field", "snmp_traps", (
        ("snmp.trap.community", "str", "trap", (1, 32), "admin", True, True, "password"),
        ("snmp.trap.version", "enum", "v2c", ("v1", "v2c", "v3"), "admin", False, True, "select"),
        ("snmp.trap.broadcast", "bool", False, None, "admin", False, True, "checkbox"),
        ("snmp.trap.host1", "str", "", (0, 64), "admin", False, True, "text"),
        ("snmp.trap.port1", "int", 162, ANY_PORT, "admin", False, True, "number"),
        ("snmp.trap.host2", "str", "", (0, 64), "admin", False, True, "text"),
        ("snmp.trap.port2", "int", 162, ANY_PORT, "admin", False, True, "number"),
        ("snmp.trap.period_s", "int", 3600, (1, 86400), "admin", False, True, "number"),
        ("snmp.trap.mode", "enum", "trap", ("trap", "inform"), "admin", False, True, "select"),
        ("snmp.trap.inform_timeout_s", "int", 5, (1, 60), "admin", False, True, "number"),
        ("snmp.trap.inform_retries", "int", 2, (0, 10), "admin", False, True, "number"),
    )),
    ("protocols.field", "bacnet", (
        ("bacnet.enabled", "bool", False, None, "admin", False, True, "checkbox"),
        ("bacnet.port", "int", 47808, ANY_PORT, "cyber", False, True, "number"),
        ("bacnet.bind", "str", "0.0.0.0", (1, 64), "cyber", False, True, "text"),
        ("bacnet.main_instance", "int", 100, (0, 4194000), "admin", False, True, "number"),
        ("bacnet.network", "int", 1000, (1, 65534), "admin", False, True, "number"),
        ("bacnet.time_sync", "bool", False, None, "admin", False, True, "checkbox"),
    )),
    ("protocols.network", "ip", (        # SPEC §10: 192.168.0.4 / 255.255.255.0, gateway 192.168.0.1; on reboot
        ("network.dhcp", "bool", False, None, "admin", False, False, "checkbox"),
        ("network.address", "ipv4", "192.168.0.4", (7, 15), "admin", False, False, "ip"),
        ("network.netmask", "netmask", "255.255.255.0", (7, 15), "admin", False, False, "ip"),
        ("network.gateway", "ipv4", "192.168.0.1", (0, 15), "admin", False, False, "ip"),
        ("network.dns1", "ipv4", "", (0, 15), "admin", False, False, "ip"),
        ("network.dns2", "ipv4", "", (0, 15), "admin", False, False, "ip"),
        ("network.domain", "host", "", (0, 253), "admin", False, False, "hostname"),
    )),
    ("protocols.network", "proxy", (
        ("network.proxy.enabled", "bool", False, None, "admin", False, False, "checkbox"),
        ("network.proxy.host", "host", "", (0, 253), "admin", False, False, "hostname"),
        ("network.proxy.port", "int", 8080, ANY_PORT, "admin", False, False, "number"),
    )),
    ("protocols.network", "vlan", (
        ("network.vlan.enabled", "bool", False, None, "admin", False, False, "checkbox"),
        ("network.vlan.id", "int", 1, (1, 4094), "admin", False, False, "number"),       # IEEE 802.1Q
    )),
    ("protocols.data_push", "identification", (     # SPEC §10: site name SITE; server name = NET ID (empty here)
        ("push.site_name", "str", "SITE", (1, 32), "admin", False, True, "text"),
        ("push.server_name", "str", "", (0, 32), "admin", False, True, "text"),
    )),
    ("protocols.data_push", "server", (             # SPEC §5: FTP/FTPS (explicit, implicit; passive, active), HTTP(S)
        ("push.protocol", "enum", "none", ("none", "ftp", "http"), "admin", False, True, "select"),
        ("push.host", "host", "", (0, 253), "admin", False, True, "hostname"),
        ("push.port", "int", 21, ANY_PORT, "admin", False, True, "number"),
        ("push.user", "str", "", (0, 64), "admin", False, True, "text"),
        ("push.password", "str", "", (0, 64), "admin", True, True, "password"),
        ("push.folder", "str", "", (0, 128), "admin", False, True, "text"),
        ("push.secure", "bool", False, None, "admin", False, True, "checkbox"),
        ("push.tls_mode", "enum", "explicit", ("explicit", "implicit"), "admin", False, True, "select"),
        ("push.ftp_mode", "enum", "passive", ("passive", "active"), "admin", False, True, "select"),
        ("push.format", "enum", "csv", ("csv", "ems"), "admin", False, True, "select"),
        ("push.upload_log", "bool", False, None, "admin", False, True, "checkbox"),
        ("push.spool_mb", "int", 64, (1, 1024), "admin", False, True, "number"),     # store and forward's room
    )),
    ("devices.planning", "energy", (
        ("push.schedule.energy.mode", "enum", "off", SCHEDULE, "admin", False, True, "select"),
        ("push.schedule.energy.every_min", "int", 60, (10, 10080), "admin", False, True, "number"),
        ("push.schedule.energy.time", "time", "00:00", (5, 5), "admin", False, True, "time"),
        ("push.schedule.energy.weekday", "enum", "mon", WEEKDAYS, "admin", False, True, "select"),
    )),
    ("devices.planning", "measurements", (
        ("push.schedule.measurements.mode", "enum", "off", SCHEDULE, "admin", False, True, "select"),
        ("push.schedule.measurements.every_min", "int", 60, (10, 10080), "admin", False, True, "number"),
        ("push.schedule.measurements.time", "time", "00:00", (5, 5), "admin", False, True, "time"),
        ("push.schedule.measurements.weekday", "enum", "mon", WEEKDAYS, "admin", False, True, "select"),
    )),
    ("devices.planning", "load_curves", (
        ("push.schedule.load_curves.mode", "enum", "off", SCHEDULE, "admin", False, True, "select"),
        ("push.schedule.load_curves.every_min", "int", 60, (10, 10080), "admin", False, True, "number"),
        ("push.schedule.load_curves.time", "time", "00:00", (5, 5), "admin", False, True, "time"),
        ("push.schedule.load_curves.weekday", "enum", "mon", WEEKDAYS, "admin", False, True, "select"),
    )),
    ("protocols.email", "smtp", (                      # SPEC §10: disabled; port 465; secure
        ("smtp.enabled", "bool", False, None, "admin", False, True, "checkbox"),
        ("smtp.host", "host", "", (0, 253), "admin", False, True, "hostname"),
        ("smtp.port", "int", 465, ANY_PORT, "admin", False, True, "number"),
        ("smtp.secure", "bool", True, None, "admin", False, True, "checkbox"),
        ("smtp.tls_mode", "enum", "implicit", ("implicit", "starttls"), "admin", False, True, "select"),
        ("smtp.auth", "bool", False, None, "admin", False, True, "checkbox"),
        ("smtp.user", "str", "", (0, 64), "admin", False, True, "text"),
        ("smtp.password", "str", "", (0, 64), "admin", True, True, "password"),
    )),
    ("devices.notifications", "email", (              # SPEC §5: sender, up to 3 recipients, language, criticality
        ("notify.sender", "email", "", (0, 254), "admin", False, True, "email"),
        ("notify.recipient1", "email", "", (0, 254), "admin", False, True, "email"),
        ("notify.recipient2", "email", "", (0, 254), "admin", False, True, "email"),
        ("notify.recipient3", "email", "", (0, 254), "admin", False, True, "email"),
        ("notify.language", "enum", "en", ("en", "fr"), "admin", False, True, "select"),
        ("notify.min_criticality", "enum", "critical", ("information", "non_critical", "critical"), "admin", False,
         True, "select"),
        ("notify.min_interval_min", "int", 60, (1, 1440), "admin", False, True, "number"),
    )),
    ("protocols.bluetooth", "bluetooth", (
        ("bluetooth.enabled", "bool", False, None, "admin", False, True, "checkbox"),
    )),
    # issue 18: the MQTT publisher (outbound/mqtt): the broker, what is published, Sparkplug B's names, the spool
    ("protocols.mqtt", "broker", (
        ("mqtt.enabled", "bool", False, None, "admin", False, True, "checkbox"),
        ("mqtt.host", "host", "", (0, 253), "admin", False, True, "hostname"),
        ("mqtt.port", "int", 8883, ANY_PORT, "admin", False, True, "number"),           # MQTT over TLS (IANA)
        ("mqtt.tls", "bool", True, None, "admin", False, True, "checkbox"),
        ("mqtt.client_id", "str", "", (0, 64), "admin", False, True, "text"),          # empty: the NET ID
        ("mqtt.keep_alive_s", "int", 60, (5, 3600), "admin", False, True, "number"),
        ("mqtt.user", "str", "", (0, 64), "admin", False, True, "text"),
        ("mqtt.password", "str", "", (0, 128), "admin", True, True, "password"),
        ("mqtt.client_cert", "str", "", (0, 8192), "admin", False, True, "text"),       # PEM, line breaks optional
        ("mqtt.client_key", "str", "", (0, 8192), "admin", True, True, "password"),     # PEM, unencrypted
    )),
    ("protocols.mqtt", "payload", (
        ("mqtt.mode", "enum", "json", ("json", "sparkplug"), "admin", False, True, "select"),
        ("mqtt.qos", "intenum", 1, (0, 1), "admin", False, True, "select"),
        ("mqtt.topic_template", "str", "{site}/{server}/{device}/{load}/{measurement}", (1, 255), "admin", False,
         True, "text"),
        ("mqtt.publish", "enum", "change", ("change", "period"), "admin", False, True, "select"),
        ("mqtt.period_s", "int", 60, (1, 86400), "admin", False, True, "number"),
        # on change, a value is published at most this often (0: every change); the latest is never lost
        ("mqtt.min_interval_s", "int", 0, (0, 3600), "admin", False, True, "number"),
    )),
    ("protocols.mqtt", "sparkplug", (                 # Eclipse Sparkplug 3.0 topic namespace
        ("mqtt.group_id", "str", "M70", (1, 64), "admin", False, True, "text"),
        ("mqtt.edge_node_id", "str", "", (0, 64), "admin", False, True, "text"),       # empty: the NET ID
        ("mqtt.primary_host_id", "str", "", (0, 64), "admin", False, True, "text"),    # empty: do not wait
    )),
    ("protocols.mqtt", "spool", (
        ("mqtt.spool_mb", "int", 16, (1, 1024), "admin", False, True, "number"),       # store and forward's room
    )),
    ("security.policy", "banner", (
        ("policy.banner", "bool", False, None, "cyber", False, True, "checkbox"),
    )),
    ("security.policy", "field_protocols", (
        ("policy.modbus_write", "bool", False, None, "cyber", False, True, "checkbox"),
        ("policy.snmp", "bool", True, None, "cyber", False, True, "checkbox"),
        ("policy.bacnet", "bool", True, None, "cyber", False, True, "checkbox"),
    )),
    ("security.policy", "peripherals", (
        ("policy.modbus_slave", "bool", True, None, "cyber", False, True, "checkbox"),
        ("policy.usb", "bool", True, None, "cyber", False, True, "checkbox"),
        ("policy.bluetooth", "bool", False, None, "cyber", False, True, "checkbox"),   # SPEC §1: BLE off by default
    )),
    ("security.policy", "data_push", (
        ("policy.cloud", "bool", False, None, "cyber", False, True, "checkbox"),
        ("policy.ftps_mandatory", "bool", False, None, "cyber", False, True, "checkbox"),
    )),
    ("security.policy", "email", (
        ("policy.smtp", "bool", True, None, "cyber", False, True, "checkbox"),
        ("policy.smtps_mandatory", "bool", False, None, "cyber", False, True, "checkbox"),
    )),
    ("security.policy", "session", (
        ("session.max_attempts", "int", 3, (1, 20), "cyber", False, True, "number"),          # failed logins, a lock
        ("session.lockout_s", "int", 3600, (60, 86400), "cyber", False, True, "number"),      # how long it lasts
        ("session.lifetime_s", "int", 86400, (60, 604800), "cyber", False, True, "number"),   # idle time that ends one
        ("password.expiry_days", "int", 365, (30, 3650), "cyber", False, True, "number"),     # a password's life
    )),
    ("security.firewall", "flood", (                  # SPEC §10: 1,000,000 bit/s, 2000 requests/s, 30 s ban
        ("firewall.enabled", "bool", True, None, "cyber", False, True, "checkbox"),
        ("firewall.max_bandwidth_bps", "int", 1000000, (10000, 1000000000), "cyber", False, True, "number"),
        ("firewall.max_requests_per_s", "int", 2000, (10, 100000), "cyber", False, True, "number"),
        ("firewall.ban_s", "int", 30, (1, 3600), "cyber", False, True, "number"),
        ("firewall.whitelist.enabled", "bool", False, None, "cyber", False, True, "checkbox"),
    )),
    ("system.upgrade", "trial", (       # daemon/upgrade/trial.py: when a new software slot is kept or rolled back
        ("upgrade.healthy_after_s", "int", 60, (5, 3600), "cyber", False, False, "number"),
        ("upgrade.trial_timeout_s", "int", 600, (5, 7200), "cyber", False, False, "number"),
    )),
    ("system.advanced", "storage", (
        ("events.capacity", "int", 2000, (100, 100000), "cyber", False, False, "number"),
        ("alarms.check_s", "int", 10, (1, 3600), "admin", False, True, "number"),
        ("storage.points_per_series", "int", 8784, (1464, 35136), "admin", False, False, "number"),
        ("storage.consumption_period_min", "int", 60, (10, 60), "admin", False, True, "number"),
        ("log.level", "enum", "info", ("debug", "info", "warning", "error"), "admin", False, True, "select"),
    )),
    ("devices.sources", "generic", (     # issue 18: generic devices' Modbus TCP client (runtime/tcplink.py)
        ("generic.tcp_timeout_ms", "int", 1000, (100, 10000), "admin", False, True, "number"),
        ("generic.tcp_retries", "int", 1, (0, 5), "admin", False, True, "number"),
    )),
)

NAME, TYPE, DEFAULT, BOUNDS, PROFILE, SECRET, LIVE, KIND, PAGE, SECTION = range(10)


class Setting(collections.namedtuple("Setting", "name type default bounds profile secret live kind page section")):
    """One schema row (still a tuple: ``row[DEFAULT]`` reads as before), with its catalogue keys."""
    __slots__ = ()

    @property
    def label(self):
        return "setting.%s.label" % self.name

    @property
    def help(self):
        return "setting.%s.help" % self.name

    def choice(self, value):
        """The catalogue key of one choice of an enum row (what a select shows for it)."""
        return "setting.%s.choice.%s" % (self.name, value)


SCHEMA = tuple(Setting(*(spec + (page, section))) for page, section, rows in _TABLE for spec in rows)
_ROWS = dict((spec.name, spec) for spec in SCHEMA)
PAGES = tuple(dict.fromkeys(spec.page for spec in SCHEMA))


def page_rows(page):
    """The rows one screen shows, in table order (sections in order of first appearance)."""
    return tuple(spec for spec in SCHEMA if spec.page == page)


class SettingError(ValueError):
    """A setting name or value that the schema refuses (clear message).

    ``message`` is a plain text (a rule across settings, as the topology's check raises), a
    daemon.i18n.Message, or a list of them (one per refusal); ``str()`` is English. ``fields`` lists
    (name, Message) per refused setting: a form shows each next to its field, in the user's language.
    """

    def __init__(self, message, fields=()):
        self.messages = list(message) if isinstance(message, (list, tuple)) else [message]
        self.fields = list(fields)
        ValueError.__init__(self, "; ".join(str(m) for m in self.messages))

    @classmethod
    def of(cls, name, key, **params):
        problem = Message(key, **params)
        return cls(Message("error.field", name=name, problem=problem), [(name, problem)])

    def details(self):
        """The refused fields as plain (JSON-ready) data for a form: the field, its message's catalogue key and
        parameters (to say it in the user's language) and the English text."""
        return [{"field": name, "key": message.key, "params": dict(message.params), "message": str(message)}
                for name, message in self.fields]

    def text(self, language):
        """The whole refusal in ``language`` ("en", "fr")."""
        return "; ".join(m.text(language) if isinstance(m, Message) else str(m) for m in self.messages)


def _shown(value):
    """A refused value as a message quotes it: its repr, cut short (a form field may be megabytes)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "...'"


def row(name):
    try:
        return _ROWS[name]
    except (KeyError, TypeError):
        message = Message("error.setting.unknown", name=_shown(name))
        raise SettingError(message, [(name, message)]) from None


def parse_value(name, text):
    """Text (CLI, form field) → typed value, checked against the schema."""
    spec = row(name)
    kind = spec.type
    if kind == "bool":
        lowered = str(text).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingError.of(name, "error.bool.parse", text=_shown(text))
    if kind in ("int", "intenum"):
        try:
            value = int(str(text).strip(), 10)
        except ValueError:
            raise SettingError.of(name, "error.int.parse", text=_shown(text)) from None
        return check_value(name, value)
    if kind in ("ipv4", "netmask", "host", "email", "time"):
        text = str(text).strip()          # a form's stray blank is not part of an address
    return check_value(name, str(text))


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]\Z")


def _ipv4(text):
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _netmask(text):
    if not _ipv4(text):
        return False
    bits = int(ipaddress.IPv4Address(text))
    inverted = ~bits & 0xFFFFFFFF
    return bits != 0 and inverted & (inverted + 1) == 0          # ones then zeros: 255.255.255.0, not 255.0.255.0


def _host(text):
    """A DNS name (RFC 1123 labels, not all digits at the end) or a dotted-quad IPv4 address."""
    if _ipv4(text):
        return True
    labels = text.split(".")
    return len(text) <= 253 and all(_HOST_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _email(text):
    local, at, domain = text.rpartition("@")
    return bool(at) and 0 < len(local) <= 64 and bool(_EMAIL_LOCAL.match(local)) and "." in domain and \
        _host(domain) and not _ipv4(domain)


_TEXT_CHECKS = {"ipv4": (_ipv4, "error.ipv4"), "netmask": (_netmask, "error.netmask"), "host": (_host, "error.host"),
                "email": (_email, "error.email"), "time": (lambda text: bool(_TIME.match(text)), "error.time")}


def check_value(name, value):
    spec = row(name)
    kind, bounds = spec.type, spec.bounds
    if kind == "bool":
        if not isinstance(value, bool):
            raise SettingError.of(name, "error.bool.type")
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError.of(name, "error.int.type")
        if not bounds[0] <= value <= bounds[1]:
            raise SettingError.of(name, "error.int.range", value=value, min=bounds[0], max=bounds[1])
    elif kind == "intenum":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError.of(name, "error.int.type")
        if value not in bounds:
            raise SettingError.of(name, "error.enum.choice", value=_shown(value), choices=", ".join(map(str, bounds)))
    elif kind == "enum":
        if not isinstance(value, str) or value not in bounds:
            raise SettingError.of(name, "error.enum.choice", value=_shown(value), choices=", ".join(bounds))
    elif kind in TEXT_TYPES:
        if not isinstance(value, str) or not bounds[0] <= len(value) <= bounds[1]:
            if kind == "str":
                raise SettingError.of(name, "error.text.length", min=bounds[0], max=bounds[1])
            if value == "":
                raise SettingError.of(name, "error.text.required")
            raise SettingError.of(name, _TEXT_CHECKS[kind][1], value=_shown(value))    # "1.2.3": not an address
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise SettingError.of(name, "error.text.control")
        if kind in _TEXT_CHECKS and value:           # an empty value is allowed where the length allows it
            check, key = _TEXT_CHECKS[kind]
            if not check(value):
                raise SettingError.of(name, key, value=_shown(value))
    return value


def parse_assignment(text):
    """``key=value`` from the command line → (key, typed value)."""
    if "=" not in text:
        raise SettingError(Message("error.assignment", text=_shown(text)))
    key, value = text.split("=", 1)
    key = key.strip()
    return key, parse_value(key, value)


def _document_shape(doc):
    """A settings document is {"settings": {id: {name, value | enc}}}: ValueError otherwise."""
    table = doc.get("settings", {})
    if not isinstance(table, dict) or not all(isinstance(entry, dict) for entry in table.values()):
        raise ValueError("the settings table is not a table of documents")


class Settings:
    """Current values: defaults, overlaid by the stored document, then overrides.

    Command-line overrides (``--set``) are not written to disk: they hold for
    this run only, as a developer expects of a flag.
    """

    def __init__(self, path=None, overrides=None, secret_box=None):
        self.path = path
        self.secret_box = secret_box
        self._stored = {}
        self._overrides = dict(overrides or {})
        self._listeners = []
        self._checks = []
        self._lock = asyncio.Lock()
        self.load_problem = None       # what was wrong with the file when it was read (None: nothing)
        self.needs_sealing = False     # the file holds a secret in clear (an older version's): seal_stored()
        if path:
            self._stored = self._read(path)

    def _problem(self, text):
        self.load_problem = text if self.load_problem is None else self.load_problem + "; " + text

    def _read(self, path):
        db = TinyDB(path, storage=AtomicJSONStorage, check=_document_shape)
        try:
            docs = db.table("settings").all()
            if db.storage.problem:
                self._problem(db.storage.problem)
        finally:
            db.close()
        stored = {}
        for doc in docs:
            name = doc.get("name")
            try:
                secret = row(name)[SECRET]
            except SettingError:
                continue
            if secret and "enc" in doc:
                value = self.secret_box.decrypt(name, doc["enc"]) if self.secret_box is not None else None
                if value is None:    # another gateway's key, or a damaged one: the secret reads as unset
                    self._bad_value(path, name, "cannot be decrypted with this device's key")
                    continue
            elif secret:
                if self.secret_box is None or "value" not in doc:
                    continue
                value = doc.get("value")      # an older file's clear secret: taken, and sealed at the next save
                self.needs_sealing = True
            else:
                value = doc.get("value")
            try:
                stored[name] = check_value(name, value)
            except SettingError as exc:   # a hand-edited bad value falls back to the default, said
                self._bad_value(path, name, str(exc))
        return stored

    def _bad_value(self, path, name, why):
        if why.startswith(name + ": "):
            why = why[len(name) + 2:]
        default = "(secret)" if row(name)[SECRET] else repr(row(name)[DEFAULT])
        log.warning("%s: %s: %s: the default %s applies", path, name, why, default)
        self._problem("%s: %s: %s" % (path, name, why))

    def get(self, name):
        if name in self._overrides:
            return self._overrides[name]
        if name in self._stored:
            return self._stored[name]
        return row(name)[DEFAULT]

    def __getitem__(self, name):
        return self.get(name)

    def all(self):
        return dict((spec[NAME], self.get(spec[NAME])) for spec in SCHEMA)

    def on_change(self, listener):
        """``listener(name, value)`` after each change (live settings apply at once)."""
        self._listeners.append(listener)

    def add_check(self, check):
        """``check(proposed)`` before each change: ``proposed`` maps every setting to its value after the
        change; it raises SettingError to refuse (a rule across settings and state, e.g. the topology's
        10 devices at 9600 baud)."""
        self._checks.append(check)

    def check_many(self, values):
        """The checked values of a change (each against the schema, then the whole against the checks).
        Nothing is applied. A SettingError names every refused field (a form shows one message per field);
        the checks across settings run only on values that are each valid."""
        checked, refusals = {}, []
        for name, value in values.items():
            try:
                checked[name] = check_value(name, value)
            except SettingError as exc:
                refusals.append(exc)
        if refusals:
            raise SettingError([m for exc in refusals for m in exc.messages],
                               [field for exc in refusals for field in exc.fields])
        if self._checks:
            proposed = self.all()
            proposed.update(checked)
            for check in list(self._checks):
                check(proposed)
        return checked

    async def set_many(self, values):
        """Validate all, then store all, then notify: a bad value changes nothing."""
        checked = self.check_many(values)
        async with self._lock:
            new_stored = dict(self._stored)
            for name, value in checked.items():
                if value == row(name)[DEFAULT]:
                    new_stored.pop(name, None)
                else:
                    new_stored[name] = value
                self._overrides.pop(name, None)
            if self.path:
                await run_blocking(self._write, self.path, self._documents(new_stored))
                self.needs_sealing = False
            self._stored = new_stored
        for name, value in checked.items():
            for listener in list(self._listeners):
                listener(name, value)

    def stored(self):
        """The values kept in the file (those that differ from their defaults), secrets in clear: what a backup
        carries (encrypted under its own password) so it restores onto another gateway with another key."""
        return dict(self._stored)

    async def seal_stored(self):
        """Rewrite the file when it holds a secret in clear (an older version's file): sealed from now on."""
        if not self.needs_sealing or not self.path:
            return False
        async with self._lock:
            await run_blocking(self._write, self.path, self._documents(self._stored))
            self.needs_sealing = False
        return True

    def check_stored(self, values):
        """The checked values of a whole stored document (a restored backup): every name known and valid, the
        cross-setting checks passed on the result; SettingError otherwise, nothing applied."""
        checked, refusals = {}, []
        for name, value in values.items():
            try:
                checked[name] = check_value(name, value)
            except SettingError as exc:
                refusals.append(exc)
        if refusals:
            raise SettingError([m for exc in refusals for m in exc.messages],
                               [field for exc in refusals for field in exc.fields])
        proposed = dict((spec[NAME], checked.get(spec[NAME], spec[DEFAULT])) for spec in SCHEMA)
        for check in list(self._checks):
            check(proposed)
        return dict((name, value) for name, value in checked.items() if value != row(name)[DEFAULT])

    async def replace_stored(self, values):
        """Replace every stored value by ``values`` (a restored backup; the rest back to defaults) in one
        atomic write, secrets sealed under this gateway's key; listeners hear each setting whose value changed.
        Command-line overrides stay for this run."""
        checked = self.check_stored(values)
        async with self._lock:
            before = self.all()
            if self.path:
                await run_blocking(self._write, self.path, self._documents(checked))
            self._stored = checked
            self.needs_sealing = False
        after = self.all()
        for name in sorted(name for name in after if after[name] != before[name]):
            for listener in list(self._listeners):
                listener(name, after[name])

    def _documents(self, stored):
        docs = {}
        for i, (name, value) in enumerate(sorted(stored.items()), 1):
            if row(name)[SECRET]:
                if self.secret_box is None:
                    raise SettingError.of(name, "error.secret.no_key")
                docs[str(i)] = {"name": name, "enc": self.secret_box.encrypt(name, value)}
            else:
                docs[str(i)] = {"name": name, "value": value}
        return docs

    @staticmethod
    def _write(path, docs):
        # One atomic replace of the whole tinydb document: a power cut leaves
        # the old settings or the new ones, never an emptied table.
        AtomicJSONStorage(path).write({"settings": docs})
