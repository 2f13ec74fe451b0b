"""``GET /api/status``'s answer, built once for a burst of requests (issue 19: no client stalls the loop).

The status document carries every value of every device: on the 32-meter reference site it is 308 KB of
JSON, ~8 ms to build and ~5 ms to encode, in one turn of the loop. A client asking for it back to back
(a pipelining flood, or a dozen browser tabs) spent a 13 ms turn per answer: the loop's lag was that long
and the poll cycle slowed ~10 %, although the client's budget (daemon/loopshare.py) was kept. So while the
document is asked often (BURST requests within REUSE_S, whoever asks) the encoded answer built last serves
the requests of the next REUSE_S; it is built again sooner when the gateway's clock moved other than with
time (a test's manual clock, a time synchronization) or the topology changed. A reader asking now and then
always gets a fresh document; under a burst, at most REUSE_S old (each value carries its own timestamp and
quality). The build is charged to the client whose request made it, as any turn is.
"""

import collections
import time

import bottle

from webconfig.jsonio import JSON_TYPE, reply

REUSE_S = 0.5           # how long an answer serves the requests of a burst
BURST = 4               # requests within REUSE_S that make a burst (an occasional reader is never served an old one)
CLOCK_SLACK_S = 0.05    # the gateway's clock may drift this much from the monotonic one over REUSE_S


class StatusDocument:
    """The encoded ``Door.status()``, reused within a burst of requests (see the module's docstring)."""

    def __init__(self, door, clock=time.monotonic):
        self.door, self.clock = door, clock
        self.asked = collections.deque(maxlen=BURST)
        self.answer, self.built_at, self.built_time, self.built_topology = None, None, None, None
        self.built = self.reused = 0            # counts (the bench prints them)

    def get(self):
        """The JSON text of the status document (bottle's response headers set as ``jsonio.reply`` sets them)."""
        now = self.clock()
        self.asked.append(now)
        if self._reusable(now):
            self.reused += 1
            return reply_text(self.answer)
        door = self.door
        self.built_time, self.built_topology = door.time(), door.topology_version()
        self.answer, self.built_at = reply(door.status()), now
        self.built += 1
        return self.answer

    def _reusable(self, now):
        if self.answer is None or len(self.asked) < BURST or now - self.asked[0] >= REUSE_S:
            return False
        age = now - self.built_at
        if not 0 <= age < REUSE_S or self.door.topology_version() != self.built_topology:
            return False
        return abs((self.door.time() - self.built_time) - age) <= CLOCK_SLACK_S


def reply_text(text):
    """``jsonio.reply``'s headers for an already encoded answer."""
    bottle.response.status = 200
    bottle.response.content_type = JSON_TYPE
    bottle.response.set_header("Cache-Control", "no-store")
    return text
