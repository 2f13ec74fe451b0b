"""Confirmed requests are served within each host's budget of loop time (SPEC §11: no input blocks the loop).

(How the budgets share the loop, counted on a clock the test moves: tests/test_loopshare.py.)

An RPM whose answer cannot fit what the client accepts is aborted before any
element is computed (counted by the server's ``rpm_elements``, not timed). A
host that floods from many source ports is one host: another host's reader,
retrying as a client does, gets every answer. Floods come from a separate
process on another loopback address (127.0.0.2; the reader is 127.0.0.3).
"""

import asyncio
import sys
import textwrap

from bacnet_support import NET, Site
from bacnet_peer import ANALOG_INPUT, DEVICE, PROP, RawUdp, bvlc, frame_read_property, npdu, rpm_apdu
from board.base import ManualClock
from conftest import demo_devices, wait_for
from protocols.bacnet import objects, points
from protocols.bacnet.transport import MAX_DEFERRED_PER_HOST

T0 = 1_700_000_000.0
ABORT_SEGMENTATION_NOT_SUPPORTED, ABORT_APDU_TOO_LONG = 4, 11
METER = 4                                   # an I-35: 150 Analog Inputs
MAX_RESP_50, MAX_RESP_1476 = 0, 5           # clause 20.1.2.5 codes
TWO_SEGMENTS = 1                            # clause 20.1.2.4 code


def analog_inputs(address):
    device = next(d for d in demo_devices() if d.address == address)
    return [p.instance for p in points.device_points(device) if p.kind == points.ANALOG_INPUT]


def rpm_frame(invoke, instances, props, **apdu):
    return bvlc(npdu(rpm_apdu(invoke, [(ANALOG_INPUT, i, props) for i in instances], **apdu), NET,
                     bytes((METER,))))


def test_an_rpm_whose_answer_cannot_fit_is_aborted_before_any_element_is_computed(tmp_path):
    ais = analog_inputs(METER)
    assert len(ais) >= 120

    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            counters = s.service.site.counters
            meter = s.service.stack.meters[METER][1]
            async with RawUdp() as raw:
                # one that fits: answered, and every element the ALLs expand to is counted
                raw.send(rpm_frame(1, ais[:3], [PROP["all"]]), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["invoke"]) == ("complex", 1)
                expected = sum(len(objects.selection(type(meter.objectIdentifier[(ANALOG_INPUT, i)]), "all"))
                               for i in ais[:3])
                assert counters["rpm_elements"] == expected > 0
                cases = [   # (invoke, request, abort reason): none of them can fit, whatever the values read
                    (2, rpm_frame(2, ais[:120], [PROP["all"]]), ABORT_SEGMENTATION_NOT_SUPPORTED),
                    (3, rpm_frame(3, ais[:120], [PROP["all"]], max_segs=TWO_SEGMENTS), ABORT_APDU_TOO_LONG),
                    (4, rpm_frame(4, ais[:1], [PROP["all"]], max_resp=MAX_RESP_50), ABORT_SEGMENTATION_NOT_SUPPORTED),
                    (5, rpm_frame(5, ais[:100], [PROP["present_value"]] * 2), ABORT_SEGMENTATION_NOT_SUPPORTED),
                ]
                for invoke, frame, reason in cases:
                    before = counters["rpm_elements"]
                    raw.send(frame, s.port)
                    kind, answer = await raw.answer()
                    assert (kind, answer["invoke"], answer["reason"]) == ("abort", invoke, reason)
                    assert answer["source"] == (NET, bytes((METER,)))
                    assert counters["rpm_elements"] == before, "elements computed for an answer that cannot fit"
                assert counters["rpm_too_large"] == len(cases)
                # one whose floor fits but whose values do not: stopped once the answer outgrows 1476 octets
                # (each Present_Value result takes 16 octets), not after its 110 elements
                before = counters["rpm_elements"]
                raw.send(rpm_frame(6, ais[:110], [PROP["present_value"]]), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["invoke"], answer["reason"]) == ("abort", 6, ABORT_SEGMENTATION_NOT_SUPPORTED)
                assert 0 < counters["rpm_elements"] - before <= 1476 // 16 + 1
                # and the gateway still answers
                raw.send(frame_read_property(7, DEVICE, 100, PROP["object_name"]), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["invoke"]) == ("complex", 7)
    asyncio.run(scenario())


# One host, many source ports: each socket sends its request again on its answer, or after RETRY_S without
# one, so the host always asks for far more than the gateway serves (before the fix, a reader on another
# host got few of its answers: the 64 places of the queue were the flood's, 8 per port).
FLOOD = textwrap.dedent("""
    import select, socket, sys, time
    host, port, count, frame = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), bytes.fromhex(sys.argv[4])
    RETRY_S = 0.01
    gateway = ("127.0.0.1", port)
    socks = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, 0))
        s.setblocking(False)
        socks.append(s)
    sent = answered = 0
    due = {}
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        for s in socks:
            if due.get(s, 0) <= now:
                try:
                    s.sendto(frame, gateway)
                    sent += 1
                except BlockingIOError:
                    pass
                due[s] = now + RETRY_S
        readable, _, _ = select.select(socks + [sys.stdin], [], [], 0.001)
        if sys.stdin in readable:
            break
        for s in readable:
            try:
                while True:
                    s.recv(4096)
                    answered += 1
                    due[s] = 0
            except BlockingIOError:
                pass
    print(sent, answered, flush=True)
""")

FLOOD_PORTS = 128                           # twice what the whole queue holds
READS, TRIES, TRY_S = 8, 3, 3.0             # the reader: as a BACnet client, 3 tries of 3 s (APDU timeout)


async def read_with_retries(raw, port, invoke, instance):
    frame = frame_read_property(invoke, ANALOG_INPUT, instance, PROP["present_value"], dnet=NET, mac=METER)
    for _ in range(TRIES):
        raw.send(frame, port)
        try:
            while True:
                kind, answer = await raw.answer(timeout=TRY_S)
                if answer.get("invoke") == invoke:
                    return kind == "complex"
        except asyncio.TimeoutError:
            continue
    return False


def test_a_host_flooding_from_many_ports_cannot_starve_another_hosts_reader(tmp_path):
    ais = analog_inputs(METER)
    flood = rpm_frame(1, ais[:30], [PROP["present_value"]])         # fits: 30 values

    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            counters = s.service.site.counters
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", FLOOD, "127.0.0.2", str(s.port), str(FLOOD_PORTS), flood.hex(),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
            try:
                assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"ready"
                # the flood saturates: requests wait their turn and the host's share of the queue overflows
                await wait_for(lambda: counters["busy"] > 0 and counters["paced"] > MAX_DEFERRED_PER_HOST)
                async with RawUdp("127.0.0.3") as reader:
                    results = [await read_with_retries(reader, s.port, 100 + n, ais[n]) for n in range(READS)]
            finally:
                proc.stdin.close()
                out, _ = await asyncio.wait_for(proc.communicate(), 30)
            sent, answered = (int(x) for x in out.split()[-2:])
            assert results == [True] * READS, (results, dict(counters))
            # the flood went on all along (it stopped after the reader) and was answered too: paced, not shut out
            assert 0 < answered < sent
    asyncio.run(scenario())
