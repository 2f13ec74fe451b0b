"""The meters' curve register windows: addresses, page layouts, item decoding.

Why a module of its own: the gateway's download service
(daemon/runtime/curves.py) and the simulated meters (board/simcurves.py) must
agree on one layout, and the layout is pure facts about the meters: no I/O,
no asyncio, nothing MicroPython lacks (core modules only).

Register windows (socomec-registers.md §4.2, convention 7; details marked
[ours] are our reading of the tables, see docs/storage.md):

* B-30 / Digiware load curves: command 0x8860 (start record, load index,
  power type), then header 0x8870 (8 words) + data 0x8878 (24 items x 4
  words: DATETIME, flags, U16 value x numerator/denominator) in one read.
  A record is a page of 24 consecutive points; 65535 selects the newest.
* A-14 / PMD-classic load curves: command 0xF000 (0x0001 reset the read
  pointer, 0xFFFE acknowledge the batch, [ours] 0x0010 + type selects the
  power type), header 0xF010 (6 words) + data 0xF016 (29 items) in one read.
* B-30 average trends (histories): settings 0xA390 (12 x service ID U32 +
  occurrence), command 0xA3FA (start record, item), header 0xA3FC + data
  0xA400 (20 items: DATETIME, S32 at the registry's gateway scale).

Times decoded here are the meters' stamps: the *end* of each interval.
"""

from core import modbus_rtu as rtu, registry

LAST_RECORD = 0xFFFF
RECORD_NUMBERS = 0xFFFF          # record numbers run 0..65534
EMPTY_FLAG = 0xFFFF              # [ours] item outside the meter's ring

# Item flags 0..3: full/incomplete period, clock set/not set.
FLAG_INCOMPLETE = 1
FLAG_CLOCK_NOT_SET = 2

B30_COMMAND = 0x8860
B30_HEADER = 0x8870
B30_HEADER_WORDS = 8
B30_ITEMS = 24
B30_ITEM_WORDS = 4

A14_COMMAND = 0xF000
A14_HEADER = 0xF010
A14_HEADER_WORDS = 6
A14_ITEMS = 29
A14_ITEM_WORDS = 4
A14_RESET = 0x0001
A14_NEXT = 0xFFFE
A14_SELECT = 0x0010              # [ours] + power type
A14_UNIT_CODES = (0, 0, 2, 2, 4)  # W, W, var, var, VA for P+, P-, Q+, Q-, S

TREND_SETTINGS = 0xA390
TREND_SLOTS = 12
TREND_SETTING_WORDS = 3          # service ID (U32) + occurrence (load)
TREND_COMMAND = 0xA3FA
TREND_HEADER = 0xA3FC
TREND_HEADER_WORDS = 4
TREND_ITEMS = 20
TREND_ITEM_WORDS = 4

# Power types in window order 0..4 are the registry's load-curve rows in order.
POWER_TYPES = tuple(row[registry.KEY] for row in registry.MEASUREMENTS if row[registry.KIND] == "load_curve")
# Which window a product's cache is read through, by catalogue profile.
LC_WINDOW = {"digiware_load": "b30", "digiware_u": "b30", "pmd": "a14", "pmd_a10": "a14", "pmd_countis": "a14",
             "pmd_countis_e3x": "a14"}


def header_period(header):
    """Period (s) of a record-numbered page: B-30 load-curve header (s) or trend header (min)."""
    return header[5] if len(header) == B30_HEADER_WORDS else header[3] * 60


def b30_ratio(header):
    """numerator / denominator of a B-30 load-curve page: raw item x ratio = W, var or VA."""
    return header[6] / float(header[7] or 1)


def decode_a14_header(header):
    """(item count, period s, numerator, denominator) of an A-14 batch header."""
    return header[0], header[2] * 60, header[4], header[5] or 1


def decode_b30_items(words, count=B30_ITEMS):
    """[(end unix time, flags, raw value)] of a B-30 load-curve page (empty items skipped)."""
    out = []
    for i in range(count):
        w = words[i * B30_ITEM_WORDS:(i + 1) * B30_ITEM_WORDS]
        if len(w) < B30_ITEM_WORDS or w[2] == EMPTY_FLAG:
            continue
        out.append((rtu.socomec_to_unix(rtu.decode_value("datetime", w)), w[2], w[3]))
    return out


def decode_trend_items(words, count=TREND_ITEMS):
    """[(end unix time, S32 raw value)] of a trend page (DATETIME 0 = empty)."""
    out = []
    for i in range(count):
        w = words[i * TREND_ITEM_WORDS:(i + 1) * TREND_ITEM_WORDS]
        if len(w) < TREND_ITEM_WORDS:
            continue
        stamp = rtu.decode_value("datetime", w)
        if stamp == 0:
            continue
        out.append((rtu.socomec_to_unix(stamp), rtu.decode_value("s32", w[2:4])))
    return out


def decode_trend_settings(words):
    """[(slot, registry key, load)] of the meter's trend log (unknown IDs skipped)."""
    out = []
    for slot in range(TREND_SLOTS):
        w = words[slot * TREND_SETTING_WORDS:(slot + 1) * TREND_SETTING_WORDS]
        if len(w) < TREND_SETTING_WORDS:
            break
        service_id = rtu.decode_value("u32", w)
        row = registry.by_data_id(service_id) if service_id else None
        if row is not None:
            out.append((slot, row[registry.KEY], w[2]))
    return out
