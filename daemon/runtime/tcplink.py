"""The Modbus TCP client of generic TCP devices: a bus engine's interface over the network.

``TcpLink`` offers what ``BusPoller`` uses of a ``BusEngine`` (``submit``,
``request``, ``counters``, ``queued``, ``reset_counters``), so a Modbus TCP
device is polled by the same poller as a meter on a bus: its data model's
frames as planned reads, communication lost and system alarm 3 when it stops
answering, back-off, counters. Devices are reached by their *gateway*
address (the one the protocols' tables use); the link maps it to the
device's ``host``, ``port`` and ``unit`` (daemon/state/topology.py links).

Bounded: one connection per host:port (opened on demand, reused), one
transaction at a time on it (an MBAP transaction id checked on each answer),
at most ``MAX_QUEUED`` waiting per connection (more is ``BusBusy``), a
timeout per request (``BusTimeout``), and after a failed connection no new
attempt before a back-off that doubles up to ``MAX_BACKOFF_S`` (requests meanwhile
fail at once, so the poller's own back-off takes over).
"""

import asyncio
import collections
import logging
import struct
import time

from core import modbus_rtu as rtu
from daemon.runtime.bus import CLASS_NAMES, BusBusy, BusTimeout, DeviceCounters

log = logging.getLogger("gateway.tcplink")

MAX_QUEUED = 32              # waiting requests per connection
MAX_BACKOFF_S = 30.0
MAX_PDU = 253


class _Connection:
    """One host:port: its stream, the lock that keeps one transaction on it, its back-off."""

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self.reader = self.writer = None
        self.lock = asyncio.Lock()
        self.waiting = 0
        self.failures = 0
        self.retry_at = 0.0
        self.transaction = 0

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class TcpLink:
    """Modbus TCP master for the generic TCP devices of the topology (bus ``"tcp"``)."""

    def __init__(self, name, topology, timeout=1.0, retries=1, clock=None):
        self.name = name
        self.topology = topology
        self.timeout = timeout
        self.retries = retries
        self.clock = clock
        self.counters = collections.defaultdict(DeviceCounters)
        self._connections = {}
        self._closed = False

    def start(self):
        self._closed = False

    async def stop(self):
        self._closed = True
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    def _target(self, address):
        device = self.topology.device(address)
        if device is None or device.bus != self.name or not device.link:
            return None
        link = device.link
        return link.get("host"), link.get("port"), link.get("unit")

    def submit(self, unit, pdu, priority=1, retries=None, timeout=None, cuts=None):
        """A future of the response PDU of ``pdu`` to the device at gateway address ``unit``. ``cuts`` (where
        a bus engine may split a poll read) mean nothing here: a TCP device has no shared line to keep short."""
        return asyncio.ensure_future(self.request(unit, pdu, priority, retries, timeout))

    async def request(self, unit, pdu, priority=1, retries=None, timeout=None):
        target = self._target(unit)
        if self._closed or target is None:
            raise BusTimeout("no Modbus TCP device at address %s" % unit)
        host, port, device_unit = target
        connection = self._connections.get((host, port))
        if connection is None:
            connection = self._connections[(host, port)] = _Connection(host, port)
        if connection.waiting >= MAX_QUEUED:
            raise BusBusy("%s:%d has %d requests waiting" % (host, port, connection.waiting))
        counters = self.counters[unit]
        attempts = 1 + (self.retries if retries is None else retries)
        wait = self.timeout if timeout is None else timeout
        connection.waiting += 1
        try:
            async with connection.lock:
                last = None
                for _attempt in range(attempts):
                    counters.requests += 1
                    started = time.monotonic()
                    try:
                        answer = await asyncio.wait_for(self._exchange(connection, device_unit, pdu), wait)
                    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                        counters.timeouts += 1
                        connection.close()
                        last = exc
                        if connection.retry_at > time.monotonic():
                            break
                        continue
                    elapsed = time.monotonic() - started
                    counters.answers += 1
                    if answer[0] == pdu[0] | 0x80:
                        counters.exceptions += 1
                        raise rtu.ModbusException(pdu[0], answer[1] if len(answer) > 1 else 0)
                    if answer[0] != pdu[0] or (pdu[0] <= 4 and (len(answer) < 2 or answer[1] != len(answer) - 2)):
                        counters.frame_errors += 1
                        last = ValueError("answer does not match the request")
                        continue
                    counters.total_time += elapsed
                    counters.max_time = max(counters.max_time, elapsed)
                    counters.last_success = self.clock.time() if self.clock else time.time()
                    return answer
                raise BusTimeout("%s:%d unit %d: %s" % (host, port, device_unit, last or "no answer"))
        finally:
            connection.waiting -= 1

    async def _exchange(self, connection, unit, pdu):
        if connection.writer is None:
            if time.monotonic() < connection.retry_at:
                raise ConnectionRefusedError("%s:%d: waiting before the next connection" % (connection.host,
                                                                                           connection.port))
            try:
                connection.reader, connection.writer = await asyncio.open_connection(connection.host, connection.port)
            except OSError:
                connection.failures += 1
                connection.retry_at = time.monotonic() + min(MAX_BACKOFF_S, 0.5 * 2 ** (connection.failures - 1))
                raise
            connection.failures = 0
        connection.transaction = (connection.transaction + 1) & 0xFFFF
        tid = connection.transaction
        connection.writer.write(struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + bytes(pdu))
        await connection.writer.drain()
        while True:
            head = await connection.reader.readexactly(7)
            rtid, protocol, length, runit = struct.unpack(">HHHB", head)
            if protocol != 0 or not 2 <= length <= MAX_PDU + 1:
                raise ValueError("not a Modbus TCP answer")
            body = await connection.reader.readexactly(length - 1)
            if rtid == tid and runit == unit:
                return body
            # an answer to an earlier, timed-out request: skip it

    def reset_counters(self, address=None):
        for unit, counters in self.counters.items():
            if address is None or unit == address:
                counters.reset_counts()

    def queued(self):
        waiting = sum(c.waiting for c in self._connections.values())
        return dict((name, waiting if name == "poll" else 0) for name in CLASS_NAMES)

    def status(self):
        return {"connections": sum(1 for c in self._connections.values() if c.writer is not None),
                "hosts": len(self._connections)}
