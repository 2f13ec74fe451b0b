"""The topology: the devices the gateway polls, persisted in tinydb.

Each device: bus, Modbus address, product reference, name, NET ID (6 hex
digits), area, and its loads (number, network type, name). The document is
replaced atomically on every save (daemon/atomicfile.py).
"""

from core import catalogue
from daemon.atomicfile import AtomicJSONStorage
from daemon.blocking import run_blocking


class Device:
    __slots__ = ("bus", "address", "reference", "name", "netid", "area", "loads")

    def __init__(self, bus, address, reference, netid, name=None, area="", loads=None):
        self.bus = bus
        self.address = int(address)
        self.reference = reference
        self.netid = netid.upper() if isinstance(netid, str) else "%06X" % netid
        self.name = name or "%s@%d - %s" % (reference, self.address, self.netid)
        self.area = area
        if loads is None:
            loads = [{"load": n, "network": "3P+N", "name": "Load %d" % n}
                     for n in range(1, catalogue.product(reference)[catalogue.LOADS] + 1)]
        self.loads = loads

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
        return {"bus": self.bus, "address": self.address, "reference": self.reference, "name": self.name,
                "netid": self.netid, "area": self.area, "loads": [dict(x) for x in self.loads]}

    @classmethod
    def from_dict(cls, data):
        catalogue.product(data["reference"])   # KeyError for an unknown reference
        return cls(data["bus"], data["address"], data["reference"], data["netid"], data.get("name"),
                   data.get("area", ""), data.get("loads"))

    def __repr__(self):
        return "<Device %s %s@%d %s>" % (self.bus, self.reference, self.address, self.netid)


def devices_from_simulation(topology):
    """The Devices a detection would find on a simulated-topology document.

    Benchmarks and tests preset the topology with it when detection is not
    what they look at.
    """
    devices = []
    for bus, spec in topology.get("buses", {}).items():
        for meter in spec.get("meters", []):
            loads = None
            if meter.get("loads"):
                loads = [{"load": n, "network": meter.get("network", "3P+N"), "name": "Load %d" % n}
                         for n in range(1, meter["loads"] + 1)]
            devices.append(Device(bus, meter["address"], meter["reference"], meter["netid"], loads=loads))
    return devices


class Topology:
    MAX_DEVICES = 32
    MAX_CIRCUITS = 192

    def __init__(self, path=None):
        self.path = path
        self.devices = []
        self.version = 0
        self._listeners = []
        if path:
            self._load()

    def _load(self):
        data = AtomicJSONStorage(self.path).read() or {}
        docs = data.get("devices", {})
        devices = []
        for key in sorted(docs, key=lambda k: int(k)):
            try:
                devices.append(Device.from_dict(docs[key]))
            except (KeyError, ValueError, TypeError):
                continue
        self.devices = devices

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
        """Refuse a topology the gateway cannot serve (SPEC §1 limits)."""
        if len(devices) > self.MAX_DEVICES:
            raise ValueError("at most %d devices" % self.MAX_DEVICES)
        if sum(len(d.loads) for d in devices) > self.MAX_CIRCUITS:
            raise ValueError("at most %d circuits" % self.MAX_CIRCUITS)
        seen = set()
        for d in devices:
            if d.address in seen:
                raise ValueError("address %d used twice" % d.address)
            seen.add(d.address)

    async def replace(self, devices):
        self.check(devices)
        if self.path:
            await run_blocking(self._write, [d.as_dict() for d in devices])
        self.devices = list(devices)
        self.version += 1
        for listener in list(self._listeners):
            listener(self)

    def _write(self, docs):
        AtomicJSONStorage(self.path).write({"devices": dict((str(i), d) for i, d in enumerate(docs, 1))})

    def as_list(self):
        return [d.as_dict() for d in self.devices]
