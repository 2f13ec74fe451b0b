"""SNMP table 23 (min/max) against net-snmp's tools, fed by the real pollers.

The demo site runs on a ManualClock: the simulated meters only change when
the test moves the clock. The test moves it a few times, lets the pollers
read each state, then freezes it; what the cache was fed in between is
recorded by a subscriber of its own. Table 23 must then serve exactly the
smallest and largest of those values, around the current one (table 20).
"""

import asyncio

from board.base import ManualClock
from conftest import wait_for
from core import registry
from daemon.state.extremes import MAX, MAX_TS, MIN, MIN_TS, Extremes, TRACKED_KINDS
from daemon.state.topology import Device, Topology
from protocols.bacnet import points
from protocols.snmp import mibdef
from snmp_support import ENTERPRISE, METROLOGY, T0, V3_READ, V3_WRITE, Site, mib_path, run

EXTREMES = dict((c.key, c) for c in mibdef.extremes_columns())
CURRENT = dict((c.key, c) for c in mibdef.metrology_columns())
# (address, load, key): currents and powers of I-35 loads, a U-30's voltage at
# load 0, a signed power factor and power of the A-40, frequency.
WATCHED = ((5, 1, "i1"), (4, 2, "p"), (4, 2, "pf"), (11, 0, "v1"), (14, 1, "freq"), (20, 1, "q"))
STEPS_S = (41.0, 313.0, 127.0, 997.0)       # clock moves: each gives every meter new values


def table23(key, address, load, extreme):
    return "%s.23.1.%d.%d.%d.%d" % (METROLOGY, EXTREMES[key].service_id, address, load, extreme)


def table20(key, address, load):
    return "%s.20.1.%d.%d.%d" % (METROLOGY, CURRENT[key].service_id, address, load)


scaled = registry.to_gateway_raw        # the integer the tables serve


class Fed:
    """Smallest and largest value the cache was fed, per (address, load, key)."""

    def __init__(self):
        self.seen = {}

    def __call__(self, address, load, values, _ts):
        for key, value in values.items():
            low, high = self.seen.get((address, load, key), (value, value))
            self.seen[(address, load, key)] = (min(low, value), max(high, value))


async def _cycles(gateway, more):
    target = dict((bus, poller.cycles + more) for bus, poller in gateway.pollers.items())
    await wait_for(lambda: all(p.cycles >= target[b] for b, p in gateway.pollers.items()), guard=60)


def test_table_23_serves_min_and_max_of_what_the_pollers_read(tmp_path):
    async def body():
        clock = ManualClock(T0)
        async with Site(tmp_path, clock=clock) as s:
            fed = Fed()
            s.gw.extremes.reset()                 # from here on, both see the same batches
            s.gw.cache.subscribe(fed)
            for step in STEPS_S:
                clock.advance(step)
                await _cycles(s.gw, 2)
            await _cycles(s.gw, 1)                # frozen from here: values and extremes hold still

            oids = []
            for address, load, key in WATCHED:
                oids += [table23(key, address, load, 1), table20(key, address, load), table23(key, address, load, 2)]
            for credentials in (s.v2c(), s.v3(*V3_READ)):      # fast path and pysnmp's path
                rc, values, text = await s.get(credentials, *oids)
                assert rc == 0, text
                for address, load, key in WATCHED:
                    low = int(values[table23(key, address, load, 1)])
                    now = int(values[table20(key, address, load)])
                    high = int(values[table23(key, address, load, 2)])
                    seen_low, seen_high = fed.seen[(address, load, key)]
                    assert (low, high) == (scaled(key, seen_low), scaled(key, seen_high)), (address, load, key)
                    assert low <= now <= high
            # The clock moves made them differ (otherwise min = max proves little).
            i1 = fed.seen[(5, 1, "i1")]
            assert scaled("i1", i1[0]) < scaled("i1", i1[1])
            entry = s.gw.extremes.get(5, 1, "i1")
            assert (entry[MIN], entry[MAX]) == i1

            # A measurement the device lacks reads 0 here too; absent device: noSuchInstance.
            lacking, absent = table23("i1", 15, 0, 2), table23("i1", 99, 1, 1)
            wrong_extreme = "%s.23.1.10000.5.1.3" % METROLOGY
            rc, values, text = await s.get(s.v2c(), lacking, absent, wrong_extreme)
            assert values[lacking] == "0", text
            assert values[absent].startswith("No Such Instance") and values[wrong_extreme].startswith("No Such")

            # A walk of table 23 ends, in order: every row twice (min, max) per column.
            rc, out, err = await run("snmpbulkwalk", "-On", "-OQ", *s.v2c(), s.target, METROLOGY + ".23")
            assert rc == 0 and "not increasing" not in err, err
            walked = [tuple(int(x) for x in line.split(" = ")[0].strip(".").split("."))
                      for line in out.splitlines() if " = " in line]
            rows = [(d.address, load) for d in s.gw.topology.devices for load in d.load_numbers()]
            assert walked == sorted(walked) and len(walked) == len(set(walked)) == len(EXTREMES) * len(rows) * 2
            assert {w[-1] for w in walked} == {1, 2}

            # With the MIB: net-snmp names the column and the extreme, and prints the unit.
            rc, out, err = await run("snmpget", "-m", "+" + mibdef.MIB_NAME, "-M", "+" + mib_path(), *s.v2c(),
                                     s.target, table23("i1", 5, 1, 2))
            high = fed.seen[(5, 1, "i1")][1]
            assert out.strip() == "%s::minmaxCurrentI1.5.1.maximum = Gauge32: %.3f A" % (mibdef.MIB_NAME, high), \
                out + err
    asyncio.run(body())


def test_extremes_follow_the_topology_and_track_what_protocols_serve():
    topology = Topology()
    extremes = Extremes(topology)
    asyncio.run(topology.replace([Device("digiware", 5, "I-35", "DC85EA", loads=[{"load": 1}]),
                                  Device("digiware", 6, "I-35", "DC85EB", loads=[{"load": 1}])]))
    for ts, value in ((1.0, 7.5), (2.0, 3.25), (3.0, 9.0), (4.0, 5.0)):
        extremes.on_update(5, 1, {"i1": value, "ea_pos": 100.0 * ts, "in_1": 1}, ts)
        extremes.on_update(6, 1, {"i1": value}, ts)
    assert extremes.get(5, 1, "i1") == (3.25, 2.0, 9.0, 3.0)
    assert extremes.get(5, 1, "ea_pos") is None and extremes.get(5, 1, "in_1") is None   # not quantities with extremes

    extremes.reset(address=6)
    assert extremes.get(6, 1, "i1") is None and extremes.get(5, 1, "i1") is not None
    extremes.on_update(6, 1, {"i1": 1.0}, 5.0)
    # Another meter (another NET ID) at address 5: the old meter's extremes go; 6 keeps its own.
    asyncio.run(topology.replace([Device("digiware", 5, "I-35", "AAAAAA", loads=[{"load": 1}]),
                                  Device("digiware", 6, "I-35", "DC85EB", loads=[{"load": 1}])]))
    assert extremes.get(5, 1, "i1") is None and extremes.get(6, 1, "i1") == (1.0, 5.0, 1.0, 5.0)
    asyncio.run(topology.replace([]))          # removed: gone
    assert extremes.get(6, 1, "i1") is None and len(extremes) == 0

    # Everything BACnet (annex II min/max and averages) and SNMP table 23 serve is tracked.
    wanted = {row[registry.KEY] for row in registry.MEASUREMENTS if row[registry.BACNET_MM] in points.MINMAX_MM}
    wanted |= set(points.AVERAGE_OF.values()) | set(EXTREMES)
    assert wanted <= extremes.tracked
    assert {registry.get(k)[registry.KIND] for k in extremes.tracked} == set(TRACKED_KINDS)


def test_a_device_min_max_reset_over_snmp_needs_write_rights_and_touches_only_that_device(tmp_path):
    reset_5 = "%s.10.30.2.1.14.5" % ENTERPRISE           # gwDevMinMaxReset of the I-35 at 5

    async def body():
        async with Site(tmp_path) as s:
            extremes = s.gw.extremes

            def addresses():
                return set(k[0] for k, _v in extremes.items())

            assert {4, 5, 11} <= addresses()
            rc, values, text = await s.get(s.v2c(), reset_5)
            assert values[reset_5] == "0", text
            # Refused: policy off (the default), read credentials, wrong value or type, no such device.
            rc, out, err = await s.set(s.v2c("privateV2"), reset_5, "i", "1")
            assert rc != 0 and "noAccess" in out + err, out + err
            await s.gw.settings.set_many({"policy.modbus_write": True})
            refusals = ((s.v2c(), (reset_5, "i", "1"), "noAccess"),
                        (s.v2c("privateV2"), (reset_5, "i", "2"), "wrongValue"),
                        (s.v2c("privateV2"), (reset_5, "s", "yes"), "wrongType"),
                        (s.v2c("privateV2"), ("%s.10.30.2.1.14.99" % ENTERPRISE, "i", "1"), "noCreation"),
                        (s.v2c("privateV2"), ("%s.10.30.2.1.13.5" % ENTERPRISE, "i", "1"), "notWritable"))
            for credentials, assignment, reason in refusals:
                rc, out, err = await s.set(credentials, *assignment)
                assert rc != 0 and reason in out + err, (assignment, out + err)
            assert extremes.resets == 0 and 5 in addresses()

            # Allowed: the I-35 at 5 loses its extremes, the others keep theirs.
            before_4 = dict((k, list(v)) for k, v in extremes.items() if k[0] == 4)
            reset_at = s.gw.clock.time()
            rc, out, err = await s.set(s.v3(*V3_WRITE), reset_5, "i", "1")
            assert rc == 0, out + err
            assert extremes.resets == 1
            await wait_for(lambda: 5 in addresses())              # new extremes from the next poll
            of_5 = [v for k, v in extremes.items() if k[0] == 5]
            of_4 = dict((k, v) for k, v in extremes.items() if k[0] == 4)
            # Every extreme of 5 was first seen after the reset; those of 4 go back before it.
            assert of_5 and all(v[MIN_TS] >= reset_at and v[MAX_TS] >= reset_at for v in of_5)
            assert set(of_4) == set(before_4) and any(v[MIN_TS] < reset_at for v in of_4.values())
            assert all(of_4[k][MIN] <= before_4[k][MIN] and of_4[k][MAX] >= before_4[k][MAX] for k in of_4)
    asyncio.run(body())
