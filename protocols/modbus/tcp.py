"""Modbus TCP server/gateway on asyncio (SPEC §3.1).

Our own server rather than pymodbus's: the gateway needs per-request routing
(gateway table, cache, or the bus), exact exception codes 0A/0B, a hard cap
on connections with a clean refusal of the next one, and bounded time for a
frame to arrive (slowloris). The PDU rules are the shared pure codec's.

Framing errors a client cannot recover from (protocol id != 0, MBAP length
outside 2..254) close that connection; well-framed but invalid requests get
their exception. Requests on one connection are answered in order.

Connection churn (SPEC §11): a connection over the cap (``modbus.max_connections``, fitted
under the descriptor limit by daemon/limits.py) is closed as it is accepted, before any task or
buffer is spent on it; refusals are counted and logged at most once a minute, and running out of
descriptors pauses accepting instead of logging a traceback per attempt (daemon/listen.py).
"""

import asyncio
import logging
import struct

from daemon.limits import fitted_cap
from daemon.listen import Listener, Tally, open_stream
from daemon.service import SwitchedService
from protocols.modbus.server import ModbusHandler

log = logging.getLogger("gateway.modbus_tcp")

MBAP = struct.Struct(">HHHB")          # transaction, protocol, length, unit
MAX_LENGTH = 254                       # unit + PDU of at most 253 bytes
FRAME_TIMEOUT = 5.0                    # a started frame must be complete within this (s)


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
        self.connections = set()
        self.refusals = Tally(log, "Modbus TCP connections")
        self.frame_timeout = FRAME_TIMEOUT
        self.stats = {"accepted": 0, "refused": 0, "closed_bad_frame": 0, "closed_idle": 0, "frames": 0}

    async def _open(self):
        self.listener = Listener(self._on_socket, self.refusals)
        self.listener.start(self.settings.get("modbus.bind"), self.settings.get("modbus.port"))
        self.port = self.listener.port

    async def _close(self):
        await self.listener.stop()
        for task in list(self.connections):
            task.cancel()
        await asyncio.gather(*self.connections, return_exceptions=True)
        self.listener = None
        self.port = None                    # status(): no port while closed (a reopen may bind another)

    def status(self):
        out = SwitchedService.status(self)
        out.update(port=self.port, connections=len(self.connections), **self.stats)
        out["requests"] = self.handler.counters.as_dict()
        return out

    def _on_socket(self, sock, _peer):
        if len(self.connections) >= fitted_cap(self.settings.get("modbus.max_connections"), "modbus"):
            self.stats["refused"] += 1
            self.refusals.add("refused over the cap")
            sock.close()            # refused cleanly and at once: the others are not touched
            return
        self.stats["accepted"] += 1
        self.connections.add(asyncio.get_running_loop().create_task(self._client(sock)))

    async def _client(self, sock):
        writer = None
        try:
            reader, writer = await open_stream(sock, 2 ** 16)
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, OSError, asyncio.CancelledError):
            pass            # reset, refused write, or _close()
        finally:
            self.connections.discard(asyncio.current_task())
            if writer is not None:
                writer.close()

    async def _serve(self, reader, writer):
        idle = self.settings.get("modbus.idle_timeout_s")
        while True:
            try:       # asyncio.timeout, not wait_for: on 3.11 wait_for can lose a cancel (gh-86296)
                async with asyncio.timeout(idle):
                    first = await reader.readexactly(1)
            except TimeoutError:
                self.stats["closed_idle"] += 1
                return
            try:
                async with asyncio.timeout(self.frame_timeout):
                    header = first + await reader.readexactly(MBAP.size - 1)
                transaction, protocol, length, unit = MBAP.unpack(header)
                if protocol != 0 or length < 2 or length > MAX_LENGTH:
                    self.stats["closed_bad_frame"] += 1
                    return
                async with asyncio.timeout(self.frame_timeout):
                    pdu = await reader.readexactly(length - 1)
            except TimeoutError:     # a frame trickling in: slowloris
                self.stats["closed_bad_frame"] += 1
                return
            self.stats["frames"] += 1
            answer = await self.handler.handle(unit, pdu)
            writer.write(MBAP.pack(transaction, 0, len(answer) + 1, unit) + answer)
            try:
                async with asyncio.timeout(self.frame_timeout):
                    await writer.drain()
            except TimeoutError:     # a client that does not read its answers
                self.stats["closed_bad_frame"] += 1
                return
