"""Bad BACnet input gets a protocol-correct refusal and changes nothing (SPEC §11).

Frames are built by hand (tests/bacnet/bacnet_peer.py), independent of the
server's stack. Floods and fuzz come from a separate process so the
gateway's loop lag measures the gateway, not the sender.
"""

import asyncio
import collections
import json
import os
import socket
import sys
import textwrap

from bacnet_support import MAIN, NET, Site, nothing_answered_so_far
from bacnet_peer import (
    ANALOG_INPUT, DEVICE, PROP, RawUdp, bvlc, frame_read_property, frame_who_is, npdu, object_id, parse_answer,
    read_property_apdu,
)
from board.base import ManualClock
from conftest import wait_for
from protocols.bacnet.transport import SOURCE_BURST, SOURCE_RATE

T0 = 1_700_000_000.0
REJECT_UNRECOGNIZED_SERVICE = 9
ABORT_SEGMENTATION_NOT_SUPPORTED = 4
ERROR_OBJECT, ERROR_PROPERTY = 1, 2
UNKNOWN_OBJECT, UNKNOWN_PROPERTY = 31, 32


async def still_answers(raw, port, invoke=200):
    """A valid ReadProperty to the gateway and to a meter behind it are answered."""
    raw.drain()
    raw.send(frame_read_property(invoke, DEVICE, MAIN, PROP["object_name"]), port)
    kind, answer = await raw.answer()
    assert kind == "complex" and answer["invoke"] == invoke
    raw.send(frame_read_property(invoke + 1, ANALOG_INPUT, 104, PROP["present_value"], dnet=NET, mac=4), port)
    kind, answer = await raw.answer()
    assert kind == "complex" and answer["invoke"] == invoke + 1 and answer["source"] == (NET, b"\x04")


async def who_is_answered(raw, port, tries=5):
    """A plain Who-Is brings the gateway's I-Am within ``tries`` one-second attempts."""
    for _ in range(tries):
        raw.drain()
        raw.send(frame_who_is(), port)
        try:
            while True:
                kind, _ = await raw.answer(timeout=1.0)
                if kind == "iam":
                    return True
        except asyncio.TimeoutError:
            continue
    return False


def send_raw(raw, frame, port):
    """``raw.send``, an empty datagram included (asyncio's transport silently sends nothing for b"")."""
    if frame:
        raw.send(frame, port)
        return
    with socket.socket(fileno=os.dup(raw.transport.get_extra_info("socket").fileno())) as sock:
        sock.sendto(frame, ("127.0.0.1", port))


def test_bad_framing_is_dropped_and_bad_requests_are_refused(tmp_path):
    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            async with RawUdp() as raw:
                counters = s.service.site.counters
                valid = frame_read_property(1, DEVICE, MAIN, PROP["object_name"])
                dropped = [
                    b"", b"\x81", b"\x81\x0a\x00",                          # shorter than a BVLC header
                    b"\x82" + valid[1:],                                    # not BACnet/IP
                    valid[:2] + b"\x00\x40" + valid[4:],                    # length field says more
                    valid[:2] + b"\x00\x05" + valid[4:],                    # length field says less
                    b"\x81\x33\x00\x06\x01\x04",                            # unknown BVLC function
                    bvlc(b"\x01"), bvlc(b"\x01\x20\x03"),                   # truncated NPDU
                    bvlc(b"\x02\x04\x00\x05\x01\x0c"),                      # NPDU version 2
                    bvlc(npdu(b"\x00\x05")),                                # APDU header cut before the invoke ID
                ]
                received = counters["datagrams"]
                for frame in dropped:
                    send_raw(raw, frame, s.port)
                await nothing_answered_so_far(raw, s)          # every one handled, none answered
                assert counters["datagrams"] - received == len(dropped) + 2        # + the two markers
                assert (counters["bad_bvlc"], counters["bad_bvlc_length"]) == (5, 2)
                assert (counters["truncated_npdu"], counters["bad_npdu"]) == (2, 1)
                # a request whose parameters are cut short: Reject (there is an invoke ID to answer)
                raw.send(bvlc(npdu(b"\x00\x05\x07\x0c\x0c\x00\x00")), s.port)
                kind, answer = await raw.answer()
                assert kind == "reject" and answer["invoke"] == 7
                # services that do not exist, or that we do not offer: reject unrecognized-service
                raw.send(bvlc(npdu(b"\x00\x05\x08\x55\x0c\x00\x00\x00\x01")), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["invoke"], answer["reason"]) == ("reject", 8, REJECT_UNRECOGNIZED_SERVICE)
                subscribe_cov = b"\x00\x05\x09\x05\x09\x01\x1c" + object_id(ANALOG_INPUT, 104)
                raw.send(bvlc(npdu(subscribe_cov, NET, b"\x04")), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["invoke"], answer["reason"]) == ("reject", 9, REJECT_UNRECOGNIZED_SERVICE)
                assert answer["source"] == (NET, b"\x04")
                # unknown objects and properties: errors with the right class and code
                raw.send(frame_read_property(10, ANALOG_INPUT, 9999, PROP["present_value"], dnet=NET, mac=4), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["class"], answer["code"]) == ("error", ERROR_OBJECT, UNKNOWN_OBJECT)
                raw.send(frame_read_property(11, ANALOG_INPUT, 204, 87, dnet=NET, mac=4), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["class"], answer["code"]) == ("error", ERROR_PROPERTY, UNKNOWN_PROPERTY)
                raw.send(frame_read_property(12, ANALOG_INPUT, 204, 600, dnet=NET, mac=4), s.port)   # vendor 600
                kind, answer = await raw.answer()
                assert (kind, answer["class"], answer["code"]) == ("error", ERROR_PROPERTY, UNKNOWN_PROPERTY)
                rpm_unknown = b"\x00\x05\x0d\x0e\x0c" + object_id(ANALOG_INPUT, 9999) + b"\x1e\x09\x55\x1f"
                raw.send(bvlc(npdu(rpm_unknown, NET, b"\x04")), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["class"], answer["code"]) == ("error", ERROR_OBJECT, UNKNOWN_OBJECT)
                # a network we do not reach: Reject-Message-To-Network, reason 1
                raw.send(frame_read_property(15, DEVICE, 177, PROP["object_name"], dnet=2000, mac=7), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["type"], answer["body"]) == ("net", 0x03, b"\x01\x07\xd0")
                # a device on the virtual network that does not exist: nothing comes back
                raw.send(frame_read_property(13, DEVICE, 177, PROP["object_name"], dnet=NET, mac=77), s.port)
                await nothing_answered_so_far(raw, s)
                # a segmented request: we accept none (segmented-transmit only) -> abort
                segmented = b"\x0c\x05\x0e\x00\x04\x0c\x0c" + object_id(DEVICE, MAIN) + b"\x19\x4d"
                raw.send(bvlc(npdu(segmented)), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["invoke"], answer["reason"]) == ("abort", 14, ABORT_SEGMENTATION_NOT_SUPPORTED)
                raw.send(bvlc(npdu(segmented, NET, b"\x04")), s.port)
                kind, answer = await raw.answer()
                assert (kind, answer["reason"]) == ("abort", ABORT_SEGMENTATION_NOT_SUPPORTED)
                # BBMD services we are not: a BVLC-Result NAK (Register-Foreign-Device -> 0x0030)
                raw.send(b"\x81\x05\x00\x06\x00\x3c", s.port)
                data = await asyncio.wait_for(raw.answers.get(), 5)
                assert data == b"\x81\x00\x00\x06\x00\x30"
                await still_answers(raw, s.port)
                assert s.service.running and len(s.service.stack.meters) == 8
    asyncio.run(scenario())


FLOOD = textwrap.dedent("""
    import socket, sys, time
    port, count = int(sys.argv[1]), int(sys.argv[2])
    frame = bytes.fromhex(sys.argv[3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    sent = 0
    for i in range(count):
        sent += sock.sendto(frame, ("127.0.0.1", port)) == len(frame)
        if i % 50 == 49:
            time.sleep(0.002)
    answers = 0
    try:
        while True:
            sock.recv(2048)
            answers += 1
    except socket.timeout:
        pass
    print(sent, answers)
""")


def test_a_who_is_flood_is_rate_limited_and_the_gateway_still_answers(tmp_path):
    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            s.gw.looplag.reset()
            counters = s.service.site.counters
            before = collections.Counter(counters)
            loop = asyncio.get_running_loop()
            started = loop.time()
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", FLOOD, str(s.port), "5000", frame_who_is().hex(),
                stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            elapsed = loop.time() - started
            sent, answers = (int(x) for x in out.split())

            def delta(name):
                return counters[name] - before[name]
            # Counted on both sides, so a datagram the kernel dropped (either socket's buffer) is no error:
            # what the gateway received, it put through the limiter; only a bucket's worth was served.
            received, served = delta("datagrams"), delta("discovery_accepted")
            assert sent == 5000 and 0 < received <= sent
            assert served + delta("discovery_limited") == received
            assert 0 < served <= SOURCE_BURST + SOURCE_RATE * elapsed, (served, received, elapsed)
            # every Who-Is served woke 1 + 8 devices; the flooder got at most those answers, the first ones whole
            await wait_for(lambda: delta("sent") == 9 * served)
            assert 9 <= answers <= 9 * served
            async with RawUdp() as raw:               # the loop still answers a well-formed request
                await still_answers(raw, s.port)
    asyncio.run(scenario())


FUZZ = textwrap.dedent("""
    import json, random, socket, sys
    port, count, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    probes = [bytes.fromhex(h) for h in sys.argv[4].split(",")]
    marker, marker_answer = bytes.fromhex(sys.argv[5]), bytes.fromhex(sys.argv[6])
    seeds = [bytes.fromhex(h) for h in sys.argv[7:]]
    WINDOW = 20          # datagrams sent before the gateway must have taken them in: no socket buffer overflows
    rnd = random.Random(seed)
    gateway = ("127.0.0.1", port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    checker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    checker.bind(("127.0.0.1", 0))
    checker.settimeout(2.0)
    sent = {"fuzz": 0, "marker": 0, "probe": 0}
    answers = []         # what the gateway sent back to the fuzzed datagrams, for the test to inspect
    def apdu_at(data):
        control, p = data[5], 6
        if control & 0x20:
            p += 3 + data[p + 2]
        if control & 0x08:
            p += 3 + data[p + 2]
        if control & 0x20:
            p += 1
        return p
    def send(where, frame, kind):
        where.sendto(frame, gateway)
        sent[kind] += 1
    def sync():
        # The gateway answers a message for a network it does not reach at once, on reception: once that
        # answer is back, every datagram sent before the marker left the gateway's socket buffer.
        send(checker, marker, "marker")
        while checker.recv(4096) != marker_answer:
            pass
    def probe(frame):
        # a valid request must be answered (complex ACK, same invoke ID); 3 tries, as a client would
        invoke = frame[apdu_at(frame) + 2]
        for attempt in range(3):
            send(checker, frame, "probe")
            try:
                while True:
                    data = checker.recv(4096)
                    p = apdu_at(data)
                    if data[p] >> 4 == 3 and data[p + 1] == invoke:
                        return True
            except socket.timeout:
                continue
        return False
    def drain():
        try:
            while True:
                answers.append(sock.recv(4096).hex())
        except BlockingIOError:
            pass
    def mutate(frame):
        data = bytearray(frame)
        for _ in range(rnd.randint(1, 4)):
            how = rnd.randrange(6)
            if how == 0 and data:
                data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
            elif how == 1 and data:
                data[rnd.randrange(len(data))] = rnd.randrange(256)
            elif how == 2:
                data = data[:rnd.randrange(len(data) + 1)]
            elif how == 3:
                data += bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40)))
            elif how == 4 and len(data) > 6:
                data.insert(rnd.randrange(4, len(data)), rnd.randrange(256))
        if len(data) >= 4 and rnd.random() < 0.7:      # most keep a consistent BVLC length field
            data[2:4] = len(data).to_bytes(2, "big")
        return bytes(data)
    answered = 0
    for i in range(count):
        frame = mutate(rnd.choice(seeds)) if rnd.random() < 0.9 else bytes(
            rnd.randrange(256) for _ in range(rnd.randrange(0, 60)))
        send(sock, frame, "fuzz")
        if i % WINDOW == WINDOW - 1:
            sync()
            drain()
        if i % 500 == 499:
            answered += probe(probes[(i // 500) % len(probes)])
    sync()
    drain()
    print(json.dumps({"sent": sent, "answered": answered, "probed": count // 500, "answers": answers}))
""")

# every BVLC-Result code of Annex J.2.1.1 (0 = successful completion, then the NAKs)
BVLC_RESULT_CODES = {0x0000, 0x0010, 0x0020, 0x0030, 0x0040, 0x0050, 0x0060}


def inspect_answer(data):
    """One datagram the gateway sent back to a fuzzed one: a well-formed B/IP message (BVLC type 0x81, length
    field = size), a BVLC-Result or an NPDU of version 1 whose APDU is whole; its kind."""
    assert len(data) >= 4 and data[0] == 0x81 and int.from_bytes(data[2:4], "big") == len(data), data.hex()
    if data[1] == 0x00:
        assert len(data) == 6 and int.from_bytes(data[4:6], "big") in BVLC_RESULT_CODES, data.hex()
        return "bvlc-result"
    assert data[1] == 0x0A, data.hex()             # answers go back unicast
    kind, detail = parse_answer(data)
    if kind == "error":
        assert detail["class"] <= 7 and len(data) >= 4 + 2, data.hex()
    if kind in ("reject", "abort"):
        assert detail["reason"] < 64, data.hex()
    return kind


def test_ten_thousand_fuzzed_datagrams_while_valid_requests_keep_being_answered(tmp_path):
    seeds = [
        frame_read_property(1, DEVICE, MAIN, PROP["object_name"]),
        frame_read_property(2, ANALOG_INPUT, 204, PROP["present_value"], dnet=NET, mac=4),
        bvlc(npdu(b"\x00\x05\x03\x0e\x0c" + object_id(ANALOG_INPUT, 104) + b"\x1e\x09\x08\x1f", NET, b"\x0f")),
        bvlc(npdu(b"\x00\x05\x04\x0f\x0c" + object_id(4, 1) + b"\x19\x55\x3e\x91\x01\x3f\x49\x08", NET, b"\x0f")),
        frame_who_is(), frame_who_is(100, 120),
        bvlc(npdu(b"", expecting_reply=False, network_message=0x00)),
        bvlc(npdu(b"\x10\x07\x3d\x11\x00Digital output 2", 0xFFFF, b"", expecting_reply=False), 0x0B),
        bvlc(npdu(read_property_apdu(5, DEVICE, 115, PROP["object_list"]), NET, b"\x0f")),
    ]
    # a message for network 2000, which the gateway does not reach, and its Reject-Message-To-Network
    marker = frame_read_property(99, DEVICE, 177, PROP["object_name"], dnet=2000, mac=7)
    marker_answer = bytes.fromhex("810a000a" "0180" "03" "01" "07d0")     # NPDU network message 03, reason 1

    async def scenario():
        async with Site(tmp_path, {"bacnet.time_sync": False}, clock=ManualClock(T0)) as s:
            io10 = s.gw.board.find_meter(address=15)
            offset = getattr(s.gw.board, "time_offset", 0)
            tasks_before = len(asyncio.all_tasks())
            counters = s.service.site.counters
            received, answers_sent = counters["datagrams"], counters["sent"]
            probes = ",".join(f.hex() for f in (
                frame_read_property(201, DEVICE, MAIN, PROP["object_name"]),
                frame_read_property(202, ANALOG_INPUT, 104, PROP["present_value"], dnet=NET, mac=4)))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", FUZZ, str(s.port), "10000", "1234", probes, marker.hex(), marker_answer.hex(),
                *[f.hex() for f in seeds], stdout=asyncio.subprocess.PIPE, limit=2 ** 24)
            out, _ = await proc.communicate()
            report = json.loads(out)
            # a valid request after every 500 fuzzed datagrams, gateway and meter in turn: all answered
            assert (report["answered"], report["probed"]) == (20, 20), out[:300]
            # counted on both sides: every datagram sent reached the gateway (the sender waited for the
            # gateway to take in each window of 20), none was invented
            sent = report["sent"]
            assert sent["fuzz"] == 10000
            assert counters["datagrams"] - received == sum(sent.values()), (sent, counters)
            # what came back to the fuzzed datagrams: each a well-formed answer, no more than the gateway sent
            kinds = collections.Counter(inspect_answer(bytes.fromhex(a)) for a in report["answers"])
            assert len(report["answers"]) <= counters["sent"] - answers_sent + kinds["net"] + kinds["bvlc-result"]
            assert set(kinds) <= {"complex", "ack", "error", "reject", "abort", "iam", "net", "other",
                                  "bvlc-result"}, kinds
            assert kinds["error"] + kinds["reject"] + kinds["abort"] > 0, kinds
            # the mutated Who-Is reached the discovery limiter, which let a bounded share through (how many
            # of those still decoded as a Who-Is depends on timing: a fast sender gets fewer tokens); each
            # accepted one woke at most the gateway and its 8 meters
            assert counters["discovery_limited"] > 0 and counters["discovery_accepted"] > 0, counters
            assert kinds["iam"] <= 9 * counters["discovery_accepted"], (kinds, counters)
            async with RawUdp() as raw:
                await still_answers(raw, s.port)
                # and once the flood is over, a Who-Is is answered again (retried, as a client does)
                assert await who_is_answered(raw, s.port), counters
            # nothing changed: outputs (writes are off), clock (time sync is off), topology, service
            assert "ack" not in kinds                  # no WriteProperty (nor anything else) acknowledged
            assert io10.outputs == 0
            assert getattr(s.gw.board, "time_offset", 0) == offset
            assert s.service.running and len(s.service.stack.meters) == 8
            await wait_for(lambda: len(asyncio.all_tasks()) <= tasks_before + 5)
            assert len(s.service.stack.server.inflight) == 0
    asyncio.run(scenario())
