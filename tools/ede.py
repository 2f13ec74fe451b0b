"""The BACnet EDE file and a PICS-style summary, from the live configuration.

    python -m tools.ede --state-dir /var/lib/gateway [--pics] > site.csv
    python -m tools.ede --url http://127.0.0.1:8080 [--pics] > site.csv

``--state-dir`` reads the settings and topology a gateway keeps (the daemon
may be running or not); ``--url`` asks a running gateway, which serves the
same files at ``/api/files/bacnet-ede.csv`` and ``/api/files/bacnet-pics.md``.

The EDE (Engineering Data Exchange, B.I.G.-EU layout 2.3) lists every object
of every virtual device: the gateway's Device, each meter's Device and its
Analog/Binary Inputs and Binary Outputs, with units and the Modbus source as
vendor-specific address. It is generated from ``protocols.bacnet.points``,
the same list the BACnet server builds its objects from.
"""

import argparse
import sys
import time

from daemon import catalogue
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


def site_rows(settings, devices):
    """EDE rows (tuples in COLUMNS order) for the gateway and every device of the topology."""
    main = settings.get("bacnet.main_instance")
    rows = [("DEV%d" % main, main, settings.get("gateway.name"), 8, main, settings.get("gateway.description"),
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


def ede_csv(gateway=None, settings=None, devices=None, now=None):
    """The EDE file as text (semicolon-separated, as EDE readers expect)."""
    if gateway is not None:
        settings, devices = gateway.settings, gateway.topology.devices
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now if now is not None else time.time()))
    lines = [
        "# Proposal_Engineering-Data-Exchange - B.I.G.-EU",
        "PROJECT_NAME;%s" % _field(settings.get("gateway.name")),
        "VERSION_OF_REFERENCEFILE;1",
        "TIMESTAMP_OF_LAST_CHANGE;%s" % stamp,
        "AUTHOR_OF_LAST_CHANGE;tools/ede.py",
        "VERSION_OF_LAYOUT;%s" % LAYOUT_VERSION,
        "# mandatory;mandatory;mandatory;mandatory;mandatory;optional;optional;optional;optional;optional;"
        "optional;optional;optional;optional;conditional;optional",
        "# " + ";".join(COLUMNS),
    ]
    for row in site_rows(settings, devices):
        lines.append(";".join(_field(v) for v in row))
    return "\n".join(lines) + "\n"


def pics(gateway=None, settings=None, devices=None):
    """A PICS-style summary (Markdown): what the BACnet server implements, for this site."""
    from protocols.bacnet import objects
    if gateway is not None:
        settings, devices = gateway.settings, gateway.topology.devices
    main = settings.get("bacnet.main_instance")
    out = ["# BACnet PICS summary: %s" % settings.get("gateway.name"), "",
           "| item | value |", "| --- | --- |",
           "| vendor name / identifier | %s / %d (not ASHRAE-assigned, see docs/bacnet.md) |"
           % (objects.VENDOR_NAME, objects.VENDOR_ID),
           "| model / protocol revision | M-70 / %d |" % objects.PROTOCOL_REVISION,
           "| data link | BACnet/IP (Annex J), UDP port %d |" % settings.get("bacnet.port"),
           "| routing | router to virtual network %d (meters: MAC = Modbus address) |"
           % settings.get("bacnet.network"),
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


def _from_state_dir(state_dir):
    import os
    from daemon.settings import Settings
    from daemon.topology import Topology
    settings = Settings(os.path.join(state_dir, "settings.json"))
    topology = Topology(os.path.join(state_dir, "topology.json"))
    return settings, topology.devices


def _from_url(url, name):
    import urllib.request
    with urllib.request.urlopen(url.rstrip("/") + "/api/files/" + name, timeout=10) as answer:
        return answer.read().decode("utf-8")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.ede", description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--state-dir", help="a gateway's state directory")
    source.add_argument("--url", help="a running gateway, e.g. http://127.0.0.1:8080")
    parser.add_argument("--pics", action="store_true", help="write the PICS summary instead of the EDE file")
    args = parser.parse_args(argv)
    if args.url:
        try:
            text = _from_url(args.url, "bacnet-pics.md" if args.pics else "bacnet-ede.csv")
        except OSError as exc:
            sys.stderr.write("cannot read from %s: %s\n" % (args.url, exc))
            return 1
    else:
        settings, devices = _from_state_dir(args.state_dir)
        text = pics(settings=settings, devices=devices) if args.pics else ede_csv(settings=settings, devices=devices)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
