"""The RTU master's wait for an answer, driven by the loop's callbacks (daemon/runtime/bus.py ``_wire``).

One future per attempt, resolved by the silence's timer, the reader and the deadline's handle: the answer's
first byte within the response timeout, then its own wire time to complete (the deadline moved on); a stop
during any part of the wait ends it at once, leaves nothing armed, and is never swallowed, not even when it
lands as the answer completes (CPython gh-86296 swallowed it in asyncio.wait_for, and stop() hung).
"""

import asyncio
import os
import struct
import types

from hand_slave import HandSlave, crc16, master_and_slave

from daemon.runtime.bus import POLL, BusTimeout

UNIT = 5
WORDS = 125                 # the longest read: its answer (255 bytes) holds a 38400-baud line ~66 ms
STOP_BOUND_S = 5.0          # a stop that hangs fails the test instead of the run


def read_request(words=WORDS):
    return struct.pack(">BHH", 3, 0x0200, words)


def answer(words=WORDS):
    body = bytes((UNIT, 3, 2 * words)) + struct.pack(">%dH" % words, *range(words))
    return body + crc16(body)


class SplitSlave(HandSlave):
    """Answers the first request in two pieces: its first byte ``first_after`` s after the request, the rest
    ``rest_after`` s after that; later requests at once."""

    def __init__(self, fd, first_after, rest_after):
        super().__init__(fd)
        self.first_after, self.rest_after = first_after, rest_after

    def serve(self, request):
        frame = answer()
        if self.requests == 1:
            if self.stopping.wait(self.first_after):
                return False
            os.write(self.fd, frame[:1])
            if self.stopping.wait(self.rest_after):
                return False
        os.write(self.fd, frame[1:] if self.requests == 1 else frame)
        return True


class SilentSlave(HandSlave):
    """Counts the requests, answers none."""

    def serve(self, request):
        return True


class QuickSlave(HandSlave):
    def serve(self, request):
        os.write(self.fd, answer(2))
        return True


def test_an_answer_in_two_pieces_across_the_first_byte_deadline_is_read_whole():
    # 100 ms timeout: the first byte must come by ~102 ms after the request (it comes at ~90 ms), the rest then
    # gets the answer's wire time (~66 ms at 38400 baud) and a gap: it comes at ~135 ms, past the first
    # deadline, within the extended one. A wait that kept the first deadline would cut it short and retry.
    async def scenario():
        async with master_and_slave(lambda fd: SplitSlave(fd, 0.090, 0.045)) as (engine, slave):
            pdu = await engine.request(UNIT, read_request(), POLL)
            return pdu, engine.counters[UNIT].as_dict(), slave.requests
    pdu, counters, requests = asyncio.run(scenario())
    assert pdu == answer()[1:-2]
    assert counters["requests"] == 1 and requests == 1 and counters["answers"] == 1
    assert counters["crc_errors"] == counters["frame_errors"] == counters["timeouts"] == 0


async def until(predicate, turns=2000):
    for _ in range(turns):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("never came")


def stopped_state(engine, future):
    """What a stop must leave: the request failed as stopped, no attempt on the wire, no timer armed."""
    exc = future.exception() if future.done() and not future.cancelled() else None
    return (type(exc), str(exc), engine._attempt, engine._timer._callback)


def test_a_stop_while_waiting_for_an_answer_ends_the_wait_and_leaves_nothing_armed():
    async def scenario():
        async with master_and_slave(SilentSlave) as (engine, slave):
            future = engine.submit(UNIT, read_request(2), POLL, timeout=30.0)     # would wait 30 s
            await until(lambda: slave.requests == 1 and engine._attempt is not None and engine._attempt.receiving)
            await asyncio.wait_for(engine.stop(), STOP_BOUND_S)
            await asyncio.sleep(0)
            return stopped_state(engine, future), slave.requests
    state, requests = asyncio.run(scenario())
    assert state == (BusTimeout, "bus stopped", None, None)
    assert requests == 1


def test_a_stop_during_the_silence_sends_nothing_and_leaves_nothing_armed():
    async def scenario():
        async with master_and_slave(SilentSlave) as (engine, slave):
            engine._quiet_after_cut = 10.0         # as after an answer cut short: a long quiet line first
            engine._last_activity = asyncio.get_running_loop().time()
            future = engine.submit(UNIT, read_request(2), POLL)
            await until(lambda: engine._attempt is not None and engine._timer._callback is not None)
            await asyncio.wait_for(engine.stop(), STOP_BOUND_S)
            await asyncio.sleep(0.01)
            return stopped_state(engine, future), slave.requests
    state, requests = asyncio.run(scenario())
    assert state == (BusTimeout, "bus stopped", None, None)
    assert requests == 0                           # the request never went on the wire


def test_a_stop_landing_as_the_answer_completes_is_not_swallowed():
    # The bus task is cancelled in the very callback that completes the answer (the future is resolved, the
    # task not yet woken): the cancel must still end the task, so stop() returns.
    async def scenario():
        async with master_and_slave(QuickSlave) as (engine, slave):
            end_attempt = engine._end_attempt
            cancels = []

            def end_then_cancel(attempt, result=None, exc=None):
                end_attempt(attempt, result, exc)
                if result is not None and not cancels:
                    cancels.append(engine._task._task.cancel())
            engine._end_attempt = end_then_cancel
            future = engine.submit(UNIT, read_request(2), POLL)
            await until(lambda: cancels)
            await asyncio.wait_for(engine.stop(), STOP_BOUND_S)
            return cancels, engine._task._task.cancelled(), future.done(), slave.requests
    cancels, cancelled, done, requests = asyncio.run(scenario())
    assert cancels == [True] and cancelled and done
    assert requests == 1


@types.coroutine
def suspensions_of(coro, counter):
    """Drive ``coro`` as the task would, counting the times it suspends (each one a wake-up of the task)."""
    value, error = None, None
    while True:
        try:
            yielded = coro.throw(error) if error is not None else coro.send(value)
        except StopIteration as stop:
            return stop.value
        counter.append(yielded)
        try:
            value, error = (yield yielded), None
        except BaseException as exc:            # a cancel: handed on to the coroutine
            value, error = None, exc


def test_back_to_back_reads_suspend_the_bus_task_once_per_attempt():
    # The silence, the request's write and the answer's bytes are the loop's callbacks: the bus task waits on
    # one future per attempt (before: the silence's timer, then the answer's first byte and its rest).
    async def scenario():
        async with master_and_slave(QuickSlave) as (engine, slave):
            suspensions, calls = [], []
            wire = engine._wire

            def counted(*args):
                calls.append(args)
                return suspensions_of(wire(*args), suspensions)
            engine._wire = counted
            answers = await asyncio.gather(*[engine.submit(UNIT, read_request(2), POLL) for _ in range(20)])
            return answers, len(calls), len(suspensions), engine.counters[UNIT].as_dict()
    answers, attempts, suspensions, counters = asyncio.run(scenario())
    assert answers == [answer(2)[1:-2]] * 20
    assert attempts == 20 and counters["requests"] == 20 and counters["timeouts"] == 0
    assert suspensions == attempts


class BadCrcOnceSlave(HandSlave):
    """Its first answer has a wrong CRC, the others are good."""

    def serve(self, request):
        frame = answer(2)
        os.write(self.fd, frame[:-1] + bytes((frame[-1] ^ 0xFF,)) if self.requests == 1 else frame)
        return True


def test_a_good_answer_reaches_its_caller_from_the_reader_a_bad_one_through_the_bus_task():
    # The reader parses a whole answer: a good one is counted and handed to the request's future before the
    # bus task wakes (its caller then wakes in the same turn); a bad one (CRC) goes back to the bus task,
    # which counts it and retries.
    async def scenario():
        async with master_and_slave(BadCrcOnceSlave) as (engine, slave):
            end_attempt = engine._end_attempt
            handed = []

            def recorded(attempt, result=None, exc=None):
                handed.append(attempt.tx.future.done())
                end_attempt(attempt, result, exc)
            engine._end_attempt = recorded
            first = await engine.request(UNIT, read_request(2), POLL)
            second = await engine.request(UNIT, read_request(2), POLL)
            return first, second, handed, engine.counters[UNIT].as_dict()
    first, second, handed, counters = asyncio.run(scenario())
    assert first == second == answer(2)[1:-2]
    assert handed == [False, True, True]          # the bad answer, its retry's, the second request's
    assert counters["crc_errors"] == 1 and counters["requests"] == 3 and counters["answers"] == 2
