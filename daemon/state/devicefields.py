"""What a person may set on a device and on a circuit from the Devices pages, and the checks of each field.

The door (``Door.add_device``, ``edit_device``, ``edit_circuits``) reads a
form through these functions, which return the clean values and one
*detail* per refused field (``{"field", "key", "params"}``: a catalogue key,
so the web says it in the caller's language). The SPEC §1 limits are said
per field here too (``limit_details``) before ``Topology.replace`` checks
them again as the authority, so a refusal names the field and changes
nothing.
"""

import re

from core import catalogue
from daemon.state import topology as topo
from daemon.state.usages import FLUIDS, MAX_NAME, name_problem

MIN_ADDRESS, MAX_ADDRESS = 1, 247
NETID = re.compile(r"^[0-9A-Fa-f]{6}$")
SERIAL = re.compile(r"^[A-Za-z0-9-]{1,24}$")
BUS_OF_PRODUCT = {catalogue.D: "digiware", catalogue.R: "rs485"}     # where a product sits by default
DEVICE_FIELDS = ("bus", "address", "reference", "name", "area", "netid", "serial")
EDITABLE_FIELDS = ("bus", "address", "name", "area")
CIRCUIT_FIELDS = ("name", "fluid", "usage")
MAX_EDITS = topo.MAX_CIRCUITS
PATTERN_FIELDS = ("{n}", "{load}", "{device}")


def detail(field, key, **params):
    return {"field": field, "key": key, "params": params}


def products():
    """The references a device may be added as: every product on a serial bus, gateways excepted."""
    return [{"reference": row[catalogue.REF], "group": row[catalogue.GROUP], "bus": BUS_OF_PRODUCT[row[catalogue.BUS]],
             "loads": row[catalogue.LOADS]}
            for row in catalogue.PRODUCTS
            if row[catalogue.PROFILE] != "gateway" and row[catalogue.BUS] in BUS_OF_PRODUCT]


def _product_ok(reference):
    return isinstance(reference, str) and any(p["reference"] == reference for p in products())


def _int(value):
    return type(value) is int


def check_device(data, buses, creating):
    """(clean fields, details) of a device form: all of DEVICE_FIELDS on creation (name, area, NET ID and
    serial optional), EDITABLE_FIELDS on an edit (each optional)."""
    details, clean = [], {}
    allowed = DEVICE_FIELDS if creating else EDITABLE_FIELDS
    for name in sorted(data):
        if name not in allowed:
            details.append(detail(str(name)[:40], "web.devices.error.unknown_field"))
    if creating and "reference" not in data:
        details.append(detail("reference", "web.devices.error.required"))
    if "reference" in data and creating:
        if not _product_ok(data["reference"]):
            details.append(detail("reference", "web.devices.error.reference"))
        else:
            clean["reference"] = data["reference"]
    if creating and "address" not in data:
        details.append(detail("address", "web.devices.error.required"))
    if "address" in data:
        if not _int(data["address"]) or not MIN_ADDRESS <= data["address"] <= MAX_ADDRESS:
            details.append(detail("address", "web.devices.error.address", min=MIN_ADDRESS, max=MAX_ADDRESS))
        else:
            clean["address"] = data["address"]
    if "bus" in data:
        if data["bus"] not in buses:
            details.append(detail("bus", "web.devices.error.bus", buses=", ".join(buses)))
        else:
            clean["bus"] = data["bus"]
    elif creating and "reference" in clean:
        clean["bus"] = next(p["bus"] for p in products() if p["reference"] == clean["reference"])
    for name in ("name", "area"):
        if name not in data:
            continue
        value = data[name]
        if name == "area" and value == "":
            clean[name] = ""
        elif name == "name" and value == "" and creating:
            pass                                  # the gateway makes one: "I-35@5 - DC85EA"
        else:
            problem = name_problem(value, name)
            if problem is not None:
                details.append(problem.detail)
            else:
                clean[name] = value.strip()
    if "netid" in data and data["netid"] != "":
        if not isinstance(data["netid"], str) or not NETID.match(data["netid"]):
            details.append(detail("netid", "web.devices.error.netid"))
        elif "reference" in clean and not catalogue.has_netid(clean["reference"]):
            details.append(detail("netid", "web.devices.error.no_netid"))
        else:
            clean["netid"] = data["netid"].upper()
    if "serial" in data and data["serial"] != "":
        if not isinstance(data["serial"], str) or not SERIAL.match(data["serial"]):
            details.append(detail("serial", "web.devices.error.serial"))
        else:
            clean["serial"] = data["serial"]
    return clean, details


def limit_details(devices, baud_of, field=None):
    """The SPEC §1 limits ``devices`` break, as details (the address once, 32 devices, 192 circuits, 10 at
    9600 baud); ``field`` names the form field a duplicate address is told on."""
    details = []
    seen = set()
    for device in devices:
        if device.address in seen:
            details.append(detail(field or "address", "web.devices.error.address_taken", address=device.address))
        seen.add(device.address)
    if len(devices) > topo.MAX_DEVICES:
        details.append(detail(None, "web.devices.error.max_devices", max=topo.MAX_DEVICES))
    circuits = sum(len(d.loads) for d in devices)
    if circuits > topo.MAX_CIRCUITS:
        details.append(detail(None, "web.devices.error.max_circuits", max=topo.MAX_CIRCUITS))
    for bus in sorted(set(d.bus for d in devices)):
        baud = baud_of(bus)
        if baud is not None and baud <= topo.SLOW_BAUD and sum(1 for d in devices if d.bus == bus) > \
                topo.MAX_DEVICES_SLOW:
            details.append(detail("bus", "web.devices.error.slow_bus", bus=bus, baud=baud, max=topo.MAX_DEVICES_SLOW))
    return details


def new_device(clean):
    return topo.Device(clean["bus"], clean["address"], clean["reference"], clean.get("netid", ""),
                       clean.get("name"), clean.get("area", ""), serial=clean.get("serial", ""))


def edited_device(old, clean):
    """``old`` with the edited fields; an automatic name follows a new address."""
    name = clean.get("name")
    if name is None and not topo.auto_named(old):
        name = old.name
    tcp = old.link is not None and old.link.get("kind") == topo.TCP_BUS     # a TCP device stays off the buses
    return old.kept(bus=old.bus if tcp else clean.get("bus", old.bus), address=clean.get("address", old.address),
                    name=name,
                    area=clean.get("area", old.area))


def check_circuit_edit(body, devices, usage_known):
    """(edits {(address, load): {field: value}}, details) of a Circuits form:
    ``{"loads": [{"address", "load"}...], "name": ..., "name_pattern": ..., "fluid": ..., "usage": ...}``.

    One load may get a name; several get the same fluid and usage and, with ``name_pattern``, names made from it
    (``{n}``: its place in the selection from 1, ``{load}``: its load number, ``{device}``: its device's name)."""
    details = []
    for name in sorted(body):
        if name not in ("loads", "name", "name_pattern", "fluid", "usage"):
            details.append(detail(str(name)[:40], "web.devices.error.unknown_field"))
    loads = body.get("loads")
    by_address = dict((d.address, d) for d in devices)
    selection = []
    if not isinstance(loads, list) or not loads or len(loads) > MAX_EDITS:
        details.append(detail("loads", "web.devices.error.selection", max=MAX_EDITS))
    else:
        for entry in loads:
            if not isinstance(entry, dict) or not _int(entry.get("address")) or not _int(entry.get("load")):
                details.append(detail("loads", "web.devices.error.selection", max=MAX_EDITS))
                break
            device = by_address.get(entry["address"])
            if device is None or entry["load"] not in [x["load"] for x in device.loads]:
                details.append(detail("loads", "web.devices.error.no_circuit", address=entry["address"],
                                      load=entry["load"]))
                break
            if (entry["address"], entry["load"]) not in selection:
                selection.append((entry["address"], entry["load"]))
    common = {}
    if "fluid" in body:
        if body["fluid"] not in FLUIDS:
            details.append(detail("fluid", "web.devices.error.fluid"))
        else:
            common["fluid"] = body["fluid"]
    if "usage" in body:
        if not isinstance(body["usage"], str) or not usage_known(body["usage"]):
            details.append(detail("usage", "web.devices.error.usage"))
        else:
            common["usage"] = body["usage"]
    names = {}
    if "name" in body and "name_pattern" in body:
        details.append(detail("name_pattern", "web.devices.error.name_or_pattern"))
    elif "name" in body:
        problem = name_problem(body["name"], "name")
        if problem is not None:
            details.append(problem.detail)
        elif len(selection) > 1:
            details.append(detail("name", "web.devices.error.one_name"))
        elif selection:
            names[selection[0]] = body["name"].strip()
    elif "name_pattern" in body:
        pattern = body["name_pattern"]
        problem = name_problem(pattern, "name_pattern") if isinstance(pattern, str) and len(pattern) <= 4 * MAX_NAME \
            else name_problem(None, "name_pattern")
        if problem is not None:
            details.append(problem.detail)
        else:
            for n, (address, load) in enumerate(selection, 1):
                made = pattern.replace("{n}", str(n)).replace("{load}", str(load)) \
                    .replace("{device}", by_address[address].name)
                problem = name_problem(made, "name_pattern")
                if problem is not None:
                    details.append(problem.detail)
                    break
                names[(address, load)] = made.strip()
    if not details and not common and not names:
        details.append(detail(None, "web.devices.error.nothing"))
    edits = dict((key, dict(common, **({"name": names[key]} if key in names else {}))) for key in selection)
    return edits, details


def with_circuit_edits(devices, edits):
    """The devices with ``edits`` applied to their loads (new Devices; the others as they are)."""
    out = []
    for device in devices:
        if not any(address == device.address for address, _load in edits):
            out.append(device)
            continue
        loads = [dict(x, **edits.get((device.address, x["load"]), {})) for x in device.loads]
        out.append(device.kept(loads=loads))
    return out


def usage_count(devices, key):
    return sum(1 for d in devices for x in d.loads if x.get("usage") == key)
