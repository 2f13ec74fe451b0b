"""The UDP socket of a northbound service (SNMP agent, BACnet/IP).

Both services own their socket instead of letting a library open one (no
SO_REUSEPORT, their own datagram handling), and both open it the same way:
one helper, so a fix to the bind (a descriptor leaked on a busy port, say)
is made once.
"""

import socket

BROADCAST = "255.255.255.255"      # IPv4 limited broadcast (traps, BACnet Who-Is/I-Am)
DRAIN_MAX = 64                     # datagrams read at once while a client is over its share of the loop


def bind_udp(host, port, broadcast=False):
    """A non-blocking UDP socket bound to ``(host, port)``, SO_BROADCAST when asked.

    A bind that fails (port in use, address not on this host) closes the
    socket and raises OSError to the caller: a switched service reports it in
    its status and the daemon goes on.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        if broadcast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def drain(sock, receive, limit=DRAIN_MAX):
    """Hand up to ``limit`` datagrams already waiting in ``sock`` to ``receive(data, addr)``.

    asyncio reads one datagram per turn of the loop: a client flooding faster than that fills the
    kernel's receive buffer, which then drops everybody's datagrams, a quiet client's too. A service
    calls this when a client is over its share of the loop (daemon/loopshare.py), so the loop reads
    ahead of the flood, and the flood's own datagrams are dropped at a few microseconds each.
    """
    for _ in range(limit):
        try:
            data, addr = sock.recvfrom(65535)
        except OSError:                     # BlockingIOError: nothing more waits
            return
        receive(data, addr)
