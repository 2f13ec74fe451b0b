"""The UDP socket of a northbound service (SNMP agent, BACnet/IP).

Both services own their socket instead of letting a library open one (no
SO_REUSEPORT, their own datagram handling), and both open it the same way:
one helper, so a fix to the bind (a descriptor leaked on a busy port, say)
is made once.
"""

import socket

BROADCAST = "255.255.255.255"      # IPv4 limited broadcast (traps, BACnet Who-Is/I-Am)


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
