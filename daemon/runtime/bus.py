"""The transaction engine of one RS485 bus (modelled on mbusd: one queue,
one transaction on the wire, timing stated in one place).

* One request on the wire at a time; the 3.5-character silence (1.75 ms
  above 19200 baud) is kept between the end of one frame and the next.
* The answer is read as soon as its expected length is in (no need to wait
  for the silence), checked (CRC, unit, function, length) and retried.
* Priority classes: pass-through (northbound requests) > poll > curve
  download > discovery. A higher class cannot starve a lower one, whatever
  else waits (``ClassQueues``): each waiting class counts the transactions of
  higher classes served ahead of it, and once ``BURSTS[class]`` have passed it,
  its oldest request goes first.
* Pass-through waits for at most the one transaction already on the wire: a
  due lower class lets one waiting pass-through request go first (once per
  turn of its own) unless pass-through itself made it due (a flood); and while
  pass-through traffic is active (a request in the last ``PASSTHROUGH_ACTIVE_S``)
  a poll read longer than ``SPLIT_WORDS`` registers goes on the wire in pieces
  cut between its values (``cuts``), so what a forwarded read waits behind
  stays short, unless the forwarded requests' steady pace puts the next one
  after the whole read (``PassthroughPace``); with a steady pace, reads are sized
  to end before the next forwarded request is expected and the line waits for
  it, within a bounded idle budget (fit scheduling); curve downloads (long reads, never split) then go right after
  a pass-through transaction, at most once per ``CURVE_HOLD_S``. With no
  pass-through traffic nothing changes: the poll cycle pays the extra frames only while someone
  is using pass-through.
* Per-device counters: requests, timeouts, CRC errors, exceptions,
  response time mean/max, last success.
"""

import asyncio
import collections
import logging
import math
import os
import termios
import time

from core import modbus_rtu as rtu
from daemon.runtime.finetimer import FineTimer
from daemon.supervise import Supervised

log = logging.getLogger("gateway.bus")

PASSTHROUGH, POLL, CURVE, DISCOVERY = 0, 1, 2, 3
CLASS_NAMES = ("passthrough", "poll", "curve", "discovery")
FAIRNESS_BURST = 4
# How many transactions of higher classes may pass a waiting class before its
# oldest request goes first. Curve downloads get a small share only: polling
# keeps the bus busy all the time, and a back-fill of months of load curves
# must not double the poll cycle (it did, at one curve read per poll read).
BURSTS = {POLL: FAIRNESS_BURST, CURVE: 8 * FAIRNESS_BURST, DISCOVERY: FAIRNESS_BURST}
MAX_QUEUED = 256        # per class; beyond it new requests are refused at once
# While pass-through traffic is active, poll reads are put on the wire in pieces of at most this many
# registers, in pieces of even size: at 38400 baud a 54-register read holds the line 35 ms, its two
# pieces of 27 registers 21 ms each (the longest wait of a forwarded read), at the price of ~7 ms of
# frame overhead per extra piece (bench/passthrough.py: 16 halves no wait more, costs twice).
SPLIT_WORDS = 32
PASSTHROUGH_ACTIVE_S = 1.0   # pass-through counts as active this long after its last request
# A client that forwards at a steady pace (a SCADA polling a meter through us) is not expected before the
# shortest of its last PACE_GAPS gaps (x PACE_MARGIN) has passed: until then a poll read that ends before it
# goes whole, saving the ~7 ms of framing of each extra piece. Irregular or unknown traffic: split as before.
PACE_GAPS = 8
PACE_MARGIN = 0.8
# While pass-through is active, a curve read (up to 125 registers, 72 ms at 38400 baud, never split: its
# paging must not be cut) goes at most once per CURVE_HOLD_S, right after a pass-through transaction; a
# back-fill can wait, a forwarded read should not wait 72 ms (bench/passthrough.py: its p99).
CURVE_HOLD_S = 10.0
HELD_RECHECK_S = 0.05        # a bus whose only waiting reads are held looks again this often
# The shortest answer a slave sends (an exception: address, function, code, CRC): the line discipline is asked
# to report the port readable only once this many bytes are in (termios VMIN), so the first byte of an answer
# does not wake the loop on its own (docs/architecture.md "The answer's first bytes kept from the loop").
ANSWER_MIN_BYTES = 5
TURNAROUND_MARGIN_S = 0.005  # a meter's turnaround, counted in the time a read holds the line (pace above)
# Fit scheduling: when the pace is steady (PACE_GAPS gaps known, the longest at most FIT_REGULAR x the
# shortest), the next forwarded request is expected one shortest gap after the last. Poll reads before it are
# sized to end by then (a piece of what fits, cut between values, not SPLIT_WORDS); when less than a read of
# FIT_MIN_WORDS fits (a piece that short costs more framing than the idle time it fills), the line is left
# idle until then, and once the request is due at most FIT_IDLE_SHARE of the shortest gap more (a client that
# does not come on time costs polling that share and one short read's time per request, no more; then
# splitting as before). FIT_SCHEDULING off: the pace above alone (bench/passthrough.py --pace on).
FIT_SCHEDULING = True
FIT_REGULAR = 2.0
FIT_MIN_WORDS = 8
FIT_IDLE_SHARE = 0.2


class PassthroughPace:
    """When the next forwarded request may come, from the gaps between the last ones (pure: times given)."""

    def __init__(self):
        self.last = -PASSTHROUGH_ACTIVE_S
        self.gaps = collections.deque(maxlen=PACE_GAPS)
        self.idle_spent = 0.0             # the line left idle for the next forwarded request (fit scheduling)

    def arrived(self, now):
        gap = now - self.last
        if gap < PASSTHROUGH_ACTIVE_S:
            self.gaps.append(gap)
        else:
            self.gaps.clear()             # a new burst of traffic: its pace is learnt afresh
        self.last = now
        self.idle_spent = 0.0

    def active(self, now):
        return now - self.last < PASSTHROUGH_ACTIVE_S

    def may_come_within(self, now, seconds):
        """Whether a forwarded request may come before ``now + seconds``: False when pass-through is quiet or
        its steady pace puts the next one later; True while its pace is unknown (fewer than PACE_GAPS gaps)."""
        if not self.active(now):
            return False
        if len(self.gaps) < PACE_GAPS:
            return True
        return now + seconds > self.last + PACE_MARGIN * min(self.gaps)

    def expected(self, now):
        """When the next forwarded request is expected (the shortest learnt gap after the last one), for fit
        scheduling; None when pass-through is quiet, its pace unknown or irregular (fail safe: split as before)."""
        if not FIT_SCHEDULING or not self.active(now) or len(self.gaps) < PACE_GAPS:
            return None
        shortest = min(self.gaps)
        if max(self.gaps) > FIT_REGULAR * shortest:
            return None
        return self.last + shortest

    def idle_for(self, now, lead):
        """How long to leave the line idle now for the expected request: until it is expected when less than
        ``lead`` (the time of the shortest read worth sending) is left; once it is due, what is left of this
        request's idle budget (FIT_IDLE_SHARE of the shortest gap); 0 otherwise (and once the budget is spent)."""
        expected = self.expected(now)
        if expected is None or now < expected - lead:
            return 0.0
        if now < expected:
            return expected - now
        return max(0.0, FIT_IDLE_SHARE * min(self.gaps) - self.idle_spent)

    def idled(self, now, seconds):
        """The line was left idle ``seconds`` up to ``now``: what of it came after the expected time counts."""
        expected = self.expected(now)
        if expected is not None:
            self.idle_spent += min(seconds, max(0.0, now - expected))


class BusTimeout(Exception):
    """The device did not answer (after the retries)."""


class BusGarbled(BusTimeout):
    """Answers came but none could be trusted (CRC, length): noise or a collision."""


class BusBusy(Exception):
    """The queue of this priority class is full."""


class DeviceCounters:
    __slots__ = ("requests", "answers", "timeouts", "crc_errors", "frame_errors", "exceptions",
                 "total_time", "max_time", "last_success")

    def __init__(self):
        self.reset()

    def reset(self):
        self.reset_counts()
        self.last_success = None

    def reset_counts(self):
        """Zero the counts (Diagnosis: reset communication counters); the last success is a fact, kept."""
        self.requests = self.answers = self.timeouts = 0
        self.crc_errors = self.frame_errors = self.exceptions = 0
        self.total_time = self.max_time = 0.0

    def as_dict(self):
        mean = self.total_time / self.answers if self.answers else 0.0
        return {"requests": self.requests, "answers": self.answers, "timeouts": self.timeouts,
                "crc_errors": self.crc_errors, "frame_errors": self.frame_errors,
                "exceptions": self.exceptions, "mean_response_ms": round(mean * 1000, 2),
                "max_response_ms": round(self.max_time * 1000, 2), "last_success": self.last_success}


class _Transaction:
    """One queued request. A read submitted with ``cuts`` (the offsets where it may be cut: between two of
    its values) may go on the wire in pieces; ``offset`` and ``words`` are what its pieces read so far."""
    __slots__ = ("unit", "pdu", "future", "retries", "timeout", "klass", "cuts", "offset", "words")

    def __init__(self, unit, pdu, future, retries, timeout, klass, cuts=None):
        self.unit = unit
        self.pdu = pdu
        self.future = future
        self.retries = retries
        self.timeout = timeout
        self.klass = klass
        self.cuts = cuts
        self.offset = 0
        self.words = None

    def piece_end(self, count, limit):
        """Where the next piece of a read of ``count`` registers ends: the rest cut in even pieces of at most
        ``limit`` registers, at the last cut within this piece's share (the first cut beyond it when a single
        value is longer), or the end."""
        remaining = count - self.offset
        if remaining <= limit:
            return count
        pieces = -(-remaining // limit)
        share = -(-remaining // pieces)
        within = [c for c in self.cuts if self.offset < c <= self.offset + share]
        if within:
            return max(within)
        beyond = [c for c in self.cuts if c > self.offset]
        return min(beyond) if beyond else count

    def fit_end(self, count, words):
        """Where a piece of at most ``words`` registers from ``offset`` ends, cut between two values (or the
        end); ``offset`` when not even one value fits."""
        if self.offset + words >= count:
            return count
        within = [c for c in self.cuts if self.offset < c <= self.offset + words]
        return max(within) if within else self.offset


class ClassQueues:
    """The waiting transactions of one bus, one bounded queue per priority class, and the fairness rule.

    Highest class first, except that every waiting class counts the transactions of higher classes
    served while it waits (``passed``); when its count reaches ``BURSTS[class]`` it is due, and the
    highest due class goes first. Due classes are served before any other, in class order, so a
    waiting request of class k is passed by at most ``BURSTS[k] + k - 1`` transactions: a count, not
    a clock, so the order is deterministic. A class whose queue runs dry starts counting afresh.

    One exception keeps a forwarded read behind at most the transaction already on the wire: a due
    class lets one waiting pass-through request go first, once per turn of its own, unless
    ``FAIRNESS_BURST`` pass-through requests passed it already (a flood is still held to the
    rule). The bound of a class below poll becomes ``BURSTS[k] + k``; poll, made due by pass-through
    alone, never yields.
    """

    def __init__(self, bursts=None, limit=MAX_QUEUED):
        self.bursts = dict(BURSTS if bursts is None else bursts)
        self.limit = limit
        self.passed = [0] * len(CLASS_NAMES)
        self.passthrough_passed = [0] * len(CLASS_NAMES)    # the pass-through requests among ``passed``
        self.yielded = [False] * len(CLASS_NAMES)           # a due class let one pass-through go first
        self.passthrough_streak = 0                         # consecutive picks with pass-through waiting
        self._queues = [collections.deque() for _ in CLASS_NAMES]

    def full(self, klass):
        return len(self._queues[klass]) >= self.limit

    def push(self, tx):
        self._queues[tx.klass].append(tx)

    def push_front(self, tx):
        """Put back a read whose first pieces were served: it goes on as the oldest of its class."""
        self._queues[tx.klass].appendleft(tx)

    def lengths(self):
        return [len(q) for q in self._queues]

    def drain(self):
        """Every waiting transaction, the queues emptied (the bus stops)."""
        for queue in self._queues:
            while queue:
                yield queue.popleft()

    def pick(self, hold=False):
        """The next transaction to put on the wire, or None when nothing (or only a held class) waits.
        ``hold``: curve downloads wait, unless pass-through floods (one waited at each of the last
        ``FAIRNESS_BURST`` picks): then the counts rule."""
        queues = self._queues
        for queue in queues:                  # a caller that gave up leaves its request behind: drop it here
            while queue and queue[0].future.done():
                queue.popleft()
        waiting = [k for k, q in enumerate(queues) if q]
        self.passthrough_streak = self.passthrough_streak + 1 if queues[PASSTHROUGH] else 0
        if hold:
            flood = self.passthrough_streak > FAIRNESS_BURST
            kept = [k for k in waiting if k != CURVE or flood]
            if not kept:
                return None                   # the engine looks again shortly (``HELD_RECHECK_S``)
            waiting = kept
        if not waiting:
            self.passed = [0] * len(queues)
            self.passthrough_passed = [0] * len(queues)
            self.yielded = [False] * len(queues)
            return None
        due = [k for k in waiting[1:] if self.passed[k] >= self.bursts[k]]
        chosen = due[0] if due else waiting[0]
        if due and waiting[0] == PASSTHROUGH and not self.yielded[chosen] \
                and self.passthrough_passed[chosen] < FAIRNESS_BURST:
            self.yielded[chosen] = True           # one forwarded read first, then the due class
            chosen = PASSTHROUGH
        tx = queues[chosen].popleft()
        for k in range(len(queues)):
            if not queues[k] or k == chosen:
                self.passed[k] = self.passthrough_passed[k] = 0
                self.yielded[k] = False
            elif k > chosen and not tx.offset:      # the later pieces of a split read are one turn with its first
                self.passed[k] += 1
                self.passthrough_passed[k] += chosen == PASSTHROUGH
        return tx


class BusEngine:
    """Modbus RTU master on one serial port."""

    def __init__(self, name, port, baud=38400, parity="N", stop_bits=1, timeout=0.1,
                 retries=1, clock=None):
        self.name = name
        self.port = port
        self.baud = baud
        self.parity = parity
        self.stop_bits = stop_bits
        self.timeout = timeout          # margin beyond the wire time of request + answer
        self.retries = retries
        self.clock = clock
        self.char_time = rtu.char_time(baud, 8, parity, stop_bits)
        self.gap = rtu.frame_gap(baud, 8, parity, stop_bits)
        self.counters = collections.defaultdict(DeviceCounters)
        self.class_counts = [0, 0, 0, 0]
        # per class, for the benches' wire-time bounds: attempts put on the wire, their request + expected answer bytes
        self.class_attempts = [0, 0, 0, 0]
        self.class_bytes = [0, 0, 0, 0]
        self._queues = ClassQueues()
        self._wakeup = asyncio.Event()
        self._rx = bytearray()
        self._last_activity = 0.0
        self._quiet_after_cut = 0.0     # silence asked for before the next frame after an answer cut short
        self._cut_short = False         # the last answer received stopped before its length
        self._attempt = None            # the attempt on the wire (``_Attempt``), None between attempts
        self._pace = PassthroughPace()                     # when forwarded requests came, and may come next
        self.split_pieces = 0                              # poll-read pieces put on the wire (the extra frames)
        self.fit_pieces = 0                                # of which sized to end before an expected forwarded read
        self.fit_idle_s = 0.0                              # the line left idle for expected forwarded reads
        self._timer = FineTimer()       # the inter-frame silence to the 0.1 ms (the loop's timers: whole ms)
        self._task = None
        self._fd = port.fileno()
        self._closed = False
        self.wakes_on_min_bytes = False    # the port wakes the reader on ANSWER_MIN_BYTES (set at start)

    # ---------------------------------------------------------------- lifecycle

    def start(self):
        loop = asyncio.get_running_loop()
        os.set_blocking(self._fd, False)           # _drain reads without waiting to be told
        self.wakes_on_min_bytes = _wake_on(self._fd, ANSWER_MIN_BYTES)
        loop.add_reader(self._fd, self._on_readable)
        self._timer.open()
        self._task = Supervised("bus-" + self.name, self._run)
        self._task.start()

    async def stop(self):
        self._closed = True
        if self._task is not None:
            await self._task.stop()
        try:
            asyncio.get_running_loop().remove_reader(self._fd)
        except (ValueError, OSError):
            pass
        self._timer.close()
        for tx in self._queues.drain():
            if not tx.future.done():
                tx.future.set_exception(BusTimeout("bus stopped"))
        self.port.close()

    def _on_readable(self):
        if self._drain():
            attempt = self._attempt
            if attempt is not None and attempt.receiving:
                self._check_answer(attempt)

    def _drain(self):
        """Read what the port holds into the answer buffer; True when something came. Besides the reader,
        the silence and the deadline call it: fewer bytes than ANSWER_MIN_BYTES wake no one."""
        try:
            data = os.read(self._fd, 1024)
        except OSError:                            # nothing waiting (EAGAIN), or a port gone: the deadline tells
            return False
        if not data:
            return False
        self._rx.extend(data)
        self._last_activity = time.monotonic()
        return True

    # ---------------------------------------------------------------- API

    def wire_time(self, nbytes):
        return nbytes * self.char_time

    def submit(self, unit, pdu, priority=POLL, retries=None, timeout=None, cuts=None):
        """Queue a request; returns a future of the response PDU.

        The future fails with ModbusException (device exception), BusTimeout
        (no valid answer after the retries) or BusBusy (queue full). ``cuts``
        (a read of registers below pass-through priority): the offsets between
        its values where it may be split while pass-through traffic is active;
        without them it never is.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if self._closed:
            future.set_exception(BusTimeout("bus stopped"))
            return future
        if self._queues.full(priority):
            future.set_exception(BusBusy("%s queue of %s is full" % (CLASS_NAMES[priority], self.name)))
            return future
        if priority == PASSTHROUGH:
            self._pace.arrived(time.monotonic())
        splittable = cuts is not None and priority != PASSTHROUGH and len(pdu) == 5 \
            and pdu[0] in (rtu.READ_HOLDING, rtu.READ_INPUT)
        self._queues.push(_Transaction(unit, bytes(pdu), future, self.retries if retries is None else retries,
                                       self.timeout if timeout is None else timeout, priority,
                                       tuple(cuts) if splittable else None))
        self._wakeup.set()
        return future

    def passthrough_active(self):
        """Whether a pass-through request came within the last ``PASSTHROUGH_ACTIVE_S``."""
        return self._pace.active(time.monotonic())

    async def request(self, unit, pdu, priority=POLL, retries=None, timeout=None, cuts=None):
        return await self.submit(unit, pdu, priority, retries, timeout, cuts)

    async def read_registers(self, unit, start, count, priority=POLL, function=rtu.READ_HOLDING, **kw):
        pdu = await self.request(unit, rtu.read_request(function, start, count), priority, **kw)
        return rtu.read_registers_from_pdu(pdu)

    async def write_registers(self, unit, start, words, priority=PASSTHROUGH, **kw):
        return await self.request(unit, rtu.write_registers_request(start, list(words)), priority, **kw)

    def reset_counters(self, address=None):
        """Zero the counts of one device or of every device on this bus."""
        for unit, counters in self.counters.items():
            if address is None or unit == address:
                counters.reset_counts()

    def queued(self):
        return dict(zip(CLASS_NAMES, self._queues.lengths(), strict=True))

    async def _run(self):
        last, curve_went = None, -CURVE_HOLD_S
        while True:
            # While pass-through traffic is active, a curve read (long, never split) goes right after a
            # pass-through transaction, when the next forwarded request is least likely to be waiting, and
            # at most once per CURVE_HOLD_S.
            now = time.monotonic()
            if await self._idle_for_passthrough(now):
                continue
            tx = self._queues.pick(hold=self.passthrough_active() and
                                   (last != PASSTHROUGH or now - curve_went < CURVE_HOLD_S))
            last = tx.klass if tx is not None else None
            if last == CURVE:
                curve_went = now
            if tx is None:
                self._wakeup.clear()
                if any(self._queues.lengths()):        # only held reads wait: not for ever
                    try:
                        async with asyncio.timeout(HELD_RECHECK_S):
                            await self._wakeup.wait()
                    except TimeoutError:
                        pass
                else:
                    await self._wakeup.wait()
                continue
            if tx.future.done():      # caller gave up (cancelled)
                continue
            try:
                if tx.cuts and (tx.offset or self.passthrough_active()):
                    result = await self._execute_piece(tx)
                    if result is None:
                        continue              # more pieces to come: back at the head of its queue
                else:
                    result = await self._execute(tx)
            except asyncio.CancelledError:
                if not tx.future.done():
                    tx.future.set_exception(BusTimeout("bus stopped"))
                raise
            except Exception as exc:   # never let one request kill the bus
                if not tx.future.done():
                    tx.future.set_exception(exc)
                continue
            if not tx.future.done():
                tx.future.set_result(result)

    # ---------------------------------------------------------------- wire

    def _read_time(self, words):
        """The time a read of ``words`` registers holds the line: request, answer, silence, a turnaround's margin."""
        return self.wire_time(8 + 5 + 2 * words) + self.gap + TURNAROUND_MARGIN_S

    async def _idle_for_passthrough(self, now):
        """Fit scheduling: leave the line idle while the next forwarded request is due (``PassthroughPace.idle_for``,
        bounded per request); True when it waited."""
        queues = self._queues.lengths()
        if queues[PASSTHROUGH] or not any(queues):
            return False
        idle = self._pace.idle_for(now, self._read_time(FIT_MIN_WORDS))
        if idle <= 0:
            return False
        self._wakeup.clear()
        try:
            async with asyncio.timeout(idle):
                await self._wakeup.wait()          # a submit: the forwarded request, or more polling
        except TimeoutError:
            pass
        waited = time.monotonic() - now
        self._pace.idled(now + waited, waited)
        self.fit_idle_s += waited
        return True

    async def _execute_piece(self, tx):
        """Put the next piece of a splittable read on the wire: the whole response PDU after the last piece,
        None while pieces remain (the read is put back at the head of its queue)."""
        function, start, count, _words = rtu.request_fields(tx.pdu)
        now = time.monotonic()
        expected = self._pace.expected(now)
        end = None
        if expected is not None and now < expected:       # fit scheduling: what ends before the expected request
            room = expected - now - self._read_time(0)
            end = tx.fit_end(count, int(room / (2 * self.char_time)))
            if end <= tx.offset:
                end = None                # not even one value fits (the idle budget spent): split as before
            elif end < count:
                self.fit_pieces += 1
        if end is None:
            split = self._pace.may_come_within(now, self._read_time(count - tx.offset))
            end = tx.piece_end(count, SPLIT_WORDS if split else count)
        if tx.offset == 0 and end == count:
            return await self._execute(tx)
        pdu = await self._execute(tx, rtu.read_request(function, start + tx.offset, end - tx.offset))
        self.split_pieces += 1
        tx.words = (tx.words or []) + rtu.read_registers_from_pdu(pdu)
        tx.offset = end
        if end < count:
            self._queues.push_front(tx)
            return None
        return rtu.read_response(function, tx.words)

    async def _execute(self, tx, pdu=None):
        counters = self.counters[tx.unit]
        self.class_counts[tx.klass] += 1
        pdu = tx.pdu if pdu is None else pdu
        frame = rtu.request_frame(tx.unit, pdu)
        if tx.unit == rtu.BROADCAST:
            await self._wire(frame, None, 0.0)
            # Nobody answers a broadcast; give the devices time to act on it.
            await asyncio.sleep(self.wire_time(len(frame)) + self.timeout)
            self._last_activity = time.monotonic()
            return b""
        expected = rtu.expected_response_length(pdu) or rtu.MAX_ADU
        last_error = None
        for _attempt in range(tx.retries + 1):
            counters.requests += 1
            self.class_attempts[tx.klass] += 1
            self.class_bytes[tx.klass] += len(frame) + expected
            try:
                answer, started, handed = await self._wire(frame, expected, tx.timeout,
                                                           tx if pdu is tx.pdu else None)
            except BusTimeout as exc:
                counters.timeouts += 1
                last_error = exc
                continue
            if handed is not None:
                return handed                 # a good answer, counted and handed to its caller by the reader
            elapsed = time.monotonic() - started
            try:
                answered = rtu.parse_response(answer, tx.unit, pdu)
            except rtu.ModbusException:
                counters.exceptions += 1
                counters.answers += 1
                raise
            except rtu.FrameError as exc:
                if isinstance(exc, rtu.CrcError):
                    counters.crc_errors += 1
                else:
                    counters.frame_errors += 1
                last_error = exc
                # let a garbled answer finish before the next attempt
                self._last_activity = time.monotonic()
                if self._cut_short:
                    self._quiet_after_cut = tx.timeout
                continue
            self._answered(counters, elapsed)
            return answered
        if isinstance(last_error, rtu.FrameError):
            raise BusGarbled("unit %d on %s: %s" % (tx.unit, self.name, last_error))
        raise BusTimeout("unit %d on %s: %s" % (tx.unit, self.name, last_error))

    def _answered(self, counters, elapsed):
        counters.answers += 1
        counters.total_time += elapsed
        counters.max_time = max(counters.max_time, elapsed)
        counters.last_success = self.clock.time() if self.clock else time.time()

    def _send(self, frame):
        self._rx.clear()
        os.write(self._fd, frame)
        self._last_activity = time.monotonic()

    # One attempt on the wire, driven by the loop's callbacks (the silence's timerfd sends the request, the
    # reader checks the answer's length, one timer handle bounds the wait): the bus task awaits one future
    # per attempt and wakes once, when the answer is whole or the attempt failed (docs/architecture.md,
    # "Bus engine: one wake-up per attempt").

    async def _wire(self, frame, expected, timeout, tx=None):
        """Keep the silence, send ``frame``, then read its answer of ``expected`` bytes (or its declared
        length): (answer bytes, time the request was sent, None); BusTimeout when nothing came.
        ``expected`` None (a broadcast): return once the frame is sent. With ``tx`` (a whole request, not a
        piece), a good answer is counted and handed to ``tx.future`` by the reader, and (bytes, time, its
        response PDU) is returned: the caller wakes in the same loop turn as the bus task, not one later.

        The silence: the line quiet for the inter-frame gap. After an answer cut short, the rest of it may
        still be on its way (a slave or an operating system running late): the line must then be quiet for
        a whole response timeout, so that those bytes are not taken as the start of the next answer.
        Bounded: a line that never goes quiet gets the next frame after four such timeouts (the plain gap
        is waited for as long as it takes).

        The answer: its first byte must come within ``timeout`` after the request has left; then it gets
        its own wire time (and a gap) to complete, and is returned as soon as its length is in."""
        quiet = max(self.gap, self._quiet_after_cut)
        give_up = time.monotonic() + 4 * quiet if quiet > self.gap else math.inf
        self._quiet_after_cut = 0.0
        attempt = self._attempt = _Attempt(asyncio.get_running_loop().create_future(), frame, expected,
                                           timeout, quiet, give_up, tx)
        try:
            self._on_quiet()                       # sends at once when the line is quiet already
            # A plain await of one future: a cancel (stop()) is never swallowed, even when it lands as
            # the answer completes (not asyncio.wait_for: CPython gh-86296 on 3.11).
            return await attempt.future
        finally:
            if self._attempt is attempt:           # cancelled mid-way: nothing of it may fire later
                self._end_attempt(attempt)

    def _on_quiet(self):
        """The silence's timer (or the attempt's start): send when the line has been quiet long enough, else
        look again when it may have (a byte may have come meanwhile)."""
        attempt = self._attempt
        if attempt is None or attempt.receiving:
            return
        self._drain()                              # a stray byte or two the reader was not woken for
        now = time.monotonic()
        until = min(self._last_activity + attempt.quiet, attempt.give_up)
        if until > now:
            self._timer.call_at(until, self._on_quiet)
            return
        try:
            attempt.started = time.monotonic()
            self._send(attempt.frame)
        except Exception as exc:                   # the port failed: the bus task's boundary counts it
            self._end_attempt(attempt, exc=exc)
            return
        if attempt.expected is None:
            self._end_attempt(attempt, (b"", attempt.started, None))
            return
        attempt.receiving = True
        attempt.deadline = attempt.started + self.wire_time(len(attempt.frame)) + attempt.timeout
        attempt.answer_time = self.wire_time(attempt.expected)
        self._cut_short = False
        loop = attempt.future.get_loop()
        attempt.handle = loop.call_at(attempt.deadline, self._on_deadline)

    def _on_deadline(self):
        attempt = self._attempt
        if attempt is not None and attempt.receiving:
            attempt.handle = None
            self._drain()                          # an answer cut short below ANSWER_MIN_BYTES woke no one
            self._check_answer(attempt)

    def _check_answer(self, attempt):
        """Bytes of one answer: complete at its expected (or declared) length; what came by the deadline
        (cut short), or BusTimeout when nothing did."""
        rx = self._rx
        if rx and not attempt.extended:
            attempt.deadline = max(attempt.deadline, time.monotonic() + attempt.answer_time + self.gap)
            attempt.extended = True
        if len(rx) >= 3:
            if rx[1] & 0x80:
                if len(rx) >= 5:
                    self._end_attempt(attempt, (bytes(rx[:5]), attempt.started, None))
                    return
            else:
                declared = rtu.response_length_from_header(rx)
                need = attempt.expected if declared is None else min(max(declared, 5), rtu.MAX_ADU)
                if len(rx) >= need:
                    answer = bytes(rx[:need])
                    self._end_attempt(attempt, (answer, attempt.started, self._delivered(attempt, answer)))
                    return
        if attempt.deadline <= time.monotonic():
            if rx:
                self._cut_short = True
                self._end_attempt(attempt, (bytes(rx), attempt.started, None))    # the parser names the error
            else:
                self._end_attempt(attempt, exc=BusTimeout("no answer"))
        elif attempt.handle is None:               # the deadline was moved on: wait for the new one
            attempt.handle = attempt.future.get_loop().call_at(attempt.deadline, self._on_deadline)

    def _delivered(self, attempt, answer):
        """A good answer to a whole request handed to its caller: its response PDU; None when there is no
        such request or the answer is not good (the bus task's parse then counts and names the error)."""
        tx = attempt.tx
        if tx is None or attempt.future.done():    # no such request, or the bus task is being stopped
            return None
        try:
            answered = rtu.parse_response(answer, tx.unit, tx.pdu)
        except Exception:                          # the bus task parses it again: it counts and names the error
            return None
        self._answered(self.counters[tx.unit], time.monotonic() - attempt.started)
        if not tx.future.done():
            tx.future.set_result(answered)
        return answered

    def _end_attempt(self, attempt, result=None, exc=None):
        """The attempt is over: its timers disarmed, its future told (unless the bus task gave up on it)."""
        self._attempt = None
        attempt.receiving = False
        if attempt.handle is not None:
            attempt.handle.cancel()
            attempt.handle = None
        self._timer.cancel()
        if not attempt.future.done():
            if exc is not None:
                attempt.future.set_exception(exc)
            else:
                attempt.future.set_result(result)


class _Attempt:
    """One request on the wire and the wait for its answer (``BusEngine._wire``)."""
    __slots__ = ("future", "frame", "expected", "timeout", "quiet", "give_up", "tx", "receiving", "started",
                 "deadline", "answer_time", "extended", "handle")

    def __init__(self, future, frame, expected, timeout, quiet, give_up, tx):
        self.future = future
        self.frame = frame
        self.expected = expected
        self.timeout = timeout
        self.quiet = quiet
        self.give_up = give_up
        self.tx = tx                    # the whole request whose good answer the reader hands over
        self.receiving = False
        self.started = 0.0
        self.deadline = 0.0
        self.answer_time = 0.0
        self.extended = False
        self.handle = None


def _wake_on(fd, count):
    """Ask the port's line discipline (termios VMIN, VTIME 0) to report it readable only once ``count`` bytes
    are in; False when ``fd`` is not a terminal (then every byte wakes the reader). Set once, on an idle line:
    a UART driver reprograms its line on every tcsetattr, so it is not changed per request."""
    try:
        attrs = termios.tcgetattr(fd)
        attrs[6][termios.VMIN] = count
        attrs[6][termios.VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except (termios.error, OSError):
        return False
    return True
