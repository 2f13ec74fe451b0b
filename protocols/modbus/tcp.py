"""Modbus TCP server/gateway on asyncio (SPEC §3.1).

Our own server rather than pymodbus's: the gateway needs per-request routing
(gateway table, cache, or the bus), exact exception codes 0A/0B, a hard cap
on connections with a clean refusal of the next one, and bounded time for a
frame to arrive (slowloris). The PDU rules are the shared pure codec's.

Framing errors a client cannot recover from (protocol id != 0, MBAP length
outside 2..254) close that connection; well-framed but invalid requests get
their exception. Requests on one connection are answered in order.

Fairness and bounds (SPEC §11). Each connection is a protocol object, not a task: most requests
(the gateway table, the cache, every refusal) are answered in the callback that parsed them, and a
connection is served one frame per turn of the loop, so thousands of frames pipelined in one send are
served in turn with every other client and with the buses; each client (an address) takes at most
CLIENT_SHARE of the loop's time and all of them together at most LOOP_SHARE (``LoopShare``), so greedy
clients cannot slow the poll cycle nor the answers to the others. One request per
connection is in flight: while a request waits for a bus (pass-through, writes) the next is not parsed,
and past READ_BUFFER_BYTES of unparsed input the socket is not read at all (the client's TCP window closes).
A connection whose answers pile up past WRITE_BUFFER_HIGH unsent bytes is not served until its client
reads them; one stalled for ``modbus.idle_timeout_s`` is closed, as is one that stays silent that long.
A frame must be whole within FRAME_TIMEOUT of its first byte (a length field that lies, a slowloris).

Connections (SPEC §3.1: at most ``modbus.max_connections``, fitted under the descriptor limit by
daemon/limits.py; at most MAX_PER_ADDRESS from one client address, so one host cannot take every
place). A newcomer from an address at its cap takes the place of that address's connection that has
waited longest for a request (a host that rebooted must not wait for its dead connections to time out);
it never displaces another host's connection: when the server is full the newcomer is refused, as
SPEC §3.1 says, closed as it is accepted, before any buffer is spent on it, and idle connections make
room by timing out. Refusals and evictions are counted and logged at most
once a minute, and running out of descriptors pauses accepting instead of logging a traceback per
attempt (daemon/listen.py).
"""

import asyncio
import logging
import struct
import time

from daemon.limits import fitted_cap
from daemon.listen import Listener, Tally
from daemon.loopshare import LoopShare
from daemon.service import SwitchedService
from protocols.modbus.server import ModbusHandler

log = logging.getLogger("gateway.modbus_tcp")

MBAP = struct.Struct(">HHHB")          # transaction, protocol, length, unit
MAX_LENGTH = 254                       # unit + PDU of at most 253 bytes
FRAME_TIMEOUT = 5.0                    # a started frame must be complete within this (s)
MAX_PER_ADDRESS = 16                   # connections from one client address: half the 32 of SPEC §3.1
READ_BUFFER_BYTES = 4096               # unparsed input held per connection (15 frames of the largest size)
WRITE_BUFFER_HIGH = 16384              # unsent answer bytes per connection before it waits for its client


class _Connection(asyncio.BufferedProtocol):
    """One client connection: frames parsed off its bytes one per turn of the loop and answered in order."""

    def __init__(self, service, ip, now):
        self.service, self.ip = service, ip
        self.loop = asyncio.get_running_loop()
        self.transport = None
        self.closed = False                 # closed by us or the peer; the transport may still flush
        self.buffer = bytearray()           # received, not yet parsed: at most READ_BUFFER_BYTES
        self._scratch = bytearray(READ_BUFFER_BYTES)
        self.idle_since = now               # waiting for a request (None while busy): may be closed for room
        self.frame_since = None             # when the partial frame in the buffer was first seen
        self.stalled_since = None           # when the client stopped reading its answers
        self.pending = None                 # the task answering a request that waits for a bus or a write
        self.scheduled = False              # a turn is due
        self.reading = True
        self.eof = False
        self._timer = None

    # ------------------------------------------------------------ transport callbacks

    def connection_made(self, transport):
        self.transport = transport
        if self.closed:                     # evicted or the service closed while the socket was attached
            transport.abort()
            return
        transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
        self._arm(self.loop.time() + self.service.idle_timeout())

    def get_buffer(self, sizehint):
        return memoryview(self._scratch)[:READ_BUFFER_BYTES - len(self.buffer)]

    def buffer_updated(self, nbytes):
        self.buffer += self._scratch[:nbytes]
        self.idle_since = None
        if len(self.buffer) >= READ_BUFFER_BYTES:
            self.transport.pause_reading()          # backpressure: the client's window closes
            self.reading = False
        if not self.scheduled:
            self._turn()                            # this wake-up's one frame

    def eof_received(self):
        self.eof = True
        self._schedule()                            # a turn closes the connection once nothing whole is left
        return True                                 # the answers of frames already received still go out

    def pause_writing(self):
        self.stalled_since = self.loop.time()
        self._arm(self.stalled_since + self.service.idle_timeout())

    def resume_writing(self):
        self.stalled_since = None
        self._schedule()

    def connection_lost(self, exc):
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self.pending is not None:
            self.pending.cancel()
        self.service.forget(self)

    # ------------------------------------------------------------ serving

    def _schedule(self):
        if not self.scheduled and not self.closed:
            self.scheduled = True
            self.loop.call_soon(self._turn)

    def _turn(self):
        """Serve at most one frame, then let the loop run before the next."""
        self.scheduled = False
        if self.closed or self.pending is not None or self.stalled_since is not None:
            return
        share = self.service.share
        start = time.monotonic()
        if not share.allows(self.ip, start):
            self.scheduled = True
            share.wait(self.ip, self._turn)
            return
        try:
            frame = self._next_frame()
            if frame is None:
                return
            transaction, unit, pdu = frame
            if not self.service.door.admit(self.ip, self.service.port, MBAP.size + len(pdu)):
                self.service.stats["closed_firewall"] += 1      # over the rate or banned: the connection ends
                self.close(abort=True)
                return
            answer = self.service.handler.answer_now(unit, pdu)
            if answer is None:
                self.pending = self.loop.create_task(self._answer_later(transaction, unit, pdu))
            else:
                self._answered(transaction, unit, answer)
            share.charge(self.ip, time.monotonic() - start)
        except Exception:           # the boundary: a bug closes this connection, never the server
            log.exception("Modbus TCP connection from %s failed", self.ip)
            self.close(abort=True)

    def _next_frame(self):
        """(transaction, unit, pdu) of the next whole frame, or None: nothing whole yet, or a bad header (closed)."""
        buffer = self.buffer
        if len(buffer) >= MBAP.size:
            transaction, protocol, length, unit = MBAP.unpack_from(buffer)
            if protocol != 0 or length < 2 or length > MAX_LENGTH:
                self.service.stats["closed_bad_frame"] += 1
                self.close()
                return None
            end = 6 + length
            if len(buffer) >= end:
                pdu = bytes(buffer[MBAP.size:end])
                del buffer[:end]
                self.frame_since = None
                self.service.stats["frames"] += 1
                return transaction, unit, pdu
        if not buffer:
            self._now_idle()
        elif self.frame_since is None:                  # a frame has begun: it must be whole in time
            self.frame_since = self.loop.time()
            self._arm(self.frame_since + self.service.frame_timeout)
        if self.eof:                                    # the client is done: so are we
            self.close()
        return None

    async def _answer_later(self, transaction, unit, pdu):
        answer = await self.service.handler.answer_later(unit, pdu)
        self.pending = None
        if not self.closed:
            self._answered(transaction, unit, answer)

    def _answered(self, transaction, unit, answer):
        self.transport.write(MBAP.pack(transaction, 0, len(answer) + 1, unit) + answer)   # may pause_writing()
        if not self.reading and len(self.buffer) <= READ_BUFFER_BYTES // 2:
            self.transport.resume_reading()
            self.reading = True
        if self.buffer or self.eof:
            self._schedule()                # the next frame on the next turn, after everyone else's
        else:
            self._now_idle()

    def _now_idle(self):
        if self.idle_since is None and self.pending is None and self.stalled_since is None:
            self.idle_since = self.loop.time()

    # ------------------------------------------------------------ time limits and closing

    def _arm(self, when):
        if self._timer is None or self._timer.when() > when:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_at(when, self._check_time)

    def _check_time(self):
        """Close a connection past one of its deadlines; otherwise wait for the nearest one."""
        self._timer = None
        now, stats = self.loop.time(), self.service.stats
        idle_timeout = self.service.idle_timeout()
        if self.closed:
            if self.transport is not None:
                self.transport.abort()          # closed with answers the client never read: no longer
            return
        if self.frame_since is not None and now >= self.frame_since + self.service.frame_timeout:
            stats["closed_bad_frame"] += 1      # a frame trickling in, or a length that lies
            self.close()
        elif self.stalled_since is not None and now >= self.stalled_since + idle_timeout:
            stats["closed_stalled"] += 1        # a client that does not read its answers
            self.close(abort=True)
        elif self.idle_since is not None and now >= self.idle_since + idle_timeout:
            stats["closed_idle"] += 1
            self.close()
        else:
            deadlines = [since + limit for since, limit in ((self.frame_since, self.service.frame_timeout),
                                                            (self.stalled_since, idle_timeout),
                                                            (self.idle_since, idle_timeout)) if since is not None]
            self._arm(min(deadlines, default=now + idle_timeout))

    def close(self, abort=False):
        """Close (flushing answers already written, for at most an idle timeout) or abort at once."""
        if self.closed and not abort:
            return
        self.closed = True
        self.service.forget(self)
        if self.pending is not None:
            self.pending.cancel()
        if self.transport is None:
            return                              # connection_made aborts it
        if abort:
            self.transport.abort()
        else:
            self.transport.close()
            self._arm(self.loop.time() + self.service.idle_timeout())


class ModbusTcpService(SwitchedService):
    name = "modbus"
    reopen_keys = ("modbus.port", "modbus.bind")

    def __init__(self, door):
        SwitchedService.__init__(self, door)
        self.handler = ModbusHandler(door, own_units=(255,))
        from protocols.modbus import regmap as modbus_regmap
        door.publish_document("modbus-register-map.csv", "text/csv; charset=utf-8", modbus_regmap.as_csv)
        door.publish_document("modbus-register-map.md", "text/markdown; charset=utf-8", modbus_regmap.as_markdown)
        self.listener = None
        self.port = None
        self.connections = set()            # connections being served (a closed one leaves at once)
        self._by_ip = {}                    # client address -> its connections among them
        self._attaching = set()             # tasks wrapping accepted sockets into transports
        self.refusals = Tally(log, "Modbus TCP connections")
        self.frame_timeout = FRAME_TIMEOUT
        self.max_per_address = MAX_PER_ADDRESS
        self.share = LoopShare()
        self.stats = {"accepted": 0, "refused": 0, "evicted": 0, "closed_bad_frame": 0, "closed_idle": 0,
                      "closed_stalled": 0, "closed_firewall": 0, "frames": 0}

    def idle_timeout(self):
        return self.settings.get("modbus.idle_timeout_s")

    async def _open(self):
        self.listener = Listener(self._on_socket, self.refusals)
        self.listener.start(self.settings.get("modbus.bind"), self.settings.get("modbus.port"))
        self.port = self.listener.port

    async def _close(self):
        await self.listener.stop()
        tasks = list(self._attaching) + [conn.pending for conn in self.connections if conn.pending is not None]
        for conn in list(self.connections):
            conn.close(abort=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.listener = None
        self.port = None                    # status(): no port while closed (a reopen may bind another)

    def status(self):
        out = SwitchedService.status(self)
        idle = sum(conn.idle_since is not None for conn in self.connections)
        out.update(port=self.port, connections=len(self.connections), connections_idle=idle,
                   **self.share.status(), **self.stats)
        out["requests"] = self.handler.counters.as_dict()
        return out

    # ------------------------------------------------------------ admission: caps, eviction, refusal

    def _on_socket(self, sock, peer):
        ip = peer[0]
        if not self._make_room(ip):
            self.stats["refused"] += 1
            self.refusals.add("refused over the cap")
            sock.close()            # refused cleanly and at once: the others are not touched
            return
        self.stats["accepted"] += 1
        loop = asyncio.get_running_loop()
        conn = _Connection(self, ip, loop.time())
        self.connections.add(conn)
        self._by_ip.setdefault(ip, set()).add(conn)
        task = loop.create_task(self._attach(conn, sock))
        self._attaching.add(task)
        task.add_done_callback(self._attaching.discard)

    async def _attach(self, conn, sock):
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: conn, sock)
        except (OSError, asyncio.CancelledError):
            sock.close()            # reset before it was attached, or the service closed
            conn.close()

    def _make_room(self, ip):
        cap = fitted_cap(self.settings.get("modbus.max_connections"), "modbus")
        mine = self._by_ip.get(ip, ())
        if len(mine) >= min(self.max_per_address, cap):
            return self._evict(mine)            # an address at its cap only ever displaces itself
        return len(self.connections) < cap      # full: the 33rd is refused (SPEC §3.1), nobody is evicted

    def _evict(self, candidates):
        """Close the connection that has waited longest for a request; False if none is waiting."""
        idle = [conn for conn in candidates if conn.idle_since is not None]
        if not idle:
            return False
        min(idle, key=lambda conn: conn.idle_since).close()
        self.stats["evicted"] += 1
        self.refusals.add("oldest idle closed for a newcomer")
        return True

    def forget(self, conn):
        self.connections.discard(conn)
        mine = self._by_ip.get(conn.ip)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self._by_ip[conn.ip]
