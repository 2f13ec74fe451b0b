# Runs under CPython and MicroPython (tests/test_micropython.py): plain asserts.
# The meters' event-log records (core/meter_events.py): a gateway on a
# microcontroller would decode the same words.
from core import meter_events as ev

cause = ev.encode_cause(4, True, 0, 2, 1)                 # a dip starts, critical, on the network
assert ev.decode_cause(cause) == (4, True, 0, 2, 1)
words = ev.encode_item(65537, 753315200, ev.encode_cause(4, False, 0, 2, 1), 11000, 18050, 120)
assert len(words) == ev.ITEM_WORDS and words[0] == 1      # record numbers travel as their low 16 bits
event = ev.decode_item(words, 65537)
assert event["kind"] == "power_quality" and not event["start"] and event["key"] == "v1"
assert event["raw_value"] == 18050 and event["raw_reference"] == 120
name, detail = ev.describe(event)
assert name == "voltage dip on Voltage V1" and detail == "extreme 180.50 V, duration 120 ms", (name, detail)
assert ev.alarm_number("power_quality", 1) == 401

negative = ev.decode_item(ev.encode_item(3, 0, ev.encode_cause(1, True, 2, 1, 5), 12000, -5000, -4000), 3)
assert negative["raw_value"] == -5000 and negative["raw_reference"] == -4000
assert ev.describe(negative)[0] == "alarm 5 on Total active power P (threshold -4000 W)", ev.describe(negative)

for bad_cause in (0x0841, 0x9841, 0x1840, 0x18C1, ev.encode_cause(5, True, 0, 0, 3) + 1):
    try:
        ev.decode_cause(bad_cause)
        assert False, "BadRecord expected for 0x%04X" % bad_cause
    except ev.BadRecord:
        pass
try:
    ev.decode_item(words, 2)
    assert False, "a record that is not the one asked for must be refused"
except ev.BadRecord:
    pass
assert ev.decode_header([0, 70, 12]) == (70, 12)
print("OK")
