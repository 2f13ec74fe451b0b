"""Golden SNMP: the examples of annex I of the M-70 manual, read with net-snmp's snmpget.

The OIDs are the manual's, as literal strings, and the expected numbers are
the simulated meters' own values at the documented scale (amperes x 1000,
docs/snmp.md and the MIB's DISPLAY-HINT d-3), not values from our tables.

Annex I of the DIRIS Digiware M-50/M-70 manual (seed 004_bc76bcbfe752a2e6.txt,
"Annexe I - 5. Extraction des données à l'aide du fichier MIB"), its example
architecture being an I-30 at address 4 with "Charge 1 : 3P + N - 3CT" and an
I-30 at address 5 with "Charge 1 : 1P + N - 1CT Charge 2 : 1P + N - 1CT
Charge 3 : 1P + N - 1CT"; quoted as extracted (the extraction splits
"5. 3" and "10.20. 20" and reads some capital I as l or 1):

    L'OID final pour extraire le courant instantané l1 pour le module I-30 à l'adresse Modbus 4 pour la
    charge 1 est : 1.3.6.1.4.1.4555.10.20.20.1.10000.4.1

    Par conséquent, l'OID final utilisé pour demander l1 Inst pour la charge 1 de l'I-30 à l'adresse 5 est :
    **1.3.6.1.4.1.4555.10.20.20.1.10000.5.1**

    L'OID final utilisé pour demander 11 Inst pour la charge 3 de l'I-30 à l'adresse 5 est
    **1.3.6.1.4.1.4555.10.20.20.1.10000.5. 3**

    Remarque : une demande à l'OID 1.3.6.1.4.1.4555.10.20. 20.1.10001.5 retournera « 0 » car l'ID de
    service 10001 correspond à l2 inst tandis que seules des charges monophasées sont configurées dans le
    module I-30 à l'adresse 5, ce qui signifie que les paramètres courants l2 et l3 ne sont pas utilisés.

The remark's OID stops at the address; the same annex says a few lines
above that "l'adresse Modbus doit être suivie du numéro de la charge", as
SPEC §3.2 does (``…<serviceID>.<modbusAddress>.<load>``), so service 10001
is read here at each of the three loads.

The site is the demo site (an I-35 stands in for each I-30; the catalogue
gives the I-30 one load, see tests/test_golden_registers.py) with the loads of
the module at address 5 wired single-phase, as in the manual's example.
"""

import asyncio
import contextlib
import copy

from board.base import ManualClock
from conftest import demo_topology, running_gateway, wait_for
from daemon.state.topology import devices_from_simulation
from snmp_support import T0, Site

I1_LOAD1_AT_4 = "1.3.6.1.4.1.4555.10.20.20.1.10000.4.1"
I1_LOAD1_AT_5 = "1.3.6.1.4.1.4555.10.20.20.1.10000.5.1"
I1_LOAD2_AT_5 = "1.3.6.1.4.1.4555.10.20.20.1.10000.5.2"
I1_LOAD3_AT_5 = "1.3.6.1.4.1.4555.10.20.20.1.10000.5.3"
I2_AT_5 = ("1.3.6.1.4.1.4555.10.20.20.1.10001.5.1", "1.3.6.1.4.1.4555.10.20.20.1.10001.5.2",
           "1.3.6.1.4.1.4555.10.20.20.1.10001.5.3")
I3_LOAD1_AT_5 = "1.3.6.1.4.1.4555.10.20.20.1.10002.5.1"
I2_LOAD1_AT_4 = "1.3.6.1.4.1.4555.10.20.20.1.10001.4.1"


def annex_topology():
    """The demo site with the three loads of the module at address 5 single-phase (1P+N), as in annex I."""
    topology = copy.deepcopy(demo_topology())
    (meter5,) = [m for m in topology["buses"]["digiware"]["meters"] if m["address"] == 5]
    assert meter5["loads"] == 3
    meter5["network"] = "1P+N"
    return topology


class AnnexSite(Site):
    """snmp_support.Site on annex_topology() instead of the demo topology itself."""

    async def __aenter__(self):
        topology = annex_topology()
        async with contextlib.AsyncExitStack() as stack:
            self.gw = await stack.enter_async_context(running_gateway(
                self.state_dir, topology, self.settings, clock=self.clock, services=[self.service_factory]))
            self.service = self.gw.services[0]
            await self.gw.topology.replace(devices_from_simulation(topology))
            await wait_for(lambda: all(p.cycles >= 2 for p in self.gw.pollers.values()), guard=30)
            await self.ready(stack)
            self._stack = stack.pop_all()
        return self


def milliamperes(amperes):
    return round(amperes * 1000)


def test_the_manuals_annex_i_oids(tmp_path):
    async def body():
        async with AnnexSite(tmp_path, clock=ManualClock(T0)) as s:
            meter4 = s.gw.board.find_meter(address=4)
            meter5 = s.gw.board.find_meter(address=5)
            assert [load.network for load in meter5.loads] == ["1P+N"] * 3
            assert meter4.loads[0].network == "3P+N"
            loads5 = dict((n, meter5.values(n)) for n in (1, 2, 3))
            load4 = meter4.values(1)

            for credentials in (s.v2c(), s.v1()):
                rc, values, text = await s.get(credentials, I1_LOAD1_AT_4, I1_LOAD1_AT_5, I1_LOAD2_AT_5,
                                               I1_LOAD3_AT_5)
                assert rc == 0, text
                assert int(values[I1_LOAD1_AT_4]) == milliamperes(load4["i1"]) > 0, text
                assert int(values[I1_LOAD1_AT_5]) == milliamperes(loads5[1]["i1"]) > 0, text
                assert int(values[I1_LOAD2_AT_5]) == milliamperes(loads5[2]["i1"]) > 0, text
                assert int(values[I1_LOAD3_AT_5]) == milliamperes(loads5[3]["i1"]) > 0, text
            assert len({values[I1_LOAD1_AT_5], values[I1_LOAD2_AT_5], values[I1_LOAD3_AT_5]}) == 3   # three loads

            # service 10001 (I2 inst) on the single-phase loads of the module at 5 reads 0, as the meter
            # itself has no I2 there; I3 (10002) too. On the three-phase load at 4 it does not.
            rc, values, text = await s.get(s.v2c(), *I2_AT_5, I3_LOAD1_AT_5, I2_LOAD1_AT_4)
            assert rc == 0, text
            for n, oid in zip((1, 2, 3), I2_AT_5):
                assert loads5[n]["i2"] == 0
                assert values[oid] == "0", text
                assert int(values[oid]) == milliamperes(loads5[n]["i2"])
            assert values[I3_LOAD1_AT_5] == "0" and loads5[1]["i3"] == 0, text
            assert int(values[I2_LOAD1_AT_4]) == milliamperes(load4["i2"]) > 0, text
    asyncio.run(body())
