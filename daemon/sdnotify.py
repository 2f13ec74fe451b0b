"""systemd notifications (READY, WATCHDOG, STOPPING) over $NOTIFY_SOCKET.

A datagram to a local socket never blocks; without systemd it does nothing.
"""

import os
import socket


def notify(state):
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.sendto(state.encode(), address)
        return True
    except OSError:
        return False
