"""A simulated RS485 bus: meters answering on one end of a serial line.

Runs in its own thread with blocking I/O so its timing does not depend on
the daemon's event loop. Wire timing is kept: a request of n bytes is taken
to arrive n character-times after its first byte, the meter waits its
turnaround, and the answer is released only after its own wire time. So the
master sees the same latency it would see on a real bus.
"""

import logging
import os
import select
import threading
import time

from board.simfaults import bus_delay
from core import modbus_rtu as rtu

log = logging.getLogger("board.simbus")


class SimBus:
    """Meters on one line, speaking through file descriptor ``fd``."""

    def __init__(self, fd, meters=(), baud=38400, parity="N", stop_bits=1,
                 turnaround=0.002, name="bus", seed=1):
        import random
        self.fd = fd
        self.meters = list(meters)
        self.baud = baud
        self.parity = parity
        self.stop_bits = stop_bits
        self.turnaround = turnaround
        self.name = name
        self.rng = random.Random(seed)
        self.lock = threading.RLock()
        self.stats = {"requests": 0, "bad_frames": 0, "collisions": 0, "answers": 0,
                      "corrupted": 0, "broadcasts": 0, "errors": 0}
        self._stop = threading.Event()
        self._thread = None

    # ---------------------------------------------------------------- control

    def start(self):
        self._thread = threading.Thread(target=self._run, name="simbus-" + self.name, daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def add(self, meter):
        with self.lock:
            self.meters.append(meter)

    def meter(self, address=None, netid=None):
        with self.lock:
            for m in self.meters:
                if (address is None or m.address == address) and (netid is None or m.netid == netid):
                    return m
        return None

    def char_time(self):
        return rtu.char_time(self.baud, 8, self.parity, self.stop_bits)

    # ---------------------------------------------------------------- loop

    def _run(self):
        buf = bytearray()
        arrived = 0.0          # when the first byte of what ``buf`` holds came in: the meter's clock starts there
        gap = rtu.frame_gap(self.baud, 8, self.parity, self.stop_bits)
        while not self._stop.is_set():
            timeout = gap if buf else 0.2
            try:
                ready, _, _ = select.select([self.fd], [], [], timeout)
            except (OSError, ValueError):
                return
            if not ready:
                if buf:  # silence ends a frame whose length we could not predict
                    frame = bytes(buf)
                    buf.clear()
                    self._serve_safely(frame, arrived)
                continue
            try:
                chunk = os.read(self.fd, 512)
            except OSError:
                if self._stop.is_set():
                    return
                time.sleep(0.05)
                continue
            if not chunk:
                time.sleep(0.01)
                continue
            if not buf:
                arrived = time.monotonic()
            buf.extend(chunk)
            while buf:
                frame, rest = rtu.split_request(buf)
                buf[:] = rest
                if frame is None:
                    break
                self._serve_safely(frame, arrived)
                arrived = time.monotonic()     # a next frame already in: it waited for this answer

    def _serve_safely(self, frame, arrived):
        """Serve one frame; whatever goes wrong with it (a meter given a value it cannot use), the line lives
        on for the next: the request goes unanswered and is counted in ``stats["errors"]``."""
        try:
            self._serve(frame, arrived)
        except Exception:
            self.stats["errors"] += 1
            if self.stats["errors"] == 1:          # once per bus: a meter left so answers no request at all
                log.exception("%s: a simulated meter could not answer (counted in stats['errors'] from now on)",
                              self.name)

    def _serve(self, frame, arrived):
        self.stats["requests"] += 1
        if not rtu.check_crc(frame):
            self.stats["bad_frames"] += 1
            return
        unit, pdu = rtu.parse_request(frame)
        ct = self.char_time()
        with self.lock:
            if unit == rtu.BROADCAST:
                self.stats["broadcasts"] += 1
                if pdu[0] == rtu.WRITE_MULTIPLE_REGISTERS and not rtu.validate_request_pdu(pdu):
                    _function, start, _count, words = rtu.request_fields(pdu)
                    for m in self.meters:
                        m.broadcast_write(start, words)
                return
            targets = [m for m in self.meters if m.address == unit and not m.silent and not m.muted]
            if not targets:
                return
            if len(targets) > 1:
                self.stats["collisions"] += 1
                for m in targets:
                    m.com_led = True
                answers = [rtu.add_crc(bytes((unit,)) + m.handle_pdu(pdu)) for m in targets]
                length = max(len(a) for a in answers)
                garbled = bytearray(length)
                for a in answers:
                    for i, b in enumerate(a):
                        garbled[i] |= b       # open-drain-like superposition
                answer = bytes(garbled)
                if rtu.check_crc(answer):     # identical answers would pass: break them
                    answer = answer[:-1] + bytes(((answer[-1] ^ 0x5A),))
                delay = max(bus_delay(m.extra_delay) for m in targets)
                corrupt_rate = 0.0
            else:
                m = targets[0]
                answer = rtu.add_crc(bytes((unit,)) + m.handle_pdu(pdu))
                delay = bus_delay(m.extra_delay)
                corrupt_rate = m.crc_error_rate
        if corrupt_rate and self.rng.random() < corrupt_rate:
            pos = self.rng.randrange(1, len(answer))
            answer = answer[:pos] + bytes(((answer[pos] ^ (1 << self.rng.randrange(8))),)) + answer[pos + 1:]
            self.stats["corrupted"] += 1
        # The request took len(frame) characters to arrive; the first byte of
        # the answer leaves after the turnaround, the rest len(answer)-1
        # characters later: the master sees the timing of a real line. The
        # times count from the request's arrival, so the simulator's own work
        # (decoding, building the answer, a late wake-up) is inside the
        # turnaround as a real meter's is, not added to it.
        # Waits end early when the bus stops (its descriptor is about to close).
        first_at = arrived + len(frame) * ct + self.turnaround + delay + ct
        if self._stop.wait(max(0.0, first_at - time.monotonic())):
            return
        try:
            os.write(self.fd, answer[:1])
            if self._stop.wait(max(0.0, first_at + (len(answer) - 1) * ct - time.monotonic())):
                return
            os.write(self.fd, answer[1:])
            self.stats["answers"] += 1
        except OSError:
            pass
