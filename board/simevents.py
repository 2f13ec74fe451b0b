"""A simulated meter's alarm and event log (core/meter_events.py layout).

What the meter logs, like a real one configured with Easy Config:
* threshold alarms on its own measurements (slots configured from the
  topology file or at run time), evaluated once per second of the meter's
  clock while anything talks to it (lazily, like the curve caches);
* logical alarms on the digital inputs listed as such (IO modules);
* power-quality events and the device's own alarms, injected by tests and
  the simulation API (a dip has a start and an end record, the end carrying
  its duration).

The log is a ring of CAPACITY records numbered from 0; older ones are
overwritten, as in a meter. Called under the meter's lock.
"""

import collections
import math

from core import meter_events as ev, modbus_rtu as rtu, registry

CAPACITY = 256
OPERATORS = (">", "<")


S32_MAX = 0x7FFFFFFF


def _check_key(key):
    if key is not None and key not in registry.keys():
        raise ValueError("no measurement %r" % (key,))


def _check_number(name, value, key=None):
    """A finite engineering value whose raw form fits the record's S32."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError("%s must be a finite number" % name)
    try:
        raw = ev.raw_of(key, value)
    except OverflowError:         # finite, but past a float once scaled (1e308 V): out of range as well
        raw = S32_MAX + 1
    if abs(raw) > S32_MAX:
        raise ValueError("%s out of range: its raw value must fit a signed 32-bit record" % name)


class AlarmSlot:
    """One configured threshold alarm: ``key`` of ``load`` compared with ``threshold``."""

    def __init__(self, slot, load, key, op, threshold, criticality="non-critical"):
        if type(slot) is not int or not 1 <= slot <= 63 or type(load) is not int or op not in OPERATORS \
                or criticality not in ev.CRITICALITY or key is None:
            raise ValueError("bad alarm slot %r" % ((slot, load, key, op, threshold, criticality),))
        _check_key(key)
        _check_number("threshold", threshold, key)
        self.slot, self.load, self.key, self.op = slot, load, key, op
        self.threshold = float(threshold)
        self.criticality = criticality
        self.active = False

    def condition(self, value):
        return value > self.threshold if self.op == ">" else value < self.threshold


class EventLog:
    def __init__(self, meter, capacity=CAPACITY):
        self.meter = meter
        self.records = collections.deque(maxlen=capacity)     # words of each record, oldest first
        self.next_number = 0
        self.window_start = 0
        self.slots = []
        self.logical_inputs = set()
        self.header_reads = 0             # reads of the window (tests count transactions)
        self.command_writes = 0

    # ------------------------------------------------------------ configuration

    def configure(self, alarms=None, logical_inputs=None):
        """Replace the alarm slots and/or the logical inputs; all checked before anything changes."""
        slots = wanted = None
        if alarms is not None:
            slots = [AlarmSlot(**spec) for spec in alarms]
            loads = range(0, len(self.meter.loads) + 1)
            for slot in slots:
                if slot.load not in loads:
                    raise ValueError("the meter has no load %d" % slot.load)
            if len(set(slot.slot for slot in slots)) != len(slots):
                raise ValueError("two alarms in the same slot")
        if logical_inputs is not None:
            inputs = self.meter.product.inputs
            if any(type(n) is not int for n in logical_inputs):
                raise ValueError("inputs are numbered 1..%d" % inputs)
            wanted = set(logical_inputs)
            if any(not 1 <= n <= inputs for n in wanted):
                raise ValueError("the meter has %d inputs" % inputs)
        if slots is not None:
            # A slot keeps its state across a change (the next evaluation logs
            # the end if its new threshold no longer holds); a removed slot
            # that was active ends now.
            previous = dict((slot.slot, slot) for slot in self.slots)
            for slot in slots:
                if slot.slot in previous:
                    slot.active = previous.pop(slot.slot).active
            now = self.meter.clock.time()
            for gone in previous.values():
                if gone.active:
                    self.log(now, "threshold", False, gone.load, gone.criticality, gone.slot, gone.key,
                             self.meter._values(gone.load, int(now)).get(gone.key, 0.0), gone.threshold)
            self.slots = slots
            self.meter.invalidate()       # evaluate at the next access
        if wanted is not None:
            self.logical_inputs = wanted

    # ------------------------------------------------------------ recording

    def _meter_time(self, t):
        return rtu.unix_to_socomec(int(t + self.meter.meter_clock_offset))

    def log(self, t, kind, start, load, criticality, index, key=None, value=0.0, reference=0):
        """Append one record; value/reference are engineering values (reference raw for PQ)."""
        data_id = registry.get(key)[registry.DATA_ID] if key else 0
        cause = ev.encode_cause(ev.KIND_CODES[kind], start, load, ev.CRITICALITY.index(criticality), index)
        raw_value = ev.raw_of(key, value)
        raw_reference = int(reference) if kind == "power_quality" else ev.raw_of(key, reference)
        self.records.append(ev.encode_item(self.next_number, self._meter_time(t), cause, data_id,
                                           raw_value, raw_reference))
        self.next_number += 1

    def evaluate(self, t):
        """Once per meter second: threshold alarms start or end."""
        for slot in self.slots:
            value = self.meter._values(slot.load, t).get(slot.key, 0.0)
            state = slot.condition(value)
            if state != slot.active:
                slot.active = state
                self.log(t, "threshold", state, slot.load, slot.criticality, slot.slot, slot.key, value,
                         slot.threshold)

    def inputs_changed(self, t, old, new):
        for number in sorted(self.logical_inputs):
            bit = 1 << (number - 1)
            if (old ^ new) & bit:
                state = 1 if new & bit else 0
                self.log(t, "logical", bool(state), 0, "non-critical", number, value=state)

    def inject(self, t, kind, index, load=0, key=None, value=0.0, duration_ms=0, start=True,
               criticality="non-critical"):
        """A power-quality event (start + end records) or a device alarm start/end."""
        _check_key(key)
        _check_number("value", value, key)
        if criticality not in ev.CRITICALITY or not isinstance(start, bool):
            raise ValueError("bad criticality or start")
        if type(load) is not int or not 0 <= load <= len(self.meter.loads):
            raise ValueError("the meter has no load %r" % (load,))
        if type(duration_ms) is not int or not 0 <= duration_ms <= S32_MAX:
            raise ValueError("duration_ms must be 0..%d" % S32_MAX)
        if kind == "power_quality":
            if index not in ev.PQ_EVENTS:
                raise ValueError("bad power-quality event")
            self.log(t, kind, True, load, criticality, index, key, value, 0)
            self.log(t + duration_ms / 1000.0, kind, False, load, criticality, index, key, value, duration_ms)
        elif kind == "device":
            if index not in ev.DEVICE_ALARMS:
                raise ValueError("bad device alarm")
            self.log(t, kind, start, load, criticality, index)
        else:
            raise ValueError("cannot inject %r" % kind)

    # ------------------------------------------------------------ registers

    def blocks(self):
        return [(ev.COMMAND, ev.COMMAND_WORDS), (ev.HEADER, ev.HEADER_WORDS + ev.ITEMS * ev.ITEM_WORDS)]

    def owns(self, start):
        return any(block <= start < block + words for block, words in self.blocks())

    def _window(self):
        oldest = self.next_number - len(self.records)
        first = max(self.window_start, oldest)
        count = max(0, min(ev.ITEMS, self.next_number - first))
        words = ev.encode_header(self.next_number, count)
        for number in range(first, first + count):
            words.extend(self.records[number - oldest])
        return words + [0] * (ev.ITEMS * ev.ITEM_WORDS - count * ev.ITEM_WORDS)

    def read(self, start, count):
        if start == ev.COMMAND:
            return rtu.encode_value("u32", self.window_start)[:count]
        self.header_reads += 1
        offset = start - ev.HEADER
        return self._window()[offset:offset + count]

    def owns_write(self, start):
        return start == ev.COMMAND

    def write(self, start, words):
        if len(words) != ev.COMMAND_WORDS:
            return rtu.ILLEGAL_DATA_ADDRESS
        self.window_start = rtu.decode_value("u32", words)
        self.command_writes += 1
        return 0
