"""A null-modem cable between two pseudo-terminals (simulated board).

Used when a bus of the simulated board is the *upstream* link of the RS485
port in slave mode: the daemon opens one end like any serial port, and an
external Modbus RTU master (mbpoll, pymodbus) opens ``peer_path``. Bytes
that the far side has no room for are dropped and counted, as on a line with
nobody listening: the cable's thread never waits on one side.
"""

import os
import select
import threading
import tty


def open_raw_pty():
    """A pseudo-terminal pair in raw mode (no line discipline: bytes as they are): (master, slave)."""
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    return master, slave


class NullModem:
    def __init__(self):
        self._a_master, a_slave = open_raw_pty()
        self._b_master, b_slave = open_raw_pty()
        self._slaves = (a_slave, b_slave)
        self.path = os.ttyname(a_slave)         # the daemon's end
        self.peer_path = os.ttyname(b_slave)    # the external master's end
        self.bytes = {"to_peer": 0, "from_peer": 0, "dropped": 0}
        for fd in (self._a_master, self._b_master):
            os.set_blocking(fd, False)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nullmodem", daemon=True)
        self._thread.start()

    def _run(self):
        pairs = {self._a_master: (self._b_master, "to_peer"), self._b_master: (self._a_master, "from_peer")}
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(list(pairs), [], [], 0.1)
            except (OSError, ValueError):
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue      # nothing after all, or the other side is not open (yet): EIO on a pty
                target, counter = pairs[fd]
                try:
                    sent = os.write(target, data)
                except OSError:   # full (nobody reads the far end) or closed
                    sent = 0
                self.bytes[counter] += sent
                self.bytes["dropped"] += len(data) - sent

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        for fd in (self._a_master, self._b_master) + self._slaves:
            try:
                os.close(fd)
            except OSError:
                pass
