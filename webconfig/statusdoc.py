"""``GET /api/status``'s answer, built once for a burst of requests and over several turns of the loop (issue 19:
no client stalls the loop).

The status document carries every value of every device: on the 32-meter reference site it is 308 KB of
JSON, ~8 ms to build and ~5 ms to encode. A client asking for it back to back (a pipelining flood, or a dozen
browser tabs) spent a 13 ms turn per answer: the loop's lag was that long and the poll cycle slowed ~10 %,
although the client's budget (daemon/loopshare.py) was kept. So while the document is asked often (BURST
requests within REUSE_S, whoever asks) the encoded answer built last serves the requests of the next REUSE_S;
it is built again sooner when the gateway's clock moved other than with time (a test's manual clock, a time
synchronization) or the topology changed. A reader asking now and then always gets a fresh document; under a
burst, at most REUSE_S old (each value carries its own timestamp and quality).

A build is charged to the client whose request made it, as any turn is, and is made in slices of about
SLICE_S (a few devices each, encoded as they come): between two slices the loop serves everyone else (a quiet
client's request, an accept, the buses), and the next slice waits for the asking client's share of the loop,
as its next request would (``webconfig.server.NEXT_TURN``). Even one such turn of 13 ms, every half second,
was what a quiet client's p99 met under a status flood. Without the server's hook (a WSGI test client) the
document is built in one go.
"""

import collections
import time

import bottle

from webconfig.jsonio import JSON_TYPE, encode, reply
from webconfig.server import DEFERRED, NEXT_TURN

REUSE_S = 0.5           # how long an answer serves the requests of a burst
BURST = 4               # requests within REUSE_S that make a burst (an occasional reader is never served an old one)
CLOCK_SLACK_S = 0.05    # the gateway's clock may drift this much from the monotonic one over REUSE_S
SLICE_S = 0.002         # of loop time per slice of a build (a device is ~0.4 ms on the reference site)
HEADERS = [("Content-Type", JSON_TYPE), ("Cache-Control", "no-store")]


class StatusDocument:
    """The encoded ``Door.status()``, reused within a burst of requests (see the module's docstring)."""

    def __init__(self, door, clock=time.monotonic):
        self.door, self.clock = door, clock
        self.asked = collections.deque(maxlen=BURST)
        self.answer, self.built_at, self.built_time, self.built_topology = None, None, None, None
        self.built = self.reused = 0            # counts (the bench prints them)
        self.slices = 0                         # turns the builds in slices took (the bench prints them)

    def get(self, environ=None):
        """The JSON text of the status document (bottle's response headers set as ``jsonio.reply`` sets them),
        or, when the request's ``environ`` comes from the loop's HTTP server, b"" with the build in slices left
        in it for the server to await."""
        now = self.clock()
        self.asked.append(now)
        if self._reusable(now):
            self.reused += 1
            return reply_text(self.answer)
        next_turn = None if environ is None else environ.get(NEXT_TURN)
        if next_turn is not None:
            environ[DEFERRED] = self._in_slices(next_turn)
            return b""
        door = self.door
        self._built(door.time(), door.topology_version(), reply(door.status()), now)
        return self.answer

    def _reusable(self, now):
        if self.answer is None or len(self.asked) < BURST or now - self.asked[0] >= REUSE_S:
            return False
        age = now - self.built_at
        if not 0 <= age < REUSE_S or self.door.topology_version() != self.built_topology:
            return False
        return abs((self.door.time() - self.built_time) - age) <= CLOCK_SLACK_S

    def _built(self, gateway_time, topology, answer, now):
        self.built_time, self.built_topology = gateway_time, topology
        self.answer, self.built_at = answer, now
        self.built += 1

    async def _in_slices(self, next_turn):
        """``(status, headers, body)`` of a fresh document, built a few devices per turn of the loop."""
        door, clock = self.door, time.monotonic
        topology, parts = door.topology_version(), []
        started = clock()
        for device in door.devices():
            if clock() - started >= SLICE_S:
                await next_turn(clock() - started)
                self.slices += 1
                started = clock()
                if door.topology_version() != topology:
                    break           # a device added or removed meanwhile: the rest in one go, below
            parts.append(encode(door.device_status(device)))
        if door.topology_version() != topology:
            text = encode(door.status())
        else:
            frame = door.status_frame(None)
            text = "{" + ",".join("%s:%s" % (encode(key), "[" + ",".join(parts) + "]" if key == "devices"
                                             else encode(value)) for key, value in frame.items()) + "}"
        self._built(door.time(), door.topology_version(), text, self.clock())
        await next_turn(clock() - started)
        return "200 OK", list(HEADERS), text.encode("utf-8")


def reply_text(text):
    """``jsonio.reply``'s headers for an already encoded answer."""
    bottle.response.status = 200
    bottle.response.content_type = JSON_TYPE
    bottle.response.set_header("Cache-Control", "no-store")
    return text
