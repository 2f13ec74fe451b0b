# Runs under CPython and MicroPython (tests/test_micropython.py): plain asserts.
from core import modbus_rtu as rtu

# CRC of a known frame: read 10 holding registers at 0 from unit 1 (spec example).
frame = rtu.request_frame(1, rtu.read_request(3, 0, 10))
assert frame == b"\x01\x03\x00\x00\x00\x0a\xc5\xcd", frame
assert rtu.check_crc(frame)
assert not rtu.check_crc(frame[:-1] + b"\x00")
assert rtu.crc16(b"123456789") == 0x4B37

# Response parsing: normal, exception, CRC error, wrong unit.
req = rtu.read_request(3, 0xC350, 2)
resp = rtu.add_crc(b"\x05\x03\x04\x00\x53\x00\x4f")
pdu = rtu.parse_response(resp, 5, req)
assert rtu.read_registers_from_pdu(pdu) == [0x53, 0x4F]
try:
    rtu.parse_response(rtu.add_crc(b"\x05\x83\x02"), 5, req)
    assert False, "exception expected"
except rtu.ModbusException as exc:
    assert exc.code == 2
for bad in (resp[:-1] + b"\x00", rtu.add_crc(b"\x06\x03\x04\x00\x53\x00\x4f"), resp[:4]):
    try:
        rtu.parse_response(bad, 5, req)
        assert False, "FrameError expected"
    except rtu.FrameError:
        pass

# Lengths the master and the simulated bus use to cut frames.
assert rtu.expected_response_length(rtu.read_request(3, 0, 125)) == 255
assert rtu.request_length_from_header(rtu.request_frame(1, rtu.write_registers_request(0, [1, 2]))) == 13
assert rtu.response_length_from_header(b"\x01\x83\x02") == 5

# Request validation (the shared refusal rules).
assert rtu.validate_request_pdu(rtu.read_request(3, 0, 125)) == 0
assert rtu.validate_request_pdu(rtu.read_request(3, 0, 126)) == rtu.ILLEGAL_DATA_VALUE
assert rtu.validate_request_pdu(rtu.read_request(3, 0, 0)) == rtu.ILLEGAL_DATA_VALUE
assert rtu.validate_request_pdu(rtu.read_request(3, 0xFFFF, 2)) == rtu.ILLEGAL_DATA_ADDRESS
assert rtu.validate_request_pdu(b"\x63\x00") == rtu.ILLEGAL_FUNCTION

# Register codecs, both word orders.
for kind, value in (("u16", 65535), ("s16", -2), ("u32", 0x12345678), ("s32", -100000),
                    ("u64", 2 ** 40 + 5), ("s64", -(2 ** 40)), ("datetime", 700000000)):
    for order in ("big", "little"):
        assert rtu.decode_value(kind, rtu.encode_value(kind, value, order), order) == value, (kind, order)
assert rtu.encode_value("u32", 0x12345678) == [0x1234, 0x5678]
assert rtu.encode_value("u32", 0x12345678, "little") == [0x5678, 0x1234]
f = rtu.decode_value("f32", rtu.encode_value("f32", 1.5))
assert f == 1.5
try:
    rtu.encode_value("u16", 70000)
    assert False
except ValueError:
    pass

# Strings as Socomec stores them.
assert rtu.encode_string_16("SOCO", 4) == [0x53, 0x4F, 0x43, 0x4F]
assert rtu.decode_string_16([0x53, 0x4F, 0x43, 0x4F]) == "SOCO"
words = rtu.encode_string_norm("SOCOMEC", 8)
assert words[0] == 0x534F and len(words) == 8
assert rtu.decode_string_norm(words) == "SOCOMEC"
assert rtu.socomec_to_unix(rtu.unix_to_socomec(1700000000)) == 1700000000

# Wire timing: 11 bits per character at 8N1+start.
assert abs(rtu.char_time(38400) - 10 / 38400.0) < 1e-12
assert abs(rtu.char_time(9600, 8, "E", 1) - 11 / 9600.0) < 1e-12
assert rtu.frame_gap(38400) == 0.00175
assert abs(rtu.frame_gap(9600) - 3.5 * 10 / 9600.0) < 1e-12
# Cutting requests out of a receive buffer (RTU slave, simulated meters).
one = rtu.request_frame(1, rtu.read_request(3, 0, 2))
two = rtu.request_frame(2, rtu.write_registers_request(0, [1, 2]))
frame, rest = rtu.split_request(one + two[:5])
assert frame == one and rest == two[:5]
assert rtu.split_request(rest) == (None, rest)
assert rtu.split_request(two) == (two, b"")
unknown = b"\x01\x63\x00\x00"
assert rtu.split_request(unknown) == (None, unknown)          # the silence ends it
print("OK")
