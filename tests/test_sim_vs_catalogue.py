"""The gateway's catalogue against the simulated meters' own register tables.

The simulated meters (board/simmeter.py) take their register layout from
board/simregisters.py, written from ../shared/socomec-registers.md, never
from core/catalogue.py. So these tests compare two independent readings of
the register facts: for every product the simulator offers, every
measurement the catalogue maps (address, type, multiplier) must decode from
the simulated meter's registers to the meter's own engineering value, with
the same type and scale as the meter's table; every block the catalogue
reads must be a block the meter serves, ending where the meter's ends (one
word further answers exception 02). A disagreement on any address, type or
scale fails here, whichever side is wrong.
"""

import ast
import math
import os

import pytest

from board import simregisters as regs
from board.base import ManualClock
from board.simmeter import SimMeter
from conftest import REPO
from core import catalogue, curve_windows, modbus_rtu as rtu
from daemon.runtime.discovery import parse_identification

T0 = 1_700_000_000.0
NOON = T0 - (T0 % 86400) + 12 * 3600           # a frozen clock: the registers and values hold still
SIMULATED = sorted(regs.PRODUCTS)
TYPES = {"U16": "u16", "S16": "s16", "U8": "u8", "U32": "u32", "S32": "s32", "KWH+10WH": "e48"}


def scenarios(reference):
    """(network, export, pf): import lagging, export leading, export lagging, and a single-phase
    leading import where the product has several network types."""
    networks = regs.PRODUCTS[reference][5] or ("3P+N",)
    out = [(networks[0], False, None), (networks[0], True, -0.8), (networks[0], True, 0.9)]
    if "1P+N" in networks and networks[0] != "1P+N":
        out.append(("1P+N", False, -0.95))
    return out


def meter_for(reference, network, export, pf):
    meter = SimMeter(reference, 7, 0xAB12CD, ManualClock(NOON), network=network)
    for load in meter.loads:
        meter.configure_load(load.number, export=export, pf=pf)
    if meter.product.inputs:
        meter.set_inputs(0b0101)
    if meter.product.outputs:
        assert meter.write_registers(regs.IO_OUTPUT_REGISTER + 1, [1]) == 0
    return meter


def catalogue_loads(reference):
    loads = catalogue.product(reference)[catalogue.LOADS]
    return list(range(1, loads + 1)) if loads else [0]


def sim_rows(meter, load):
    """{address: (type, name, scale, source)} of the meter's table for one load."""
    return dict((reg, (kind, name, scale, src)) for reg, kind, name, scale, src in regs.rows_at(meter.product, load))


def disagreements(meter, load, network):
    """Every way the catalogue's map of ``load`` differs from the simulated meter's table and values."""
    problems = []
    reference = meter.reference
    truth = meter.values(load)
    rows = sim_rows(meter, load)
    for key, (reg, kind, mult) in sorted(catalogue.measurement_map(reference, load, network).items()):
        where = "%s load %d %s at 0x%04X (%s x %r)" % (reference, load, key, reg, kind, mult)
        row = rows.get(reg)
        if row is None:
            problems.append("%s: the meter's table has nothing at that address" % where)
        else:
            sim_kind, name, scale, source = row
            if sim_kind == "BITS":
                same = kind == "bit%d" % (int(key.rsplit("_", 1)[1]) - 1) and key.startswith(name) and mult == 1
            elif sim_kind == "KWH+10WH":
                same = kind == "e48" and name == key and scale == 1000
            else:
                same = TYPES.get(sim_kind) == kind and name == key and math.isclose(scale, mult, rel_tol=1e-12)
            if not same:
                problems.append("%s: the meter's table says %s %s x %r %s" % (where, name, sim_kind, scale, source))
        words = meter.read_registers(reg, catalogue.type_words(kind))
        if isinstance(words, int):
            problems.append("%s: the meter answers exception %d" % (where, words))
            continue
        if key not in truth:
            problems.append("%s: the meter has no such value" % where)
            continue
        got = catalogue.decode(kind, words, mult)
        step = 10 if kind == "e48" else (0 if kind.startswith("bit") else abs(mult) / 2.0)
        if abs(got - truth[key]) > step + 1e-9 * max(1.0, abs(truth[key])):
            problems.append("%s: decodes %r, the meter's value is %r" % (where, got, truth[key]))
    return problems


def test_the_board_takes_no_register_layout_from_the_catalogue():
    board_dir = os.path.join(REPO, "board")
    for name in sorted(os.listdir(board_dir)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(board_dir, name), encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [(node.module or "") + "." + a.name for a in node.names] + [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any(n == "core.catalogue" or n.startswith("core.catalogue.") for n in names), (
                "board/%s imports core.catalogue: the simulated meters must keep their own tables" % name)


def test_every_product_the_simulator_offers_is_in_the_catalogue_as_the_same_product():
    assert {"I-35", "U-30", "IO-10", "A-40", "E23", "E14", "B-30 RS485"} <= set(SIMULATED)
    for reference in SIMULATED:
        meter = SimMeter(reference, 7, 0xAB12CD, ManualClock(NOON))
        product = meter.product
        netid_words = meter.read_registers(catalogue.IDENT_NETID_BASE, catalogue.IDENT_NETID_WORDS)
        ident = parse_identification(meter.read_registers(catalogue.IDENT_BASE, catalogue.IDENT_WORDS),
                                     None if isinstance(netid_words, int) else netid_words)
        row = catalogue.identify(ident["family"], ident["product_id"], ident["ext_name"])
        assert row is not None and row[catalogue.REF] == reference, (reference, ident)
        assert catalogue.identify(ident["family"], ident["product_id"], "")[catalogue.REF] == reference
        assert row[catalogue.LOADS] == product.loads, (reference, "loads", row[catalogue.LOADS], product.loads)
        assert (row[catalogue.INPUTS], row[catalogue.OUTPUTS]) == (product.inputs, product.outputs), reference
        assert set(row[catalogue.CURVES]) == set(product.caches), (reference, row[catalogue.CURVES], product.caches)
        if product.caches and product.loads or "history" in product.caches:
            assert curve_windows.LC_WINDOW.get(row[catalogue.PROFILE]) == product.curve_window, reference
        assert catalogue.has_netid(reference) == (not isinstance(netid_words, int)), (reference, netid_words)
        assert (ident["netid"] is not None) == product.has_netid
        if product.loads > 1 or product.load_blocks:
            assert set(product.networks) <= set(row[catalogue.NETWORKS]), reference


@pytest.mark.parametrize("reference", SIMULATED)
def test_every_catalogue_measurement_decodes_to_the_meters_own_value(reference):
    problems = []
    checked = 0
    for network, export, pf in scenarios(reference):
        meter = meter_for(reference, network, export, pf)
        for load in catalogue_loads(reference):
            net = meter.loads[load - 1].network if load else "3P+N"
            problems += disagreements(meter, load, net)
            checked += len(catalogue.measurement_map(reference, load, net))
    assert checked > 0
    assert problems == [], "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("reference", SIMULATED)
def test_the_catalogues_blocks_are_the_meters_and_reads_across_a_gap_answer_02(reference):
    meter = meter_for(reference, regs.PRODUCTS[reference][5][0] if regs.PRODUCTS[reference][5] else None,
                      False, None)
    served = meter.blocks()

    def covered(register):
        return any(start <= register < start + words for start, words in served)

    for load in catalogue_loads(reference):
        for start, words in catalogue.readable_blocks(reference, load):
            answer = meter.read_registers(start, words)
            assert not isinstance(answer, int), "%s: the catalogue's block 0x%04X+%d answers exception %d" % (
                reference, start, words, answer)
            assert (start, words) in served, "%s: the catalogue reads 0x%04X+%d, the meter's blocks are %s" % (
                reference, start, words, ["0x%04X+%d" % b for b in sorted(served)])
    for start, words in served:
        if not covered(start + words):
            assert meter.read_registers(start, words + 1) == rtu.ILLEGAL_DATA_ADDRESS, (reference, hex(start))
        if not covered(start - 1):
            assert meter.read_registers(start - 1, 2) == rtu.ILLEGAL_DATA_ADDRESS, (reference, hex(start))
    # the identification block: 66 words everywhere, 69 (NET ID) on the B-30 generation only
    ident_words = 69 if meter.product.has_netid else 66
    assert not isinstance(meter.read_registers(catalogue.IDENT_BASE, catalogue.IDENT_WORDS), int)
    assert meter.read_registers(catalogue.IDENT_BASE, ident_words + 1) == rtu.ILLEGAL_DATA_ADDRESS
    if catalogue.has_netid(reference):
        assert not isinstance(meter.read_registers(catalogue.IDENT_NETID_BASE, catalogue.IDENT_NETID_WORDS), int)


def test_load_settings_type_codes_and_fixed_registers_agree():
    for reference in ("I-35", "B-30 RS485", "I-30"):
        for network in regs.PRODUCTS[reference][5]:
            meter = SimMeter(reference, 7, 0xAB12CD, ManualClock(NOON), network=network)
            for load in meter.loads:
                start = catalogue.LOAD_SETTINGS_BASE + (load.number - 1) * catalogue.LOAD_SETTINGS_STRIDE
                enabled, code = meter.read_registers(start, 2)
                assert enabled == 1 and catalogue.LOAD_TYPE_NETWORK.get(code) == network, (reference, network, code)
    pairs = [(catalogue.IDENT_BASE, regs.IDENT_BASE), (catalogue.IDENT_WORDS, regs.IDENT_WORDS),
             (catalogue.IDENT_NETID_BASE + catalogue.IDENT_NETID_WORDS - catalogue.IDENT_BASE,
              regs.IDENT_WORDS_NETID),
             (catalogue.CLOCK_REGISTER, regs.CLOCK_REGISTER), (catalogue.SLAVE_ADDRESS_REGISTER, regs.RS485_SETTINGS),
             (catalogue.NETID_ASSIGN_REGISTER, regs.NETID_ASSIGN_REGISTER),
             (catalogue.NETID_FILTER_REGISTER, regs.NETID_FILTER_REGISTER),
             (catalogue.LOAD_SETTINGS_BASE, regs.LOAD_SETTINGS_BASE),
             (catalogue.LOAD_SETTINGS_STRIDE, regs.LOAD_SETTINGS_STRIDE),
             (catalogue.IO_OUTPUT_REGISTER, regs.IO_OUTPUT_REGISTER),
             ([catalogue.load_base(n) for n in range(1, 7)], [regs.load_base(n) for n in range(1, 7)])]
    for ours, theirs in pairs:
        assert ours == theirs


def test_a_50_hz_network_reads_50_hz_on_every_simulated_product():
    # the defect of issue 12: a COUNTIS E23 read 500.0 Hz through the catalogue's Hz/100
    for reference in SIMULATED:
        meter = SimMeter(reference, 7, 0xAB12CD, ManualClock(NOON))
        for load in catalogue_loads(reference):
            mapping = catalogue.measurement_map(reference, load, meter.loads[load - 1].network if load else "3P+N")
            if "freq" in mapping:
                reg, kind, mult = mapping["freq"]
                got = catalogue.decode(kind, meter.read_registers(reg, catalogue.type_words(kind)), mult)
                assert 49.9 < got < 50.1, (reference, load, got)
