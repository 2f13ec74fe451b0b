"""Informs (snmp.trap.mode = inform): acknowledged by net-snmp's snmptrapd, or timed out after the retries.

A meter goes silent, system alarm 3 is raised and gwAlarmRaised leaves as an
InformRequest. snmptrapd acknowledges informs, so the agent's status counts
it acknowledged (v2c and v3: SNMPv3 informs go to the receiver's own engine,
which pysnmp discovers). A receiver that never answers sees every inform
1 + retries times, and the agent counts it timed out.
"""

import asyncio

import pytest

from conftest import wait_for
from protocols.snmp import engine
from snmp_support import OF_5, RAISED, SILENT_NETID, Site, TrapReceiver

V3_INFORM_USER = ("createUser control SHA Control-2024 AES Control-2024\n"     # the receiver's own engine ID
                  "authUser log control priv\n")


def _informs(site):
    return site.service.status()["informs"]


@pytest.mark.parametrize("version", ["v2c", "v3"])
def test_inform_of_a_system_alarm_is_acknowledged(tmp_path, version):
    async def body():
        rx = TrapReceiver(tmp_path)
        if version == "v3":
            (rx.dir / "snmptrapd.conf").write_text(V3_INFORM_USER)
        async with rx:
            settings = {"snmp.trap.host1": "127.0.0.1", "snmp.trap.port1": rx.port, "snmp.trap.mode": "inform",
                        "snmp.trap.version": version}
            async with Site(tmp_path, settings) as s:
                assert s.service.status()["notify_types"] == {"127.0.0.1:%d" % rx.port: "inform"}
                s.gw.board.configure_meter(SILENT_NETID, silent=True)
                await wait_for(lambda: rx.count(RAISED, **OF_5) >= 1)
                await wait_for(lambda: _informs(s)["acknowledged"] >= 1 and _informs(s)["pending"] == 0)
                informs = _informs(s)
                assert informs["acknowledged"] == informs["sent"] and informs["timed_out"] == 0, informs
                assert rx.count(RAISED, **OF_5) == 1          # acknowledged at once: never re-sent
    asyncio.run(body())


class Silent(asyncio.DatagramProtocol):
    """A receiver on loopback that reads and never answers (closed on leaving ``async with``); it binds
    port 0 and ``port`` is the one it got."""

    def __init__(self):
        self.port = None
        self.datagrams = 0
        self.transport = None

    async def __aenter__(self):
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    async def __aexit__(self, *exc):
        self.transport.close()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.datagrams += 1


def test_inform_without_answer_is_retried_then_counted_timed_out(tmp_path):
    async def body():
        retries = 2
        async with Silent() as sink:
            settings = {"snmp.trap.host1": "127.0.0.1", "snmp.trap.port1": sink.port, "snmp.trap.mode": "inform",
                        "snmp.trap.inform_timeout_s": 1, "snmp.trap.inform_retries": retries}
            async with Site(tmp_path, settings) as s:
                s.gw.board.configure_meter(SILENT_NETID, silent=True)
                await wait_for(lambda: _informs(s)["timed_out"] >= 1 and _informs(s)["pending"] == 0, guard=60)
                informs = _informs(s)
                assert informs["acknowledged"] == 0 and informs["timed_out"] == informs["sent"], informs
                assert sink.datagrams == informs["sent"] * (1 + retries)
                assert s.service.status()["traps_sent"]["gwAlarmRaised"] == 1
    asyncio.run(body())


def test_v1_receivers_get_traps_even_in_inform_mode(tmp_path):
    async def body():
        async with TrapReceiver(tmp_path) as rx:
            settings = {"snmp.trap.host1": "127.0.0.1", "snmp.trap.port1": rx.port, "snmp.trap.mode": "inform",
                        "snmp.trap.version": "v1"}
            async with Site(tmp_path, settings) as s:
                assert s.service.status()["notify_types"] == {"127.0.0.1:%d" % rx.port: "trap"}
                s.gw.board.configure_meter(SILENT_NETID, silent=True)
                await wait_for(lambda: rx.count(RAISED, **OF_5) == 1)
                assert "TRAP, SNMP v1, community trap" in rx.log.read_text()
                assert _informs(s)["sent"] == 0
    asyncio.run(body())


# (trap version, mode, receiver) -> what it gets: v1 has no inform, nobody acknowledges a broadcast.
NOTIFY_TYPES = (
    ("v2c", "trap", "127.0.0.1", "trap"),
    ("v2c", "inform", "127.0.0.1", "inform"),
    ("v3", "inform", "127.0.0.1", "inform"),
    ("v1", "inform", "127.0.0.1", "trap"),
    ("v2c", "inform", engine.BROADCAST, "trap"),
    ("v3", "inform", engine.BROADCAST, "trap"),
)


def test_what_each_receiver_gets():
    for version, mode, host, expected in NOTIFY_TYPES:
        config = {"snmp.trap.version": version, "snmp.trap.mode": mode}
        assert engine.notify_type(config, host) == expected, (version, mode, host)
