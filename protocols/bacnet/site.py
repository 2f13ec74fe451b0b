"""The live data behind the BACnet objects: one view per virtual device.

Objects ask their view for readings, names and clocks; the views read the
gateway (settings, topology, cache, identity). Min/Max_Pres_Value and the
averages' min/max of annex II come from the gateway's shared extremes
(``daemon/extremes.py``: values seen since the daemon started, the same ones
SNMP table 23 serves). The ``Site`` keeps the one piece of state BACnet
needs that nothing else does: the Binary Output priority arrays, in memory,
empty when the service opens.
"""

import asyncio
import logging
from collections import Counter

from bacpypes3.basetypes import ObjectTypesSupported

from daemon import catalogue
from protocols.bacnet import objects
from protocols.bacnet.apps import unix_time

log = logging.getLogger("gateway.bacnet")

OBJECT_TYPES = ("device", "analogInput", "binaryInput", "binaryOutput")


def _object_types_supported():
    bits = ObjectTypesSupported([])
    for name in OBJECT_TYPES:
        bits[getattr(bits, name)] = 1
    return bits


class Site:
    def __init__(self, gateway):
        self.gateway = gateway
        self.settings = gateway.settings
        self.cache = gateway.cache
        self.clock = gateway.clock
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
        """(UTC)TimeSynchronization: set the gateway clock when ``bacnet.time_sync`` allows.

        Both services are unconfirmed, so a refusal cannot be answered: it is
        counted and logged, and the clock is left alone.
        """
        if not self.settings.get("bacnet.time_sync"):
            self.counters["time_sync_refused"] += 1
            log.info("BACnet time synchronization ignored: bacnet.time_sync is off")
            return
        ts = unix_time(date_time, self.offset_min() if local else 0)
        if ts is None:
            self.counters["time_sync_invalid"] += 1
            return
        try:
            self.gateway.board.set_system_time(ts)
        except (OSError, NotImplementedError) as exc:
            self.counters["time_sync_failed"] += 1
            log.warning("BACnet time synchronization could not set the clock: %s", exc)
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
        return self.site.clock.time()

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
        return self.site.gateway.topology.version

    def firmware(self):
        from daemon.gateway import VERSION
        return VERSION


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
        return self.site.gateway.identity["serial"]

    def system_status(self):
        return "operational"


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
        return self.device.netid

    def system_status(self):
        return "non-operational" if self.site.cache.comm_lost(self.address) else "operational"

    def reading(self, load, key):
        return self.site.cache.get(self.address, load, key)

    def extremes(self, load, key):
        """(min, min_ts, max, max_ts) seen since the daemon started, or None."""
        return self.site.gateway.extremes.get(self.address, load, key)

    def priority_slots(self, key):
        return self.site.priorities.get((self.address, key)) or [None] * 16
