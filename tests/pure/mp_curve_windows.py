# Runs under CPython and MicroPython (tests/test_micropython.py): plain asserts.
from core import curve_windows as win
from core import registry

T1 = 1700000400            # DATETIME 0x2CE6AF10 (seconds since 2000)
T2 = 1700001000            # DATETIME 0x2CE6B168

# Windows fit one Modbus read (125 registers) and the power types are the registry's.
assert win.B30_HEADER_WORDS + win.B30_ITEMS * win.B30_ITEM_WORDS <= 125
assert win.A14_HEADER_WORDS + win.A14_ITEMS * win.A14_ITEM_WORDS <= 125
assert win.TREND_HEADER_WORDS + win.TREND_ITEMS * win.TREND_ITEM_WORDS <= 125
assert win.POWER_TYPES == ("lc_p_pos", "lc_p_neg", "lc_q_pos", "lc_q_neg", "lc_s"), win.POWER_TYPES
assert len(win.A14_UNIT_CODES) == len(win.POWER_TYPES)

# B-30 load-curve items: DATETIME, flags, raw; an EMPTY_FLAG item is skipped, a short tail too.
page = [0x2CE6, 0xAF10, 0, 1200,
        0, 0, win.EMPTY_FLAG, 0,
        0x2CE6, 0xB168, win.FLAG_INCOMPLETE | win.FLAG_CLOCK_NOT_SET, 65535,
        0x2CE6]
assert win.decode_b30_items(page) == [(T1, 0, 1200), (T2, 3, 65535)], win.decode_b30_items(page)
assert win.decode_b30_items(page, 1) == [(T1, 0, 1200)]
assert win.decode_b30_items([]) == []

# Page headers: B-30 load curve (period in s, ratio), trend (period in min), A-14 batch.
b30_header = [2, win.B30_ITEMS, 4, 0, 1, 600, 10, 0]
assert win.header_period(b30_header) == 600
assert win.b30_ratio(b30_header) == 10.0              # denominator 0 read as 1
assert win.b30_ratio([2, 24, 4, 0, 1, 600, 1, 4]) == 0.25
assert win.header_period([7, win.TREND_ITEMS, 4, 15]) == 900
assert win.decode_a14_header([3, 4, 15, 0, 100, 0]) == (3, 900, 100, 1)

# Trend items: DATETIME, S32; DATETIME 0 is an empty item.
trend = [0x2CE6, 0xAF10, 0xFFFF, 0xFB2E,
         0, 0, 0, 5,
         0x2CE6, 0xB168, 0, 230]
assert win.decode_trend_items(trend) == [(T1, -1234), (T2, 230)], win.decode_trend_items(trend)

# Trend settings: service ID (U32) + load per slot; 0 and unknown IDs are skipped.
assert registry.by_data_id(999999) is None
settings = [0, 12000, 1,          # p on load 1
            0, 0, 0,              # empty slot
            0x000F, 0x423F, 2,    # 999999: unknown
            0, 10000, 2]          # i1 on load 2
assert win.decode_trend_settings(settings) == [(0, "p", 1), (3, "i1", 2)], win.decode_trend_settings(settings)
assert win.decode_trend_settings([0, 10000]) == []

# The simulated meters and the gateway pick the window by catalogue profile.
assert win.LC_WINDOW["digiware_load"] == "b30" and win.LC_WINDOW["pmd"] == "a14"
print("OK")
