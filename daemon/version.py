"""The software version, defined once (status, SNMP sysDescr, BACnet firmware, Modbus identification)."""

VERSION = "0.1.0"
