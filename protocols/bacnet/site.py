"""The live data behind the BACnet objects: one view per virtual device.

Objects ask their view for readings, names and clocks; the views read the
gateway through the door (``daemon/api.py``): settings, devices, readings,
the one device summary, identity, the one clock. Min/Max_Pres_Value and the
averages' min/max of annex II come from the gateway's shared extremes
(``daemon/state/extremes.py``: values seen since the daemon started, the same ones
SNMP table 23 serves). The ``Site`` keeps the one piece of state BACnet
needs that nothing else does: the Binary Output priority arrays, in memory,
empty when the service opens.
"""

import asyncio
import logging
from collections import Counter

from bacpypes3.basetypes import ObjectTypesSupported

from core import catalogue
from daemon import api
from protocols.bacnet import objects, points as pts
from protocols.bacnet.apps import unix_time

log = logging.getLogger("gateway.bacnet")

OBJECT_TYPES = ("device", "analogInput", "binaryInput", "binaryOutput")


def _object_types_supported():
    bits = ObjectTypesSupported([])
    for name in OBJECT_TYPES:
        bits[getattr(bits, name)] = 1
    return bits


class Site:
    def __init__(self, door):
        self.door = door
        self.settings = door.settings_view()
        self.priorities = {}     # (address, key) -> 16 slots, None = relinquished
        self.object_types = _object_types_supported()
        self.command_lock = asyncio.Lock()
        # Event counts of the whole BACnet service (transport, stack, apps, time
        # sync), shown in the status: a Counter so every site just adds 1.
        self.counters = Counter()

    def forget(self, address):
        """Another meter at ``address``: its commands go (the shared extremes follow the topology)."""
        for k in [k for k in self.priorities if k[0] == address]:
            del self.priorities[k]

    # time ------------------------------------------------------------------
    def offset_min(self):
        """Local time minus UTC, in minutes (standard offset + DST hour)."""
        return self.settings.get("time.utc_offset_min") + (60 if self.settings.get("time.dst") else 0)

    def datetime(self, ts):
        return objects.local_datetime(ts, self.offset_min())

    def time_sync(self, date_time, local):
        """(UTC)TimeSynchronization: set the gateway clock through the door (``bacnet.time_sync``).

        Both services are unconfirmed, so a refusal cannot be answered: it is
        counted and logged, and the clock is left alone.
        """
        ts = unix_time(date_time, self.offset_min() if local else 0)
        if ts is None:
            self.counters["time_sync_invalid"] += 1
            return
        try:
            self.door.set_time(ts)
        except api.Refused as exc:
            self.counters["time_sync_refused" if exc.reason in (api.POLICY, api.RIGHTS) else "time_sync_failed"] += 1
            log.info("BACnet time synchronization not applied: %s", exc)
            return
        self.counters["time_sync_applied"] += 1
        log.info("clock set by BACnet %stime synchronization", "" if local else "UTC ")


class _View:
    """What a Device object and its objects need to know about their device."""

    def __init__(self, site, instance):
        self.site = site
        self.instance = instance
        self.object_ids = []

    def now(self):
        return self.site.door.time()

    def datetime(self, ts):
        return self.site.datetime(ts)

    def utc_offset(self):
        # BACnet counts minutes *west* of UTC positive (Clause 12.11.21): the opposite sign.
        return -self.site.settings.get("time.utc_offset_min")

    def dst(self):
        return bool(self.site.settings.get("time.dst"))

    def object_types_supported(self):
        return self.site.object_types

    def object_list(self):
        return self.object_ids

    def database_revision(self):
        return self.site.door.topology_version()

    def firmware(self):
        return self.site.door.identity()["firmware"]


class GatewayView(_View):
    def name(self):
        return self.site.settings.get("gateway.name")

    def description(self):
        return self.site.settings.get("gateway.description")

    def location(self):
        return self.site.settings.get("gateway.location")

    def model_name(self):
        return "M-70"

    def serial(self):
        return self.site.door.identity()["serial"]

    def system_status(self):
        return "operational"

    def device_fault(self):
        return False

    def device_reliability(self):
        return "no-fault-detected"


class MeterView(_View):
    def __init__(self, site, instance, device):
        _View.__init__(self, site, instance)
        self.device = device
        self.address = device.address
        self.object_name = device.name

    def name(self):
        return self.object_name

    def description(self):
        return "%s at Modbus address %d on the %s bus" % (
            catalogue.product(self.device.reference)[catalogue.EXT_NAME], self.address, self.device.bus)

    def location(self):
        return self.device.area or self.site.settings.get("gateway.location")

    def model_name(self):
        return self.device.reference

    def serial(self):
        return self.device.netid or self.device.serial      # a DIRIS A / COUNTIS has no NET ID

    def _device_map(self):
        """(System_Status, fault, Reliability) of the one device summary (points.DEVICE_MAP)."""
        return pts.DEVICE_MAP[self.site.door.device_summary(self.address).state]

    def system_status(self):
        return self._device_map()[0]

    def device_fault(self):
        return self._device_map()[1]

    def device_reliability(self):
        return self._device_map()[2]

    def link(self):
        """The device's link state (ok, comm_lost, conflict, unknown): its objects' Reliability follows it."""
        return self.site.door.device_link(self.address)

    def reading(self, load, key):
        return self.site.door.reading(self.address, load, key)

    def extremes(self, load, key):
        """(min, min_ts, max, max_ts) seen since the daemon started, or None."""
        return self.site.door.extremes(self.address, load, key)

    def priority_slots(self, key):
        return self.site.priorities.get((self.address, key)) or [None] * 16
