"""The BACnet/IP UDP port, guarded, under bacpypes3's BVLL layer.

Ours rather than bacpypes3's ``IPv4DatagramServer`` because that one retries
a busy port forever (the service must report the error), binds with
SO_REUSEPORT (two gateways would silently share 47808), starts one task per
datagram with no bound, and logs a stack trace for every datagram that does
not decode (a fuzzer would flood the journal). Here, in ``datagram_received``
and before any decoding:

* the BVLC header is checked (type 0x81, a known function, a length field
  equal to the datagram's size) and the NPDU header is walked; anything
  malformed is dropped and counted (there is nobody to answer at that layer);
* discovery requests (Who-Is, Who-Has, Who-Is-Router-To-Network,
  What-Is-Network-Number) spend tokens of a per-source and a global bucket,
  so a Who-Is flood costs a few microseconds per datagram and cannot turn
  into a flood of I-Am answers (each Who-Is may wake 1 + 32 devices);
* confirmed requests are paced to REQUEST_RATE (the excess waits in a short
  queue, at most 8 per client, then is dropped): a client reading back to
  back cannot take the loop from the bus engines, nor the queue from others;
* a message for a network we do not reach is refused with
  Reject-Message-To-Network at once (bacpypes3 would look for a router and
  hold the datagram for seconds);
* a confirmed request received as a broadcast (BVLC Original-Broadcast-NPDU
  or Forwarded-NPDU, DNET 0xFFFF, or DNET with DLEN 0, a remote broadcast)
  is ignored and counted, as clause 5.4.5.1 says: otherwise the gateway and
  every meter behind it would answer it;
* at most MAX_INFLIGHT datagrams are processed at once (one task each, so a
  slow one never holds the others back); beyond, they are dropped and counted.
"""

import asyncio
import logging
from collections import Counter, deque

from bacpypes3.comm import Server, bind
from bacpypes3.ipv4.bvll import BVLLCodec
from bacpypes3.ipv4.service import BIPNormal
from bacpypes3.pdu import PDU, IPv4Address, LocalBroadcast, LocalStation

from protocols.udpsock import BROADCAST, bind_udp

log = logging.getLogger("gateway.bacnet")

BVLC_TYPE = 0x81
# BVLC functions we let through to the BVLL layer (which NAKs the BBMD/FD ones).
BVLC_FUNCTIONS = frozenset((0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C))
NPDU_FUNCTIONS = frozenset((0x04, 0x09, 0x0A, 0x0B))          # functions that carry an NPDU
FORWARDED_NPDU = 0x04
# functions whose NPDU was broadcast on the IP network (Annex J.2.5, J.2.11); a
# Distribute-Broadcast-To-Network (0x09) is for a BBMD: the BVLL layer NAKs it
BROADCAST_FUNCTIONS = frozenset((FORWARDED_NPDU, 0x0B))
MAX_DATAGRAM = 1497                     # BVLC (4..10) + NPDU header + 1476 APDU
MAX_INFLIGHT = 64                       # datagrams being processed at once; more are dropped
GLOBAL_NETWORK = 0xFFFF
REJECT_MESSAGE_TO_NETWORK = 0x03
REJECT_NOT_REACHABLE = 0x01             # "not directly connected and no router found"
# discovery messages: ("apdu", unconfirmed service) or ("net", network message type)
DISCOVERY = frozenset((("apdu", 7), ("apdu", 8), ("net", 0x00), ("net", 0x12)))
SOURCE_RATE, SOURCE_BURST = 5.0, 10.0     # discovery requests / s per source address
GLOBAL_RATE, GLOBAL_BURST = 20.0, 40.0    # and for everybody together
MAX_SOURCES = 1024
CONFIRMED = ("confirmed", None)
# Confirmed requests are paced: beyond REQUEST_RATE they wait (at most
# MAX_DEFERRED of them) for their turn. Measured (bench/RESULTS-bacnet.md):
# a client reading 20 values per RPM back to back, paced to 200/s, slows the
# poll cycle by 3.9 % (target 5 %) and still reads 4000 values/s, the whole
# 32-meter site faster than the buses refresh it.
REQUEST_RATE, REQUEST_BURST = 200.0, 40.0
MAX_DEFERRED = 64
MAX_DEFERRED_PER_SOURCE = 8             # one chatty client cannot fill the queue for the others


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate, burst, now):
        self.rate, self.burst, self.tokens, self.stamp = rate, burst, burst, now

    def take(self, now):
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


def classify(data):
    """Walk the BVLC and NPDU headers without decoding anything.

    Returns (problem, kind, dnet, routed, broadcast): ``problem`` is the
    counter name of what is wrong (None when well framed), ``kind`` the
    discovery kind if the message is one (CONFIRMED for a confirmed request),
    ``dnet`` the destination network (None if local), ``routed`` whether the
    sender is behind another router (SNET present) and ``broadcast`` whether
    the message was sent to a broadcast address (local, remote or global).
    """
    size = len(data)
    if size < 4 or data[0] != BVLC_TYPE:
        return "bad_bvlc", None, None, False, False
    function = data[1]
    if function not in BVLC_FUNCTIONS:
        return "bad_bvlc", None, None, False, False
    if (data[2] << 8 | data[3]) != size or size > MAX_DATAGRAM:
        return "bad_bvlc_length", None, None, False, False
    if function not in NPDU_FUNCTIONS:
        return None, None, None, False, False
    offset = 10 if function == FORWARDED_NPDU else 4
    dnet = None
    broadcast = function in BROADCAST_FUNCTIONS
    try:
        if data[offset] != 0x01:
            return "bad_npdu", None, None, False, False
        control = data[offset + 1]
        p = offset + 2
        if control & 0x20:                  # DNET, DLEN, DADR
            dnet = data[p] << 8 | data[p + 1]
            p += 2
            broadcast = broadcast or dnet == GLOBAL_NETWORK or data[p] == 0     # DLEN 0: remote broadcast
            p += 1 + data[p]
        if control & 0x08:                  # SNET, SLEN, SADR
            p += 2
            p += 1 + data[p]
        if control & 0x20:                  # hop count
            p += 1
        if control & 0x80:                  # network layer message
            kind = ("net", data[p])
        elif data[p] >> 4 == 1:
            kind = ("apdu", data[p + 1])
        else:
            kind = CONFIRMED if data[p] >> 4 == 0 else None
        if p >= size:
            return "truncated_npdu", None, None, False, False
    except IndexError:
        return "truncated_npdu", None, None, False, False
    return None, kind, dnet, bool(control & 0x08), broadcast


class GuardedDatagramServer(Server, asyncio.DatagramProtocol):
    """Bottom of the bacpypes3 stack: a UDP socket we own."""

    def __init__(self, counters):
        Server.__init__(self)
        self.counters = counters
        self.transport = None
        self.local_address = None
        self.broadcast = None
        self.inflight = set()
        self.deferred = deque()
        self.deferred_by_source = Counter()
        self.requests = None
        self._drain_handle = None
        self.networks = frozenset()         # networks we route to (set by the stack)
        self.sources = {}
        self.discovery = None
        self._addresses = {}
        self._loop = asyncio.get_running_loop()

    async def open(self, host, port):
        loop = self._loop
        sock = bind_udp(host, port, broadcast=True)
        await loop.create_datagram_endpoint(lambda: self, sock=sock)
        bound = sock.getsockname()
        self.local_address = IPv4Address(bound)
        self.broadcast = (BROADCAST, bound[1])
        self.discovery = TokenBucket(GLOBAL_RATE, GLOBAL_BURST, loop.time())
        self.requests = TokenBucket(REQUEST_RATE, REQUEST_BURST, loop.time())
        return bound

    def close(self):
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for task in list(self.inflight):
            task.cancel()
        self.deferred.clear()
        self.deferred_by_source.clear()
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None

    # asyncio.DatagramProtocol ------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def error_received(self, exc):
        self.counters["socket_errors"] += 1

    def datagram_received(self, data, addr):
        self.counters["datagrams"] += 1
        problem, kind, dnet, routed, broadcast = classify(data)
        if problem is not None:
            self.counters[problem] += 1
            return
        if dnet is not None and dnet != GLOBAL_NETWORK and dnet not in self.networks:
            self.counters["unknown_network"] += 1
            if not routed:
                self.transport.sendto(bytes((BVLC_TYPE, 0x0A, 0, 10, 0x01, 0x80, REJECT_MESSAGE_TO_NETWORK,
                                             REJECT_NOT_REACHABLE, dnet >> 8, dnet & 0xFF)), addr)
            return
        if kind is CONFIRMED and broadcast:
            self.counters["confirmed_broadcast_ignored"] += 1      # clause 5.4.5.1: no answer
            return
        if kind in DISCOVERY:
            if not self._allow_discovery(addr):
                self.counters["discovery_limited"] += 1
                return
            self.counters["discovery_accepted"] += 1
        elif kind is CONFIRMED and (self.deferred or not self.requests.take(self._loop.time())):
            if len(self.deferred) >= MAX_DEFERRED or self.deferred_by_source[addr] >= MAX_DEFERRED_PER_SOURCE:
                self.counters["busy"] += 1
                return
            self.counters["paced"] += 1
            self.deferred.append((data, addr))
            self.deferred_by_source[addr] += 1
            if self._drain_handle is None:
                self._drain_handle = self._loop.call_later(1.0 / REQUEST_RATE, self._drain)
            return
        self._start(data, addr)

    def _drain(self):
        self._drain_handle = None
        now = self._loop.time()
        while self.deferred and self.requests.take(now):
            data, addr = self.deferred.popleft()
            self.deferred_by_source[addr] -= 1
            if not self.deferred_by_source[addr]:
                del self.deferred_by_source[addr]
            self._start(data, addr)
        if self.deferred:
            self._drain_handle = self._loop.call_later(1.0 / REQUEST_RATE, self._drain)

    def _start(self, data, addr):
        if len(self.inflight) >= MAX_INFLIGHT:
            self.counters["busy"] += 1
            return
        task = self._loop.create_task(self._process(data, addr))
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    def _allow_discovery(self, addr):
        now = self._loop.time()
        bucket = self.sources.get(addr[0])
        if bucket is None:
            if len(self.sources) >= MAX_SOURCES:
                self.sources.clear()
            bucket = self.sources[addr[0]] = TokenBucket(SOURCE_RATE, SOURCE_BURST, now)
        return bucket.take(now) and self.discovery.take(now)

    async def _process(self, data, addr):
        pdu = PDU(data, source=self._address(addr), destination=self.local_address)
        try:
            await self.response(pdu)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.counters["undecodable"] += 1
            log.debug("BACnet datagram from %s not processed", addr, exc_info=True)

    def _address(self, addr):
        known = self._addresses.get(addr)
        if known is None:
            if len(self._addresses) >= MAX_SOURCES:
                self._addresses.clear()
            known = self._addresses[addr] = IPv4Address(addr)
        return known

    # bacpypes3 Server: PDUs going out ---------------------------------------------
    async def indication(self, pdu):
        if self.transport is None:
            return
        destination = pdu.pduDestination
        if isinstance(destination, LocalBroadcast):
            target = self.broadcast
        elif isinstance(destination, IPv4Address):
            target = destination.addrTuple
        elif isinstance(destination, LocalStation) and len(destination.addrAddr) == 6:
            target = IPv4Address(bytes(destination.addrAddr)).addrTuple
        else:
            self.counters["bad_destination"] += 1
            return
        try:
            self.transport.sendto(pdu.pduData, target)
            self.counters["sent"] += 1
        except OSError:
            self.counters["send_errors"] += 1


class GuardedLinkLayer(BIPNormal):
    """B/IP "normal" mode over our datagram server (bacpypes3's NormalLinkLayer, minus its socket)."""

    def __init__(self, server):
        BIPNormal.__init__(self)
        self.codec = BVLLCodec()
        self.server = server
        bind(self, self.codec, server)

    def close(self):
        self.server.close()
