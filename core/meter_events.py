"""The meters' alarm and event log: register window and record codec.

Device alarms (SPEC §6: measurement thresholds, digital inputs, combined
alarms, EN 50160 power-quality events, the device's own alarms) are
recorded by the meters themselves, with the meter's time stamp; the gateway
reads the log and centralises them (daemon/runtime/device_alarms.py). Reading a log
rather than a state bitmap is what catches a 60 ms voltage dip between two
polls, and a record number per event is what lets the gateway resume after
a cut or a restart without losing or repeating one.

The window is the B-30 event log of socomec-registers.md §4.2 (command
0x0270, header 0x0280, data 0x0283); its layout is public only by address,
so the words below are our convention [ours], documented in docs/snmp.md
and served by the simulated meters:

* 0x0270, FC16, 2 words: first record number to show (U32).
* 0x0280, 3 words: next record number the meter will write (U32), number
  of records in the window (U16). Reading the header alone is the cheap
  "anything new?" check.
* 0x0283: up to ITEMS records of ITEM_WORDS words: record number (U16, low
  16 bits, so a reader can verify the window it got), DATETIME (U32),
  cause (U16, below), service ID of the measurement concerned (U32, 0 if
  none), value (S32) and reference (S32), both at the registry's gateway
  scale of that measurement (a threshold alarm's reference is its
  threshold; a power-quality event's is its duration in ms, on the record
  that ends it).

Cause word: bits 15..12 kind (KINDS), bit 11 start (1) or end (0), bits
10..8 load (0 = the device / its voltage network), bits 7..6 criticality
(CRITICALITY), bits 5..0 index (alarm slot 1..63 for configured alarms,
the digital input for logical alarms, the event type of PQ_EVENTS or
DEVICE_ALARMS).

Pure data and integer arithmetic: MicroPython-safe, like the registry.
"""

from core import modbus_rtu as rtu, registry

COMMAND = 0x0270
COMMAND_WORDS = 2
HEADER = 0x0280
HEADER_WORDS = 3
DATA = 0x0283
ITEM_WORDS = 10
ITEMS = 12                       # 3 + 12 x 10 = 123 words: one read of at most 125
NUMBER_MASK = 0xFFFF             # a record number travels as its low 16 bits

# Catalogue profiles whose products keep an event log [ours]: the Digiware /
# B-30 generation. DIRIS A and COUNTIS tables show none, so their alarms
# are not read (docs/snmp.md says so).
PROFILES = ("digiware_load", "digiware_u", "digiware_io")

# kind code -> (key, category shown to users, stateful: has a start and an end
# that bound an "active" period; a power-quality event is one occurrence)
KINDS = {
    1: ("threshold", "measurement alarm", True),
    2: ("logical", "logical alarm", True),
    3: ("combined", "combined alarm", True),
    4: ("power_quality", "power-quality event", False),
    5: ("device", "device alarm", True),
}
KIND_CODES = dict((value[0], code) for code, value in KINDS.items())

# index -> name, for the kinds whose index is a type rather than a slot
PQ_EVENTS = {1: "voltage dip", 2: "overvoltage", 3: "interruption", 4: "overcurrent"}
DEVICE_ALARMS = {1: "phase rotation", 2: "CT disconnected", 3: "V/I association"}

CRITICALITY = ("information", "non-critical", "critical")

# An alarm's number in the gateway's alarm tables and traps (system alarms are
# 1..8): kind x 100 + index, e.g. 101 = threshold alarm slot 1, 401 = dip.
NUMBER_BASE = 100


class BadRecord(ValueError):
    """A record that does not follow the convention: refused, never guessed at."""


def encode_cause(kind, start, load, criticality, index):
    if kind not in KINDS or not 0 <= load <= 7 or not 0 <= criticality < len(CRITICALITY) \
            or not 1 <= index <= 63:
        raise BadRecord("cannot encode cause %r" % ((kind, start, load, criticality, index),))
    return (kind << 12) | ((1 if start else 0) << 11) | (load << 8) | (criticality << 6) | index


def decode_cause(word):
    kind = (word >> 12) & 0xF
    index = word & 0x3F
    criticality = (word >> 6) & 0x3
    if kind not in KINDS or index == 0 or criticality >= len(CRITICALITY):
        raise BadRecord("cause 0x%04X" % word)
    if kind == 4 and index not in PQ_EVENTS or kind == 5 and index not in DEVICE_ALARMS:
        raise BadRecord("cause 0x%04X: unknown event type %d" % (word, index))
    return kind, bool(word & 0x800), (word >> 8) & 0x7, criticality, index


def full_number(near, low16):
    """The record number whose low 16 bits are ``low16``, at or after ``near``."""
    return near + ((low16 - near) & NUMBER_MASK)


def encode_item(record_number, meter_time, cause, data_id, value, reference):
    """The ITEM_WORDS words of one record (meter_time: Socomec DATETIME)."""
    return ([record_number & NUMBER_MASK] + rtu.encode_value("datetime", meter_time) + [cause]
            + rtu.encode_value("u32", data_id) + rtu.encode_value("s32", value)
            + rtu.encode_value("s32", reference))


def decode_item(words, expected_number):
    """One record as a dict; BadRecord if it is not the record asked for or not valid."""
    if len(words) != ITEM_WORDS:
        raise BadRecord("short record")
    if words[0] != expected_number & NUMBER_MASK:
        raise BadRecord("record %d where %d was expected" % (words[0], expected_number & NUMBER_MASK))
    kind, start, load, criticality, index = decode_cause(words[3])
    data_id = rtu.decode_value("u32", words[4:6])
    key = None
    if data_id:
        row = registry.by_data_id(data_id)
        if row is None:
            raise BadRecord("record %d: unknown service ID %d" % (expected_number, data_id))
        key = row[registry.KEY]
    return {"rec": expected_number, "datetime": rtu.decode_value("datetime", words[1:3]), "kind": KINDS[kind][0],
            "start": start, "load": load, "criticality": CRITICALITY[criticality], "index": index,
            "key": key, "raw_value": rtu.decode_value("s32", words[6:8]),
            "raw_reference": rtu.decode_value("s32", words[8:10])}


def encode_header(next_number, count):
    return rtu.encode_value("u32", next_number) + [count]


def decode_header(words):
    """(next record number, records in the window)."""
    if len(words) < HEADER_WORDS:
        raise BadRecord("short header")
    return rtu.decode_value("u32", words), words[2]


def alarm_number(kind, index):
    return KIND_CODES[kind] * NUMBER_BASE + index


def scaled(key, raw):
    """A record's raw S32 as an engineering value (as is when no measurement is named)."""
    return raw if key is None else registry.from_gateway_raw(key, raw)


def raw_of(key, value):
    """An engineering value as a record's raw S32 (as is when no measurement is named)."""
    return int(value) if key is None else registry.to_gateway_raw(key, value)


def describe(event):
    """(name, detail) of a decoded record, for alarm lists, traps and mails."""
    kind, index, key = event["kind"], event["index"], event["key"]
    row = registry.get(key) if key else None
    what = row[registry.NAME] if row else ""
    unit = row[registry.UNIT] if row else ""
    value = scaled(key, event["raw_value"])
    if kind == "power_quality":
        name = PQ_EVENTS[index] + (" on " + what if what else "")
        if event["start"]:
            detail = "extreme %.2f %s" % (value, unit) if row else ""
        else:
            detail = "extreme %.2f %s, duration %d ms" % (value, unit, event["raw_reference"]) if row \
                else "duration %d ms" % event["raw_reference"]
        return name, detail.strip(", ")
    if kind == "device":
        return DEVICE_ALARMS[index], ""
    if kind == "logical":
        return "logical alarm on input %d" % index, "input state %d" % event["raw_value"]
    reference = scaled(key, event["raw_reference"])
    if kind == "threshold" and row:
        # the record does not say on which side of the threshold the alarm is:
        # the name must read the same on the start and on the end record
        return ("alarm %d on %s (threshold %g %s)" % (index, what, reference, unit)).replace(" )", ")"), \
            "value %.3f %s" % (value, unit)
    return "%s %d" % (KINDS[KIND_CODES[kind]][1], index), ("value %.3f %s" % (value, unit)).strip()
