"""Signed values end to end: circuits that export (P < 0), with Q of either sign and a leading or
lagging power factor, read over Modbus TCP (pymodbus), SNMP (net-snmp's snmpget) and BACnet (the
Node.js client) with the right sign and scale.

The simulated meters are told through the topology file (``load_flows``) which circuits export and
with which power factor (signed as on the meters: - leading, + lagging, [OE-A10]). Expected values
are the simulated meters' own, with the scales written here as literals from the documents (the
normalized table of docs/modbus-register-map.md, the SNMP service IDs of the registry, the BACnet
AI instances LLMM of SPEC §3.3), never computed by the gateway's code.
"""

import asyncio
import contextlib

from pymodbus.client import AsyncModbusTcpClient

from bacnet_support import NET
from bacnet_peer import ANALOG_INPUT, PROP, NodeBacnet, rpm_values
from board.base import ManualClock
from conftest import demo_topology, free_tcp_port, free_udp_port, running_gateway, wait_for
from core import modbus_rtu as rtu
from daemon.state.topology import devices_from_simulation
from protocols.bacnet import BacnetService
from protocols.modbus.tcp import ModbusTcpService
from protocols.snmp.agent import SnmpService
from snmp_support import METROLOGY, run

T0 = 1_700_000_000.0

# (address, load): (export, pf) — quadrant III (export, lagging: Q < 0, PF > 0), quadrant II (export,
# leading: Q > 0, PF < 0), an A-40 exporting leading (its powers in 10 W), an E23 importing leading
# (quadrant IV: P > 0, Q < 0, PF < 0); the I-35's load 1 stays an ordinary lagging import.
FLOWS = {(4, 2): (True, 0.9), (4, 3): (True, -0.8), (20, 1): (True, -0.85), (21, 1): (False, -0.9)}
SIGNS = {(4, 1): (1, 1, 1), (4, 2): (-1, -1, 1), (4, 3): (-1, 1, -1), (20, 1): (-1, 1, -1), (21, 1): (1, -1, -1)}
# register resolution of P/Q on each meter (W): Digiware 1 W [OE-B30], DIRIS A / COUNTIS 10 W [OE-A10]
STEP = {4: 1, 20: 10, 21: 10}

# normalized table (docs/modbus-register-map.md): 0x1000 + 200 x load + offset; s32; P, Q in W and var,
# PF x1000
NORMALIZED = {"p": 42, "q": 44, "pf": 48, "p1": 52, "q1": 58, "pf1": 70}
# SNMP service IDs of the instantaneous table 20 (registry data_id): P 12000, Q 12010, PF 12030, P1 12001,
# Q1 12011, PF1 12031; values at the gateway scale (W, var, PF x1000)
SERVICE = {"p": 12000, "q": 12010, "pf": 12030, "p1": 12001, "q1": 12011, "pf1": 12031}
SNMP_SCALE = {"p": 1, "q": 1, "pf": 1000, "p1": 1, "q1": 1, "pf1": 1000}
# BACnet Analog Inputs, instance = load x 100 + MM (SPEC §3.3): P 21, Q 22, PF 24, P1 26, Q1 29, PF1 35
BACNET_MM = {"p": 21, "q": 22, "pf": 24, "p1": 26, "q1": 29, "pf1": 35}


def site():
    topology = demo_topology()
    for bus in topology["buses"].values():
        for meter in bus["meters"]:
            flows = [{"load": load, "export": export, "pf": pf}
                     for (address, load), (export, pf) in FLOWS.items() if address == meter["address"]]
            if flows:
                meter["load_flows"] = flows
    return topology


def tolerance(address, key, scale=1):
    """Native register step + the front end's rounding."""
    if key.startswith("pf"):
        return 0.001 + 0.5 / 1000
    return STEP[address] + 0.5 / scale


def expected_signs(gw):
    """The simulated meters' values, with the signs the scenario must produce."""
    truth = {}
    for (address, load), (p_sign, q_sign, pf_sign) in SIGNS.items():
        values = gw.board.find_meter(address=address).values(load)
        for key, sign in (("p", p_sign), ("q", q_sign), ("pf", pf_sign), ("p1", p_sign), ("q1", q_sign),
                          ("pf1", pf_sign)):
            assert values[key] * sign > 0, (address, load, key, values[key])
            truth[(address, load, key)] = values[key]
    return truth


def test_exporting_circuits_read_with_their_signs_over_modbus_snmp_and_bacnet(tmp_path):
    topology = site()
    modbus_port, snmp_port, bacnet_port = free_tcp_port(), free_udp_port(), free_udp_port()
    settings = {"modbus.port": modbus_port, "modbus.bind": "127.0.0.1",
                "snmp.enabled": True, "snmp.port": snmp_port, "snmp.bind": "127.0.0.1",
                "bacnet.enabled": True, "bacnet.port": bacnet_port, "bacnet.bind": "127.0.0.1"}

    async def scenario():
        async with contextlib.AsyncExitStack() as stack:
            gw = await stack.enter_async_context(running_gateway(
                tmp_path / "state", topology, settings, clock=ManualClock(T0),
                services=[ModbusTcpService, SnmpService, BacnetService]))
            devices = devices_from_simulation(topology)
            await gw.topology.replace(devices)
            await wait_for(lambda: all(p.cycles >= 2 for p in gw.pollers.values()), guard=30)
            _modbus, snmp, bacnet = gw.services
            await wait_for(lambda: snmp.running and bacnet.stack is not None and bacnet.stack.settled()
                           and len(bacnet.stack.meters) == len(devices), guard=30)
            truth = expected_signs(gw)

            # the gateway's cache, within the native register's resolution
            for (address, load, key), value in truth.items():
                cached = gw.cache.get(address, load, key)
                assert cached.quality == "good" and abs(cached.value - value) <= tolerance(address, key), \
                    (address, load, key, cached.value, value)

            # Modbus TCP: the normalized table (s32) and the meters' own registers through the gateway
            client = AsyncModbusTcpClient("127.0.0.1", port=modbus_port, timeout=5, retries=0)
            assert await client.connect()
            stack.callback(client.close)
            for (address, load, key), value in truth.items():
                rr = await client.read_holding_registers(0x1000 + 200 * load + NORMALIZED[key], count=2,
                                                         device_id=address)
                assert not rr.isError(), (address, load, key, rr)
                raw = rtu.decode_value("s32", rr.registers)
                scale = 1000 if key.startswith("pf") else 1
                assert abs(raw / scale - value) <= tolerance(address, key, scale), (address, load, key, raw, value)
            # native: I-35 load 3 at 0x5800 (ΣP +44, ΣQ +46 S32 in W; ΣPF +54 S16 /1000), A-40 ΣP 0xC568 S32 in 10 W
            rr = await client.read_holding_registers(0x5800 + 44, count=4, device_id=4)
            assert rtu.decode_value("s32", rr.registers[:2]) == round(truth[(4, 3, "p")]) < 0
            assert rtu.decode_value("s32", rr.registers[2:]) == round(truth[(4, 3, "q")]) > 0
            rr = await client.read_holding_registers(0x5800 + 54, count=1, device_id=4)
            assert rtu.decode_value("s16", rr.registers) == -800
            rr = await client.read_holding_registers(0xC568, count=8, device_id=20)
            assert rtu.decode_value("s32", rr.registers[0:2]) == round(truth[(20, 1, "p")] / 10) < 0
            assert rtu.decode_value("s32", rr.registers[6:8]) == -850          # ΣPF 0xC56E, /1000

            # SNMP (net-snmp's snmpget, v2c): INTEGER values at the gateway scale
            oids = dict(("%s.20.1.%d.%d.%d" % (METROLOGY, SERVICE[key], address, load), (address, load, key))
                        for address, load, key in truth)
            rc, out, err = await run("snmpget", "-On", "-OQ", "-Oe", "-v2c", "-c", "publicV2", "-r", "1", "-t", "2",
                                     "127.0.0.1:%d" % snmp_port, *oids)
            assert rc == 0, out + err
            got = dict((line.split(" = ", 1)[0].strip().lstrip("."), line.split(" = ", 1)[1].strip())
                       for line in out.splitlines() if " = " in line)
            for oid, (address, load, key) in oids.items():
                value = int(got[oid]) / float(SNMP_SCALE[key])
                assert abs(value - truth[(address, load, key)]) <= tolerance(address, key, SNMP_SCALE[key]), \
                    (oid, got[oid], truth[(address, load, key)])

            # BACnet (the Node.js client): Present_Value of the AIs LLMM
            node = await stack.enter_async_context(NodeBacnet(free_udp_port()))
            for address in sorted(set(a for a, _l, _k in truth)):
                wanted = [(load, key) for a, load, key in truth if a == address]
                answer = rpm_values(await node.call("rpm", target={"address": "127.0.0.1:%d" % bacnet_port,
                                                                   "net": NET, "adr": [address]}, specs=[
                    {"type": ANALOG_INPUT, "instance": load * 100 + BACNET_MM[key],
                     "properties": [PROP["present_value"]]} for load, key in wanted]))
                for load, key in wanted:
                    value = answer[(ANALOG_INPUT, load * 100 + BACNET_MM[key])][PROP["present_value"]][0]
                    expected = truth[(address, load, key)]
                    assert abs(value - expected) <= tolerance(address, key) + abs(expected) * 1e-6, \
                        (address, load, key, value, expected)
                    assert (value < 0) == (expected < 0)

    asyncio.run(scenario())
