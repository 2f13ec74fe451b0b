"""Golden encodings: our strict SNMP BER codec against pyasn1, the register codecs against `struct`.

Every expected byte string below is written out by hand from the rules
(X.690 BER, RFC 2578/3416 application types, IEEE 754 binary32, the
Socomec string conventions of socomec-registers.md §0 and §6.2), and the
independent implementation (pyasn1 / struct) must agree with the literal:
a test that only compared our encoder with our decoder could not find a
wrong encoding.
"""

import struct

import pytest
from pyasn1.codec.ber import decoder as pyasn1_decoder, encoder as pyasn1_encoder
from pyasn1.type import univ
from pysnmp.proto import api, rfc1902

from core import modbus_rtu as rtu
from protocols.snmp import ber

# ---------------------------------------------------------------- SNMP BER (protocols/snmp/ber.py)

# INTEGER (X.690 8.3: two's complement, minimal number of octets)
INTEGERS = (
    (0, "020100"),
    (127, "02017f"),
    (128, "02020080"),
    (255, "020200ff"),
    (256, "02020100"),
    (-1, "0201ff"),
    (-128, "020180"),
    (-129, "0202ff7f"),
    (2 ** 31 - 1, "02047fffffff"),
    (-2 ** 31, "020480000000"),
)

# Counter32 [APPLICATION 1], Gauge32 [APPLICATION 2], TimeTicks [APPLICATION 3], Counter64 [APPLICATION 6]
# (RFC 2578 §7.1): unsigned, so a value with its top bit set takes a leading 0x00.
UNSIGNED = (
    (ber.COUNTER32, rfc1902.Counter32, 0, "410100"),
    (ber.COUNTER32, rfc1902.Counter32, 127, "41017f"),
    (ber.COUNTER32, rfc1902.Counter32, 2 ** 31, "41050080000000"),
    (ber.COUNTER32, rfc1902.Counter32, 2 ** 32 - 1, "410500ffffffff"),
    (ber.GAUGE32, rfc1902.Gauge32, 0, "420100"),
    (ber.GAUGE32, rfc1902.Gauge32, 230120, "42030382e8"),
    (ber.GAUGE32, rfc1902.Gauge32, 2 ** 32 - 1, "420500ffffffff"),
    (ber.TIMETICKS, rfc1902.TimeTicks, 2 ** 32 - 1, "430500ffffffff"),
    (ber.COUNTER64, rfc1902.Counter64, 0, "460100"),
    (ber.COUNTER64, rfc1902.Counter64, 2 ** 63, "4609008000000000000000"),
    (ber.COUNTER64, rfc1902.Counter64, 2 ** 64 - 1, "460900ffffffffffffffff"),
)

# OBJECT IDENTIFIER (X.690 8.19): first two arcs as 40*X+Y, base-128 sub-identifiers, high bit = more.
OIDS = (
    # the M-70 manual's annex I example, I1 of load 1 of the device at address 5: 4555 = 35*128+75,
    # 10000 = 78*128+16
    ((1, 3, 6, 1, 4, 1, 4555, 10, 20, 20, 1, 10000, 5, 1), "060f2b06010401a34b0a141401ce100501"),
    ((1, 3, 6, 1, 2, 1, 1, 1, 0), "06082b06010201010100"),
    ((1, 3, 127), "06022b7f"),
    ((1, 3, 128), "06032b8100"),
    ((1, 3, 16383), "06032bff7f"),
    ((1, 3, 16384), "06042b818000"),
    ((1, 3, 6, 1, 4, 1, 4555, 2 ** 32 - 1), "060c2b06010401a34b8fffffff7f"),
    ((2, 100, 3), "0603813403"),                      # X.690 8.19.5's own example
    ((0, 0), "060100"),
)

# OCTET STRING (X.690 8.7, 8.1.3): short length below 128, then 0x81 nn, 0x82 nn nn.
OCTET_STRING_HEADERS = ((0, "0400"), (127, "047f"), (128, "048180"), (300, "0482012c"))


# pyasn1 (0.6.x) encodes -2^(8k-1) with a redundant leading 0xFF (pyasn1/pyasn1 issue #117: -128 as
# 0202ff80, against X.690 8.3.2); for those its *decoder* is the independent check, not its encoder.
PYASN1_NON_MINIMAL = (-128, -2 ** 31)


@pytest.mark.parametrize("value, golden", INTEGERS, ids=[str(v) for v, _g in INTEGERS])
def test_integer_encodings(value, golden):
    expected = bytes.fromhex(golden)
    if value not in PYASN1_NON_MINIMAL:
        assert pyasn1_encoder.encode(univ.Integer(value)) == expected, "the literal itself is wrong"
    assert ber.encode_integer(value) == expected
    tag, start, end = ber.read_tlv(expected, 0, len(expected))
    assert tag == ber.INTEGER and ber.decode_integer(expected, start, end) == value
    decoded, rest = pyasn1_decoder.decode(ber.encode_integer(value), asn1Spec=univ.Integer())
    assert int(decoded) == value and rest == b""


@pytest.mark.parametrize("tag, pyasn1_type, value, golden", UNSIGNED,
                         ids=["%s-%d" % (t.__name__, v) for _tag, t, v, _g in UNSIGNED])
def test_snmp_application_type_limits(tag, pyasn1_type, value, golden):
    expected = bytes.fromhex(golden)
    assert pyasn1_encoder.encode(pyasn1_type(value)) == expected, "the literal itself is wrong"
    assert ber.encode_integer(value, tag) == expected
    assert ber.encode_value(tag, value) == expected
    decoded, rest = pyasn1_decoder.decode(ber.encode_value(tag, value), asn1Spec=pyasn1_type())
    assert int(decoded) == value and rest == b""


@pytest.mark.parametrize("oid, golden", OIDS, ids=[".".join(map(str, o))[:40] for o, _g in OIDS])
def test_object_identifier_encodings(oid, golden):
    expected = bytes.fromhex(golden)
    assert pyasn1_encoder.encode(univ.ObjectIdentifier(oid)) == expected, "the literal itself is wrong"
    assert ber.encode_oid(oid) == expected
    tag, start, end = ber.read_tlv(expected, 0, len(expected))
    assert tag == ber.OBJECT_IDENTIFIER and ber.decode_oid(expected, start, end) == oid
    decoded, _rest = pyasn1_decoder.decode(ber.encode_oid(oid), asn1Spec=univ.ObjectIdentifier())
    assert tuple(decoded) == oid


@pytest.mark.parametrize("size, header", OCTET_STRING_HEADERS, ids=[str(s) for s, _h in OCTET_STRING_HEADERS])
def test_octet_string_lengths(size, header):
    payload = bytes((n * 7) & 0xFF for n in range(size))
    expected = bytes.fromhex(header) + payload
    assert pyasn1_encoder.encode(univ.OctetString(payload)) == expected, "the literal itself is wrong"
    assert ber.encode_value(ber.OCTET_STRING, payload) == expected
    tag, start, end = ber.read_tlv(expected, 0, len(expected))
    assert (tag, expected[start:end], end) == (ber.OCTET_STRING, payload, len(expected))


def test_null_and_the_v2c_exceptions():
    # NULL (X.690 8.8) and the RFC 3416 varbind exceptions [CONTEXT 0..2] IMPLICIT NULL
    assert ber.encode_value(ber.NULL, None) == bytes.fromhex("0500") == pyasn1_encoder.encode(univ.Null(""))
    assert ber.encode_value(ber.NO_SUCH_OBJECT, None) == bytes.fromhex("8000")
    assert ber.encode_value(ber.NO_SUCH_INSTANCE, None) == bytes.fromhex("8100")
    assert ber.encode_value(ber.END_OF_MIB_VIEW, None) == bytes.fromhex("8200")


MANUAL_OID = (1, 3, 6, 1, 4, 1, 4555, 10, 20, 20, 1, 10000, 5, 1)
V2C = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]


def test_a_whole_get_request_reads_the_same_in_pyasn1():
    # our request, byte for byte as written by hand: SEQUENCE { version 1, community, GetRequest-PDU {
    # request-id 0x1234, error-status 0, error-index 0, SEQUENCE { SEQUENCE { OID, NULL } } } }
    golden = bytes.fromhex("3029" "020101" "04087075626c69635632" "a01a" "02021234" "020100" "020100"
                           "300e" "300c" "0608" "2b06010201010100" "0500")
    ours = ber.encode_request(1, b"publicV2", ber.GET, 0x1234, [(1, 3, 6, 1, 2, 1, 1, 1, 0)])
    assert ours == golden
    message, rest = pyasn1_decoder.decode(ours, asn1Spec=V2C.Message())
    assert rest == b""
    pdu = V2C.apiMessage.get_pdu(message)
    assert int(V2C.apiMessage.get_version(message)) == 1
    assert bytes(V2C.apiMessage.get_community(message)) == b"publicV2"
    assert int(V2C.apiPDU.get_request_id(pdu)) == 0x1234
    assert [tuple(oid) for oid, _v in V2C.apiPDU.get_varbinds(pdu)] == [(1, 3, 6, 1, 2, 1, 1, 1, 0)]

    # and a request pysnmp builds is decoded by ours
    pdu = V2C.GetRequestPDU()
    V2C.apiPDU.set_defaults(pdu)
    V2C.apiPDU.set_request_id(pdu, 77)
    V2C.apiPDU.set_varbinds(pdu, [(MANUAL_OID, V2C.Null(""))])
    message = V2C.Message()
    V2C.apiMessage.set_defaults(message)
    V2C.apiMessage.set_community(message, "publicV2")
    V2C.apiMessage.set_pdu(message, pdu)
    request = ber.decode_request(pyasn1_encoder.encode(message))
    assert (request.version, request.community, request.pdu_type, request.request_id, request.oids) == (
        1, b"publicV2", ber.GET, 77, [MANUAL_OID])


def test_a_response_from_our_encoder_reads_the_same_in_pyasn1():
    request = ber.decode_request(ber.encode_request(1, b"publicV2", ber.GET, -5, [MANUAL_OID] * 4))
    values = ((ber.GAUGE32, 7514), (ber.INTEGER, -1500), (ber.COUNTER64, 2 ** 40 + 3),
              (ber.OCTET_STRING, b"M-70"))
    varbinds = b"".join(ber.encode_varbind(raw, ber.encode_value(tag, value))
                        for raw, (tag, value) in zip(request.raw_oids, values))
    message, rest = pyasn1_decoder.decode(ber.encode_response(request.raw_head, request.raw_request_id, 0, 0,
                                                              varbinds), asn1Spec=V2C.Message())
    assert rest == b""
    pdu = V2C.apiMessage.get_pdu(message)
    assert int(V2C.apiPDU.get_request_id(pdu)) == -5
    assert (int(V2C.apiPDU.get_error_status(pdu)), int(V2C.apiPDU.get_error_index(pdu))) == (0, 0)
    got = [(tuple(oid), value) for oid, value in V2C.apiPDU.get_varbinds(pdu)]
    assert [oid for oid, _v in got] == [MANUAL_OID] * 4
    kinds = [value for _oid, value in got]
    assert isinstance(kinds[0], rfc1902.Gauge32) and int(kinds[0]) == 7514
    assert isinstance(kinds[1], rfc1902.Integer) and int(kinds[1]) == -1500
    assert isinstance(kinds[2], rfc1902.Counter64) and int(kinds[2]) == 2 ** 40 + 3
    assert isinstance(kinds[3], rfc1902.OctetString) and bytes(kinds[3]) == b"M-70"


# ---------------------------------------------------------------- register codecs (core/modbus_rtu.py)

# IEEE 754 binary32, high word first (socomec-registers.md §0: big-endian words)
FLOATS = (
    (0.0, 0x0000, 0x0000),
    (-0.0, 0x8000, 0x0000),
    (1.0, 0x3F80, 0x0000),
    (-2.0, 0xC000, 0x0000),
    (50.0, 0x4248, 0x0000),
    (230.5, 0x4366, 0x8000),
    (0.1, 0x3DCC, 0xCCCD),
    (4500000.0, 0x4A89, 0x5440),
)


@pytest.mark.parametrize("value, high, low", FLOATS, ids=[repr(v) for v, _h, _l in FLOATS])
def test_float32_words(value, high, low):
    assert struct.pack(">f", value) == struct.pack(">HH", high, low), "the literal itself is wrong"
    assert rtu.encode_value("f32", value) == [high, low]
    assert rtu.encode_value("f32", value, word_order="little") == [low, high]
    decoded = rtu.decode_value("f32", [high, low])
    assert struct.pack(">f", decoded) == struct.pack(">HH", high, low)
    assert decoded == struct.unpack(">f", struct.pack(">f", value))[0]
    assert rtu.decode_value("f32", [low, high], word_order="little") == decoded


def test_32_bit_integers_are_high_word_first():
    # socomec-registers.md §0: "(reg[n] << 16) + reg[n+1]"; S32 two's complement
    assert rtu.decode_value("u32", [0x0001, 0x0002]) == 65538
    assert rtu.decode_value("s32", [0xFFFF, 0xFFFE]) == -2
    assert rtu.decode_value("s32", [0xFFFF, 0xFB2E]) == -1234
    assert rtu.encode_value("s32", -1234) == [0xFFFF, 0xFB2E]
    assert rtu.decode_value("s16", [0xFC9A]) == -870
    assert rtu.decode_value("u64", [0x0000, 0x0001, 0x0000, 0x0000]) == 2 ** 32
    assert struct.unpack(">i", struct.pack(">HH", 0xFFFF, 0xFB2E))[0] == -1234


def test_string_16_is_one_character_per_word_in_the_low_byte():
    # socomec-registers.md §0: '"SOCO" at 0xC350 reads as words 0x0053 0x004F 0x0043 0x004F'
    assert rtu.encode_string_16("SOCO", 4) == [0x0053, 0x004F, 0x0043, 0x004F]
    assert rtu.decode_string_16([0x0053, 0x004F, 0x0043, 0x004F]) == "SOCO"
    assert struct.pack(">4H", 0x0053, 0x004F, 0x0043, 0x004F) == b"\x00S\x00O\x00C\x00O"


def test_string_norm_is_two_characters_per_word_first_in_the_high_byte():
    # socomec-registers.md §0 and convention §6.2: 8 words = 16 characters, NUL padded
    words = [0x534F, 0x434F, 0x4D45, 0x4300, 0x0000, 0x0000, 0x0000, 0x0000]
    assert struct.pack(">8H", *words) == b"SOCOMEC" + b"\x00" * 9
    assert rtu.encode_string_norm("SOCOMEC", 8) == words
    assert rtu.decode_string_norm(words) == "SOCOMEC"
    # product VLO example "880100" in its 4-word field
    assert rtu.encode_string_norm("880100", 4) == [0x3838, 0x3031, 0x3030, 0x0000]
    # a full field has no terminator; readers strip NUL and spaces (convention §6.2)
    full = [0x434F, 0x554E, 0x5449, 0x5320, 0x4532, 0x3320, 0x2020, 0x2020]     # "COUNTIS E23     "
    assert struct.pack(">8H", *full) == b"COUNTIS E23     "
    assert rtu.decode_string_norm(full) == "COUNTIS E23"
    assert rtu.decode_string_norm([0x504D, 0x4420, 0x4545, 0x2020, 0, 0, 0, 0]) == "PMD EE"
