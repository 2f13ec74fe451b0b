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
* confirmed requests are served within each client's budget of loop time
  (``daemon/loopshare.py``, the one mechanism of every northbound server:
  a client, an IP address whatever its source ports, takes at most
  CLIENT_SHARE of the loop, all of them together LOOP_SHARE). The common
  reads are answered in this callback (``fastread.py``) and charged what
  they took; the others go to bacpypes3 and are charged an estimate of
  what they take (SLOW_REQUEST_S plus SLOW_ELEMENT_S per element they
  ask for: an RPM's ALL counted as its object type's property count,
  ``elements``, set by the stack). A client over its budget waits: at most
  MAX_DEFERRED_PER_HOST of its requests are kept, in order, and served
  once its credit is earned back, in turn with the other waiting clients;
  beyond, they are dropped (when the whole queue is full, the newest
  request of the host with most waiting makes room for a host with fewer).
  A supervisor polling one request at a time is never paced by the
  others, nor dropped;
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
import time

from bacpypes3.comm import Server, bind
from bacpypes3.ipv4.bvll import BVLLCodec
from bacpypes3.ipv4.service import BIPNormal
from bacpypes3.pdu import PDU, IPv4Address, LocalBroadcast, LocalStation

from daemon.loopshare import LoopShare
from protocols.bacnet.pacing import TokenBucket
from protocols.udpsock import BROADCAST, bind_udp, drain

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
# What a request bacpypes3 answers costs the loop, estimated (measured on the test machine: a
# ReadProperty 0.7-1.6 ms, an RPM of 20 Present_Values ~1.4 ms, each element ~35 us).
SLOW_REQUEST_S, SLOW_ELEMENT_S = 0.0008, 0.000035
MAX_DEFERRED = 64
MAX_DEFERRED_PER_HOST = 8               # one chatty host (any number of ports) cannot fill the queue for the others


def one_element(_data, _offset):
    """Elements a confirmed request asks for, when the stack tells no better."""
    return 1


def classify(data):
    """Walk the BVLC and NPDU headers without decoding anything.

    Returns (problem, kind, dnet, routed, broadcast, apdu): ``problem`` is the
    counter name of what is wrong (None when well framed), ``kind`` the
    discovery kind if the message is one (CONFIRMED for a confirmed request),
    ``dnet`` the destination network (None if local), ``routed`` whether the
    sender is behind another router (SNET present), ``broadcast`` whether
    the message was sent to a broadcast address (local, remote or global) and
    ``apdu`` the offset of the APDU (or of the network message).
    """
    size = len(data)
    if size < 4 or data[0] != BVLC_TYPE:
        return "bad_bvlc", None, None, False, False, None
    function = data[1]
    if function not in BVLC_FUNCTIONS:
        return "bad_bvlc", None, None, False, False, None
    if (data[2] << 8 | data[3]) != size or size > MAX_DATAGRAM:
        return "bad_bvlc_length", None, None, False, False, None
    if function not in NPDU_FUNCTIONS:
        return None, None, None, False, False, None
    offset = 10 if function == FORWARDED_NPDU else 4
    dnet = None
    broadcast = function in BROADCAST_FUNCTIONS
    try:
        if data[offset] != 0x01:
            return "bad_npdu", None, None, False, False, None
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
            return "truncated_npdu", None, None, False, False, None
    except IndexError:
        return "truncated_npdu", None, None, False, False, None
    return None, kind, dnet, bool(control & 0x08), broadcast, p


class GuardedDatagramServer(Server, asyncio.DatagramProtocol):
    """Bottom of the bacpypes3 stack: a UDP socket we own."""

    def __init__(self, counters):
        Server.__init__(self)
        self.counters = counters
        self.transport = None
        self.local_address = None
        self.broadcast = None
        self.inflight = set()
        self.share = LoopShare()            # each client's budget of loop time, and all of theirs
        self.elements = one_element         # (datagram, APDU offset) -> elements it asks for (set by the stack)
        self.fast = None                    # (datagram, APDU offset) -> answer or None (fastread.py, set by the stack)
        self.admit = None                   # (ip, size) -> bool: the gateway's firewall (set by the service)
        self.networks = frozenset()         # networks we route to (set by the stack)
        self.sources = {}
        self.discovery = None
        self._addresses = {}
        self._loop = asyncio.get_running_loop()
        self._sock = None

    async def open(self, host, port):
        loop = self._loop
        sock = bind_udp(host, port, broadcast=True)
        self._sock = sock
        await loop.create_datagram_endpoint(lambda: self, sock=sock)
        bound = sock.getsockname()
        self.local_address = IPv4Address(bound)
        self.broadcast = (BROADCAST, bound[1])
        self.discovery = TokenBucket(GLOBAL_RATE, GLOBAL_BURST, loop.time())
        return bound

    def close(self):
        self._sock = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        for task in list(self.inflight):
            task.cancel()
        self.share.clear()

    @property
    def deferred(self):
        """Confirmed requests waiting for their client's credit."""
        return self.share.queued

    # asyncio.DatagramProtocol ------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def error_received(self, exc):
        self.counters["socket_errors"] += 1

    def datagram_received(self, data, addr):
        """asyncio's one datagram, then everything queued behind it (udpsock.drain): a flood cannot fill the
        kernel's buffer and have a quiet client's datagrams dropped there."""
        self._intake(data, addr)
        if self._sock is not None and self.transport is not None:
            self.counters["read_ahead"] += drain(self._sock, self._intake)

    def _intake(self, data, addr):
        self.counters["datagrams"] += 1
        if self.admit is not None and not self.admit(addr[0], len(data)):
            self.counters["firewall_dropped"] += 1          # the gateway's firewall: over the rate or banned
            return
        problem, kind, dnet, routed, broadcast, apdu = classify(data)
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
        elif kind is CONFIRMED:
            host, share = addr[0], self.share
            if host in share.waiting or not share.allows(host):
                evicted = share.evicted
                if not share.defer(host, lambda: self._confirmed(data, addr, apdu), MAX_DEFERRED_PER_HOST,
                                   MAX_DEFERRED):
                    self.counters["busy"] += 1
                else:
                    self.counters["busy"] += share.evicted - evicted     # another host's, to make room
                    self.counters["paced"] += 1
                return
            self._confirmed(data, addr, apdu)
            return
        self._start(data, addr)

    def _confirmed(self, data, addr, apdu):
        """Serve a confirmed request now: at once when fastread can, else through bacpypes3; charged to its client."""
        started = time.monotonic()
        try:
            answer = self.fast(data, apdu) if self.fast is not None else None
        except Exception:                   # the boundary: a bug in the fast path leaves the request to bacpypes3
            self.counters["fast_errors"] += 1
            log.debug("BACnet fast read failed", exc_info=True)
            answer = None
        if answer is None:
            self.share.charge(addr[0], SLOW_REQUEST_S + SLOW_ELEMENT_S * self.elements(data, apdu))
            self._start(data, addr)
            return
        if self.transport is not None:
            self.transport.sendto(answer, addr)
            self.counters["sent"] += 1
        self.share.charge(addr[0], time.monotonic() - started)

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
