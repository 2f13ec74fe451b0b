"""The simulator's HTTP routes refuse what its meters and buses cannot use (SPEC §11), through real HTTP.

A NaN, an infinity, a negative or a huge delay posted to a meter used to stop
the simulated bus's thread (every meter of the line silent until a restart);
an event worth 1e308 V was a 500. Each is now a 400 with a JSON message that
names the field, nothing changes, and the meters go on answering.
"""

import asyncio
import json
import urllib.request

from conftest import demo_devices, demo_topology, running_gateway, wait_for, web_login, web_server

U30, A40, I35_AT_5 = "D5038A", "A40001", "DC85EA"

# raw bodies, as a hostile client sends them (Python's JSON reads NaN, Infinity and 1e400 as floats)
BAD_FAULTS = [
    (b'{"extra_delay": NaN}', "extra_delay"),
    (b'{"extra_delay": Infinity}', "extra_delay"),
    (b'{"extra_delay": -Infinity}', "extra_delay"),
    (b'{"extra_delay": -1}', "extra_delay"),
    (b'{"extra_delay": 1e308}', "extra_delay"),
    (b'{"extra_delay": 1e400}', "extra_delay"),
    (b'{"extra_delay": 1' + b"0" * 400 + b"}", "extra_delay"),
    (b'{"extra_delay": 10.5}', "extra_delay"),                 # past the documented 0..10 s
    (b'{"extra_delay": "slow"}', "extra_delay"),
    (b'{"extra_delay": null}', "extra_delay"),
    (b'{"extra_delay": true}', "extra_delay"),
    (b'{"crc_error_rate": NaN}', "crc_error_rate"),
    (b'{"crc_error_rate": 1e308}', "crc_error_rate"),
    (b'{"crc_error_rate": "often"}', "crc_error_rate"),
    (b'{"address": 1e308}', "address"),
    (b'{"address": 248}', "address"),
    (b'{"address": "20"}', "address"),
    (b'{"inputs": NaN}', "inputs"),
    (b'{"silent": "yes"}', "silent"),
    (b'{"silent": true, "extra_delay": NaN}', "extra_delay"),  # a good part and a bad part: nothing applied
    (b'{"netid": 1}', "netid"),
]
BAD_EVENTS = [
    (b'{"kind": "power_quality", "index": 1, "key": "v1", "value": 1e308}', "value"),
    (b'{"kind": "power_quality", "index": 1, "key": "v1", "value": -1e308}', "value"),
    (b'{"kind": "power_quality", "index": 1, "key": "v1", "value": NaN}', "value"),
    (b'{"kind": "power_quality", "index": 1, "key": "v1", "value": Infinity}', "value"),
    (b'{"kind": "power_quality", "index": 1, "key": "v1", "value": "high"}', "value"),
    (b'{"kind": "power_quality", "index": 1, "value": 1e308}', "value"),
    (b'{"kind": "power_quality", "index": 1, "duration_ms": 1e308}', "duration_ms"),
    (b'{"kind": "device", "index": 1e308}', "index"),
]
BAD_ALARMS = [
    (b'{"alarms": [{"slot": 3, "load": 1, "key": "v1", "op": ">", "threshold": 1e308}]}', "threshold"),
    (b'{"alarms": [{"slot": 3, "load": 1, "key": "v1", "op": ">", "threshold": NaN}]}', "threshold"),
]


def post_raw(client, path, data):
    """(status, decoded JSON answer) of a POST of raw bytes by a logged-in client."""
    return client.request("POST", path, raw=data)[:2]


def get_json(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_bad_fault_and_event_values_are_refused_and_the_meters_keep_answering(tmp_path):
    web = web_server()

    async def scenario():
        async with running_gateway(tmp_path / "state", demo_topology(), services=[web]) as gw:
            await gw.topology.replace(demo_devices())
            await wait_for(lambda: all(p.cycles >= 2 for p in gw.pollers.values()), guard=30)
            base = "http://127.0.0.1:%d/api/sim/meters" % web.server.port
            admin = await asyncio.to_thread(web_login, "http://127.0.0.1:%d" % web.server.port, "admin")
            board = gw.board
            before = await asyncio.to_thread(get_json, base)
            logs = dict((m.netid, m.events.next_number) for bus in board.buses.values() for m in bus.meters
                        if m.events is not None)
            slots = dict((netid, list(board.find_meter(netid=netid).events.slots)) for netid in logs)
            cases = [("/" + netid, body, field) for netid in (U30, A40) for body, field in BAD_FAULTS]
            cases += [("/%s/events" % I35_AT_5, body, field) for body, field in BAD_EVENTS]
            cases += [("/%s/alarms" % I35_AT_5, body, field) for body, field in BAD_ALARMS]
            for path, body, field in cases:
                status, answer = await asyncio.to_thread(post_raw, admin, "/api/sim/meters" + path, body)
                assert status == 400, (path, body[:60], status, answer)
                assert field in answer["error"] and "Traceback" not in answer["error"], (body[:60], answer)
            # nothing changed: the meters' faults, event logs and alarm slots are as they were
            assert await asyncio.to_thread(get_json, base) == before
            assert dict((m.netid, m.events.next_number) for bus in board.buses.values() for m in bus.meters
                        if m.events is not None) == logs
            assert dict((netid, list(board.find_meter(netid=netid).events.slots)) for netid in logs) == slots
            # and both lines go on answering: every bus answers more requests, with no error in its thread
            answers = dict((name, bus.stats["answers"]) for name, bus in board.buses.items())
            await wait_for(lambda: all(bus.stats["answers"] >= answers[name] + 5
                                       for name, bus in board.buses.items()), guard=30)
            assert all(bus._thread.is_alive() and bus.stats["errors"] == 0 for bus in board.buses.values())
            # a value within range is still taken (the refusals above were the values, not the route)
            status, answer = await asyncio.to_thread(post_raw, admin, "/api/sim/meters/" + A40,
                                                     b'{"extra_delay": 0.05}')
            assert (status, answer) == (200, {"ok": True}) and board.find_meter(netid=0xA40001).extra_delay == 0.05
    asyncio.run(scenario())
