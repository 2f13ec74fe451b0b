"""Modbus RTU slave on the RS485 port (SPEC §1, §3.1).

When ``bus.rs485.mode`` is ``slave`` and the policy's peripheral switch
``policy.modbus_slave`` allows it, the port answers an upstream Modbus RTU
master with the same engine as Modbus TCP: the gateway table at
``bus.rs485.address``, meters at their own addresses. The port is then not
polled as a master bus.

Frames are cut by their length (known from the function code) or, for an
unknown function, by the 3.5-character silence; a frame with a bad CRC is
ignored as RTU slaves do; broadcasts are executed without an answer.
"""

import asyncio
import logging
import os
import time

from core import modbus_rtu as rtu
from daemon.service import SwitchedService
from daemon.supervise import cancel_and_wait
from protocols.modbus.server import ModbusHandler

log = logging.getLogger("gateway.rtu_slave")


class RtuSlaveService(SwitchedService):
    """The slave port as a switched service: ``policy.modbus_slave`` turns it
    on and off live through ``daemon/service.py`` (lock, coalescing,
    ``last_error``). A port that cannot be opened (no UART on this board) is
    reported in the status and the rest of the gateway goes on serving."""

    name = "rtu_slave"

    def __init__(self, door):
        SwitchedService.__init__(self, door)
        self.handler = None
        self.port = None
        self._buf = bytearray()
        self._last_rx = 0.0
        self._flush_handle = None
        self._queue = None
        self._task = None
        self.stats = {"frames": 0, "answers": 0, "bad_crc": 0, "broadcasts": 0, "ignored": 0}

    def enabled(self):
        # bus.rs485.mode is not live (a restart moves the port between master
        # and slave), so only the policy switch needs watching.
        return self.settings.get("bus.rs485.mode") == "slave" and SwitchedService.enabled(self)

    async def _open(self):
        prefix = "bus.rs485."
        baud = self.settings.get(prefix + "baud")
        parity = self.settings.get(prefix + "parity")
        stop_bits = self.settings.get(prefix + "stop_bits")
        port = self.door.open_serial_port("rs485", baud, parity, stop_bits)
        try:
            loop = asyncio.get_running_loop()
            loop.add_reader(port.fileno(), self._readable)
        except BaseException:
            port.close()
            raise
        self.port = port
        self.gap = rtu.frame_gap(baud, 8, parity, stop_bits)
        self.handler = ModbusHandler(self.door, own_units=(self.settings.get(prefix + "address"),))
        self._buf.clear()
        self._queue = asyncio.Queue(maxsize=8)
        self._task = loop.create_task(self._answer_loop(), name="rtu-slave")
        log.info("RS485 port answers as Modbus RTU slave %d", self.settings.get(prefix + "address"))

    async def _close(self):
        asyncio.get_running_loop().remove_reader(self.port.fileno())
        if self._flush_handle:
            self._flush_handle.cancel()
            self._flush_handle = None
        await cancel_and_wait(self._task)
        self._task = None
        self.port.close()
        self.port = None

    def status(self):
        out = SwitchedService.status(self)
        out.update(self.stats)
        return out

    # ---------------------------------------------------------------- framing

    def _readable(self):
        try:
            data = os.read(self.port.fileno(), 512)
        except (BlockingIOError, OSError):
            return
        if not data:
            return
        now = time.monotonic()
        if self._buf and now - self._last_rx > self.gap * 2:
            self._buf.clear()                 # silence between fragments: a new frame
        self._last_rx = now
        self._buf.extend(data)
        self._cut_frames()
        if self._buf:
            if self._flush_handle:
                self._flush_handle.cancel()
            self._flush_handle = asyncio.get_running_loop().call_later(self.gap * 2, self._silence)

    def _cut_frames(self):
        while self._buf:
            frame, rest = rtu.split_request(self._buf)
            self._buf[:] = rest
            if frame is None:
                return                        # incomplete, or ended by the silence
            self._frame(frame)

    def _silence(self):
        if self._buf:
            frame = bytes(self._buf)
            self._buf.clear()
            self._frame(frame)

    def _frame(self, frame):
        self.stats["frames"] += 1
        if not rtu.check_crc(frame):
            self.stats["bad_crc"] += 1
            return
        try:
            self._queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.stats["ignored"] += 1        # a master that does not wait for answers

    async def _answer_loop(self):
        while True:
            frame = await self._queue.get()
            unit, pdu = rtu.parse_request(frame)
            if unit == rtu.BROADCAST:
                self.stats["broadcasts"] += 1
                continue                        # nothing to execute for the gateway itself
            if not self.handler.is_gateway(unit) and self.door.device(unit) is None:
                # Not ours: on a shared line another slave may own this address.
                self.stats["ignored"] += 1
                continue
            answer = await self.handler.handle(unit, pdu)
            try:
                os.write(self.port.fileno(), rtu.request_frame(unit, answer))
            except OSError as exc:            # line gone (adapter unplugged): keep serving
                log.warning("RS485 slave port write failed: %s", exc)
                continue
            self.stats["answers"] += 1
