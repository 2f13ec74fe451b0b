"""A UDP flood cannot make the kernel drop a quiet client's datagrams (issue 19, no client stalls the loop).

The SNMP agent and the BACnet/IP server read everything queued in their socket
behind each datagram asyncio hands them (protocols/udpsock.py ``drain``), and
their socket's receive buffer holds a burst (``RCVBUF``): a flooding host's
datagrams over its share of the loop are dropped and counted by the service,
never by the kernel, so every datagram sent is accounted for. Counted here: a
burst of N requests from one host (127.0.0.2) sent while the loop cannot read,
then M from another host (127.0.0.3); all M answered, and the flood's answers
plus the service's own drop count make N (the kernel dropped none).
"""

import asyncio
import socket
import sys
import os

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bacnet"))

from bacnet_peer import DEVICE, PROP, frame_read_property, parse_answer  # noqa: E402
from conftest import wait_for  # noqa: E402
from protocols.snmp import ber  # noqa: E402
from snmp_support import SYSTEM_OID, Site as SnmpSite  # noqa: E402

QUIET = 20                          # M: the quiet host's requests
FLOOD_MAX = 1000                    # N, at most: what the service's receive buffer holds (below)
TRUESIZE = 1024                     # what the kernel charges a small datagram's buffer, rounded up (~830 here)
FLOOD_HOST, QUIET_HOST = "127.0.0.2", "127.0.0.3"
SYS_NAME = SYSTEM_OID + (5, 0)


def flood_size(sock):
    """N: as many as the service's socket buffer holds with the quiet ones (its size is the kernel's choice)."""
    return min(FLOOD_MAX, sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // TRUESIZE - 2 * QUIET)


def udp(host):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


def arrived(sock):
    out = []
    while True:
        try:
            out.append(sock.recv(70000))
        except BlockingIOError:
            return out


async def burst(port, flood_frames, quiet_frames, decode, settled):
    """Send the flood then the quiet frames without letting the loop run; collect answers until ``settled``
    (a function of the flood's answer count) holds: (flood answers, quiet request ids answered)."""
    flooder, quiet = udp(FLOOD_HOST), udp(QUIET_HOST)
    try:
        for frame in flood_frames:
            flooder.sendto(frame, ("127.0.0.1", port))
        for frame in quiet_frames:
            quiet.sendto(frame, ("127.0.0.1", port))
        flood_answers, quiet_ids = 0, set()

        def done():
            nonlocal flood_answers
            flood_answers += len(arrived(flooder))
            quiet_ids.update(decode(data) for data in arrived(quiet))
            return len(quiet_ids) == len(quiet_frames) and settled(flood_answers)
        await wait_for(done, guard=30.0)
        return flood_answers, quiet_ids
    finally:
        flooder.close()
        quiet.close()


def test_snmp_flood_burst_every_quiet_get_answered_and_every_flood_datagram_counted(tmp_path):
    async def body():
        async with SnmpSite(tmp_path) as s:
            service = s.service
            n = flood_size(service._sock)
            assert n >= 100
            flood = [ber.encode_request(1, b"publicV2", ber.GET, 1 + i, [SYS_NAME]) for i in range(n)]
            quiet = [ber.encode_request(1, b"publicV2", ber.GET, 50_000 + i, [SYS_NAME]) for i in range(QUIET)]
            before = service.read_ahead
            answers, ids = await burst(
                s.port, flood, quiet, lambda data: ber.decode_response(data)[0],
                lambda got: got + service.dropped["over_share"] == n and not service.share.queued)
            assert ids == set(range(50_000, 50_000 + QUIET))
            assert answers + service.dropped["over_share"] == n           # none lost before the agent read it
            assert service.dropped["over_share"] > 0, "the burst was all served: not a flood"
            assert service.read_ahead - before >= (n + QUIET) // 2      # read behind asyncio's one datagram
    asyncio.run(body())


def test_bacnet_flood_burst_every_quiet_read_answered_and_every_flood_datagram_counted(tmp_path):
    from bacnet_support import Site as BacnetSite

    async def body():
        async with BacnetSite(tmp_path) as s:
            server = s.service.stack.server
            counters = s.service.site.counters
            n = flood_size(server._sock)
            assert n >= 100
            flood = [frame_read_property(i & 0xFF, DEVICE, 100, PROP["object_name"]) for i in range(n)]
            quiet = [frame_read_property(100 + i, DEVICE, 100, PROP["object_name"]) for i in range(QUIET)]
            datagrams, busy, read_ahead = counters["datagrams"], counters["busy"], counters["read_ahead"]
            answers, ids = await burst(
                s.port, flood, quiet, lambda data: parse_answer(data)[1].get("invoke"),
                lambda got: got + counters["busy"] - busy == n and not server.deferred)
            assert ids == set(range(100, 100 + QUIET))
            assert counters["datagrams"] - datagrams == n + QUIET        # the kernel dropped none
            assert answers + counters["busy"] - busy == n
            assert counters["busy"] - busy > 0, "the burst was all served: not a flood"
            assert counters["read_ahead"] - read_ahead >= (n + QUIET) // 2
    asyncio.run(body())


def test_a_receive_buffer_smaller_than_asked_is_reported_once(monkeypatch, caplog):
    """The kernel caps SO_RCVBUF at net.core.rmem_max (a stock Pi: 208 KB). A gateway whose installer's
    sysctl drop-in is missing says so once, with the setting to raise; the sockets still open."""
    from protocols import udpsock
    with open("/proc/sys/net/core/rmem_max") as handle:
        rmem_max = int(handle.read())
    monkeypatch.setattr(udpsock, "RCVBUF", 2 * rmem_max)        # more than this kernel grants
    monkeypatch.setattr(udpsock, "_short_buffer_reported", [])
    caplog.set_level("WARNING", logger="protocols.udpsock")
    socks = [udpsock.bind_udp("127.0.0.1", 0) for _ in range(2)]
    try:
        granted = socks[0].getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        warnings = [r.getMessage() for r in caplog.records if "rmem_max" in r.getMessage()]
        assert len(warnings) == 1 and ("%d bytes granted" % granted) in warnings[0]
        assert "net.core.rmem_max = %d" % (4 * rmem_max) in warnings[0]
    finally:
        for sock in socks:
            sock.close()
    monkeypatch.setattr(udpsock, "RCVBUF", rmem_max // 2)          # what it grants: no word
    monkeypatch.setattr(udpsock, "_short_buffer_reported", [])
    caplog.clear()
    udpsock.bind_udp("127.0.0.1", 0).close()
    assert [r for r in caplog.records if "rmem_max" in r.getMessage()] == []
