"""The topology: the devices the gateway polls, persisted in tinydb.

Each device: bus, Modbus address, product reference, name, NET ID (6 hex
digits, or "" for a device whose identification has none: DIRIS A, COUNTIS),
serial number, area, its loads (number, network type, name; the Circuits
page adds ``fluid`` and ``usage``, absent from older files: daemon/state/usages.py
says what they read as), and whether the last detection failed to find it (``not_found``).
``Device.uid`` keys a device wherever the key must outlive its address (curve
series, event-log cursors, "same device?" checks): its NET ID, or without one
its reference and serial number ("E23-E230010000001"). The document is
replaced atomically on every save, a good copy kept as
``topology.json.bak`` (daemon/atomicfile.py); a file that is not a valid
document is moved aside and that copy restored (``Topology.load_problem``).

SPEC §1 limits, checked by ``check`` on every ``replace`` (detection, the
web's devices page): at most 32 devices and 192 circuits (loads) in all, and
at most 10 devices on a bus whose baud rate is 9600. A topology beyond them is
refused whole with ``TopologyRefused`` (a ValueError) whose message says
which limit, and the topology in place is kept. With the settings given, a
change of a bus's baud rate to 9600 while more than 10 devices are on it is
refused the same way (``Settings.add_check``).

A detection adds and updates, it does not delete (``merge_detected``): what
the user named and placed stays until a *synchronise* asks for removals.

**Device links (issue 18, the foundation non-bus sources build on).** A
device's ``link`` says how the gateway reaches it; ``None`` is a catalogue
meter on a master bus (found by a detection or added by hand). Otherwise a
dict whose ``kind`` is one of ``LINK_KINDS``:

* ``rtu``: a generic Modbus device on a master bus (``bus`` and ``address``
  are its wire place), polled by that bus's engine like any meter;
* ``tcp``: a generic Modbus TCP device (``host``, ``port``, ``unit``);
  ``bus`` is ``"tcp"`` and ``address`` (1..247, unique across the topology)
  is only the place the protocols' tables give it (Modbus unit ID, SNMP
  index, BACnet device main ID + address), never sent to the device.

A source that is not a Modbus bus (BLE sensors, branch h-ble) adds its kind
to ``LINK_KINDS`` with its own ``bus`` name and puts its values into the
cache through ``daemon/runtime/feed.py`` (``SourceFeed``: declared keys,
values with their time, communication lost and system alarm 3 like a meter),
so the protocols and pages see it like a meter. ``model`` is the device's
data model (``{"name", "rows"}``, core/datamodel.py) for a generic device, a
copy kept in the topology so a device is whole on its own; the models store
(daemon/state/datamodels.py) updates the copies when a model is saved. The
SPEC §1 limits count every device, whatever its link.
"""

import asyncio
import logging

from core import catalogue, datamodel
from daemon.atomicfile import AtomicJSONStorage
from daemon.blocking import run_blocking
from daemon.state.settings import SettingError

log = logging.getLogger("gateway.topology")

MAX_DEVICES = 32            # SPEC §1 and §10
MAX_CIRCUITS = 192
SLOW_BAUD = 9600            # SPEC §1: "At 9600 baud at most 10 devices on that bus."
MAX_DEVICES_SLOW = 10


class TopologyRefused(ValueError):
    """A topology the gateway cannot serve (SPEC §1 limits); the message says which limit."""


def limit_problem(devices, baud_of=None):
    """Why ``devices`` break a SPEC §1 limit (text), or None. ``baud_of(bus)``: the bus's baud rate."""
    if len(devices) > MAX_DEVICES:
        return "%d devices: the gateway serves at most %d devices" % (len(devices), MAX_DEVICES)
    circuits = sum(len(d.loads) for d in devices)
    if circuits > MAX_CIRCUITS:
        return "%d circuits: the gateway serves at most %d circuits (loads)" % (circuits, MAX_CIRCUITS)
    if baud_of is not None:
        for bus in sorted(set(d.bus for d in devices)):
            count = sum(1 for d in devices if d.bus == bus)
            baud = baud_of(bus)
            if baud is not None and baud <= SLOW_BAUD and count > MAX_DEVICES_SLOW:
                return "%d devices on the %s bus at %d baud: at most %d devices on a bus at %d baud" % (
                    count, bus, baud, MAX_DEVICES_SLOW, SLOW_BAUD)
    return None


def _document_shape(doc):
    devices = doc.get("devices", {})
    if not isinstance(devices, dict) or not all(isinstance(d, dict) for d in devices.values()):
        raise ValueError("the devices table is not a table of documents")


LINK_KINDS = ("rtu", "tcp", "ble")    # a device's ``link["kind"]`` (None: a catalogue meter); ble: issue 18
TCP_BUS = "tcp"                # the ``bus`` of Modbus TCP devices


class Device:
    __slots__ = ("bus", "address", "reference", "name", "netid", "area", "loads", "serial", "not_found",
                 "link", "model")

    def __init__(self, bus, address, reference, netid, name=None, area="", loads=None, serial="", not_found=False,
                 link=None, model=None):
        self.link = dict(link) if link else None         # how the gateway reaches it (module docstring)
        self.model = model                                # a generic device's data model {name, rows}
        self.bus = bus
        self.address = int(address)
        self.reference = reference
        if netid is None or netid == "":
            self.netid = ""                      # no NET ID in its identification (DIRIS A, COUNTIS)
        else:
            self.netid = netid.upper() if isinstance(netid, str) else "%06X" % netid
        self.serial = serial or ""
        if name:
            self.name = name
        else:
            self.name = "%s@%d - %s" % (reference, self.address, self.netid) if self.netid else \
                "%s@%d" % (reference, self.address)
        self.area = area
        if loads is None:
            row = catalogue.product(reference)
            networks = row[catalogue.NETWORKS]
            network = networks[0] if len(networks) == 1 else "3P+N"     # a COUNTIS E14 is 1P+N only
            loads = [{"load": n, "network": network, "name": "Load %d" % n}
                     for n in range(1, row[catalogue.LOADS] + 1)]
        self.loads = loads
        self.not_found = bool(not_found)         # kept, but the last detection did not find it

    @property
    def generic(self):
        """Whether its register map is a user data model (not a catalogue row)."""
        return self.model is not None

    def kept(self, **changes):
        """A copy with ``changes`` (the constructor's arguments), link and model kept: how edits rebuild it."""
        fields = {"bus": self.bus, "address": self.address, "reference": self.reference, "netid": self.netid,
                  "name": self.name, "area": self.area, "loads": [dict(x) for x in self.loads],
                  "serial": self.serial, "not_found": self.not_found, "link": self.link, "model": self.model}
        fields.update(changes)
        return Device(**fields)

    def measurement_keys(self, load):
        """The registry keys the device offers on ``load``: the catalogue's map, or its model's standard names."""
        if self.model is not None:
            if load != datamodel.LOAD:
                return set()
            return set(k for k in (datamodel.row_key(r) for r in self.model["rows"]) if datamodel.is_standard(k))
        return set(catalogue.measurement_map(self.reference, load, self.network(load)))

    @property
    def uid(self):
        """The device's stable key: its NET ID, else reference + serial number (never "")."""
        if self.netid:
            return self.netid
        ref = self.reference.replace(" ", "").replace("/", "-")
        if self.serial:
            return "%s-%s" % (ref, self.serial)
        return "%s@%s:%d" % (ref, self.bus, self.address)

    @property
    def product(self):
        return catalogue.product(self.reference)

    def load_numbers(self):
        """Load 0 (device-level values) when the product has any, then its circuits."""
        numbers = [load["load"] for load in self.loads]
        if catalogue.measurement_map(self.reference, 0):
            numbers.insert(0, 0)
        return numbers

    def network(self, load):
        for entry in self.loads:
            if entry["load"] == load:
                return entry.get("network", "3P+N")
        return "3P+N"

    def as_dict(self):
        out = {"bus": self.bus, "address": self.address, "reference": self.reference, "name": self.name,
               "netid": self.netid, "serial": self.serial, "area": self.area,
               "loads": [dict(x) for x in self.loads], "not_found": self.not_found}
        if self.link is not None:
            out["link"] = dict(self.link)
        if self.model is not None:
            out["model"] = {"name": self.model["name"], "rows": [dict(r) for r in self.model["rows"]]}
        return out

    @classmethod
    def from_dict(cls, data):
        catalogue.product(data["reference"])   # KeyError for an unknown reference
        link, model = data.get("link"), data.get("model")
        if link is not None and (not isinstance(link, dict) or link.get("kind") not in LINK_KINDS):
            raise ValueError("unknown link %r" % (link,))
        if model is not None:
            model, problems = datamodel.check_model(model)
            if problems:
                raise ValueError("its data model is not valid: %r" % problems[:3])
        return cls(data["bus"], data["address"], data["reference"], data.get("netid", ""), data.get("name"),
                   data.get("area", ""), data.get("loads"), data.get("serial", ""), data.get("not_found", False),
                   link, model)

    def __repr__(self):
        return "<Device %s %s@%d %s>" % (self.bus, self.reference, self.address, self.netid)


def _auto_named(device):
    """Whether the device still has the name the gateway made (it then follows the address)."""
    return device.name.startswith(device.reference + "@")


auto_named = _auto_named             # the Devices pages' edits follow the same rule (daemon/state/devicefields.py)
PERSON_LOAD_FIELDS = ("name", "fluid", "usage")     # what a person sets on a load; a detection keeps them


def merge_detected(known, found, scanned_buses, remove_missing=False, addresses=None):
    """The topology after a detection: (devices by address, changes).

    ``found`` are the devices the detection identified on ``scanned_buses``
    (at ``addresses``, a range; None: every address).
    A found device already known (same ``uid`` and reference) is updated
    (bus, address, NET ID, serial, loads), keeping the user's name, area and
    load names, fluids and usages (so is one added by hand without its NET ID or
    serial number, keyed by its place, when the same product answers there);
    a new one is added. A known device of a scanned bus that was not found is
    kept, flagged ``not_found``, unless ``remove_missing`` (a synchronise) or
    unless a found device now answers at its address (that address is the
    found one's). Devices the detection did not look for (another bus, an
    address outside the range, a generic device) are left as they are.
    ``changes``: uids ``added``, ``updated``, ``not_found``, ``removed``.
    """
    linked = [d for d in known if d.link is not None]       # generic devices: a detection does not look for them
    known = [d for d in known if d.link is None]
    linked_addresses = set(d.address for d in linked)
    found = [d for d in found if d.address not in linked_addresses]
    by_uid = dict((d.uid, d) for d in known)
    merged, matched = list(linked), set()
    changes = {"added": [], "updated": [], "not_found": [], "removed": []}
    # a device added by hand without its NET ID or serial number is keyed by its place: the one found there,
    # of the same product, is that device (its name, area and circuits are kept)
    by_place = dict(((d.bus, d.address, d.reference), d) for d in known if not d.netid and not d.serial)
    for new in found:
        old = by_uid.get(new.uid)
        if old is not None and (old.reference != new.reference or new.uid in matched):
            old = None
        if old is None:
            placed = by_place.get((new.bus, new.address, new.reference))
            old = placed if placed is not None and placed.uid not in matched else None
        if old is None:
            merged.append(new)
            changes["added"].append(new.uid)
            continue
        matched.update((old.uid, new.uid))
        kept = dict((x["load"], x) for x in old.loads)
        loads = [dict(x, **dict((k, kept[x["load"]][k]) for k in PERSON_LOAD_FIELDS
                                if kept.get(x["load"], {}).get(k))) for x in new.loads]
        device = Device(new.bus, new.address, new.reference, new.netid, None if _auto_named(old) else old.name,
                        old.area, loads, new.serial or old.serial)
        if device.as_dict() != old.as_dict():
            changes["updated"].append(new.uid)
        merged.append(device)
    taken = set(d.address for d in merged)
    for old in known:
        if old.uid in matched:
            continue
        if old.bus not in scanned_buses or (addresses is not None and old.address not in addresses):
            merged.append(old)
        elif remove_missing or old.address in taken:
            changes["removed"].append(old.uid)
            continue
        else:
            merged.append(Device(old.bus, old.address, old.reference, old.netid, old.name, old.area,
                                 [dict(x) for x in old.loads], old.serial, not_found=True))
            changes["not_found"].append(old.uid)
        taken.add(old.address)
    merged.sort(key=lambda d: d.address)
    return merged, changes


def devices_from_simulation(topology):
    """The Devices a detection would find on a simulated-topology document.

    Benchmarks and tests preset the topology with it when detection is not
    what they look at. A meter's ``netid`` there is the simulator's handle:
    its NET ID where its product has one, else the seed of the serial number
    the simulated meter reports ([ours] convention 6.3 of socomec-registers.md:
    serial words (handle >> 8, (handle & 0xFF) << 8, 1)).
    """
    devices = []
    for bus, spec in topology.get("buses", {}).items():
        for meter in spec.get("meters", []):
            loads = None
            if meter.get("loads"):
                loads = [{"load": n, "network": meter.get("network", "3P+N"), "name": "Load %d" % n}
                         for n in range(1, meter["loads"] + 1)]
            handle = int(str(meter["netid"]), 16)
            netid = "%06X" % handle if catalogue.has_netid(meter["reference"]) else ""
            serial = catalogue.serial_text((handle >> 8) & 0xFFFF, (handle & 0xFF) << 8, 1)
            devices.append(Device(bus, meter["address"], meter["reference"], netid, loads=loads, serial=serial))
    return devices


class Topology:
    MAX_DEVICES = MAX_DEVICES
    MAX_CIRCUITS = MAX_CIRCUITS

    def __init__(self, path=None, settings=None):
        """``settings``: the bus baud rates (``bus.<bus>.baud``) for the 9600-baud rule; without them
        only the totals are checked."""
        self.path = path
        self.settings = settings
        self.devices = []
        self.version = 0
        self._listeners = []
        self.load_problem = None       # what was wrong with the file when it was read (None: nothing)
        self.edit_lock = asyncio.Lock()  # a read-change-replace from the Devices pages, one at a time
        if path:
            self._load()
        if settings is not None:
            settings.add_check(self._check_settings)

    def _problem(self, text):
        log.warning("%s", text)
        self.load_problem = text if self.load_problem is None else self.load_problem + "; " + text

    def _load(self):
        storage = AtomicJSONStorage(self.path, check=_document_shape)
        data = storage.read() or {}
        if storage.problem:
            self.load_problem = storage.problem       # logged by the storage
        docs = data.get("devices", {})
        devices = []
        for key in sorted(docs, key=lambda k: (len(k), k)):          # tinydb ids: "1", "2", ... "10"
            try:
                devices.append(Device.from_dict(docs[key]))
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                self._problem("%s: device %s skipped: %r" % (self.path, key, exc))
        # A stored topology beyond the limits (written before a limit or a baud change) is kept as it
        # is, not cut at random; it is said, and the next replace must fit.
        problem = limit_problem(devices, self._baud_of if self.settings is not None else None)
        if problem:
            self._problem("%s: %s" % (self.path, problem))
        self.devices = devices

    def _baud_of(self, bus):
        try:
            return self.settings.get("bus.%s.baud" % bus)
        except (KeyError, ValueError):          # a bus without settings: no baud rule
            return None

    def _check_settings(self, proposed):
        """Settings.add_check: refuse a baud rate the devices on that bus cannot have."""
        problem = limit_problem(self.devices, lambda bus: proposed.get("bus.%s.baud" % bus))
        if problem and not limit_problem(self.devices, self._baud_of):
            raise SettingError("refused: the topology would have %s" % problem)

    def on_change(self, listener):
        self._listeners.append(listener)

    def device(self, address):
        for d in self.devices:
            if d.address == address:
                return d
        return None

    def on_bus(self, bus):
        return [d for d in self.devices if d.bus == bus]

    def check(self, devices):
        """Refuse a topology the gateway cannot serve: TopologyRefused, a message naming the limit.

        SPEC §1: at most 32 devices and 192 circuits in all, at most 10 devices on a bus at 9600 baud
        (when the settings are known); an address is used once across both buses.
        """
        problem = limit_problem(devices, self._baud_of if self.settings is not None else None)
        if problem:
            raise TopologyRefused("topology refused: %s" % problem)
        seen = set()
        for d in devices:
            if d.address in seen:
                raise TopologyRefused("topology refused: address %d used twice" % d.address)
            seen.add(d.address)

    async def replace(self, devices):
        """Check, write, then switch: a refused topology (TopologyRefused) changes nothing.

        The same devices again (a detection of an unchanged site) change nothing either: no write, no new
        version, no listener called, so nothing downstream is rebuilt. True when the topology changed."""
        devices = list(devices)
        self.check(devices)
        docs = [d.as_dict() for d in devices]
        if docs == self.as_list():
            return False
        if self.path:
            await run_blocking(self._write, docs)
        self.devices = list(devices)
        self.version += 1
        for listener in list(self._listeners):
            listener(self)
        return True

    def _write(self, docs):
        AtomicJSONStorage(self.path).write({"devices": dict((str(i), d) for i, d in enumerate(docs, 1))})

    def as_list(self):
        return [d.as_dict() for d in self.devices]
