"""Property-based tests of the pure Modbus RTU codec (framing, CRC, registers)."""

import struct

from hypothesis import given, settings, strategies as st
from pymodbus.framer.rtu import FramerRTU

from core import modbus_rtu as rtu

KINDS_RANGES = {
    "u16": (0, 0xFFFF), "s16": (-0x8000, 0x7FFF), "u8": (0, 0xFF),
    "u32": (0, 0xFFFFFFFF), "s32": (-0x80000000, 0x7FFFFFFF), "datetime": (0, 0xFFFFFFFF),
    "u64": (0, 2 ** 64 - 1), "s64": (-(2 ** 63), 2 ** 63 - 1),
}


@given(st.binary(min_size=0, max_size=256))
def test_crc_matches_an_independent_implementation(data):
    # pymodbus computes the CRC independently of our table-driven code; it
    # returns it in wire byte order (low byte first when sent big-endian).
    assert FramerRTU.compute_CRC(data).to_bytes(2, "big") == rtu.add_crc(data)[-2:]


@given(st.integers(0, 247), st.binary(min_size=1, max_size=252))
def test_frame_crc_round_trip_and_single_bit_errors_detected(unit, pdu):
    frame = rtu.add_crc(bytes((unit,)) + pdu)
    assert rtu.check_crc(frame)
    assert rtu.parse_request(frame) == (unit, pdu)
    for bit in range(0, len(frame) * 8, 7):
        damaged = bytearray(frame)
        damaged[bit // 8] ^= 1 << (bit % 8)
        assert not rtu.check_crc(bytes(damaged))


@given(st.sampled_from(sorted(KINDS_RANGES)), st.data(), st.sampled_from(["big", "little"]))
def test_every_integer_type_round_trips_in_both_word_orders(kind, data, order):
    lo, hi = KINDS_RANGES[kind]
    value = data.draw(st.integers(lo, hi))
    words = rtu.encode_value(kind, value, order)
    assert len(words) == rtu.TYPE_WORDS[kind]
    assert all(0 <= w <= 0xFFFF for w in words)
    assert rtu.decode_value(kind, words, order) == value


@given(st.sampled_from(["u32", "s32", "u64", "s64"]), st.data())
def test_word_order_big_puts_the_high_word_first(kind, data):
    lo, hi = KINDS_RANGES[kind]
    value = data.draw(st.integers(lo, hi))
    words = rtu.encode_value(kind, value, "big")
    n = len(words)
    packed = struct.pack(">%dH" % n, *words)
    fmt = {"u32": ">I", "s32": ">i", "u64": ">Q", "s64": ">q"}[kind]
    assert struct.unpack(fmt, packed)[0] == value
    assert rtu.encode_value(kind, value, "little") == list(reversed(words))


@given(st.floats(width=32, allow_nan=False), st.sampled_from(["big", "little"]))
def test_float32_round_trips(value, order):
    assert rtu.decode_value("f32", rtu.encode_value("f32", value, order), order) == value


@given(st.sampled_from(sorted(KINDS_RANGES)), st.data())
def test_out_of_range_values_are_refused(kind, data):
    lo, hi = KINDS_RANGES[kind]
    if kind == "u8":
        hi = 0xFFFF   # u8 lives in a full word
    value = data.draw(st.one_of(st.integers(hi + 1, hi + 2 ** 70), st.integers(lo - 2 ** 70, lo - 1)))
    try:
        rtu.encode_value(kind, value)
    except ValueError:
        return
    raise AssertionError("%s accepted %d" % (kind, value))


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=16))
def test_socomec_strings_round_trip(text):
    assert rtu.decode_string_norm(rtu.encode_string_norm(text, 8)) == text.strip()
    assert rtu.decode_string_16(rtu.encode_string_16(text[:4], 4)) == text[:4].strip()


@given(st.integers(0, 247), st.sampled_from([1, 2, 3, 4]), st.integers(0, 0xFFFF), st.integers(1, 125))
def test_read_answers_parse_back_to_their_registers(unit, function, start, count):
    if function in (3, 4):
        words = [(start + i) & 0xFFFF for i in range(count)]
        body = bytes((function, 2 * count)) + rtu.pack_words(words)
    else:
        nbytes = (count + 7) // 8
        body = bytes((function, nbytes)) + bytes(range(nbytes))
    request = rtu.read_request(function, start, count)
    frame = rtu.add_crc(bytes((unit,)) + body)
    assert len(frame) == rtu.expected_response_length(request)
    assert rtu.response_length_from_header(frame[:3]) == len(frame)
    pdu = rtu.parse_response(frame, unit, request)
    if function in (3, 4):
        assert rtu.read_registers_from_pdu(pdu) == words


@given(st.binary(max_size=300))
@settings(max_examples=500)
def test_validation_never_raises_on_garbage(pdu):
    code = rtu.validate_request_pdu(pdu)
    assert code in (0, rtu.ILLEGAL_FUNCTION, rtu.ILLEGAL_DATA_ADDRESS, rtu.ILLEGAL_DATA_VALUE)


@given(st.binary(max_size=300), st.integers(0, 247), st.sampled_from([3, 4, 6, 16]))
@settings(max_examples=500)
def test_garbage_answers_raise_only_frame_or_modbus_errors(frame, unit, function):
    request = rtu.read_request(function, 0, 2) if function in (3, 4) else \
        rtu.write_single_request(6, 0, 1) if function == 6 else rtu.write_registers_request(0, [1])
    try:
        rtu.parse_response(frame, unit, request)
    except (rtu.FrameError, rtu.ModbusException):
        pass


@given(st.lists(st.booleans(), min_size=1, max_size=2000))
def test_bits_round_trip(bits):
    packed = rtu.pack_bits(bits)
    assert len(packed) == (len(bits) + 7) // 8
    assert rtu.unpack_bits(packed, len(bits)) == [int(b) for b in bits]
