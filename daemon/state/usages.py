"""The usages a circuit (a device's load) may be given, and the fluids (WEBVIEW-M manual §9.6.4, §9.6.5).

A usage groups the consumption of loads that serve the same purpose
(heating, lighting...). The gateway comes with the predefined usages below
(the manual's table lists them by external key, alphabetically: Air
conditioning ... Hot water, and its circuits table shows "Indoor Lighting";
the rest of the list is [ours], chosen for a building's usual loads), and a
person adds custom ones, renames and deletes them. A custom usage is keyed
``custom-<n>`` (never reused), so a load keeps its usage through a rename. A
usage a load uses cannot be deleted (``UsageInUse``). Custom usages are
kept in ``usages.json`` in the state directory, written atomically with a
good copy (daemon/atomicfile.py) off the loop; a damaged file is moved aside
and the copy used, as every configuration document.

The fluid of a load is one of ``FLUIDS`` (the manual shows "Electricity" and
"Undefined" and names water and gas; the others are the usual utilities).
A load without a fluid or usage (a topology written before them) reads as
``DEFAULT_FLUID`` and ``DEFAULT_USAGE``.
"""

import asyncio
import os

from daemon.atomicfile import AtomicJSONStorage
from daemon.blocking import run_blocking

FILE_NAME = "usages.json"
MAX_NAME = 32                # as a device's name and the gateway's (settings: gateway.name)
MAX_CUSTOM = 64              # custom usages kept; more is refused (the file stays small)
DEFAULT_USAGE = "Undefined"
DEFAULT_FLUID = "electricity"
FLUIDS = ("electricity", "water", "gas", "heat", "cold", "compressed_air", "other", "undefined")
CUSTOM_PREFIX = "custom-"

# (external key, catalogue key of its name); the manual's first, then [ours]
PREDEFINED = (
    ("Undefined", "web.usage.undefined"),
    ("AirConditionning", "web.usage.air_conditioning"),        # the manual's spelling of the key
    ("Auxiliary", "web.usage.auxiliary"),
    ("ColdWater", "web.usage.cold_water"),
    ("DomesticHotWater", "web.usage.domestic_hot_water"),
    ("Heating", "web.usage.heating"),
    ("HotWater", "web.usage.hot_water"),
    ("IndoorLighting", "web.usage.indoor_lighting"),
    ("OutdoorLighting", "web.usage.outdoor_lighting"),
    ("Ventilation", "web.usage.ventilation"),
    ("HVAC", "web.usage.hvac"),
    ("Sockets", "web.usage.sockets"),
    ("IT", "web.usage.it"),
    ("Lifts", "web.usage.lifts"),
    ("Process", "web.usage.process"),
    ("Other", "web.usage.other"),
)
PREDEFINED_KEYS = tuple(key for key, _label in PREDEFINED)


class UsageRefused(ValueError):
    """A usage change refused: ``field``, catalogue ``key`` and ``params`` say why (nothing changed)."""

    def __init__(self, message, field, key, **params):
        ValueError.__init__(self, message)
        self.detail = {"field": field, "key": key, "params": params}


def name_problem(name, field="name"):
    """None for a usable name (a device's, a load's, a usage's), else a UsageRefused to raise."""
    if not isinstance(name, str):
        return UsageRefused("%s must be text" % field, field, "web.devices.error.text")
    stripped = name.strip()
    if not stripped:
        return UsageRefused("%s must not be empty" % field, field, "web.devices.error.empty")
    if len(name) > MAX_NAME:
        return UsageRefused("%s has more than %d characters" % (field, MAX_NAME), field,
                            "web.devices.error.too_long", max=MAX_NAME)
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return UsageRefused("%s has control characters" % field, field, "web.devices.error.control")
    return None


class Usages:
    """Predefined plus custom usages; the custom ones persisted in the state directory."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, FILE_NAME)
        self.load_problem = None
        self._lock = asyncio.Lock()          # one change at a time: read, check, write, switch
        storage = AtomicJSONStorage(self.path, check=_shape)
        data = storage.read() or {}
        self.load_problem = storage.problem
        self.custom = [dict(key=u["key"], name=u["name"]) for u in data.get("custom", [])
                       if isinstance(u, dict) and isinstance(u.get("key"), str) and isinstance(u.get("name"), str)]
        self.next_number = data.get("next", 1) if isinstance(data.get("next", 1), int) else 1

    def keys(self):
        return PREDEFINED_KEYS + tuple(u["key"] for u in self.custom)

    def known(self, key):
        return key in self.keys()

    def listing(self):
        """[{key, label (catalogue key) or name, custom}] in the order the page shows them."""
        return ([{"key": key, "label": label, "custom": False} for key, label in PREDEFINED]
                + [{"key": u["key"], "name": u["name"], "custom": True} for u in self.custom])

    def _custom(self, key):
        for entry in self.custom:
            if entry["key"] == key:
                return entry
        return None

    def _check_name(self, name, other_than=None):
        problem = name_problem(name)
        if problem is not None:
            raise problem
        for entry in self.custom:
            if entry["key"] != other_than and entry["name"].strip().lower() == name.strip().lower():
                raise UsageRefused("a custom usage is already named %r" % name, "name", "web.devices.error.usage_taken")

    async def _save(self, custom, next_number):
        doc = {"custom": custom, "next": next_number}
        await run_blocking(AtomicJSONStorage(self.path).write, doc)
        self.custom, self.next_number = custom, next_number

    async def add(self, name):
        """A new custom usage named ``name``; its key."""
        async with self._lock:
            self._check_name(name)
            if len(self.custom) >= MAX_CUSTOM:
                raise UsageRefused("at most %d custom usages" % MAX_CUSTOM, "name", "web.devices.error.max_usages",
                                   max=MAX_CUSTOM)
            key = "%s%d" % (CUSTOM_PREFIX, self.next_number)
            await self._save(self.custom + [{"key": key, "name": name.strip()}], self.next_number + 1)
            return key

    async def rename(self, key, name):
        async with self._lock:
            if self._custom(key) is None:
                raise UsageRefused("no custom usage %r" % str(key)[:40], "key", "web.devices.error.no_usage")
            self._check_name(name, other_than=key)
            custom = [dict(u, name=name.strip()) if u["key"] == key else dict(u) for u in self.custom]
            await self._save(custom, self.next_number)

    async def delete(self, key, in_use):
        """Delete a custom usage; ``in_use``: how many loads use it now (refused when any)."""
        async with self._lock:
            if self._custom(key) is None:
                raise UsageRefused("no custom usage %r" % str(key)[:40], "key", "web.devices.error.no_usage")
            if in_use:
                raise UsageRefused("the usage is given to %d circuits: change them first" % in_use, "key",
                                   "web.devices.error.usage_in_use", count=in_use)
            await self._save([dict(u) for u in self.custom if u["key"] != key], self.next_number)


def _shape(doc):
    if not isinstance(doc.get("custom", []), list):
        raise ValueError("custom usages are not a list")


def fluid_of(load):
    return load.get("fluid") or DEFAULT_FLUID


def usage_of(load):
    return load.get("usage") or DEFAULT_USAGE
