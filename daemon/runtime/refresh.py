"""Refresh one device of the topology: read its identification again on its bus (WEBVIEW-M §9.6.3, item 9).

The Sources page's *refresh row* and *refresh all* ask the device at an
address who it is, as a FULL detection does at that address (the same
reads, through ``Discovery``'s identification steps at detection priority),
and say what answered: the same product (its NET ID, serial number and loads
are taken again, the names, area, fluids and usages a person gave are kept),
another product, nobody, or several devices at once (a collision).
"""

from daemon.runtime.discovery import FULL_TIMEOUT_FACTOR, Discovery, Garbled
from daemon.state.topology import PERSON_LOAD_FIELDS, Device, auto_named

SAME, OTHER, SILENT, CONFLICT, UNKNOWN = "same", "other_product", "silent", "conflict", "unknown"


async def identify(discovery, engine, device):
    """(outcome, the device as found or None): one of SAME, OTHER, SILENT, CONFLICT, UNKNOWN."""
    probe = Discovery(discovery.engines, discovery.topology, discovery.alarms, discovery.settings)
    probe.know([device])                             # loads a module cannot tell are taken from the topology
    timeout = discovery.settings.get("discovery.timeout_ms") / 1000.0 * FULL_TIMEOUT_FACTOR
    ident = CONFLICT
    for _attempt in range(2):                        # one retry tells a noisy frame from a collision, as a detection
        try:
            ident = await probe.identify(engine, device.address, timeout)
            break
        except Garbled:
            continue
    if ident == CONFLICT:
        return CONFLICT, None
    if ident is None:
        return SILENT, None
    found = probe.device_from(device.bus, device.address, ident, "full")
    if found is None:
        return UNKNOWN, None
    if found.reference != device.reference:
        return OTHER, found
    await probe.set_loads(engine, found, timeout)
    return SAME, found


def refreshed(old, found):
    """``old`` with what ``found`` says of the device (NET ID, serial, loads), the person's fields kept."""
    kept = dict((x["load"], x) for x in old.loads)
    loads = [dict(x, **dict((k, kept[x["load"]][k]) for k in PERSON_LOAD_FIELDS if kept.get(x["load"], {}).get(k)))
             for x in found.loads]
    return Device(old.bus, old.address, old.reference, found.netid, None if auto_named(old) else old.name, old.area,
                  loads, found.serial or old.serial, not_found=False)


def silent(old):
    """``old`` flagged as not found (kept, as a detection keeps a device it does not find)."""
    return Device(old.bus, old.address, old.reference, old.netid, old.name, old.area, [dict(x) for x in old.loads],
                  old.serial, not_found=True)
