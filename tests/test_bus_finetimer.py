"""The inter-frame silence kept by a wake-up finer than the loop's timers (daemon/runtime/finetimer.py).

Modbus over serial line (Modbus-IDA, V1.02, §2.5.1.1): frames are separated by a silence of at least
3.5 character times, a fixed 1.75 ms above 19200 baud. The master now waits for it on a timerfd instead
of the loop's whole-millisecond timers: it must still never send early, and never wake too soon.
"""

import asyncio
import os
import struct
import time

from daemon.runtime import finetimer
from daemon.runtime.bus import POLL
from hand_slave import HandSlave, crc16, master_and_slave

UNIT = 9
T35 = 0.00175          # the standard's fixed silence above 19200 baud


class QuickSlave(HandSlave):
    """Answers each read-holding request at once with 2 words; keeps the silence before every request
    after its first: from the write of its last answer to the read of the next request."""

    def __init__(self, fd):
        super().__init__(fd)
        self.silences, self._answered = [], None

    def serve(self, request):
        if self._answered is not None:
            self.silences.append(time.monotonic() - self._answered)
        body = bytes((UNIT, 3, 4)) + struct.pack(">2H", self.requests, 0xCAFE)
        # The silence starts before the write: the master cannot read the answer before it is written, so a
        # slave thread descheduled after its write (a loaded machine) cannot shorten the silence it measures
        # below the master's own (last byte read to next request sent). Taken after the write, such a pause
        # made this test fail on a loaded machine with the master right.
        self._answered = time.monotonic()
        os.write(self.fd, body + crc16(body))


def test_a_callback_never_runs_early_and_a_cancelled_one_never_runs():
    async def scenario():
        timer = finetimer.FineTimer()
        timer.open()
        loop = asyncio.get_running_loop()
        try:
            early = 0
            for _ in range(20):
                when = time.monotonic() + 0.0015
                fired = loop.create_future()
                timer.call_at(when, lambda fired=fired: fired.set_result(time.monotonic()))
                early += await fired < when
            before = timer.wakeups
            ran = []
            timer.call_at(time.monotonic() + 0.002, lambda: ran.append(1))
            timer.cancel()
            await asyncio.sleep(0.02)
            return early, before, timer.wakeups, ran
        finally:
            timer.close()
    early, before, after, ran = asyncio.run(scenario())
    assert early == 0
    assert ran == [] and after == before          # cancelled: disarmed, nothing called
    if finetimer._LIBC is not None:              # Linux: every callback run by the timerfd
        assert before == 20


def test_back_to_back_reads_keep_the_silence_and_answer_right():
    async def scenario():
        async with master_and_slave(QuickSlave) as (engine, slave):
            request = struct.pack(">BHH", 3, 0x0100, 2)
            futures = [engine.submit(UNIT, request, POLL) for _ in range(12)]     # queued at once: back to back
            answers = await asyncio.gather(*futures)
            return answers, engine.counters[UNIT].as_dict(), slave.requests, list(slave.silences)
    answers, counters, requests, silences = asyncio.run(scenario())
    assert [struct.unpack(">2H", a[2:]) for a in answers] == [(n, 0xCAFE) for n in range(1, 13)]
    assert counters["requests"] == 12 and requests == 12 and counters["timeouts"] == 0
    assert len(silences) == 11 and min(silences) >= T35           # never a frame before the silence
