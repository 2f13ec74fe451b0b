"""One device summary: every front end says the same about a meter, read by independent clients.

A meter is put into each state the gateway knows — ok, stale, communication
lost, address conflict — and the Modbus gateway table (read with mbpoll),
SNMP's device table (net-snmp's snmpget with our MIB, which names the enum
label), BACnet's Device System_Status / Status_Flags / Reliability and an
Analog Input's Reliability (the Node.js client; numbers from ASHRAE 135's
enumerations) and ``/api/status`` must agree.

Then one value goes through the qualities of SPEC §2 in order — good →
stale → communication lost → good — and each front end's quality of that
value (the Modbus normalized table's quality word, SNMP gwLoadQuality,
the AI's Status_Flags and Reliability, ``/api/status`` values[].quality) is
read at each step; the gateway's own transitions are counted.
"""

import asyncio
import contextlib

from bacnet_support import MAIN, NET
from bacnet_peer import ANALOG_INPUT, DEVICE, PROP, NodeBacnet, rpm_values
from board.base import ManualClock
from conftest import (demo_devices, demo_topology, free_tcp_port, free_udp_port, http_json, mbpoll,
                      parse_mbpoll, running_gateway, wait_for, web_server)
from daemon.security.rights import Caller
from daemon.state.alarms import device_source
from protocols.bacnet import BacnetService
from protocols.modbus.tables import METER_QUALITY_BASE
from protocols.modbus.tcp import ModbusTcpService
from protocols.snmp import mibdef
from protocols.snmp.agent import SnmpService
from snmp_support import mib_path, run

T0 = 1_700_000_000.0
ALARM_CONFLICT = 4                      # SPEC §6: Modbus address conflict

# What each front end shows for each state. Modbus: docs/modbus-register-map (0x0100 + address);
# SNMP: the GwDeviceStatus label net-snmp prints; BACnet (ASHRAE 135): System_Status operational 0 /
# non-operational 4, Status_Flags fault bit, Reliability no-fault-detected 0, unreliable-other 7,
# configuration-error 10, communication-failure 12.
EXPECTED = {
    "ok":        {"modbus": 1, "snmp": "ok(1)",       "system_status": 0, "fault": False, "reliability": 0},
    "stale":     {"modbus": 2, "snmp": "stale(5)",    "system_status": 0, "fault": True, "reliability": 7},
    "comm_lost": {"modbus": 3, "snmp": "commLost(2)", "system_status": 4, "fault": True, "reliability": 12},
    "conflict":  {"modbus": 4, "snmp": "conflict(3)", "system_status": 4, "fault": True, "reliability": 10},
}
# One Analog Input per meter the test watches: (address, AI instance LLMM)
WATCHED = {4: 111, 5: 111, 11: 4}       # I-35 I1 of load 1, I-35 I1 of load 1, U-30 V1 (load 0)
U30, I35_AT_5 = 0xD5038A, 0xDC85EA


class AllFrontEnds:
    """The demo site with Modbus TCP, SNMP, BACnet and the web on loopback, and the clients."""

    def __init__(self, tmp_path, clock):
        self.tmp_path, self.clock = tmp_path, clock
        self.modbus_port, self.snmp_port = free_tcp_port(), free_udp_port()
        self.bacnet_port, self.http_port = free_udp_port(), free_tcp_port()

    async def __aenter__(self):
        settings = {"modbus.port": self.modbus_port, "modbus.bind": "127.0.0.1",
                    "snmp.enabled": True, "snmp.port": self.snmp_port, "snmp.bind": "127.0.0.1",
                    "bacnet.enabled": True, "bacnet.port": self.bacnet_port, "bacnet.bind": "127.0.0.1",
                    "poll.backoff_max_s": 1}
        self._stack = contextlib.AsyncExitStack()
        self.gw = await self._stack.enter_async_context(running_gateway(
            self.tmp_path / "state", demo_topology(), settings, clock=self.clock,
            services=[ModbusTcpService, SnmpService, BacnetService, web_server(self.http_port)]))
        await self.gw.topology.replace(demo_devices())
        await wait_for(lambda: all(p.cycles >= 2 for p in self.gw.pollers.values()), guard=30)
        bacnet = self.gw.services[2]
        await wait_for(lambda: bacnet.stack is not None and bacnet.stack.settled()
                       and len(bacnet.stack.meters) == len(demo_devices()))
        self.node = await self._stack.enter_async_context(NodeBacnet(free_udp_port()))
        return self

    async def __aexit__(self, *exc):
        return await self._stack.__aexit__(*exc)

    async def modbus(self, address):
        proc = await asyncio.to_thread(mbpoll, "-m", "tcp", "-p", self.modbus_port, "-a", 1,
                                       "-r", METER_QUALITY_BASE + address, "-c", 1, "127.0.0.1")
        assert proc.returncode == 0, proc.stderr
        return parse_mbpoll(proc.stdout)[METER_QUALITY_BASE + address]

    async def snmp(self, address):
        name = "%s::gwDevStatus.%d" % (mibdef.MIB_NAME, address)
        rc, out, err = await run("snmpget", "-m", "+" + mibdef.MIB_NAME, "-M", "+" + mib_path(), "-v2c", "-c",
                                 "publicV2", "-r", "1", "-t", "2", "127.0.0.1:%d" % self.snmp_port, name)
        assert rc == 0 and out.startswith(name + " = INTEGER: "), out + err
        return out.strip().split("INTEGER: ")[1]

    async def bacnet(self, address):
        """(System_Status, fault flag, Device Reliability, watched AI's Reliability) over the wire."""
        target = {"address": "127.0.0.1:%d" % self.bacnet_port, "net": NET, "adr": [address]}
        device = (DEVICE, MAIN + address)
        specs = [{"type": DEVICE, "instance": MAIN + address,
                  "properties": [112, PROP["status_flags"], PROP["reliability"]]},      # 112: System_Status
                 {"type": ANALOG_INPUT, "instance": WATCHED[address], "properties": [PROP["reliability"]]}]
        values = rpm_values(await self.node.call("rpm", target=target, specs=specs))
        flags = values[device][PROP["status_flags"]][0]["value"][0]
        return (values[device][112][0], bool(flags & 2), values[device][PROP["reliability"]][0],
                values[(ANALOG_INPUT, WATCHED[address])][PROP["reliability"]][0])

    async def web(self, address):
        status, doc = await asyncio.to_thread(http_json, "http://127.0.0.1:%d/api/status" % self.http_port)
        assert status == 200
        return next(d["status"] for d in doc["devices"] if d["address"] == address)

    def state(self, address):
        return self.gw.door(Caller("web", "user")).device_summary(address).state

    async def check(self, states):
        """Every front end shows ``states`` ({address: state}).

        A loaded machine can make a simulated meter miss a poll (a short frame), which is a
        real, brief comm_lost: the front ends are compared while the gateway's own summary
        holds the wanted state from before the first read to after the last, else read again.
        """
        for address, state in states.items():
            want = EXPECTED[state]
            expected = {"modbus": want["modbus"], "snmp": want["snmp"],
                        "bacnet": (want["system_status"], want["fault"], want["reliability"], want["reliability"]),
                        "web": state}
            for _attempt in range(5):
                await wait_for(lambda: self.state(address) == state, guard=30)
                seen = {"modbus": await self.modbus(address), "snmp": await self.snmp(address),
                        "bacnet": await self.bacnet(address), "web": await self.web(address)}
                if self.state(address) == state:
                    break
            assert seen == expected, (address, state, seen)


def test_every_front_end_says_the_same_in_every_state(tmp_path):
    clock = ManualClock(T0)

    async def scenario():
        async with AllFrontEnds(tmp_path, clock) as site:
            gw = site.gw
            await site.check({4: "ok", 5: "ok", 11: "ok"})

            # communication lost: the U-30 stops answering
            gw.board.configure_meter(U30, silent=True)
            await wait_for(lambda: gw.cache.comm_lost(11), guard=30)
            # address conflict on the I-35 at 5, as detection reports it (system alarm 4 for its source)
            gw.alarms.set(ALARM_CONFLICT, device_source("digiware", 5), True, "two NET IDs answer at 5")
            await site.check({4: "ok", 5: "conflict", 11: "comm_lost"})

            # stale: the pollers pause after their cycle (a one-hour minimum cycle), the clock moves a minute on
            await gw.settings.set_many({"poll.min_cycle_ms": 3_600_000})
            cycles = dict((bus, p.cycles) for bus, p in gw.pollers.items())
            await wait_for(lambda: all(p.cycles > cycles[bus] for bus, p in gw.pollers.items()), guard=30)
            clock.advance(60)
            await site.check({4: "stale", 5: "conflict", 11: "comm_lost"})
    asyncio.run(scenario())


# The quality of one value (I1 of load 1 of the I-35 at address 4) as each front end shows it, by SPEC §2 quality.
# Modbus: docs/modbus-register-map.md, normalized table, quality word of load L at 0x10C6 + 200 x L (0 good,
# 1 stale, 2 comm_lost); SNMP: the GwQuality label net-snmp prints for gwLoadQuality.<address>.<load>;
# BACnet (ASHRAE 135): Status_Flags fault bit, Reliability no-fault-detected 0, unreliable-other 7,
# communication-failure 12; /api/status: values["1"]["i1"]["quality"].
VALUE_ADDRESS, VALUE_LOAD, VALUE_KEY, VALUE_AI = 4, 1, "i1", 111
LOAD_1_QUALITY_REGISTER = 0x10C6 + 200
I35_AT_4 = 0xDC85E9
VALUE_EXPECTED = {
    "good":      {"modbus": 0, "snmp": "good(1)",     "bacnet": (False, 0),  "web": "good"},
    "stale":     {"modbus": 1, "snmp": "stale(2)",    "bacnet": (True, 7),   "web": "stale"},
    "comm_lost": {"modbus": 2, "snmp": "commLost(3)", "bacnet": (True, 12),  "web": "comm_lost"},
}


class ValueQuality(AllFrontEnds):
    """The quality of one value, from each front end."""

    def quality(self):
        return self.gw.door(Caller("web", "user")).reading(VALUE_ADDRESS, VALUE_LOAD, VALUE_KEY).quality

    async def seen(self):
        register = LOAD_1_QUALITY_REGISTER
        proc = await asyncio.to_thread(mbpoll, "-m", "tcp", "-p", self.modbus_port, "-a", VALUE_ADDRESS,
                                       "-r", register, "-c", 1, "127.0.0.1")
        assert proc.returncode == 0, proc.stderr
        modbus = parse_mbpoll(proc.stdout)[register]
        name = "%s::gwLoadQuality.%d.%d" % (mibdef.MIB_NAME, VALUE_ADDRESS, VALUE_LOAD)
        rc, out, err = await run("snmpget", "-m", "+" + mibdef.MIB_NAME, "-M", "+" + mib_path(), "-v2c", "-c",
                                 "publicV2", "-r", "1", "-t", "2", "127.0.0.1:%d" % self.snmp_port, name)
        assert rc == 0 and out.startswith(name + " = INTEGER: "), out + err
        snmp = out.strip().split("INTEGER: ")[1]
        target = {"address": "127.0.0.1:%d" % self.bacnet_port, "net": NET, "adr": [VALUE_ADDRESS]}
        specs = [{"type": ANALOG_INPUT, "instance": VALUE_AI,
                  "properties": [PROP["status_flags"], PROP["reliability"]]}]
        values = rpm_values(await self.node.call("rpm", target=target, specs=specs))[(ANALOG_INPUT, VALUE_AI)]
        bacnet = (bool(values[PROP["status_flags"]][0]["value"][0] & 2), values[PROP["reliability"]][0])
        status, doc = await asyncio.to_thread(http_json, "http://127.0.0.1:%d/api/status" % self.http_port)
        assert status == 200
        device = next(d for d in doc["devices"] if d["address"] == VALUE_ADDRESS)
        web = device["values"][str(VALUE_LOAD)][VALUE_KEY]["quality"]
        return {"modbus": modbus, "snmp": snmp, "bacnet": bacnet, "web": web}

    async def check(self, quality):
        """Every front end shows ``quality``, read while the gateway holds it from before to after the reads
        (a poll a loaded machine misses is a real, brief comm_lost while the pollers run)."""
        for _attempt in range(5):
            await wait_for(lambda: self.quality() == quality, guard=30)
            seen = await self.seen()
            if self.quality() == quality:
                break
        assert seen == VALUE_EXPECTED[quality], (quality, seen)
        return seen


async def restart_poller(gw, bus):
    """Let a poller paused by a long poll.min_cycle_ms run one cycle now."""
    poller = gw.pollers[bus]
    await poller.stop()
    poller.start()


def test_one_value_goes_good_stale_comm_lost_good_on_every_front_end(tmp_path):
    clock = ManualClock(T0)

    async def scenario():
        async with ValueQuality(tmp_path, clock) as site:
            gw = site.gw
            observed = {"modbus": [], "snmp": [], "bacnet": [], "web": []}

            def note(seen):
                for front, value in seen.items():
                    if not observed[front] or observed[front][-1] != value:
                        observed[front].append(value)
            note(await site.check("good"))

            # the pollers pause after their cycle (a one-hour minimum cycle): from here on every change of
            # the value's quality is one the test makes, and each is recorded by a watcher of the door
            await gw.settings.set_many({"poll.min_cycle_ms": 3_600_000})
            cycles = dict((bus, p.cycles) for bus, p in gw.pollers.items())
            await wait_for(lambda: all(p.cycles > cycles[bus] for bus, p in gw.pollers.items()), guard=30)
            transitions = [site.quality()]
            assert transitions == ["good"]

            async def watch():
                while True:
                    quality = site.quality()
                    if quality != transitions[-1]:
                        transitions.append(quality)
                    await asyncio.sleep(0.005)
            watcher = asyncio.get_running_loop().create_task(watch())
            try:
                clock.advance(60)                                 # answers, but nothing was read for a minute
                note(await site.check("stale"))
                gw.board.configure_meter(I35_AT_4, silent=True)   # then it stops answering
                await restart_poller(gw, "digiware")
                note(await site.check("comm_lost"))
                gw.board.configure_meter(I35_AT_4, silent=False)  # and answers again
                await gw.settings.set_many({"poll.min_cycle_ms": 0})
                await restart_poller(gw, "digiware")
                await wait_for(lambda: transitions[-1] == "good", guard=30)
            finally:
                watcher.cancel()
            assert transitions == ["good", "stale", "comm_lost", "good"]        # 3 transitions, none more
            note(await site.check("good"))
            order = ["good", "stale", "comm_lost", "good"]
            assert observed == dict((front, [VALUE_EXPECTED[q][front] for q in order]) for front in observed)
    asyncio.run(scenario())
