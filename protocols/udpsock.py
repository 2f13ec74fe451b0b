"""The UDP socket of a northbound service (SNMP agent, BACnet/IP).

Both services own their socket instead of letting a library open one (no
SO_REUSEPORT, their own datagram handling), and both open it the same way:
one helper, so a fix to the bind (a descriptor leaked on a busy port, say)
is made once.
"""

import logging
import socket

LOG = logging.getLogger(__name__)

BROADCAST = "255.255.255.255"      # IPv4 limited broadcast (traps, BACnet Who-Is/I-Am)
# Datagrams read in one turn of the loop, after the one asyncio hands up: a flooding client's are dropped
# at 1.2-2.3 us each (over its share, or banned: bench/fairness.py --drop-cost), so 256 cost <= 0.6 ms, and
# a quiet client's waiting behind them are read at once, not lost when the flood has filled the kernel's buffer.
DRAIN_MAX = 256
# The kernel's receive buffer asked for (SO_RCVBUF; Linux doubles it and caps it at net.core.rmem_max,
# 4 MB here, 208 KB on a stock Pi): at its default 208 KB a flood of small datagrams fills it in ~5 ms,
# one slow turn of the loop, and the kernel then drops everybody's datagrams. 1 MB (2 MB granted) holds
# ~2,500, ~150 ms of a one-core flood; the memory is only taken while datagrams wait.
RCVBUF = 1 << 20
_short_buffer_reported = []          # the warning below is given once a process, not once a socket


def bind_udp(host, port, broadcast=False):
    """A non-blocking UDP socket bound to ``(host, port)``, SO_BROADCAST when asked, RCVBUF of buffer.

    A bind that fails (port in use, address not on this host) closes the
    socket and raises OSError to the caller: a switched service reports it in
    its status and the daemon goes on.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if broadcast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < RCVBUF:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            _report_short_buffer(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _report_short_buffer(granted):
    """Say once when the kernel granted less than asked: the installer's sysctl drop-in is missing."""
    if granted < 2 * RCVBUF and not _short_buffer_reported:
        _short_buffer_reported.append(granted)
        LOG.warning("UDP receive buffer: %d bytes granted of %d asked; a flood can make the kernel drop other "
                    "clients' datagrams: set net.core.rmem_max = %d (deploy/60-open-m70.conf, installed by "
                    "make install)", granted, 2 * RCVBUF, 2 * RCVBUF)


def drain(sock, receive, limit=DRAIN_MAX):
    """Hand up to ``limit`` datagrams already waiting in ``sock`` to ``receive(data, addr)``.

    asyncio reads one datagram per turn of the loop: a client flooding faster than that fills the
    kernel's receive buffer, which then drops everybody's datagrams, a quiet client's too. A service
    calls this after each datagram asyncio hands it, so the loop reads everything queued (up to
    ``limit`` a turn) ahead of the flood; the flood's own datagrams, over its client's share of the loop
    (daemon/loopshare.py) or banned, are dropped at a few microseconds each. Returns how many were read.
    """
    for n in range(limit):
        try:
            data, addr = sock.recvfrom(65535)
        except OSError:                     # BlockingIOError: nothing more waits
            return n
        receive(data, addr)
    return limit
