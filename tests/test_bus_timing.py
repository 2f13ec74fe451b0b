"""The RTU master's receive window against a slave written here by hand, on a real pseudo-terminal.

An answer whose tail comes late (a USB adapter's latency timer, a loaded CPU) is taken whole while it
completes within the response timeout. An answer cut short past it is a counted frame error, and its
late rest must not be taken as the start of the retry's answer: the master waits for a quiet line
first (a simulated meter running late on a busy CI machine made every later answer of its bus garbled).
"""

import asyncio
import os
import struct

from hand_slave import HandSlave, crc16, master_and_slave

from daemon.runtime.bus import POLL, BusGarbled

UNIT = 7
WORDS = (0x1234, 0xBEEF, 0x0001)


class LateTailSlave(HandSlave):
    """Answers every read-holding request with WORDS: the first byte at once, the rest ``tail_delay`` later
    (only for the first ``late_answers`` answers; the others at once)."""

    def __init__(self, fd, tail_delay, late_answers):
        super().__init__(fd)
        self.tail_delay, self.late_answers = tail_delay, late_answers

    def serve(self, request):
        body = bytes((UNIT, 3, 2 * len(WORDS))) + struct.pack(">%dH" % len(WORDS), *WORDS)
        answer = body + crc16(body)
        os.write(self.fd, answer[:1])
        if self.requests <= self.late_answers and self.stopping.wait(self.tail_delay):
            return False
        os.write(self.fd, answer[1:])
        return True


def read_with_tail_delay(tail_delay, late_answers=99):
    """(outcome, engine counters, requests the slave saw): one read of 3 words through a 38400-baud master."""
    async def scenario():
        async with master_and_slave(lambda fd: LateTailSlave(fd, tail_delay, late_answers)) as (engine, slave):
            request = struct.pack(">BHH", 3, 0x0100, len(WORDS))
            try:
                outcome = await engine.request(UNIT, request, POLL)
            except BusGarbled as exc:
                outcome = exc
            return outcome, engine.counters[UNIT].as_dict(), slave.requests
    return asyncio.run(scenario())


def test_an_answer_whose_tail_comes_late_but_within_the_window_is_taken_whole():
    # 3.5 characters of gap at 38400 baud are 0.9 ms; 30 ms is far past the answer's wire time and gap,
    # well inside the 100 ms response timeout's window
    outcome, counters, requests = read_with_tail_delay(0.030)
    assert outcome == bytes((3, 6)) + struct.pack(">3H", *WORDS)
    assert counters["crc_errors"] == 0 and counters["frame_errors"] == 0 and counters["timeouts"] == 0
    assert counters["requests"] == 1 and requests == 1            # no retry was needed


def test_the_late_rest_of_an_answer_cut_short_is_not_taken_for_the_retrys_answer():
    # 150 ms: past the 100 ms window, so the first try is cut short; the rest comes while the master waits
    # for a quiet line, and the retry (answered at once) is read clean
    outcome, counters, requests = read_with_tail_delay(0.150, late_answers=1)
    assert outcome == bytes((3, 6)) + struct.pack(">3H", *WORDS)
    assert counters["crc_errors"] + counters["frame_errors"] == 1
    assert counters["requests"] == 2 and counters["answers"] == 1 and requests == 2


def test_an_answer_always_cut_short_is_a_counted_frame_error_after_its_retry():
    outcome, counters, requests = read_with_tail_delay(0.150)
    assert isinstance(outcome, BusGarbled)
    assert counters["crc_errors"] + counters["frame_errors"] == 2   # the first try and its one retry
    assert counters["requests"] == 2 and requests == 2
