"""The Bluetooth sensors added as sources (SPEC §1 "BLE sources", issue 18), kept in the state directory.

A source is a heard sensor a person added: its BLE address, the format it was heard in, a name and an area
(as a device of the topology). Kept in ``ble-sources.json`` (atomic, with a good copy, written off the loop
like every configuration document); a damaged file is set aside and the copy used. A change is checked
before anything is written (``BleRefused``: field, catalogue key, params), so a refusal changes nothing.
"""

import asyncio
import os

from daemon.atomicfile import AtomicJSONStorage
from daemon.blocking import run_blocking
from daemon.state.usages import name_problem

FILE_NAME = "ble-sources.json"
MAX_SOURCES = 16             # sensors kept as sources (each is a row in every protocol's tables)
MAX_AREA = 32
FORMATS = ("bthome", "pvvx", "atc1441", "ruuvi")


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


def _shape(doc):
    if not isinstance(doc.get("sources", []), list):
        raise ValueError("sources are not a list")


class BleSources:
    """The sources, persisted; ``sources`` maps address -> {address, name, area, format}."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, FILE_NAME)
        self._lock = asyncio.Lock()
        storage = AtomicJSONStorage(self.path, check=_shape)
        data = storage.read() or {}
        self.load_problem = storage.problem
        self.sources = {}
        for entry in data.get("sources", []):
            address = normal_address(entry.get("address")) if isinstance(entry, dict) else None
            if address and entry.get("format") in FORMATS and isinstance(entry.get("name"), str):
                self.sources[address] = {"address": address, "name": entry["name"],
                                         "area": str(entry.get("area", "")), "format": entry["format"]}

    def listing(self):
        return [dict(s) for _a, s in sorted(self.sources.items())]

    def get(self, address):
        return self.sources.get(address)

    async def _save(self, sources):
        doc = {"sources": [sources[a] for a in sorted(sources)]}
        await run_blocking(AtomicJSONStorage(self.path).write, doc)
        self.sources = sources

    async def add(self, address, name, area, heard_format):
        """Add the heard sensor at ``address`` (heard in ``heard_format``; None: not heard, or not readable)."""
        async with self._lock:
            normal = normal_address(address)
            if normal is None:
                raise BleRefused("not a Bluetooth address", "address", "ble.error.address")
            if heard_format is None:
                raise BleRefused("this sensor was not heard in a format the gateway reads", "address",
                                 "ble.error.not_heard")
            if normal in self.sources:
                raise BleRefused("this sensor is already a source", "address", "ble.error.already")
            if len(self.sources) >= MAX_SOURCES:
                raise BleRefused("at most %d Bluetooth sources" % MAX_SOURCES, "address", "ble.error.max",
                                 max=MAX_SOURCES)
            problem = name_problem(name)
            if problem is not None:
                raise BleRefused(str(problem), "name", problem.detail["key"], **problem.detail["params"])
            if not isinstance(area, str) or len(area) > MAX_AREA or any(ord(c) < 32 for c in area):
                raise BleRefused("the area must be text of at most %d characters" % MAX_AREA, "area",
                                 "ble.error.area", max=MAX_AREA)
            for other in self.sources.values():
                if other["name"].strip().lower() == name.strip().lower():
                    raise BleRefused("a Bluetooth source is already named %r" % name, "name", "ble.error.name_taken")
            entry = {"address": normal, "name": name.strip(), "area": area.strip(), "format": heard_format}
            await self._save(dict(self.sources, **{normal: entry}))
            return dict(entry)

    async def remove(self, address):
        async with self._lock:
            normal = normal_address(address)
            if normal is None or normal not in self.sources:
                raise BleRefused("no Bluetooth source at this address", "address", "ble.error.no_source")
            sources = dict(self.sources)
            del sources[normal]
            await self._save(sources)
