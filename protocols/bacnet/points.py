"""What a virtual BACnet device holds, derived from the registry (SPEC §3.3).

Pure data work, no BACnet stack: the service builds its objects from these
points and ``tools/ede.py`` writes the EDE file from the very same list, so
the two cannot disagree. A meter of the topology is Device *main instance +
Modbus address*; it holds one Analog Input LLMM per (load, measurement) its
catalogue map offers, one Binary Input per digital input (``in_k``) and one
Binary Output per output (``out_k``).
"""

from core import registry
from daemon.state import devstate
from daemon.state.cache import COMM_LOST, GOOD, NOT_SUPPORTED, STALE

ANALOG_INPUT = "analog-input"
BINARY_INPUT = "binary-input"
BINARY_OUTPUT = "binary-output"

# Binary objects by registry key prefix: object type and instance = the k of in_k / out_k.
BINARY_PREFIXES = (("in_", BINARY_INPUT), ("out_", BINARY_OUTPUT))

# Annex II of the M-70 manual: the measurement indexes (MM) whose AI carries
# min/max of the present value, and those carrying an average, when the
# meter provides the data (columns "Min/Max présent." and "Moyenne").
MINMAX_MM = frozenset(list(range(3, 15)) + list(range(21, 41)) + list(range(46, 56)))
AVERAGE_MM = frozenset(list(range(3, 15)) + list(range(21, 41)))

# Quality → (present value rule, fault flag, BACnet Reliability). A value the
# gateway cannot vouch for is never served silently: the fault flag and the
# reliability say why. "not supported" reads 0 as the manual says.
QUALITY_MAP = {
    GOOD: ("value", False, "no-fault-detected"),
    STALE: ("last", True, "unreliable-other"),
    COMM_LOST: ("last", True, "communication-failure"),
    NOT_SUPPORTED: ("zero", True, "no-sensor"),
}

# The one device summary (daemon/state/devstate.py) → the Device object's
# (System_Status, fault flag of Status_Flags, Reliability). A meter whose link
# is down or in doubt (comm_lost, conflict, unknown) also marks every one of
# its objects with that Reliability: a value from an address two meters
# answer at cannot be vouched for, however fresh.
DEVICE_MAP = {
    devstate.OK: ("operational", False, "no-fault-detected"),
    devstate.STALE: ("operational", True, "unreliable-other"),
    devstate.COMM_LOST: ("non-operational", True, "communication-failure"),
    devstate.CONFLICT: ("non-operational", True, "configuration-error"),
    devstate.UNKNOWN: ("non-operational", True, "communication-failure"),
}
RELIABILITIES = frozenset(rule[2] for rule in list(QUALITY_MAP.values()) + list(DEVICE_MAP.values()))


class Point:
    """One object of a virtual device: where its value comes from and how it is named."""
    __slots__ = ("kind", "instance", "load", "key", "name", "description", "units", "average_key",
                 "minmax")

    def __init__(self, kind, instance, load, key, name, description, units, average_key=None, minmax=False):
        self.kind = kind
        self.instance = instance
        self.load = load
        self.key = key
        self.name = name
        self.description = description
        self.units = units
        self.average_key = average_key
        self.minmax = minmax

    def __repr__(self):
        return "<Point %s,%d %s/%d>" % (self.kind, self.instance, self.key, self.load)


def _average_keys():
    """{instantaneous key: average key}, paired by their standard names (II1Inst ↔ II1Avg)."""
    by_std = dict((row[registry.STD_NAME], row[registry.KEY]) for row in registry.MEASUREMENTS)
    pairs = {}
    for row in registry.MEASUREMENTS:
        std = row[registry.STD_NAME]
        if row[registry.KIND] == "avg" and std.endswith("Avg"):
            inst = by_std.get(std[:-3] + "Inst")
            if inst is not None:
                pairs[inst] = row[registry.KEY]
    return pairs


AVERAGE_OF = _average_keys()


def load_label(device, load):
    if load == 0:
        return "device"
    for entry in device.loads:
        if entry["load"] == load:
            return entry.get("name") or "Load %d" % load
    return "Load %d" % load


def device_keys(device):
    """{load: set of registry keys} the device offers, from the catalogue map (or its data model)."""
    out = {}
    for load in device.load_numbers():
        out[load] = device.measurement_keys(load)     # the catalogue's map, or a generic device's data model
    return out


def device_points(device):
    """The objects (other than the Device object) of one meter, in object-list order."""
    keys = device_keys(device)
    analog, binary = [], []
    for load in sorted(keys):
        offered = keys[load]
        for row in registry.MEASUREMENTS:
            key = row[registry.KEY]
            if key not in offered:
                continue
            mm = row[registry.BACNET_MM]
            if mm is not None:
                label = row[registry.NAME] if load == 0 else "%s L%d" % (row[registry.NAME], load)
                avg = AVERAGE_OF.get(key) if mm in AVERAGE_MM else None
                analog.append(Point(
                    ANALOG_INPUT, registry.bacnet_instance(load, key), load, key, label,
                    "%s - %s (%s)" % (load_label(device, load), row[registry.NAME], row[registry.STD_NAME]),
                    row[registry.BACNET_UNITS], avg if avg in offered else None, mm in MINMAX_MM))
                continue
            for prefix, kind in BINARY_PREFIXES:
                if key.startswith(prefix) and load == 0:
                    binary.append(Point(kind, int(key[len(prefix):]), load, key, row[registry.NAME],
                                        "%s of %s" % (row[registry.NAME], device.reference), None))
    return analog + binary


def device_instance(main_instance, address):
    return main_instance + address


def present(reading, link=devstate.OK):
    """(present value, fault, reliability) of a cache Reading under QUALITY_MAP.

    ``link`` is the device's link state (``Door.device_link``): when it is not
    ok, its Reliability wins over the value's own.
    """
    rule, fault, reliability = QUALITY_MAP[reading.quality]
    if link != devstate.OK and rule != "zero":
        fault, reliability = True, DEVICE_MAP[link][2]
    if rule == "zero" or reading.value is None:
        return 0.0, fault, reliability
    return float(reading.value), fault, reliability
