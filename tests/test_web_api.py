"""The door's commands over HTTP: the async seam, rights and policy, refusals that change nothing.

The web application awaits the door's commands on the daemon's loop
(``jsonio.deferred``); these tests drive it with a plain HTTP client and
check the effect where it lands: the simulated meter's own output, the
settings file, the event log.
"""

import asyncio
import json
import os

from conftest import demo_devices, demo_topology, http_json, running_gateway, wait_for, web_login, web_server

IO10 = 15                    # the IO-10 of the demo site, outputs out_1..out_n at load 0
I35_AT_5 = 0xDC85EA
_admins = {}                 # port -> the Admin's logged-in client (each test's gateway is fresh)


async def admin(port):
    """The Admin's session on the gateway at ``port``: logged in (and its default password changed) once."""
    if port not in _admins:
        _admins[port] = await asyncio.to_thread(web_login, "http://127.0.0.1:%d" % port, "admin")
    return _admins[port]


async def post(port, path, body):
    """(status, answer) of a POST as the Admin, with its session cookie and CSRF token."""
    client = await admin(port)
    return await asyncio.to_thread(client.post, path, body)


async def raw_post(port, path, payload):
    """(status, JSON answer) of a POST (as the Admin) whose body is ``payload`` bytes as given."""
    client = await admin(port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                 b"Cookie: m70_session=%s\r\nX-CSRF-Token: %s\r\n"
                 b"Connection: close\r\n\r\n%s" % (path.encode(), len(payload), client.cookie.encode(),
                                                     client.csrf.encode(), payload))
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_settings_are_changed_whole_or_not_at_all_and_by_the_right_profile(tmp_path):
    web = web_server()          # binds port 0; web.server.port once started

    async def scenario():
        async with running_gateway(tmp_path / "state", demo_topology(), services=[web]) as gw:
            port = web.server.port
            _admins.pop(port, None)
            status, answer = await post(port, "/api/settings", {"gateway.name": "Plant A", "gateway.location": "B2"})
            assert (status, answer) == (200, {"ok": True, "changed": ["gateway.location", "gateway.name"]})
            with open(tmp_path / "state" / "settings.json") as handle:
                stored = handle.read()
            assert "Plant A" in stored and gw.settings.get("gateway.location") == "B2"
            # one bad value refuses the whole change: the good one is not applied either
            status, answer = await post(port, "/api/settings", {"gateway.name": "Plant B", "gateway.modbus_address": 0})
            assert status == 400 and "gateway.modbus_address" in answer["error"], answer
            status, answer = await post(port, "/api/settings", {"no.such.setting": 1})
            assert status == 400 and "no.such.setting" in answer["error"]
            # the security policy belongs to the Cyber Security profile, not to the web's Admin
            status, answer = await post(port, "/api/settings", {"policy.modbus_write": True})
            assert status == 403 and answer["reason"] == "rights", answer
            status, answer = await raw_post(port, "/api/settings", b"{not json")
            assert status == 400
            assert gw.settings.get("gateway.name") == "Plant A" and gw.settings.get("gateway.modbus_address") == 1
            assert gw.settings.get("policy.modbus_write") is False
    asyncio.run(scenario())


def test_a_write_to_a_meter_is_awaited_without_blocking_the_loop_and_needs_the_policy(tmp_path):
    web = web_server()          # binds port 0; web.server.port once started

    async def scenario():
        async with running_gateway(tmp_path / "state", demo_topology(), {"bus.digiware.timeout_ms": 400},
                                   services=[web]) as gw:
            port = web.server.port
            _admins.pop(port, None)
            await gw.topology.replace(demo_devices())
            await wait_for(lambda: all(p.cycles >= 2 for p in gw.pollers.values()), guard=30)
            io10 = gw.board.find_meter(address=IO10)
            status, answer = await post(port, "/api/devices/15/0/out_1", {"value": 1})
            assert status == 403 and answer["reason"] == "policy" and io10.outputs & 1 == 0, answer
            await gw.settings.set_many({"policy.modbus_write": True})
            status, answer = await post(port, "/api/devices/15/0/out_1", {"value": 1})
            assert (status, answer) == (200, {"ok": True, "value": 1})
            assert io10.outputs & 1 == 1                                   # the meter itself switched
            for path, body, code in (("/api/devices/15/0/out_1", {"value": 7}, 400),    # an output is 0 or 1
                                     ("/api/devices/15/0/i1", {"value": 1}, 405),       # not writable
                                     ("/api/devices/99/0/out_1", {"value": 1}, 404),    # no such device
                                     ("/api/devices/15/0/out_1", {"value": "on"}, 400)):
                status, answer = await post(port, path, body)
                assert status == code, (path, body, answer)
            assert io10.outputs & 1 == 1

            # A write to a meter that does not answer waits for the bus timeout and retries; meanwhile
            # the loop serves other requests: the status GET finishes first.
            gw.board.configure_meter(0xC0E45D, silent=True)
            finished = []

            async def write():
                finished.append(("write", await post(port, "/api/devices/15/0/out_1", {"value": 0})))

            async def status_page():
                await asyncio.sleep(0.05)
                finished.append(("status", await asyncio.to_thread(http_json,
                                                                   "http://127.0.0.1:%d/api/status" % port)))
            await asyncio.gather(write(), status_page())
            assert [name for name, _ in finished] == ["status", "write"], finished
            assert finished[1][1][0] == 504 and finished[1][1][1]["reason"] == "no_answer", finished
            assert finished[0][1][0] == 200
    asyncio.run(scenario())


def test_alarms_are_acknowledged_and_counters_reset_by_the_door(tmp_path):
    web = web_server()          # binds port 0; web.server.port once started

    async def scenario():
        async with running_gateway(tmp_path / "state", demo_topology(), {"poll.backoff_max_s": 1},
                                   services=[web]) as gw:
            port = web.server.port
            _admins.pop(port, None)
            await gw.topology.replace(demo_devices())
            await wait_for(lambda: all(p.cycles >= 2 for p in gw.pollers.values()), guard=30)
            status, answer = await post(port, "/api/alarms/acknowledge", {"alarm": 3, "source": "digiware:5"})
            assert status == 404, answer                                   # nothing active to acknowledge
            gw.board.configure_meter(I35_AT_5, silent=True)
            await wait_for(lambda: (3, "digiware:5") in gw.alarms.active, guard=30)
            status, answer = await post(port, "/api/alarms/acknowledge", {"alarm": 3, "source": "digiware:5"})
            assert (status, answer) == (200, {"ok": True})
            _s, alarms = await asyncio.to_thread(http_json, "http://127.0.0.1:%d/api/alarms" % port)
            source = next(s for a in alarms["system"] if a["alarm"] == 3 for s in a["sources"]
                          if s["source"] == "digiware:5")
            assert source["acknowledged"]["by"].startswith("web/admin")
            await gw.alarms.flush()
            acknowledged = [r for r in gw.alarms.events() if r.get("event") == "acknowledged"]
            assert [(r["alarm"], r["source"]) for r in acknowledged] == [(3, "digiware:5")]
            for body in ({"alarm": "3", "source": "digiware:5"}, {"alarm": 3}, {"source": "x"}):
                status, _answer = await post(port, "/api/alarms/acknowledge", body)
                assert status == 400

            engine = gw.engines["digiware"]
            before = engine.counters[4].requests
            last = engine.counters[4].last_success
            assert before > 0 and last is not None
            status, answer = await post(port, "/api/counters/reset", {"address": 4})
            assert (status, answer) == (200, {"ok": True})
            assert engine.counters[4].requests < before and engine.counters[4].last_success >= last
            assert engine.counters[11].requests > 0                     # another device's counts stay
            for body in ({"address": 0}, {"address": "4"}):
                status, _answer = await post(port, "/api/counters/reset", body)
                assert status == 400
    asyncio.run(scenario())


def test_the_settings_file_is_untouched_by_a_refused_change(tmp_path):
    web = web_server()          # binds port 0; web.server.port once started

    async def scenario():
        async with running_gateway(tmp_path / "state", demo_topology(), services=[web]):
            port = web.server.port
            _admins.pop(port, None)
            path = tmp_path / "state" / "settings.json"
            before = os.path.getmtime(path) if os.path.exists(path) else None
            status, _answer = await post(port, "/api/settings", {"gateway.name": ""})      # too short
            assert status == 400
            assert (os.path.getmtime(path) if os.path.exists(path) else None) == before
    asyncio.run(scenario())
