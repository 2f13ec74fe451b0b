"""Modbus RTU framing, CRC and register codecs (the pure core).

This module must run unchanged under MicroPython: only ``struct`` and bytes,
no dataclasses, no typing at runtime, no f-strings with nested formats.
Everything that touches a wire or a clock lives elsewhere.
"""

import struct

# Function codes the gateway speaks.
READ_COILS = 1
READ_DISCRETE_INPUTS = 2
READ_HOLDING = 3
READ_INPUT = 4
WRITE_SINGLE_COIL = 5
WRITE_SINGLE_REGISTER = 6
WRITE_MULTIPLE_COILS = 15
WRITE_MULTIPLE_REGISTERS = 16
ENCAPSULATED_TRANSPORT = 43
WRITE_FUNCTIONS = (WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS)

# Exception codes.
ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
SERVER_DEVICE_FAILURE = 4
GATEWAY_PATH_UNAVAILABLE = 0x0A
GATEWAY_TARGET_FAILED = 0x0B

MAX_READ_REGISTERS = 125
MAX_WRITE_REGISTERS = 123
MAX_READ_BITS = 2000
MAX_WRITE_BITS = 1968
MAX_ADU = 256
BROADCAST = 0


class FrameError(Exception):
    """A frame that cannot be trusted (bad CRC, bad length, wrong answer)."""


class CrcError(FrameError):
    """A frame whose CRC does not match: noise on the line, counted apart."""


class ModbusException(Exception):
    """A well-formed exception response from a device."""

    def __init__(self, function, code):
        super().__init__("function %d exception %d" % (function, code))
        self.function = function
        self.code = code


def _make_crc_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _make_crc_table()


def crc16(data):
    """Modbus CRC-16 (poly 0xA001, init 0xFFFF) of ``data``."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def add_crc(body):
    """Append the CRC, low byte first, as RTU puts it on the wire."""
    crc = crc16(body)
    return bytes(body) + bytes((crc & 0xFF, crc >> 8))


def check_crc(frame):
    """True when the last two bytes of ``frame`` are its CRC."""
    if len(frame) < 4:
        return False
    crc = crc16(frame[:-2])
    return frame[-2] == (crc & 0xFF) and frame[-1] == (crc >> 8)


def char_time(baud, data_bits=8, parity="N", stop_bits=1):
    """Seconds one character takes on the wire (start + data + parity + stop)."""
    bits = 1 + data_bits + (0 if parity == "N" else 1) + stop_bits
    return bits / baud


def frame_gap(baud, data_bits=8, parity="N", stop_bits=1):
    """Inter-frame silence: 3.5 characters, fixed 1.75 ms above 19200 baud."""
    if baud > 19200:
        return 0.00175
    return 3.5 * char_time(baud, data_bits, parity, stop_bits)


def wire_time(nbytes, baud, data_bits=8, parity="N", stop_bits=1):
    return nbytes * char_time(baud, data_bits, parity, stop_bits)


# ---------------------------------------------------------------- PDUs

def read_request(function, address, count):
    return struct.pack(">BHH", function, address, count)


def write_single_request(function, address, value):
    return struct.pack(">BHH", function, address, value)


def write_registers_request(address, words):
    n = len(words)
    return struct.pack(">BHHB", WRITE_MULTIPLE_REGISTERS, address, n, 2 * n) + pack_words(words)


def exception_pdu(function, code):
    return bytes(((function | 0x80) & 0xFF, code))


def pack_words(words):
    return struct.pack(">%dH" % len(words), *words)


def unpack_words(data):
    return list(struct.unpack(">%dH" % (len(data) // 2), data))


def pack_bits(bits):
    out = bytearray((len(bits) + 7) // 8)
    for i, bit in enumerate(bits):
        if bit:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def unpack_bits(data, count):
    return [(data[i >> 3] >> (i & 7)) & 1 for i in range(count)]


def request_frame(unit, pdu):
    return add_crc(bytes((unit,)) + pdu)


def expected_response_length(request_pdu):
    """Length of the normal RTU response (address..CRC) to ``request_pdu``.

    Lets a master stop reading as soon as the answer is complete instead of
    waiting for the 3.5-character silence. None when it depends on the data.
    """
    function = request_pdu[0]
    if function in (READ_HOLDING, READ_INPUT):
        count = (request_pdu[3] << 8) | request_pdu[4]
        return 5 + 2 * count
    if function in (READ_COILS, READ_DISCRETE_INPUTS):
        count = (request_pdu[3] << 8) | request_pdu[4]
        return 5 + (count + 7) // 8
    if function in (WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER,
                    WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS):
        return 8
    return None


def response_length_from_header(head):
    """Full RTU response length once 3 bytes are known, or None if unknown.

    Used by readers that do not know the request (the simulated bus, sniffers).
    """
    if len(head) < 3:
        return None
    function = head[1]
    if function & 0x80:
        return 5
    if function in (READ_COILS, READ_DISCRETE_INPUTS, READ_HOLDING, READ_INPUT):
        return 5 + head[2]
    if function in (WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER,
                    WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS):
        return 8
    return None


def request_length_from_header(head):
    """Full RTU request length from its first bytes, or None if not yet known.

    Returns -1 for a function code whose length cannot be derived.
    """
    if len(head) < 2:
        return None
    function = head[1]
    if function in (READ_COILS, READ_DISCRETE_INPUTS, READ_HOLDING, READ_INPUT,
                    WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER):
        return 8
    if function in (WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS):
        if len(head) < 7:
            return None
        return 9 + head[6]
    if function == ENCAPSULATED_TRANSPORT:
        return 7  # unit, 43, MEI 14, read code, object id, CRC
    return -1


def split_request(data):
    """(first complete request frame, rest) of received bytes; frame None if incomplete.

    For a function whose length cannot be derived the frame ends with the
    3.5-character silence, which only the caller can see: it gets None and
    hands the whole buffer over when the line goes quiet (a frame that never
    completes ends the same way and fails its CRC). Shared by every RTU
    receiver (the RTU slave, the simulated meters).
    """
    need = request_length_from_header(data)
    if need is None or need < 0 or len(data) < need:
        return None, data
    return bytes(data[:need]), bytes(data[need:])


def parse_response(frame, unit, request_pdu):
    """Check an RTU response against its request; return the response PDU.

    Raises FrameError for anything that is not a trustworthy answer to this
    request, ModbusException for a valid exception response.
    """
    if len(frame) < 5:
        raise FrameError("short frame")
    if not check_crc(frame):
        raise CrcError("bad CRC")
    if frame[0] != unit:
        raise FrameError("answer from unit %d, expected %d" % (frame[0], unit))
    function = request_pdu[0]
    pdu = bytes(frame[1:-2])
    if pdu[0] == (function | 0x80):
        raise ModbusException(function, pdu[1])
    if pdu[0] != function:
        raise FrameError("function %d in answer to %d" % (pdu[0], function))
    expected = expected_response_length(request_pdu)
    if expected is not None and len(frame) != expected:
        raise FrameError("length %d, expected %d" % (len(frame), expected))
    if function in (READ_HOLDING, READ_INPUT, READ_COILS, READ_DISCRETE_INPUTS):
        if pdu[1] != len(pdu) - 2:
            raise FrameError("byte count mismatch")
    elif function in (WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER):
        if pdu != request_pdu:
            raise FrameError("write echo mismatch")
    elif function in (WRITE_MULTIPLE_COILS, WRITE_MULTIPLE_REGISTERS):
        if pdu[:5] != request_pdu[:5]:
            raise FrameError("write echo mismatch")
    return pdu


def read_registers_from_pdu(pdu):
    return unpack_words(pdu[2:])


def request_fields(pdu):
    """(function, start, count_or_value, words) of a request PDU ``validate_request_pdu`` accepted.

    The one reading of a request's fields for every server side (Modbus TCP,
    the RTU slave, the simulated meters), so none of them slices PDUs by
    hand. ``count_or_value`` is the count of a read or multiple write and the
    value of a single write; ``words`` are the register values a 6 or 16
    writes (None for reads and coil writes). Not for function 43, which has
    no address field.
    """
    function = pdu[0]
    start = (pdu[1] << 8) | pdu[2]
    second = (pdu[3] << 8) | pdu[4]
    if function == WRITE_SINGLE_REGISTER:
        words = [second]
    elif function == WRITE_MULTIPLE_REGISTERS:
        words = unpack_words(pdu[6:])
    else:
        words = None
    return function, start, second, words


def read_response(function, words):
    """Response PDU of a register read (3, 4) answering ``words``."""
    return bytes((function, 2 * len(words))) + pack_words(words)


def parse_request(frame):
    """Split a CRC-checked RTU request into (unit, pdu); FrameError if bad."""
    if len(frame) < 4 or not check_crc(frame):
        raise FrameError("bad request frame")
    return frame[0], bytes(frame[1:-2])


def validate_request_pdu(pdu):
    """Check a request PDU's structure; return an exception code or 0.

    Shared by every server side (RTU slave, Modbus TCP, simulated meters) so
    they refuse malformed requests identically (SPEC §11).
    """
    if not pdu:
        return ILLEGAL_FUNCTION
    function = pdu[0]
    if function in (READ_HOLDING, READ_INPUT, READ_COILS, READ_DISCRETE_INPUTS):
        if len(pdu) != 5:
            return ILLEGAL_DATA_VALUE
        address, count = struct.unpack(">HH", pdu[1:5])
        limit = MAX_READ_REGISTERS if function in (READ_HOLDING, READ_INPUT) else MAX_READ_BITS
        if count < 1 or count > limit:
            return ILLEGAL_DATA_VALUE
        if address + count > 0x10000:
            return ILLEGAL_DATA_ADDRESS
        return 0
    if function in (WRITE_SINGLE_COIL, WRITE_SINGLE_REGISTER):
        if len(pdu) != 5:
            return ILLEGAL_DATA_VALUE
        if function == WRITE_SINGLE_COIL and pdu[3:5] not in (b"\xff\x00", b"\x00\x00"):
            return ILLEGAL_DATA_VALUE
        return 0
    if function in (WRITE_MULTIPLE_REGISTERS, WRITE_MULTIPLE_COILS):
        if len(pdu) < 6:
            return ILLEGAL_DATA_VALUE
        address, count, nbytes = struct.unpack(">HHB", pdu[1:6])
        if function == WRITE_MULTIPLE_REGISTERS:
            if count < 1 or count > MAX_WRITE_REGISTERS or nbytes != 2 * count:
                return ILLEGAL_DATA_VALUE
        else:
            if count < 1 or count > MAX_WRITE_BITS or nbytes != (count + 7) // 8:
                return ILLEGAL_DATA_VALUE
        if len(pdu) != 6 + nbytes:
            return ILLEGAL_DATA_VALUE
        if address + count > 0x10000:
            return ILLEGAL_DATA_ADDRESS
        return 0
    if function == ENCAPSULATED_TRANSPORT:
        if len(pdu) != 4 or pdu[1] != 14:
            return ILLEGAL_DATA_VALUE
        return 0
    return ILLEGAL_FUNCTION


# ---------------------------------------------------------------- register codecs
# Socomec tables put the high word first; "little" word order exists on other
# vendors' devices (generic Modbus devices), so every codec takes the order.

TYPE_WORDS = {
    "u16": 1, "s16": 1, "u8": 1, "u32": 2, "s32": 2,
    "u64": 4, "s64": 4, "f32": 2, "datetime": 2,
}


# Raw integer range of each integer type: what encode_value accepts and what
# saturate clamps to. u8 travels in a whole word, so it accepts the word's range.
TYPE_RANGE = {
    "u16": (0, 0xFFFF), "u8": (0, 0xFFFF), "s16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF), "datetime": (0, 0xFFFFFFFF), "s32": (-0x80000000, 0x7FFFFFFF),
    "u64": (0, 0xFFFFFFFFFFFFFFFF), "s64": (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
}


def saturate(raw, limits):
    """``raw`` clamped into ``limits`` (a ``TYPE_RANGE`` entry): beyond a type's range a
    value saturates, it never wraps. The caller looks the range up once (per
    column, per table) so a hot path pays no lookup per value."""
    lo, hi = limits
    return lo if raw < lo else hi if raw > hi else raw


def encode_value(kind, value, word_order="big"):
    """Raw integer/float → list of 16-bit words; ValueError outside the type's range."""
    if kind == "f32":
        words = list(struct.unpack(">HH", struct.pack(">f", value)))
    else:
        limits = TYPE_RANGE.get(kind)
        if limits is None:
            raise ValueError("unknown type %s" % kind)
        if value < limits[0] or value > limits[1]:
            raise ValueError("out of range for %s" % kind)
        n = TYPE_WORDS[kind]
        if n == 1:
            return [value if value >= 0 else value & 0xFFFF]
        if n == 2:
            value &= 0xFFFFFFFF
            words = [value >> 16, value & 0xFFFF]
        else:
            value &= 0xFFFFFFFFFFFFFFFF
            words = [(value >> 48) & 0xFFFF, (value >> 32) & 0xFFFF, (value >> 16) & 0xFFFF, value & 0xFFFF]
    if word_order == "little":
        words.reverse()
    return words


def decode_value(kind, words, word_order="big"):
    """List of 16-bit words → raw integer/float."""
    n = TYPE_WORDS[kind]
    if len(words) < n:
        raise ValueError("need %d words for %s" % (n, kind))
    words = list(words[:n])
    if word_order == "little":
        words.reverse()
    if kind == "u16":
        return words[0]
    if kind == "u8":
        return words[0] & 0xFF
    if kind == "s16":
        v = words[0]
        return v - 0x10000 if v & 0x8000 else v
    if kind == "f32":
        return struct.unpack(">f", struct.pack(">HH", words[0], words[1]))[0]
    value = 0
    for w in words:
        value = (value << 16) | w
    if kind == "s32" and value & 0x80000000:
        return value - 0x100000000
    if kind == "s64" and value & 0x8000000000000000:
        return value - 0x10000000000000000
    return value


def encode_string_norm(text, nwords):
    """Two ASCII chars per word, first in the high byte, NUL padded."""
    raw = text.encode()[:2 * nwords]
    raw = raw + b"\x00" * (2 * nwords - len(raw))
    return unpack_words(raw)


def decode_string_norm(words):
    raw = pack_words(words)
    return raw.split(b"\x00")[0].decode().strip()


def encode_string_16(text, nwords):
    """One ASCII char per word, in the low byte."""
    raw = text.encode()[:nwords]
    return [b for b in raw] + [0] * (nwords - len(raw))


def decode_string_16(words):
    return bytes([w & 0xFF for w in words if w & 0xFF]).decode().strip()


# DATETIME on Socomec meters: U32 seconds since 2000-01-01 00:00:00.
EPOCH_2000 = 946684800


def unix_to_socomec(ts):
    return int(ts) - EPOCH_2000


def socomec_to_unix(value):
    return value + EPOCH_2000
