"""The Bluetooth sensors added as sources (SPEC §1 "BLE sources", issue 18): devices of the topology.

A source is a heard sensor a person added. It is a device of the topology like a meter (so the protocols, the
pages, a backup and a restore see it, and it is kept in the state directory's ``topology.json``): reference
``catalogue.BLE_SENSOR``, bus ``ble``, a Modbus address of its own (the highest free one, so meters found by
a detection rarely meet it: merge_detected leaves linked devices alone), one circuit (load 1) named after it,
its BLE address as serial number and ``link = {"kind": "ble", "mac": "A4:C1:...", "format": "pvvx"}``
(daemon/state/topology.py, device links). Every change is checked here before the topology is replaced
(``BleRefused``: field, catalogue key, params); the topology's own limits (SPEC §1: 32 devices) refuse too.
"""

from core import catalogue
from daemon.state.topology import Device
from daemon.state.usages import name_problem

BUS = "ble"
LINK_KIND = "ble"
MAX_SOURCES = 16             # sensors kept as sources (each is a row in every protocol's tables)
MAX_AREA = 32
FORMATS = ("bthome", "pvvx", "atc1441", "ruuvi")
ADDRESSES = range(247, 0, -1)            # Modbus addresses a source takes: the highest free one


class BleRefused(ValueError):
    """A source change refused: ``detail`` = {field, key (catalogue), params}; nothing changed."""

    def __init__(self, message, field, key, **params):
        ValueError.__init__(self, message)
        self.detail = {"field": field, "key": key, "params": params}


def normal_address(address):
    """"A4:C1:38:8D:18:B2" (upper case) or None when ``address`` is not six hex bytes with colons."""
    if not isinstance(address, str) or len(address) != 17:
        return None
    parts = address.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        return None
    return address.upper()


def is_source(device):
    return device.link is not None and device.link.get("kind") == LINK_KIND


def sources(devices):
    """{BLE address: device} of the topology's Bluetooth sources."""
    return dict((d.link["mac"], d) for d in devices if is_source(d))


def listing(devices):
    """[{address, name, area, format, device}] by BLE address (``device``: its Modbus address in the tables)."""
    return [{"address": mac, "name": d.name, "area": d.area, "format": d.link.get("format"), "device": d.address}
            for mac, d in sorted(sources(devices).items())]


def with_source(devices, address, name, area, heard_format):
    """The topology's devices plus a source for the sensor heard at ``address`` in ``heard_format`` (None: not
    heard, or not in a readable frame); BleRefused when it cannot be added."""
    normal = normal_address(address)
    if normal is None:
        raise BleRefused("not a Bluetooth address", "address", "ble.error.address")
    if heard_format not in FORMATS:
        raise BleRefused("this sensor was not heard in a format the gateway reads", "address", "ble.error.not_heard")
    known = sources(devices)
    if normal in known:
        raise BleRefused("this sensor is already a source", "address", "ble.error.already")
    if len(known) >= MAX_SOURCES:
        raise BleRefused("at most %d Bluetooth sources" % MAX_SOURCES, "address", "ble.error.max", max=MAX_SOURCES)
    problem = name_problem(name)
    if problem is not None:
        raise BleRefused(str(problem), "name", problem.detail["key"], **problem.detail["params"])
    if not isinstance(area, str) or len(area) > MAX_AREA or any(ord(c) < 32 for c in area):
        raise BleRefused("the area must be text of at most %d characters" % MAX_AREA, "area", "ble.error.area",
                         max=MAX_AREA)
    if any(d.name.strip().lower() == name.strip().lower() for d in devices):
        raise BleRefused("a device is already named %r" % name, "name", "ble.error.name_taken")
    used = set(d.address for d in devices)
    free = next((a for a in ADDRESSES if a not in used), None)
    if free is None:
        raise BleRefused("no Modbus address is free for the source", "address", "ble.error.no_address")
    device = Device(BUS, free, catalogue.BLE_SENSOR, "", name.strip(), area.strip(),
                    [{"load": 1, "network": "1P+N", "name": name.strip()}], serial=normal.replace(":", ""),
                    link={"kind": LINK_KIND, "mac": normal, "format": heard_format})
    return list(devices) + [device], device


def without_source(devices, address):
    """The topology's devices without the source at BLE ``address``; BleRefused when there is none."""
    normal = normal_address(address)
    if normal is None or normal not in sources(devices):
        raise BleRefused("no Bluetooth source at this address", "address", "ble.error.no_source")
    return [d for d in devices if not (is_source(d) and d.link["mac"] == normal)]
