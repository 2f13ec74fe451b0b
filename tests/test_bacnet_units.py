"""BACnet engineering units follow the standard, not our own table.

The expected unit of every Analog Input comes from the engineering unit of
its value (registry UNIT, and SPEC §3.3's table over the wire) through a
table written here from ASHRAE 135 clause 21 (BACnetEngineeringUnits); its
number comes from the standard's enumeration as bacpypes3 encodes it and, over
the wire, is also named by the Node.js client's own enumeration. Values are
in plain units (V, A, W, VA, var, Wh...), never kilo-units.
"""

import asyncio
import re

import pytest
from bacpypes3.basetypes import EngineeringUnits

from bacnet_support import DEMO_ADDRESSES, MAIN, Site
from bacnet_peer import ANALOG_INPUT, DEVICE, PROP, rpm_values, values_of
from board.base import ManualClock
from conftest import demo_devices, resolution
from spec_tables import SPEC_AI_TABLE
from core import registry
from protocols.bacnet import points

T0 = 1_700_000_000.0

# the engineering unit of a value -> its BACnetEngineeringUnits name (ASHRAE 135 clause 21)
STANDARD_UNITS = {
    "V": "volts",
    "A": "amperes",
    "Hz": "hertz",
    "%": "percent",
    "W": "watts",
    "var": "voltAmperesReactive",
    "VA": "voltAmperes",
    "Wh": "wattHours",
    "varh": "voltAmpereHoursReactive",
    "VAh": "voltAmpereHours",
    "degC": "degreesCelsius",
    "hPa": "hectopascals",
}
# the same units as ASHRAE 135 numbers them, for the names above (a check of the check)
STANDARD_NUMBERS = {"volts": 5, "amperes": 3, "hertz": 27, "percent": 98, "watts": 47, "voltAmperes": 8,
                    "voltAmperesReactive": 11, "wattHours": 18, "voltAmpereHoursReactive": 242,
                    "voltAmpereHours": 239, "noUnits": 95, "powerFactor": 15, "degreesCelsius": 62,
                    "percentRelativeHumidity": 29, "hectopascals": 133}


def standard_unit(unit, name):
    """The BACnet unit name of a value in ``unit`` ('' or '–' = dimensionless) named ``name``."""
    if unit == "%" and "humidity" in name.lower():
        return "percentRelativeHumidity"       # ASHRAE 135 has its own unit for it, not "percent"
    if unit not in ("", "–", "-"):
        return STANDARD_UNITS[unit]
    if re.search(r"\b(pf\d?|power factor)\b", name, re.I) and "type" not in name.lower():
        return "powerFactor"
    return "noUnits"          # a power factor's type (an enumeration), the multifluid input, states


def upper_snake(camel):
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", camel).upper()


@pytest.mark.parametrize("name, number", sorted(STANDARD_NUMBERS.items()))
def test_bacpypes3_numbers_the_units_as_the_standard(name, number):
    assert int(EngineeringUnits(name)) == number


@pytest.mark.parametrize("row", [r for r in registry.MEASUREMENTS if r[registry.BACNET_MM] is not None],
                         ids=lambda r: r[registry.KEY])
def test_every_analog_input_announces_the_unit_of_its_value(row):
    expected = standard_unit(row[registry.UNIT], row[registry.NAME])
    assert row[registry.BACNET_UNITS] == int(EngineeringUnits(expected)), (row[registry.KEY], expected)


def test_apparent_power_is_in_volt_amperes_not_kilovolt_amperes():
    for key in ("s_nom", "s", "s1", "s2", "s3", "lc_s", "avg_s"):
        row = registry.get(key)
        assert row[registry.UNIT] == "VA"
        assert row[registry.BACNET_UNITS] == int(EngineeringUnits("voltAmperes")) == 8, key
        assert row[registry.BACNET_UNITS] != int(EngineeringUnits("kilovoltAmperes"))


def test_spec_table_and_registry_agree_on_dimensionless_units():
    spec = SPEC_AI_TABLE
    assert sorted(spec) == list(range(62))
    for mm, (name, unit) in spec.items():
        row = registry.by_bacnet_mm(mm)
        assert standard_unit(unit, name) == standard_unit(row[registry.UNIT], row[registry.NAME]), (mm, name)


def float32_close(got, expected, step):
    """Present_Value travels as an IEEE float32; the gateway read the meter to ``step``."""
    return abs(got - expected) <= step + abs(expected) * 2.0 ** -23 + 1e-6


def test_units_and_values_over_the_wire_follow_the_standard(tmp_path):
    spec = SPEC_AI_TABLE

    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            node_names = dict((int(k), v) for k, v in
                              (await s.node.call("enumNames", enum="EngineeringUnits")).items())
            read, seen_mm = 0, set()
            for address in DEMO_ADDRESSES:
                object_list = values_of(await s.node.call("rp", target=s.meter(address), type=DEVICE,
                                                          instance=MAIN + address, property=PROP["object_list"]))
                ais = [o["instance"] for o in object_list if o["type"] == ANALOG_INPUT]
                for start in range(0, len(ais), 50):
                    chunk = ais[start:start + 50]
                    answer = rpm_values(await s.node.call("rpm", target=s.meter(address), specs=[
                        {"type": ANALOG_INPUT, "instance": i, "properties": [PROP["units"]]} for i in chunk]))
                    for instance in chunk:
                        name, unit = spec[instance % 100]
                        expected = standard_unit(unit, name)
                        got = answer[(ANALOG_INPUT, instance)][PROP["units"]]
                        assert got == [int(EngineeringUnits(expected))], (address, instance, name, unit, got)
                        assert node_names[got[0]] == upper_snake(expected), (address, instance)
                        read += 1
                        seen_mm.add(instance % 100)
            # every AI of the site was read, every apparent power among them
            assert read == sum(1 for d in demo_devices() for p in points.device_points(d)
                               if p.kind == points.ANALOG_INPUT)
            assert {20, 23, 32, 33, 34, 56, 58, 60, 24, 25} <= seen_mm

            # Present_Value of a few AIs = the simulated meter's own value, in the unit announced
            for address, load, key, unit in ((4, 1, "v1", "volts"), (4, 1, "i1", "amperes"),
                                             (4, 1, "p", "watts"), (4, 1, "s", "voltAmperes"),
                                             (4, 1, "ea_pos", "wattHours"), (11, 0, "v1", "volts"),
                                             (11, 0, "u12", "volts")):
                meter = s.gw.board.find_meter(address=address)
                instance = registry.bacnet_instance(load, key)
                answer = rpm_values(await s.node.call("rpm", target=s.meter(address), specs=[
                    {"type": ANALOG_INPUT, "instance": instance,
                     "properties": [PROP["present_value"], PROP["units"]]}]))[(ANALOG_INPUT, instance)]
                expected = meter.values(load)[key]
                assert answer[PROP["units"]] == [int(EngineeringUnits(unit))], key
                assert float32_close(answer[PROP["present_value"]][0], expected,
                                     resolution(meter.reference, load, key)), (address, key, answer, expected)
    asyncio.run(scenario())
