"""The Devices pages' JSON API (issue 14, SPEC §7.2, WEBVIEW-M §9.6): Sources, Circuits, Usages, on a real gateway.

The gateway runs the simulated demo site with the web server on a loopback
port; the clients are real HTTP clients (``conftest.WebClient``) logged in
through the real routes, run in threads while the gateway's loop serves.
Every refusal is checked twice: its answer (status, one message per field)
and the topology file's bytes, which must not change. What a change did is
read back through ``/api/status`` (what every other front end maps).
"""

import asyncio
import contextlib
import http.client
import json
import os

from conftest import (WebClient, demo_devices, demo_topology, running_gateway, wait_for, web_login,
                      web_server)

SETTINGS = {"alarms.check_s": 3600, "poll.backoff_max_s": 1, "discovery.last_address": 24}
HAND_ADDED = 14             # the demo's I-35 with 2 loads: left out of the preset topology, added by hand


@contextlib.asynccontextmanager
async def site(tmp_path, overrides=None, preset=None):
    """The demo site (less the I-35 at 14) with the web server; yields (gateway, base URL)."""
    web = web_server()
    settings = dict(SETTINGS)
    settings.update(overrides or {})
    async with running_gateway(tmp_path / "state", demo_topology(), settings, services=[web]) as gw:
        devices = [d for d in demo_devices() if d.address != HAND_ADDED] if preset is None else preset
        await gw.topology.replace(devices)
        yield gw, "http://127.0.0.1:%d" % web.server.port


def call(fn, *args):
    return asyncio.to_thread(fn, *args)


def topology_bytes(gw):
    with open(gw.topology.path, "rb") as handle:
        return handle.read()


def status_devices(client):
    status, answer = client.get("/api/status")
    assert status == 200, answer
    return dict((d["address"], d) for d in answer["devices"])


def page_get(base, path, cookie):
    """(status, body, headers) of a page, redirects not followed (a browser would go to the login page)."""
    connection = http.client.HTTPConnection(base.split("//")[1], timeout=30)
    try:
        connection.request("GET", path, headers={"Cookie": "m70_session=%s" % cookie} if cookie else {})
        response = connection.getresponse()
        return response.status, response.read(), response.headers
    finally:
        connection.close()


def fields_of(answer):
    return dict((m["field"], m["message"]) for m in answer.get("messages", []))


# every route of the pages, with a body that would change something if it were accepted
CHANGES = [
    ("POST", "/api/devices/sources", {"bus": "digiware", "address": 14, "reference": "I-35", "name": "X"}),
    ("POST", "/api/devices/sources/4", {"name": "Renamed"}),
    ("POST", "/api/devices/sources/delete", {"addresses": [4]}),
    ("POST", "/api/devices/sources/refresh", {}),
    ("POST", "/api/devices/circuits", {"loads": [{"address": 4, "load": 1}], "usage": "Heating"}),
    ("POST", "/api/devices/usages", {"name": "Cold rooms"}),
    ("POST", "/api/devices/usages/custom-1", {"name": "Cold rooms"}),
    ("POST", "/api/devices/usages/custom-1/delete", {}),
]
READS = ["/api/devices/sources", "/api/devices/circuits", "/api/devices/usages"]
PAGES = ["/devices/sources", "/devices/circuits", "/devices/usages"]


def test_user_anonymous_and_a_missing_csrf_token_are_refused_and_nothing_changes(tmp_path):
    async def scenario():
        async with site(tmp_path) as (gw, base):
            before = topology_bytes(gw)
            anonymous = WebClient(base)
            user = await call(web_login, base, "user")
            admin = await call(web_login, base, "admin")
            answers = {}
            for method, path, body in CHANGES:
                answers[("anonymous", path)] = (await call(anonymous.request, method, path, body))[:2]
                answers[("user", path)] = (await call(user.request, method, path, body))[:2]
                answers[("admin-no-csrf", path)] = (await call(admin.request, method, path, body,
                                                               {"X-CSRF-Token": None}))[:2]
            for path in READS:
                answers[("anonymous", path)] = await call(anonymous.get, path)
                answers[("user", path)] = await call(user.get, path)
            pages = {}
            for path in PAGES:
                for who, client in (("anonymous", anonymous), ("user", user), ("admin", admin)):
                    pages[(who, path)] = await call(page_get, base, path, client.cookie)
            usages_file = os.path.exists(os.path.join(gw.state_dir, "usages.json"))
            return before, topology_bytes(gw), answers, pages, usages_file, gw.discovery.state

    before, after, answers, pages, usages_file, discovery = asyncio.run(scenario())
    assert after == before and not usages_file and discovery == "idle"
    for (who, path), (status, answer) in answers.items():
        expected = {"anonymous": (401, "auth"), "user": (403, "rights"), "admin-no-csrf": (403, "csrf")}[who]
        assert (status, answer["reason"]) == expected, (who, path, status, answer)
    for path in PAGES:
        assert pages[("anonymous", path)][0] == 303 and pages[("anonymous", path)][2]["Location"] == "/login"
        status, text, _headers = pages[("user", path)]
        assert status == 403 and b"The User profile cannot open the configuration pages." in text
        status, text, headers = pages[("admin", path)]
        assert status == 200 and headers["Content-Type"].startswith("text/html") and b"devices.js" in text


def test_malformed_device_forms_are_400_with_one_message_per_field_and_change_nothing(tmp_path):
    long_name = "N" * 33
    cases = [
        ("/api/devices/sources", {"bus": "digiware", "address": 0, "reference": "I-35"}, "address"),
        ("/api/devices/sources", {"bus": "digiware", "address": 248, "reference": "I-35"}, "address"),
        ("/api/devices/sources", {"bus": "digiware", "address": "14", "reference": "I-35"}, "address"),
        ("/api/devices/sources", {"bus": "digiware", "address": True, "reference": "I-35"}, "address"),
        ("/api/devices/sources", {"bus": "digiware", "address": 14, "reference": "I-99"}, "reference"),
        ("/api/devices/sources", {"bus": "digiware", "address": 14, "reference": "M-70"}, "reference"),
        ("/api/devices/sources", {"bus": "can", "address": 14, "reference": "I-35"}, "bus"),
        ("/api/devices/sources", {"bus": "digiware", "address": 14, "reference": "I-35", "name": long_name}, "name"),
        ("/api/devices/sources", {"bus": "digiware", "address": 14, "reference": "I-35", "name": 7}, "name"),
        ("/api/devices/sources", {"bus": "digiware", "address": 14, "reference": "I-35", "area": "a\nb"}, "area"),
        ("/api/devices/sources", {"bus": "digiware", "address": 14, "reference": "I-35", "netid": "XYZ"}, "netid"),
        ("/api/devices/sources", {"bus": "digiware", "address": 14, "reference": "E23", "netid": "E23001"}, "netid"),
        ("/api/devices/sources", {"bus": "digiware", "address": 14, "reference": "I-35", "color": "red"}, "color"),
        ("/api/devices/sources", {"bus": "rs485", "address": 4, "reference": "A-40"}, "address"),     # taken
        ("/api/devices/sources", {"bus": "digiware", "address": 14, "reference": "I-35", "netid": "DC85E9"},
         "netid"),                                                                       # the I-35 at 4's NET ID
        ("/api/devices/sources/4", {"address": 5}, "address"),
        ("/api/devices/sources/4", {"name": ""}, "name"),
        ("/api/devices/sources/4", {"reference": "I-45"}, "reference"),      # a reference is not edited
        ("/api/devices/sources/delete", {"addresses": ["gateway"]}, "gateway"),
        ("/api/devices/sources/delete", {"addresses": [4, "gateway"]}, "gateway"),
        ("/api/devices/sources/delete", {"addresses": [99]}, "addresses"),
        ("/api/devices/sources/delete", {"addresses": []}, "addresses"),
    ]

    async def scenario():
        async with site(tmp_path) as (gw, base):
            admin = await call(web_login, base, "admin")
            before = topology_bytes(gw)
            answers = [(path, body, field, await call(admin.post, path, body)) for path, body, field in cases]
            french = await call(web_login, base, "cyber", "fr")
            in_french = await call(french.post, cases[0][0], cases[0][1])
            # not JSON, an array, an oversized body: 400, nothing changed
            raw = [(await call(admin.request, "POST", "/api/devices/sources", None, None, payload))[:2]
                   for payload in (b"{not json", b"[1, 2]", b'{"name": "' + b"x" * 70000 + b'"}')]
            return before, topology_bytes(gw), answers, in_french, raw

    before, after, answers, in_french, raw = asyncio.run(scenario())
    assert after == before
    for path, body, field, (status, answer) in answers:
        assert status == 400 and answer["reason"] == "bad_value", (path, body, status, answer)
        assert field in fields_of(answer), (path, body, answer)
    assert fields_of(answers[0][3][1])["address"] == "a whole number from 1 to 247"
    assert fields_of(answers[7][3][1])["name"] == "at most 32 characters"
    assert fields_of(answers[13][3][1])["address"].startswith("address 4 is already used")
    assert fields_of(answers[18][3][1])["gateway"] == "the gateway itself cannot be deleted"
    assert fields_of(in_french[1])["address"] == "un nombre entier de 1 à 247" and in_french[0] == 400
    assert [status for status, _answer in raw] == [400, 400, 400]


def test_a_33rd_device_and_a_10_device_bus_at_9600_baud_are_refused_whole(tmp_path):
    async def scenario():
        async with site(tmp_path) as (gw, base):
            admin = await call(web_login, base, "admin")
            added = []
            address = 30
            while len(gw.topology.devices) < 32:            # U-30 modules: no circuits, only the device count grows
                added.append(await call(admin.post, "/api/devices/sources",
                                        {"bus": "rs485", "address": address, "reference": "U-30"}))
                address += 1
            before = topology_bytes(gw)
            extra = await call(admin.post, "/api/devices/sources", {"bus": "rs485", "address": 100, "reference": "U-30"})
            after_extra = topology_bytes(gw)
            # at 9600 baud a bus takes 10 devices: the settings refuse the baud change while 24+ are on rs485
            baud = await call(admin.post, "/api/settings", {"bus.rs485.baud": 9600})
            return len(added), [s for s, _a in added], before, extra, after_extra, baud, len(gw.topology.devices)

    count, statuses, before, extra, after, baud, total = asyncio.run(scenario())
    assert statuses == [200] * count and total == 32
    assert extra[0] == 400 and fields_of(extra[1]) == {None: "the gateway serves at most 32 devices"}, extra
    assert after == before
    assert baud[0] == 400, baud


def test_add_edit_refresh_delete_round_trip_as_status_shows_it(tmp_path):
    async def scenario():
        async with site(tmp_path) as (gw, base):
            admin = await call(web_login, base, "admin")
            seen = {}
            seen["add"] = await call(admin.post, "/api/devices/sources",
                                     {"bus": "digiware", "address": HAND_ADDED, "reference": "I-35",
                                      "name": "Kitchen feeder", "area": "Building B"})
            await wait_for(lambda: gw.door(admin_caller()).device_summary(HAND_ADDED).state == "ok", guard=60)
            seen["status_added"] = (await call(status_devices, admin))[HAND_ADDED]
            seen["sources"] = await call(admin.get, "/api/devices/sources")
            seen["refresh"] = await call(admin.post, "/api/devices/sources/refresh", {"addresses": [HAND_ADDED]})
            seen["after_refresh"] = (await call(status_devices, admin))[HAND_ADDED]
            # a meter nobody simulates: it is kept, does not communicate, and a refresh says it does not answer
            seen["silent_add"] = await call(admin.post, "/api/devices/sources",
                                            {"address": 40, "reference": "E23", "name": "Pump meter"})
            seen["silent_refresh"] = await call(admin.post, "/api/devices/sources/refresh", {"addresses": [40]})
            seen["silent_row"] = [r for r in (await call(admin.get, "/api/devices/sources"))[1]["sources"]
                                  if r["address"] == 40][0]
            seen["edit"] = await call(admin.post, "/api/devices/sources/%d" % HAND_ADDED,
                                      {"name": "Kitchen", "area": "Building C", "address": 16})
            seen["status_edited"] = await call(status_devices, admin)
            seen["refresh_all"] = await call(admin.post, "/api/devices/sources/refresh", {})
            seen["delete"] = await call(admin.post, "/api/devices/sources/delete", {"addresses": [16, 40]})
            seen["status_deleted"] = await call(status_devices, admin)
            on_disk = json.loads(topology_bytes(gw))
            return seen, on_disk

    seen, on_disk = asyncio.run(scenario())
    assert seen["add"][0] == 200 and seen["add"][1]["result"]["netid"] == ""
    added = seen["status_added"]
    assert (added["name"], added["area"], added["reference"], added["status"]) == \
        ("Kitchen feeder", "Building B", "I-35", "ok")
    rows = seen["sources"][1]["sources"]
    assert rows[0]["gateway"] is True and rows[0]["reference"] == "M-70"      # the gateway first, not deletable
    assert [r["address"] for r in rows[1:]] == sorted(r["address"] for r in rows[1:])
    row = [r for r in rows if r["address"] == HAND_ADDED][0]
    assert row["status"] == "ok" and row["age_s"] is not None and row["last_success_age_s"] is not None
    assert seen["refresh"][1]["result"] == [{"address": HAND_ADDED, "result": "same"}]
    demo_netid = [m["netid"] for m in demo_topology()["buses"]["digiware"]["meters"] if m["address"] == HAND_ADDED]
    assert seen["after_refresh"]["netid"] == demo_netid[0] and seen["after_refresh"]["name"] == "Kitchen feeder"
    assert seen["silent_add"][0] == 200 and seen["silent_add"][1]["result"]["bus"] == "rs485"   # the product's bus
    assert seen["silent_refresh"][1]["result"] == [{"address": 40, "result": "silent"}]
    assert seen["silent_row"]["not_found"] is True and seen["silent_row"]["status"] != "ok"
    assert seen["edit"][0] == 200
    edited = seen["status_edited"]
    assert HAND_ADDED not in edited and (edited[16]["name"], edited[16]["area"]) == ("Kitchen", "Building C")
    results = dict((r["address"], r["result"]) for r in seen["refresh_all"][1]["result"])
    assert results[16] == "silent" and results[4] == "same" and results[40] == "silent"   # nobody at 16 in the demo
    assert seen["delete"] == (200, {"ok": True, "result": [16, 40]})
    assert 16 not in seen["status_deleted"] and 40 not in seen["status_deleted"] and 4 in seen["status_deleted"]
    assert sorted(d["address"] for d in on_disk["devices"].values()) == sorted(seen["status_deleted"])


def admin_caller():
    from daemon.security.rights import Caller
    return Caller("web", "admin")


def test_circuits_one_and_several_at_once_and_a_detection_keeps_them(tmp_path):
    async def scenario():
        async with site(tmp_path) as (gw, base):
            admin = await call(web_login, base, "admin")
            seen = {}
            circuits = (await call(admin.get, "/api/devices/circuits"))[1]
            seen["circuits"] = circuits
            selection = [{"address": c["address"], "load": c["load"]} for c in circuits["circuits"]
                         if c["address"] in (4, 5)]
            before = topology_bytes(gw)
            seen["refused"] = [await call(admin.post, "/api/devices/circuits", body) for body in (
                {"loads": selection, "name": "One name"},
                {"loads": selection, "usage": "Nope"},
                {"loads": selection, "fluid": "plasma"},
                {"loads": selection, "name_pattern": "P" * 40 + " {n}"},
                {"loads": [{"address": 4, "load": 9}], "usage": "Heating"},
                {"loads": [], "usage": "Heating"},
                {"loads": selection},
            )]
            seen["unchanged"] = topology_bytes(gw) == before
            seen["many"] = await call(admin.post, "/api/devices/circuits",
                                      {"loads": selection, "name_pattern": "Floor {n} ({device} L{load})",
                                       "fluid": "electricity", "usage": "Heating"})
            seen["one"] = await call(admin.post, "/api/devices/circuits",
                                     {"loads": [{"address": 5, "load": 2}], "name": "Bakery oven", "fluid": "gas"})
            seen["status"] = await call(status_devices, admin)
            assert gw.discovery.start("full")
            await gw.discovery.wait()
            seen["detected"] = await call(status_devices, admin)
            seen["discovery"] = gw.discovery.status()
            return seen

    seen = asyncio.run(scenario())
    rows = seen["circuits"]["circuits"]
    assert all(r["fluid"] == "electricity" and r["usage"] == "Undefined" for r in rows)    # an older file's loads
    assert {"key": "Heating", "custom": False, "in_use": 0, "name": "Heating"} in seen["circuits"]["usages"]
    expected_fields = ["name", "usage", "fluid", "name_pattern", "loads", "loads", None]
    for (status, answer), field in zip(seen["refused"], expected_fields):
        assert status == 400 and field in fields_of(answer), (field, answer)
    assert seen["unchanged"]
    assert seen["many"] == (200, {"ok": True, "result": 6})
    loads4 = seen["status"][4]["loads"]
    assert [x["name"] for x in loads4] == ["Floor %d (%s L%d)" % (n, seen["status"][4]["name"], n) for n in (1, 2, 3)]
    assert all(x["usage"] == "Heating" and x["fluid"] == "electricity" for x in loads4)
    load52 = [x for x in seen["status"][5]["loads"] if x["load"] == 2][0]
    assert (load52["name"], load52["fluid"], load52["usage"]) == ("Bakery oven", "gas", "Heating")
    assert seen["discovery"]["state"] == "done"
    assert seen["detected"][5]["loads"] == seen["status"][5]["loads"]        # a detection keeps what a person set


def test_custom_usages_add_rename_delete_and_one_in_use_cannot_be_deleted(tmp_path):
    async def scenario():
        async with site(tmp_path) as (gw, base):
            admin = await call(web_login, base, "cyber")
            seen = {}
            seen["add"] = await call(admin.post, "/api/devices/usages", {"name": "Cold rooms"})
            key = seen["add"][1]["result"]
            seen["duplicate"] = await call(admin.post, "/api/devices/usages", {"name": "cold rooms"})
            seen["long"] = await call(admin.post, "/api/devices/usages", {"name": "U" * 33})
            seen["rename"] = await call(admin.post, "/api/devices/usages/" + key, {"name": "Cold storage"})
            seen["rename_predefined"] = await call(admin.post, "/api/devices/usages/Heating", {"name": "Warm"})
            seen["assign"] = await call(admin.post, "/api/devices/circuits",
                                        {"loads": [{"address": 4, "load": 1}], "usage": key})
            before = open(os.path.join(gw.state_dir, "usages.json"), "rb").read()
            seen["in_use"] = await call(admin.post, "/api/devices/usages/%s/delete" % key)
            seen["unchanged"] = open(os.path.join(gw.state_dir, "usages.json"), "rb").read() == before
            seen["predefined"] = await call(admin.post, "/api/devices/usages/Heating/delete")
            seen["listing"] = await call(admin.get, "/api/devices/usages")
            await call(admin.post, "/api/devices/circuits", {"loads": [{"address": 4, "load": 1}], "usage": "Heating"})
            seen["delete"] = await call(admin.post, "/api/devices/usages/%s/delete" % key)
            seen["after"] = await call(admin.get, "/api/devices/usages")
            seen["on_disk"] = json.loads(open(os.path.join(gw.state_dir, "usages.json")).read())
            return key, seen

    key, seen = asyncio.run(scenario())
    assert seen["add"][0] == 200 and key.startswith("custom-")
    for name, field in (("duplicate", "name"), ("long", "name"), ("rename_predefined", "key"), ("predefined", "key")):
        assert seen[name][0] == 400 and field in fields_of(seen[name][1]), (name, seen[name])
    assert seen["rename"][0] == 200 and seen["assign"] == (200, {"ok": True, "result": 1})
    assert seen["in_use"][0] == 400 and fields_of(seen["in_use"][1])["key"] == "given to 1 circuit(s): change them first"
    assert seen["unchanged"]
    custom = [u for u in seen["listing"][1]["usages"] if u["custom"]]
    assert custom == [{"key": key, "custom": True, "in_use": 1, "name": "Cold storage"}]
    assert seen["delete"][0] == 200
    assert [u for u in seen["after"][1]["usages"] if u["custom"]] == [] and seen["on_disk"]["custom"] == []


def test_a_topology_file_written_before_fluids_and_usages_still_loads(tmp_path):
    """Loads of an older file have no fluid or usage: they read as the defaults and a save adds only what changed."""
    from daemon.state.topology import Topology
    path = tmp_path / "topology.json"
    old = {"devices": {"1": {"bus": "digiware", "address": 4, "reference": "I-35", "name": "Old", "netid": "DC85E9",
                             "area": "", "loads": [{"load": 1, "network": "3P+N", "name": "Load 1"}]}}}
    path.write_text(json.dumps(old))
    topology = Topology(str(path))
    assert topology.load_problem is None and topology.devices[0].loads == old["devices"]["1"]["loads"]


def test_an_eleventh_device_on_a_bus_at_9600_baud_is_refused(tmp_path):
    async def scenario():
        async with site(tmp_path, {"bus.rs485.baud": 9600}) as (gw, base):
            admin = await call(web_login, base, "admin")
            statuses, address = [], 30
            while len(gw.topology.on_bus("rs485")) < 10:
                statuses.append((await call(admin.post, "/api/devices/sources",
                                            {"bus": "rs485", "address": address, "reference": "E23"}))[0])
                address += 1
            before = topology_bytes(gw)
            eleventh = await call(admin.post, "/api/devices/sources", {"bus": "rs485", "address": 60, "reference": "E23"})
            moved = await call(admin.post, "/api/devices/sources/4", {"bus": "rs485"})      # the same rule on an edit
            return statuses, before, topology_bytes(gw), eleventh, moved

    statuses, before, after, eleventh, moved = asyncio.run(scenario())
    assert statuses and set(statuses) == {200}
    assert after == before
    for status, answer in (eleventh, moved):
        assert status == 400 and fields_of(answer) == {"bus": "at most 10 devices on the rs485 bus at 9600 baud"}, answer
