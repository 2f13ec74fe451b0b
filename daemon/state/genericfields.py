"""The generic-device form (issue 18): what a person gives to add a generic Modbus device, and its checks.

Like daemon/state/devicefields.py for catalogue meters: ``check_generic``
returns the clean fields and one *detail* per refused field (a catalogue
key), and ``new_generic`` the topology Device (daemon/state/topology.py
links): on a master bus (``link`` "rtu": bus + address) or over Modbus TCP
(``link`` "tcp": host, port, unit, and the address the protocols' tables
give it). The SPEC §1 limits are checked by the door as for any device.
"""

import re

from core import catalogue, datamodel
from daemon.state import topology as topo
from daemon.state.devicefields import MAX_ADDRESS, MIN_ADDRESS, detail
from daemon.state.usages import name_problem

FIELDS = ("link", "bus", "address", "model", "name", "area", "host", "port", "unit")
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
DEFAULT_PORT = 502


def _int(value, low, high):
    return type(value) is int and low <= value <= high


def check_generic(data, buses, model_of):
    """(clean fields, details) of a generic-device form; ``buses``: the master buses, ``model_of(name)``."""
    if not isinstance(data, dict):
        return {}, [detail(None, "web.devices.error.object")]
    details, clean = [], {}
    for name in sorted(data):
        if name not in FIELDS:
            details.append(detail(str(name)[:40], "web.devices.error.unknown_field"))
    link = data.get("link")
    if link not in topo.LINK_KINDS:
        details.append(detail("link", "generic.error.link"))
    clean["link"] = link
    if not _int(data.get("address"), MIN_ADDRESS, MAX_ADDRESS):
        details.append(detail("address", "generic.error.range", min=MIN_ADDRESS, max=MAX_ADDRESS))
    else:
        clean["address"] = data["address"]
    model = data.get("model")
    if not isinstance(model, str) or model_of(model) is None:
        details.append(detail("model", "generic.error.no_model", name=str(model)[:40]))
    else:
        clean["model"] = model
    for field in ("name", "area"):
        if field in data and not (field == "area" and data[field] == ""):
            problem = name_problem(data[field], field)
            if problem is not None:
                details.append(problem.detail)
            else:
                clean[field] = data[field].strip()
    if link == "rtu":
        if data.get("bus") not in buses:
            details.append(detail("bus", "generic.error.bus"))
        else:
            clean["bus"] = data["bus"]
        for field in ("host", "port", "unit"):
            if field in data:
                details.append(detail(field, "generic.error.tcp_only"))
    elif link == "tcp":
        host = data.get("host")
        if not isinstance(host, str) or not HOST.match(host.strip()):
            details.append(detail("host", "generic.error.host"))
        else:
            clean["host"] = host.strip()
        port = data.get("port", DEFAULT_PORT)
        if not _int(port, 1, 65535):
            details.append(detail("port", "generic.error.range", min=1, max=65535))
        else:
            clean["port"] = port
        unit = data.get("unit", 1)
        if not _int(unit, 0, 255):
            details.append(detail("unit", "generic.error.range", min=0, max=255))
        else:
            clean["unit"] = unit
        if "bus" in data and data["bus"] != topo.TCP_BUS:
            details.append(detail("bus", "generic.error.rtu_only"))
    return clean, details


def new_generic(clean, model):
    """The topology Device of a checked form, holding a copy of its data model."""
    if clean["link"] == "tcp":
        bus, link = topo.TCP_BUS, {"kind": "tcp", "host": clean["host"], "port": clean["port"], "unit": clean["unit"]}
    else:
        bus, link = clean["bus"], {"kind": "rtu"}
    name = clean.get("name") or "%s@%d" % (model["name"][:24], clean["address"])
    loads = [{"load": datamodel.LOAD, "network": "3P+N", "name": name}]
    return topo.Device(bus, clean["address"], catalogue.GENERIC, "", name, clean.get("area", ""), loads,
                       link=link, model={"name": model["name"], "rows": [dict(r) for r in model["rows"]]})
