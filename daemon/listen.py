"""Accepting TCP connections so that a flood reaches neither the log nor the descriptor table.

asyncio's own accept loop logs a traceback every time accept() fails for lack of descriptors
(EMFILE) and a server that logs each refusal turns a connection flood into megabytes of log.
``Listener`` accepts with ``sock_accept``: when the process or the system is out of descriptors
it pauses accepting briefly (the waiting clients stay in the kernel's backlog) and counts it;
``Tally`` counts refusals and writes at most one log line per period, whatever the rate. Each
accepted socket goes to the server's ``on_socket(sock, peer)`` at once, so admission (caps,
eviction, refusal) is decided before any task or buffer is spent on it.
"""

import asyncio
import collections
import errno
import socket
import time

PAUSE_S = 0.1               # accepting waits this long after accept() failed (EMFILE, ENFILE, ENOBUFS, ENOMEM...)
LOG_PERIOD_S = 60.0         # at most one log line per period per tally
BACKLOG = 128


class Tally:
    """Counts events by kind; logs one line with the counts at most once per ``period``."""

    def __init__(self, logger, what, period=LOG_PERIOD_S):
        self.log, self.what, self.period = logger, what, period
        self.totals = collections.Counter()
        self._unlogged = collections.Counter()
        self._logged_at = None

    def add(self, kind):
        """Count one ``kind``; True when this call wrote the period's log line."""
        self.totals[kind] += 1
        self._unlogged[kind] += 1
        now = time.monotonic()
        if self._logged_at is None or now - self._logged_at >= self.period:
            self._logged_at = now
            counts = ", ".join("%s %d" % item for item in sorted(self._unlogged.items()))
            self.log.warning("%s: %s (next summary in %.0f s at the earliest)", self.what, counts, self.period)
            self._unlogged.clear()
            return True
        return False


class Listener:
    """Listening socket of one TCP server; hands each accepted socket to ``on_socket(sock, peer)``."""

    def __init__(self, on_socket, tally):
        self.on_socket, self.tally = on_socket, tally
        self.sock = self._task = None
        self.port = None

    def start(self, host, port):
        family = socket.AF_INET6 if ":" in (host or "") else socket.AF_INET
        self.sock = socket.create_server((host, port), family=family, backlog=BACKLOG)     # SO_REUSEADDR on POSIX
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self._task = asyncio.get_running_loop().create_task(self._accept())

    async def stop(self):
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.sock is not None:
            self.sock.close()
        self.sock = self._task = None

    async def _accept(self):
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, peer = await loop.sock_accept(self.sock)
            except (ConnectionAbortedError, InterruptedError):
                continue                                    # the client gave up while queued
            except OSError as exc:
                self.tally.add("accept paused (%s)" % (errno.errorcode.get(exc.errno, exc.errno)))
                await asyncio.sleep(PAUSE_S)                # EMFILE and the like: let connections close first
                continue
            try:
                self.on_socket(sock, peer)
            except Exception:
                sock.close()
                if self.tally.add("not served (internal error)"):
                    self.tally.log.exception("cannot serve a connection from %s", peer)
            await asyncio.sleep(0)          # a flood of connects is served in turns with everything else


async def open_stream(sock, limit, ssl=None, handshake_timeout=None):
    """(reader, writer) over an accepted socket, as ``asyncio.start_server`` would give its callback."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    extra = {"ssl": ssl, "ssl_handshake_timeout": handshake_timeout} if ssl else {}
    try:
        transport, _ = await loop.connect_accepted_socket(lambda: protocol, sock, **extra)
    except BaseException:
        sock.close()
        raise
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)

