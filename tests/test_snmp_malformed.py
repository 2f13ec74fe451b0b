"""Malformed SNMP input from a raw UDP socket: refused and counted, never answered wrongly, never fatal.

Truncated BER, wrong and huge lengths, wrong versions, GETBULK asking for
10^6 repetitions, then 10,000 fuzzed datagrams while valid requests keep
being answered.
"""

import asyncio
import collections
import random

from pyasn1.codec.ber import decoder
from pyasn1.error import PyAsn1Error
from pysnmp.proto import api
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message

from protocols.snmp import ber
from protocols.snmp.fastpath import FastPath
from protocols.snmp.intake import MAX_DATAGRAM
from snmp_support import SYSTEM_OID, V3_READ, Client, Site, run, signed_v3

SYS_NAME = SYSTEM_OID + (5, 0)
IN_ASN_PARSE_ERRS = (1, 3, 6, 1, 2, 1, 11, 6, 0)
IN_BAD_VERSIONS = (1, 3, 6, 1, 2, 1, 11, 3, 0)


def valid_get():
    return ber.encode_request(1, b"publicV2", ber.GET, 77, [SYS_NAME])


def test_truncated_wrong_and_huge_lengths_and_wrong_versions_get_no_answer(tmp_path):
    async def body():
        async with Site(tmp_path) as s:
            with Client(s.port) as client:
                good = valid_get()
                parse_errors = await client.counter(IN_ASN_PARSE_ERRS)
                bad = [good[:n] for n in range(1, len(good))]                        # every truncation
                for position in (1, 6, 16, 18, 26):                                  # length bytes off by ±1
                    for delta in (-1, 1):
                        damaged = bytearray(good)
                        damaged[position] = (damaged[position] + delta) & 0xFF
                        bad.append(bytes(damaged))
                bad += [b"\x30\x84\xff\xff\xff\xff" + good[2:],                       # huge lengths
                        b"\x30\x83\xff\xff\xff" + good[2:],
                        b"\x30\x89" + b"\xff" * 9 + good[2:],
                        good[:1] + b"\x82\xff\xf0" + good[2:],
                        b"\x30\x80" + good[2:] + b"\x00\x00",                          # indefinite length
                        b"", b"\x00", b"\xff" * 1400]
                for data in bad:
                    client.send(data)
                # The counter's answer proves the agent went through them all; what came before it can only
                # be answers to a damaged message pysnmp could still read (request ID 77), never garbage.
                before = []
                assert await client.counter(IN_ASN_PARSE_ERRS, before) > parse_errors + len(good) // 2
                assert [ber.decode_response(answer)[0] for answer in before] == [77] * len(before), before

                bad_versions = await client.counter(IN_BAD_VERSIONS)
                for version in (2, 4, 7, 1000):
                    client.send(ber.encode_request(version, b"publicV2", ber.GET, 78, [SYS_NAME]))
                client.send(ber.encode_request(0, b"public", ber.GETBULK, 79, [SYS_NAME], 0, 5))  # no GETBULK in v1
                # answered first, so none of those five was answered; the four versions counted
                assert await client.counter(IN_BAD_VERSIONS) == bad_versions + 4
                (_rid, status, _i, varbinds), _d = await client.request([SYS_NAME])
                assert status == 0 and varbinds[0][2] == b"M-70"
    asyncio.run(body())


def test_getbulk_of_a_million_repetitions_is_bounded(tmp_path):
    async def body():
        async with Site(tmp_path) as s:
            with Client(s.port) as client:
                for repeaters in (1, 3, 7):
                    request = ber.encode_request(1, b"publicV2", ber.GETBULK, client.request_id + 1,
                                                 [(1, 3)] * repeaters, 0, 10 ** 6)
                    (_rid, status, _i, varbinds), data = await client.request(
                        [(1, 3)] * repeaters, ber.GETBULK, non_repeaters=0, max_repetitions=10 ** 6)
                    # At most 8 x the request and one MTU, but at least one varbind (sysDescr alone is longer).
                    assert status == 0 and 1 <= len(varbinds) <= FastPath.max_varbinds
                    bound = min(FastPath.bulk_mtu, FastPath.bulk_factor * len(request))
                    assert len(data) <= bound or len(varbinds) == 1, (len(data), bound, len(varbinds))
                    oids = [vb[0] for vb in varbinds[::repeaters]]
                    assert oids == sorted(oids)
                # As many varbinds as the intake takes in one datagram (4 KB): the answer is bounded too (tooBig
                # or complete).
                varbind = ber.encode_varbind(ber.encode_oid(SYS_NAME), b"\x05\x00")
                names = [SYS_NAME] * ((MAX_DATAGRAM - 40) // len(varbind))
                assert len(ber.encode_request(1, b"publicV2", ber.GET, 1, names)) <= MAX_DATAGRAM
                (_rid, status, _i, varbinds), data = await client.request(names)
                assert len(data) <= FastPath.max_message and status in (0, ber.TOO_BIG)
                # SNMPv3 (pysnmp's responder): bounded as well.
                rc, out, err = await run("snmpbulkget", "-On", *s.v3(*V3_READ), "-Cn0", "-Cr1000000", s.target, ".1")
                assert rc == 0, err
                assert 1 <= len(out.splitlines()) <= 64
    asyncio.run(body())


def _v3_discovery():
    """An SNMPv3 engine-discovery GET (empty USM parameters), as managers send first."""
    usm = ber.tlv(ber.SEQUENCE, ber.tlv(4, b"") + ber.encode_integer(0) + ber.encode_integer(0) +
                  ber.tlv(4, b"") + ber.tlv(4, b"") + ber.tlv(4, b""))
    header = ber.tlv(ber.SEQUENCE, ber.encode_integer(4242) + ber.encode_integer(65507) + ber.tlv(4, b"\x04") +
                     ber.encode_integer(3))
    pdu = ber.tlv(ber.GET, ber.encode_integer(9) + ber.encode_integer(0) + ber.encode_integer(0) +
                  ber.tlv(ber.SEQUENCE, b""))
    scoped = ber.tlv(ber.SEQUENCE, ber.tlv(4, b"") + ber.tlv(4, b"") + pdu)
    return ber.tlv(ber.SEQUENCE, ber.encode_integer(3) + header + ber.tlv(4, usm) + scoped)


def _mutations(rng, seeds, count):
    for _ in range(count):
        seed = bytearray(rng.choice(seeds))
        kind = rng.randrange(6)
        if kind == 0:
            for _ in range(rng.randint(1, 6)):
                seed[rng.randrange(len(seed))] = rng.randrange(256)
        elif kind == 1:
            seed = seed[:rng.randrange(len(seed))]
        elif kind == 2:
            at = rng.randrange(len(seed))
            seed[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 20)))
        elif kind == 3:
            seed = bytearray(rng.randbytes(rng.randint(0, 1500)))
        elif kind == 4:
            at = rng.randrange(len(seed))
            seed[at] = rng.choice((0x80, 0x81, 0x82, 0x83, 0x84, 0xff, 0x00, 0x7f))
        else:
            seed = seed + seed[rng.randrange(len(seed)):]
        yield bytes(seed)


COMMUNITIES = {b"public", b"private", b"publicV2", b"privateV2"}     # the defaults (SPEC §10)
WINDOW = 20                  # fuzzed datagrams between two probes: at most this many wait in the agent's buffer


def _parts(data):
    """(PDU tag, [version, community, request ID, error status, error index, varbinds] as raw TLV contents)
    of a v1/v2c message, by framing only (no value is decoded)."""
    _tag, start, end = ber.read_tlv(data, 0, len(data))
    assert end == len(data), data.hex()
    parts = []
    for _field in range(2):
        _tag, s, e = ber.read_tlv(data, start, end)
        parts.append(bytes(data[s:e]))
        start = e
    pdu_tag, s, pdu_end = ber.read_tlv(data, start, end)
    assert pdu_end == end, data.hex()
    while s < pdu_end:
        _tag, vs, e = ber.read_tlv(data, s, pdu_end)
        parts.append(bytes(data[vs:e]))
        s = e
    return pdu_tag, parts


def is_echo(answer, requests):
    """Whether ``answer`` is an error response "of identical form" to one of ``requests`` (RFC 1157 4.1.2,
    RFC 3416 4.2.1): same version, community, request ID and variable bindings, only the PDU type and the
    error status and index differing. Then its bindings are the request's, whatever those held."""
    try:
        tag, parts = _parts(answer)
    except (ber.BerError, AssertionError):
        return False
    if tag != ber.RESPONSE or len(parts) != 6 or parts[3] in (b"", b"\x00"):
        return False
    for request in requests:
        try:
            _tag, asked = _parts(request)
        except (ber.BerError, AssertionError):
            continue
        if len(asked) == 6 and asked[:3] + asked[5:] == parts[:3] + parts[5:]:
            return True
    return False


def inspect_answer(data, requests):
    """One datagram the agent sent back to a fuzzed one, decoded by pyasn1 (not by our codec): a whole SNMP
    message; in v1/v2c a GetResponse with a configured community, in v3 a Report or a Response. Its kind.

    The one answer pyasn1 may refuse: an error response that echoes bindings the agent accepted in a request
    although they are no SNMP value (a GET binding of tag 0x2E, say), as the RFCs say an error response echoes
    them. It is then checked to be exactly that echo of a request sent just before."""
    try:
        return _decoded_answer(data)
    except PyAsn1Error:
        assert is_echo(data, requests), ("an answer pyasn1 cannot read", data.hex())
        return "echo of bindings that are no SNMP value"


def _decoded_answer(data):
    version = int(api.decodeMessageVersion(data))
    if version == 3:
        message, rest = decoder.decode(data, asn1Spec=SNMPv3Message())
        assert rest == b"" and int(message["msgVersion"]) == 3, data.hex()
        scoped = message["msgData"]
        if scoped.getName() == "plaintext":
            kind = scoped["plaintext"]["data"].getName()
            assert kind in ("report", "response"), (kind, data.hex())
            return "v3 " + kind
        return "v3 encrypted"
    assert version in (0, 1), data.hex()
    module = api.PROTOCOL_MODULES[version]
    message, rest = decoder.decode(data, asn1Spec=module.Message())
    assert rest == b"", data.hex()
    assert bytes(module.apiMessage.get_community(message)) in COMMUNITIES, data.hex()
    pdu = module.apiMessage.get_pdu(message)
    assert pdu.tagSet == module.GetResponsePDU.tagSet, data.hex()
    assert 0 <= int(module.apiPDU.get_error_status(pdu)) <= 18, data.hex()
    return "v%d response" % (version + 1 if version else 1)


def _v3_signed_get(site):
    """A valid authPriv GET of the read user (the v3 fast path's input), in the time window for a few minutes."""
    from protocols.snmp import usm
    engine_id = site.service.engine_id()
    user = usm.localised_user(b"control", "SHA", "Control-2024", "AES", "Control-2024", engine_id)
    pdu = ber.tlv(ber.GET, ber.encode_integer(9) + b"\x02\x01\x00\x02\x01\x00"
                  + ber.tlv(ber.SEQUENCE, ber.encode_varbind(ber.encode_oid(SYS_NAME), b"\x05\x00")))
    return signed_v3(user, engine_id, site.service.engine_value("snmpEngineBoots"),
                     site.service.engine_value("snmpEngineTime"), 9,
                     ber.tlv(ber.SEQUENCE, ber.tlv(4, engine_id) + b"\x04\x00" + pdu))


def test_ten_thousand_fuzzed_datagrams_while_valid_requests_keep_being_answered(tmp_path):
    async def body():
        loop = asyncio.get_running_loop()
        escaped = []
        loop.set_exception_handler(lambda _loop, context: escaped.append(context))
        async with Site(tmp_path) as s:
            with Client(s.port) as fuzz, Client(s.port) as probe:
                rng = random.Random(20261122)
                seeds = [valid_get(),
                         ber.encode_request(1, b"publicV2", ber.GETNEXT, 5, [(1, 3, 6, 1, 4, 1, 4555)]),
                         ber.encode_request(1, b"publicV2", ber.GETBULK, 6, [(1, 3)], 0, 50),
                         ber.encode_request(1, b"privateV2", ber.SET, 7, [SYS_NAME], values=[ber.tlv(4, b"x")]),
                         ber.encode_request(0, b"public", ber.GET, 8, [SYS_NAME]),
                         _v3_discovery(), _v3_signed_get(s)]
                answers, kinds = [], collections.Counter()
                datagrams = list(_mutations(rng, seeds, 10000))
                # Paced by the probes: a window of fuzzed datagrams, then a valid GET from another socket whose
                # answer proves the agent took the window in (no buffer overflow, so none lost on the way).
                for start in range(0, len(datagrams), WINDOW):
                    for data in datagrams[start:start + WINDOW]:
                        fuzz.send(data)
                    (_rid, status, _i, varbinds), _d = await probe.request([SYS_NAME])
                    answers.append((status, varbinds[0][2]))
                    recent = datagrams[max(0, start - WINDOW):start + WINDOW]
                    for data in fuzz.arrived():                             # what came back to the fuzz
                        kinds[inspect_answer(data, recent)] += 1
                assert answers == [(0, b"M-70")] * (10000 // WINDOW)     # every probe; fuzzed SETs changed nothing
                assert kinds["v2 response"] + kinds["v1 response"] > 0 and kinds["v3 report"] > 0, kinds
                assert s.service.running
                rc, values, text = await s.get(s.v3(*V3_READ), "1.3.6.1.2.1.1.5.0")
                assert rc == 0, text
                parse_errors = await probe.counter(IN_ASN_PARSE_ERRS)
                assert parse_errors > 1000
        assert escaped == [], escaped[:3]
    asyncio.run(body())


USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
NOT_IN_TIME_WINDOWS, WRONG_DIGESTS, DECRYPTION_ERRORS = (USM_STATS + (n, 0) for n in (2, 5, 6))


def _v3_answer(data, user):
    """('response', request-id, [(oid, value)]) or ('report', request-id, [oid]) of an answer, decoded by pyasn1;
    a response's digest is checked with the standard library's hmac and its scoped PDU decrypted."""
    import hmac as stdlib_hmac

    from pysnmp.proto.mpmod.rfc3412 import ScopedPDU
    from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters
    message, rest = decoder.decode(data, asn1Spec=SNMPv3Message())
    assert rest == b""
    params, _ = decoder.decode(bytes(message["msgSecurityParameters"]), asn1Spec=UsmSecurityParameters())
    flags = bytes(message["msgGlobalData"]["msgFlags"])[0]
    if flags & 0x02:
        digest = bytes(params["msgAuthenticationParameters"])
        unsigned = data.replace(digest, bytes(len(digest)), 1)
        assert stdlib_hmac.digest(user.auth_key, unsigned, user.hash_name)[:user.mac_length] == digest
        plain = user.crypt(bytes(message["msgData"]["encryptedPDU"]), int(params["msgAuthoritativeEngineBoots"]),
                           int(params["msgAuthoritativeEngineTime"]), bytes(params["msgPrivacyParameters"]), False)
        scoped, rest = decoder.decode(plain, asn1Spec=ScopedPDU())
        assert rest == b""
    else:
        scoped = message["msgData"]["plaintext"]
    pdu = scoped["data"]
    kind = pdu.getName()
    inner = pdu[kind]
    varbinds = api.v2c.apiPDU.get_varbinds(inner)
    if kind == "report":
        return kind, int(inner["request-id"]), [tuple(oid) for oid, _value in varbinds]
    return kind, int(inner["request-id"]), [(tuple(oid), bytes(value)) for oid, value in varbinds]


def test_v3_authpriv_fast_path_answers_and_every_damaged_message_gets_its_report(tmp_path):
    """A signed, encrypted GET is answered by the v3 fast path (its digest checked with the stdlib's hmac); a
    bad digest, a wrong key, a corrupted or truncated ciphertext and a replay outside the time window each get
    the USM report RFC 3414 §3.2 asks for and are counted; a truncated datagram is dropped as a parse error."""
    from protocols.snmp import usm

    async def body():
        async with Site(tmp_path) as s:
            service = s.service
            engine_id = service.engine_id()
            user = usm.localised_user(b"control", "SHA", "Control-2024", "AES", "Control-2024", engine_id)
            stranger = usm.localised_user(b"control", "SHA", "Wrong-pass1", "AES", "Control-2024", engine_id)
            boots = service.engine_value("snmpEngineBoots")

            def scoped(request_id):
                pdu = ber.tlv(ber.GET, ber.encode_integer(request_id) + b"\x02\x01\x00\x02\x01\x00"
                              + ber.tlv(ber.SEQUENCE, ber.encode_varbind(ber.encode_oid(SYS_NAME), b"\x05\x00")))
                return ber.tlv(ber.SEQUENCE, ber.tlv(4, engine_id) + b"\x04\x00" + pdu)

            def message(request_id, **kw):
                now = kw.pop("engine_time", service.engine_value("snmpEngineTime"))
                return signed_v3(user, engine_id, kw.pop("boots", boots), now, request_id, scoped(request_id), **kw)

            with Client(s.port) as client:
                async def exchange(data):
                    client.send(data)
                    answer = await client.receive(2.0)
                    return None if answer is None else _v3_answer(answer, user)

                async def counter(oid):
                    (_rid, status, _i, varbinds), _d = await client.request([oid])
                    return varbinds[0][2]

                answered = service.intake.counters["answered_v3"]
                good = message(501)
                assert await exchange(good) == ("response", 501, [(SYS_NAME, b"M-70")])
                assert service.intake.counters["answered_v3"] == answered + 1
                # A replay inside the window is answered again (USM has no replay cache, RFC 3414 §1.5.2).
                assert (await exchange(good))[0] == "response"

                cases = []
                flipped = bytearray(message(502))
                where = bytes(flipped).find(b"\x04\x0c") + 2             # the 12-octet HMAC-SHA-96 digest
                flipped[where] ^= 0x01
                cases.append(("bad digest", bytes(flipped), WRONG_DIGESTS, 502))
                cases.append(("wrong key", message(503, mac_user=stranger), WRONG_DIGESTS, 503))
                cases.append(("garbage ciphertext", message(504, encrypted=bytes(range(40))), DECRYPTION_ERRORS, 0))
                cases.append(("truncated ciphertext", message(505, encrypted=user.crypt(
                    scoped(505), boots, service.engine_value("snmpEngineTime"), b"\0" * 7 + b"\1", True)[:-9]),
                    DECRYPTION_ERRORS, 0))
                cases.append(("an earlier boot", message(506, boots=boots - 1), NOT_IN_TIME_WINDOWS, 506))
                cases.append(("10 s past the window", message(510, engine_time=service.engine_value("snmpEngineTime")
                                                              + 160), NOT_IN_TIME_WINDOWS, 510))
                cases.append(("too new", message(507, engine_time=service.engine_value("snmpEngineTime") + 1000),
                              NOT_IN_TIME_WINDOWS, 507))
                cases.append(("a later boot", message(508, boots=boots + 1), NOT_IN_TIME_WINDOWS, 508))
                for name, data, oid, _request_id in cases:
                    before = await counter(oid)
                    answer = await exchange(data)
                    assert answer is not None and answer[0] == "report" and answer[2] == [oid], (name, answer)
                    assert await counter(oid) == before + 1, name
                assert service.intake.counters["answered_v3"] == answered + 2     # none of them was answered

                parse_errors = await counter(IN_ASN_PARSE_ERRS)
                assert await exchange(good[:-5]) is None                          # truncated datagram
                assert await counter(IN_ASN_PARSE_ERRS) == parse_errors + 1
                assert (await exchange(message(509)))[:2] == ("response", 509)   # and the agent still answers
    asyncio.run(body())
