"""Token buckets: how many discovery requests and clock changes the BACnet port lets in.

(Confirmed requests are not paced by count any more: each client has its budget of loop time,
``daemon/loopshare.py``, the mechanism every northbound server shares.)
"""


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
