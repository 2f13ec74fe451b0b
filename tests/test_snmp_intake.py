"""The SNMP intake (issue 13): what costs or leaks in pysnmp is refused before pysnmp sees it.

- SNMPv3 with an empty authoritative engine ID and an encrypted scoped PDU:
  pysnmp's USM keeps one security-state entry per such message for ever;
  5,000 of them through the agent leave its state tables as they were.
- Oversized, wrong-community, malformed, unknown-user, wrong-level and
  unknown-engine datagrams never reach pysnmp's dispatcher (counted calls),
  and the SNMP and USM counters net-snmp reads move by exactly their number.
- A GETBULK with the default community is answered within 8 × its size and
  one MTU, and a walk of such answers still covers the whole tree.
- request-id is an Integer32: one outside it is refused, not echoed.
"""

import asyncio
import random

from pyasn1.codec.ber import decoder
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
from pysnmp.proto.rfc1902 import Counter32

from protocols.snmp import ber
from protocols.snmp.fastpath import FastPath
from protocols.snmp.intake import MAX_DATAGRAM
from snmp_support import SYSTEM_OID, V3_READ, V3_WRITE, Client, Site, run, scoped_get, v3_message

SYS_NAME = SYSTEM_OID + (5, 0)
IN_BAD_COMMUNITY, IN_ASN_PARSE_ERRS = ((1, 3, 6, 1, 2, 1, 11, n, 0) for n in (4, 6))
USM = (1, 3, 6, 1, 6, 3, 15, 1, 1)
UNSUPPORTED_LEVELS, UNKNOWN_USERS, UNKNOWN_ENGINES = (USM + (n, 0) for n in (1, 3, 4))
AUTH_PRIV_REPORTABLE = 0x07
WINDOW = 50                    # datagrams sent between two probes: the agent's socket buffer holds them


def _state_sizes(engine):
    """(USM security-state entries, message-processing state references) pysnmp holds: what leaked."""
    usm = engine.security_models[3]._cache
    mp = engine.message_processing_subsystems[3]._cache
    return len(usm._Cache__cache_entries), len(mp._Cache__stateReferenceIndex)


def _empty_engine_encrypted(rng, msg_id):
    """authPriv, reportable, no authoritative engine ID, a user name and 'ciphertext': the leaking message."""
    user = bytes(rng.randrange(97, 123) for _ in range(rng.randint(1, 32)))
    return v3_message(msg_id, AUTH_PRIV_REPORTABLE, b"", user, encrypted=rng.randbytes(rng.randint(16, 200)))


async def _counters(s, *oids):
    rc, values, text = await s.get(s.v2c(), *(".".join(map(str, oid)) for oid in oids))
    assert rc == 0, text
    return [int(values[".".join(map(str, oid))]) for oid in oids]


async def _counters_once_taken_in(s, expected, *oids, guard=20.0):
    """The counters, read (with net-snmp) until they equal ``expected`` or the guard ends: a burst from one
    client waits for its share of the loop (daemon/loopshare.py) while snmpget, another client, is served."""
    loop = asyncio.get_running_loop()
    end = loop.time() + guard
    while True:
        counted = await _counters(s, *oids)
        if counted == expected or loop.time() > end:
            return counted
        await asyncio.sleep(0.05)


def _report(data):
    """(msgID, request-id, [(OID, value)]) of a v3 Report, decoded by pyasn1 (not by our codec)."""
    message, rest = decoder.decode(data, asn1Spec=SNMPv3Message())
    assert rest == b"" and int(message["msgVersion"]) == 3
    assert bytes(message["msgGlobalData"]["msgFlags"]) == b"\x00"            # noAuthNoPriv, not reportable
    pdu = message["msgData"]["plaintext"]["data"]
    assert pdu.getName() == "report"
    report = pdu["report"]
    values = [vb[1]["value"]["application-wide"].getComponent() for vb in report[3]]
    assert all(value.tagSet == Counter32.tagSet for value in values)
    varbinds = [(tuple(vb[0]), int(value)) for vb, value in zip(report[3], values)]
    return int(message["msgGlobalData"]["msgID"]), int(report[0]), varbinds


def test_v3_with_an_empty_engine_id_and_an_encrypted_pdu_leaves_no_state_in_pysnmp(tmp_path):
    async def body():
        async with Site(tmp_path) as s:
            engine, transport = s.service.snmp_engine, s.service.transport
            rng = random.Random(13)
            # The leak itself: handed to pysnmp directly, each such message leaves one USM entry behind.
            before = _state_sizes(engine)
            for msg_id in range(20):
                transport._callback_function(transport, ("127.0.0.1", 9), _empty_engine_encrypted(rng, msg_id))
            leaked = _state_sizes(engine)
            assert leaked == (before[0] + 20, before[1]), (before, leaked)

            (unknown_engines,) = await _counters(s, UNKNOWN_ENGINES)
            reports = []
            with Client(s.port) as attacker, Client(s.port) as probe:
                for start in range(0, 5000, WINDOW):
                    for msg_id in range(start, start + WINDOW):
                        attacker.send(_empty_engine_encrypted(rng, 100000 + msg_id))
                    (_rid, status, _i, _vb), _d = await probe.request([SYS_NAME])     # the window was taken in
                    assert status == 0
                    reports += attacker.arrived()
                assert _state_sizes(engine) == leaked       # nothing more kept, by count
                assert await _counters_once_taken_in(s, [unknown_engines + 5000], UNKNOWN_ENGINES) == \
                    [unknown_engines + 5000]
                while len(reports) < 5000:                # the last window's reports (no answer is lost on lo)
                    data = await attacker.receive(5.0)
                    assert data is not None, len(reports)
                    reports.append(data)
            # Each was answered (RFC 3414 3.2.3b) with our engine's report, msgID echoed, request-id 0 (unreadable).
            decoded = [_report(data) for data in reports]
            assert sorted(msg_id for msg_id, _r, _v in decoded) == list(range(100000, 105000))
            assert {(rid, vb[0][0]) for _m, rid, vb in decoded} == {(0, UNKNOWN_ENGINES)}

            # net-snmp's own tools still reach pysnmp's USM (discovery, authPriv, authNoPriv) and leave nothing.
            for user in (V3_READ, V3_WRITE):
                rc, values, text = await s.get(s.v3(*user), "1.3.6.1.2.1.1.5.0")
                assert rc == 0 and values["1.3.6.1.2.1.1.5.0"] == '"M-70"', text
            assert _state_sizes(engine) == leaked
    asyncio.run(body())


def test_costly_or_unauthorised_datagrams_never_reach_pysnmp_and_are_counted(tmp_path):
    async def body():
        async with Site(tmp_path) as s:
            transport = s.service.transport
            engine_id = s.service.engine_value("snmpEngineID")
            handed = []
            pysnmp_callback = transport._callback_function

            def counting(*args):
                handed.append(args[2])
                return pysnmp_callback(*args)
            transport._callback_function = counting

            big_get = ber.encode_request(1, b"publicV2", ber.GET, 5, [SYS_NAME] * 4000)          # 56 KB
            good = ber.encode_request(1, b"publicV2", ber.GET, 6, [SYS_NAME])
            indefinite = b"\x30\x80" + good[2:] + b"\x00\x00"
            plain = scoped_get(9, [SYS_NAME] * 200, engine_id)                     # 2.8 KB
            parse_errors = [
                big_get,                                                       # oversized, right community
                v3_message(1, AUTH_PRIV_REPORTABLE, engine_id, b"control", encrypted=bytes(56000)),   # oversized v3
                indefinite,                                                    # indefinite length (RFC 3417 §8)
                b"\x30\x80" + v3_message(2, 4, b"", b"", scoped_get(1))[2:] + b"\x00\x00",
                good[:-3],                                                     # truncated
                ber.encode_request(1, b"publicV2", ber.GET, 2 ** 80, [SYS_NAME]),   # request-id beyond Integer32
                ber.encode_request(1, b"publicV2", ber.GET, 2 ** 31, [SYS_NAME]),
                ber.encode_request(1, b"publicV2", ber.SET, -2 ** 31 - 1, [SYS_NAME], values=[ber.tlv(4, b"x")]),
                v3_message(3, 4, b"", b"", scoped_get(1), max_size=483),      # msgMaxSize below 484
            ]
            bad_community = [ber.encode_request(1, b"nope", ber.GET, 7, [SYS_NAME] * 200),
                             ber.encode_request(0, b"publicV2", ber.GET, 8, [SYS_NAME]),    # v2c community in v1
                             ber.tlv(ber.SEQUENCE, ber.encode_integer(1) + ber.tlv(4, b"nope")
                                     + ber.tlv(ber.GET, b"\xff" * 40))]     # a PDU of garbage: never read
            unknown_users = [v3_message(10 + n, AUTH_PRIV_REPORTABLE, engine_id, user, encrypted=bytes(3000))
                             for n, user in enumerate((b"nobody", b"", b"contro", b"a" * 32))]
            wrong_levels = [v3_message(20, 4, engine_id, b"control", plain),                     # noAuthNoPriv
                            v3_message(21, 5, engine_id, b"control", plain, boots=1, engine_time=5)]  # authNoPriv
            unknown_engines = [v3_message(30, AUTH_PRIV_REPORTABLE, b"", b"control", encrypted=bytes(3000)),
                               v3_message(31, AUTH_PRIV_REPORTABLE, b"\x80\x00\x00\x00\x01", b"control",
                                          encrypted=bytes(300)),
                               v3_message(32, 4, b"", b"", scoped_get(33))]     # a discovery probe: our report
            invalid = [v3_message(40, 6, engine_id, b"control", encrypted=bytes(64)),  # privacy without auth
                       v3_message(41, AUTH_PRIV_REPORTABLE, engine_id, b"control", plain),  # authPriv, plaintext
                       v3_message(42, 4, engine_id, b"control", plain, model=2)]   # not USM
            before = await _counters(s, IN_ASN_PARSE_ERRS, IN_BAD_COMMUNITY, UNKNOWN_USERS, UNSUPPORTED_LEVELS,
                                     UNKNOWN_ENGINES)
            status_before = dict(s.service.status()["intake"])
            with Client(s.port) as attacker:
                for data in parse_errors + bad_community + unknown_users + wrong_levels + unknown_engines + invalid:
                    attacker.send(data)
                expected = [before[0] + len(parse_errors), before[1] + len(bad_community),
                            before[2] + len(unknown_users), before[3] + len(wrong_levels),
                            before[4] + len(unknown_engines)]
                after = await _counters_once_taken_in(s, expected, IN_ASN_PARSE_ERRS, IN_BAD_COMMUNITY,
                                                      UNKNOWN_USERS, UNSUPPORTED_LEVELS, UNKNOWN_ENGINES)
                assert after == expected, (before, after)
                assert handed == []            # none of them was given to pysnmp (nor to pyasn1)
                status = s.service.status()["intake"]
                assert status["snmpInvalidMsgs"] - status_before.get("snmpInvalidMsgs", 0) == 2
                assert status["snmpUnknownSecurityModels"] - status_before.get("snmpUnknownSecurityModels", 0) == 1
                # Reported (all were reportable): the users, the levels and the engines, each by its msgID; the
                # probe's report carries the probe's request-id, encrypted ones 0.
                reports = dict((msg_id, (rid, vb)) for msg_id, rid, vb in map(_report, attacker.arrived()))
            assert sorted(reports) == [10, 11, 12, 13, 20, 21, 30, 31, 32], sorted(reports)
            assert reports[32] == (33, [(UNKNOWN_ENGINES, after[4])])
            assert reports[20][0] == 9 and reports[20][1][0][0] == UNSUPPORTED_LEVELS
            assert {reports[n][1][0][0] for n in (10, 11, 12, 13)} == {UNKNOWN_USERS}
            assert reports[10][0] == 0

            # What pysnmp does get: a well-formed SET with the write community, and an authenticated v3 SET (net-
            # snmp's discovery probe is answered by the intake, an authenticated v3 read by the v3 fast path).
            await s.set(s.v2c("privateV2"), "1.3.6.1.2.1.1.6.0", "s", "Room 4")
            assert len(handed) == 1
            rc, values, text = await s.get(s.v3(*V3_READ), "1.3.6.1.2.1.1.5.0")
            assert rc == 0 and values["1.3.6.1.2.1.1.5.0"] == '"M-70"', text
            assert len(handed) == 1 and s.service.status()["intake"]["answered_v3"] >= 1
            rc, out, err = await s.set(s.v3(*V3_WRITE), "1.3.6.1.2.1.1.6.0", "s", "Room 5")
            assert rc == 0 or "noAccess" in out + err, out + err       # answered by pysnmp's SET responder
            assert len(handed) >= 2 and all(len(data) <= MAX_DATAGRAM for data in handed)
    asyncio.run(body())


def test_getbulk_with_the_default_community_is_bounded_and_a_walk_still_covers_the_tree(tmp_path):
    async def body():
        async with Site(tmp_path) as s:
            rc, out, err = await run("snmpwalk", "-On", "-OQ", "-Oe", *s.v2c(), s.target, ".1")   # GETNEXT
            assert rc == 0, err
            expected = [tuple(int(x) for x in line.split(" = ")[0].strip(".").split("."))
                        for line in out.splitlines() if " = " in line and "No more variables" not in line]
            walked, round_trips, largest = [], 0, 0
            with Client(s.port) as client:
                cursor = (1, 0)
                while True:
                    request = ber.encode_request(1, b"publicV2", ber.GETBULK, client.request_id + 1, [cursor], 0, 1000)
                    (_rid, status, _i, varbinds), data = await client.request([cursor], ber.GETBULK,
                                                                              non_repeaters=0, max_repetitions=1000)
                    round_trips += 1
                    assert status == 0 and varbinds
                    bound = min(FastPath.bulk_mtu, FastPath.bulk_factor * len(request))
                    assert len(data) <= bound or len(varbinds) == 1, (len(request), len(data), len(varbinds))
                    largest = max(largest, len(data) / len(request))
                    ended = [vb for vb in varbinds if vb[1] == ber.END_OF_MIB_VIEW]
                    walked += [vb[0] for vb in varbinds if vb[1] != ber.END_OF_MIB_VIEW]
                    if ended:
                        break
                    cursor = varbinds[-1][0]
            assert walked == expected              # the whole tree, in order, nothing twice
            assert round_trips >= len(expected) // 40
            print("GETBULK walk: %d OIDs in %d round trips, largest answer %.1f x its request"
                  % (len(walked), round_trips, largest))
            # net-snmp's snmpbulkwalk asking for 1000 repetitions: the same tree, in more round trips.
            rc, out, err = await run("snmpbulkwalk", "-On", "-OQ", "-Oe", "-Cr1000", *s.v2c(), s.target, ".1")
            assert rc == 0 and "not increasing" not in err, err
            bulk = [tuple(int(x) for x in line.split(" = ")[0].strip(".").split("."))
                    for line in out.splitlines() if " = " in line and "No more variables" not in line]
            assert bulk == expected
    asyncio.run(body())


def test_a_request_id_beyond_integer32_is_refused_not_echoed(tmp_path):
    async def body():
        async with Site(tmp_path) as s:
            with Client(s.port) as client:
                (parse_errors,) = await _counters(s, IN_ASN_PARSE_ERRS)
                for request_id in (2 ** 80, 2 ** 31, -2 ** 31 - 1, 2 ** 32 + 1):
                    for pdu in (ber.GET, ber.GETNEXT, ber.GETBULK):
                        client.send(ber.encode_request(1, b"publicV2", pdu, request_id, [SYS_NAME]))
                    client.send(ber.encode_request(0, b"public", ber.GET, request_id, [SYS_NAME]))
                assert await _counters_once_taken_in(s, [parse_errors + 16], IN_ASN_PARSE_ERRS) == \
                    [parse_errors + 16]
                assert client.arrived() == []
                # The ends of the range are answered, echoed exactly.
                for request_id in (2 ** 31 - 1, -2 ** 31):
                    client.request_id = request_id - 1
                    (rid, status, _i, varbinds), _d = await client.request([SYS_NAME])
                    assert (rid, status, varbinds[0][2]) == (request_id, 0, b"M-70")
    asyncio.run(body())
