"""Settings: one schema table, one store.

Every setting is one row: dotted name, type, default, bounds or choices, the
profile allowed to change it, whether it is a secret, whether it applies
live. The CLI's ``--set``, the web forms, validation and storage all read
this table. Values are stored in ``state-dir/settings.json`` (tinydb,
atomic replace, a good copy kept as ``settings.json.bak``); only
values that differ from the default are kept.

A settings file that is not a valid document is moved aside and its
good copy restored (daemon/atomicfile.py); ``Settings.load_problem`` says
what happened, naming the file, and so does the log. A single bad value in a
good document falls back to its default, with a warning.
"""

import asyncio
import logging

from tinydb import TinyDB

from daemon.atomicfile import AtomicJSONStorage
from daemon.blocking import run_blocking

log = logging.getLogger("gateway.settings")

# name, type, default, bounds (min, max) or choices, profile, secret, live
SCHEMA = (
    ("gateway.name", "str", "M-70", (1, 32), "admin", False, True),
    ("gateway.modbus_address", "int", 1, (1, 247), "admin", False, True),
    ("gateway.area", "str", "", (0, 32), "admin", False, True),
    ("gateway.location", "str", "", (0, 64), "admin", False, True),
    ("gateway.contact", "str", "", (0, 64), "admin", False, True),
    ("gateway.description", "str", "Energy-metering gateway", (0, 128), "admin", False, True),
    ("time.utc_offset_min", "int", 0, (-720, 840), "admin", False, True),
    ("time.dst", "bool", False, None, "admin", False, True),
    ("bus.digiware.baud", "int", 38400, (9600, 115200), "admin", False, False),
    ("bus.digiware.parity", "enum", "N", ("N", "E", "O"), "admin", False, False),
    ("bus.digiware.stop_bits", "int", 1, (1, 2), "admin", False, False),
    ("bus.digiware.timeout_ms", "int", 100, (10, 5000), "admin", False, True),
    ("bus.digiware.retries", "int", 1, (0, 5), "admin", False, True),
    ("bus.rs485.mode", "enum", "master", ("master", "slave"), "admin", False, False),
    ("bus.rs485.baud", "int", 38400, (9600, 115200), "admin", False, False),
    ("bus.rs485.parity", "enum", "N", ("N", "E", "O"), "admin", False, False),
    ("bus.rs485.stop_bits", "int", 1, (1, 2), "admin", False, False),
    ("bus.rs485.address", "int", 1, (1, 247), "admin", False, False),
    ("bus.rs485.timeout_ms", "int", 100, (10, 5000), "admin", False, True),
    ("bus.rs485.retries", "int", 1, (0, 5), "admin", False, True),
    ("poll.min_cycle_ms", "int", 0, (0, 3600000), "admin", False, True),
    ("poll.stale_after_s", "int", 2, (1, 3600), "admin", False, True),      # floor of the freshness rule (cache.py)
    ("poll.backoff_max_s", "int", 60, (1, 3600), "admin", False, True),
    ("discovery.mode", "enum", "fast", ("fast", "full"), "admin", False, True),
    ("discovery.first_address", "int", 1, (1, 247), "admin", False, True),
    ("discovery.last_address", "int", 247, (1, 247), "admin", False, True),
    ("discovery.timeout_ms", "int", 60, (10, 5000), "admin", False, True),
    ("discovery.auto_resolve", "bool", True, None, "admin", False, True),
    ("http.port", "int", 80, (1, 65535), "cyber", False, False),
    ("http.bind", "str", "0.0.0.0", (1, 64), "cyber", False, False),
    ("https.port", "int", 443, (1, 65535), "cyber", False, False),
    ("modbus.enabled", "bool", True, None, "cyber", False, True),
    ("modbus.port", "int", 502, (1, 65535), "cyber", False, True),
    ("modbus.bind", "str", "0.0.0.0", (1, 64), "cyber", False, True),
    ("modbus.max_connections", "int", 32, (1, 32), "cyber", False, True),
    ("modbus.idle_timeout_s", "int", 60, (1, 3600), "admin", False, True),
    ("snmp.enabled", "bool", False, None, "cyber", False, True),
    ("snmp.port", "int", 161, (1, 65535), "cyber", False, True),
    ("snmp.bind", "str", "0.0.0.0", (1, 64), "cyber", False, True),
    ("snmp.v1.read_community", "str", "public", (1, 32), "admin", True, True),
    ("snmp.v1.write_community", "str", "private", (1, 32), "admin", True, True),
    ("snmp.v2c.read_community", "str", "publicV2", (1, 32), "admin", True, True),
    ("snmp.v2c.write_community", "str", "privateV2", (1, 32), "admin", True, True),
    ("snmp.v3.read_user", "str", "control", (1, 32), "admin", False, True),
    ("snmp.v3.read_auth", "enum", "SHA", ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"), "admin", False, True),
    ("snmp.v3.read_auth_password", "str", "Control-2024", (8, 16), "admin", True, True),
    ("snmp.v3.read_priv", "enum", "AES", ("none", "DES", "AES", "AES256"), "admin", False, True),
    ("snmp.v3.read_priv_password", "str", "Control-2024", (8, 16), "admin", True, True),
    ("snmp.v3.write_user", "str", "admin", (1, 32), "admin", False, True),
    ("snmp.v3.write_auth", "enum", "SHA", ("MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"), "admin", False, True),
    ("snmp.v3.write_auth_password", "str", "Admin-2024!", (8, 16), "admin", True, True),
    ("snmp.v3.write_priv", "enum", "AES", ("none", "DES", "AES", "AES256"), "admin", False, True),
    ("snmp.v3.write_priv_password", "str", "Admin-2024!", (8, 16), "admin", True, True),
    ("snmp.trap.community", "str", "trap", (1, 32), "admin", True, True),
    ("snmp.trap.version", "enum", "v2c", ("v1", "v2c", "v3"), "admin", False, True),
    ("snmp.trap.broadcast", "bool", False, None, "admin", False, True),
    ("snmp.trap.host1", "str", "", (0, 64), "admin", False, True),
    ("snmp.trap.port1", "int", 162, (1, 65535), "admin", False, True),
    ("snmp.trap.host2", "str", "", (0, 64), "admin", False, True),
    ("snmp.trap.port2", "int", 162, (1, 65535), "admin", False, True),
    ("snmp.trap.period_s", "int", 3600, (1, 86400), "admin", False, True),
    ("snmp.trap.mode", "enum", "trap", ("trap", "inform"), "admin", False, True),
    ("snmp.trap.inform_timeout_s", "int", 5, (1, 60), "admin", False, True),
    ("snmp.trap.inform_retries", "int", 2, (0, 10), "admin", False, True),
    ("bacnet.enabled", "bool", False, None, "cyber", False, True),
    ("bacnet.port", "int", 47808, (1, 65535), "cyber", False, True),
    ("bacnet.bind", "str", "0.0.0.0", (1, 64), "cyber", False, True),
    ("bacnet.main_instance", "int", 100, (0, 4194000), "admin", False, True),
    ("bacnet.network", "int", 1000, (1, 65534), "admin", False, True),
    ("bacnet.time_sync", "bool", False, None, "admin", False, True),
    ("policy.modbus_write", "bool", False, None, "cyber", False, True),
    ("policy.snmp", "bool", True, None, "cyber", False, True),
    ("policy.bacnet", "bool", True, None, "cyber", False, True),
    ("policy.modbus_slave", "bool", True, None, "cyber", False, True),
    ("events.capacity", "int", 2000, (100, 100000), "cyber", False, False),
    ("alarms.check_s", "int", 10, (1, 3600), "admin", False, True),
    ("storage.points_per_series", "int", 8784, (1464, 35136), "admin", False, False),
    ("storage.consumption_period_min", "int", 60, (10, 60), "admin", False, True),
    ("log.level", "enum", "info", ("debug", "info", "warning", "error"), "admin", False, True),
)

NAME, TYPE, DEFAULT, BOUNDS, PROFILE, SECRET, LIVE = range(7)
_ROWS = dict((row[NAME], row) for row in SCHEMA)


class SettingError(ValueError):
    """A setting name or value that the schema refuses (clear message)."""


def row(name):
    try:
        return _ROWS[name]
    except KeyError:
        raise SettingError("unknown setting %r" % name) from None


def parse_value(name, text):
    """Text (CLI, form field) → typed value, checked against the schema."""
    spec = row(name)
    kind = spec[TYPE]
    if kind == "bool":
        lowered = str(text).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingError("%s: expected true or false, got %r" % (name, text))
    if kind == "int":
        try:
            value = int(str(text).strip(), 10)
        except ValueError:
            raise SettingError("%s: expected an integer, got %r" % (name, text)) from None
        return check_value(name, value)
    return check_value(name, str(text))


def check_value(name, value):
    spec = row(name)
    kind, bounds = spec[TYPE], spec[BOUNDS]
    if kind == "bool":
        if not isinstance(value, bool):
            raise SettingError("%s: expected true or false" % name)
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError("%s: expected an integer" % name)
        if not bounds[0] <= value <= bounds[1]:
            raise SettingError("%s: %d is outside %d..%d" % (name, value, bounds[0], bounds[1]))
    elif kind == "enum":
        if value not in bounds:
            raise SettingError("%s: %r is not one of %s" % (name, value, ", ".join(bounds)))
    elif kind == "str":
        if not isinstance(value, str) or not bounds[0] <= len(value) <= bounds[1]:
            raise SettingError("%s: text of %d to %d characters expected" % (name, bounds[0], bounds[1]))
        if any(ord(c) < 32 for c in value):
            raise SettingError("%s: control characters are not allowed" % name)
    return value


def parse_assignment(text):
    """``key=value`` from the command line → (key, typed value)."""
    if "=" not in text:
        raise SettingError("expected key=value, got %r" % text)
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
            if secret:
                if self.secret_box is None or "enc" not in doc:
                    continue          # a secret is never taken in clear from disk
                value = self.secret_box.decrypt(name, doc["enc"])
                if value is None:
                    self._bad_value(path, name, "cannot be decrypted with this device's key")
                    continue
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
        """The checked values of a change (each against the schema, then the whole against the checks);
        SettingError for the first refusal. Nothing is applied."""
        checked = dict((name, check_value(name, value)) for name, value in values.items())
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
            self._stored = new_stored
        for name, value in checked.items():
            for listener in list(self._listeners):
                listener(name, value)

    def _documents(self, stored):
        docs = {}
        for i, (name, value) in enumerate(sorted(stored.items()), 1):
            if row(name)[SECRET]:
                if self.secret_box is None:
                    raise SettingError("%s is a secret and no device key is available" % name)
                docs[str(i)] = {"name": name, "enc": self.secret_box.encrypt(name, value)}
            else:
                docs[str(i)] = {"name": name, "value": value}
        return docs

    @staticmethod
    def _write(path, docs):
        # One atomic replace of the whole tinydb document: a power cut leaves
        # the old settings or the new ones, never an emptied table.
        AtomicJSONStorage(path).write({"settings": docs})
