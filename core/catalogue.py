"""The device catalogue: every supported product reference, as data.

Two tables:

* ``REGISTER_MAPS``: where each registry measurement lives for a family of
  meters ("profile"), as (register, type, multiplier) so that
  ``engineering value = raw * multiplier``. Per-load maps are offsets from the
  load base. Facts come from ../shared/socomec-registers.md; rows marked
  [ours] there are our own conventions (no public source).
* ``PRODUCTS``: one row per reference of the WEBVIEW-M list (9.6.2): how it
  identifies itself, its profile, how many loads, network types, whether FAST
  detection finds it, the curves its own cache keeps, its I/O.

A new meter model is a new row, never new code.
"""

from core import registry

IDENT_BASE = 0xC350      # "SOCO", family, product id, ... (socomec-registers §1)
# fixed 2026-12: was 70 words (to past the NET ID), which a COUNTIS or DIRIS A refuses with
# exception 02: the block every family has is 66 words, 0xC350..0xC391 [OE-A10] [OE-A14]
# [OE-E14] [OE-E23] [OE-E34]; only the B-30 / Digiware generation adds the resource version
# (0xC392) and the NET ID (0xC393..0xC394) [OE-B30], read apart (IDENT_NETID_BASE).
IDENT_WORDS = 66
IDENT_NETID_BASE = 0xC392   # resource version (U16) + NET ID (U32_HEX) [OE-B30]
IDENT_NETID_WORDS = 3
IDENT_NETID = 67            # the NET ID's offset from IDENT_BASE (0xC393)
# Profiles whose identification block carries a NET ID: the B-30 table [OE-B30]; the Digiware
# modules by the same table generation (the U-30's field list names it, socomec-registers §3.3)
# and the gateways (the NET ID printed on an M-70 [M70-FR]). DIRIS A / COUNTIS tables end at
# 66 words: those devices have no NET ID (the gateway keys them by reference + serial number).
NETID_PROFILES = ("gateway", "digiware_load", "digiware_u", "digiware_io")
IDENT_FAMILY = 4         # offsets inside the identification block
IDENT_PRODUCT = 5
IDENT_SOFTWARE = 7
IDENT_SERIAL = 8         # AA_SS (U16_HEX), SST_L (U16_HEX), order part (U16) [OE-*]
IDENT_VENDOR = 42
IDENT_NAME = 50
IDENT_EXT_NAME = 58

DIGIWARE_LOAD_BASE = 0x4800
DIGIWARE_LOAD_STRIDE = 0x800
SLAVE_ADDRESS_REGISTER = 0xE000   # B-30 style slave address (U8)
CLOCK_REGISTER = 0xE100           # 6 words, one FC16
# [ours] conflict arbitration window (see docs/architecture.md, "Address conflicts")
NETID_ASSIGN_REGISTER = 0xE010    # broadcast FC16: netid_hi, netid_lo, new address
NETID_FILTER_REGISTER = 0xE020    # broadcast FC16: address, lo_hi, lo_lo, hi_hi, hi_lo
LOAD_SETTINGS_BASE = 0x3600       # per load (stride 0x20): enabled, type code (B-30)
LOAD_SETTINGS_STRIDE = 0x20
# Load type code → network type. 1 = 1P+N-1CT ... 9 = 3P+N-4CT (B-30 table);
# the codes in between are [ours] by the same order.
LOAD_TYPE_NETWORK = {1: "1P+N", 2: "1P+N", 3: "2P", 4: "3P", 5: "3P", 6: "3P", 7: "3P+N", 8: "3P+N", 9: "3P+N"}
NETWORK_LOAD_TYPE = {"1P+N": 1, "2P": 3, "3P": 6, "3P+N": 9}
IO_BASE = 0xCB00                  # [ours] n_in, n_out, input bits, output bits
IO_OUTPUT_REGISTER = 0xCB10       # [ours] one U16 per output, 0/1, FC6

_PMD_INST = {
    "u12": (0xC552, "u32", 0.01), "u23": (0xC554, "u32", 0.01), "u31": (0xC556, "u32", 0.01),
    "v1": (0xC558, "u32", 0.01), "v2": (0xC55A, "u32", 0.01), "v3": (0xC55C, "u32", 0.01),
    "freq": (0xC55E, "u32", 0.01),
    "i1": (0xC560, "u32", 0.001), "i2": (0xC562, "u32", 0.001), "i3": (0xC564, "u32", 0.001),
    "in": (0xC566, "u32", 0.001),
    "p": (0xC568, "s32", 10), "q": (0xC56A, "s32", 10), "s": (0xC56C, "u32", 10),
    "pf": (0xC56E, "s32", 0.001),
    "p1": (0xC570, "s32", 10), "p2": (0xC572, "s32", 10), "p3": (0xC574, "s32", 10),
    "q1": (0xC576, "s32", 10), "q2": (0xC578, "s32", 10), "q3": (0xC57A, "s32", 10),
    "s1": (0xC57C, "u32", 10), "s2": (0xC57E, "u32", 10), "s3": (0xC580, "u32", 10),
    "pf1": (0xC582, "s32", 0.001), "pf2": (0xC584, "s32", 0.001), "pf3": (0xC586, "s32", 0.001),
}
_PMD_ENERGY = {  # A-14 / COUNTIS / A-40 column of 0xC650 (kWh, kvarh, kVAh)
    "ea_pos": (0xC652, "u32", 1000), "er_pos": (0xC654, "u32", 1000),
    "ea_neg": (0xC658, "u32", 1000), "er_neg": (0xC65A, "u32", 1000),
}
# fixed 2026-12: the COUNTIS E14/E23/E24 frequency is Hz/1000, not Hz/100 (the gateway read
# 500.0 Hz on a 50 Hz network) [OE-E14] [OE-E23]; E13/E17/E18/E27/E28 by the same generation [ours].
_COUNTIS_FREQ = {"freq": (0xC55E, "u32", 0.001)}
# fixed 2026-12: the DIRIS A-10's totals at 0xC652.. are Reserved; its indexes are the partial
# column 0xC65C.. (never reset by the gateway) [OE-A10], as OpenEMS reads them [OE-code].
_A10_ENERGY = {
    "ea_pos": (0xC65C, "u32", 1000), "er_pos": (0xC65E, "u32", 1000), "es": (0xC660, "u32", 1000),
    "ea_neg": (0xC662, "u32", 1000), "er_neg": (0xC664, "u32", 1000),
}
# fixed 2026-12: COUNTIS E34/E44 keep Ea+, Er+, Ea- only (Es and Er- are Reserved) and count
# the frequency in Hz/100 [OE-E34]; E33/E43/E44R/E47/E48/E53 by the same generation [ours].
_E34_ENERGY = {
    "ea_pos": (0xC652, "u32", 1000), "er_pos": (0xC654, "u32", 1000), "ea_neg": (0xC658, "u32", 1000),
}
_PMD_THD = {  # A-10 THD block, %/10
    "thd_u12": (0xC950, "u16", 0.1), "thd_u23": (0xC951, "u16", 0.1), "thd_u31": (0xC952, "u16", 0.1),
    "thd_v1": (0xC953, "u16", 0.1), "thd_v2": (0xC954, "u16", 0.1), "thd_v3": (0xC955, "u16", 0.1),
    "thd_i1": (0xC956, "u16", 0.1), "thd_i2": (0xC957, "u16", 0.1), "thd_i3": (0xC958, "u16", 0.1),
}

# Digiware / B-30 per-load window, offsets from the load base (socomec-registers §3.3).
_DW_INST = {
    "v_sys": (4, "u32", 0.01), "u_sys": (6, "u32", 0.01), "i_sys": (8, "u32", 0.001),
    "freq": (10, "u32", 0.001),
    "v1": (12, "u32", 0.01), "v2": (14, "u32", 0.01), "v3": (16, "u32", 0.01), "vn": (18, "u32", 0.01),
    "u12": (20, "u32", 0.01), "u23": (22, "u32", 0.01), "u31": (24, "u32", 0.01),
    "i1": (26, "u32", 0.001), "i2": (28, "u32", 0.001), "i3": (30, "u32", 0.001), "in": (32, "u32", 0.001),
    "i_unb": (34, "u16", 0.01), "i_dir": (35, "u32", 0.001), "i_inv": (37, "u32", 0.001),
    "i_hom": (39, "u32", 0.001), "i_nb": (41, "u16", 0.01), "s_nom": (42, "u32", 1),
    "p": (44, "s32", 1), "q": (46, "s32", 1), "s": (52, "u32", 1),
    "pf": (54, "s16", 0.001), "pf_type": (55, "u8", 1),
    "p1": (56, "s32", 1), "p2": (58, "s32", 1), "p3": (60, "s32", 1),
    "q1": (62, "s32", 1), "q2": (64, "s32", 1), "q3": (66, "s32", 1),
    "s1": (80, "u32", 1), "s2": (82, "u32", 1), "s3": (84, "u32", 1),
    "pf1": (86, "s16", 0.001), "pf2": (87, "s16", 0.001), "pf3": (88, "s16", 0.001),
    "pf1_type": (89, "u8", 1), "pf2_type": (90, "u8", 1), "pf3_type": (91, "u8", 1),
}
# [ours] average block mirrors the instantaneous layout at +0x80.
_DW_AVG = {
    "avg_i1": (0x80 + 26, "u32", 0.001), "avg_i2": (0x80 + 28, "u32", 0.001),
    "avg_i3": (0x80 + 30, "u32", 0.001), "avg_in": (0x80 + 32, "u32", 0.001),
    "avg_p": (0x80 + 44, "s32", 1), "avg_q": (0x80 + 46, "s32", 1), "avg_s": (0x80 + 52, "u32", 1),
}
# [ours] THD I1..In as the first words of the I-harmonics block, %/100.
_DW_THD = {
    "thd_i1": (0x500, "u16", 0.01), "thd_i2": (0x501, "u16", 0.01),
    "thd_i3": (0x502, "u16", 0.01), "thd_in": (0x503, "u16", 0.01),
}
# Energy block at +0x580: U32 kWh + U16 residual in 10 Wh ("e48", value in Wh).
_DW_ENERGY = {
    "ea_pos": (0x580 + 3, "e48", 1), "ea_neg": (0x580 + 6, "e48", 1),
    "er_pos": (0x580 + 9, "e48", 1), "er_neg": (0x580 + 12, "e48", 1),
    "es": (0x580 + 15, "e48", 1),
}
# Digiware U-xx network block at 0x9000 ([ours] exact offsets of the listed order).
_U_NETWORK = {
    "v_sys": (0x9003, "u32", 0.01), "u_sys": (0x9005, "u32", 0.01), "freq": (0x9007, "u32", 0.001),
    "v1": (0x9009, "u32", 0.01), "v2": (0x900B, "u32", 0.01), "v3": (0x900D, "u32", 0.01),
    "vn": (0x900F, "u32", 0.01),
    "u12": (0x9011, "u32", 0.01), "u23": (0x9013, "u32", 0.01), "u31": (0x9015, "u32", 0.01),
}
_IO = {
    "in_1": (IO_BASE + 2, "bit0", 1), "in_2": (IO_BASE + 2, "bit1", 1),
    "in_3": (IO_BASE + 2, "bit2", 1), "in_4": (IO_BASE + 2, "bit3", 1),
    "out_1": (IO_BASE + 3, "bit0", 1), "out_2": (IO_BASE + 3, "bit1", 1),
}


# Writable values per profile: key → (register, type, multiplier), like the
# register maps. Writes go through daemon/runtime/control.py, which checks the policy first.
WRITE_MAPS = {
    "digiware_io": {"out_1": (IO_OUTPUT_REGISTER, "u16", 1), "out_2": (IO_OUTPUT_REGISTER + 1, "u16", 1)},
    "atys": {"out_1": (IO_OUTPUT_REGISTER, "u16", 1), "out_2": (IO_OUTPUT_REGISTER + 1, "u16", 1)},
}


def write_target(reference, load, key):
    """(register, type, multiplier) where ``key`` of ``load`` is written, or None if not writable."""
    row = _BY_REF[reference]
    target = WRITE_MAPS.get(row[PROFILE], {}).get(key)
    if target is None or load != 0:
        return None
    if key.startswith("out_") and int(key[4:]) > row[OUTPUTS]:
        return None
    return target


def _merge(*maps):
    out = {}
    for m in maps:
        out.update(m)
    return out


# profile → (device-level map at load 0, per-load map or None, readable blocks)
# Readable blocks are (start, words) ranges a read may span; reads never cross them.
REGISTER_MAPS = {
    "gateway": ({}, None, ()),
    "pmd": (_merge(_PMD_INST, _PMD_ENERGY, _PMD_THD), None,
            ((0xC550, 74), (0xC650, 62), (0xC950, 9))),
    "pmd_a10": (_merge(_PMD_INST, _A10_ENERGY, _PMD_THD), None,
                ((0xC550, 74), (0xC650, 62), (0xC950, 9))),
    "pmd_countis": (_merge(_PMD_INST, _COUNTIS_FREQ, _PMD_ENERGY, {"es": (0xC656, "u32", 1000)}), None,
                    ((0xC550, 62), (0xC650, 62))),
    "pmd_countis_e3x": (_merge(_PMD_INST, _E34_ENERGY), None,
                        ((0xC550, 62), (0xC650, 62))),
    "digiware_load": ({}, _merge(_DW_INST, _DW_AVG, _DW_THD, _DW_ENERGY),
                      ((0x000, 92), (0x080, 93), (0x500, 109), (0x580, 66))),
    "digiware_u": (_U_NETWORK, None, ((0x9000, 40),)),
    "digiware_io": (_IO, None, ((IO_BASE, 4), (IO_OUTPUT_REGISTER, 2))),
    "atys": (dict((k, _PMD_INST[k]) for k in ("u12", "u23", "u31", "v1", "v2", "v3", "freq")), None,
             ((0xC550, 62),)),
    # generic Modbus devices (issue 18): their register map is the user's data model, held by the device
    # (daemon/state/topology.py Device.model, core/datamodel.py), not a catalogue row
    "generic": ({}, None, ()),
}

# fixed 2026-12: measurements a product does not manage although its profile has them. The M-70
# manual, annex I: "THD Inst I1 returns 0 for an I-30 or I-31 module", "THD_I1 ... not managed"
# [M70-FR] (seed 004, lines 1120 and 1360).
_THD_I = ("thd_i1", "thd_i2", "thd_i3", "thd_in")
PRODUCT_EXCLUDES = {"I-30": _THD_I, "I-31": _THD_I}

# Network types and the per-load measurements each allows (None = all).
_PHASE2_3 = ("v2", "v3", "u12", "u23", "u31", "i2", "i3", "p2", "p3", "q2", "q3", "s2", "s3",
             "pf2", "pf3", "pf2_type", "pf3_type", "thd_i2", "thd_i3", "thd_v2", "thd_v3",
             "thd_u12", "thd_u23", "thd_u31", "avg_i2", "avg_i3", "i_unb", "i_dir", "i_inv",
             "i_hom", "i_nb", "u_sys")
NETWORK_EXCLUDES = {
    "3P+N": (),
    "3P": ("vn", "v1", "v2", "v3", "v_sys", "in", "avg_in", "thd_in", "thd_v1", "thd_v2", "thd_v3"),
    "1P+N": _PHASE2_3 + ("in", "avg_in", "thd_in"),
    "2P": _PHASE2_3 + ("vn", "in", "avg_in", "thd_in"),
}

# Column indexes of PRODUCTS rows.
REF = 0
GROUP = 1
FAMILY = 2
PRODUCT_ID = 3
EXT_NAME = 4
PROFILE = 5
LOADS = 6
NETWORKS = 7
FAST = 8
CURVES = 9
INPUTS = 10
OUTPUTS = 11
BUS = 12

_3PH = ("3P+N", "3P", "1P+N", "2P")
_1PH = ("1P+N",)
LC = ("load_curve",)
LCH = ("load_curve", "history")
H = ("history",)
N = ()
D, R, E = "digiware", "rs485", "ethernet"
GENERIC = "Generic Modbus"
BLE_SENSOR = "Bluetooth sensor"      # issue 18: a BLE source's reference

# reference, group, family code, product id [ours], extended name, profile,
# loads, network types, FAST-detectable, curves cached in the meter, inputs,
# outputs, bus it sits on
# fixed 2026-12: profiles — read the A-10 energy column ("pmd_a10") [OE-A10],
# [ours] 6.4; E3x/E4x/E5x the E34/E44 table ("pmd_countis_e3x") [OE-E34].
# fixed 2026-12: the I-30 has 3 loads (annex I: "Charge 1 : 1P + N - 1CT, Charge 2 ..., Charge 3"
# of the I-30 at address 5, its load 3 read at ...10000.5.3) [M70-FR]; it was 1 ([ours] 6.5).
# fixed 2026-12: caches — load curves only where the M-70 manual's table lists them (COUNTIS
# Eci, E3x/E4x; DIRIS A-30, A40v3, A60, A80, A-40; B-30; I-31, I-61, I-35, I-45, I-35dc, S-135,
# S-Datacenter), histories only on B-30, I-35, I-45, U-30, U-31dc, U-32dc, S-135, S-Datacenter,
# A-40 [M70-FR] (socomec-registers §4.1): I-30, I-33, I-43, I-60, S-130, B-10, A14 and E53 keep
# no load curve, the I-35 dc no history.
PRODUCTS = (
    ("M-70", "Gateways", 400, 4770, "DIRIS M-70", "gateway", 0, N, True, N, 0, 0, E),
    ("M-50", "Gateways", 400, 4750, "DIRIS M-50", "gateway", 0, N, True, N, 0, 0, E),
    ("D-50", "Gateways", 400, 4650, "DIRIS D-50", "gateway", 0, N, True, N, 0, 0, E),
    ("D-50v2", "Gateways", 400, 4652, "DIRIS D-50v2", "gateway", 0, N, True, N, 0, 0, E),
    ("D-70", "Gateways", 400, 4670, "DIRIS D-70", "gateway", 0, N, True, N, 0, 0, E),
    ("G-30/G-40", "Gateways", 400, 4630, "DIRIS G-30", "gateway", 0, N, True, N, 0, 0, E),
    ("G-50/G-60", "Gateways", 400, 4660, "DIRIS G-50", "gateway", 0, N, True, N, 0, 0, E),
    ("D-40", "DIRIS Digiware", 400, 4640, "DIRIS D-40", "gateway", 0, N, True, N, 0, 0, D),
    ("I-30", "DIRIS Digiware", 400, 4230, "DIRIS I-30", "digiware_load", 3, _3PH, True, N, 0, 0, D),
    ("I-30 dc", "DIRIS Digiware", 400, 4231, "DIRIS I-30DC", "digiware_load", 1, _1PH, True, LC, 0, 0, D),
    ("I-31", "DIRIS Digiware", 400, 4232, "DIRIS I-31", "digiware_load", 3, _3PH, True, LC, 0, 0, D),
    ("I-33", "DIRIS Digiware", 400, 4233, "DIRIS I-33", "digiware_load", 3, _3PH, True, N, 0, 0, D),
    ("I-35", "DIRIS Digiware", 400, 4235, "DIRIS I-35", "digiware_load", 3, _3PH, True, LCH, 0, 0, D),
    ("I-35 dc", "DIRIS Digiware", 400, 4236, "DIRIS I-35DC", "digiware_load", 3, _1PH, True, LC, 0, 0, D),
    ("I-43", "DIRIS Digiware", 400, 4243, "DIRIS I-43", "digiware_load", 4, _3PH, True, N, 0, 0, D),
    ("I-45", "DIRIS Digiware", 400, 4245, "DIRIS I-45", "digiware_load", 4, _3PH, True, LCH, 0, 0, D),
    ("I-60", "DIRIS Digiware", 400, 4260, "DIRIS I-60", "digiware_load", 6, _3PH, True, N, 0, 0, D),
    ("I-61", "DIRIS Digiware", 400, 4261, "DIRIS I-61", "digiware_load", 6, _3PH, True, LC, 0, 0, D),
    ("IO-10", "DIRIS Digiware", 400, 4410, "DIRIS IO-10", "digiware_io", 0, N, True, N, 4, 2, D),
    ("IO-20", "DIRIS Digiware", 400, 4420, "DIRIS IO-20", "digiware_io", 0, N, True, N, 2, 2, D),
    ("S-130", "DIRIS Digiware", 400, 4530, "DIRIS S-130", "digiware_load", 4, _3PH, True, N, 0, 0, D),
    ("S-135", "DIRIS Digiware", 400, 4535, "DIRIS S-135", "digiware_load", 4, _3PH, True, LCH, 0, 0, D),
    ("S-Datacenter", "DIRIS Digiware", 400, 4540, "DIRIS S-DC", "digiware_load", 6, _3PH, True, LCH, 0, 0, D),
    ("U-10", "DIRIS Digiware", 400, 4310, "DIRIS U-10", "digiware_u", 0, N, True, N, 0, 0, D),
    ("U-20", "DIRIS Digiware", 400, 4320, "DIRIS U-20", "digiware_u", 0, N, True, N, 0, 0, D),
    ("U-30", "DIRIS Digiware", 400, 4330, "DIRIS U-30", "digiware_u", 0, N, True, H, 0, 0, D),
    ("U-31 dc", "DIRIS Digiware", 400, 4331, "DIRIS U-31DC", "digiware_u", 0, N, True, H, 0, 0, D),
    ("U-32 dc", "DIRIS Digiware", 400, 4332, "DIRIS U-32DC", "digiware_u", 0, N, True, H, 0, 0, D),
    ("R-60", "DIRIS Digiware", 400, 4360, "DIRIS R-60", "digiware_io", 0, N, True, N, 0, 0, D),
    ("B-10", "DIRIS B", 400, 4110, "DIRIS B-10", "digiware_load", 4, _3PH, True, N, 0, 0, R),
    ("B-30 RF", "DIRIS B", 400, 4131, "DIRIS B30RF", "digiware_load", 4, _3PH, True, LCH, 0, 0, R),
    ("B-30 RS485", "DIRIS B", 400, 4130, "DIRIS B30", "digiware_load", 4, _3PH, True, LCH, 0, 0, R),
    ("A-10", "DIRIS A", 400, 4010, "DIRIS A-10", "pmd_a10", 1, _3PH, False, N, 0, 0, R),
    ("A-20", "DIRIS A", 400, 4020, "DIRIS A-20", "pmd_a10", 1, _3PH, False, N, 0, 0, R),
    ("A-30", "DIRIS A", 400, 4030, "DIRIS A-30", "pmd", 1, _3PH, False, LC, 0, 0, R),
    ("A-40", "DIRIS A", 400, 4040, "DIRIS A-40", "pmd", 1, _3PH, True, LCH, 0, 0, R),
    ("A-40 Ethernet", "DIRIS A", 400, 4041, "DIRIS A-40E", "pmd", 1, _3PH, True, LCH, 0, 0, E),
    ("A-40 Profibus", "DIRIS A", 400, 4042, "DIRIS A-40P", "pmd", 1, _3PH, True, LCH, 0, 0, R),
    ("A14", "DIRIS A", 400, 4014, "DIRIS A14", "pmd", 1, _3PH, False, N, 0, 0, R),
    ("A17", "DIRIS A", 400, 4017, "DIRIS A17", "pmd", 1, _3PH, False, N, 0, 0, R),
    ("A17 2In", "DIRIS A", 400, 4018, "DIRIS A17 2IN", "pmd", 1, _3PH, False, N, 2, 0, R),
    ("A17 THD", "DIRIS A", 400, 4019, "DIRIS A17 THD", "pmd", 1, _3PH, False, N, 0, 0, R),
    ("A17 THD In", "DIRIS A", 400, 4021, "DIRIS A17 THDIN", "pmd", 1, _3PH, False, N, 0, 0, R),
    ("A60", "DIRIS A", 400, 4060, "DIRIS A60", "pmd", 1, _3PH, False, LC, 0, 0, R),
    ("A80", "DIRIS A", 400, 4080, "DIRIS A80", "pmd", 1, _3PH, False, LC, 0, 0, R),
    ("A10 (old)", "DIRIS A Old", 400, 4011, "DIRIS A10 OLD", "pmd", 1, _3PH, False, N, 0, 0, R),
    ("A20 (old)", "DIRIS A Old", 400, 4022, "DIRIS A20 OLD", "pmd", 1, _3PH, False, N, 0, 0, R),
    ("A20v2", "DIRIS A Old", 400, 4023, "DIRIS A20V2", "pmd", 1, _3PH, False, N, 0, 0, R),
    ("A40v2", "DIRIS A Old", 400, 4043, "DIRIS A40V2", "pmd", 1, _3PH, False, N, 0, 0, R),
    ("A40v3", "DIRIS A Old", 400, 4044, "DIRIS A40V3", "pmd", 1, _3PH, False, LC, 0, 0, R),
    ("Ci", "COUNTIS", 100, 1001, "COUNTIS CI", "pmd_countis", 1, _1PH, False, N, 0, 0, R),
    ("E03", "COUNTIS", 100, 1003, "COUNTIS E03", "pmd_countis", 1, _1PH, False, N, 0, 0, R),
    ("E04", "COUNTIS", 100, 1004, "COUNTIS E04", "pmd_countis", 1, _1PH, False, N, 0, 0, R),
    ("E13", "COUNTIS", 100, 1013, "COUNTIS E13", "pmd_countis", 1, _1PH, False, N, 0, 0, R),
    ("E14", "COUNTIS", 100, 1014, "COUNTIS E14", "pmd_countis", 1, _1PH, False, N, 0, 0, R),
    ("E17", "COUNTIS", 100, 1017, "COUNTIS E17", "pmd_countis", 1, _1PH, False, N, 0, 0, R),
    ("E18", "COUNTIS", 100, 1018, "COUNTIS E18", "pmd_countis", 1, _1PH, False, N, 0, 0, R),
    ("E23", "COUNTIS", 100, 1023, "COUNTIS E23", "pmd_countis", 1, _3PH, False, N, 0, 0, R),
    ("E24", "COUNTIS", 100, 1024, "COUNTIS E24", "pmd_countis", 1, _3PH, False, N, 0, 0, R),
    ("E27", "COUNTIS", 100, 1027, "COUNTIS E27", "pmd_countis", 1, _3PH, False, N, 0, 0, R),
    ("E28", "COUNTIS", 100, 1028, "COUNTIS E28", "pmd_countis", 1, _3PH, False, N, 0, 0, R),
    ("E33", "COUNTIS", 100, 1033, "COUNTIS E33", "pmd_countis_e3x", 1, _3PH, False, LC, 0, 0, R),
    ("E34", "COUNTIS", 100, 1034, "COUNTIS E34", "pmd_countis_e3x", 1, _3PH, False, LC, 0, 0, R),
    ("E43", "COUNTIS", 100, 1043, "COUNTIS E43", "pmd_countis_e3x", 1, _3PH, False, LC, 0, 0, R),
    ("E44", "COUNTIS", 100, 1044, "COUNTIS E44", "pmd_countis_e3x", 1, _3PH, False, LC, 0, 0, R),
    ("E44R", "COUNTIS", 100, 1045, "COUNTIS E44R", "pmd_countis_e3x", 1, _3PH, False, LC, 0, 0, R),
    ("E47", "COUNTIS", 100, 1047, "COUNTIS E47", "pmd_countis_e3x", 1, _3PH, False, LC, 0, 0, R),
    ("E48", "COUNTIS", 100, 1048, "COUNTIS E48", "pmd_countis_e3x", 1, _3PH, False, LC, 0, 0, R),
    ("E53", "COUNTIS", 100, 1053, "COUNTIS E53", "pmd_countis_e3x", 1, _3PH, False, N, 0, 0, R),
    ("ECI32", "COUNTIS", 100, 1132, "COUNTIS ECI32", "pmd_countis", 1, _3PH, False, LC, 0, 0, R),
    ("ECI3", "COUNTIS", 100, 1103, "COUNTIS ECI3", "pmd_countis", 1, _3PH, False, LC, 0, 0, R),
    ("ATyS p M", "Switches", 300, 3001, "ATYS P M", "atys", 0, N, False, N, 2, 2, R),
    ("C55", "Switches", 300, 3055, "ATYS C55", "atys", 0, N, False, N, 0, 0, R),
    ("C65", "Switches", 300, 3065, "ATYS C65", "atys", 0, N, False, N, 0, 0, R),
    ("C66", "Switches", 300, 3066, "ATYS C66", "atys", 0, N, False, N, 0, 0, R),
    # WEBVIEW-L's "Generic Modbus devices" at the bottom of the product list (§8.4.2): any Modbus RTU or TCP
    # device described by a data model; never identified by a detection (identify skips it)
    (GENERIC, "Generic Modbus devices", 0, 0, "GENERIC MODBUS", "generic", 1, N, False, N, 0, 0, E),
    # issue 18: a Bluetooth Low Energy sensor added as a source (daemon/state/blesources.py); its values are what
    # its advertisements carry, one circuit (load 1), no registers: never identified by a detection
    (BLE_SENSOR, "Bluetooth sensors", 0, 0, "BLUETOOTH SENSOR", "generic", 1, N, False, N, 0, 0, "bluetooth"),
)

_BY_REF = dict((row[REF], row) for row in PRODUCTS)
_BY_PRODUCT_ID = dict(((row[FAMILY], row[PRODUCT_ID]), row) for row in PRODUCTS)


def product(reference):
    """The catalogue row of ``reference``; KeyError if we do not know it."""
    return _BY_REF[reference]


def identify(family_code, product_id, ext_name):
    """Product row from identification data: extended-name prefix first, then ID.

    Longest extended-name prefix wins so "DIRIS I-35DC" is not taken for I-35.
    """
    name = (ext_name or "").strip().upper()
    best = None
    for row in PRODUCTS:
        if row[PROFILE] == "generic":
            continue
        prefix = row[EXT_NAME].upper()
        if name.startswith(prefix) and (best is None or len(prefix) > len(best[EXT_NAME])):
            best = row
    if best is not None:
        return best
    found = _BY_PRODUCT_ID.get((family_code, product_id))
    return None if found is not None and found[PROFILE] == "generic" else found


def serial_text(aa_ss, sst_l, order):
    """The serial number of the identification words 0xC358..0xC35A as text: the two U16_HEX
    parts in hex, the order part in decimal [OE-*] (the joined form is [ours])."""
    return "%04X%04X%05d" % (aa_ss & 0xFFFF, sst_l & 0xFFFF, order & 0xFFFF)


def has_netid(reference):
    """Whether a product's identification carries a NET ID (0xC393, read apart: IDENT_NETID_BASE)."""
    return _BY_REF[reference][PROFILE] in NETID_PROFILES


# Products with a clock at CLOCK_REGISTER. The register is in the tables of the DIRIS B-30 [OE-B30], the DIRIS A14
# [OE-A14] and the COUNTIS E34/E44 [OE-E34]; the COUNTIS E14, E23, E24 [OE-E14] [OE-E23] [OE-E24] and DIRIS A-10
# [OE-A10] tables have none. A profile is a table (the Digiware modules share the B-30 generation, as for the NET
# ID); and a product whose own cache keeps curves dates its records, so it has a clock whatever its profile
# (COUNTIS ECI3 / ECI32). Gateways and ATyS switches: no source, no clock written.
CLOCK_PROFILES = ("digiware_load", "digiware_u", "digiware_io", "pmd", "pmd_countis_e3x")


def has_clock(reference):
    """Whether the gateway sets this product's clock (CLOCK_REGISTER) after an SNTP synchronisation."""
    row = _BY_REF[reference]
    return row[PROFILE] in CLOCK_PROFILES or bool(row[CURVES])


def load_base(load):
    """First register of load ``load`` (1-based) on Digiware / B-30 devices."""
    return DIGIWARE_LOAD_BASE + (load - 1) * DIGIWARE_LOAD_STRIDE


def measurement_map(reference, load, network="3P+N"):
    """{key: (absolute register, type, multiplier)} for one load of a product.

    Load 0 is the device itself (network voltages of a U-xx, I/O states).
    """
    row = _BY_REF[reference]
    device_map, load_map, _blocks = REGISTER_MAPS[row[PROFILE]]
    excluded = NETWORK_EXCLUDES.get(network, ())
    if load == 0:
        if row[LOADS] and row[PROFILE] != "digiware_load":
            return {}
        selected = _io_limited(device_map, row)
        return dict((k, v) for k, v in selected.items())
    if load < 1 or load > row[LOADS]:
        return {}
    excluded = tuple(excluded) + PRODUCT_EXCLUDES.get(reference, ())
    if load_map is None:  # single-load PMD: the device map is load 1
        return dict((k, v) for k, v in device_map.items() if k not in excluded)
    base = load_base(load)
    return dict((k, (base + off, kind, mult)) for k, (off, kind, mult) in load_map.items()
                if k not in excluded)


def _io_limited(device_map, row):
    out = {}
    for key, spec in device_map.items():
        if key.startswith("in_") and int(key[3:]) > row[INPUTS]:
            continue
        if key.startswith("out_") and int(key[4:]) > row[OUTPUTS]:
            continue
        out[key] = spec
    return out


def readable_blocks(reference, load):
    """Absolute (start, words) ranges a read for this load may cover."""
    row = _BY_REF[reference]
    _device_map, load_map, blocks = REGISTER_MAPS[row[PROFILE]]
    if load_map is not None and load >= 1:
        base = load_base(load)
        return tuple((base + start, words) for start, words in blocks)
    return blocks


def type_words(kind):
    if kind == "e48":
        return 3
    if kind.startswith("bit"):
        return 1
    from core.modbus_rtu import TYPE_WORDS
    return TYPE_WORDS[kind]


def decode(kind, words, multiplier):
    """Raw register words → engineering value (registry unit)."""
    from core.modbus_rtu import decode_value
    if kind == "e48":
        return decode_value("u32", words) * 1000 + words[2] * 10
    if kind.startswith("bit"):
        return (words[0] >> int(kind[3:])) & 1
    return decode_value(kind, words) * multiplier


def encode(kind, value, multiplier):
    """Engineering value → raw register words (used by the simulated meters)."""
    from core.modbus_rtu import encode_value
    if kind == "e48":
        wh = int(value)
        kwh, residual = divmod(wh, 1000)
        return encode_value("u32", kwh) + [residual // 10]
    if kind.startswith("bit"):
        raise ValueError("bit fields are encoded by their owner")
    raw = int(round(value / multiplier))
    if kind == "f32":
        raw = value / multiplier
    return encode_value(kind, raw)


def check_catalogue():
    """Every mapped key exists in the registry; blocks cover every register."""
    problems = []
    known = set(registry.keys())
    for name, (device_map, load_map, blocks) in REGISTER_MAPS.items():
        for mapping in (device_map, load_map or {}):
            for key, (reg, kind, _mult) in mapping.items():
                if key not in known:
                    problems.append("%s: %s not in registry" % (name, key))
                end = reg + type_words(kind)
                if blocks and not any(s <= reg and end <= s + w for s, w in blocks):
                    problems.append("%s: %s at %#x outside readable blocks" % (name, key, reg))
    refs = set()
    for row in PRODUCTS:
        if row[REF] in refs:
            problems.append("duplicate reference %s" % row[REF])
        refs.add(row[REF])
        if row[PROFILE] not in REGISTER_MAPS:
            problems.append("%s: unknown profile" % row[REF])
    # registry.WRITABLE (what protocols offer to write) must be what some device can take
    writable_here = set(key for targets in WRITE_MAPS.values() for key in targets)
    writable_there = set(row[registry.KEY] for row in registry.MEASUREMENTS if row[registry.WRITABLE])
    if writable_here != writable_there:
        problems.append("writable keys differ: catalogue %s, registry %s"
                        % (sorted(writable_here), sorted(writable_there)))
    return problems
