"""Generic Modbus devices (issue 18): an RTU slave on a pseudo-terminal and a Modbus TCP server, each described by
a user register map, read like any meter through Modbus TCP, SNMP, BACnet and the web.

The devices' register images are written here by hand with ``struct`` (IEEE 754 float32, two's complement),
independently of the data models the gateway is given (imported as CSV and posted as JSON through the web API).
The values are read with independent clients: pymodbus (the gateway's normalized table), net-snmp's snmpget,
the Node.js BACnet client (tests/bacnet_support.py), and the web JSON API, at the registry's scale and with
their quality. Then the TCP server stops: communication lost (system alarm 3, quality on every front end).
"""

import asyncio
import contextlib
import struct

from pymodbus.client import AsyncModbusTcpClient

from bacnet_support import MAIN, NET
from bacnet_peer import ANALOG_INPUT, PROP, NodeBacnet, rpm_values
from board.simgeneric import GenericSlave
from modbus_tcp_device import tcp_device
from conftest import free_tcp_port, free_udp_port, running_gateway, topology_with, wait_for, web_login, web_server
from daemon.state.alarms import device_source
from protocols.bacnet import BacnetService
from protocols.modbus.tcp import ModbusTcpService
from protocols.snmp.agent import SnmpService
from snmp_support import run

RTU_ADDRESS, TCP_ADDRESS, TCP_UNIT = 21, 60, 7
NORMALIZED_LOAD_1 = 0x1000 + 200          # docs/modbus-register-map: normalized table, load 1's window
QUALITY_LOAD_1 = 0x10C6 + 200             # its quality word (0 good, 1 stale, 2 comm_lost)
SNMP_BASE = "1.3.6.1.4.1.4555.10.20"      # SPEC §3.2: .<table>.1.<serviceID>.<address>.<load>


def words(fmt, value):
    return list(struct.unpack(">%dH" % (struct.calcsize(fmt) // 2), struct.pack(fmt, value)))


# The RTU slave's image, by hand: a float32 temperature (a user value), an energy index in kWh as U32 (Ea+ in Wh
# with coefficient 1000), an active power as S16 in units of 10 W, and V1 as float32 low word first in input
# registers (function 4).
RTU_HOLDING = dict(zip(range(100, 105), words(">f", 21.5) + words(">I", 12345) + words(">h", -150), strict=True))
RTU_INPUTS = dict(zip((0, 1), words(">f", 230.5)[::-1], strict=True))
RTU_CSV = "\r\n".join([
    "name;frame;function;register;encoding;word_order;coefficient;unit",
    "Water temperature;main;3;100;FLOAT32;big;1;°C",
    "IEaPInst;main;3;102;U32;big;1000;Wh",
    "IPSumInst;main;3;104;S16;big;10;W",
    "IV1Inst;volts;4;0;FLOAT32;swapped;1;V",
]) + "\r\n"
# The TCP server's image: I1 in mA as U32, frequency in 1/100 Hz as U16, Q as S32 in var, a flow as U16 in 0.1 m3/h.
TCP_HOLDING = words(">I", 12345) + words(">H", 5001) + words(">i", -2500) + words(">H", 42) + words(">h", -1234)
TCP_MODEL = {"name": "Chiller PM", "rows": [
    {"name": "II1Inst", "frame": "all", "function": 3, "register": 0, "encoding": "U32", "coefficient": 0.001},
    {"name": "IFreqInst", "frame": "all", "function": 3, "register": 2, "encoding": "U16", "coefficient": 0.01},
    {"name": "IQSumInst", "frame": "all", "function": 3, "register": 3, "encoding": "S32", "coefficient": 1},
    {"name": "Flow", "frame": "all", "function": 3, "register": 5, "encoding": "U16", "coefficient": 0.1,
     "unit": "m3/h"},
    {"name": "ITempInst", "frame": "all", "function": 3, "register": 6, "encoding": "S16", "coefficient": 0.01}]}

# What each front end must read. Modbus normalized table: (gw offset, words, struct format) at the registry's
# gateway scale; SNMP: (table, service ID, integer at the gateway scale); BACnet: (AI instance LLMM, value).
EXPECTED = {
    RTU_ADDRESS: {"web": {"Water temperature": 21.5, "IEaPInst": 12345000.0, "IPSumInst": -1500.0, "IV1Inst": 230.5},
                  "modbus": {"ea_pos": (112, ">Q", 12345000), "p": (42, ">i", -1500), "v1": (8, ">I", 23050)},
                  "snmp": {"ea_pos": (22, 13000, 12345000), "p": (20, 12000, -1500), "v1": (20, 11000, 23050)},
                  "bacnet": {156: 12345000.0, 121: -1500.0, 104: 230.5}},
    TCP_ADDRESS: {"web": {"II1Inst": 12.345, "IFreqInst": 50.01, "IQSumInst": -2500.0, "Flow": 4.2,
                          "ITempInst": -12.34},
                  "modbus": {"i1": (22, ">I", 12345), "freq": (6, ">I", 50010), "q": (44, ">i", -2500)},
                  "snmp": {"i1": (20, 10000, 12345), "freq": (20, 11020, 50010), "q": (20, 12010, -2500)},
                  "bacnet": {111: 12.345, 103: 50.01, 122: -2500.0, 180: -12.34}},
}


async def modbus_read(port, unit, register, count):
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    await client.connect()
    try:
        answer = await client.read_holding_registers(register, count=count, device_id=unit)
        assert not answer.isError(), answer
        return answer.registers
    finally:
        client.close()


async def snmp_get(port, oid):
    rc, out, err = await run("snmpget", "-v2c", "-c", "publicV2", "-r", "1", "-t", "2", "-Oqv",
                             "127.0.0.1:%d" % port, oid)
    assert rc == 0, out + err
    return int(out.strip())


def test_generic_rtu_and_tcp_devices_are_read_like_meters_on_every_front_end(tmp_path):
    tcp_port, modbus_port, snmp_port = free_tcp_port(), free_tcp_port(), free_udp_port()
    bacnet_port = free_udp_port()
    slave = GenericSlave(RTU_ADDRESS, holding=RTU_HOLDING, inputs=RTU_INPUTS)
    settings = {"modbus.port": modbus_port, "modbus.bind": "127.0.0.1", "snmp.enabled": True,
                "snmp.port": snmp_port, "snmp.bind": "127.0.0.1", "bacnet.enabled": True,
                "bacnet.port": bacnet_port, "bacnet.bind": "127.0.0.1", "poll.backoff_max_s": 1,
                "generic.tcp_timeout_ms": 500}
    web = web_server()

    async def scenario():
        async with contextlib.AsyncExitStack() as stack:
            server = await stack.enter_async_context(tcp_device(tcp_port, TCP_UNIT, TCP_HOLDING))
            gw = await stack.enter_async_context(running_gateway(
                tmp_path / "state", topology_with(), settings,
                services=[ModbusTcpService, SnmpService, BacnetService, web],
                prepare_board=lambda board: board.buses["rs485"].add(slave)))
            client = await asyncio.to_thread(web_login, "http://127.0.0.1:%d" % web.server.port, "admin")

            async def get(path):
                return await asyncio.to_thread(client.get, path)

            async def post(path, body):
                return await asyncio.to_thread(client.post, path, body)

            # a malformed CSV: one message per line at fault, nothing imported
            bad = RTU_CSV.replace("IPSumInst;main;3;104;S16", "IPSumInst;main;9;104;S16") \
                         .replace("IV1Inst;volts;4;0;FLOAT32", "IV1Inst;volts;4;0;FLOAT64")
            status, answer = await post("/api/datamodels/import", {"name": "Boiler", "csv": bad})
            assert status == 400, answer
            assert sorted(m["line"] for m in answer["messages"]) == [4, 5], answer
            assert all(m["message"].startswith("Line %d: " % m["line"]) for m in answer["messages"])
            assert (await get("/api/datamodels"))[1]["models"] == []
            # a frame over 125 registers: refused, nothing kept
            too_wide = {"name": "Wide", "rows": [dict(TCP_MODEL["rows"][0]),
                                                 dict(TCP_MODEL["rows"][1], register=125)]}
            status, answer = await post("/api/datamodels", {"model": too_wide})
            assert status == 400 and "125" in answer["messages"][0]["message"], answer
            assert (await get("/api/datamodels"))[1]["models"] == []

            status, answer = await post("/api/datamodels/import", {"name": "Boiler", "csv": RTU_CSV})
            assert status == 200, answer
            status, answer = await post("/api/datamodels", {"model": TCP_MODEL})
            assert status == 200, answer
            status, exported = await get("/api/datamodels/export?name=Boiler")
            assert status == 200 and exported["csv"] == RTU_CSV

            status, answer = await post("/api/devices/generic", {"link": "rtu", "bus": "rs485",
                                                                 "address": RTU_ADDRESS, "model": "Boiler",
                                                                 "name": "Boiler room"})
            assert status == 200, answer
            status, answer = await post("/api/devices/generic", {
                "link": "tcp", "host": "127.0.0.1", "port": tcp_port, "unit": TCP_UNIT, "address": TCP_ADDRESS,
                "model": "Chiller PM", "name": "Chiller"})
            assert status == 200, answer
            status, answer = await post("/api/devices/generic", {"link": "tcp", "host": "no host!", "port": 0,
                                                                 "unit": 1, "address": 61, "model": "Nope"})
            assert status == 400 and {m["field"] for m in answer["messages"]} == {"host", "port", "model"}

            async def all_good(address):
                status, doc = await get("/api/devices/generic/%d" % address)
                return status == 200 and all(v["quality"] == "good" for v in doc["values"])
            for address in (RTU_ADDRESS, TCP_ADDRESS):
                await wait_for_async(lambda a=address: all_good(a))
            bacnet = gw.services[2]
            await wait_for(lambda: bacnet.stack is not None and bacnet.stack.settled()
                           and set(bacnet.stack.meters) == {RTU_ADDRESS, TCP_ADDRESS}, guard=30)
            node = await stack.enter_async_context(NodeBacnet(free_udp_port()))

            for address, expected in EXPECTED.items():
                status, doc = await get("/api/devices/generic/%d" % address)
                seen = dict((v["name"], v["value"]) for v in doc["values"])
                assert seen == expected["web"], (address, seen)
                assert all(v["quality"] == "good" and v["age_s"] is not None for v in doc["values"])
                status, state = await get("/api/status")
                device = next(d for d in state["devices"] if d["address"] == address)
                assert device["status"] == "ok" and all(v["quality"] == "good"
                                                        for v in device["values"]["1"].values())
                for key, (offset, fmt, value) in expected["modbus"].items():
                    got = await modbus_read(modbus_port, address, NORMALIZED_LOAD_1 + offset,
                                            struct.calcsize(fmt) // 2)
                    assert struct.unpack(fmt, struct.pack(">%dH" % len(got), *got))[0] == value, (address, key)
                assert await modbus_read(modbus_port, address, QUALITY_LOAD_1, 1) == [0]
                for key, (table, service, value) in expected["snmp"].items():
                    oid = "%s.%d.1.%d.%d.1" % (SNMP_BASE, table, service, address)
                    assert await snmp_get(snmp_port, oid) == value, (address, key)
                target = {"address": "127.0.0.1:%d" % bacnet.port, "net": NET, "adr": [address]}
                specs = [{"type": ANALOG_INPUT, "instance": instance,
                          "properties": [PROP["present_value"], PROP["status_flags"], PROP["units"]]}
                         for instance in expected["bacnet"]]
                values = rpm_values(await node.call("rpm", target=target, specs=specs))
                for instance, value in expected["bacnet"].items():
                    present = values[(ANALOG_INPUT, instance)][PROP["present_value"]][0]
                    assert abs(present - value) <= abs(value) * 1e-6, (address, instance, present)
                    assert not values[(ANALOG_INPUT, instance)][PROP["status_flags"]][0]["value"][0] & 2
                if address == TCP_ADDRESS:      # a temperature (our MM 80): ASHRAE 135's degrees-Celsius, 62
                    assert values[(ANALOG_INPUT, 180)][PROP["units"]] == [62]
                assert MAIN + address in [MAIN + a for a in bacnet.stack.meters]

            # the TCP server stops: communication lost on every front end, system alarm 3 for that device
            await server.shutdown()
            await wait_for(lambda: gw.cache.comm_lost(TCP_ADDRESS), guard=30)
            assert (3, device_source("tcp", TCP_ADDRESS)) in gw.alarms.active
            status, doc = await get("/api/devices/generic/%d" % TCP_ADDRESS)
            assert {v["quality"] for v in doc["values"]} == {"comm_lost"} and doc["status"] == "comm_lost"
            assert await modbus_read(modbus_port, TCP_ADDRESS, QUALITY_LOAD_1, 1) == [2]
            assert await snmp_get(snmp_port, "%s.20.1.10000.%d.1" % (SNMP_BASE, TCP_ADDRESS)) == 12345
            counters = (await get("/api/status"))[1]
            device = next(d for d in counters["devices"] if d["address"] == TCP_ADDRESS)
            assert device["status"] == "comm_lost" and device["counters"]["timeouts"] >= 1
            # the RTU slave falls silent: the same on its bus
            slave.silent = True
            await wait_for(lambda: gw.cache.comm_lost(RTU_ADDRESS), guard=30)
            assert (3, device_source("rs485", RTU_ADDRESS)) in gw.alarms.active
            assert await modbus_read(modbus_port, RTU_ADDRESS, QUALITY_LOAD_1, 1) == [2]
            # a model a device uses cannot be deleted
            status, answer = await post("/api/datamodels/delete", {"name": "Boiler"})
            assert status == 400 and "Boiler room" in answer["messages"][0]["message"]

    asyncio.run(scenario())


async def wait_for_async(predicate, guard=30.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + guard
    while not await predicate():
        assert loop.time() < end, "condition not reached within %.0f s" % guard
        await asyncio.sleep(0.1)
