"""The simulated meters' register tables: data of their own, written from the Socomec facts.

Every row below was written from ../shared/socomec-registers.md (its source
tags are kept on each row: [OE-A10], [OE-B30], [OE-E23], ...; [ours] marks our
own conventions, its section 6) and the manuals it points to. This module is
NOT generated from core/catalogue.py and must never import it: the gateway's
catalogue is checked against these tables (tests/test_sim_vs_catalogue.py),
so a wrong catalogue entry fails a test instead of being copied into the
meter that is supposed to catch it (issue 12).

Rows are ``(address, type, name, scale, source)``: the register holds
``round(value / scale)`` of the meter's engineering value ``name`` (volts,
amperes, watts, vars, volt-amperes, hertz, percent, watt-hours, hours...), so
``value = raw * scale``. Per-load rows give offsets from the load's base.
A word no row covers inside a block is Reserved and reads 0; a read that
leaves every block answers exception 02 (convention 10).

Types, by the vendor tables' names (section 0):
  U16, S16, U8 (one word), U32, S32 (two words, high word first), DATETIME
  (U32 seconds since 2000-01-01), KWH+10WH (the B-30 energy pair: U32 in
  ``scale`` units then a U16 residual in ``scale / 100`` units, 3 words),
  BITS (one word; bit n is the value ``name + str(n + 1)``).
"""

WORDS = {"U16": 1, "S16": 1, "U8": 1, "U32": 2, "S32": 2, "DATETIME": 2, "KWH+10WH": 3, "BITS": 1}
SIGNED = ("S16", "S32")

# ---------------------------------------------------------------------- identification (section 1)

IDENT_BASE = 0xC350                 # [OE-*] "SOCO" ... read with FC3 at 0xC350
IDENT_WORDS = 66                    # [OE-A10] [OE-A14] [OE-E14] [OE-E23] [OE-E34]: 0xC350..0xC391
IDENT_WORDS_NETID = 69              # [OE-B30]: + resource version (0xC392) + NET ID (0xC393..0xC394)

# (offset, words, type, field, source); string types carry their length in words
IDENT_FIELDS = (
    (0, 4, "STRING_16", "soco", "[OE-*] constant SOCO, one char per word (low byte)"),
    (4, 1, "U16", "family", "[OE-*] COUNTIS=100, Protection=200, ATyS=300, DIRIS=400"),
    (5, 1, "U16", "product_id", "[OE-*] value per reference: [ours] section 6.1"),
    (6, 1, "U16", "table_version", "[OE-*] 101 = v1.01"),
    (7, 1, "U16", "software_version", "[OE-*] 100 = v1.00"),
    (8, 1, "U16", "serial_aa_ss", "[OE-*] U16_HEX; [ours] 6.3: from the simulator's handle"),
    (9, 1, "U16", "serial_sst_l", "[OE-*] U16_HEX; [ours] 6.3"),
    (10, 1, "U16", "serial_order", "[OE-*]"),
    (11, 2, "U32", "serial_reserve", "[OE-*]"),
    (13, 4, "U64", "code", "[OE-*] U64_HEX"),
    (17, 1, "U8", "customized", "[OE-*]"),
    (18, 1, "U16", "version_major", "[OE-*]"),
    (19, 1, "U16", "version_minor", "[OE-*]"),
    (20, 1, "U16", "version_revision", "[OE-*]"),
    (21, 1, "U16", "version_build", "[OE-*]"),
    (22, 3, "DATETIME_3", "build_date", "[OE-*]; layout [ours] 6.3: year, month*256+day, hour*256+minute"),
    (25, 1, "U16", "base_major", "[OE-*]"),
    (26, 1, "U16", "base_minor", "[OE-*]"),
    (27, 1, "U16", "base_revision", "[OE-*]"),
    (28, 1, "U16", "custom_major", "[OE-*]"),
    (29, 1, "U16", "custom_minor", "[OE-*]"),
    (30, 4, "STRING_NORM", "product_vlo", "[OE-*]"),
    (34, 4, "STRING_NORM", "custom_vlo", "[OE-*]"),
    (38, 4, "STRING_NORM", "base_vlo", "[OE-*]"),
    (42, 8, "STRING_NORM", "vendor", "[OE-*] e.g. SOCOMEC"),
    (50, 8, "STRING_NORM", "product_name", "[OE-*] e.g. DIRIS A40R"),
    (58, 8, "STRING_NORM", "ext_name", "[OE-*] extended name, [OE-code] identifies meters by its prefix"),
)
IDENT_FIELDS_NETID = (
    (66, 1, "U16", "resource_version", "[OE-B30] resource version (build 2), B-30 only"),
    (67, 2, "U32", "netid", "[OE-B30] Net ID, U32_HEX; 24 bits shown as 6 hex digits [M70-FR]"),
)

# ---------------------------------------------------------------------- other fixed registers

CLOCK_REGISTER = 0xE100             # [OE-A14] [OE-B30]: 6 words, one FC16 (section 4.3)
RS485_SETTINGS = 0xE000             # [OE-B30]: slave address, baud code, stop bits, parity (section 4.4)
PMD_SETTINGS = 0xE000               # [OE-A10]: network type, CT secondary, CT primary (section 4.4)
NETID_ASSIGN_REGISTER = 0xE010      # [ours] conflict arbitration (docs/architecture.md, "Address conflicts")
NETID_FILTER_REGISTER = 0xE020      # [ours]
LOAD_BASE = 0x4800                  # [OE-B30]: load n at 0x4800 + (n - 1) * 0x800 (section 3.3)
LOAD_STRIDE = 0x800                 # [OE-B30]; [ours] 6.5: the same for every multi-load device
LOAD_SETTINGS_BASE = 0x3600         # [OE-B30]: per load, stride 0x20: enabled, type, Inom, nature, usage
LOAD_SETTINGS_STRIDE = 0x20         # [OE-B30]
IO_BASE = 0xCB00                    # [ours] 6.5: input count, output count, input bits, output bits
IO_OUTPUT_REGISTER = 0xCB10         # [ours]: one U16 per output, 0/1, FC6/FC16

# Load type codes (0x3601 + load offset) [OE-B30]: 1 = 1P+N-1CT ... 9 = 3P+N-4CT; the
# codes for 2P and 3P are [ours] (the B-30 table lists the range, not each code).
LOAD_TYPE_CODES = {"1P+N": 1, "2P": 3, "3P": 6, "3P+N": 9}
# Network type at 0xE000 on DIRIS A / COUNTIS [OE-A10]: 0 1BL, 1 2BL, 2 3BL, 3 3NBL, 4 4BL, 5 4NBL;
# which code a network of ours is: [ours].
PMD_NETWORK_CODES = {"1P+N": 0, "2P": 1, "3P": 3, "3P+N": 5}
BAUD_CODES = {1200: 0, 2400: 1, 4800: 2, 9600: 3, 19200: 4, 38400: 5, 57600: 6, 115200: 7}   # [OE-B30]

# What a load of each network type does not measure ([ours]: its phases 2/3, its
# neutral, or its phase-to-neutral voltages): the meter shows 0 or a network value there.
NOT_MEASURED = {
    "3P+N": (),
    "3P": ("v1", "v2", "v3", "vn", "v_sys", "in"),
    "1P+N": ("v2", "v3", "u12", "u23", "u31", "u_sys", "i2", "i3", "in", "p2", "p3", "q2", "q3", "s2", "s3",
             "pf2", "pf3", "pf2_type", "pf3_type"),
    "2P": ("v2", "v3", "vn", "u23", "u31", "u_sys", "i2", "i3", "in", "p2", "p3", "q2", "q3", "s2", "s3",
           "pf2", "pf3", "pf2_type", "pf3_type"),
}

# ---------------------------------------------------------------------- PMD classic (sections 2, 3.1, 2.1)

# The common real-time rows U12..PF3 (0xC552..0xC587), identical on, COUNTIS
# E23/E24/E34/E44 [OE-A10] [OE-A14] [OE-E23] [OE-E34] and DIRIS A-30 [YW]; frequency apart.
_C552_TO_C587 = (
    (0xC552, "U32", "u12", 0.01, "[OE-A10] V/100"),
    (0xC554, "U32", "u23", 0.01, "[OE-A10] V/100"),
    (0xC556, "U32", "u31", 0.01, "[OE-A10] V/100"),
    (0xC558, "U32", "v1", 0.01, "[OE-A10] V/100"),
    (0xC55A, "U32", "v2", 0.01, "[OE-A10] V/100"),
    (0xC55C, "U32", "v3", 0.01, "[OE-A10] V/100"),
    (0xC560, "U32", "i1", 0.001, "[OE-A10] mA"),
    (0xC562, "U32", "i2", 0.001, "[OE-A10] mA"),
    (0xC564, "U32", "i3", 0.001, "[OE-A10] mA"),
    (0xC566, "U32", "in", 0.001, "[OE-A10] mA"),
    (0xC568, "S32", "p", 10, "[OE-A10] ΣP +/-, W 10 (units of 10 W)"),
    (0xC56A, "S32", "q", 10, "[OE-A10] ΣQ +/-, units of 10 var"),
    (0xC56C, "U32", "s", 10, "[OE-A10] ΣS, units of 10 VA"),
    (0xC56E, "S32", "pf", 0.001, "[OE-A10] ΣPF /1000, - leading + lagging"),
    (0xC570, "S32", "p1", 10, "[OE-A10] 10 W"),
    (0xC572, "S32", "p2", 10, "[OE-A10] 10 W"),
    (0xC574, "S32", "p3", 10, "[OE-A10] 10 W"),
    (0xC576, "S32", "q1", 10, "[OE-A10] 10 var"),
    (0xC578, "S32", "q2", 10, "[OE-A10] 10 var"),
    (0xC57A, "S32", "q3", 10, "[OE-A10] 10 var"),
    (0xC57C, "U32", "s1", 10, "[OE-A10] 10 VA"),
    (0xC57E, "U32", "s2", 10, "[OE-A10] 10 VA"),
    (0xC580, "U32", "s3", 10, "[OE-A10] 10 VA"),
    (0xC582, "S32", "pf1", 0.001, "[OE-A10] /1000"),
    (0xC584, "S32", "pf2", 0.001, "[OE-A10] /1000"),
    (0xC586, "S32", "pf3", 0.001, "[OE-A10] /1000"),
)

# Blocks are (start, words, rows, source).
A10_INSTANT = (0xC550, 74, (
    (0xC550, "U32", "hour_meter", 0.01, "[OE-A10] hour meter, h/100"),
    (0xC55E, "U32", "freq", 0.01, "[OE-A10] Hz/100 (A-30: same [YW])"),
) + _C552_TO_C587 + (
    (0xC58E, "S32", "pf", 0.001, "[OE-A10] total PF (repeat), A-10 only"),
    (0xC590, "S32", "pf1", 0.001, "[OE-A10] PF1 (repeat)"),
    (0xC592, "S32", "pf2", 0.001, "[OE-A10] PF2 (repeat)"),
    (0xC594, "S32", "pf3", 0.001, "[OE-A10] PF3 (repeat)"),
    (0xC596, "U16", "pf_type", 1, "[OE-A10] 0 undefined, 1 leading, 2 lagging"),
    (0xC597, "U16", "pf1_type", 1, "[OE-A10]"),
    (0xC598, "U16", "pf2_type", 1, "[OE-A10]"),
    (0xC599, "U16", "pf3_type", 1, "[OE-A10]"),
), "[OE-A10] 74 words")

COUNTIS_E23_INSTANT = (0xC550, 62, (
    (0xC55E, "U32", "freq", 0.001, "[OE-E23] Hz/1000 on COUNTIS E14/E23/E24"),
) + _C552_TO_C587 + (
    (0xC588, "U32", "i_sys", 0.001, "[OE-E23] I sys = (I1+I2+I3)/3, mA"),
    (0xC58A, "U32", "u_sys", 0.01, "[OE-E23] U sys, V/100"),
    (0xC58C, "U32", "v_sys", 0.01, "[OE-E23] V sys, V/100"),
), "[OE-E23] 62 words; 0xC550 reserved")

COUNTIS_E14_INSTANT = (0xC550, 62, (
    (0xC558, "U32", "v1", 0.01, "[OE-E14] V/100"),
    (0xC55E, "U32", "freq", 0.001, "[OE-E14] Hz/1000"),
    (0xC560, "U32", "i1", 0.001, "[OE-E14] mA"),
    (0xC568, "S32", "p", 10, "[OE-E14] 10 W"),
    (0xC56A, "S32", "q", 10, "[OE-E14] 10 var"),
    (0xC56C, "U32", "s", 10, "[OE-E14] 10 VA"),
    (0xC56E, "S32", "pf", 0.001, "[OE-E14] /1000"),
    (0xC570, "S32", "p1", 10, "[OE-E14] 10 W"),
    (0xC576, "S32", "q1", 10, "[OE-E14] 10 var"),
    (0xC57C, "U32", "s1", 10, "[OE-E14] 10 VA"),
    (0xC582, "S32", "pf1", 0.001, "[OE-E14] /1000"),
), "[OE-E14] single phase: the rest of the 62 words is reserved")

COUNTIS_E34_INSTANT = (0xC550, 62, (
    (0xC55E, "U32", "freq", 0.01, "[OE-E34] Hz/100 on E34/E44"),
) + _C552_TO_C587, "[OE-E34] 62 words")

# Energy block 0xC650, U32 in kWh / kvarh / kVAh (scale 1000 = Wh per raw unit). Its length is
# not in the tables: 62 words (to 0xC68D, past the last documented row 0xC68C) is [ours].
# The simulated meters never reset a partial index: partial = total.
A10_ENERGY = (0xC650, 62, (
    (0xC650, "U32", "hour_meter", 0.01, "[OE-A10] hour meter, h/100"),
    (0xC65C, "U32", "ea_pos", 1000, "[OE-A10] partial Ea+ kWh (totals are Reserved on the A-10)"),
    (0xC65E, "U32", "er_pos", 1000, "[OE-A10] partial Er+ kvarh"),
    (0xC660, "U32", "es", 1000, "[OE-A10] partial Es kVAh"),
    (0xC662, "U32", "ea_neg", 1000, "[OE-A10] partial Ea- kWh"),
    (0xC664, "U32", "er_neg", 1000, "[OE-A10] partial Er- kvarh"),
), "[OE-A10]; length [ours]")

A14_ENERGY_ROWS = (
    (0xC652, "U32", "ea_pos", 1000, "[OE-A14] total Ea+ kWh"),
    (0xC654, "U32", "er_pos", 1000, "[OE-A14] total Er+ kvarh"),
    (0xC658, "U32", "ea_neg", 1000, "[OE-A14] total Ea- kWh"),
    (0xC65A, "U32", "er_neg", 1000, "[OE-A14] total Er- kvarh"),
    (0xC65C, "U32", "ea_pos", 1000, "[OE-A14] partial Ea+ kWh"),
    (0xC65E, "U32", "er_pos", 1000, "[OE-A14] partial Er+ kvarh"),
    (0xC662, "U32", "ea_neg", 1000, "[OE-A14] partial Ea- kWh"),
    (0xC664, "U32", "er_neg", 1000, "[OE-A14] partial Er- kvarh"),
)
# DIRIS A-40: the A-14/COUNTIS column plus the A-10 hour meter ([ours] 6.4); Es Reserved as on the A-14.
A40_ENERGY = (0xC650, 62, (
    (0xC650, "U32", "hour_meter", 0.01, "[ours] 6.4: the A-10 hour meter, h/100"),
) + A14_ENERGY_ROWS, "[OE-A14] column, [ours] 6.4; length [ours]")

COUNTIS_E23_ENERGY = (0xC650, 62, (
    (0xC652, "U32", "ea_pos", 1000, "[OE-E23] total Ea+ kWh"),
    (0xC654, "U32", "er_pos", 1000, "[OE-E23] total Er+ kvarh"),
    (0xC656, "U32", "es", 1000, "[OE-E23] total Es kVAh (COUNTIS E14/E23/E24)"),
    (0xC658, "U32", "ea_neg", 1000, "[OE-E23] total Ea- kWh"),
    (0xC65A, "U32", "er_neg", 1000, "[OE-E23] total Er- kvarh"),
    (0xC65C, "U32", "ea_pos", 1000, "[OE-E23] partial Ea+ kWh"),
    (0xC65E, "U32", "er_pos", 1000, "[OE-E23] partial Er+ kvarh"),
    (0xC660, "U32", "es", 1000, "[OE-E23] partial Es kVAh"),
    (0xC662, "U32", "ea_neg", 1000, "[OE-E23] partial Ea- kWh"),
    (0xC664, "U32", "er_neg", 1000, "[OE-E23] partial Er- kvarh"),
), "[OE-E14] [OE-E23]; length [ours]")

COUNTIS_E34_ENERGY = (0xC650, 62, (
    (0xC652, "U32", "ea_pos", 1000, "[OE-E34] total Ea+ kWh"),
    (0xC654, "U32", "er_pos", 1000, "[OE-E34] total Er+ kvarh"),
    (0xC658, "U32", "ea_neg", 1000, "[OE-E34] total Ea- kWh (Es, Er- Reserved)"),
    (0xC65C, "U32", "ea_pos", 1000, "[OE-E34] partial Ea+ kWh"),
    (0xC65E, "U32", "er_pos", 1000, "[OE-E34] partial Er+ kvarh"),
    (0xC662, "U32", "ea_neg", 1000, "[OE-E34] partial Ea- kWh"),
), "[OE-E34]; length [ours]; the last-average rows (0xC68A..) not modelled (0)")


def in_tens_of_wh(block, start):
    """The 0xC700 block: "same layout as 0xC650, raw in 10 Wh" [OE-A14] [OE-E34] [OE-code]."""
    old_start, words, rows, source = block
    energy = [(start + (reg - old_start), kind, name, scale / 100.0, src + "; /100 at 0xC700")
              for reg, kind, name, scale, src in rows if scale == 1000]
    return (start, words, tuple(energy), source + "; 10 Wh at 0xC700")


A10_THD = (0xC950, 9, (
    (0xC950, "U16", "thd_u12", 0.1, "[OE-A10] %/10"),
    (0xC951, "U16", "thd_u23", 0.1, "[OE-A10] %/10"),
    (0xC952, "U16", "thd_u31", 0.1, "[OE-A10] %/10"),
    (0xC953, "U16", "thd_v1", 0.1, "[OE-A10] %/10"),
    (0xC954, "U16", "thd_v2", 0.1, "[OE-A10] %/10"),
    (0xC955, "U16", "thd_v3", 0.1, "[OE-A10] %/10"),
    (0xC956, "U16", "thd_i1", 0.1, "[OE-A10] %/10"),
    (0xC957, "U16", "thd_i2", 0.1, "[OE-A10] %/10"),
    (0xC958, "U16", "thd_i3", 0.1, "[OE-A10] %/10"),
), "[OE-A10]; [ours] 6.4 on every DIRIS A")

# Legacy ("old", pre-2009) table at 0x0300 [OE-A10] [YW] [RP]; served by DIRIS A simulators ([ours] 6.6).
LEGACY = (0x0300, 92, (
    (768, "U32", "i1", 0.001, "[OE-A10] mA"), (770, "U32", "i2", 0.001, "[OE-A10]"),
    (772, "U32", "i3", 0.001, "[OE-A10]"), (774, "U32", "in", 0.001, "[OE-A10]"),
    (776, "U32", "u12", 0.01, "[OE-A10] V/100"), (778, "U32", "u23", 0.01, "[OE-A10]"),
    (780, "U32", "u31", 0.01, "[OE-A10]"), (782, "U32", "v1", 0.01, "[OE-A10] [RP]"),
    (784, "U32", "v2", 0.01, "[OE-A10]"), (786, "U32", "v3", 0.01, "[OE-A10]"),
    (788, "U32", "freq", 0.01, "[OE-A10] [RP] Hz/100"),
    (790, "S32", "p", 10, "[OE-A10] [RP] 10 W"), (792, "S32", "q", 10, "[OE-A10] 10 var"),
    (794, "U32", "s", 10, "[OE-A10] 10 VA"), (796, "S32", "pf", 0.001, "[OE-A10] /1000"),
    (798, "S32", "p1", 10, "[OE-A10]"), (800, "S32", "p2", 10, "[OE-A10]"), (802, "S32", "p3", 10, "[OE-A10]"),
    (804, "S32", "q1", 10, "[OE-A10]"), (806, "S32", "q2", 10, "[OE-A10]"), (808, "S32", "q3", 10, "[OE-A10]"),
    (810, "U32", "s1", 10, "[OE-A10]"), (812, "U32", "s2", 10, "[OE-A10]"), (814, "U32", "s3", 10, "[OE-A10]"),
    (816, "S32", "pf1", 0.001, "[OE-A10]"), (818, "S32", "pf2", 0.001, "[OE-A10]"),
    (820, "S32", "pf3", 0.001, "[OE-A10]"),
    (854, "U32", "hour_meter", 0.01, "[OE-A10] h/100"),
    (856, "U32", "ea_pos", 1000, "[OE-A10] [RP] Ea+ kWh"),
    (858, "U32", "er_pos", 1000, "[OE-A10] Er+ kvarh"),
), "[OE-A10] 768..859; max/avg 838..852 not modelled (0)")

# ---------------------------------------------------------------------- B-30 / Digiware generation (3.3)

LOAD_INSTANT = (0x000, 92, (
    (0, "U8", "load_status", 1, "[OE-B30] 0 disabled / 1 enabled"),
    (1, "DATETIME", "date", 1, "[OE-B30] date of the last value, s since 2000"),
    (4, "U32", "v_sys", 0.01, "[OE-B30] system V, V/100"),
    (6, "U32", "u_sys", 0.01, "[OE-B30] system U, V/100"),
    (8, "U32", "i_sys", 0.001, "[OE-B30] system current, A/1000"),
    (10, "U32", "freq", 0.001, "[OE-B30] Hz/1000"),
    (12, "U32", "v1", 0.01, "[OE-B30] V/100"),
    (14, "U32", "v2", 0.01, "[OE-B30] V/100"),
    (16, "U32", "v3", 0.01, "[OE-B30] V/100"),
    (18, "U32", "vn", 0.01, "[OE-B30] V/100"),
    (20, "U32", "u12", 0.01, "[OE-B30] V/100"),
    (22, "U32", "u23", 0.01, "[OE-B30] V/100"),
    (24, "U32", "u31", 0.01, "[OE-B30] V/100"),
    (26, "U32", "i1", 0.001, "[OE-B30] A/1000"),
    (28, "U32", "i2", 0.001, "[OE-B30] A/1000"),
    (30, "U32", "i3", 0.001, "[OE-B30] A/1000"),
    (32, "U32", "in", 0.001, "[OE-B30] A/1000"),
    (34, "U16", "i_unb", 0.01, "[OE-B30] Inba, %/100"),
    (35, "U32", "i_dir", 0.001, "[OE-B30] Idir, A/1000"),
    (37, "U32", "i_inv", 0.001, "[OE-B30] Iinv, A/1000"),
    (39, "U32", "i_hom", 0.001, "[OE-B30] Ihom, A/1000"),
    (41, "U16", "i_nb", 0.01, "[OE-B30] Inb, %/100"),
    (42, "U32", "s_nom", 1, "[OE-B30] Snom, VA"),
    (44, "S32", "p", 1, "[OE-B30] ΣP, W"),
    (46, "S32", "q", 1, "[OE-B30] ΣQ, var"),
    (48, "S32", "q_lagging", 1, "[OE-B30] ΣQ lagging, var"),
    (50, "S32", "q_leading", 1, "[OE-B30] ΣQ leading, var"),
    (52, "U32", "s", 1, "[OE-B30] ΣS, VA"),
    (54, "S16", "pf", 0.001, "[OE-B30] ΣPF /1000"),
    (55, "U8", "pf_type", 1, "[OE-B30] 0 undefined / 1 leading / 2 lagging"),
    (56, "S32", "p1", 1, "[OE-B30] W"),
    (58, "S32", "p2", 1, "[OE-B30] W"),
    (60, "S32", "p3", 1, "[OE-B30] W"),
    (62, "S32", "q1", 1, "[OE-B30] var"),
    (64, "S32", "q2", 1, "[OE-B30] var"),
    (66, "S32", "q3", 1, "[OE-B30] var"),
    (68, "S32", "q1_lagging", 1, "[OE-B30] var"),
    (70, "S32", "q2_lagging", 1, "[OE-B30] var"),
    (72, "S32", "q3_lagging", 1, "[OE-B30] var"),
    (74, "S32", "q1_leading", 1, "[OE-B30] var"),
    (76, "S32", "q2_leading", 1, "[OE-B30] var"),
    (78, "S32", "q3_leading", 1, "[OE-B30] var"),
    (80, "U32", "s1", 1, "[OE-B30] VA"),
    (82, "U32", "s2", 1, "[OE-B30] VA"),
    (84, "U32", "s3", 1, "[OE-B30] VA"),
    (86, "S16", "pf1", 0.001, "[OE-B30] /1000"),
    (87, "S16", "pf2", 0.001, "[OE-B30] /1000"),
    (88, "S16", "pf3", 0.001, "[OE-B30] /1000"),
    (89, "U8", "pf1_type", 1, "[OE-B30]"),
    (90, "U8", "pf2_type", 1, "[OE-B30]"),
    (91, "U8", "pf3_type", 1, "[OE-B30]"),
), "[OE-B30] instantaneous measurement, 92 words")

# The average block's size is [OE-B30] (93 words); its layout is not in the table we have:
# [ours] it mirrors the instantaneous layout at +0x80 (the simulated meters fill currents and powers).
LOAD_AVERAGE = (0x080, 93, (
    (0x080 + 26, "U32", "avg_i1", 0.001, "[ours] mirror of +26"),
    (0x080 + 28, "U32", "avg_i2", 0.001, "[ours] mirror of +28"),
    (0x080 + 30, "U32", "avg_i3", 0.001, "[ours] mirror of +30"),
    (0x080 + 32, "U32", "avg_in", 0.001, "[ours] mirror of +32"),
    (0x080 + 44, "S32", "avg_p", 1, "[ours] mirror of +44"),
    (0x080 + 46, "S32", "avg_q", 1, "[ours] mirror of +46"),
    (0x080 + 52, "U32", "avg_s", 1, "[ours] mirror of +52"),
), "[OE-B30] 93 words; layout [ours]")

# I harmonics block [OE-B30] (109 words, %/100, U16); [ours]: THD I1, I2, I3, In are its first words.
LOAD_HARMONICS = (0x500, 109, (
    (0x500, "U16", "thd_i1", 0.01, "[ours] %/100 [OE-B30]"),
    (0x501, "U16", "thd_i2", 0.01, "[ours] %/100"),
    (0x502, "U16", "thd_i3", 0.01, "[ours] %/100"),
    (0x503, "U16", "thd_in", 0.01, "[ours] %/100"),
), "[OE-B30] 109 words; rows [ours]")

# I-30 / I-31: "THD Inst I1 returns 0 for an I-30 or I-31 module" [M70-FR] annex I: not managed (block of zeros).
LOAD_HARMONICS_NOT_MANAGED = (0x500, 109, (), "[OE-B30] 109 words; THD not managed on the I-30 [M70-FR]")

# Energy block [OE-B30]: (U32 kWh, U16 residual in 10 Wh) pairs; hour meters in seconds.
LOAD_ENERGY = (0x580, 66, (
    (0x580, "U8", "load_status", 1, "[OE-B30] status"),
    (0x581, "U32", "hour_meter_s", 1, "[OE-B30] total hour meter, seconds"),
    (0x583, "KWH+10WH", "ea_pos", 1000, "[OE-B30] Ea+ kWh + rEa+ 10 Wh"),
    (0x586, "KWH+10WH", "ea_neg", 1000, "[OE-B30] Ea-"),
    (0x589, "KWH+10WH", "er_pos", 1000, "[OE-B30] Er+ kvarh + 10 varh"),
    (0x58C, "KWH+10WH", "er_neg", 1000, "[OE-B30] Er-"),
    (0x58F, "KWH+10WH", "es", 1000, "[OE-B30] Es kVAh + 10 VAh"),
    (0x59E, "U32", "hour_meter_s", 1, "[OE-B30] partial hour meter (never reset: total)"),
    (0x5A0, "KWH+10WH", "ea_pos", 1000, "[OE-B30] partial Ea+ (never reset: total)"),
    (0x5A3, "KWH+10WH", "ea_neg", 1000, "[OE-B30] partial Ea-"),
    (0x5A6, "KWH+10WH", "er_pos", 1000, "[OE-B30] partial Er+"),
    (0x5A9, "KWH+10WH", "er_neg", 1000, "[OE-B30] partial Er-"),
    (0x5AC, "KWH+10WH", "es", 1000, "[OE-B30] partial Es"),
), "[OE-B30] 66 words; Er lagging/leading splits and last-partial values not modelled (0)")

# Load settings, one 0x20-word slot per load [OE-B30].
LOAD_SETTINGS = (
    (0, "U8", "enabled", 1, "[OE-B30] load enabled"),
    (1, "U16", "load_type", 1, "[OE-B30] 1 = 1P+N-1CT ... 9 = 3P+N-4CT"),
    (2, "U16", "inom", 1, "[OE-B30] Inom, A"),
)

# Digiware U-xx network block at 0x9000 [OE-B30] (DATETIME, integration time, system V/U,
# F Hz/1000, V1..Vn, U12..U31, ...): the exact offsets of that order and its 40 words are [ours].
U_NETWORK = (0x9000, 40, (
    (0x9000, "DATETIME", "date", 1, "[OE-B30] date of the last value"),
    (0x9003, "U32", "v_sys", 0.01, "[ours] offset; [OE-B30] system V"),
    (0x9005, "U32", "u_sys", 0.01, "[ours] offset; [OE-B30] system U"),
    (0x9007, "U32", "freq", 0.001, "[ours] offset; [OE-B30] F Hz/1000"),
    (0x9009, "U32", "v1", 0.01, "[ours] offset; [OE-B30] V/100"),
    (0x900B, "U32", "v2", 0.01, "[ours] offset"),
    (0x900D, "U32", "v3", 0.01, "[ours] offset"),
    (0x900F, "U32", "vn", 0.01, "[ours] offset"),
    (0x9011, "U32", "u12", 0.01, "[ours] offset"),
    (0x9013, "U32", "u23", 0.01, "[ours] offset"),
    (0x9015, "U32", "u31", 0.01, "[ours] offset"),
), "[OE-B30] network block; offsets and length [ours]")

IO_BLOCK = (IO_BASE, 4, (
    (IO_BASE, "U16", "n_inputs", 1, "[ours] 6.5 input count"),
    (IO_BASE + 1, "U16", "n_outputs", 1, "[ours] 6.5 output count"),
    (IO_BASE + 2, "BITS", "in_", 1, "[ours] 6.5 input states, bit 0 = input 1"),
    (IO_BASE + 3, "BITS", "out_", 1, "[ours] 6.5 output states, bit 0 = output 1"),
), "[ours] 6.5 (as on the A-10)")

# ---------------------------------------------------------------------- layouts and products

# layout: (NET ID in the identification block, device-level blocks, per-load blocks, the
# cache window its load curves are read through (core/curve_windows.py names), event log)
LAYOUTS = {
    "a10": (False, (A10_INSTANT, A10_ENERGY, A10_THD, LEGACY), (), "a14", False),
    "a40": (False, (A10_INSTANT, A40_ENERGY, in_tens_of_wh(A40_ENERGY, 0xC700), A10_THD, LEGACY), (), "a14", False),
    "countis_e14": (False, (COUNTIS_E14_INSTANT, COUNTIS_E23_ENERGY), (), "a14", False),
    "countis_e23": (False, (COUNTIS_E23_INSTANT, COUNTIS_E23_ENERGY, in_tens_of_wh(COUNTIS_E23_ENERGY, 0xC700)),
                    (), "a14", False),
    "countis_e34": (False, (COUNTIS_E34_INSTANT, COUNTIS_E34_ENERGY, in_tens_of_wh(COUNTIS_E34_ENERGY, 0xC700)),
                    (), "a14", False),
    "b30_load": (True, (), (LOAD_INSTANT, LOAD_AVERAGE, LOAD_HARMONICS, LOAD_ENERGY), "b30", True),
    "b30_basic": (True, (), (LOAD_INSTANT, LOAD_AVERAGE, LOAD_HARMONICS_NOT_MANAGED, LOAD_ENERGY), "b30", True),
    "b30_network": (True, (U_NETWORK,), (), "b30", True),
    "b30_io": (True, (IO_BLOCK,), (), None, True),
}
NETID = 0
DEVICE_BLOCKS = 1
LOAD_BLOCKS = 2
CURVE_WINDOW = 3
EVENT_LOG = 4

LC, H = "load_curve", "history"

# The references the simulator offers: reference -> (layout, family code, product id,
# extended name, loads, network types, inputs, outputs, caches, source).
# Family codes [OE-*]; product ids and extended names [ours] 6.1 (OpenEMS-known prefixes
# kept, [OE-code]); loads [OE-B30] for the B-30, [ours] 6.5 otherwise; caches: the M-70
# manual's table of load curves and histories [M70-FR] (socomec-registers 4.1).
PRODUCTS = {
    "A-10": ("a10", 400, 4010, "DIRIS A-10", 1, ("3P+N", "3P", "1P+N", "2P"), 0, 0, (), "[OE-A10]"),
    "A-20": ("a10", 400, 4020, "DIRIS A-20", 1, ("3P+N", "3P", "1P+N", "2P"), 0, 0, (),
             "[ours] 6.4: the A-10 table (only the A-40 takes the A-14 energy column)"),
    "A-40": ("a40", 400, 4040, "DIRIS A-40", 1, ("3P+N", "3P", "1P+N", "2P"), 0, 0, (LC, H), "[ours] 6.4"),
    "E14": ("countis_e14", 100, 1014, "COUNTIS E14", 1, ("1P+N",), 0, 0, (), "[OE-E14]"),
    "E23": ("countis_e23", 100, 1023, "COUNTIS E23", 1, ("3P+N", "3P", "1P+N", "2P"), 0, 0, (), "[OE-E23]"),
    "E24": ("countis_e23", 100, 1024, "COUNTIS E24", 1, ("3P+N", "3P", "1P+N", "2P"), 0, 0, (), "[OE-E23]"),
    "E34": ("countis_e34", 100, 1034, "COUNTIS E34", 1, ("3P+N", "3P", "1P+N", "2P"), 0, 0, (LC,), "[OE-E34]"),
    "E44": ("countis_e34", 100, 1044, "COUNTIS E44", 1, ("3P+N", "3P", "1P+N", "2P"), 0, 0, (LC,), "[OE-E34]"),
    "B-30 RS485": ("b30_load", 400, 4130, "DIRIS B30", 4, ("3P+N", "3P", "1P+N", "2P"), 0, 0, (LC, H), "[OE-B30]"),
    "I-30": ("b30_basic", 400, 4230, "DIRIS I-30", 3, ("3P+N", "3P", "1P+N", "2P"), 0, 0, (),
             "[M70-FR] annex I: three loads (1P+N-1CT each, or one 3P+N-3CT), no THD"),
    "I-35": ("b30_load", 400, 4235, "DIRIS I-35", 3, ("3P+N", "3P", "1P+N", "2P"), 0, 0, (LC, H), "[ours] 6.5"),
    "I-60": ("b30_load", 400, 4260, "DIRIS I-60", 6, ("3P+N", "3P", "1P+N", "2P"), 0, 0, (), "[ours] 6.5"),
    "S-135": ("b30_load", 400, 4535, "DIRIS S-135", 4, ("3P+N", "3P", "1P+N", "2P"), 0, 0, (LC, H),
              "[ours] 4 loads"),
    "U-10": ("b30_network", 400, 4310, "DIRIS U-10", 0, (), 0, 0, (), "[ours] 6.5"),
    "U-20": ("b30_network", 400, 4320, "DIRIS U-20", 0, (), 0, 0, (), "[ours] 6.5"),
    "U-30": ("b30_network", 400, 4330, "DIRIS U-30", 0, (), 0, 0, (H,), "[ours] 6.5"),
    "IO-10": ("b30_io", 400, 4410, "DIRIS IO-10", 0, (), 4, 2, (), "[ours] 6.5, 4 inputs 2 outputs"),
    "IO-20": ("b30_io", 400, 4420, "DIRIS IO-20", 0, (), 2, 2, (), "[ours] 6.5, 2 inputs 2 outputs"),
}


class Product:
    """One simulated reference, from ``PRODUCTS`` and its layout."""

    def __init__(self, reference):
        if reference not in PRODUCTS:
            raise KeyError("the simulator has no %r (it offers %s)" % (reference, ", ".join(sorted(PRODUCTS))))
        (self.layout, self.family, self.product_id, self.ext_name, self.loads, self.networks, self.inputs,
         self.outputs, self.caches, self.source) = PRODUCTS[reference]
        self.reference = reference
        layout = LAYOUTS[self.layout]
        self.has_netid = layout[NETID]
        self.device_blocks = layout[DEVICE_BLOCKS]
        self.load_blocks = layout[LOAD_BLOCKS]
        self.curve_window = layout[CURVE_WINDOW]
        self.event_log = layout[EVENT_LOG]
        self.ident_words = IDENT_WORDS_NETID if self.has_netid else IDENT_WORDS


def load_base(load):
    """First register of load ``load`` (1-based) of a B-30 / Digiware device [OE-B30]."""
    return LOAD_BASE + (load - 1) * LOAD_STRIDE


def rows_at(product, load):
    """[(absolute address, type, name, scale, source)] the meter serves for ``load``: a multi-load
    meter's per-load windows for loads 1..n; a single-load meter's (DIRIS A, COUNTIS) blocks are
    its load 1; a meter without loads (U-xx, IO-xx) serves device-level values as load 0."""
    if product.load_blocks:
        if load < 1:
            return []
        base = load_base(load)
        return [(base + off, kind, name, scale, src)
                for _start, _words, rows, _source in product.load_blocks for off, kind, name, scale, src in rows]
    if load != (1 if product.loads else 0):
        return []
    return [row for _start, _words, rows, _source in product.device_blocks for row in rows]
