"""The answer's first bytes kept from the loop (daemon/runtime/bus.py ANSWER_MIN_BYTES).

The master asks the port's line discipline (termios VMIN) to report it readable only once 5 bytes are in:
the shortest answer a Modbus RTU slave sends is an exception (address, function, code, CRC: Modbus over
serial line V1.02 §2.5.1 and the application protocol V1.1b3 §7). An answer that arrives in pieces (a UART
hands over what its FIFO holds; the simulated meters send the first byte, then the rest) then wakes the
gateway's loop once, not once per piece. What it must not cost: an exception answer still comes through the
reader (not at the deadline), an answer cut short below 5 bytes is still seen as cut short (not as silence),
and stray bytes on an idle line are still read before the next request, not taken as its answer's start.

The slave is tests/hand_slave.py's, on a real pseudo-terminal, with its own CRC.
"""

import asyncio
import os
import struct
import time

import pytest

from daemon.runtime import bus
from daemon.runtime.bus import POLL, BusGarbled
from hand_slave import HandSlave, crc16, master_and_slave

UNIT = 7


def read_request(count=2):
    return struct.pack(">BHH", 3, 0x0100, count)


def answer(count, serial):
    body = bytes((UNIT, 3, 2 * count)) + struct.pack(">%dH" % count, *((serial + i) & 0xFFFF for i in range(count)))
    return body + crc16(body)


class PieceSlave(HandSlave):
    """Answers each read in pieces: the bytes at ``cuts`` each after a pause of 3 ms (a slow UART, a meter
    that sends its first byte early); ``stray`` bytes of noise are sent on the idle line before the answer
    to the ``stray_before``-th request, long enough before it for the line to be quiet again."""

    def __init__(self, fd, cuts=(1, 3), stray=b"", stray_before=None, count=2):
        super().__init__(fd)
        self.cuts, self.stray, self.stray_before, self.count = cuts, stray, stray_before, count

    def serve(self, request):
        frame = answer(self.count, self.requests)
        start = 0
        for cut in self.cuts + (len(frame),):
            os.write(self.fd, frame[start:cut])
            start = cut
            time.sleep(0.003)
        if self.stray and self.requests + 1 == self.stray_before:
            time.sleep(0.010)
            os.write(self.fd, self.stray)


class ExceptionSlave(HandSlave):
    """Answers every request with exception 02 (illegal data address): 5 bytes, the shortest answer."""

    def serve(self, request):
        body = bytes((UNIT, request[1] | 0x80, 2))
        os.write(self.fd, body + crc16(body))


class ShortSlave(HandSlave):
    """Sends only the first 3 bytes of each answer: cut short below ANSWER_MIN_BYTES."""

    def serve(self, request):
        os.write(self.fd, answer(2, self.requests)[:3])


def counting(monkeypatch):
    """Counts the reader's and the deadline's calls on every BusEngine (patched before the engine starts)."""
    calls = {"reader": 0, "deadline": 0}
    reader, deadline = bus.BusEngine._on_readable, bus.BusEngine._on_deadline

    def on_readable(self):
        calls["reader"] += 1
        return reader(self)

    def on_deadline(self):
        calls["deadline"] += 1
        return deadline(self)
    monkeypatch.setattr(bus.BusEngine, "_on_readable", on_readable)
    monkeypatch.setattr(bus.BusEngine, "_on_deadline", on_deadline)
    return calls


def run_reads(make_slave, n, pause=0.0):
    """``n`` reads one after the other, ``pause`` seconds of idle line after each."""
    async def scenario():
        async with master_and_slave(make_slave) as (engine, slave):
            answers = []
            for _ in range(n):
                answers.append(await engine.request(UNIT, read_request(), POLL))
                await asyncio.sleep(pause)
            return answers, engine.counters[UNIT].as_dict(), engine.wakes_on_min_bytes
    return asyncio.run(scenario())


@pytest.mark.parametrize("vmin", [True, False], ids=["min-bytes", "control-every-byte"])
def test_an_answer_in_three_pieces_wakes_the_reader_once(monkeypatch, vmin):
    """The control (the port left to wake on every byte, as before) shows the count can fail: three pieces,
    three wake-ups."""
    if not vmin:
        monkeypatch.setattr(bus, "_wake_on", lambda fd, count: False)
    calls = counting(monkeypatch)
    answers, counters, wakes_on_min = run_reads(lambda fd: PieceSlave(fd, cuts=(1, 3)), 6)
    assert answers == [answer(2, n)[1:-2] for n in range(1, 7)]
    assert counters["answers"] == 6 and counters["timeouts"] == counters["crc_errors"] == 0
    assert wakes_on_min is vmin
    # pieces of 1, 2 and 6 bytes: with VMIN 5 only the whole answer (9 bytes in) wakes the reader
    assert calls["reader"] == (6 if vmin else 18)
    assert calls["deadline"] == 0


def test_an_exception_answer_of_five_bytes_comes_through_the_reader(monkeypatch):
    calls = counting(monkeypatch)

    async def scenario():
        async with master_and_slave(ExceptionSlave) as (engine, slave):
            errors = []
            for _ in range(3):
                with pytest.raises(bus.rtu.ModbusException) as caught:
                    await engine.request(UNIT, read_request(), POLL)
                errors.append(caught.value.code)
            return errors, engine.counters[UNIT].as_dict()
    errors, counters = asyncio.run(scenario())
    assert errors == [2, 2, 2] and counters["exceptions"] == 3 and counters["timeouts"] == 0
    assert calls["reader"] == 3 and calls["deadline"] == 0      # woken by the 5 bytes, not by the deadline


def test_an_answer_cut_short_below_five_bytes_is_seen_at_the_deadline_as_cut_short(monkeypatch):
    calls = counting(monkeypatch)

    async def scenario():
        async with master_and_slave(ShortSlave) as (engine, slave):
            with pytest.raises(BusGarbled):
                await engine.request(UNIT, read_request(), POLL)
            return engine.counters[UNIT].as_dict(), slave.requests
    counters, requests = asyncio.run(scenario())
    # each attempt (the first and its retry) read its 3 bytes at the deadline: a frame error, not silence
    assert requests == 2 and counters["frame_errors"] == 2 and counters["timeouts"] == 0
    assert calls["reader"] == 0 and calls["deadline"] >= 2


def test_stray_bytes_on_the_idle_line_are_read_before_the_next_request_not_taken_as_its_answer(monkeypatch):
    """Two bytes of noise 10 ms after the 2nd answer, on a line left idle for 60 ms: too few to wake the
    reader. The silence before the 3rd request reads them (and starts again from them), so the 3rd answer is
    read alone: no CRC or frame error, no retry. Left in the port, they would make the 3rd answer's start
    (0x00 0xFF: an exception from unit 0) and cost a frame error and a retry."""
    answers, counters, _ = run_reads(lambda fd: PieceSlave(fd, cuts=(), stray=b"\x00\xff", stray_before=3), 4,
                                     pause=0.060)
    assert answers == [answer(2, n)[1:-2] for n in range(1, 5)]
    assert counters["requests"] == 4 and counters["answers"] == 4
    assert counters["crc_errors"] == counters["frame_errors"] == counters["timeouts"] == 0
