"""Auto-detection on the simulated board: FAST vs FULL, conflicts, triggers."""

import asyncio

from conftest import demo_topology, detect, running_gateway, topology_with, wait_for

EXPECTED_DEMO = [
    ("digiware", 4, "I-35", "DC85E9", [(1, "3P+N"), (2, "3P+N"), (3, "3P+N")]),
    ("digiware", 5, "I-35", "DC85EA", [(1, "3P+N"), (2, "3P+N"), (3, "3P+N")]),
    ("digiware", 11, "U-30", "D5038A", []),
    ("digiware", 13, "IO-20", "C0E45C", []),
    ("digiware", 14, "I-35", "DC8601", [(1, "3P+N"), (2, "3P+N")]),
    ("digiware", 15, "IO-10", "C0E45D", []),
    ("rs485", 20, "A-40", "A40001", [(1, "3P+N")]),
    ("rs485", 21, "E23", "E23001", [(1, "3P+N")]),
]


def summary(gateway):
    return [(d.bus, d.address, d.reference, d.netid, [(x["load"], x["network"]) for x in d.loads])
            for d in gateway.topology.devices]


def test_full_detection_finds_the_demo_topology_exactly(tmp_path):
    async def scenario():
        async with running_gateway(tmp_path / "s", demo_topology()) as gw:
            await detect(gw, "full")
            assert summary(gw) == EXPECTED_DEMO
            # the topology was stored and is read back by a new process
            from daemon.state.topology import Topology
            assert [d.as_dict() for d in Topology(str(tmp_path / "s" / "topology.json")).devices] == \
                gw.topology.as_list()
    asyncio.run(scenario())


def test_fast_detection_skips_countis_and_other_diris_a(tmp_path):
    topo = demo_topology()
    topo["buses"]["rs485"]["meters"].append({"reference": "A-10", "address": 22, "netid": "A10001"})
    async def scenario():
        async with running_gateway(tmp_path / "s", topo) as gw:
            await detect(gw, "fast")
            found = summary(gw)
            assert [x[1] for x in found] == [4, 5, 11, 13, 14, 15, 20]   # A-40 yes, E23 and A-10 no
            await detect(gw, "full")
            assert [x[1] for x in summary(gw)] == [4, 5, 11, 13, 14, 15, 20, 21, 22]
    asyncio.run(scenario())


def test_two_meters_on_one_address_are_given_their_own_addresses(tmp_path):
    topo = topology_with([
        {"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 1},
        {"reference": "I-35", "address": 4, "netid": "DC85EA", "loads": 1},
        {"reference": "IO-10", "address": 6, "netid": "C0E45D"},
    ])
    async def scenario():
        async with running_gateway(tmp_path / "s", topo) as gw:
            raised = []
            gw.alarms.on_event(lambda r: raised.append((r["alarm"], r["event"], r["source"])))
            await detect(gw, "fast")
            assert (4, "raised", "digiware:4") in raised
            assert (4, "cleared", "digiware:4") in raised
            assert not any(n == 4 for n, _s in gw.alarms.active)
            devices = dict((d.netid, d.address) for d in gw.topology.devices)
            assert set(devices) == {"DC85E9", "DC85EA", "C0E45D"}
            assert len(set(devices.values())) == 3 and devices["C0E45D"] == 6
            assert devices["DC85E9"] == 4                     # lowest NET ID keeps the address
            moved = gw.board.find_meter(netid=0xDC85EA)
            assert moved.address == devices["DC85EA"] != 4
            # both are polled at their own address now
            await wait_for(lambda: gw.cache.get(devices["DC85EA"], 1, "i1").quality == "good")
            await wait_for(lambda: gw.cache.get(4, 1, "i1").quality == "good")
    asyncio.run(scenario())


def test_addr_button_held_three_seconds_starts_detection(tmp_path):
    async def scenario():
        async with running_gateway(tmp_path / "s", demo_topology()) as gw:
            gw.board.press_button(1.0)                        # a short press does nothing
            await asyncio.sleep(0.1)
            assert gw.discovery.state == "idle"
            gw.board.press_button(3.2)
            await wait_for(lambda: gw.discovery.state == "done", guard=60)
            assert gw.discovery.mode == "fast" and len(gw.topology.devices) == 7
    asyncio.run(scenario())


def test_progress_is_reported_while_scanning(tmp_path):
    async def scenario():
        async with running_gateway(tmp_path / "s", demo_topology()) as gw:
            seen = []
            gw.discovery.start("full")
            while gw.discovery.running():
                seen.append(gw.discovery.status()["progress"])
                await asyncio.sleep(0.05)
            assert seen == sorted(seen) and 0 < len(set(seen)) and gw.discovery.progress == 1.0
            assert any(0 < p < 1 for p in seen)
            try:
                gw.discovery.start("bogus")
            except ValueError:
                pass
            else:
                raise AssertionError("an unknown mode must be refused")
            assert gw.discovery.state == "done"
    asyncio.run(scenario())
