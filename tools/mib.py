"""Generate the SMIv2 MIB module SOCOMEC-GATEWAY-MIB from the registry.

    python -m tools.mib > protocols/snmp/SOCOMEC-GATEWAY-MIB.txt

Every metrology column comes from a row of ``core/registry.py`` placed by
``protocols/snmp/mibdef.py``; the gateway branch (devices, loads, alarms,
notifications) comes from the tables there too, so the file and the agent
cannot disagree. A test regenerates the file and compares it with the
shipped copy, and loads it into net-snmp.

The module imports the SMIv2 base modules (SNMPv2-SMI, SNMPv2-TC,
SNMPv2-CONF); docs/snmp.md tells where net-snmp finds them.
"""

import sys
import textwrap

from core import registry
from protocols.snmp import mibdef

# (date, what changed), newest first: LAST-UPDATED is the newest.
REVISIONS = (
    ("202612020000Z", "GwDeviceStatus gains stale(5): one device summary for every protocol (a device that "
                      "answers but holds a value older than the freshness limit); gwDevStatus says what the "
                      "Modbus gateway table, BACnet and the status API say."),
    ("202611230200Z", "One rule for a row's quality and age: gwLoadQuality is the worst quality of the row's "
                      "values, gwLoadAge the age of its oldest value (it was the newest)."),
    ("202611230100Z", "gwDevMinMaxReset: a SET of 1 starts a new min/max observation period for a device."),
    ("202611230030Z", "Device alarms read from the meters: gwMeterAlarm covers threshold, logical, combined and "
                      "device alarms (gwTrapAlarmNumber = kind x 100 + index); gwPowerQualityEvent carries "
                      "gwTrapValue and the new gwTrapDuration."),
    ("202611230000Z", "Table 23: minimum and maximum of every instantaneous value (third index minmaxExtreme)."),
    ("202611220000Z", "First version: metrology tables 20-26 from the registry, the gateway branch (devices, "
                      "loads, alarms, notifications)."),
)
WIDTH = 76


def _description(text, indent=8):
    text = " ".join(str(text).replace('"', "'").split())
    lines = textwrap.wrap(text, WIDTH - indent) or [""]
    pad = " " * indent
    return '\n'.join(['"' + lines[0]] + [pad + line for line in lines[1:]]) + '"'


def _object(name, syntax, access, description, parent, sub, units=None, index=None, indent="    "):
    out = ["%s OBJECT-TYPE" % name, indent + "SYNTAX      %s" % syntax]
    if units:
        out.append(indent + 'UNITS       "%s"' % units)
    out.append(indent + "MAX-ACCESS  %s" % access)
    out.append(indent + "STATUS      current")
    out.append(indent + "DESCRIPTION")
    out.append(indent + "    " + _description(description, 8))
    if index:
        out.append(indent + "INDEX       { %s }" % ", ".join(index))
    out.append(indent + "::= { %s %d }" % (parent, sub))
    return "\n".join(out)


def _sequence(type_name, members):
    width = max(len(name) for name, _s in members)
    body = ",\n".join("    %s %s" % (name.ljust(width), syntax) for name, syntax in members)
    return "%s ::= SEQUENCE {\n%s\n}" % (type_name, body)


def _table(table, entry, type_name, description, parent, sub, index, columns):
    """Table, entry, SEQUENCE type and column objects; columns = (sub, name, syntax, access, descr, units)."""
    parts = [
        _object(table, "SEQUENCE OF %s" % type_name, "not-accessible", description, parent, sub),
        _object(entry, type_name, "not-accessible", "A row of %s." % table, table, 1, index=index),
        _sequence(type_name, [(c[1], _bare_syntax(c[2])) for c in columns]),
    ]
    for column in columns:
        parts.append(_object(column[1], column[2], column[3], column[4], entry, column[0],
                             units=column[5] if len(column) > 5 else None))
    return parts


def _bare_syntax(syntax):
    """The type of a SEQUENCE member: no sub-typing (RFC 2578 §7.1.12 allows either; bare is usual)."""
    return syntax.split(" (")[0]


def _scale_text(column):
    unit = column.row[registry.UNIT] or "units"
    if column.scale == 1:
        return "Value in %s." % unit
    return ("Value in 1/%d %s: the engineering value times %d, rounded (e.g. %d = 1 %s)."
            % (column.scale, unit, column.scale, column.scale, unit))


def metrology_section():
    parts = []
    tables = mibdef.metrology_tables()
    reserved = [n for n in sorted(mibdef.METROLOGY_TABLES) if n not in tables]
    parts.append(_oid_assign("productMetrology", "socomecProducts", 20,
                             "Metrology tables, one per kind of measurement. Reserved table numbers with no "
                             "measurement yet: %s." % (", ".join(str(n) for n in reserved) or "none")))
    for number, columns in sorted(tables.items()):
        prefix, stem, title, _drop = mibdef.METROLOGY_TABLES[number]
        type_name = stem[0].upper() + stem[1:] + "Entry"
        extremes = number == mibdef.EXTREMES_TABLE
        rows = [mibdef.EXTREME_INDEX] if extremes else []
        index = ("gwLoadAddress", "gwLoadNumber") + ((mibdef.EXTREME_INDEX[1],) if extremes else ())
        for column in columns:
            row = column.row
            details = ["%s (registry key %s, service ID %d" % (row[registry.NAME], column.key, column.service_id)]
            if extremes:
                details = ["Minimum (minmaxExtreme 1) or maximum (2) of the values of column %d of table %d read "
                           "since the gateway started; 0 until one was read. " % (column.service_id,
                                                                                   mibdef.EXTREMES_OF)] + details
            if row[registry.BACNET_MM] is not None:
                details.append(", BACnet measurement index %d" % row[registry.BACNET_MM])
            details.append(", standard name %s). %s" % (row[registry.STD_NAME], _scale_text(column)))
            details.append(" Reads 0 when the device does not offer this measurement; the row's freshness is "
                           "gwLoadQuality.")
            if column.writable:
                details.append(" Writable (0 or 1) with read-write credentials when the security policy allows "
                               "writes to devices; the write goes to the device on its bus.")
            access = "read-write" if column.writable else "read-only"
            rows.append((column.service_id, column.descriptor, column.syntax, access, "".join(details),
                         row[registry.UNIT] or None))
        description = ("%s (table %d): OID 1.3.6.1.4.1.4555.10.20.%d.1.<serviceID>.<modbusAddress>.<load>%s. One "
                       "row per device and load of the topology (load 0 = the device itself)%s, one column per "
                       "measurement (the column number is the service ID)."
                       % (title, number, number, ".<extreme>" if extremes else "",
                          " and extreme (1 = minimum, 2 = maximum)" if extremes else ""))
        parts.extend(_table(stem + "Table", stem + "Entry", type_name, description, "productMetrology", number,
                            index, rows))
    return parts


def _oid_assign(name, parent, sub, comment=None):
    line = "%s OBJECT IDENTIFIER ::= { %s %d }" % (name, parent, sub)
    if comment:
        return "\n".join("-- " + x for x in textwrap.wrap(comment, WIDTH - 3)) + "\n" + line
    return line


def conventions_section(used_syntaxes):
    parts = []
    for name, (values, description) in sorted(mibdef.ENUMS.items()):
        enum = ", ".join("%s(%d)" % v for v in values)
        parts.append("%s ::= TEXTUAL-CONVENTION\n    STATUS      current\n    DESCRIPTION\n        %s\n"
                     "    SYNTAX      INTEGER { %s }" % (name, _description(description), enum))
    for base in (mibdef.GAUGE, mibdef.INT32):
        for scale, word in sorted(mibdef.SCALE_WORDS.items()):
            name = mibdef.scaled_convention(base, scale)
            if name not in used_syntaxes:
                continue
            digits = len(str(scale)) - 1
            parts.append("%s ::= TEXTUAL-CONVENTION\n    DISPLAY-HINT \"d-%d\"\n    STATUS      current\n"
                         "    DESCRIPTION\n        %s\n    SYNTAX      %s" % (
                             name, digits, _description("A %s value in 1/%d of its unit: divide by %d for the "
                                                        "engineering value." % (base, scale, scale)), base))
    return parts


def gateway_section():
    parts = [
        _oid_assign("gwNotifications", "socomecGatewayMIB", 0),
        _oid_assign("gwIdentity", "socomecGatewayMIB", 1),
        _oid_assign("gwTrapObjects", "socomecGatewayMIB", 5),
        _oid_assign("gwProducts", "socomecGatewayMIB", 10),
        _oid_assign("gwConformance", "socomecGatewayMIB", 20),
        "gwM70 OBJECT-IDENTITY\n    STATUS      current\n    DESCRIPTION\n        %s\n    ::= { gwProducts 70 }"
        % _description("sysObjectID of the gateway (DIRIS Digiware M-70 compatible)."),
    ]
    for sub, name, syntax, access, description in mibdef.IDENTITY_SCALARS:
        parts.append(_object(name, syntax, access, description, "gwIdentity", sub))
    parts.extend(_table("gwDeviceTable", "gwDeviceEntry", "GwDeviceEntry",
                        "Downstream devices: identification and communication status and counters.",
                        "socomecGatewayMIB", 2, ("gwDevAddress",), mibdef.DEVICE_COLUMNS))
    parts.extend(_table("gwLoadTable", "gwLoadEntry", "GwLoadEntry",
                        "One row per row of the metrology tables (device address, load): name, network, "
                        "and the quality of its values, so a stale value is never silent.",
                        "socomecGatewayMIB", 3, ("gwLoadAddress", "gwLoadNumber"), mibdef.LOAD_COLUMNS))
    parts.extend(_table("gwAlarmTable", "gwAlarmEntry", "GwAlarmEntry",
                        "Active alarms: system alarms (1..8) and device alarms, one row per alarm and source.",
                        "socomecGatewayMIB", 4, ("gwAlarmNumber", "IMPLIED gwAlarmSource"),
                        mibdef.ALARM_COLUMNS))
    for sub, name, syntax, description in mibdef.TRAP_OBJECT_SCALARS:
        parts.append(_object(name, syntax, "accessible-for-notify", description, "gwTrapObjects", sub))
    for sub, name, objects, description in mibdef.NOTIFICATION_TYPES:
        parts.append("%s NOTIFICATION-TYPE\n    OBJECTS     { %s }\n    STATUS      current\n    DESCRIPTION\n"
                     "        %s\n    ::= { gwNotifications %d }" % (name, ",\n                  ".join(objects),
                                                                   _description(description), sub))
    return parts


def conformance_section():
    metrology = [c.descriptor for number, columns in sorted(mibdef.metrology_tables().items()) for c in columns]
    gateway = [s[1] for s in mibdef.IDENTITY_SCALARS]
    for columns in (mibdef.DEVICE_COLUMNS, mibdef.LOAD_COLUMNS, mibdef.ALARM_COLUMNS):
        gateway.extend(c[1] for c in columns if c[3] != "not-accessible")
    trap_objects = [s[1] for s in mibdef.TRAP_OBJECT_SCALARS]
    notifications = [n[1] for n in mibdef.NOTIFICATION_TYPES]

    def group(kind, name, members, sub, description, keyword="OBJECTS"):
        listed = ",\n                  ".join(members)
        return ("%s %s\n    %-11s { %s }\n    STATUS      current\n    DESCRIPTION\n        %s\n"
                "    ::= { gwGroups %d }" % (name, kind, keyword, listed, _description(description), sub))

    return [
        _oid_assign("gwGroups", "gwConformance", 1),
        _oid_assign("gwCompliances", "gwConformance", 2),
        group("OBJECT-GROUP", "gwMetrologyGroup", metrology, 1, "The metrology columns."),
        group("OBJECT-GROUP", "gwGatewayGroup", gateway, 2, "Gateway identification, devices, loads, alarms."),
        group("OBJECT-GROUP", "gwNotificationObjectsGroup", trap_objects, 3, "Objects carried by notifications."),
        group("NOTIFICATION-GROUP", "gwNotificationsGroup", notifications, 4, "The gateway's notifications.",
              "NOTIFICATIONS"),
        "gwCompliance MODULE-COMPLIANCE\n    STATUS      current\n    DESCRIPTION\n        %s\n"
        "    MODULE      -- this module\n        MANDATORY-GROUPS { gwMetrologyGroup, gwGatewayGroup,\n"
        "                           gwNotificationObjectsGroup, gwNotificationsGroup }\n"
        "    ::= { gwCompliances 1 }" % _description("What the openm70 gateway implements."),
    ]


HEADER = """\
-- Generated by `python -m tools.mib` from core/registry.py and
-- protocols/snmp/mibdef.py: do not edit by hand.

%s DEFINITIONS ::= BEGIN

IMPORTS
    MODULE-IDENTITY, OBJECT-TYPE, OBJECT-IDENTITY, NOTIFICATION-TYPE,
    Integer32, Gauge32, Counter32, Counter64, enterprises
        FROM SNMPv2-SMI
    TEXTUAL-CONVENTION, DisplayString, DateAndTime
        FROM SNMPv2-TC
    MODULE-COMPLIANCE, OBJECT-GROUP, NOTIFICATION-GROUP
        FROM SNMPv2-CONF;

socomecGatewayMIB MODULE-IDENTITY
    LAST-UPDATED "%s"
    ORGANIZATION "openm70-gateway project"
    CONTACT-INFO "See the project's README."
    DESCRIPTION
        %s
%s
    ::= { socomecProducts 30 }

socomec OBJECT IDENTIFIER ::= { enterprises 4555 }
socomecProducts OBJECT IDENTIFIER ::= { socomec 10 }"""


def generate():
    columns = mibdef.metrology_columns()
    used = set(c.syntax for c in columns)
    description = _description(
        "Energy-metering gateway compatible with the Socomec DIRIS Digiware M-70 SNMP tree. Metrology: "
        "1.3.6.1.4.1.4555.10.20.<table>.1.<serviceID>.<modbusAddress>.<load>, e.g. "
        "...10.20.20.1.10000.5.1 is current I1 of load 1 of the device at Modbus address 5. Values are "
        "integers: scaled ones carry a DISPLAY-HINT and say their scale in DESCRIPTION. A measurement a "
        "device does not offer reads 0; an address or load not in the topology is noSuchInstance. The "
        "gateway branch 1.3.6.1.4.1.4555.10.30 adds devices, load quality, active alarms and notifications.")
    revisions = "\n".join('    REVISION     "%s"\n    DESCRIPTION\n        %s' % (date, _description(text))
                          for date, text in REVISIONS)
    parts = [HEADER % (mibdef.MIB_NAME, REVISIONS[0][0], description, revisions)]
    parts.extend(conventions_section(used))
    parts.extend(metrology_section())
    parts.extend(gateway_section())
    parts.extend(conformance_section())
    text = "\n\n".join(parts) + "\n\nEND\n"
    text.encode("ascii")          # a MIB is ASCII (RFC 2578 §3.1.1): fail loudly otherwise
    return text


def main(argv=None):
    sys.stdout.write(generate())


if __name__ == "__main__":
    main()
