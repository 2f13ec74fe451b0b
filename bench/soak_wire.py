"""Frames the soak bench sends, built here from the standards with the standard library only.

Nothing of the gateway's own codecs is used: an attack or a probe that shared the
server's encoder would share its mistakes. BER (X.690) for SNMP, MBAP + PDU for
Modbus TCP, BVLC / NPDU / APDU (ASHRAE 135 annex J, clauses 6 and 20) for BACnet,
and a mutator that damages any of them.
"""

import struct

# ------------------------------------------------------------------ BER / SNMP


def ber_length(n):
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag, body):
    return bytes((tag,)) + ber_length(len(body)) + body


def ber_int(value, tag=0x02):
    size = max(1, (value.bit_length() + 8) // 8)
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def ber_str(value, tag=0x04):
    return tlv(tag, value if isinstance(value, bytes) else value.encode())


def ber_oid(arcs):
    out = bytearray((40 * arcs[0] + arcs[1],))
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(0x06, bytes(out))


def seq(*parts):
    return tlv(0x30, b"".join(parts))


NULL = b"\x05\x00"
SYS_UPTIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)
GET, GETNEXT, GETBULK, SET = 0xA0, 0xA1, 0xA5, 0xA3


def snmp_message(version, community, pdu_tag, request_id, oids, a=0, b=0):
    """An SNMP v1 (0) / v2c (1) message; ``a``, ``b`` = error-status/index (non-repeaters/max-repetitions)."""
    varbinds = seq(*(seq(ber_oid(oid), NULL) for oid in oids))
    pdu = tlv(pdu_tag, ber_int(request_id) + ber_int(a) + ber_int(b) + varbinds)
    return seq(ber_int(version), ber_str(community), pdu)


def snmp_v3_message(msg_id, user, engine_id=b"", flags=0x07, scoped=b"", priv=b"\x00" * 8, auth=b"\x00" * 12):
    """An SNMPv3 USM message; with flags 7 (authPriv) ``scoped`` is the (encrypted) scoped PDU as an OCTET STRING."""
    header = seq(ber_int(msg_id), ber_int(65507), ber_str(bytes((flags,))), ber_int(3))
    usm = seq(ber_str(engine_id), ber_int(0), ber_int(0), ber_str(user), ber_str(auth), ber_str(priv))
    body = ber_str(scoped) if flags & 0x02 else scoped
    return seq(ber_int(3), header, ber_str(usm), body)


def ber_read(data, pos):
    """(tag, start of value, end of value) of the TLV at ``pos``; ValueError when it does not fit."""
    tag, n = data[pos], data[pos + 1]
    pos += 2
    if n & 0x80:
        size = n & 0x7F
        if not 0 < size <= 4:
            raise ValueError("length form")
        n = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    if pos + n > len(data):
        raise ValueError("short")
    return tag, pos, pos + n


def snmp_response_id(data):
    """The request-id of an SNMP v1/v2c Response (tag 0xA2), or None."""
    try:
        _t, pos, _e = ber_read(data, 0)
        _t, _s, pos = ber_read(data, pos)          # version
        _t, _s, pos = ber_read(data, pos)          # community
        tag, pos, _e = ber_read(data, pos)
        if tag != 0xA2:
            return None
        _t, start, end = ber_read(data, pos)
        return int.from_bytes(data[start:end], "big", signed=True)
    except (ValueError, IndexError):
        return None


# ------------------------------------------------------------------ Modbus TCP

def mbap(tid, unit, pdu):
    return struct.pack(">HHHB", tid & 0xFFFF, 0, len(pdu) + 1, unit) + pdu


def read_holding(tid, unit, register, count):
    return mbap(tid, unit, struct.pack(">BHH", 3, register, count))


def modbus_seeds():
    """Valid requests of every function the gateway serves, to its own unit (255) and to meters (4, 20)."""
    seeds = []
    for unit in (255, 4, 20):
        seeds += [read_holding(1, unit, 0, 8), mbap(1, unit, struct.pack(">BHH", 4, 0x1000, 16)),
                  mbap(1, unit, struct.pack(">BHH", 1, 0, 16)), mbap(1, unit, struct.pack(">BHH", 2, 0, 16)),
                  mbap(1, unit, struct.pack(">BHH", 6, 0x1000, 1)),
                  mbap(1, unit, struct.pack(">BHHB", 16, 0x1000, 2, 4) + b"\x00\x01\x00\x02"),
                  mbap(1, unit, b"\x2b\x0e\x01\x00"), mbap(1, unit, b"\x08\x00\x00\x12\x34")]
    return seeds


# ------------------------------------------------------------------ BACnet/IP

ANALOG_INPUT, DEVICE = 0, 8
PROP_ALL, PROP_OBJECT_NAME, PROP_PRESENT_VALUE, PROP_OBJECT_LIST = 8, 77, 85, 76


def bvlc(npdu, function=0x0A):
    return struct.pack(">BBH", 0x81, function, 4 + len(npdu)) + npdu


def npdu(apdu, dnet=None, dadr=b"", expecting_reply=True):
    control = (0x04 if expecting_reply else 0) | (0x20 if dnet is not None else 0)
    out = bytes((0x01, control))
    if dnet is not None:
        out += struct.pack(">HB", dnet, len(dadr)) + dadr + b"\xff"
    return out + apdu


def object_id(obj_type, instance):
    return struct.pack(">I", obj_type << 22 | instance)


def context_unsigned(tag, value):
    body = value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")
    return bytes(((tag << 4) | 0x08 | len(body),)) + body


def read_property(invoke, obj_type, instance, prop, dnet=None, mac=None):
    apdu = bytes((0x00, 0x05, invoke & 0xFF, 0x0C)) + b"\x0c" + object_id(obj_type, instance)
    apdu += context_unsigned(1, prop)
    return bvlc(npdu(apdu, dnet, bytes((mac,)) if mac is not None else b""))


def read_property_multiple(invoke, objects, prop=PROP_ALL, dnet=None, mac=None):
    """RPM of ``prop`` of every (type, instance) in ``objects``; no segmentation accepted, 1476-byte APDUs."""
    body = b"".join(b"\x0c" + object_id(t, i) + b"\x1e" + context_unsigned(0, prop) + b"\x1f" for t, i in objects)
    apdu = bytes((0x00, 0x05, invoke & 0xFF, 0x0E)) + body
    return bvlc(npdu(apdu, dnet, bytes((mac,)) if mac is not None else b""))


def who_is():
    return bvlc(npdu(b"\x10\x08", expecting_reply=False))


def time_sync(year, month, day, weekday, hour, minute, second, utc=False):
    """(UTC)TimeSynchronization with raw date/time octets: any value, impossible ones included."""
    date = bytes((0xA4, (year - 1900) & 0xFF, month & 0xFF, day & 0xFF, weekday & 0xFF))
    clock = bytes((0xB4, hour & 0xFF, minute & 0xFF, second & 0xFF, 0))
    return bvlc(npdu(bytes((0x10, 0x09 if utc else 0x06)) + date + clock, expecting_reply=False))


def bacnet_answer(data):
    """(kind, invoke) of a BACnet answer (kind: complex / ack / error / reject / abort / iam / net / bvlc-result /
    other) or None for a datagram that is not a well-formed B/IP message."""
    try:
        if data[0] == 0x81 and data[1] == 0x00 and len(data) == 6:
            return "bvlc-result", None          # Annex J.2.1: the answer to a BVLC function we do not serve
        if data[0] != 0x81 or struct.unpack(">H", data[2:4])[0] != len(data) or data[4] != 0x01:
            return None
        control, p = data[5], 6
        if control & 0x20:
            p += 3 + data[p + 2]
        if control & 0x08:
            p += 3 + data[p + 2]
        if control & 0x20:
            p += 1
        if control & 0x80:
            return "net", None
        kind = data[p] >> 4
        if kind == 1:
            return ("iam" if data[p + 1] == 0 else "other"), None
        names = {2: "ack", 3: "complex", 5: "error", 6: "reject", 7: "abort"}
        return names.get(kind, "other"), data[p + 1]
    except IndexError:
        return None


# ------------------------------------------------------------------ mutation

def mutate(rnd, frame, length_field=None):
    """1–4 random damages to ``frame`` (bit flips, bytes set, truncation, junk appended, bytes inserted);
    ``length_field`` = (offset, size, bias): most mutants keep that length field consistent, so they reach
    the parser behind the framing."""
    data = bytearray(frame)
    for _ in range(rnd.randint(1, 4)):
        how = rnd.randrange(5)
        if how == 0 and data:
            data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
        elif how == 1 and data:
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        elif how == 2:
            data = data[:rnd.randrange(len(data) + 1)]
        elif how == 3:
            data += bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40)))
        elif how == 4 and len(data) > 2:
            data.insert(rnd.randrange(1, len(data)), rnd.randrange(256))
    if length_field and rnd.random() < 0.7:
        offset, size, bias = length_field
        if len(data) >= offset + size:
            data[offset:offset + size] = max(0, min(len(data) - bias, 256 ** size - 1)).to_bytes(size, "big")
    return bytes(data)
