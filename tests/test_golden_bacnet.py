"""Golden BACnet facts: annex II's Analog Input numbering, our documented names, and the EDE file.

What tests/test_bacnet_units.py already pins (every AI's Units against the
standard's enumeration) is not repeated; this file adds, as literals:

* the AI measurement index MM of each measurement, from the table of annex II
  of the M-70 manual (seed 004, "Annexe II - 2. Objets BACnet"), and the
  instance numbering "OID = LLMM" with its example ("une entrée analogique
  d'OID 204 correspond à la tension Phase/Neutre V1 de la charge 2"), and the
  Device numbering "OID principal (= 100 par défaut) + Adresse Modbus";
* Object_Name and Description as docs/bacnet.md documents them
  (``Voltage V1 L2``; ``<load name> - <name> (<standard name>)``) and the
  Device Object_Name of a detected meter, ``reference@address - NET ID``, as
  the manual's Easy Config screens show modules (``I-35@4 - DC85E9``);
* the EDE file (B.I.G.-EU layout 2.3: header lines and column order as the
  layout has them, semicolon-separated) against rows written out by hand,
  both from protocols/bacnet/ede.py and as the running gateway serves it
  (/api/files/bacnet-ede.csv);
* over the wire, with the Node.js client: Object_Identifier, Object_Type,
  Object_Name, Description and Units of a few AIs of the I-35 at address 5.
"""

import asyncio

from bacpypes3.basetypes import EngineeringUnits

from bacnet_support import MAIN, Site   # first: it puts tests/bacnet (bacnet_peer) on the path
from bacnet_peer import ANALOG_INPUT, DEVICE, PROP, rpm_values, values_of  # noqa: I001
from board.base import ManualClock
from conftest import demo_devices
from core import registry
from daemon.security.rights import Caller
from protocols.bacnet import ede, points

T0 = 1_700_000_000.0            # 2023-11-14 22:13:20 UTC
OBJECT_IDENTIFIER, OBJECT_TYPE = 75, 79

# Annex II, "La table contenant les indices de la liste des mesures d'entrée analogique": MM, the
# manual's object name (as printed; the text extraction turns some capital I into l, fixed here), and
# the registry key of that measurement.
ANNEX_II = {
    0: ("VystPhN", "v_sys"), 1: ("VystPhPh", "u_sys"), 2: ("CurrentSyst", "i_sys"), 3: ("Fréquence", "freq"),
    4: ("VoltPhNV1", "v1"), 5: ("VoltPhNV2", "v2"), 6: ("VoltPhNV3", "v3"), 7: ("VoltPhNVn", "vn"),
    8: ("VoltPhPhU12", "u12"), 9: ("VoltPhPhU23", "u23"), 10: ("VoltPhPhU31", "u31"),
    11: ("CurrentI1", "i1"), 12: ("CurrentI2", "i2"), 13: ("CurrentI3", "i3"), 14: ("CurrentIn", "in"),
    15: ("CurrentInba", "i_unb"), 16: ("CurrentIdir", "i_dir"), 17: ("CurrentIinv", "i_inv"),
    18: ("CurrentIhom", "i_hom"), 19: ("CurrentInb", "i_nb"), 20: ("PowerApparentNom", "s_nom"),
    21: ("TotalPowerActive", "p"), 22: ("TotalPowerRActive", "q"), 23: ("TotalPowerApparent", "s"),
    24: ("TotalPowerFactor", "pf"), 25: ("TotalPowerFactorType", "pf_type"),
    26: ("PowerActiveP1", "p1"), 27: ("PowerActiveP2", "p2"), 28: ("PowerActiveP3", "p3"),
    29: ("PowerRActiveQ1", "q1"), 30: ("PowerRActiveQ2", "q2"), 31: ("PowerRActiveQ3", "q3"),
    32: ("PowerApparentS1", "s1"), 33: ("PowerApparentS2", "s2"), 34: ("PowerApparentS3", "s3"),
    35: ("PowerFactorPF1", "pf1"), 36: ("PowerFactorTypeSPF1", "pf1_type"),
    37: ("PowerFactorPF2", "pf2"), 38: ("PowerFactorTypeSPF2", "pf2_type"),
    39: ("PowerFactorPF3", "pf3"), 40: ("PowerFactorTypeSPF3", "pf3_type"),
    41: ("LoadCurve_P+", "lc_p_pos"), 42: ("LoadCurve_P-", "lc_p_neg"), 43: ("LoadCurve_Q+", "lc_q_pos"),
    44: ("LoadCurve_Q-", "lc_q_neg"), 45: ("LoadCurve_S", "lc_s"),
    46: ("THD_I1", "thd_i1"), 47: ("THD_I2", "thd_i2"), 48: ("THD_I3", "thd_i3"), 49: ("THD_In", "thd_in"),
    50: ("THD_V1", "thd_v1"), 51: ("THD_V2", "thd_v2"), 52: ("THD_V3", "thd_v3"),
    53: ("THD_U12", "thd_u12"), 54: ("THD_U23", "thd_u23"), 55: ("THD_U31", "thd_u31"),
    56: ("A+", "ea_pos"), 57: ("A-", "ea_neg"), 58: ("ER+", "er_pos"), 59: ("ER-", "er_neg"), 60: ("ES", "es"),
    61: ("Mff", "multifluid"),
}

# (load, key) -> AI instance LLMM
INSTANCES = (
    (2, "v1", 204),            # the manual's own example
    (1, "i1", 111), (3, "i1", 311), (1, "v_sys", 100), (1, "freq", 103), (3, "s", 323), (1, "ea_pos", 156),
    (6, "multifluid", 661), (4, "thd_u31", 455), (0, "v1", 4), (0, "freq", 3),
)


def test_annex_ii_measurement_indexes():
    assert sorted(ANNEX_II) == list(range(62))
    for mm, (annex_name, key) in ANNEX_II.items():
        row = registry.by_bacnet_mm(mm)
        assert row is not None and row[registry.KEY] == key, (
            "annex II index %d is %s (%s), the registry has %s" % (mm, annex_name, key, row and row[registry.KEY]))
    # averages, I/O states and the like are not Analog Inputs of the annex; beyond it, only the Bluetooth
    # sensors' measurements have an index, our own from 80 on (62..79 left free for the annex)
    annex = [r[registry.KEY] for r in registry.MEASUREMENTS
             if r[registry.BACNET_MM] is not None and r[registry.BACNET_MM] < 62]
    assert annex == [key for _mm, (_name, key) in sorted(ANNEX_II.items())]
    ours = dict((r[registry.BACNET_MM], r[registry.KEY]) for r in registry.MEASUREMENTS
                if r[registry.BACNET_MM] is not None and r[registry.BACNET_MM] >= 62)
    assert ours == {80: "temperature", 81: "humidity", 82: "pressure", 83: "battery", 84: "battery_v"}


def test_analog_input_instances_are_llmm():
    for load, key, instance in INSTANCES:
        assert registry.bacnet_instance(load, key) == instance, (load, key)
        if load:
            assert registry.split_bacnet_instance(instance) == (load, key)
    assert registry.bacnet_instance(1, "avg_i1") is None          # not an AI of annex II


def test_device_instances_are_main_plus_modbus_address():
    assert points.device_instance(100, 5) == 105
    assert points.device_instance(100, 20) == 120
    assert points.device_instance(1000, 5) == 1005


def test_names_and_descriptions_follow_the_documented_format():
    device = dict((d.address, d) for d in demo_devices())[5]          # the I-35 at address 5, 3 loads
    assert device.name == "I-35@5 - DC85EA"
    by_instance = dict((p.instance, p) for p in points.device_points(device) if p.kind == points.ANALOG_INPUT)
    expected = {
        111: ("Current I1 L1", "Load 1 - Current I1 (II1Inst)", "amperes"),
        204: ("Voltage V1 L2", "Load 2 - Voltage V1 (IV1Inst)", "volts"),
        323: ("Total apparent power S L3", "Load 3 - Total apparent power S (ISSumInst)", "voltAmperes"),
        356: ("Active energy imported Ea+ L3", "Load 3 - Active energy imported Ea+ (IEaPInst)", "wattHours"),
        135: ("Power factor PF1 L1", "Load 1 - Power factor PF1 (IpF1Inst)", "powerFactor"),
    }
    for instance, (name, description, unit) in expected.items():
        point = by_instance[instance]
        assert (point.name, point.description, point.units) == (name, description, int(EngineeringUnits(unit)))
    u30 = dict((d.address, d) for d in demo_devices())[11]
    v1 = [p for p in points.device_points(u30) if p.instance == 4]
    assert [(p.kind, p.name, p.units) for p in v1] == [(points.ANALOG_INPUT, "Voltage V1", 5)]   # no load suffix


# ---------------------------------------------------------------- EDE (B.I.G.-EU layout 2.3)

EDE_HEADER = [
    "# Proposal_Engineering-Data-Exchange - B.I.G.-EU",
    "PROJECT_NAME;M-70",
    "VERSION_OF_REFERENCEFILE;1",
    "TIMESTAMP_OF_LAST_CHANGE;2023-11-14 22:13:20",
    "AUTHOR_OF_LAST_CHANGE;protocols/bacnet/ede.py",
    "VERSION_OF_LAYOUT;2.3",
]
EDE_COLUMNS = ("# keyname;device obj.-instance;object-name;object-type;object-instance;description;"
               "present-value-default;min-present-value;max-present-value;settable;supports COV;hi-limit;"
               "low-limit;state-text-reference;unit-code;vendor-specific-address")
# object types: device 8, analog-input 0, binary-input 3, binary-output 4; unit codes: amperes 3, volts 5,
# volt-amperes 8, watt-hours 18 (ASHRAE 135 clause 21)
EDE_ROWS = [
    "DEV100;100;M-70;8;100;Energy-metering gateway;;;;N;N;;;;;gateway",
    "DEV105;105;I-35@5 - DC85EA;8;105;DIRIS I-35 at Modbus address 5;;;;N;N;;;;;modbus:digiware:5",
    "DEV105.AI111;105;Current I1 L1;0;111;Load 1 - Current I1 (II1Inst);;;;N;N;;;;3;modbus:digiware:5/1/i1",
    "DEV105.AI204;105;Voltage V1 L2;0;204;Load 2 - Voltage V1 (IV1Inst);;;;N;N;;;;5;modbus:digiware:5/2/v1",
    ("DEV105.AI323;105;Total apparent power S L3;0;323;Load 3 - Total apparent power S (ISSumInst);;;;N;N;;;;8;"
     "modbus:digiware:5/3/s"),
    "DEV115.BI1;115;Digital input 1;3;1;Digital input 1 of IO-10;;;;N;N;;;;;modbus:digiware:15/0/in_1",
    "DEV115.BO1;115;Digital output 1;4;1;Digital output 1 of IO-10;;;;Y;N;;;;;modbus:digiware:15/0/out_1",
    ("DEV120.AI156;120;Active energy imported Ea+ L1;0;156;Load 1 - Active energy imported Ea+ (IEaPInst);;;;N;N;"
     ";;;18;modbus:rs485:20/1/ea_pos"),
]


def check_ede(text):
    lines = text.split("\n")
    assert text.endswith("\n") and lines[-1] == ""
    lines = lines[:-1]
    assert lines[:6] == EDE_HEADER
    hints = lines[6].lstrip("# ").split(";")
    assert len(hints) == 16 and hints[:5] == ["mandatory"] * 5, lines[6]
    assert set(hints[5:]) <= {"optional", "conditional"}, lines[6]
    assert lines[7] == EDE_COLUMNS
    rows = lines[8:]
    for row in EDE_ROWS:
        assert row in rows, "EDE row missing or different: %s" % row
    assert all(len(row.split(";")) == 16 for row in rows)
    by_key = dict((row.split(";")[0], row.split(";")) for row in rows)
    assert by_key["DEV111.AI4"][:5] == ["DEV111.AI4", "111", "Voltage V1", "0", "4"]
    assert by_key["DEV111.AI4"][14:] == ["5", "modbus:digiware:11/0/v1"]
    assert rows[0].startswith("DEV100;") and rows[1].startswith("DEV104;")   # gateway first, then by address


def test_ede_file_against_hand_written_rows():
    settings = {"bacnet.main_instance": 100, "gateway.name": "M-70", "gateway.description": "Energy-metering gateway"}
    check_ede(ede.ede_csv(settings.__getitem__, demo_devices(), now=T0))


def test_served_ede_and_the_objects_over_the_wire(tmp_path):
    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            content_type, text = s.gw.door(Caller("web", "user")).document("bacnet-ede.csv")
            assert content_type.startswith("text/csv")
            check_ede(text)

            meter = s.meter(5)
            name = values_of(await s.node.call("rp", target=meter, type=DEVICE, instance=MAIN + 5,
                                               property=PROP["object_name"]))
            assert name == ["I-35@5 - DC85EA"]
            wanted = {111: ("Current I1 L1", "Load 1 - Current I1 (II1Inst)", "amperes"),
                      204: ("Voltage V1 L2", "Load 2 - Voltage V1 (IV1Inst)", "volts"),
                      311: ("Current I1 L3", "Load 3 - Current I1 (II1Inst)", "amperes"),
                      323: ("Total apparent power S L3", "Load 3 - Total apparent power S (ISSumInst)", "voltAmperes")}
            properties = [OBJECT_IDENTIFIER, OBJECT_TYPE, PROP["object_name"], PROP["description"], PROP["units"]]
            answer = rpm_values(await s.node.call("rpm", target=meter, specs=[
                {"type": ANALOG_INPUT, "instance": i, "properties": properties} for i in wanted]))
            for instance, (object_name, description, unit) in wanted.items():
                got = answer[(ANALOG_INPUT, instance)]
                assert got[OBJECT_IDENTIFIER] == [{"type": 0, "instance": instance}], got
                assert got[OBJECT_TYPE] == [0]
                assert got[PROP["object_name"]] == [object_name]
                assert got[PROP["description"]] == [description]
                assert got[PROP["units"]] == [int(EngineeringUnits(unit))]
            # the manual's example through the U-30 at 11 (Device 111): load 0 = LL 00, AI 4 = V1
            v1 = values_of(await s.node.call("rp", target=s.meter(11), type=ANALOG_INPUT, instance=4,
                                             property=PROP["object_name"]))
            assert v1 == ["Voltage V1"]
    asyncio.run(scenario())
