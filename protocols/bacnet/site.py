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
import time
from collections import Counter

from bacpypes3.basetypes import ObjectTypesSupported

from core import catalogue
from daemon import api
from protocols.bacnet import objects, points as pts, timesync
from protocols.bacnet.pacing import TokenBucket

log = logging.getLogger("gateway.bacnet")

OBJECT_TYPES = ("device", "analogInput", "binaryInput", "binaryOutput")
# A supervisor synchronises the clock now and then (at start, hourly): more than this is
# no synchronisation, and each change is an event-log record (a ring shared with the alarms)
# and each refusal a log line of the door.
CLOCK_CHANGES_RATE, CLOCK_CHANGES_BURST = 1 / 60.0, 5.0
REFUSALS_LOGGED_RATE, REFUSALS_LOGGED_BURST = 1 / 10.0, 5.0     # log lines about refused synchronisations


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
        now = time.monotonic()              # not the gateway clock: that is what a synchronisation moves
        self.clock_changes = TokenBucket(CLOCK_CHANGES_RATE, CLOCK_CHANGES_BURST, now)
        self.refusals_logged = TokenBucket(REFUSALS_LOGGED_RATE, REFUSALS_LOGGED_BURST, now)

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

    def time_sync(self, date_time, local, source):
        """(UTC)TimeSynchronization from ``source``: set the gateway clock through the door.

        Both services are unconfirmed, so a refusal cannot be answered: it is
        counted and logged (a few lines, then only counted), and the clock is
        left alone. Refused: an instant timesync.py does not accept, more
        attempts than CLOCK_CHANGES_RATE allows (an attempt the switch then
        refuses counts too), the switch ``bacnet.time_sync`` off (the
        default). The door records each change in the event log: who
        (protocol and ``source``), the time before and after.
        """
        ts, problem = timesync.instant(date_time.date, date_time.time, self.offset_min() if local else 0)
        if ts is None:
            self._refused("time_sync_invalid", source, problem)
            return
        if not self.clock_changes.take(time.monotonic()):     # before the door, which logs each refusal
            self._refused("time_sync_limited", source, "more than %d in a row" % int(CLOCK_CHANGES_BURST))
            return
        door = self.door.as_caller(api.Caller(self.door.caller.protocol, peer=source))
        try:
            door.set_time(ts)
        except api.Refused as exc:
            policy = exc.reason in (api.POLICY, api.RIGHTS)
            self._refused("time_sync_refused" if policy else "time_sync_failed", source, str(exc))
            return
        self.counters["time_sync_applied"] += 1
        log.info("clock set by BACnet %stime synchronization from %s", "" if local else "UTC ", source)

    def _refused(self, counter, source, why):
        self.counters[counter] += 1
        if self.refusals_logged.take(time.monotonic()):
            log.info("BACnet time synchronization from %s not applied: %s", source, why)


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
