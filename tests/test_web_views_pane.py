"""The data views' left pane (issue 17): GET /api/views/tree groups the demo site as the manual's Organisation
heading does (by area, usage, fluid), with each group's number of loads, and refuses an unknown organisation.

The expected loads are counted from the demo topology file (board/topologies/demo.json), not from the tree code.
"""

import asyncio
import json

import pytest
from conftest import (DEMO_TOPOLOGY, commission_accounts, demo_devices, demo_topology, running_gateway, web_login,
                      web_server)

from daemon.security.rights import Caller


def demo_loads():
    """{address: loads} of the demo file: a meter without "loads" measures one load when it is a meter (A-40,
    E23), none when it is a network (U-30) or an IO module."""
    with open(DEMO_TOPOLOGY, encoding="utf-8") as handle:
        doc = json.load(handle)
    out = {}
    for bus in doc["buses"].values():
        for meter in bus["meters"]:
            out[meter["address"]] = meter.get("loads", 1 if meter["reference"] in ("A-40", "E23") else 0)
    return out


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp("pane")
    web = web_server()
    out = {}

    async def scenario():
        commission_accounts(str(base / "state"))
        async with running_gateway(base / "state", demo_topology(), services=[web]) as gw:
            await gw.topology.replace(demo_devices())
            admin = gw.door(Caller("web", "admin"))
            circuits = admin.circuits()
            name = next(c for c in circuits if c["address"] == 4 and c["load"] == 2)
            await admin.edit_circuits({"loads": [{"address": 4, "load": 2}], "name": "Chiller feed",
                                       "fluid": "cold", "usage": name["usage"]})
            base_url = "http://127.0.0.1:%d" % web.server.port
            client = await asyncio.to_thread(web_login, base_url, "user", "fr")
            for by in ("area", "usage", "fluid"):
                out[by] = (await asyncio.to_thread(client.get, "/api/views/tree?lang=fr&by=" + by))[1]
            out["bad"] = await asyncio.to_thread(client.get, "/api/views/tree?by=colour")
            anonymous = type(client)(base_url)       # what User sees needs no password (SPEC §7.1): no session
            out["anonymous"] = await asyncio.to_thread(anonymous.get, "/api/views/tree")
    asyncio.run(scenario())
    return out


@pytest.mark.parametrize("by", ["area", "usage", "fluid"])
def test_every_load_of_the_site_is_counted_once_whatever_the_organisation(trees, by):
    loads = demo_loads()
    tree = trees[by]
    assert tree["by"] == by
    counted = sum(group["loads"] for group in tree["groups"])
    assert counted == sum(loads.values())
    for group in tree["groups"]:
        assert group["loads"] == sum(len(d["loads"]) for d in group["devices"])
    addresses = sorted(set(d["address"] for g in tree["groups"] for d in g["devices"]))
    assert addresses == sorted(loads)               # devices without loads (U-30, IO modules) are reachable too


def test_groups_are_labelled_in_the_readers_language(trees):
    fluids = dict((g["key"], g) for g in trees["fluid"]["groups"])
    assert fluids["cold"]["label"] == "Froid" and fluids["cold"]["loads"] == 1
    assert [load["name"] for d in fluids["cold"]["devices"] for load in d["loads"]] == ["Chiller feed"]
    no_load = [g for g in trees["usage"]["groups"] if g["key"] == "-"]
    assert no_load and no_load[0]["label"] == "Équipements sans charge"
    assert {d["reference"] for d in no_load[0]["devices"]} == {"U-30", "IO-20", "IO-10"}


def test_an_unknown_organisation_is_refused_and_the_default_is_by_area_in_english(trees):
    status, answer = trees["bad"]
    assert status == 400 and answer["reason"] == "bad_request"
    status, answer = trees["anonymous"]
    assert status == 200 and answer["by"] == "area"
    assert [g["label"] for g in answer["groups"] if g["key"] == ""] == ["No area"]
