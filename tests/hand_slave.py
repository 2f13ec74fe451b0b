"""A Modbus RTU slave written by hand on a pseudo-terminal, for the master's timing tests.

Independent of the gateway's codec: its own CRC (the standard's algorithm) and its own answers. A subclass
says what it does with each request (``serve``); the base reads them until ``stopping`` is set.
"""

import contextlib
import os
import struct
import threading
import time

import serial

from board.nullmodem import open_raw_pty
from daemon.runtime.bus import BusEngine


def crc16(data):
    """Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF), low byte first: the standard's algorithm."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


class HandSlave(threading.Thread):
    """Reads each request (8 bytes or more) from ``fd`` and hands it to ``serve``; counts them."""

    POLL_S = 0.0002                 # how long it sleeps when nothing came

    def __init__(self, fd):
        super().__init__(daemon=True)
        self.fd, self.requests = fd, 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                request = os.read(self.fd, 64)
            except BlockingIOError:
                time.sleep(self.POLL_S)
                continue
            if len(request) < 8:
                continue
            self.requests += 1
            if self.serve(request) is False:
                return

    def serve(self, request):
        """Answer ``request``; False ends the slave."""
        raise NotImplementedError


@contextlib.asynccontextmanager
async def master_and_slave(make_slave, baud=38400):
    """(engine, slave): the gateway's RTU master on one end of a raw pseudo-terminal at ``baud``, a started
    ``make_slave(fd)`` on the other; both stopped and the descriptors closed on exit."""
    master_fd, slave_fd = open_raw_pty()
    os.set_blocking(master_fd, False)
    slave = make_slave(master_fd)
    slave.start()
    port = serial.Serial(os.ttyname(slave_fd), baudrate=baud, timeout=0, write_timeout=0)
    engine = BusEngine("line", port, baud=baud, timeout=0.1, retries=1)
    engine.start()
    try:
        yield engine, slave
    finally:
        await engine.stop()
        slave.stopping.set()
        slave.join(2)
        port.close()
        os.close(master_fd)
        os.close(slave_fd)
