"""The enterprise tree as data: every OID, descriptor and syntax, in one place.

The agent's OID index (tree.py), the MIB generator (tools/mib.py) and the
traps (traps.py) all read these tables, and the metrology columns come from
the measurement registry, so the MIB file and the agent cannot disagree.

Layout (docs/snmp.md has the long form):

* ``1.3.6.1.4.1.4555.10.20.<table>.1.<serviceID>.<address>.<load>`` — the
  manual's metrology tables; ``<table>`` = registry.snmp_table(key),
  ``<serviceID>`` = registry DATA_ID, one column per measurement.
  Table 23 (min/max) has one column per column of table 20, same service
  ID, and a third index: ``….23.1.<serviceID>.<address>.<load>.<extreme>``
  with extreme 1 = minimum, 2 = maximum (``EXTREMES``).
* ``1.3.6.1.4.1.4555.10.30`` — [ours] the gateway branch: identification
  scalars, the device table, the load (row status / quality) table, the
  active-alarm table, the objects carried by notifications, the
  notifications themselves (``.0.n``, so v1 traps get enterprise
  ``…10.30`` and specific-trap n), product OIDs and conformance groups.
"""

import re

from core import registry

MIB_NAME = "SOCOMEC-GATEWAY-MIB"

ENTERPRISE = (1, 3, 6, 1, 4, 1, 4555)
PRODUCTS = ENTERPRISE + (10,)
METROLOGY = PRODUCTS + (20,)
GATEWAY = PRODUCTS + (30,)
NOTIFICATIONS = GATEWAY + (0,)
IDENTITY = GATEWAY + (1,)
DEVICE_ENTRY = GATEWAY + (2, 1)
LOAD_ENTRY = GATEWAY + (3, 1)
ALARM_ENTRY = GATEWAY + (4, 1)
TRAP_OBJECTS = GATEWAY + (5,)
PRODUCT_IDS = GATEWAY + (10,)
CONFORMANCE = GATEWAY + (20,)
SYS_OBJECT_ID = PRODUCT_IDS + (70,)

MIB2_SYSTEM = (1, 3, 6, 1, 2, 1, 1)
MIB2_SNMP = (1, 3, 6, 1, 2, 1, 11)
SNMP_ENGINE = (1, 3, 6, 1, 6, 3, 10, 2, 1)
USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SYS_UPTIME_0 = MIB2_SYSTEM + (3, 0)

# Metrology tables: number → (descriptor prefix, table stem, title, leading
# words of the registry name dropped from the column descriptor).
METROLOGY_TABLES = {
    20: ("inst", "instantaneous", "Instantaneous values", ()),
    21: ("avg", "average", "Averages over the integration period", ("Average",)),
    22: ("energy", "energy", "Energy indexes", ()),
    23: ("minmax", "minMax", "Minimum and maximum values", ()),
    24: ("thd", "harmonic", "Total harmonic distortion", ("THD",)),
    25: ("lc", "loadCurve", "Last load-curve point", ("Load", "curve")),
    26: ("io", "ioState", "Digital input and output states", ()),
}

# Table 23: the minimum and maximum of every column of table 20 (the values
# seen since the daemon started, daemon/state/extremes.py). Same service IDs as
# table 20; the extreme is a third index after address and load, so each
# measurement keeps one column and the instances stay in OID order.
EXTREMES_TABLE = 23
EXTREMES_OF = 20
EXTREMES = (("minimum", 1), ("maximum", 2))
EXTREME_INDEX = (1, "minmaxExtreme", "GwExtreme", "not-accessible",
                 "Which extreme the row holds (third index): minimum(1) or maximum(2).")

INT32 = "Integer32"
GAUGE = "Gauge32"
COUNTER32 = "Counter32"
COUNTER64 = "Counter64"
STRING = "DisplayString"
DATETIME = "DateAndTime"

SCALE_WORDS = {10: "Tenths", 100: "Hundredths", 1000: "Thousandths"}


def _camel(words):
    out = []
    for word in words:
        word = re.sub(r"\+$", "Pos", word)
        word = re.sub(r"-$", "Neg", word)
        word = re.sub(r"[^A-Za-z0-9]", "", word)
        if word:
            out.append(word[0].upper() + word[1:])
    return "".join(out)


def column_descriptor(row, table=None):
    """MIB descriptor of a registry measurement in its table, e.g. ``instCurrentI1`` (the manual's name)."""
    prefix, _stem, _title, drop = METROLOGY_TABLES[table or registry.snmp_table(row[registry.KEY])]
    words = row[registry.NAME].split()
    if tuple(words[:len(drop)]) == drop:
        words = words[len(drop):]
    return prefix + _camel(words)


def base_syntax(row):
    """Integer32 for signed values, Counter64 for energy indexes, Gauge32 for the rest."""
    if row[registry.KIND] == "energy":
        return COUNTER64
    return INT32 if row[registry.SIGNED] else GAUGE


def column_syntax(row):
    """The SMI syntax name: a display-hint convention when the value is scaled."""
    base = base_syntax(row)
    scale = row[registry.GW_SCALE]
    if scale == 1 or base == COUNTER64:
        return base
    return scaled_convention(base, scale)


def scaled_convention(base, scale):
    return "Gw" + ("Signed" if base == INT32 else "") + SCALE_WORDS[scale]


class Column:
    """One metrology column: a registry row placed in its table (table 23: its extremes)."""

    __slots__ = ("table", "service_id", "key", "descriptor", "base", "syntax", "scale", "writable", "row")

    def __init__(self, row, table=None):
        self.row = row
        self.key = row[registry.KEY]
        self.table = table or registry.snmp_table(self.key)
        self.service_id = row[registry.DATA_ID]
        self.descriptor = column_descriptor(row, self.table)
        self.base = base_syntax(row)
        self.syntax = column_syntax(row)
        self.scale = row[registry.GW_SCALE]
        self.writable = bool(row[registry.WRITABLE]) and self.table != EXTREMES_TABLE

    @property
    def oid(self):
        return METROLOGY + (self.table, 1, self.service_id)


def metrology_columns():
    """Every registry measurement as a column of its own table, in OID order."""
    columns = [Column(row) for row in registry.MEASUREMENTS]
    columns.sort(key=lambda c: (c.table, c.service_id))
    return columns


def extremes_columns():
    """Table 23: one column per column of table 20 (instances add the extreme index)."""
    return [Column(c.row, EXTREMES_TABLE) for c in metrology_columns() if c.table == EXTREMES_OF]


def metrology_tables():
    """{table number: [Column]} for the tables that have at least one column."""
    out = {}
    for column in metrology_columns() + extremes_columns():
        out.setdefault(column.table, []).append(column)
    return out


# Enumerations used by the gateway branch (value names as in the MIB).
QUALITY = (("good", 1), ("stale", 2), ("commLost", 3), ("noData", 4))
DEVICE_STATUS = (("ok", 1), ("commLost", 2), ("conflict", 3), ("unknown", 4), ("stale", 5))
BUS = (("digiware", 1), ("rs485", 2))
CRITICALITY = (("information", 1), ("nonCritical", 2), ("critical", 3))
ALARM_STATE = (("raised", 1), ("cleared", 2), ("active", 3))

ENUMS = {
    "GwQuality": (QUALITY, "Quality of a row of values: good = fresh; stale = older than the "
                           "freshness limit (1.5 poll cycles, at least poll.stale_after_s); commLost = the device stopped answering (last values are "
                           "kept); noData = no value has arrived yet."),
    "GwDeviceStatus": (DEVICE_STATUS, "State of a downstream device, the same in every protocol: ok; commLost = "
                                      "it stopped answering; conflict = another device answers at its address; "
                                      "unknown = not answered yet; stale = it answers but a value is older "
                                      "than the freshness limit."),
    "GwBus": (BUS, "The serial bus a device sits on."),
    "GwCriticality": (CRITICALITY, "Criticality of an alarm."),
    "GwAlarmState": (ALARM_STATE, "raised = the alarm started; cleared = it ended; active = still active, "
                                  "re-sent every trap period."),
    "GwExtreme": (EXTREMES, "Which extreme of a value table 23 holds: the smallest or the largest value "
                            "read since the gateway started."),
}

# Scalars / columns of the gateway branch:
# (sub-id, descriptor, syntax, access, description)
IDENTITY_SCALARS = (
    (1, "gwReference", STRING, "read-only", "Product reference of the gateway (M-70)."),
    (2, "gwNetId", STRING, "read-only", "NET ID of the gateway (6 hexadecimal digits)."),
    (3, "gwSerialNumber", STRING, "read-only", "Serial number of the gateway."),
    (4, "gwFirmware", STRING, "read-only", "Software version of the gateway."),
    (5, "gwModbusAddress", INT32 + " (1..247)", "read-only", "The gateway's own Modbus address."),
    (6, "gwDeviceCount", GAUGE, "read-only", "Number of downstream devices in the topology."),
    (7, "gwActiveAlarmCount", GAUGE, "read-only", "Number of active alarms (rows of gwAlarmTable)."),
    (8, "gwSystemAlarmBits", GAUGE, "read-only",
     "Active system alarms as bits: bit n-1 is set while system alarm n is active."),
    (9, "gwTime", DATETIME, "read-only", "The gateway's clock (UTC)."),
)

DEVICE_COLUMNS = (
    (1, "gwDevAddress", INT32 + " (1..247)", "not-accessible", "Modbus address of the device (index)."),
    (2, "gwDevBus", "GwBus", "read-only", "Bus the device sits on."),
    (3, "gwDevReference", STRING, "read-only", "Product reference (e.g. I-35)."),
    (4, "gwDevName", STRING, "read-only", "Device name."),
    (5, "gwDevNetId", STRING, "read-only", "NET ID (6 hexadecimal digits)."),
    (6, "gwDevArea", STRING, "read-only", "Area the device belongs to."),
    (7, "gwDevStatus", "GwDeviceStatus", "read-only", "Communication status."),
    (8, "gwDevLoadCount", GAUGE, "read-only", "Number of rows (loads) of the device in the metrology tables."),
    (9, "gwDevRequests", COUNTER32, "read-only", "Requests sent to the device."),
    (10, "gwDevTimeouts", COUNTER32, "read-only", "Requests the device did not answer in time."),
    (11, "gwDevCrcErrors", COUNTER32, "read-only", "Answers with a bad CRC."),
    (12, "gwDevExceptions", COUNTER32, "read-only", "Modbus exception answers."),
    (13, "gwDevLastSuccess", DATETIME, "read-only",
     "Time of the last good answer (all zero octets when never)."),
    (14, "gwDevMinMaxReset", INT32 + " (0..1)", "read-write",
     "Reads 0. Writing 1 starts a new observation period for the device: the minimum and maximum of "
     "each of its values (table 23, BACnet Min/Max_Pres_Value) are forgotten and start again from "
     "the next poll. Needs read-write credentials; the device itself is not written to."),
)

LOAD_COLUMNS = (
    (1, "gwLoadAddress", INT32 + " (1..247)", "not-accessible",
     "Modbus address of the device (first index of every metrology table)."),
    (2, "gwLoadNumber", INT32 + " (0..255)", "not-accessible",
     "Load number: 0 = values of the device itself (network voltages, I/O states), "
     "1..n = circuits (second index of every metrology table)."),
    (3, "gwLoadName", STRING, "read-only", "Name of the load."),
    (4, "gwLoadNetwork", STRING, "read-only", "Network type of the load (3P+N, 3P, 1P+N, 2P)."),
    (5, "gwLoadQuality", "GwQuality", "read-only",
     "Quality of the row: the worst quality of its values, so a stale or lost value is never silent. "
     "Values keep their last reading."),
    (6, "gwLoadAge", GAUGE, "read-only",
     "Seconds since the oldest value of the row was read (4294967295 when none), so a value left "
     "behind is not hidden by fresh ones."),
    (7, "gwLoadSupported", GAUGE, "read-only",
     "Number of measurements the device offers for this row; the others read 0."),
)

ALARM_COLUMNS = (
    (1, "gwAlarmNumber", INT32 + " (1..2147483647)", "not-accessible",
     "Alarm number (system alarms 1..8, see the SPEC)."),
    (2, "gwAlarmSource", "OCTET STRING (SIZE (1..64))", "not-accessible",
     "Source of the alarm, e.g. digiware:5 for a device (index)."),
    (3, "gwAlarmName", STRING, "read-only", "Name of the alarm."),
    (4, "gwAlarmCriticality", "GwCriticality", "read-only", "Criticality."),
    (5, "gwAlarmSince", DATETIME, "read-only", "When the alarm started (UTC)."),
    (6, "gwAlarmDetail", STRING, "read-only", "Detail text."),
    (7, "gwAlarmCategory", STRING, "read-only", "Category: system, meter, input, power-quality."),
)

TRAP_OBJECT_SCALARS = (
    (1, "gwTrapAlarmNumber", INT32, "Alarm number of the event."),
    (2, "gwTrapSource", STRING, "Source of the event (bus:address for a device)."),
    (3, "gwTrapName", STRING, "Name of the alarm or event."),
    (4, "gwTrapCriticality", "GwCriticality", "Criticality."),
    (5, "gwTrapDetail", STRING, "Detail text."),
    (6, "gwTrapCategory", STRING, "Category: system, measurement alarm, logical alarm, combined alarm, "
                                  "power-quality event, device alarm."),
    (7, "gwTrapTime", DATETIME, "When the event happened (UTC; for a device alarm, the meter's own time "
                                "stamp of its start or end)."),
    (8, "gwTrapState", "GwAlarmState", "raised, cleared or still active (re-sent)."),
    (9, "gwTrapAddress", INT32, "Modbus address of the device concerned (0 = the gateway)."),
    (10, "gwTrapLoad", INT32, "Load number concerned (0 = the device itself)."),
    (11, "gwTrapInput", INT32, "Digital input number."),
    (12, "gwTrapValue", INT32, "New value: a digital input state 0/1, or the measured value at the gateway "
                               "scale of its measurement, as in the metrology tables."),
    (13, "gwTrapDuration", INT32, "Duration of a finished power-quality event, in milliseconds (0 while it lasts)."),
)

_ALARM_OBJECTS = ("gwTrapAlarmNumber", "gwTrapSource", "gwTrapName", "gwTrapCriticality", "gwTrapDetail",
                  "gwTrapCategory", "gwTrapTime", "gwTrapState")

# (sub-id, descriptor, objects, description)
NOTIFICATION_TYPES = (
    (1, "gwAlarmRaised", _ALARM_OBJECTS, "A system alarm started."),
    (2, "gwAlarmCleared", _ALARM_OBJECTS, "An alarm ended."),
    (3, "gwAlarmActive", _ALARM_OBJECTS,
     "An alarm is still active: re-sent every trap period (setting snmp.trap.period_s)."),
    (4, "gwInputChanged", ("gwTrapAddress", "gwTrapInput", "gwTrapValue", "gwTrapTime"),
     "A digital input of a device changed state (logical alarm)."),
    (5, "gwMeterAlarm", _ALARM_OBJECTS + ("gwTrapAddress", "gwTrapLoad", "gwTrapValue"),
     "A device alarm (measurement threshold, logical, combined, or the device's own) started, ended or is "
     "still active. gwTrapAlarmNumber = kind x 100 + slot or type (see the gateway documentation)."),
    (6, "gwPowerQualityEvent", _ALARM_OBJECTS + ("gwTrapAddress", "gwTrapLoad", "gwTrapValue", "gwTrapDuration"),
     "A power-quality event (EN 50160: dip, overvoltage, interruption, overcurrent) reported by a device "
     "started, ended (with its duration) or is still going on."),
)

NOTIFICATION_OIDS = dict((name, NOTIFICATIONS + (sub,)) for sub, name, _o, _d in NOTIFICATION_TYPES)
TRAP_OBJECT_OIDS = dict((name, TRAP_OBJECTS + (sub,)) for sub, name, _s, _d in TRAP_OBJECT_SCALARS)
