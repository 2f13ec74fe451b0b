"""The agent's OID index: every instance the agent serves, in exact lexicographic order.

Why not pysnmp's MIB tree: the tree follows the topology (≈ 5,000 instances
for 32 meters) and must be rebuilt when devices come and go; pysnmp's
MibScalarInstance objects cost tens of microseconds per lookup and much
memory per instance. Here each *segment* (a subtree: MIB-II system, the
metrology tables, the device table…) keeps a sorted list of OID tuples and a
dict OID → (encoded OID, getter), rebuilt lazily when its source changes
(topology version, alarm events). A getter returns ``(tag, value)`` read
live from the cache, the settings or pysnmp's counters; the fast path
encodes it with ber.py, the pysnmp path converts it to rfc1902 objects.
"""

import bisect
import time

from core import modbus_rtu as rtu
from core.registry import to_gateway_raw
from daemon.state.cache import COMM_LOST
from daemon.state.extremes import MAX, MIN
from protocols.snmp import ber, mibdef

TAGS = {mibdef.INT32: ber.INTEGER, mibdef.GAUGE: ber.GAUGE32, mibdef.COUNTER32: ber.COUNTER32,
        mibdef.COUNTER64: ber.COUNTER64, mibdef.STRING: ber.OCTET_STRING, mibdef.DATETIME: ber.OCTET_STRING}
# Value range of each numeric tag, as the Modbus type of the same width: one
# saturation rule (rtu.saturate) for SNMP and the Modbus tables.
LIMITS = {ber.INTEGER: rtu.TYPE_RANGE["s32"], ber.GAUGE32: rtu.TYPE_RANGE["u32"],
          ber.COUNTER32: rtu.TYPE_RANGE["u32"], ber.COUNTER64: rtu.TYPE_RANGE["u64"]}
NEVER_AGE = 2 ** 32 - 1
COLUMN_LEN = len(mibdef.METROLOGY) + 3        # …10.20.<table>.1.<serviceID>; instances add address, load
# The MIB spells enum labels in camelCase (SMI rules); the daemon's states use
# its own spellings. The numbers come from mibdef's tuples only.
DAEMON_SPELLING = {"commLost": COMM_LOST, "nonCritical": "non-critical"}


def _by_daemon_name(pairs):
    return dict((DAEMON_SPELLING.get(name, name), number) for name, number in pairs)


QUALITY = _by_daemon_name(mibdef.QUALITY)              # good, stale, comm_lost, noData
DEVICE_STATUS = _by_daemon_name(mibdef.DEVICE_STATUS)  # devstate's states but absent (no row)
BUS = dict(mibdef.BUS)
CRITICALITY = _by_daemon_name(mibdef.CRITICALITY)      # information, non-critical, critical

# MIB-II system group objects that SET may change, and the setting behind each.
SYSTEM_SETTINGS = {mibdef.MIB2_SYSTEM + (4, 0): "gateway.contact",
                   mibdef.MIB2_SYSTEM + (5, 0): "gateway.name",
                   mibdef.MIB2_SYSTEM + (6, 0): "gateway.location"}

# The device-table column whose SET resets a device's extremes (reads 0).
MINMAX_RESET_COLUMN = mibdef.DEVICE_ENTRY + tuple(c[0] for c in mibdef.DEVICE_COLUMNS if c[1] == "gwDevMinMaxReset")

SNMP_COUNTERS = ((1, "snmpInPkts"), (3, "snmpInBadVersions"), (4, "snmpInBadCommunityNames"),
                 (5, "snmpInBadCommunityUses"), (6, "snmpInASNParseErrs"), (31, "snmpSilentDrops"),
                 (32, "snmpProxyDrops"))
USM_COUNTERS = ((1, "usmStatsUnsupportedSecLevels"), (2, "usmStatsNotInTimeWindows"),
                (3, "usmStatsUnknownUserNames"), (4, "usmStatsUnknownEngineIDs"),
                (5, "usmStatsWrongDigests"), (6, "usmStatsDecryptionErrors"))


def date_and_time(unix_time):
    """SNMPv2-TC DateAndTime (11 octets, UTC); all zeros for 'never'."""
    if not unix_time:
        return bytes(8)
    tm = time.gmtime(unix_time)
    deci = int((unix_time - int(unix_time)) * 10) % 10
    return bytes((tm.tm_year >> 8, tm.tm_year & 0xFF, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
                  tm.tm_sec, deci, ord("+"), 0, 0))


def text(value):
    return str(value or "").encode("utf-8")[:255]


class Segment:
    """A subtree whose instances are rebuilt together when ``version()`` changes."""

    def __init__(self, name, build, version=None):
        self.name = name
        self.build = build             # () -> iterable of (oid, getter)
        self.version = version or (lambda: 0)
        self.built = None
        self.oids = []
        self.entries = {}              # oid -> (encoded oid, getter, its place in ``oids``)
        self.last = ()

    def refresh(self):
        current = self.version()
        if current == self.built:
            return
        entries, previous = {}, self.entries
        for oid, getter in self.build():
            # an instance kept across a topology change keeps its encoding (encoding was 85 % of a rebuild)
            kept = previous.get(oid)
            entries[oid] = (kept[0] if kept is not None else ber.encode_oid(oid), getter)
        self.oids = sorted(entries)
        # each entry also holds its place in ``oids``: a walk asks for the instance after the one it was just
        # given, found by one dict lookup instead of a bisection over tuple comparisons (60 % of a GETBULK)
        self.entries = dict((oid, entries[oid] + (i,)) for i, oid in enumerate(self.oids))
        self.last = self.oids[-1] if self.oids else ()
        self.built = current


class OidIndex:
    """Lookups for GET / GETNEXT / SET over all segments, in OID order."""

    def __init__(self, door, agent):
        self.door = door
        self.agent = agent               # counters, uptime, engine values, active alarms
        self.columns = mibdef.metrology_columns()
        self.extremes_columns = mibdef.extremes_columns()
        self.segments = [
            Segment("system", self._system),
            Segment("snmp", self._snmp),
            Segment("metrology", self._metrology, door.topology_version),
            Segment("gateway", self._gateway_branch, door.topology_version),
            Segment("alarms", self._alarms, agent.alarms_version),
            Segment("engine", self._engine),
            Segment("usm", self._usm),
        ]
        self.objects = self._object_oids()
        self.writable_columns = dict((c.oid, c) for c in self.columns if c.writable)

    # ------------------------------------------------------------ lookups

    def refresh(self):
        for segment in self.segments:
            segment.refresh()

    def get(self, oid):
        """(encoded oid, tag, value) of an existing instance, or None."""
        for segment in self.segments:
            entry = segment.entries.get(oid)
            if entry is not None:
                tag, value = entry[1]()
                return entry[0], tag, value
        return None

    def next(self, oid):
        """(oid, encoded oid, tag, value) of the first instance after ``oid``, or None."""
        for segment in self.segments:
            if not segment.oids or segment.last <= oid:
                continue
            oids = segment.oids
            entry = segment.entries.get(oid)
            i = entry[2] + 1 if entry is not None else bisect.bisect_right(oids, oid)
            if i < len(oids):
                found = oids[i]
                encoded, getter, _place = segment.entries[found]
                tag, value = getter()
                return found, encoded, tag, value
        return None

    def is_object(self, oid):
        """True when ``oid`` falls under a defined object type (noSuchInstance, not noSuchObject)."""
        objects = self.objects
        for n in range(len(oid) - 1, 6, -1):
            if oid[:n] in objects:
                return True
        return False

    def size(self):
        return sum(len(s.oids) for s in self.segments)

    def writer(self, oid):
        """('setting', name), ('device', address, load, key) or ('minmax_reset', address)
        for a writable instance, else None."""
        name = SYSTEM_SETTINGS.get(oid)
        if name is not None:
            return ("setting", name)
        if oid[:-1] == MINMAX_RESET_COLUMN:
            return ("minmax_reset", oid[-1]) if self.get(oid) is not None else None
        column = self.writable_columns.get(oid[:COLUMN_LEN]) if len(oid) == COLUMN_LEN + 2 else None
        if column is not None:
            return ("device", oid[COLUMN_LEN], oid[COLUMN_LEN + 1], column.key)
        return None

    def writable_object(self, oid):
        """True when ``oid`` is under a writable object type (noCreation rather than notWritable)."""
        return any(oid[:len(c)] == c for c in self.writable_columns) or oid[:-1] + (0,) in SYSTEM_SETTINGS \
            or oid[:len(MINMAX_RESET_COLUMN)] == MINMAX_RESET_COLUMN

    def _object_oids(self):
        objects = set()
        objects.update(mibdef.MIB2_SYSTEM + (n,) for n in range(1, 9))
        objects.update(mibdef.MIB2_SNMP + (n,) for n, _name in SNMP_COUNTERS)
        objects.add(mibdef.MIB2_SNMP + (30,))
        objects.update(c.oid for c in self.columns + self.extremes_columns)
        objects.update(mibdef.IDENTITY + (s[0],) for s in mibdef.IDENTITY_SCALARS)
        objects.update(mibdef.DEVICE_ENTRY + (s[0],) for s in mibdef.DEVICE_COLUMNS)
        objects.update(mibdef.LOAD_ENTRY + (s[0],) for s in mibdef.LOAD_COLUMNS)
        objects.update(mibdef.ALARM_ENTRY + (s[0],) for s in mibdef.ALARM_COLUMNS)
        objects.update(mibdef.SNMP_ENGINE + (n,) for n in range(1, 5))
        objects.update(mibdef.USM_STATS + (n,) for n, _name in USM_COUNTERS)
        return objects

    # ------------------------------------------------------------ builders

    def _system(self):
        door = self.door
        base = mibdef.MIB2_SYSTEM

        def descr():
            identity = door.identity()
            return ber.OCTET_STRING, text("%s: Socomec DIRIS Digiware M-70 compatible gateway, openm70-gateway %s, "
                                          "%s board" % (identity["description"], identity["firmware"],
                                                        identity["board"]))
        yield base + (1, 0), descr
        yield base + (2, 0), lambda: (ber.OBJECT_IDENTIFIER, mibdef.SYS_OBJECT_ID)
        yield base + (3, 0), lambda: (ber.TIMETICKS, self.agent.uptime_ticks())
        for oid, name in SYSTEM_SETTINGS.items():
            yield oid, (lambda name=name: (ber.OCTET_STRING, text(door.setting(name))))
        yield base + (7, 0), lambda: (ber.INTEGER, 72)          # application + end-to-end
        yield base + (8, 0), lambda: (ber.TIMETICKS, 0)

    def _snmp(self):
        for sub, name in SNMP_COUNTERS:
            yield mibdef.MIB2_SNMP + (sub, 0), (lambda name=name: (ber.COUNTER32, self.agent.counter(name)
                                                                   & 0xFFFFFFFF))
        yield mibdef.MIB2_SNMP + (30, 0), lambda: (ber.INTEGER, 2)   # authentication traps disabled

    def _rows(self):
        """(device, load) of every metrology row, in index order."""
        rows = []
        for device in self.door.devices():
            for load in sorted(device.load_numbers()):
                rows.append((device, load))
        return rows

    def _metrology(self):
        reading = self.door.reading
        rows = self._rows()
        for column in self.columns:
            tag = TAGS[column.base]
            for device, load in rows:
                oid = column.oid + (device.address, load)
                yield oid, self._metrology_getter(reading, device.address, load, column.key, tag)
        extremes = self.door.extremes
        for column in self.extremes_columns:
            tag = TAGS[column.base]
            for device, load in rows:
                for _name, number in mibdef.EXTREMES:
                    oid = column.oid + (device.address, load, number)
                    yield oid, self._extreme_getter(extremes, device.address, load, column.key, number, tag)

    @staticmethod
    def _metrology_getter(reading, address, load, key, tag):
        """A column's value at the gateway scale (registry.to_gateway_raw), saturated to its tag."""
        limits = LIMITS[tag]
        saturate = rtu.saturate

        def get():
            value = reading(address, load, key).value
            if value is None:
                return tag, 0       # unsupported or not read yet: 0, as the manual says
            return tag, saturate(to_gateway_raw(key, value), limits)
        return get

    @staticmethod
    def _extreme_getter(extremes, address, load, key, number, tag):
        """Table 23: minimum (number 1) or maximum (2) seen since the daemon started; 0 before any."""
        limits = LIMITS[tag]
        saturate = rtu.saturate
        position = MIN if number == 1 else MAX

        def get():
            entry = extremes(address, load, key)
            if entry is None:
                return tag, 0
            return tag, saturate(to_gateway_raw(key, entry[position]), limits)
        return get

    def _gateway_branch(self):
        door = self.door
        identity = {
            "gwReference": lambda: (ber.OCTET_STRING, text(door.identity()["product"])),
            "gwNetId": lambda: (ber.OCTET_STRING, text(door.identity()["netid"])),
            "gwSerialNumber": lambda: (ber.OCTET_STRING, text(door.identity()["serial"])),
            "gwFirmware": lambda: (ber.OCTET_STRING, text(door.identity()["firmware"])),
            "gwModbusAddress": lambda: (ber.INTEGER, door.setting("gateway.modbus_address")),
            "gwDeviceCount": lambda: (ber.GAUGE32, len(door.devices())),
            "gwActiveAlarmCount": lambda: (ber.GAUGE32, len(self.agent.active_alarms())),
            "gwSystemAlarmBits": lambda: (ber.GAUGE32, door.alarm_bits()),
            "gwTime": lambda: (ber.OCTET_STRING, date_and_time(door.time())),
        }
        for sub, name, _syntax, _access, _d in mibdef.IDENTITY_SCALARS:
            yield mibdef.IDENTITY + (sub, 0), identity[name]
        devices = door.devices()
        for sub, name, _syntax, access, _d in mibdef.DEVICE_COLUMNS:
            if access == "not-accessible":
                continue
            for device in devices:
                yield mibdef.DEVICE_ENTRY + (sub, device.address), self._device_getter(name, device)
        rows = self._rows()
        for sub, name, _syntax, access, _d in mibdef.LOAD_COLUMNS:
            if access == "not-accessible":
                continue
            for device, load in rows:
                yield mibdef.LOAD_ENTRY + (sub, device.address, load), self._load_getter(name, device, load)

    def _device_getter(self, name, device):
        door = self.door
        address = device.address

        def counter(field):
            def get():
                counters = door.device_counters(address)
                return ber.COUNTER32, (counters[field] if counters else 0) & 0xFFFFFFFF
            return get

        getters = {
            "gwDevMinMaxReset": lambda: (ber.INTEGER, 0),
            "gwDevBus": lambda: (ber.INTEGER, BUS.get(device.bus, 1)),
            "gwDevReference": lambda: (ber.OCTET_STRING, text(device.reference)),
            "gwDevName": lambda: (ber.OCTET_STRING, text(device.name)),
            "gwDevNetId": lambda: (ber.OCTET_STRING, text(device.netid)),
            "gwDevArea": lambda: (ber.OCTET_STRING, text(device.area)),
            "gwDevStatus": lambda: (ber.INTEGER, DEVICE_STATUS.get(door.device_summary(address).state,
                                                                   DEVICE_STATUS["unknown"])),
            "gwDevLoadCount": lambda: (ber.GAUGE32, len(device.load_numbers())),
            "gwDevRequests": counter("requests"),
            "gwDevTimeouts": counter("timeouts"),
            "gwDevCrcErrors": counter("crc_errors"),
            "gwDevExceptions": counter("exceptions"),
            "gwDevLastSuccess": lambda: (ber.OCTET_STRING,
                                         date_and_time((door.device_counters(address) or {}).get("last_success"))),
        }
        return getters[name]

    def _load_getter(self, name, device, load):
        door = self.door
        entry = dict((x["load"], x) for x in device.loads).get(load, {})

        def quality():
            # Cache.load_summary is the one rule for a row (worst quality of
            # its values); GwQuality adds noData for a row where nothing
            # has arrived yet and the device is not known to be lost.
            state, newest = door.load_summary(device.address, load)[:2]
            if newest is None and state != COMM_LOST:
                return ber.INTEGER, QUALITY["noData"]
            return ber.INTEGER, QUALITY.get(state, QUALITY["noData"])

        def age():
            oldest = door.load_summary(device.address, load)[2]
            if oldest is None:
                return ber.GAUGE32, NEVER_AGE
            return ber.GAUGE32, rtu.saturate(int(max(0.0, door.time() - oldest)), LIMITS[ber.GAUGE32])

        getters = {
            "gwLoadName": lambda: (ber.OCTET_STRING, text(entry.get("name") if load else device.name)),
            "gwLoadNetwork": lambda: (ber.OCTET_STRING, text(device.network(load) if load else "device")),
            "gwLoadQuality": quality,
            "gwLoadAge": age,
            "gwLoadSupported": lambda: (ber.GAUGE32, door.load_summary(device.address, load)[3]),
        }
        return getters[name]

    def _alarms(self):
        rows = {}
        for alarm in self.agent.active_alarms():
            source = text(alarm["source"])[:64] or b"-"
            index = (alarm["alarm"],) + tuple(source)
            rows.setdefault(index, alarm)
        for sub, name, _syntax, access, _d in mibdef.ALARM_COLUMNS:
            if access == "not-accessible":
                continue
            for index, alarm in rows.items():
                yield mibdef.ALARM_ENTRY + (sub,) + index, self._alarm_getter(name, alarm)

    @staticmethod
    def _alarm_getter(name, alarm):
        values = {
            "gwAlarmName": (ber.OCTET_STRING, text(alarm["name"])),
            "gwAlarmCriticality": (ber.INTEGER, CRITICALITY.get(alarm["criticality"], 1)),
            "gwAlarmSince": (ber.OCTET_STRING, date_and_time(alarm["since"])),
            "gwAlarmDetail": (ber.OCTET_STRING, text(alarm["detail"])),
            "gwAlarmCategory": (ber.OCTET_STRING, text(alarm["category"])),
        }
        value = values[name]
        return lambda: value

    def _engine(self):
        agent = self.agent
        yield mibdef.SNMP_ENGINE + (1, 0), lambda: (ber.OCTET_STRING, agent.engine_value("snmpEngineID"))
        for sub, name in ((2, "snmpEngineBoots"), (3, "snmpEngineTime"), (4, "snmpEngineMaxMessageSize")):
            yield mibdef.SNMP_ENGINE + (sub, 0), (lambda name=name: (ber.INTEGER, agent.engine_value(name)))

    def _usm(self):
        for sub, name in USM_COUNTERS:
            yield mibdef.USM_STATS + (sub, 0), (lambda name=name: (ber.COUNTER32, self.agent.counter(name)
                                                                   & 0xFFFFFFFF))
