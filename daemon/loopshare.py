"""A front end's share of the event loop's time (one token bucket per service).

Closed-loop clients send a request as soon as the previous one is answered, so however fast the server,
enough of them keep the loop busy all the time, and the buses' I/O (and, on the simulated board, the
meters' threads waiting for the interpreter) waits behind them: the poll cycle slowed by 13-25 % under
32 Modbus TCP clients, and by 60 % under 3,000 pipelined HTTP status requests, each served in its own
turn. Each turn is charged what it took; once the credit is spent (one expensive request may overdraw
it) turns wait until it is earned back, the loop sleeps in its selector meanwhile and everything else
runs at once. Waiting turns resume in order.
"""

import asyncio
import collections
import time

LOOP_SHARE = 0.5                       # of the loop's time one front end's clients may take together, at most...
SHARE_BURST_S = 0.001                  # ...in bursts of about this much (the buses wait at most about a burst)


class LoopShare:
    """The loop time all of one service's connections together may spend serving: a token bucket filled
    at LOOP_SHARE, charged what each turn took (see the module's docstring)."""

    MARGIN_S = 0.0001                   # timers may fire a clock tick early: resume a little after the credit

    def __init__(self, share=LOOP_SHARE, burst=SHARE_BURST_S):
        self.share, self.burst = share, burst
        self.credit, self.at = burst, 0.0
        self.waiting = collections.deque()
        self._timer = None
        self.deferred = 0                   # turns that waited for credit (status)

    def allows(self, now):
        self.credit = min(self.burst, self.credit + (now - self.at) * self.share)
        self.at = now
        return self.credit >= 0

    def charge(self, seconds):
        self.credit -= seconds

    def wait(self, turn):
        """Call ``turn`` (a connection's) once the credit is earned back."""
        self.deferred += 1
        self.waiting.append(turn)
        if self._timer is None:
            when = self.at - self.credit / self.share + self.MARGIN_S
            self._timer = asyncio.get_running_loop().call_at(when, self._resume)

    def _resume(self):
        self._timer = None
        loop = asyncio.get_running_loop()
        waiting, self.waiting = self.waiting, collections.deque()
        for turn in waiting:
            loop.call_soon(turn)

    async def ready(self):
        """Wait until one more turn is allowed (for front ends written with tasks rather than callbacks)."""
        while not self.allows(time.monotonic()):
            done = asyncio.get_running_loop().create_future()
            self.wait(lambda: done.done() or done.set_result(None))
            await done
