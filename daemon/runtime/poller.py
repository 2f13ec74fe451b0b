"""Cyclic polling of every device on one bus, with coalesced reads.

``plan_reads`` turns a device's catalogue entry into the fewest requests of
at most 125 registers that cover every measurement it offers: within each
readable block (a read never crosses one), a greedy cover from the lowest
needed register is optimal for interval covering with a fixed window.

A device that stops answering is marked communication-lost in the cache,
raises system alarm 3 and is retried with exponential back-off (so the
other devices keep their cycle); the first good answer clears both.

Tiers (issue 19, core/poll_tiers.py): a catalogue device's plan is split by
the registry's kinds, each tier coalesced on its own (``plan_tiers``). Every
cycle reads the fast tier (instantaneous values) of every device and the
slower tiers that are due (``TierSchedule``); a generic device's frames are one
tier, the fast one. The cache is told each tier's refresh period, so the one
freshness rule holds per tier.
"""

import asyncio
import collections
import logging
import time

from core import catalogue, datamodel, modbus_rtu as rtu, poll_tiers
from daemon.runtime.bus import POLL, BusBusy, BusTimeout
from daemon.runtime.readcodec import compile_read
from daemon.runtime.feed import declare, store
from daemon.state.alarms import device_source
from daemon.supervise import Supervised

log = logging.getLogger("gateway.poller")

ALARM_SLAVE_TIMEOUT = 3


class PlannedRead:
    """One request: registers (or bits) [start, start+count) and the values inside.

    A generic device's read (``generic``: one frame of its data model) may use function 1, 2, 3 or 4 and
    its items' kind is (encoding, word order) of core/datamodel.py. ``decoder``: a catalogue read's
    compiled decoder (daemon/runtime/readcodec.py), None when it is decoded value by value; ``request`` and
    ``cuts`` (its values' offsets, where the bus may split it) are made once, not at every cycle."""

    __slots__ = ("start", "count", "items", "function", "generic", "decoder", "request", "cuts")

    def __init__(self, start, count, items, function=rtu.READ_HOLDING, generic=False):
        self.start = start
        self.count = count
        self.items = items      # [(load, key, offset, kind, multiplier)]
        self.function = function
        self.generic = generic
        self.decoder = None if generic or function not in (rtu.READ_HOLDING, rtu.READ_INPUT) \
            else compile_read(items)
        self.request = rtu.read_request(function, start, count)
        self.cuts = tuple(item[2] for item in items)

    def __repr__(self):
        return "<Read %#06x+%d %d values>" % (self.start, self.count, len(self.items))


def plan_reads(reference, loads, limit=rtu.MAX_READ_REGISTERS, tier=None):
    """Coalesced reads for a device: ``loads`` = [(load number, network type)]; only the measurements
    of ``tier`` (core/poll_tiers.py) when one is given."""
    plan = []
    for load, network in loads:
        mapping = catalogue.measurement_map(reference, load, network)
        if tier is not None:
            mapping = dict((key, row) for key, row in mapping.items() if poll_tiers.tier_of(key) == tier)
        if not mapping:
            continue
        blocks = catalogue.readable_blocks(reference, load)
        by_block = collections.OrderedDict()
        for key in sorted(mapping, key=lambda k: mapping[k][0]):
            reg, kind, mult = mapping[key]
            words = catalogue.type_words(kind)
            block = next((b for b in blocks if b[0] <= reg and reg + words <= b[0] + b[1]), None)
            if block is None:
                raise ValueError("%s: %s at %#x is outside every readable block" % (reference, key, reg))
            by_block.setdefault(block, []).append((reg, words, key, kind, mult))
        for _block, entries in by_block.items():
            current = None
            for reg, words, key, kind, mult in entries:
                end = reg + words
                if current is not None and end - current[0] <= limit:
                    current[1] = max(current[1], end)
                    current[2].append((load, key, reg, kind, mult))
                else:
                    current = [reg, end, [(load, key, reg, kind, mult)]]
                    plan.append(current)
    reads = []
    for start, end, items in plan:
        reads.append(PlannedRead(start, end - start,
                                 [(load, key, reg - start, kind, mult) for load, key, reg, kind, mult in items]))
    return reads


def plan_model(model):
    """The reads of a generic device: one per frame of its data model (core/datamodel.py)."""
    return [PlannedRead(start, count, [(datamodel.LOAD, key, offset, (encoding, order), coefficient)
                                       for key, offset, encoding, order, coefficient in items], function, True)
            for function, start, count, items in datamodel.plan(model["rows"])]


def plan_device(device):
    """The poll plan of a device: its data model's frames, or the catalogue's coalesced reads."""
    if device.model is not None:
        return plan_model(device.model)
    return plan_reads(device.reference, _loads_key(device))


def plan_tiers(device):
    """{tier: reads} of a device: a catalogue device's reads coalesced within each tier (a read never
    mixes two tiers); a generic device's frames all in the fast tier."""
    if device.model is not None:
        return {poll_tiers.FAST: plan_model(device.model)}
    loads = _loads_key(device)
    tiers = {}
    for tier in poll_tiers.NAMES:
        reads = plan_reads(device.reference, loads, tier=tier)
        if reads:
            tiers[tier] = reads
    return tiers


def decode_read(read, words):
    """{load: {key: value}} from the words (bits for functions 1 and 2) answered to ``read``."""
    out = {}
    if read.generic:
        for load, key, offset, (encoding, order), coefficient in read.items:
            out.setdefault(load, {})[key] = datamodel.decode(encoding, order, coefficient, words[offset:])
        return out
    for load, key, offset, kind, mult in read.items:
        n = catalogue.type_words(kind)
        out.setdefault(load, {})[key] = catalogue.decode(kind, words[offset:offset + n], mult)
    return out


def _loads_key(device):
    """What a device's poll plan depends on besides its reference: its loads and their network types."""
    return [(n, device.network(n)) for n in device.load_numbers()]


def _plan_key(device):
    """What a device's poll plan depends on: its loads and a generic device's data model."""
    return _loads_key(device), device.model


def answer_words(read, pdu):
    """The words (or bits) of the answer ``pdu`` to ``read``."""
    if read.function in (rtu.READ_COILS, rtu.READ_DISCRETE_INPUTS):
        return rtu.unpack_bits(pdu[2:], read.count)
    return rtu.read_registers_from_pdu(pdu)


class TierSchedule:
    """When each slow tier of one device is due: every ``period(tier)`` seconds on the gateway's clock
    (the setting ``poll.<tier>_s``), and the energies also at the first cycle after each boundary of the
    integration period.

    ``phase`` (0..1] spreads the devices of a bus over the period (their first re-read comes after
    ``phase`` x the period), so each cycle carries a like share of the slow reads instead of all of
    them at once; the next read then keeps its place on that grid. A period made shorter applies at
    once (a tier is also due one new period after its last read), a longer one from the next read."""

    def __init__(self, tiers, phase=1.0, period=poll_tiers.period):
        self.phase = phase
        self.period = period
        self.next_due = dict((tier, None) for tier in tiers if tier != poll_tiers.FAST)   # None: never read
        self.last = {}            # tier -> clock time of its last read
        self.reads = collections.Counter()      # tier -> cycles it was read in

    def due(self, now, integration_s):
        """The slow tiers to read in the cycle starting at ``now``."""
        out = []
        boundary = now // integration_s * integration_s if integration_s else None
        for tier, next_due in self.next_due.items():
            last = self.last.get(tier)
            if next_due is None or now >= next_due or (last is not None and now >= last + self.period(tier)):
                out.append(tier)
            elif tier == poll_tiers.ENERGY and boundary is not None and last is not None and last < boundary:
                out.append(tier)                   # a new integration period began since the last read
        return out

    def read(self, tier, now):
        """``tier`` was read at ``now``: the next read's time. Returns the interval since its last read, or
        None for its first two reads (the first has none, the second's is shortened by the phase)."""
        last = self.last.get(tier)
        interval = None if last is None or (tier != poll_tiers.FAST and self.reads[tier] < 2) else now - last
        self.last[tier] = now
        self.reads[tier] += 1
        if tier == poll_tiers.FAST:
            return interval
        every = self.period(tier)
        next_due = self.next_due[tier]
        if next_due is None:
            self.next_due[tier] = now + every * self.phase
        elif now >= next_due:
            self.next_due[tier] = next_due + every if next_due + every > now else now + every
        return interval


class DeviceState:
    def __init__(self, device, phase=1.0, period=poll_tiers.period):
        self.device = device
        self.tiers = plan_tiers(device)
        self.plan = [read for reads in self.tiers.values() for read in reads]
        self.schedule = TierSchedule(self.tiers, phase, period)
        self.failures = 0
        self.next_try = 0.0

    def due_reads(self, now, integration_s):
        """[(tier, read)] of this cycle: the fast tier, then the slow tiers that are due."""
        tiers = [poll_tiers.FAST] if poll_tiers.FAST in self.tiers else []
        tiers += self.schedule.due(now, integration_s)
        return [(tier, read) for tier in tiers for read in self.tiers[tier]]

    @property
    def lost(self):
        """Communication lost: the last poll failed (the cache's comm_lost mirrors it)."""
        return self.failures > 0


class BusPoller:
    """Polls the devices of one bus forever; one task per bus."""

    def __init__(self, bus_name, engine, topology, cache, alarms, settings, clock):
        self.bus_name = bus_name
        self.engine = engine
        self.topology = topology
        self.cache = cache
        self.alarms = alarms
        self.settings = settings
        self.clock = clock
        self.states = {}
        self.cycles = 0
        self.cycle_times = collections.deque(maxlen=100)
        self.device_cycles = collections.Counter()
        self.tier_requests = collections.Counter()       # tier -> reads sent (issue 19)
        self.tier_intervals = dict((t, collections.deque(maxlen=1000)) for t in poll_tiers.NAMES)
        self.cycle_registers = collections.deque(maxlen=100)   # per cycle: the register counts it read
        self._cycle_counts = []
        self._task = None
        self._topology_version = None

    def start(self):
        self._task = Supervised("poll-" + self.bus_name, self._run)
        self._task.start()

    async def stop(self):
        if self._task:
            await self._task.stop()

    def _sync_topology(self):
        if self._topology_version == self.topology.version:
            return
        self._topology_version = self.topology.version
        wanted = dict((d.address, d) for d in self.topology.on_bus(self.bus_name))
        phases = dict((address, (i + 1.0) / len(wanted)) for i, address in enumerate(sorted(wanted)))
        for address in list(self.states):
            old = self.states[address]
            new = wanted.get(address)
            if new is None or new.reference != old.device.reference or new.uid != old.device.uid:
                del self.states[address]
                self.cache.forget_device(address)
                self.alarms.set(ALARM_SLAVE_TIMEOUT, self.source(address), False, "device removed")
        for address, device in wanted.items():
            old = self.states.get(address)
            if old is not None and _plan_key(old.device) == _plan_key(device):
                old.device = device              # a new name or area: the plan stands
                continue
            state = DeviceState(device, phases[address], self.tier_period)   # new, or its loads changed: plan it again
            if old is not None:
                state.failures, state.next_try = old.failures, old.next_try
            self.states[address] = state
            supported = collections.defaultdict(set)
            for read in state.plan:
                for load, key, _o, _k, _m in read.items:
                    supported[load].add(key)
            declare(self.cache, address, supported)
            self.cache.declare_tiers(address, dict((key, tier) for tier, reads in state.tiers.items()
                                                   for read in reads for _l, key, _o, _k, _m in read.items))

    def source(self, address):
        return device_source(self.bus_name, address)

    async def _run(self):
        while True:
            started = time.monotonic()
            self._sync_topology()
            due = [self.states[a] for a in sorted(self.states)
                   if not (self.states[a].lost and time.monotonic() < self.states[a].next_try)]
            await self._poll_in_turn(due)
            polled = len(due)
            elapsed = time.monotonic() - started
            if polled:
                self.cycles += 1
                self.cycle_times.append(elapsed)
                self.cycle_registers.append(self._cycle_counts)
                self._cycle_counts = []
                self._state_periods()
            min_cycle = self.settings.get("poll.min_cycle_ms") / 1000.0
            wait = max(min_cycle - elapsed, 0.0 if polled else 0.2)
            await asyncio.sleep(wait)

    async def _poll_in_turn(self, states):
        """Poll devices in order, the next one's reads queued behind the current's.

        The poll queue then never runs dry between two reads, so lower classes
        (curve download, discovery) get only their fair share of the bus, not
        every gap the poller leaves while it decodes an answer. One task for the
        whole turn (not one per device: a task's start and end are two more loop
        turns per device, docs/architecture.md "Bus engine: one wake-up per attempt").
        """
        batches = []
        try:
            for state in states:
                batches.append(self._submit(state))
                if len(batches) > 1:
                    await self._collect(*batches[-2])
            if batches:
                await self._collect(*batches[-1])
        finally:
            for _state, _planned, futures in batches:
                for future in futures:     # stopped mid-way: what is still queued never goes on the wire
                    if not future.done():
                        future.cancel()

    def tier_period(self, tier):
        """Seconds between two reads of a slow tier: its setting ``poll.<tier>_s``."""
        return self.settings.get(poll_tiers.setting(tier))

    def integration_s(self):
        """The integration period (s) energies are read again after each boundary of."""
        return 60 * self.settings.get("storage.consumption_period_min")

    def _submit(self, state):
        """(state, planned reads, their futures): the device's due reads queued on the bus."""
        retries = 0 if state.lost else None
        planned = state.due_reads(self.clock.time(), self.integration_s())
        return state, planned, [self.engine.submit(state.device.address, read.request, POLL, retries=retries,
                                                   cuts=read.cuts) for _tier, read in planned]

    async def _collect(self, state, planned, futures):
        """Store the answers to a device's queued reads in order; True when it answered."""
        address = state.device.address
        done = set()
        try:
            for (tier, read), future in zip(planned, futures, strict=True):
                try:
                    pdu = await future
                except (BusTimeout, BusBusy) as exc:
                    self._failed(state, exc)
                    return False
                except rtu.ModbusException as exc:
                    log.debug("%s: exception %d on %r", self.source(address), exc.code, read)
                    continue
                finally:
                    self.tier_requests[tier] += 1
                    self._cycle_counts.append(read.count)
                self._store(address, read, pdu, tier)
                done.add(tier)
        finally:
            for future in futures:     # a silent device: its other reads never go on the wire
                if not future.done():
                    future.cancel()
        now = self.clock.time()
        for tier in set(t for t, _r in planned):
            interval = state.schedule.read(tier, now)
            if interval is not None and tier in done:
                self.tier_intervals[tier].append(interval)
        self._answered(state)
        return True

    def _state_periods(self):
        """Tell the cache each tier's refresh period: the fast tier's is the cycle; a slow tier is read at
        the first cycle after it is due, so at most its period plus one cycle after its last read."""
        cycle = self.refresh_period()
        self.cache.set_refresh_period(self.states, cycle)
        for tier in poll_tiers.SLOW:
            every = self.tier_period(tier)
            if tier == poll_tiers.ENERGY:
                every = min(every, self.integration_s())
            self.cache.set_refresh_period(self.states, every + cycle, tier)

    def _store(self, address, read, pdu, tier=poll_tiers.FAST):
        """One answer into the cache: its raw words, then its values (subscribers told once per load)."""
        now = self.clock.time()
        words = answer_words(read, pdu)
        if read.function == rtu.READ_HOLDING:        # what Modbus TCP may answer from (holding registers only)
            self.cache.update_raw(address, read.start, words, now, tier)
        decoder = read.decoder
        if decoder is not None:                      # the compiled layout: decode_read's values, faster
            if decoder.standard:
                self.cache.update(address, decoder.load, decoder.decode(pdu), now)
            else:
                store(self.cache, address, decoder.load, decoder.decode(pdu), now)
            return
        for load, values in decode_read(read, words).items():
            store(self.cache, address, load, values, now)

    def _answered(self, state):
        address = state.device.address
        self.device_cycles[address] += 1
        if state.lost:
            log.info("%s answers again", self.source(address))
            state.failures = 0
            self.cache.set_comm_lost(address, False)
            self.alarms.set(ALARM_SLAVE_TIMEOUT, self.source(address), False, "device answers again")
        else:
            self.alarms.set(ALARM_SLAVE_TIMEOUT, self.source(address), False)

    def _failed(self, state, exc):
        address = state.device.address
        if not state.lost:
            log.warning("%s stopped answering (%s)", self.source(address), exc)
        state.failures += 1
        backoff = min(self.settings.get("poll.backoff_max_s"), 2 ** (state.failures - 1))
        state.next_try = time.monotonic() + backoff
        self.cache.set_comm_lost(address, True)
        self.alarms.set(ALARM_SLAVE_TIMEOUT, self.source(address), True,
                        "%s %s does not answer" % (state.device.reference, state.device.netid))

    def refresh_period(self):
        """Seconds this bus takes to refresh a device: the larger of the last and the mean cycle."""
        if not self.cycle_times:
            return 0.0
        return max(self.cycle_times[-1], sum(self.cycle_times) / len(self.cycle_times))

    def status(self):
        times = list(self.cycle_times)
        return {"cycles": self.cycles, "restarts": self._task.restarts if self._task else 0,
                "cycle_ms": round(1000 * times[-1], 1) if times else None,
                "mean_cycle_ms": round(1000 * sum(times) / len(times), 1) if times else None,
                "devices": len(self.states),
                "lost": sorted(a for a, s in self.states.items() if s.lost)}
