"""How much the BACnet port lets in: token buckets, and the queue where paced requests wait their turn.

A request's cost is the work it asks for (``transport.py`` says in which
units). When the budget is spent, requests wait per *host* and are served in
deficit round robin: at each turn a waiting host is granted a quantum of
work and is served while its grant covers its next request. So every host
that waits gets the same share of the work, whether it asks for one value
per request or for hundreds, and however many source ports it uses. As in
FQ-CoDel, a host that had nothing waiting starts at the head of the round
with one quantum: an occasional cheap request is served next, not after a
turn of every busy host.
"""

from collections import deque


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate, burst, now):
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def refill(self, now):
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now, cost=1.0):
        """Pay ``cost`` if the bucket holds it (a cost above the burst needs a full bucket and leaves a debt)."""
        self.refill(now)
        if self.tokens >= min(cost, self.burst):
            self.tokens -= cost
            return True
        return False

    def wait(self, cost):
        """Seconds until the bucket holds ``cost`` (or is full), as of its last refill."""
        return max(0.0, min(cost, self.burst) - self.tokens) / self.rate


class FairQueue:
    """Paced requests waiting per host (at most ``per_host`` each, ``total`` in all), in deficit round robin.

    ``deficit_cap`` bounds the grant a request needs (its cost above it is
    still paid from the budget), so a very expensive request waits a few
    turns, not thousands.
    """

    def __init__(self, quantum, per_host, total, deficit_cap):
        self.quantum, self.per_host, self.total, self.deficit_cap = quantum, per_host, total, deficit_cap
        self.queues = {}            # host -> deque of (cost, item)
        self.ring = deque()         # hosts with requests waiting, the one whose turn it is first
        self.deficit = {}           # host -> work granted and not yet used
        self.size = 0
        self.evicted = 0            # requests dropped from a longer queue to make room for another host's

    def __len__(self):
        return self.size

    def push(self, host, cost, item):
        """Queue ``item``; False (nothing queued) when the host's share is full, or when the queue is full and
        no host has more waiting than this one (else that host's newest request makes room: many hosts
        flooding together cannot keep a quiet one out)."""
        queue = self.queues.get(host)
        waiting = len(queue) if queue is not None else 0
        if waiting >= self.per_host:
            return False
        if self.size >= self.total:
            longest = max(self.queues, key=lambda h: len(self.queues[h]))
            if len(self.queues[longest]) <= waiting + 1:
                return False
            self.queues[longest].pop()
            self.size -= 1
            self.evicted += 1
        if queue is None:                                   # a host that had nothing waiting goes first,
            queue = self.queues[host] = deque()             # with one quantum: a quiet reader's cheap request
            self.ring.appendleft(host)                      # does not wait for a round of the busy hosts
            self.deficit[host] = self.quantum
        queue.append((cost, item))
        self.size += 1
        return True

    def head_cost(self):
        """The cost of the request served next if the budget allows (None when nothing waits)."""
        return self.queues[self.ring[0]][0][0] if self.ring else None

    def pop(self, pay):
        """The next request in turn, once ``pay(cost)`` accepted its cost; None when nothing waits or the
        budget cannot pay (the request keeps its turn)."""
        while self.ring:
            host = self.ring[0]
            queue = self.queues[host]
            cost, item = queue[0]
            if self.deficit[host] < min(cost, self.deficit_cap):
                self.deficit[host] += self.quantum          # its turn: a quantum more, then the next host
                self.ring.rotate(-1)
                continue
            if not pay(cost):
                return None
            queue.popleft()
            self.size -= 1
            self.deficit[host] = max(0, self.deficit[host] - cost)
            if not queue:                                   # an idle host keeps no credit
                del self.queues[host], self.deficit[host]
                self.ring.popleft()
            return item
        return None

    def clear(self):
        self.queues.clear()
        self.ring.clear()
        self.deficit.clear()
        self.size = 0
