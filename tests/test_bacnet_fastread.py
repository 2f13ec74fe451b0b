"""The fast read path answers exactly what bacpypes3 answers, and each client gets its share of the loop.

fastread.py answers ReadProperty and small ReadPropertyMultiple requests in the datagram's callback; the
reference is bacpypes3's own router and ReadProperty handler (the slow path, the server's ``fast`` unset),
asked the same requests: every exposed property of every object class of a meter and of the gateway's
device must get the same bytes (values are frozen: manual clock). Anything the fast path does not take
(errors, ALL, segmented answers) still gets bacpypes3's answer.

Fairness is counted, not timed: a client flooding ReadPropertyMultiple requests (20 values each) gets at
most what its budget serves plus its few waiting places (the rest is dropped and counted), while another
host reading one request at a time gets every answer.
"""

import asyncio

from bacnet_support import MAIN, NET, Site
from bacnet_peer import (
    ANALOG_INPUT, DEVICE, PROP, RawUdp, bvlc, frame_read_property, npdu, parse_answer, rpm_apdu,
)
from board.base import ManualClock
from protocols.bacnet import objects
from protocols.bacnet.transport import MAX_DEFERRED_PER_HOST

T0 = 1_700_000_000.0
METER = 4


async def both_ways(raw, s, frame):
    """(fast answer, bacpypes3's answer) to ``frame``, the fast one asked again until two agree (stable values)."""
    server = s.service.stack.server
    fast = server.fast
    for _ in range(3):
        raw.send(frame, s.port)
        first = await asyncio.wait_for(raw.answers.get(), 5)
        server.fast = None
        try:
            raw.send(frame, s.port)
            slow = await asyncio.wait_for(raw.answers.get(), 5)
        finally:
            server.fast = fast
        raw.send(frame, s.port)
        again = await asyncio.wait_for(raw.answers.get(), 5)
        if first == again:
            return first, slow
    raise AssertionError("values kept changing")


def frames_for(app, dnet, mac):
    """A ReadProperty frame per exposed property of one object of each class the application holds."""
    seen, out = set(), []
    for oid, obj in app.objectIdentifier.items():
        if type(obj) in seen:
            continue
        seen.add(type(obj))
        for name in sorted(obj.EXPOSED):
            pid = objects.vendor_number(name)
            if pid >= 256:
                continue                    # the helper encodes one-octet property ids
            out.append((type(obj).__name__, name, frame_read_property(
                len(out) % 200 + 1, int(oid[0]), oid[1], pid, dnet=dnet, mac=mac)))
    return out


def test_fast_answers_are_bacpypes3s_for_every_property_of_every_object_class(tmp_path):
    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            counters = s.service.site.counters
            stack = s.service.stack
            cases = frames_for(stack.meters[METER][1], NET, METER) + frames_for(stack.router, None, None)
            assert len(cases) > 40
            async with RawUdp() as raw:
                before = counters["fast_reads"]
                for cls, name, frame in cases:
                    fast, slow = await both_ways(raw, s, frame)
                    assert fast == slow, (cls, name, fast.hex(), slow.hex())
                # most were answered the fast way (the others, errors and arrays, by bacpypes3 both times)
                assert counters["fast_reads"] - before >= len(cases)
                # an RPM of present values, and one naming an unknown object (bacpypes3's error elements)
                meter = stack.meters[METER][1]
                ais = [oid[1] for oid in meter.objectIdentifier if int(oid[0]) == ANALOG_INPUT][:20]
                for specs in ([(ANALOG_INPUT, i, [PROP["present_value"]]) for i in ais],
                              [(ANALOG_INPUT, ais[0], [PROP["present_value"], PROP["object_name"]]),
                               (ANALOG_INPUT, 999999, [PROP["present_value"]])]):
                    frame = bvlc(npdu(rpm_apdu(7, specs), NET, bytes((METER,))))
                    fast, slow = await both_ways(raw, s, frame)
                    assert fast == slow, (fast.hex(), slow.hex())
    asyncio.run(scenario())


async def read_with_retries(raw, port, invoke, tries=3):
    """As a BACnet client does: the request again after an APDU timeout without its answer (the flood may
    have filled the socket's buffer: the kernel drops datagrams then, whoever sent them)."""
    for _ in range(tries):
        raw.send(frame_read_property(invoke, DEVICE, MAIN, PROP["object_name"]), port)
        try:
            while True:
                kind, answer = parse_answer(await asyncio.wait_for(raw.answers.get(), 2.0))
                if answer.get("invoke") == invoke:
                    return kind, answer
        except asyncio.TimeoutError:
            continue
    raise AssertionError("no answer to %d" % invoke)


def test_a_flooding_client_gets_its_share_while_another_host_is_served(tmp_path):
    flood_count, reads = 200, 20                  # the flood fits the socket's receive buffer (~250 here)

    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            counters = s.service.site.counters
            share = s.service.stack.server.share
            meter = s.service.stack.meters[METER][1]
            ais = [oid[1] for oid in meter.objectIdentifier if int(oid[0]) == ANALOG_INPUT][:20]
            async with RawUdp("127.0.0.2") as flood, RawUdp("127.0.0.3") as reader:
                busy = counters["busy"]
                for n in range(flood_count):        # as fast as a socket can send, never waiting for an answer
                    specs = [(ANALOG_INPUT, i, [PROP["present_value"]]) for i in ais]
                    flood.send(bvlc(npdu(rpm_apdu(n % 256, specs), NET, bytes((METER,)))), s.port)
                answered = 0
                for n in range(reads):              # meanwhile, one at a time from another host
                    kind, _answer = await read_with_retries(reader, s.port, n)
                    assert kind == "complex"
                    answered += 1
                got = await flood.collect(2.0)
                dropped = counters["busy"] - busy
            assert answered == reads
            # the flood was held to its share: some of it dropped, the rest (what its budget paid, plus at most
            # MAX_DEFERRED_PER_HOST waiting at a time) answered; nothing answered twice or out of nowhere
            assert dropped > 0 and share.deferred > 0
            assert len(got) <= flood_count - dropped
            assert all(kind == "complex" for kind, _answer in got)
            assert "127.0.0.2" in share.clients and share.limited > 0
            assert share.queued <= MAX_DEFERRED_PER_HOST
    asyncio.run(scenario())
