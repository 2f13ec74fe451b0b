"""The measurement registry: every measurement the gateway knows, once.

Pure data (MicroPython-safe: tuples and dicts, no dataclasses, no typing).
Protocols, web pages, logging and exports look measurements up here; none
keeps a list of its own (SPEC §2).

Identifier conventions (documented in docs/registry.md, generated):
* ``data_id`` is both the SNMP *service ID* and the EMS *Data Id*. The manuals
  give 10000/10001 = I1/I2 instantaneous (SNMP), 10023..10025 = I1..I3 average
  and 100006..100008 = THD I1..I3 (EMS); one numbering fits both, so we keep one.
* ``bacnet_mm`` is the Analog Input measurement index MM of SPEC §3.3
  (instance = load * 100 + MM); None for values that are not Analog Inputs.
* ``gw_offset`` is the register offset of the value inside a load's window of
  the gateway's own Modbus table (2 words per value, ``gw_type``/``gw_scale``).
"""

# Kinds and the SNMP table (1.3.6.1.4.1.4555.10.20.<table>) each lives in.
KIND_SNMP_TABLE = {
    "inst": 20,        # instantaneous values
    "avg": 21,         # averages over the integration period
    "energy": 22,      # energy indexes
    "maxmin": 23,      # min / max
    "thd": 24,         # THD and harmonics
    "load_curve": 25,  # last load-curve point
    "io": 26,          # digital input / output states
}

# BACnet engineering units (ASHRAE 135 clause 21, BACnetEngineeringUnits), for
# values in the registry's UNIT: plain V, A, W, VA, var, Wh... never kilo-units.
U_VOLTS = 5         # volts
U_AMPERES = 3       # amperes
U_HERTZ = 27        # hertz
U_PERCENT = 98      # percent
U_WATTS = 47        # watts
U_VA = 8            # volt-amperes (9 is kilovolt-amperes)
U_VAR = 11          # volt-amperes-reactive
U_WH = 18           # watt-hours
U_VAH = 239         # volt-ampere-hours
U_VARH = 242        # volt-ampere-hours-reactive
U_NONE = 95         # no-units
U_PF = 15           # power-factor
U_CELSIUS = 62      # degrees-Celsius
U_PERCENT_RH = 29   # percent-relative-humidity
U_HECTOPASCALS = 133    # hectopascals

# Columns of MEASUREMENTS rows, by position.
KEY = 0
NAME = 1
UNIT = 2
KIND = 3
SIGNED = 4
GW_TYPE = 5
GW_SCALE = 6
DATA_ID = 7
BACNET_MM = 8
BACNET_UNITS = 9
STD_NAME = 10
GW_OFFSET = 11
WRITABLE = 12

F = False
T = True

# key, name, unit, kind, signed, gw_type, gw_scale, data_id, bacnet_mm,
# bacnet_units, WEBVIEW-L standard name, gw_offset, writable
MEASUREMENTS = (
    ("v_sys", "System voltage Ph-N", "V", "inst", F, "u32", 100, 11004, 0, U_VOLTS, "IVSysInst", 0, F),
    ("u_sys", "System voltage Ph-Ph", "V", "inst", F, "u32", 100, 11013, 1, U_VOLTS, "IUSysInst", 2, F),
    ("i_sys", "System current", "A", "inst", F, "u32", 1000, 10004, 2, U_AMPERES, "IISysInst", 4, F),
    ("freq", "Frequency", "Hz", "inst", F, "u32", 1000, 11020, 3, U_HERTZ, "IFreqInst", 6, F),
    ("v1", "Voltage V1", "V", "inst", F, "u32", 100, 11000, 4, U_VOLTS, "IV1Inst", 8, F),
    ("v2", "Voltage V2", "V", "inst", F, "u32", 100, 11001, 5, U_VOLTS, "IV2Inst", 10, F),
    ("v3", "Voltage V3", "V", "inst", F, "u32", 100, 11002, 6, U_VOLTS, "IV3Inst", 12, F),
    ("vn", "Voltage Vn", "V", "inst", F, "u32", 100, 11003, 7, U_VOLTS, "IVnInst", 14, F),
    ("u12", "Voltage U12", "V", "inst", F, "u32", 100, 11010, 8, U_VOLTS, "IU12Inst", 16, F),
    ("u23", "Voltage U23", "V", "inst", F, "u32", 100, 11011, 9, U_VOLTS, "IU23Inst", 18, F),
    ("u31", "Voltage U31", "V", "inst", F, "u32", 100, 11012, 10, U_VOLTS, "IU31Inst", 20, F),
    ("i1", "Current I1", "A", "inst", F, "u32", 1000, 10000, 11, U_AMPERES, "II1Inst", 22, F),
    ("i2", "Current I2", "A", "inst", F, "u32", 1000, 10001, 12, U_AMPERES, "II2Inst", 24, F),
    ("i3", "Current I3", "A", "inst", F, "u32", 1000, 10002, 13, U_AMPERES, "II3Inst", 26, F),
    ("in", "Current In", "A", "inst", F, "u32", 1000, 10003, 14, U_AMPERES, "IInInst", 28, F),
    ("i_unb", "Current unbalance Inba", "%", "inst", F, "u32", 100, 10008, 15, U_PERCENT, "IInbaInst", 30, F),
    ("i_dir", "Direct current Idir", "A", "inst", F, "u32", 1000, 10005, 16, U_AMPERES, "IIdirInst", 32, F),
    ("i_inv", "Inverse current Iinv", "A", "inst", F, "u32", 1000, 10006, 17, U_AMPERES, "IIinvInst", 34, F),
    ("i_hom", "Homopolar current Ihom", "A", "inst", F, "u32", 1000, 10007, 18, U_AMPERES, "IIhomInst", 36, F),
    ("i_nb", "Current unbalance Inb", "%", "inst", F, "u32", 100, 10009, 19, U_PERCENT, "IInbInst", 38, F),
    ("s_nom", "Nominal apparent power", "VA", "inst", F, "u32", 1, 12050, 20, U_VA, "ISnomInst", 40, F),
    ("p", "Total active power P", "W", "inst", T, "s32", 1, 12000, 21, U_WATTS, "IPSumInst", 42, F),
    ("q", "Total reactive power Q", "var", "inst", T, "s32", 1, 12010, 22, U_VAR, "IQSumInst", 44, F),
    ("s", "Total apparent power S", "VA", "inst", F, "u32", 1, 12020, 23, U_VA, "ISSumInst", 46, F),
    ("pf", "Total power factor", "", "inst", T, "s32", 1000, 12030, 24, U_PF, "IpFSumInst", 48, F),
    ("pf_type", "Total power factor type", "", "inst", F, "u32", 1, 12040, 25, U_NONE, "IpFSumTypeInst", 50, F),
    ("p1", "Active power P1", "W", "inst", T, "s32", 1, 12001, 26, U_WATTS, "IP1Inst", 52, F),
    ("p2", "Active power P2", "W", "inst", T, "s32", 1, 12002, 27, U_WATTS, "IP2Inst", 54, F),
    ("p3", "Active power P3", "W", "inst", T, "s32", 1, 12003, 28, U_WATTS, "IP3Inst", 56, F),
    ("q1", "Reactive power Q1", "var", "inst", T, "s32", 1, 12011, 29, U_VAR, "IQ1Inst", 58, F),
    ("q2", "Reactive power Q2", "var", "inst", T, "s32", 1, 12012, 30, U_VAR, "IQ2Inst", 60, F),
    ("q3", "Reactive power Q3", "var", "inst", T, "s32", 1, 12013, 31, U_VAR, "IQ3Inst", 62, F),
    ("s1", "Apparent power S1", "VA", "inst", F, "u32", 1, 12021, 32, U_VA, "IS1Inst", 64, F),
    ("s2", "Apparent power S2", "VA", "inst", F, "u32", 1, 12022, 33, U_VA, "IS2Inst", 66, F),
    ("s3", "Apparent power S3", "VA", "inst", F, "u32", 1, 12023, 34, U_VA, "IS3Inst", 68, F),
    ("pf1", "Power factor PF1", "", "inst", T, "s32", 1000, 12031, 35, U_PF, "IpF1Inst", 70, F),
    ("pf1_type", "Power factor PF1 type", "", "inst", F, "u32", 1, 12041, 36, U_NONE, "IpF1TypeInst", 72, F),
    ("pf2", "Power factor PF2", "", "inst", T, "s32", 1000, 12032, 37, U_PF, "IpF2Inst", 74, F),
    ("pf2_type", "Power factor PF2 type", "", "inst", F, "u32", 1, 12042, 38, U_NONE, "IpF2TypeInst", 76, F),
    ("pf3", "Power factor PF3", "", "inst", T, "s32", 1000, 12033, 39, U_PF, "IpF3Inst", 78, F),
    ("pf3_type", "Power factor PF3 type", "", "inst", F, "u32", 1, 12043, 40, U_NONE, "IpF3TypeInst", 80, F),
    ("lc_p_pos", "Load curve P+", "W", "load_curve", F, "u32", 1, 12200, 41, U_WATTS, "IPPositiveHistory", 82, F),
    ("lc_p_neg", "Load curve P-", "W", "load_curve", F, "u32", 1, 12201, 42, U_WATTS, "IPNegativeHistory", 84, F),
    ("lc_q_pos", "Load curve Q+", "var", "load_curve", F, "u32", 1, 12202, 43, U_VAR, "IQPositiveHistory", 86, F),
    ("lc_q_neg", "Load curve Q-", "var", "load_curve", F, "u32", 1, 12203, 44, U_VAR, "IQNegativeHistory", 88, F),
    ("lc_s", "Load curve S", "VA", "load_curve", F, "u32", 1, 12204, 45, U_VA, "ISHistory", 90, F),
    ("thd_i1", "THD I1", "%", "thd", F, "u32", 10, 100006, 46, U_PERCENT, "IHarmonicsTHDI1Inst", 92, F),
    ("thd_i2", "THD I2", "%", "thd", F, "u32", 10, 100007, 47, U_PERCENT, "IHarmonicsTHDI2Inst", 94, F),
    ("thd_i3", "THD I3", "%", "thd", F, "u32", 10, 100008, 48, U_PERCENT, "IHarmonicsTHDI3Inst", 96, F),
    ("thd_in", "THD In", "%", "thd", F, "u32", 10, 100009, 49, U_PERCENT, "IHarmonicsTHDINInst", 98, F),
    ("thd_v1", "THD V1", "%", "thd", F, "u32", 10, 100010, 50, U_PERCENT, "IHarmonicsTHDV1Inst", 100, F),
    ("thd_v2", "THD V2", "%", "thd", F, "u32", 10, 100011, 51, U_PERCENT, "IHarmonicsTHDV2Inst", 102, F),
    ("thd_v3", "THD V3", "%", "thd", F, "u32", 10, 100012, 52, U_PERCENT, "IHarmonicsTHDV3Inst", 104, F),
    ("thd_u12", "THD U12", "%", "thd", F, "u32", 10, 100013, 53, U_PERCENT, "IHarmonicsTHDU12Inst", 106, F),
    ("thd_u23", "THD U23", "%", "thd", F, "u32", 10, 100014, 54, U_PERCENT, "IHarmonicsTHDU23Inst", 108, F),
    ("thd_u31", "THD U31", "%", "thd", F, "u32", 10, 100015, 55, U_PERCENT, "IHarmonicsTHDU31Inst", 110, F),
    ("ea_pos", "Active energy imported Ea+", "Wh", "energy", F, "u64", 1, 13000, 56, U_WH, "IEaPInst", 112, F),
    ("ea_neg", "Active energy exported Ea-", "Wh", "energy", F, "u64", 1, 13001, 57, U_WH, "IEaNInst", 116, F),
    ("er_pos", "Reactive energy Er+", "varh", "energy", F, "u64", 1, 13002, 58, U_VARH, "IErPInst", 120, F),
    ("er_neg", "Reactive energy Er-", "varh", "energy", F, "u64", 1, 13003, 59, U_VARH, "IErNInst", 124, F),
    ("es", "Apparent energy Es", "VAh", "energy", F, "u64", 1, 13004, 60, U_VAH, "IEsInst", 128, F),
    ("multifluid", "Multifluid input", "", "inst", F, "u32", 1, 14200, 61, U_NONE, "IImpulseMeters", 132, F),
    ("avg_i1", "Average current I1", "A", "avg", F, "u32", 1000, 10023, None, U_AMPERES, "II1Avg", 134, F),
    ("avg_i2", "Average current I2", "A", "avg", F, "u32", 1000, 10024, None, U_AMPERES, "II2Avg", 136, F),
    ("avg_i3", "Average current I3", "A", "avg", F, "u32", 1000, 10025, None, U_AMPERES, "II3Avg", 138, F),
    ("avg_in", "Average current In", "A", "avg", F, "u32", 1000, 10026, None, U_AMPERES, "IInAvg", 140, F),
    ("avg_p", "Average active power P", "W", "avg", T, "s32", 1, 12100, None, U_WATTS, "IPSumAvg", 142, F),
    ("avg_q", "Average reactive power Q", "var", "avg", T, "s32", 1, 12110, None, U_VAR, "IQSumAvg", 144, F),
    ("avg_s", "Average apparent power S", "VA", "avg", F, "u32", 1, 12120, None, U_VA, "ISSumAvg", 146, F),
    ("in_1", "Digital input 1", "", "io", F, "u32", 1, 14001, None, U_NONE, "IInputState1", 148, F),
    ("in_2", "Digital input 2", "", "io", F, "u32", 1, 14002, None, U_NONE, "IInputState2", 150, F),
    ("in_3", "Digital input 3", "", "io", F, "u32", 1, 14003, None, U_NONE, "IInputState3", 152, F),
    ("in_4", "Digital input 4", "", "io", F, "u32", 1, 14004, None, U_NONE, "IInputState4", 154, F),
    ("out_1", "Digital output 1", "", "io", F, "u32", 1, 14101, None, U_NONE, "IOutputState1", 156, T),
    ("out_2", "Digital output 2", "", "io", F, "u32", 1, 14102, None, U_NONE, "IOutputState2", 158, T),
    # issue 18: what Bluetooth sensors measure (BLE sources); data ids 16000.. and standard names are [ours];
    # "degC": the units are ASCII (a MIB is, RFC 2578 §3.1.1). BACnet MM 80..84 are [ours] too: annex II
    # numbers 0..61, and 62..79 stay free for its additions.
    ("temperature", "Temperature", "degC", "inst", T, "s32", 100, 16000, 80, U_CELSIUS, "ITempInst", 160, F),
    ("humidity", "Relative humidity", "%", "inst", F, "u32", 100, 16001, 81, U_PERCENT_RH, "IHumInst", 162, F),
    ("pressure", "Atmospheric pressure", "hPa", "inst", F, "u32", 100, 16002, 82, U_HECTOPASCALS, "IPressInst", 164,
     F),
    ("battery", "Battery level", "%", "inst", F, "u32", 1, 16003, 83, U_PERCENT, "IBattInst", 166, F),
    ("battery_v", "Battery voltage", "V", "inst", F, "u32", 1000, 16004, 84, U_VOLTS, "IBattVInst", 168, F),
)

# Words of one load's window in the gateway's own Modbus table.
GW_LOAD_WINDOW = 200

_BY_KEY = {}
_BY_DATA_ID = {}
_BY_MM = {}
for _row in MEASUREMENTS:
    _BY_KEY[_row[KEY]] = _row
    _BY_DATA_ID[_row[DATA_ID]] = _row
    if _row[BACNET_MM] is not None:
        _BY_MM[_row[BACNET_MM]] = _row


def get(key):
    """The row of measurement ``key``; KeyError if unknown."""
    return _BY_KEY[key]


def by_data_id(data_id):
    return _BY_DATA_ID.get(data_id)


EXTENSION_MM = 80        # the first BACnet MM of our own rows (Bluetooth sensors); annex II has 0..61


def by_bacnet_mm(mm):
    return _BY_MM.get(mm)


def keys():
    return [row[KEY] for row in MEASUREMENTS]


def snmp_table(key):
    return KIND_SNMP_TABLE[_BY_KEY[key][KIND]]


def bacnet_instance(load, key):
    """Analog Input instance LLMM (SPEC §3.3): 204 = V1 of load 2."""
    mm = _BY_KEY[key][BACNET_MM]
    if mm is None:
        return None
    return load * 100 + mm


def split_bacnet_instance(instance):
    """Inverse of bacnet_instance: (load, key) or None."""
    load, mm = instance // 100, instance % 100
    row = _BY_MM.get(mm)
    if row is None or load < 1:
        return None
    return load, row[KEY]


def to_gateway_raw(key, value):
    """Engineering value → the integer at the gateway scale (Modbus table, SNMP, logs, trends)."""
    return int(round(value * _BY_KEY[key][GW_SCALE]))


def from_gateway_raw(key, raw):
    """The integer at the gateway scale → the engineering value."""
    return raw / float(_BY_KEY[key][GW_SCALE])


def check_table():
    """Consistency of the table itself; returns a list of problems (empty = good)."""
    problems = []
    seen = {}
    for column, label in ((KEY, "key"), (DATA_ID, "data_id"), (BACNET_MM, "bacnet_mm"),
                          (GW_OFFSET, "gw_offset"), (STD_NAME, "std_name")):
        seen.clear()
        for row in MEASUREMENTS:
            value = row[column]
            if value is None:
                continue
            if value in seen:
                problems.append("duplicate %s %s" % (label, value))
            seen[value] = True
    for row in MEASUREMENTS:
        if row[KIND] not in KIND_SNMP_TABLE:
            problems.append("unknown kind %s" % row[KIND])
        from core.modbus_rtu import TYPE_WORDS  # pure too; imported here to keep the table import-free
        if row[GW_OFFSET] + TYPE_WORDS[row[GW_TYPE]] > GW_LOAD_WINDOW:
            problems.append("%s outside the load window" % row[KEY])
    mms = sorted(_BY_MM)
    if [mm for mm in mms if mm < 62] != list(range(62)):
        problems.append("BACnet MM table must hold annex II's 0..61")
    if any(62 <= mm < EXTENSION_MM or mm > 99 for mm in mms):
        problems.append("BACnet MM beyond annex II must be %d..99 (62..%d stay free for it)"
                        % (EXTENSION_MM, EXTENSION_MM - 1))
    return problems
