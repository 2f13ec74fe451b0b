"""A confirmed request received as a broadcast is ignored (ASHRAE 135 clause 5.4.5.1).

Frames are built here byte by byte from the standard (BVLL Annex J.2, NPDU
clause 6.2, APDU clause 20.1): the same ReadProperty is sent unicast
(answered) and as a local broadcast (BVLC Original-Broadcast-NPDU), a
Forwarded-NPDU (what a BBMD relays of a broadcast), a global broadcast
(DNET 0xFFFF) and a remote broadcast on the meters' virtual network (DNET,
DLEN 0): none gets an answer, from the gateway or from any meter, and each
is counted. Unconfirmed broadcasts (Who-Is, Who-Has, UTCTimeSynchronization)
still work.
"""

import asyncio
import socket
import struct
import time

from bacnet_support import DEMO_ADDRESSES, MAIN, NET, Site, nothing_answered_so_far
from bacnet_peer import RawUdp
from conftest import wait_for


# BVLC (Annex J.2): type 0x81, function, 2-byte length of the whole datagram
BVLC_ORIGINAL_UNICAST, BVLC_ORIGINAL_BROADCAST, BVLC_FORWARDED = 0x0A, 0x0B, 0x04
GLOBAL = 0xFFFF
# APDU types and services (clause 20.1, 21)
CONFIRMED_REQUEST, UNCONFIRMED_REQUEST, COMPLEX_ACK = 0x00, 0x10, 0x30
READ_PROPERTY = 12
WHO_HAS, WHO_IS, UTC_TIME_SYNCHRONIZATION = 7, 8, 9
OBJECT_NAME = 77
DEVICE, ANALOG_INPUT = 8, 0


def bvll(function, npdu, forwarded_from=None):
    body = npdu if forwarded_from is None else forwarded_from + npdu       # J.2.5: original B/IP address first
    return bytes((0x81, function)) + struct.pack(">H", 4 + len(body)) + body


def npdu(apdu, expecting_reply, dnet=None, dadr=b""):
    """Version 1, control (bit 5 DNET present, bit 2 expecting reply); DNET, DLEN, DADR, hop count."""
    control = (0x20 if dnet is not None else 0) | (0x04 if expecting_reply else 0)
    out = bytes((0x01, control))
    if dnet is not None:
        out += struct.pack(">HB", dnet, len(dadr)) + dadr + b"\xff"
    return out + apdu


def read_property(invoke, obj_type, instance, prop=OBJECT_NAME):
    """Confirmed-Request (no segmentation, max 1476 octets = 0x05), ReadProperty
    [0] objectIdentifier, [1] propertyIdentifier."""
    oid = struct.pack(">I", obj_type << 22 | instance)
    return bytes((CONFIRMED_REQUEST, 0x05, invoke, READ_PROPERTY, 0x0C)) + oid + bytes((0x19, prop))


def who_is():
    return bytes((UNCONFIRMED_REQUEST, WHO_IS))


def who_has(name):
    """Who-Has by [3] objectName, a UTF-8 CharacterString (encoding octet 0)."""
    value = b"\x00" + name.encode()
    return bytes((UNCONFIRMED_REQUEST, WHO_HAS, 0x3D, len(value))) + value


def utc_time_synchronization(ts):
    t = time.gmtime(ts)
    date = bytes((0xA4, t.tm_year - 1900, t.tm_mon, t.tm_mday, t.tm_wday + 1))      # Monday = 1
    clock = bytes((0xB4, t.tm_hour, t.tm_min, t.tm_sec, 0))
    return bytes((UNCONFIRMED_REQUEST, UTC_TIME_SYNCHRONIZATION)) + date + clock


async def answers_until(raw, count):
    """The next ``count`` answers (each within the 5 s guard of ``raw.answer``)."""
    return [await raw.answer() for _ in range(count)]


def answers(raw_answers):
    return [(kind, detail.get("invoke"), detail.get("source")) for kind, detail in raw_answers]


def test_confirmed_requests_sent_as_broadcasts_are_ignored_unicast_ones_answered(tmp_path):
    async def scenario():
        async with Site(tmp_path) as s:
            counters = s.service.site.counters
            async with RawUdp() as raw:
                host, port = raw.transport.get_extra_info("sockname")
                me = socket.inet_aton(host) + struct.pack(">H", port)

                # unicast: the gateway and a meter behind it answer
                raw.send(bvll(BVLC_ORIGINAL_UNICAST, npdu(read_property(1, DEVICE, MAIN), True)), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["invoke"]) == ("complex", 1)
                raw.send(bvll(BVLC_ORIGINAL_UNICAST, npdu(read_property(2, DEVICE, MAIN + 4), True,
                                                          dnet=NET, dadr=b"\x04")), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["invoke"], answer["source"]) == ("complex", 2, (NET, b"\x04"))

                broadcasts = [
                    # local broadcast, to the gateway and to any device (wildcard instance)
                    bvll(BVLC_ORIGINAL_BROADCAST, npdu(read_property(10, DEVICE, MAIN), True)),
                    bvll(BVLC_ORIGINAL_BROADCAST, npdu(read_property(11, DEVICE, 4194303), True)),
                    # what a BBMD forwards of a broadcast
                    bvll(BVLC_FORWARDED, npdu(read_property(12, DEVICE, MAIN), True), forwarded_from=me),
                    # global broadcast, sent either way on B/IP
                    bvll(BVLC_ORIGINAL_BROADCAST, npdu(read_property(13, DEVICE, MAIN + 4), True, dnet=GLOBAL)),
                    bvll(BVLC_ORIGINAL_UNICAST, npdu(read_property(14, DEVICE, MAIN), True, dnet=GLOBAL)),
                    bvll(BVLC_ORIGINAL_UNICAST, npdu(read_property(15, ANALOG_INPUT, 204), True, dnet=GLOBAL)),
                    # remote broadcast on the meters' network (DLEN 0)
                    bvll(BVLC_ORIGINAL_UNICAST, npdu(read_property(16, DEVICE, MAIN + 4), True, dnet=NET)),
                    bvll(BVLC_ORIGINAL_BROADCAST, npdu(read_property(17, ANALOG_INPUT, 204), True, dnet=NET)),
                ]
                for frame in broadcasts:
                    raw.send(frame, s.port)
                # each one counted as ignored, then proven unanswered (an answer would come before the markers')
                await wait_for(lambda: counters["confirmed_broadcast_ignored"] == len(broadcasts))
                await nothing_answered_so_far(raw, s)
                assert counters["confirmed_broadcast_ignored"] == len(broadcasts)

                # the same requests unicast are still answered, after the broadcasts
                raw.send(bvll(BVLC_ORIGINAL_UNICAST, npdu(read_property(20, DEVICE, MAIN), True)), s.port)
                raw.send(bvll(BVLC_ORIGINAL_UNICAST, npdu(read_property(21, ANALOG_INPUT, 204), True,
                                                          dnet=NET, dadr=b"\x04")), s.port)
                got = sorted(answers([await raw.answer(), await raw.answer()]), key=lambda a: a[1])
                assert got == [("complex", 20, None), ("complex", 21, (NET, b"\x04"))]
    asyncio.run(scenario())


def test_unconfirmed_broadcasts_still_work(tmp_path):
    async def scenario():
        async with Site(tmp_path) as s:
            counters = s.service.site.counters
            async with RawUdp() as raw:
                # global Who-Is as a B/IP broadcast: the gateway and every meter
                raw.send(bvll(BVLC_ORIGINAL_BROADCAST, npdu(who_is(), False, dnet=GLOBAL)), s.port)
                found = await answers_until(raw, 1 + len(DEMO_ADDRESSES))
                await nothing_answered_so_far(raw, s)         # and nothing more
                assert sorted(d["device"] for kind, d in found if kind == "iam") == \
                    [MAIN] + [MAIN + a for a in DEMO_ADDRESSES]
                # local Who-Is as a B/IP broadcast: the gateway, and no meter (none answered before the markers)
                raw.send(bvll(BVLC_ORIGINAL_BROADCAST, npdu(who_is(), False)), s.port)
                found = await answers_until(raw, 1)
                await nothing_answered_so_far(raw, s, invoke=240)
                assert [d["device"] for kind, d in found if kind == "iam"] == [MAIN]
                # global Who-Has by name: I-Have from the IO-20 and the IO-10 (parse_answer calls it "other")
                raw.send(bvll(BVLC_ORIGINAL_BROADCAST, npdu(who_has("Digital output 2"), False, dnet=GLOBAL)),
                         s.port)
                found = await answers_until(raw, 2)
                await nothing_answered_so_far(raw, s, invoke=230)
                i_have = [d for kind, d in found if kind == "other" and d["apdu"][:2] == bytes((0x10, 1))]
                assert sorted(d["source"] for d in i_have) == [(NET, b"\x0d"), (NET, b"\x0f")]
                # UTCTimeSynchronization as a local broadcast sets the clock (when bacnet.time_sync is on)
                await s.gw.settings.set_many({"bacnet.time_sync": True})
                raw.send(bvll(BVLC_ORIGINAL_BROADCAST, npdu(utc_time_synchronization(time.time()), False)), s.port)
                await wait_for(lambda: counters["time_sync_applied"] == 1)
                assert counters["confirmed_broadcast_ignored"] == 0
    asyncio.run(scenario())
