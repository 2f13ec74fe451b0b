"""The security policy at the protocols, through independent clients on one running gateway (SPEC §8, issue 15).

One gateway runs the five front ends that can write to a meter: Modbus TCP (pymodbus), the RS485 port as
Modbus RTU slave (pymodbus serial client over the simulated null-modem), SNMP (net-snmp's snmpset), BACnet/IP
(the Node.js @bacnet-js/client) and the web (HTTP as the Admin). One table says how each writes the IO-10's
output 1 and how its protocol says "refused": with *Modbus write* off every path is refused and the meter
(the simulated IO-10 itself) is unchanged; switched on, every path's write lands in the meter at once.
The policy page's SNMP switch closes the SNMP port at once: snmpget then gets no answer.
"""

import asyncio
import contextlib

from pymodbus.client import AsyncModbusTcpClient, ModbusSerialClient
from pymodbus.pdu import ExceptionResponse

import bacnet_support  # noqa: F401,I001 (first: it puts tests/bacnet on the path)
from bacnet_peer import BINARY_OUTPUT, BINARY_PV_TAG, PROP, BacnetError, NodeBacnet
from conftest import (commission_accounts, demo_devices, demo_topology, free_udp_port, running_gateway, wait_for,
                      web_login, web_server)
from core import catalogue
from protocols.bacnet import BacnetService
from protocols.modbus.rtu_slave import RtuSlaveService
from protocols.modbus.tcp import ModbusTcpService
from protocols.snmp.agent import SnmpService
from snmp_support import Site as SnmpSite, run as snmp_run
from test_snmp import oid_of

IO10 = 15                                           # the demo site's IO-10
SLAVE_ADDRESS = 7
SETTINGS = {"modbus.port": 0, "modbus.bind": "127.0.0.1",
            "snmp.enabled": True, "snmp.port": 0, "snmp.bind": "127.0.0.1",
            "bacnet.enabled": True, "bacnet.port": 0, "bacnet.bind": "127.0.0.1",
            "bus.rs485.mode": "slave", "bus.rs485.address": SLAVE_ADDRESS, "poll.backoff_max_s": 1}


class WireSite:
    """The demo site with every front end running on loopback; ``service(name)``: the running service."""

    def __init__(self, tmp_path):
        self.state_dir = tmp_path / "state"

    async def __aenter__(self):
        commission_accounts(str(self.state_dir))
        topology = demo_topology()
        topology["buses"]["rs485"] = {"upstream": True}
        self.web = web_server()
        async with contextlib.AsyncExitStack() as stack:
            self.gw = await stack.enter_async_context(running_gateway(
                self.state_dir, topology, SETTINGS,
                services=[ModbusTcpService, RtuSlaveService, SnmpService, BacnetService, self.web]))
            await self.gw.topology.replace([d for d in demo_devices() if d.bus == "digiware"])
            await wait_for(lambda: self.gw.pollers["digiware"].cycles >= 2, guard=30)
            await wait_for(lambda: all(getattr(s, "running", True) for s in self.gw.services))
            bacnet = self.service("bacnet")
            await wait_for(lambda: bacnet.stack is not None and bacnet.stack.settled() and bacnet.stack.meters)
            self.node = await stack.enter_async_context(NodeBacnet(free_udp_port()))
            self.admin = await asyncio.to_thread(web_login, self.base, "admin")
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc):
        return await self._stack.__aexit__(*exc)

    def service(self, name):
        return next(s for s in self.gw.services if s.name == name)

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.web.server.port

    @property
    def io10(self):
        return self.gw.board.find_meter(address=IO10)


# ---------------------------------------------------------------- each path's write of out_1 and its refusal
# A writer returns None when the write was accepted, else the refusal as its protocol reports it.

async def modbus_tcp(site, value):
    client = AsyncModbusTcpClient("127.0.0.1", port=site.service("modbus").status()["port"], timeout=5, retries=0)
    assert await client.connect()
    try:
        rr = await client.write_register(catalogue.IO_OUTPUT_REGISTER, value, device_id=IO10)
    finally:
        client.close()
    return "exception %d" % rr.exception_code if isinstance(rr, ExceptionResponse) else None


async def rtu_slave(site, value):
    def session():
        client = ModbusSerialClient(site.gw.board.peer_path("rs485"), baudrate=38400, parity="N", stopbits=1,
                                    timeout=2, retries=0)
        assert client.connect()
        try:
            return client.write_register(catalogue.IO_OUTPUT_REGISTER, value, device_id=IO10)
        finally:
            client.close()
    rr = await asyncio.to_thread(session)
    return "exception %d" % rr.exception_code if isinstance(rr, ExceptionResponse) else None


async def snmp_set(site, value):
    target = "127.0.0.1:%d" % site.service("snmp").port
    rc, out, err = await snmp_run("snmpset", "-On", "-OQ", "-v2c", "-c", "privateV2", "-r", "1", "-t", "2",
                                  target, oid_of("out_1", IO10, 0), "u", str(value))
    return None if rc == 0 else out + err


async def bacnet_write(site, value):
    target = {"address": "127.0.0.1:%d" % site.service("bacnet").port, "net": 1000, "adr": [IO10]}
    try:
        await site.node.call("wp", target=target, type=BINARY_OUTPUT, instance=1, property=PROP["present_value"],
                             tag=BINARY_PV_TAG, value=value, priority=8)
    except BacnetError as exc:
        return str(exc)
    return None


async def web_write(site, value):
    status, answer = await asyncio.to_thread(site.admin.post, "/api/devices/%d/0/out_1" % IO10, {"value": value})
    return None if status == 200 else "%d %s: %s" % (status, answer.get("reason"), answer.get("error"))


# path: (writer, the refusal as that protocol says "not allowed")
PATHS = {
    "modbus_tcp": (modbus_tcp, "exception 1"),                               # ILLEGAL FUNCTION
    "rtu_slave": (rtu_slave, "exception 1"),
    "snmp_set": (snmp_set, "noAccess"),                                      # net-snmp's name of the error status
    "bacnet_write_property": (bacnet_write, "Class:2 - Code:40"),            # property / write-access-denied
    "web": (web_write, "403 policy: writes to devices are disabled by the security policy"),
}


def test_modbus_write_policy_is_enforced_on_every_path_at_once(tmp_path):
    async def scenario():
        async with WireSite(tmp_path) as site:
            io10 = site.io10
            assert io10.outputs & 1 == 0
            for path, (write, refusal) in PATHS.items():
                answer = await write(site, 1)
                assert answer is not None and refusal in answer, (path, answer)
                assert io10.outputs & 1 == 0, path                           # the meter itself unchanged
            await site.gw.settings.set_many({"policy.modbus_write": True})
            for path, (write, _refusal) in PATHS.items():
                assert await write(site, 1) is None, path
                assert io10.outputs & 1 == 1, path
                assert await write(site, 0) is None, path
                assert io10.outputs & 1 == 0, path
            await site.gw.settings.set_many({"policy.modbus_write": False})      # and off again, at once
            for path, (write, refusal) in PATHS.items():
                answer = await write(site, 1)
                assert answer is not None and refusal in answer, (path, answer)
            assert io10.outputs & 1 == 0
    asyncio.run(scenario())


class SnmpWebSite(SnmpSite):
    """The SNMP agent on loopback with the web beside it (the policy page's requests)."""

    async def __aenter__(self):
        commission_accounts(str(self.state_dir))
        self.web = web_server()
        async with contextlib.AsyncExitStack() as stack:
            self.gw = await stack.enter_async_context(running_gateway(
                self.state_dir, demo_topology(), self.settings, services=[SnmpService, self.web]))
            self.service = self.gw.services[0]
            await wait_for(lambda: self.service.running)
            self._stack = stack.pop_all()
        return self


def test_the_policy_page_switch_closes_the_snmp_port(tmp_path):
    """Cyber Security turns SNMP off with the policy page's request: the agent's port stops answering."""
    sys_name = "1.3.6.1.2.1.1.5.0"

    async def scenario():
        async with SnmpWebSite(tmp_path) as s:
            cyber = await asyncio.to_thread(web_login, "http://127.0.0.1:%d" % s.web.server.port, "cyber")
            port = s.port
            rc, _values, text = await s.get(s.v2c(), sys_name)
            assert rc == 0, text
            status, answer = await asyncio.to_thread(cyber.post, "/api/settings", {"policy.snmp": False})
            assert status == 200, answer
            await wait_for(lambda: not s.service.running)
            rc, out, err = await snmp_run("snmpget", "-On", "-v2c", "-c", "publicV2", "-r", "0", "-t", "1",
                                          "127.0.0.1:%d" % port, sys_name)
            assert rc != 0 and "Timeout" in out + err, out + err
            status, answer = await asyncio.to_thread(cyber.post, "/api/settings", {"policy.snmp": True})
            assert status == 200, answer
            await wait_for(lambda: s.service.running)
            rc, _values, text = await s.get(s.v2c(), sys_name)
            assert rc == 0, text
    asyncio.run(scenario())
