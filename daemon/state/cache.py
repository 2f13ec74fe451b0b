"""The cache of latest values: one entry per (device address, load, measurement).

Every value lands here once, with its timestamp, and is read from here by
every protocol, page and logger. Quality is derived when read, from the
value's age and the device's communication state, so it is never stale
itself: good, stale, comm_lost, not_supported.

**The one freshness rule.** A value is fresh while its age is at most
``stale_limit(address)``: 1.5 times the time its bus takes to refresh it (the
poll cycle the poller reports, the larger of the last and the mean), and
never less than ``poll.stale_after_s`` (a floor, so a fast bus does not
flicker). Quality (every protocol and page) and the native register reads
that Modbus answers from the last poll (``fresh_raw``) use it alike.

**Tiers** (issue 19, core/poll_tiers.py): a device's values may be read at
different rates, instantaneous values every cycle, energies every minute...
The poller states each tier's refresh period (``set_refresh_period(..., tier)``)
and which tier each key and each raw block is read with; the rule above then
holds per tier: a value is fresh while its age is at most 1.5 times its own
tier's refresh period. Keys without a stated tier use the device's (the
fast tier's) period.
"""

from itertools import repeat

from core.poll_tiers import FAST

_NONE = {}      # an empty mapping, never written

GOOD = "good"
STALE = "stale"
COMM_LOST = "comm_lost"
NOT_SUPPORTED = "not_supported"

# Severity order for a row's quality: the worst value decides it.
QUALITY_RANK = {GOOD: 0, STALE: 1, COMM_LOST: 2, NOT_SUPPORTED: 3}


class Reading:
    __slots__ = ("value", "timestamp", "quality")

    def __init__(self, value, timestamp, quality):
        self.value = value
        self.timestamp = timestamp
        self.quality = quality

    def as_dict(self):
        return {"value": self.value, "ts": self.timestamp, "quality": self.quality}


class Cache:
    FRESH_CYCLES = 1.5           # a value is stale once it missed its refresh by half a cycle

    def __init__(self, clock, stale_after=2.0):
        self.clock = clock
        self.stale_after = stale_after   # floor of the freshness limit, s (poll.stale_after_s)
        self._refresh = {}       # address -> seconds its bus takes to refresh it (poll cycle)
        self._tier_refresh = {}  # (address, tier) -> seconds between two reads of that tier (issue 19)
        self._tiers = {}         # address -> {key: tier} of the keys not read with the fast tier
        self._values = {}        # (address, load) -> {key: (value, timestamp)}: a poll batch is one row's update
        self._supported = {}     # address -> {load: set(keys)}
        self._comm_lost = set()  # addresses whose device stopped answering
        self._subscribers = []
        self._raw = {}           # address -> {start: (words, timestamp)} as read by the poller
        self.updates = 0
        # a generic device's own values (not registry measurements: the web shows them, no protocol does),
        # daemon/runtime/feed.py: address -> {load: set(keys)}, (address, load, key) -> (value, timestamp)
        self._extra_keys = {}
        self._extras = {}

    # writers (the poller) ------------------------------------------------
    def declare_device(self, address, supported):
        """``supported``: {load: iterable of keys} the device offers."""
        self._supported[address] = dict((load, frozenset(keys)) for load, keys in supported.items())

    def update_raw(self, address, start, words, timestamp, tier=FAST):
        """Keep the raw words of one poll read (Modbus TCP answers from them), read with ``tier``."""
        self._raw.setdefault(address, {})[start] = (tuple(words), timestamp, tier)

    def declare_tiers(self, address, tiers):
        """``tiers``: {key: tier} of the device's keys read with a slower tier than the fast one."""
        self._tiers[address] = dict((key, tier) for key, tier in tiers.items() if tier != FAST)

    def set_refresh_period(self, addresses, seconds, tier=FAST):
        """The poller's measured period of ``tier`` for these devices: the base of the freshness rule."""
        for address in addresses:
            if tier == FAST:
                self._refresh[address] = seconds
            else:
                self._tier_refresh[(address, tier)] = seconds

    def stale_limit(self, address, key=None, tier=None):
        """Age (s) above which a value of this device (of ``key``, or read with ``tier``) is stale:
        the one freshness rule."""
        if tier is None:
            tier = self._tiers.get(address, _NONE).get(key, FAST)
        period = self._refresh.get(address, 0.0)
        if tier != FAST:
            period = self._tier_refresh.get((address, tier), period)
        limit = self.FRESH_CYCLES * period
        return limit if limit > self.stale_after else self.stale_after

    def fresh_raw(self, address, start, count):
        """Polled words covering [start, start+count) when fresh by the one rule and the device answers."""
        if address in self._comm_lost:
            return None
        found = self._raw_block(address, start, count)
        if found is None or self.clock.time() - found[1] > self.stale_limit(address, tier=found[2]):
            return None
        return list(found[0])

    def raw(self, address, start, count):
        """(words, timestamp) of a polled block covering [start, start+count), or None."""
        found = self._raw_block(address, start, count)
        return None if found is None else found[:2]

    def _raw_block(self, address, start, count):
        for block_start, (words, ts, tier) in self._raw.get(address, {}).items():
            offset = start - block_start
            if 0 <= offset and offset + count <= len(words):
                return words[offset:offset + count], ts, tier
        return None

    def declare_extras(self, address, keys):
        """``keys``: {load: iterable of ``user:`` keys} a generic device offers besides registry ones."""
        self._extra_keys[address] = dict((load, frozenset(k)) for load, k in keys.items())

    def update_extras(self, address, load, values, timestamp):
        """Store a generic device's own values (no subscriber: they are not registry measurements)."""
        for key, value in values.items():
            self._extras[(address, load, key)] = (value, timestamp)

    def extras_keys(self, address):
        return dict(self._extra_keys.get(address, {}))

    def get_extra(self, address, load, key):
        """The Reading of one of a device's own values, its quality by the same rule as ``get``."""
        if key not in self._extra_keys.get(address, {}).get(load, ()):
            return Reading(None, None, NOT_SUPPORTED)
        return self._reading(address, self._extras.get((address, load, key)))

    def forget_device(self, address):
        self._extra_keys.pop(address, None)
        for k in [k for k in self._extras if k[0] == address]:
            del self._extras[k]
        self._raw.pop(address, None)
        self._refresh.pop(address, None)
        self._tiers.pop(address, None)
        for k in [k for k in self._tier_refresh if k[0] == address]:
            del self._tier_refresh[k]
        self._supported.pop(address, None)
        self._comm_lost.discard(address)
        for k in [k for k in self._values if k[0] == address]:
            del self._values[k]

    def update(self, address, load, values, timestamp=None):
        """Store a batch of fresh values of one load and tell subscribers."""
        ts = self.clock.time() if timestamp is None else timestamp
        row = self._values.get((address, load))
        if row is None:
            row = self._values[(address, load)] = {}
        row.update(zip(values, zip(values.values(), repeat(ts)), strict=True))
        self.updates += 1
        for callback in self._subscribers:
            callback(address, load, values, ts)

    def set_comm_lost(self, address, lost):
        if lost:
            self._comm_lost.add(address)
        else:
            self._comm_lost.discard(address)

    # readers ---------------------------------------------------------------
    def subscribe(self, callback):
        """``callback(address, load, values, timestamp)`` on every update batch."""
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def supported(self, address, load, key):
        return key in self._supported.get(address, {}).get(load, ())

    def loads(self, address):
        return sorted(self._supported.get(address, {}))

    def keys(self, address, load):
        return sorted(self._supported.get(address, {}).get(load, ()))

    def addresses(self):
        return sorted(self._supported)

    def comm_lost(self, address):
        return address in self._comm_lost

    def get(self, address, load, key):
        """The latest Reading; value None when it never arrived or is unsupported."""
        if not self.supported(address, load, key):
            return Reading(None, None, NOT_SUPPORTED)
        return self._reading(address, self._values.get((address, load), _NONE).get(key), key)

    def _reading(self, address, entry, key=None):
        if entry is None:
            quality = COMM_LOST if address in self._comm_lost else STALE
            return Reading(None, None, quality)
        value, ts = entry
        if address in self._comm_lost:
            quality = COMM_LOST
        elif self.clock.time() - ts > self.stale_limit(address, key):
            quality = STALE
        else:
            quality = GOOD
        return Reading(value, ts, quality)

    def row(self, address, load):
        """{key: Reading} of one load's supported keys, each as ``get`` gives it, with the clock read once and
        each tier's limit computed once: what a whole row costs on every live update (Monitor, snapshot)."""
        keys = self._supported.get(address, _NONE).get(load, ())
        now, lost = self.clock.time(), address in self._comm_lost
        tiers, values, limits, out = self._tiers.get(address, _NONE), self._values.get((address, load), _NONE), {}, {}
        for key in sorted(keys):
            entry = values.get(key)
            if entry is None:
                out[key] = Reading(None, None, COMM_LOST if lost else STALE)
                continue
            tier = tiers.get(key, FAST)
            limit = limits.get(tier)
            if limit is None:
                limit = limits[tier] = self.stale_limit(address, tier=tier)
            value, ts = entry
            out[key] = Reading(value, ts, COMM_LOST if lost else STALE if now - ts > limit else GOOD)
        return out

    def snapshot(self, address):
        """{load: {key: Reading}} for one device (status API, pages)."""
        return dict((load, self.row(address, load)) for load in self.loads(address))

    def load_summary(self, address, load):
        """(quality, newest, oldest, count) of one load's row of values.

        The one rule every protocol shows for a row (SNMP gwLoadTable, the
        Modbus normalized table's quality/age words, the gateway table's
        meter status), so they cannot disagree: ``quality`` is the worst
        quality of the row's values as ``get`` derives it (``QUALITY_RANK``;
        ``not_supported`` for a row without values); ``newest`` and
        ``oldest`` are the timestamps of its newest and oldest value (None
        when none arrived), and a row's age is that of its *oldest* value, so
        one value left behind is not hidden by fresh ones; ``count`` is the
        number of measurements the device offers for the row.
        """
        keys = self._supported.get(address, {}).get(load, ())
        worst = NOT_SUPPORTED if not keys else GOOD
        rank = QUALITY_RANK[worst]
        newest = oldest = None
        for key in keys:
            reading = self.get(address, load, key)
            level = QUALITY_RANK[reading.quality]
            if level > rank:
                worst, rank = reading.quality, level
            ts = reading.timestamp
            if ts is not None:
                if newest is None or ts > newest:
                    newest = ts
                if oldest is None or ts < oldest:
                    oldest = ts
        return worst, newest, oldest, len(keys)
