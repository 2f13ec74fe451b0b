"""The registry and catalogue tables: consistent, complete, and as SPEC says."""


import pytest

from core import catalogue, registry
from daemon.runtime.poller import plan_reads
from core import modbus_rtu as rtu
from spec_tables import SPEC_AI_TABLE

def test_registry_table_is_consistent():
    assert registry.check_table() == []


def test_bacnet_units_follow_the_spec_table():
    table = dict((mm, unit) for mm, (_name, unit) in SPEC_AI_TABLE.items())
    assert sorted(table) == list(range(62))
    for mm, unit in table.items():
        row = registry.by_bacnet_mm(mm)
        expected = "" if unit in ("–", "-") else unit
        assert row[registry.UNIT] == expected, (mm, row[registry.KEY], unit)


def test_catalogue_is_consistent_and_lists_every_group_of_the_manual():
    assert catalogue.check_catalogue() == []
    groups = set(row[catalogue.GROUP] for row in catalogue.PRODUCTS)
    assert {"Gateways", "DIRIS Digiware", "DIRIS B", "DIRIS A", "COUNTIS", "Switches"} <= groups
    for ref in ("I-35", "U-30", "IO-10", "IO-20", "A-40", "E23", "B-30 RS485", "S-135", "ATyS p M"):
        catalogue.product(ref)


@pytest.mark.parametrize("ext_name, expected", [
    ("DIRIS I-35", "I-35"), ("DIRIS I-35DC", "I-35 dc"), ("COUNTIS E23", "E23"),
    ("DIRIS B30", "B-30 RS485"), ("diris a-40", "A-40"), ("COUNTIS E44R", "E44R"),
])
def test_identification_prefers_the_longest_extended_name_prefix(ext_name, expected):
    assert catalogue.identify(0, 0, ext_name)[catalogue.REF] == expected


def test_identification_falls_back_to_the_product_id():
    assert catalogue.identify(400, 4235, "UNKNOWN NAME")[catalogue.REF] == "I-35"
    assert catalogue.identify(400, 9999, "UNKNOWN NAME") is None


def _greedy_optimum(registers, limit):
    """Minimum reads for sorted (start, end) ranges inside one block, by DP."""
    n = len(registers)
    best = [0] + [None] * n
    for i in range(1, n + 1):
        for j in range(i):
            if registers[i - 1][1] - registers[j][0] <= limit and best[j] is not None:
                cand = best[j] + 1
                if best[i] is None or cand < best[i]:
                    best[i] = cand
    return best[n]


@pytest.mark.parametrize("reference, loads", [
    ("I-35", [(1, "3P+N"), (2, "3P+N"), (3, "1P+N")]), ("A-40", [(1, "3P+N")]), ("E23", [(1, "3P+N")]),
    ("U-30", [(0, "3P+N")]), ("IO-10", [(0, "3P+N")]), ("I-60", [(n, "3P+N") for n in range(1, 7)]),
])
@pytest.mark.parametrize("limit", [125, 40, 10])
def test_poll_plan_is_the_fewest_reads_covering_every_value(reference, loads, limit):
    plan = plan_reads(reference, loads, limit)
    wanted = set()
    optimum = 0
    for load, network in loads:
        mapping = catalogue.measurement_map(reference, load, network)
        wanted |= set((load, k) for k in mapping)
        blocks = catalogue.readable_blocks(reference, load)
        for start, words in blocks:
            ranges = sorted((reg, reg + catalogue.type_words(kind)) for reg, kind, _m in mapping.values()
                            if start <= reg < start + words)
            if ranges:
                optimum += _greedy_optimum(ranges, limit)
    covered = set()
    for read in plan:
        assert 1 <= read.count <= limit
        assert any(s <= read.start and read.start + read.count <= s + w
                   for load, _n in loads for s, w in catalogue.readable_blocks(reference, load))
        for load, key, offset, kind, _m in read.items:
            assert offset + catalogue.type_words(kind) <= read.count
            covered.add((load, key))
    assert covered == wanted
    assert len(plan) == optimum


def test_network_type_limits_the_measurements_of_a_load():
    three = catalogue.measurement_map("I-35", 1, "3P+N")
    single = catalogue.measurement_map("I-35", 1, "1P+N")
    assert "i3" in three and "i3" not in single and "i1" in single
    assert catalogue.measurement_map("I-35", 4) == {}     # an I-35 has 3 loads


def test_energy_with_residual_decodes_to_watt_hours():
    words = catalogue.encode("e48", 123456789, 1)
    assert catalogue.decode("e48", words, 1) == 123456780   # 10 Wh resolution
    assert rtu.decode_value("u32", words[:2]) == 123456      # kWh part
