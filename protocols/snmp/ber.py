"""The small part of BER that SNMP v1/v2c read requests need, strict and bounded.

Why a codec of our own next to pysnmp: pyasn1 spends ~0.4 ms decoding and
encoding one GET, which caps the agent at a fraction of net-snmp's rate
(bench/snmp.py). The fast path (protocols/snmp/fastpath.py) answers the
common case — a well-formed v1/v2c GET, GETNEXT or GETBULK with a known
community — with this codec; everything else goes to pysnmp untouched.

The decoder accepts only what it fully understands (definite lengths, one-
byte tags, minimal integers and sub-identifiers, no trailing bytes, a
request-id within Integer32) and raises ``BerError`` otherwise; the intake
(intake.py) then drops the datagram as a parse error — RFC 3417 §8 allows
SNMP neither indefinite lengths nor constructed forms — so pyasn1 never
spends time on what this codec refuses. The v3 gate (v3gate.py) reads
SNMPv3 headers with the same primitives.
"""

# universal and SNMP application tags
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_IDENTIFIER = 0x06
SEQUENCE = 0x30
COUNTER32 = 0x41
GAUGE32 = 0x42
TIMETICKS = 0x43
COUNTER64 = 0x46
NO_SUCH_OBJECT = 0x80
NO_SUCH_INSTANCE = 0x81
END_OF_MIB_VIEW = 0x82

# The ObjectSyntax tags a varbind value may carry (RFC 3416 §3 plus the exceptions):
# anything else (a constructed tag, an unknown class) is not SNMP and is refused.
VALUE_TAGS = frozenset((INTEGER, OCTET_STRING, NULL, OBJECT_IDENTIFIER, 0x40, COUNTER32, GAUGE32, TIMETICKS, 0x44,
                        COUNTER64, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW))

# PDU tags
GET = 0xA0
GETNEXT = 0xA1
RESPONSE = 0xA2
SET = 0xA3
GETBULK = 0xA5

MAX_OID_LENGTH = 128          # sub-identifiers (RFC 2578 §7.1.3)
MAX_SUBID = 0xFFFFFFFF

# error-status values (RFC 3416)
TOO_BIG = 1
NO_SUCH_NAME = 2

_UNSIGNED_TAGS = (COUNTER32, GAUGE32, TIMETICKS, COUNTER64)


class BerError(ValueError):
    """Bytes this codec does not accept (the caller defers to pysnmp)."""


# ------------------------------------------------------------------ decoding

def read_tlv(buf, pos, end):
    """(tag, value start, value end) of the TLV at ``pos``; never reads past ``end``."""
    if pos + 2 > end:
        raise BerError("truncated header")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise BerError("multi-byte tag")
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 3:
            raise BerError("indefinite or oversized length")
        if pos + count > end:
            raise BerError("truncated length")
        length = int.from_bytes(buf[pos:pos + count], "big")   # long form may be non-minimal (net-snmp)
        pos += count
    if pos + length > end:
        raise BerError("length beyond the datagram")
    return tag, pos, pos + length


def decode_integer(buf, start, end):
    size = end - start
    if size < 1 or size > 9:
        raise BerError("integer size")
    return int.from_bytes(buf[start:end], "big", signed=True)


def decode_oid(buf, start, end):
    """Sub-identifiers of an OBJECT IDENTIFIER value as a tuple."""
    if start >= end:
        raise BerError("empty OID")
    out = []
    value = 0
    fresh = True
    for i in range(start, end):
        byte = buf[i]
        if fresh and byte == 0x80:
            raise BerError("non-minimal sub-identifier")
        value = (value << 7) | (byte & 0x7F)
        if byte & 0x80:
            fresh = False
            if value > MAX_SUBID:
                raise BerError("sub-identifier too large")
            continue
        if value > MAX_SUBID + 80:
            raise BerError("sub-identifier too large")
        out.append(value)
        value = 0
        fresh = True
    if not fresh:
        raise BerError("truncated sub-identifier")
    first = out[0]
    if first < 40:
        head = (0, first)
    elif first < 80:
        head = (1, first - 40)
    else:
        head = (2, first - 80)
    oid = head + tuple(out[1:])
    if len(oid) > MAX_OID_LENGTH:
        raise BerError("OID too long")
    return oid


class Request:
    """A decoded v1/v2c request; raw slices are echoed into the response."""

    __slots__ = ("version", "community", "pdu_type", "request_id", "raw_head", "raw_request_id",
                 "non_repeaters", "max_repetitions", "oids", "raw_oids", "raw_varbinds")


def _open_message(buf):
    """(msgVersion, start of the message's contents, end of the version): the message must be one
    definite-length SEQUENCE filling ``buf``."""
    end = len(buf)
    tag, pos, msg_end = read_tlv(buf, 0, end)
    if tag != SEQUENCE or msg_end != end:
        raise BerError("not one SEQUENCE")
    tag, vstart, vend = read_tlv(buf, pos, end)
    if tag != INTEGER:
        raise BerError("version")
    return decode_integer(buf, vstart, vend), pos, vend


def message_version(buf):
    """The msgVersion of a message (0 v1, 1 v2c, 3 v3), read strictly, or BerError."""
    return _open_message(buf)[0]


def decode_head(buf):
    """(version, community, PDU tag, PDU start, PDU end, start and end of the version + community TLVs) of a
    v1/v2c message: the part read before anything costly, so a wrong community is refused unread."""
    end = len(buf)
    version, start, vend = _open_message(buf)
    if version not in (0, 1):
        raise BerError("not v1/v2c")
    tag, cstart, cend = read_tlv(buf, vend, end)
    if tag != OCTET_STRING:
        raise BerError("community")
    pdu_type, pstart, pend = read_tlv(buf, cend, end)
    if pend != end:
        raise BerError("PDU length")
    return version, bytes(buf[cstart:cend]), pdu_type, pstart, pend, start, cend


def decode_request(buf, head=None):
    """Decode one v1/v2c message carrying a GET, GETNEXT, GETBULK, SET or Response PDU (an inform's answer);
    ``head`` is decode_head(buf) when the caller already has it."""
    version, community, pdu_type, pstart, pend, head_start, cend = head or decode_head(buf)
    if pdu_type not in (GET, GETNEXT, GETBULK, SET, RESPONSE):
        raise BerError("PDU type")
    if pdu_type == GETBULK and version == 0:
        raise BerError("GETBULK in v1")
    req = Request()
    req.version = version
    req.community = community
    req.raw_head = bytes(buf[head_start:cend])          # version + community TLVs
    return decode_pdu(buf, pdu_type, pstart, pend, req)


def decode_pdu(buf, pdu_type, pstart, pend, req):
    """Fill ``req`` from the PDU contents ``buf[pstart:pend]`` (request-id, the two integers, the varbinds);
    the v3 fast path (v3fast.py) reads a scoped PDU's with it too."""
    req.pdu_type = pdu_type
    tag, rstart, rend = read_tlv(buf, pstart, pend)
    if tag != INTEGER or rend - rstart > 4:
        raise BerError("request-id")
    req.request_id = decode_integer(buf, rstart, rend)
    req.raw_request_id = bytes(buf[pstart:rend])
    tag, s, e = read_tlv(buf, rend, pend)
    if tag != INTEGER:
        raise BerError("error-status")
    first = decode_integer(buf, s, e)
    tag, s, e2 = read_tlv(buf, e, pend)
    if tag != INTEGER:
        raise BerError("error-index")
    second = decode_integer(buf, s, e2)
    req.non_repeaters, req.max_repetitions = first, second
    tag, lstart, lend = read_tlv(buf, e2, pend)
    if tag != SEQUENCE or lend != pend:
        raise BerError("varbind list")
    oids = []
    raw_oids = []
    req.raw_varbinds = bytes(buf[lstart:lend])
    pos = lstart
    while pos < lend:
        tag, vbstart, vbend = read_tlv(buf, pos, lend)
        if tag != SEQUENCE:
            raise BerError("varbind")
        tag, ostart, oend = read_tlv(buf, vbstart, vbend)
        if tag != OBJECT_IDENTIFIER:
            raise BerError("varbind name")
        oids.append(decode_oid(buf, ostart, oend))
        raw_oids.append(bytes(buf[vbstart:oend]))
        value_tag, _s, value_end = read_tlv(buf, oend, vbend)
        if value_end != vbend:
            raise BerError("varbind length")
        if value_tag not in VALUE_TAGS:
            raise BerError("varbind value tag 0x%02X" % value_tag)
        pos = vbend
    req.oids = oids
    req.raw_oids = raw_oids
    return req


# ------------------------------------------------------------------ encoding

def encode_length(length):
    if length < 0x80:
        return bytes((length,))
    if length < 0x100:
        return bytes((0x81, length))
    if length < 0x10000:
        return bytes((0x82, length >> 8, length & 0xFF))
    return bytes((0x83, length >> 16, (length >> 8) & 0xFF, length & 0xFF))


def tlv(tag, payload):
    return bytes((tag,)) + encode_length(len(payload)) + payload


def encode_integer(value, tag=INTEGER):
    if tag in _UNSIGNED_TAGS:
        size = value.bit_length() // 8 + 1      # room for a leading 0 when the top bit is set
        return tlv(tag, value.to_bytes(size, "big"))
    size = (value + (value < 0)).bit_length() // 8 + 1
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def _subid(value):
    if value < 0x80:
        return bytes((value,))
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def oid_body(oid):
    """Content octets of an OBJECT IDENTIFIER (without tag and length)."""
    if len(oid) < 2:
        raise ValueError("an OID has at least two sub-identifiers")
    return _subid(40 * oid[0] + oid[1]) + b"".join(_subid(x) for x in oid[2:])


def encode_oid(oid):
    return tlv(OBJECT_IDENTIFIER, oid_body(oid))


def encode_value(tag, value):
    """One typed value (as the OID index yields it) → TLV bytes."""
    if tag == OCTET_STRING:
        return tlv(OCTET_STRING, value)
    if tag == OBJECT_IDENTIFIER:
        return encode_oid(value)
    if tag in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW):
        return bytes((tag, 0))
    return encode_integer(value, tag)


def encode_varbind(raw_oid_tlv, value_tlv):
    return tlv(SEQUENCE, raw_oid_tlv + value_tlv)


def encode_response(raw_head, raw_request_id, error_status, error_index, varbinds_payload):
    """Response message from the request's raw header and encoded varbinds."""
    pdu = raw_request_id + encode_integer(error_status) + encode_integer(error_index) + \
        tlv(SEQUENCE, varbinds_payload)
    return tlv(SEQUENCE, raw_head + tlv(RESPONSE, pdu))


def encode_request(version, community, pdu_type, request_id, oids, non_repeaters=0, max_repetitions=0,
                   values=None):
    """A request message (benchmarks and tests build their datagrams with it)."""
    varbinds = b""
    for i, oid in enumerate(oids):
        value = values[i] if values else b"\x05\x00"
        varbinds += tlv(SEQUENCE, encode_oid(oid) + value)
    if pdu_type == GETBULK:
        second, third = non_repeaters, max_repetitions
    else:
        second, third = 0, 0
    pdu = encode_integer(request_id) + encode_integer(second) + encode_integer(third) + tlv(SEQUENCE, varbinds)
    return tlv(SEQUENCE, encode_integer(version) + tlv(OCTET_STRING, community) + tlv(pdu_type, pdu))


def decode_response(buf):
    """(request_id, error_status, error_index, [(oid, tag, value)]) of a response (tests, bench)."""
    end = len(buf)
    tag, pos, _e = read_tlv(buf, 0, end)
    tag, s, e = read_tlv(buf, pos, end)          # version
    tag, s, e = read_tlv(buf, e, end)            # community
    tag, pstart, pend = read_tlv(buf, e, end)
    if tag != RESPONSE:
        raise BerError("not a response")
    tag, s, e = read_tlv(buf, pstart, pend)
    request_id = decode_integer(buf, s, e)
    tag, s, e = read_tlv(buf, e, pend)
    status = decode_integer(buf, s, e)
    tag, s, e = read_tlv(buf, e, pend)
    index = decode_integer(buf, s, e)
    tag, lstart, lend = read_tlv(buf, e, pend)
    out = []
    pos = lstart
    while pos < lend:
        _t, vbstart, vbend = read_tlv(buf, pos, lend)
        _t, ostart, oend = read_tlv(buf, vbstart, vbend)
        oid = decode_oid(buf, ostart, oend)
        vtag, vstart, vend = read_tlv(buf, oend, vbend)
        if vtag == OCTET_STRING:
            value = bytes(buf[vstart:vend])
        elif vtag == OBJECT_IDENTIFIER:
            value = decode_oid(buf, vstart, vend)
        elif vtag in (INTEGER,):
            value = decode_integer(buf, vstart, vend)
        elif vtag in _UNSIGNED_TAGS:
            value = int.from_bytes(buf[vstart:vend], "big")
        else:
            value = None
        out.append((oid, vtag, value))
        pos = vbend
    return request_id, status, index, out
