"""The BACnet EDE file and a PICS-style summary, from the live configuration.

The BACnet service publishes both through the door (``/api/files/bacnet-ede.csv``,
``/api/files/bacnet-pics.md``); ``python -m tools.ede`` writes them from a
state directory. ``setting`` is a callable name -> value (``Door.setting`` or
``Settings.get``), ``devices`` the topology's devices.

The EDE (Engineering Data Exchange, B.I.G.-EU layout 2.3) lists every object
of every virtual device: the gateway's Device, each meter's Device and its
Analog/Binary Inputs and Binary Outputs, with units and the Modbus source as
vendor-specific address. It is generated from ``protocols.bacnet.points``,
the same list the BACnet server builds its objects from.
"""

import time

from core import catalogue
from protocols.bacnet import points as pts

LAYOUT_VERSION = "2.3"
OBJECT_TYPE_CODES = {"device": 8, pts.ANALOG_INPUT: 0, pts.BINARY_INPUT: 3, pts.BINARY_OUTPUT: 4}
SHORT = {"device": "DEV", pts.ANALOG_INPUT: "AI", pts.BINARY_INPUT: "BI", pts.BINARY_OUTPUT: "BO"}
COLUMNS = ("keyname", "device obj.-instance", "object-name", "object-type", "object-instance", "description",
           "present-value-default", "min-present-value", "max-present-value", "settable", "supports COV",
           "hi-limit", "low-limit", "state-text-reference", "unit-code", "vendor-specific-address")
# Services of the gateway's Device (the meters': the same minus time synchronization), as BIBBs.
BIBBS = (
    ("DS-RP-B", "ReadProperty"), ("DS-RPM-B", "ReadPropertyMultiple"), ("DS-WP-B", "WriteProperty (Binary Output)"),
    ("DM-DDB-B", "Who-Is / I-Am"), ("DM-DOB-B", "Who-Has / I-Have"),
    ("DM-TS-B", "TimeSynchronization (gateway device)"), ("DM-UTC-B", "UTCTimeSynchronization (gateway device)"),
    ("NM-RC-B", "Who-Is-Router-To-Network / I-Am-Router-To-Network (router to the virtual network)"),
)


def _field(value):
    text = "" if value is None else str(value)
    return text.replace(";", ",").replace("\n", " ")


def site_rows(setting, devices):
    """EDE rows (tuples in COLUMNS order) for the gateway and every device of the topology."""
    main = setting("bacnet.main_instance")
    rows = [("DEV%d" % main, main, setting("gateway.name"), 8, main, setting("gateway.description"),
             "", "", "", "N", "N", "", "", "", "", "gateway")]
    for device in sorted(devices, key=lambda d: d.address):
        instance = pts.device_instance(main, device.address)
        rows.append(("DEV%d" % instance, instance, device.name, 8, instance,
                     "%s at Modbus address %d" % (catalogue.product(device.reference)[catalogue.EXT_NAME],
                                                 device.address),
                     "", "", "", "N", "N", "", "", "", "", "modbus:%s:%d" % (device.bus, device.address)))
        for point in pts.device_points(device):
            rows.append(("DEV%d.%s%d" % (instance, SHORT[point.kind], point.instance), instance, point.name,
                         OBJECT_TYPE_CODES[point.kind], point.instance, point.description, "", "", "",
                         "Y" if point.kind == pts.BINARY_OUTPUT else "N", "N", "", "",
                         "", "" if point.units is None else point.units,
                         "modbus:%s:%d/%d/%s" % (device.bus, device.address, point.load, point.key)))
    return rows


def ede_csv(setting, devices, now=None):
    """The EDE file as text (semicolon-separated, as EDE readers expect)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now if now is not None else time.time()))
    lines = [
        "# Proposal_Engineering-Data-Exchange - B.I.G.-EU",
        "PROJECT_NAME;%s" % _field(setting("gateway.name")),
        "VERSION_OF_REFERENCEFILE;1",
        "TIMESTAMP_OF_LAST_CHANGE;%s" % stamp,
        "AUTHOR_OF_LAST_CHANGE;protocols/bacnet/ede.py",
        "VERSION_OF_LAYOUT;%s" % LAYOUT_VERSION,
        "# mandatory;mandatory;mandatory;mandatory;mandatory;optional;optional;optional;optional;optional;"
        "optional;optional;optional;optional;conditional;optional",
        "# " + ";".join(COLUMNS),
    ]
    for row in site_rows(setting, devices):
        lines.append(";".join(_field(v) for v in row))
    return "\n".join(lines) + "\n"


def pics(setting, devices):
    """A PICS-style summary (Markdown): what the BACnet server implements, for this site."""
    from protocols.bacnet import objects
    main = setting("bacnet.main_instance")
    out = ["# BACnet PICS summary: %s" % setting("gateway.name"), "",
           "| item | value |", "| --- | --- |",
           "| vendor name / identifier | %s / %d (not ASHRAE-assigned, see docs/bacnet.md) |"
           % (objects.VENDOR_NAME, objects.VENDOR_ID),
           "| model / protocol revision | M-70 / %d |" % objects.PROTOCOL_REVISION,
           "| data link | BACnet/IP (Annex J), UDP port %d |" % setting("bacnet.port"),
           "| routing | router to virtual network %d (meters: MAC = Modbus address) |"
           % setting("bacnet.network"),
           "| segmentation | segmented transmit only; segmented requests are aborted |",
           "| max APDU | %d |" % objects.MAX_APDU,
           "| character set | UTF-8 |",
           "| devices | gateway %d + %d meters (instance = %d + Modbus address) |" % (main, len(devices), main),
           "", "## BIBBs", ""]
    out += ["- %s: %s" % bibb for bibb in BIBBS]
    out += ["", "## Objects and properties", ""]
    classes = (("Device", objects.VirtualDevice), ("Analog Input", objects.MeterAnalogInput),
               ("Analog Input with min/max (annex II)", objects.MinMaxAnalogInput),
               ("Analog Input with average (annex II)", objects.AveragedAnalogInput),
               ("Binary Input", objects.MeterBinaryInput), ("Binary Output (writable Present_Value)",
                                                            objects.MeterBinaryOutput))
    for title, cls in classes:
        names = [str(objects.VendorPropertyIdentifier(n)) for n in cls.EXPOSED]
        out.append("- **%s**: %s" % (title, ", ".join(names)))
    out += ["", "## Devices", "", "| instance | name | reference | AI | BI | BO |",
            "| --- | --- | --- | --- | --- | --- |"]
    for device in sorted(devices, key=lambda d: d.address):
        kinds = [p.kind for p in pts.device_points(device)]
        out.append("| %d | %s | %s | %d | %d | %d |" % (
            pts.device_instance(main, device.address), device.name, device.reference,
            kinds.count(pts.ANALOG_INPUT), kinds.count(pts.BINARY_INPUT), kinds.count(pts.BINARY_OUTPUT)))
    return "\n".join(out) + "\n"
