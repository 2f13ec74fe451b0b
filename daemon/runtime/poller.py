"""Cyclic polling of every device on one bus, with coalesced reads.

``plan_reads`` turns a device's catalogue entry into the fewest requests of
at most 125 registers that cover every measurement it offers: within each
readable block (a read never crosses one), a greedy cover from the lowest
needed register is optimal for interval covering with a fixed window.

A device that stops answering is marked communication-lost in the cache,
raises system alarm 3 and is retried with exponential back-off (so the
other devices keep their cycle); the first good answer clears both.
"""

import asyncio
import collections
import logging
import time

from core import catalogue, datamodel, modbus_rtu as rtu
from daemon.runtime.bus import POLL, BusBusy, BusTimeout
from daemon.runtime.feed import declare, store
from daemon.state.alarms import device_source
from daemon.supervise import Supervised

log = logging.getLogger("gateway.poller")

ALARM_SLAVE_TIMEOUT = 3


class PlannedRead:
    """One request: registers (or bits) [start, start+count) and the values inside.

    A generic device's read (``generic``: one frame of its data model) may use function 1, 2, 3 or 4 and
    its items' kind is (encoding, word order) of core/datamodel.py."""

    __slots__ = ("start", "count", "items", "function", "generic")

    def __init__(self, start, count, items, function=rtu.READ_HOLDING, generic=False):
        self.start = start
        self.count = count
        self.items = items      # [(load, key, offset, kind, multiplier)]
        self.function = function
        self.generic = generic

    def __repr__(self):
        return "<Read %#06x+%d %d values>" % (self.start, self.count, len(self.items))


def plan_reads(reference, loads, limit=rtu.MAX_READ_REGISTERS):
    """Coalesced reads for a device: ``loads`` = [(load number, network type)]."""
    plan = []
    for load, network in loads:
        mapping = catalogue.measurement_map(reference, load, network)
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


class DeviceState:
    def __init__(self, device):
        self.device = device
        self.plan = plan_device(device)
        self.failures = 0
        self.next_try = 0.0

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
            state = DeviceState(device)          # new, or its loads changed: plan it again
            if old is not None:
                state.failures, state.next_try = old.failures, old.next_try
            self.states[address] = state
            supported = collections.defaultdict(set)
            for read in state.plan:
                for load, key, _o, _k, _m in read.items:
                    supported[load].add(key)
            declare(self.cache, address, supported)

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
                self.cache.set_refresh_period(self.states, self.refresh_period())
            min_cycle = self.settings.get("poll.min_cycle_ms") / 1000.0
            wait = max(min_cycle - elapsed, 0.0 if polled else 0.2)
            await asyncio.sleep(wait)

    async def _poll_in_turn(self, states):
        """Poll devices in order, the next one's reads queued behind the current's.

        The poll queue then never runs dry between two reads, so lower classes
        (curve download, discovery) get only their fair share of the bus, not
        every gap the poller leaves while it decodes an answer.
        """
        previous = None
        tasks = []
        try:
            for state in states:
                task = asyncio.get_running_loop().create_task(self.poll_device(state))
                tasks.append(task)
                if previous is not None:
                    await previous
                previous = task
            if previous is not None:
                await previous
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()

    async def poll_device(self, state):
        address = state.device.address
        retries = 0 if state.lost else None
        futures = [self.engine.submit(address, rtu.read_request(read.function, read.start, read.count), POLL,
                                      retries=retries, cuts=[item[2] for item in read.items])   # item starts
                   for read in state.plan]
        try:
            for read, future in zip(state.plan, futures, strict=True):
                try:
                    pdu = await future
                except (BusTimeout, BusBusy) as exc:
                    self._failed(state, exc)
                    return False
                except rtu.ModbusException as exc:
                    log.debug("%s: exception %d on %r", self.source(address), exc.code, read)
                    continue
                self._store(address, read, answer_words(read, pdu))
        finally:
            for future in futures:     # a silent device: its other reads never go on the wire
                if not future.done():
                    future.cancel()
        self._answered(state)
        return True

    def _store(self, address, read, words):
        now = self.clock.time()
        if read.function == rtu.READ_HOLDING:        # what Modbus TCP may answer from (holding registers only)
            self.cache.update_raw(address, read.start, words, now)
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
