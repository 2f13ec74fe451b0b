"""The Sparkplug B payload on the wire: a small hand-written protobuf encoder, and a decoder for what comes in.

Why by hand: the payload (Eclipse Sparkplug 3.0 ch. 6, ``sparkplug_b.proto``, proto2, package
org.eclipse.tahu.protobuf) uses four protobuf wire types, and the gateway only ever writes a handful of its
fields; a generated module would need protoc at build time and a runtime library on the Pi for a few hundred
bytes a message. The tests decode every payload with the ``protobuf`` package and a descriptor built from the
``.proto`` text instead, so this encoder is checked against an independent implementation.

Field numbers (sparkplug_b.proto):
  Payload:       timestamp 1 (uint64), metrics 2 (Metric), seq 3 (uint64)
  Metric:        name 1, alias 2 (uint64), timestamp 3 (uint64), datatype 4 (uint32), is_historical 5,
                 is_null 7, properties 9 (PropertySet); value oneof: int_value 10 (uint32), long_value 11
                 (uint64), float_value 12 (float), double_value 13 (double), boolean_value 14, string_value 15
  PropertySet:   keys 1 (string), values 2 (PropertyValue)
  PropertyValue: type 1 (uint32), is_null 2, int_value 3, long_value 4, float_value 5, double_value 6,
                 boolean_value 7, string_value 8

Signed integers are not zig-zag encoded: Sparkplug carries Int8/16/32 in the uint32 ``int_value`` and Int64 in the
uint64 ``long_value`` as two's complement (ch. 6 "Datatype Details").
"""

import collections
import struct

# Sparkplug data types (ch. 6 "Data Types"): the ones the gateway writes or reads.
INT8, INT16, INT32, INT64 = 1, 2, 3, 4
UINT8, UINT16, UINT32, UINT64 = 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING, DATETIME, TEXT = 9, 10, 11, 12, 13, 14

# protobuf wire types
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

# datatype -> (Metric value field, PropertyValue value field, how it is written)
_VALUE_FIELDS = {
    INT8: (10, 3, "u32"), INT16: (10, 3, "u32"), INT32: (10, 3, "u32"),
    UINT8: (10, 3, "u32"), UINT16: (10, 3, "u32"), UINT32: (10, 3, "u32"),
    INT64: (11, 4, "u64"), UINT64: (11, 4, "u64"), DATETIME: (11, 4, "u64"),
    FLOAT: (12, 5, "float"), DOUBLE: (13, 6, "double"), BOOLEAN: (14, 7, "bool"),
    STRING: (15, 8, "str"), TEXT: (15, 8, "str"),
}

# One metric to write. ``properties``: ((key, datatype, value), ...); None leaves a field out. ``datatype`` says
# how the value is written; ``declared`` False leaves the datatype field out (DATA messages:
# tck-id-payloads-metric-datatype-not-req).
Metric = collections.namedtuple("Metric", "name alias timestamp datatype value is_historical properties declared")
Metric.__new__.__defaults__ = (None, None, None, None, None, False, (), True)


class DecodeError(ValueError):
    """A payload that is not a well-formed Sparkplug B protobuf message."""


# ---------------------------------------------------------------------------------------------- encoding

def _varint(number):
    if number < 0:
        raise ValueError("a varint is unsigned: %r" % number)
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        if number:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field, wire):
    return _varint(field << 3 | wire)


def _uint_field(field, number):
    return _key(field, _VARINT) + _varint(number)


def _bytes_field(field, data):
    return _key(field, _LEN) + _varint(len(data)) + data


def _scalar(field, how, value):
    """One value field as the datatype's protobuf type wants it."""
    if how == "u32":
        return _uint_field(field, int(value) & 0xFFFFFFFF)
    if how == "u64":
        return _uint_field(field, int(value) & 0xFFFFFFFFFFFFFFFF)
    if how == "float":
        return _key(field, _I32) + struct.pack("<f", float(value))
    if how == "double":
        return _key(field, _I64) + struct.pack("<d", float(value))
    if how == "bool":
        return _uint_field(field, 1 if value else 0)
    return _bytes_field(field, str(value).encode("utf-8"))


def encode_property_set(properties):
    """PropertySet bytes of ((key, datatype, value), ...); a value None is written ``is_null``."""
    out = bytearray()
    for key, _datatype, _value in properties:
        out += _bytes_field(1, key.encode("utf-8"))
    for _key_name, datatype, value in properties:
        item = _uint_field(1, datatype)
        if value is None:
            item += _uint_field(2, 1)
        else:
            _metric_field, field, how = _VALUE_FIELDS[datatype]
            item += _scalar(field, how, value)
        out += _bytes_field(2, item)
    return bytes(out)


def encode_metric(metric):
    """Metric bytes. ``value`` None with a datatype is written ``is_null`` (ch. 6 "Metric": is_null)."""
    out = bytearray()
    if metric.name is not None:
        out += _bytes_field(1, metric.name.encode("utf-8"))
    if metric.alias is not None:
        out += _uint_field(2, metric.alias)
    if metric.timestamp is not None:
        out += _uint_field(3, metric.timestamp)
    if metric.datatype is not None and metric.declared:
        out += _uint_field(4, metric.datatype)
    if metric.is_historical:
        out += _uint_field(5, 1)
    if metric.value is None:
        out += _uint_field(7, 1)
    if metric.properties:
        out += _bytes_field(9, encode_property_set(metric.properties))
    if metric.value is not None:
        field, _property_field, how = _VALUE_FIELDS[metric.datatype]
        out += _scalar(field, how, metric.value)
    return bytes(out)


def encode_payload(timestamp=None, metrics=(), seq=None):
    """Payload bytes; ``seq`` None leaves the sequence number out (NDEATH)."""
    out = bytearray()
    if timestamp is not None:
        out += _uint_field(1, timestamp)
    for metric in metrics:
        out += _bytes_field(2, encode_metric(metric))
    if seq is not None:
        out += _uint_field(3, seq)
    return bytes(out)


# ---------------------------------------------------------------------------------------------- decoding

def _read_varint(data, pos):
    result, shift = 0, 0
    for _ in range(10):
        if pos >= len(data):
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
    raise DecodeError("varint longer than 10 bytes")


def _fields(data):
    """[(field, wire type, value)] of one message: ints for varint/fixed, bytes for length-delimited."""
    out, pos = [], 0
    data = bytes(data)
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise DecodeError("field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(data, pos)
        elif wire == _I64:
            if pos + 8 > len(data):
                raise DecodeError("truncated 64-bit field")
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == _I32:
            if pos + 4 > len(data):
                raise DecodeError("truncated 32-bit field")
            value, pos = data[pos:pos + 4], pos + 4
        elif wire == _LEN:
            size, pos = _read_varint(data, pos)
            if pos + size > len(data):
                raise DecodeError("length beyond the end of the message")
            value, pos = data[pos:pos + size], pos + size
        else:
            raise DecodeError("unsupported wire type %d" % wire)
        out.append((field, wire, value))
    return out


def _metric_value(field, wire, value):
    if field in (10, 11, 14) and wire == _VARINT:
        return value if field != 14 else bool(value)
    if field == 12 and wire == _I32:
        return struct.unpack("<f", value)[0]
    if field == 13 and wire == _I64:
        return struct.unpack("<d", value)[0]
    if field == 15 and wire == _LEN:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("a string value that is not UTF-8") from None
    if field == 16 and wire == _LEN:
        return bytes(value)
    raise DecodeError("metric field %d with wire type %d" % (field, wire))


DecodedMetric = collections.namedtuple("DecodedMetric", "name alias timestamp datatype value")


def decode_metric(data):
    name = alias = timestamp = datatype = value = None
    for field, wire, raw in _fields(data):
        if field == 1 and wire == _LEN:
            try:
                name = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError("a metric name that is not UTF-8") from None
        elif field == 2 and wire == _VARINT:
            alias = raw
        elif field == 3 and wire == _VARINT:
            timestamp = raw
        elif field == 4 and wire == _VARINT:
            datatype = raw
        elif 10 <= field <= 16:
            value = _metric_value(field, wire, raw)
        # other fields (is_historical, properties, metadata, datasets, templates...) are not needed here
    return DecodedMetric(name, alias, timestamp, datatype, value)


DecodedPayload = collections.namedtuple("DecodedPayload", "timestamp seq metrics")


def decode_payload(data):
    """The timestamp, seq and metrics (name, alias, timestamp, datatype, value) of a payload, e.g. an NCMD;
    DecodeError when it is not a well-formed protobuf message."""
    timestamp = seq = None
    metrics = []
    for field, wire, raw in _fields(data):
        if field == 1 and wire == _VARINT:
            timestamp = raw
        elif field == 2 and wire == _LEN:
            metrics.append(decode_metric(raw))
        elif field == 3 and wire == _VARINT:
            seq = raw
        elif field in (1, 2, 3):
            raise DecodeError("payload field %d with wire type %d" % (field, wire))
    return DecodedPayload(timestamp, seq, metrics)
