"""A front end's share of the event loop's time: a budget per client, within one for all its clients.

Closed-loop clients send a request as soon as the previous one is answered, so however fast the server,
enough of them keep the loop busy all the time, and the buses' I/O (and, on the simulated board, the
meters' threads waiting for the interpreter) waits behind them: the poll cycle slowed by 13-25 % under
32 Modbus TCP clients, and by 60 % under 3,000 pipelined HTTP status requests, each served in its own
turn. Each turn is charged what it took to two token buckets of loop time: its client's (an IP address:
a client opening many connections or source ports is still one) filled at CLIENT_SHARE, and the
service's, filled at LOOP_SHARE. Once either credit is spent (one expensive request may overdraw it)
the client's turns wait until it is earned back, the loop sleeps in its selector meanwhile and
everything else runs at once; other clients, within their own credit, are served meanwhile. So one
client flooding a protocol as fast as it can gets at most CLIENT_SHARE of the loop, never the time of
the others, and all of them together at most LOOP_SHARE. Waiting clients resume in turn (the one that
waited longest first), each with its own turns in order. The one mechanism of every northbound server
(Modbus TCP, SNMP, BACnet, HTTP); a UDP server drops or queues what arrives over a client's credit.
"""

import asyncio
import time

from daemon.runtime import finetimer

LOOP_SHARE = 0.5                       # of the loop's time one front end's clients may take together, at most...
CLIENT_SHARE = 0.4                     # ...and one client alone: a flood leaves the others room at once
# SNMP's: a manager walks lock-step (GETBULK, then the next), our turn longer than its own, so it sat at 0.4
# and was held hundreds of times a run (walk 0.55 x snmpd's rate); at 0.5 it was held once, walked at 0.75 x,
# and a flood's datagrams over it are dropped at ~1.5 us each: the poll cycle unchanged (bench/RESULTS.md)
SNMP_CLIENT_SHARE = 0.5
SHARE_BURST_S = 0.001                  # credit is kept up to about this much (the buses wait at most about a burst)
MAX_CLIENTS = 4096                     # buckets kept; past it, those of idle clients (full credit) are forgotten
# A turn is timed by the clock: when the machine deschedules the process in the middle of one, the pause
# is not the client's doing; charged whole, a 1 s pause would silence its client for 2.5 s (lock-step
# supervisors time out). Charged at most this, a genuinely expensive turn still waits its share.
MAX_CHARGE_S = 0.02
TOTAL_BURSTS = 4                       # the service's bucket holds a few bursts: the clients' own buckets split it
# A client whose own credit is full has spent nothing lately: the service's credit was spent by others (one
# flooder's 13 ms turn overdraws it for ~20 ms, and a quiet HTTP client waited 40-66 ms behind it: the flood's
# turns resumed first and spent it again). Such a client goes ahead on a reserve of its own, filled at this rate
# (its turn is still charged to the service's credit: the busy clients wait for it), so all clients together
# stay within LOOP_SHARE over time and within LOOP_SHARE + QUIET_SHARE over any burst.
QUIET_SHARE = 0.1
ACTIVE_S = 0.1                         # a client served within this is busy: LOOP_SHARE is split among the busy


class _Bucket:
    __slots__ = ("rate", "burst", "credit", "at", "spent_at", "on_reserve")

    def __init__(self, rate, burst, now):
        self.rate, self.burst, self.credit, self.at, self.spent_at = rate, burst, burst, now, now
        self.on_reserve = False             # its turn now was let through on the quiet clients' reserve

    def refill(self, now):
        if now > self.at:
            self.credit = min(self.burst, self.credit + (now - self.at) * self.rate)
            self.at = now
        return self.credit

    def ready_at(self):
        """When the credit is back to zero (it is never spent below zero by more than one turn)."""
        return self.at - self.credit / self.rate if self.credit < 0 else self.at


class LoopShare:
    """The loop time one service's clients may spend, each and all together (see the module's docstring)."""

    MARGIN_S = 0.0001                   # timers may fire a clock tick early: resume a little after the credit

    def __init__(self, share=LOOP_SHARE, client_share=CLIENT_SHARE, burst=SHARE_BURST_S, clock=time.monotonic):
        self.share, self.client_share, self.burst, self.clock = share, client_share, burst, clock
        self.total = _Bucket(share, TOTAL_BURSTS * burst, clock())
        self.reserve = _Bucket(QUIET_SHARE, TOTAL_BURSTS * burst, clock())     # the quiet clients' (QUIET_SHARE)
        self.clients = {}                   # client -> _Bucket
        self._client_rate, self._counted_at = client_share, float("-inf")
        self.waiting = {}                   # client -> [turns], in the order the clients started waiting
        self._timer = None
        self.deferred = 0                   # turns that waited for credit (status)
        self.limited = 0                    # times a client's own credit was what it lacked (status)
        self.queued = 0                     # turns waiting now
        self.evicted = 0                    # turns dropped to make room for another client's (defer)
        self.quiet_turns = 0                # turns let through on the reserve while the service's credit was spent

    def _bucket(self, client, now):
        bucket = self.clients.get(client)
        if bucket is None:
            if len(self.clients) >= MAX_CLIENTS:
                self._forget_idle(now)
            bucket = self.clients[client] = _Bucket(self.client_share, self.burst, now)
        return bucket

    def _forget_idle(self, now):
        for key in [k for k, b in self.clients.items() if k not in self.waiting and b.refill(now) >= b.burst]:
            del self.clients[key]
        if len(self.clients) >= MAX_CLIENTS:            # spoofed sources, all recently served: start afresh
            for key in [k for k in self.clients if k not in self.waiting]:
                del self.clients[key]

    def _rate(self, now):
        """Each client's rate: CLIENT_SHARE, or an equal part of LOOP_SHARE when more are busy (counted every
        tenth of ACTIVE_S)."""
        if now - self._counted_at >= ACTIVE_S / 10:
            busy = sum(1 for b in self.clients.values() if now - b.spent_at < ACTIVE_S)
            self._client_rate = min(self.client_share, self.share / max(1, busy))
            self._counted_at = now
        return self._client_rate

    def allows(self, client, now=None):
        """Whether ``client`` may be served now (its credit and the service's are not spent)."""
        now = self.clock() if now is None else now
        bucket = self._bucket(client, now)
        bucket.rate = self._rate(now)
        if bucket.refill(now) < 0:
            self.limited += 1
            return False
        return self._admits(bucket, now)

    def _admits(self, bucket, now):
        """Whether the service's credit lets a client with credit of its own in: yes while it lasts, and a
        quiet client (its own credit full) on the reserve while that lasts (see QUIET_SHARE)."""
        bucket.on_reserve = False
        if self.total.refill(now) >= 0:
            return True
        if bucket.credit >= bucket.burst and self.reserve.refill(now) >= 0:
            bucket.on_reserve = True
            self.quiet_turns += 1
            return True
        return False

    def charge(self, client, seconds):
        """What serving ``client`` took of the loop (at most MAX_CHARGE_S: see there)."""
        seconds = min(seconds, MAX_CHARGE_S)
        self.total.credit -= seconds
        bucket = self.clients.get(client)
        if bucket is not None:
            bucket.credit -= seconds
            bucket.spent_at = bucket.at
            if bucket.on_reserve:
                self.reserve.credit -= seconds

    def ready_at(self, client):
        """When ``client`` may be served again (loop clock of ``clock``), as of the last refill."""
        bucket = self.clients.get(client)
        own = bucket.ready_at() if bucket is not None else 0.0
        return max(own, self.total.ready_at())

    def wait(self, client, turn):
        """Call ``turn`` once ``client`` may be served again."""
        self.deferred += 1
        self.queued += 1
        self.waiting.setdefault(client, []).append(turn)
        self._arm()

    def defer(self, client, turn, per_client, total):
        """``wait`` for a datagram server: at most ``per_client`` turns of one client and ``total`` in all wait
        (False: refused, nothing waits). When all places are taken, the newest turn of the client with most
        waiting makes room for a client with fewer (many clients flooding together cannot keep a quiet one out)."""
        waiting = len(self.waiting.get(client, ()))
        if waiting >= per_client:
            return False
        if self.queued >= total:
            longest = max(self.waiting, key=lambda c: len(self.waiting[c]))
            if len(self.waiting[longest]) <= waiting + 1:
                return False
            self.waiting[longest].pop()
            if not self.waiting[longest]:
                del self.waiting[longest]
            self.queued -= 1
            self.evicted += 1
        self.wait(client, turn)
        return True

    def clear(self):
        """Forget every waiting turn (the service closes)."""
        self.waiting.clear()
        self.queued = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self):
        if self._timer is not None or not self.waiting:
            return
        when = min(self.ready_at(c) for c in self.waiting) + self.MARGIN_S
        loop = asyncio.get_running_loop()
        # On the monotonic clock, a timerfd wakes the waiting turns on time: the loop's own timers round up
        # to whole milliseconds, and a lock-step client that overdrew its credit by 0.1 ms waited 1 ms
        fine = finetimer.scheduler(loop) if self.clock is time.monotonic else None
        if fine is not None:
            self._timer = fine.call_at(when, self._resume)
        else:
            self._timer = loop.call_at(loop.time() + max(0.0, when - self.clock()), self._resume)

    def _resume(self):
        self._timer = None
        loop = asyncio.get_running_loop()
        now = self.clock()
        for client in list(self.waiting):       # one turn each, in turn: the next once it has run and paid
            bucket = self._bucket(client, now)
            if bucket.refill(now) >= 0 and self._admits(bucket, now):
                turns = self.waiting.pop(client)
                loop.call_soon(turns.pop(0))
                self.queued -= 1
                if turns:
                    self.waiting[client] = turns
        self._arm()

    async def ready(self, client):
        """Wait until ``client`` may be served (for front ends written with tasks rather than callbacks)."""
        while not self.allows(client):
            done = asyncio.get_running_loop().create_future()
            self.wait(client, lambda done=done: done.done() or done.set_result(None))
            await done

    def status(self):
        return {"turns_deferred": self.deferred, "client_limited": self.limited, "clients": len(self.clients),
                "turns_evicted": self.evicted, "quiet_turns": self.quiet_turns}
