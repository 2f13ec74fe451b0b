"""How values that do not come from a catalogue meter reach the cache (issue 18, the device-link foundation).

The cache keeps registry measurements, which every protocol and page serves;
a generic device's data model (core/datamodel.py) may also name values of its
own (``user:<name>``), which the web shows and no protocol does. ``declare``
and ``store`` split one device's keys between the two, so every source (the
bus pollers for generic RTU and TCP devices, a BLE sensor) puts its values in
the same way, with their time, and quality follows from the one freshness
rule and the communication state.

``SourceFeed`` is the whole path for a source that is not a polled Modbus
device (branch h-ble builds its sensors on it): it declares the device's
keys, stores its values, and on ``lost`` / ``answered`` marks it
communication-lost in the cache and raises / clears system alarm 3 like a
meter that stops answering, with the counters the Devices page shows.
"""

import collections

from core import datamodel
from daemon.state.alarms import device_source

ALARM_SLAVE_TIMEOUT = 3


def declare(cache, address, supported):
    """Declare ``{load: keys}``: registry keys as the device's measurements, ``user:`` keys as its extras."""
    standard = dict((load, set(k for k in keys if datamodel.is_standard(k))) for load, keys in supported.items())
    extras = dict((load, set(k for k in keys if not datamodel.is_standard(k))) for load, keys in supported.items())
    cache.declare_device(address, dict((load, keys) for load, keys in standard.items() if keys))
    cache.declare_extras(address, dict((load, keys) for load, keys in extras.items() if keys))


def store(cache, address, load, values, timestamp):
    """Store one load's fresh values: registry keys into the cache (subscribers told), the others as extras."""
    standard, extras = {}, {}
    for key, value in values.items():
        (standard if datamodel.is_standard(key) else extras)[key] = value
    if standard:
        cache.update(address, load, standard, timestamp)
    if extras:
        cache.update_extras(address, load, extras, timestamp)


class FeedCounters:
    """What the Devices page shows of a source: answers, failures, the time of the last good one."""
    __slots__ = ("requests", "answers", "timeouts", "last_success")

    def __init__(self):
        self.requests = self.answers = self.timeouts = 0
        self.last_success = None

    def as_dict(self):
        return {"requests": self.requests, "answers": self.answers, "timeouts": self.timeouts, "crc_errors": 0,
                "frame_errors": 0, "exceptions": 0, "mean_response_ms": 0.0, "max_response_ms": 0.0,
                "last_success": self.last_success}


class SourceFeed:
    """One non-bus device's values into the cache: ``declare(keys)``, ``values(...)``, ``lost(detail)``."""

    def __init__(self, cache, alarms, clock, device):
        self.cache = cache
        self.alarms = alarms
        self.clock = clock
        self.device = device
        self.counters = FeedCounters()
        self._lost = False

    @property
    def source(self):
        return device_source(self.device.bus, self.device.address)

    def declare(self, keys, load=datamodel.LOAD):
        """The keys (registry keys and ``user:<name>``) this device offers on ``load``."""
        declare(self.cache, self.device.address, {load: set(keys)})

    def values(self, values, timestamp=None, load=datamodel.LOAD):
        """Fresh values {key: value} read now (or at ``timestamp``); the device answers again."""
        now = self.clock.time() if timestamp is None else timestamp
        self.counters.requests += 1
        self.counters.answers += 1
        self.counters.last_success = now
        store(self.cache, self.device.address, load, values, now)
        if self._lost:
            self._lost = False
            self.cache.set_comm_lost(self.device.address, False)
            self.alarms.set(ALARM_SLAVE_TIMEOUT, self.source, False, "device answers again")

    def lost(self, detail):
        """The source stopped answering: communication lost (quality), system alarm 3 until it answers."""
        self.counters.requests += 1
        self.counters.timeouts += 1
        if not self._lost:
            self._lost = True
            self.cache.set_comm_lost(self.device.address, True)
            self.alarms.set(ALARM_SLAVE_TIMEOUT, self.source, True, detail)

    def forget(self):
        """The device left the topology: its values and its alarm go."""
        self.cache.forget_device(self.device.address)
        self.alarms.set(ALARM_SLAVE_TIMEOUT, self.source, False, "device removed")


def extras_view(cache, address):
    """{load: {key: Reading}} of a device's own (non-registry) values, quality by the one rule."""
    out = collections.OrderedDict()
    for load, keys in sorted(cache.extras_keys(address).items()):
        out[load] = dict((key, cache.get_extra(address, load, key)) for key in sorted(keys))
    return out
