"""An independent Sparkplug B decoder for the tests: Google's ``protobuf`` runtime with the message types of
Eclipse Tahu's ``sparkplug_b.proto`` (Sparkplug 3.0 ch. 6 "Google Protocol Buffer Schema") built here from a
descriptor, field by field as the .proto declares them (proto2, package org.eclipse.tahu.protobuf). No generated
code, no protoc: the gateway's hand-written encoder (outbound/mqtt/sparkplug_pb.py) is checked against this one.

DataSet, Template and MetaData are left out: the gateway never writes them (their field numbers would decode as
unknown fields, which ``unknown_fields`` makes visible).
"""

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED
PACKAGE = "org.eclipse.tahu.protobuf"

# (message, [(field name, number, label, type, message type or None, oneof index or None)], [oneof names])
_MESSAGES = (
    ("Payload", [
        ("timestamp", 1, OPT, F.TYPE_UINT64, None, None),
        ("metrics", 2, REP, F.TYPE_MESSAGE, ".%s.Payload.Metric" % PACKAGE, None),
        ("seq", 3, OPT, F.TYPE_UINT64, None, None),
        ("uuid", 4, OPT, F.TYPE_STRING, None, None),
        ("body", 5, OPT, F.TYPE_BYTES, None, None),
    ], []),
    ("PropertyValue", [
        ("type", 1, OPT, F.TYPE_UINT32, None, None),
        ("is_null", 2, OPT, F.TYPE_BOOL, None, None),
        ("int_value", 3, OPT, F.TYPE_UINT32, None, 0),
        ("long_value", 4, OPT, F.TYPE_UINT64, None, 0),
        ("float_value", 5, OPT, F.TYPE_FLOAT, None, 0),
        ("double_value", 6, OPT, F.TYPE_DOUBLE, None, 0),
        ("boolean_value", 7, OPT, F.TYPE_BOOL, None, 0),
        ("string_value", 8, OPT, F.TYPE_STRING, None, 0),
        ("propertyset_value", 9, OPT, F.TYPE_MESSAGE, ".%s.Payload.PropertySet" % PACKAGE, 0),
    ], ["value"]),
    ("PropertySet", [
        ("keys", 1, REP, F.TYPE_STRING, None, None),
        ("values", 2, REP, F.TYPE_MESSAGE, ".%s.Payload.PropertyValue" % PACKAGE, None),
    ], []),
    ("Metric", [
        ("name", 1, OPT, F.TYPE_STRING, None, None),
        ("alias", 2, OPT, F.TYPE_UINT64, None, None),
        ("timestamp", 3, OPT, F.TYPE_UINT64, None, None),
        ("datatype", 4, OPT, F.TYPE_UINT32, None, None),
        ("is_historical", 5, OPT, F.TYPE_BOOL, None, None),
        ("is_transient", 6, OPT, F.TYPE_BOOL, None, None),
        ("is_null", 7, OPT, F.TYPE_BOOL, None, None),
        ("properties", 9, OPT, F.TYPE_MESSAGE, ".%s.Payload.PropertySet" % PACKAGE, None),
        ("int_value", 10, OPT, F.TYPE_UINT32, None, 0),
        ("long_value", 11, OPT, F.TYPE_UINT64, None, 0),
        ("float_value", 12, OPT, F.TYPE_FLOAT, None, 0),
        ("double_value", 13, OPT, F.TYPE_DOUBLE, None, 0),
        ("boolean_value", 14, OPT, F.TYPE_BOOL, None, 0),
        ("string_value", 15, OPT, F.TYPE_STRING, None, 0),
        ("bytes_value", 16, OPT, F.TYPE_BYTES, None, 0),
    ], ["value"]),
)

# Sparkplug data types (ch. 6 "Data Types"), written here from the specification, not from the gateway's module.
INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, UINT64 = 1, 2, 3, 4, 5, 6, 7, 8
FLOAT, DOUBLE, BOOLEAN, STRING = 9, 10, 11, 12


def _build():
    file_proto = descriptor_pb2.FileDescriptorProto(name="sparkplug_b_test.proto", package=PACKAGE,
                                                    syntax="proto2")
    payload = file_proto.message_type.add(name="Payload")
    nested = {}
    for name, fields, oneofs in _MESSAGES:
        message = payload if name == "Payload" else payload.nested_type.add(name=name)
        nested[name] = message
        for oneof in oneofs:
            message.oneof_decl.add(name=oneof)
        for field_name, number, label, ftype, type_name, oneof in fields:
            field = message.field.add(name=field_name, number=number, label=label, type=ftype)
            if type_name:
                field.type_name = type_name
            if oneof is not None:
                field.oneof_index = oneof
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(PACKAGE + ".Payload"))


Payload = _build()


def decode(data):
    """The Payload message of ``data`` (raises google.protobuf.message.DecodeError when malformed)."""
    message = Payload()
    message.ParseFromString(bytes(data))
    return message


def signed(value, bits):
    """Sparkplug carries Int8..Int64 as two's complement in uint32/uint64 fields (ch. 6 "Datatype Details")."""
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def metric_value(metric):
    """The Python value of a decoded metric, by its datatype as the specification maps it."""
    if metric.is_null:
        return None
    which = metric.WhichOneof("value")
    value = getattr(metric, which)
    if metric.HasField("datatype"):
        if metric.datatype in (INT8, INT16, INT32):
            return signed(value, 32)
        if metric.datatype == INT64:
            return signed(value, 64)
    return value


def properties(metric):
    """{key: value} of a metric's PropertySet (as many keys as values: tck-id-payloads-propertyset-*-array-size)."""
    out = {}
    for key, value in zip(metric.properties.keys, metric.properties.values, strict=True):
        which = value.WhichOneof("value")
        raw = getattr(value, which) if which else None
        out[key] = signed(raw, 32) if value.type == INT32 and raw is not None else raw
    return out


def ncmd(metrics, timestamp):
    """An NCMD payload as a host application writes it: [(name, datatype, value)] (ch. 6 "NCMD")."""
    message = Payload(timestamp=timestamp)
    for name, datatype, value in metrics:
        metric = message.metrics.add(name=name, timestamp=timestamp, datatype=datatype)
        if datatype == BOOLEAN:
            metric.boolean_value = value
        elif datatype == STRING:
            metric.string_value = value
        else:
            metric.long_value = value
    return message.SerializeToString()
