"""GET /api/status under a burst: one build serves the requests of REUSE_S (webconfig/statusdoc.py, issue 19).

Counted on a clock the test moves: an occasional reader always gets a fresh document; a burst of requests
(BURST within REUSE_S) is served from one build per REUSE_S; a move of the gateway's clock other than with
time (a manual clock, a time synchronization) or a change of the topology makes the next answer fresh.
"""

import asyncio
import json
import types

import bottle

from webconfig import statusdoc
from webconfig.server import HttpServer
from webconfig.statusdoc import BURST, REUSE_S, StatusDocument


class Door:
    """What StatusDocument reads of the door, counting the builds."""

    def __init__(self, clock):
        self.clock, self.topology, self.builds = clock, 1, 0
        self.offset = 0.0

    def time(self):
        return 1_700_000_000.0 + self.clock.now + self.offset

    def topology_version(self):
        return self.topology

    def status(self):
        self.builds += 1
        return {"build": self.builds, "time": self.time()}


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def make():
    clock = Clock()
    door = Door(clock)
    return clock, door, StatusDocument(door, clock=clock)


def build_of(answer):
    return json.loads(answer)["build"]


def test_an_occasional_reader_always_gets_a_fresh_document():
    clock, door, document = make()
    for n in range(1, 11):
        assert build_of(document.get()) == n
        clock.now += REUSE_S / (BURST - 1)          # BURST - 1 requests per REUSE_S: never a burst
    assert (document.built, document.reused) == (10, 0)


def test_a_burst_is_served_from_one_build_per_reuse_period():
    clock, door, document = make()
    step = REUSE_S / 50
    answers = []
    for _ in range(200):                            # 200 requests over 4 periods
        answers.append(build_of(document.get()))
        clock.now += step
    assert door.builds == document.built
    assert document.built + document.reused == 200
    # the first BURST - 1 are built (not a burst yet), then one build per REUSE_S at most
    assert document.built <= BURST - 1 + 200 * step / REUSE_S + 1
    assert document.reused >= 200 - document.built > 150
    assert answers == sorted(answers)               # never an older document after a newer one


def test_a_moved_clock_or_a_new_topology_makes_the_next_answer_fresh():
    clock, door, document = make()
    for _ in range(BURST + 1):
        document.get()
    reused = document.reused
    assert reused > 0
    door.offset += 30.0                             # a manual clock moved (or a time synchronization)
    fresh = build_of(document.get())
    assert fresh == door.builds and document.reused == reused
    assert build_of(document.get()) == fresh        # and reused again within the burst
    door.topology += 1                              # a device added, removed or renamed
    assert build_of(document.get()) == door.builds == fresh + 1


def test_the_answer_is_the_documents_json_with_no_store():
    clock, door, document = make()
    for _ in range(BURST + 2):
        answer = document.get()
    assert json.loads(answer) == {"build": door.builds, "time": door.time()}
    assert statusdoc.bottle.response.content_type == "application/json"
    assert statusdoc.bottle.response.get_header("Cache-Control") == "no-store"


# ---------------------------------------------------------------- built in slices under the loop's HTTP server

class DevicesDoor(Door):
    """A door with devices, as Door.status/device_status/status_frame are (daemon/api.py); ``log`` says in which
    order the loop ran the devices' parts and another client's request."""

    def __init__(self, clock, count, log):
        super().__init__(clock)
        self.count, self.log = count, log

    def devices(self):
        return [types.SimpleNamespace(address=n) for n in range(1, self.count + 1)]

    def device_status(self, device):
        self.log.append(("device", device.address))
        return {"address": device.address, "values": {"0": {"U1": {"value": 230.0 + device.address / 10}}}}

    def status_frame(self, devices):
        return {"gateway": {"time": self.time()}, "buses": {"digiware": {}}, "devices": devices, "alarms": []}

    def status(self):
        self.builds += 1
        return self.status_frame([self.device_status(d) for d in self.devices()])


def test_under_the_server_the_document_is_built_a_slice_per_turn_and_another_client_is_served_meanwhile(
        monkeypatch):
    monkeypatch.setattr(statusdoc, "SLICE_S", 0.0)          # one device per turn: the order is then the loop's
    log = []
    door = DevicesDoor(Clock(), 12, log)
    document = StatusDocument(door)
    app = bottle.Bottle()

    @app.get("/api/status")
    def status():
        return document.get(bottle.request.environ)

    @app.get("/other")
    def other():
        log.append(("other",))
        return "ok"

    async def ask(port, path):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        answer = await reader.read()
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        return head, body

    async def main():
        server = HttpServer(app)
        await server.start()
        try:
            status = asyncio.ensure_future(ask(server.port, "/api/status"))
            while not log:
                await asyncio.sleep(0)
            head, _ = await ask(server.port, "/other")      # asked once the build started
            return await status, head
        finally:
            await server.stop()

    (head, body), other_head = asyncio.run(main())
    assert head.startswith(b"HTTP/1.1 200") and b"application/json" in head and b"no-store" in head.lower()
    assert other_head.startswith(b"HTTP/1.1 200")
    devices = [entry for entry in log if entry[0] == "device"]
    assert len(devices) == 12 and document.built == 1 and document.slices >= 11     # a turn per device
    # the other client was answered while the build was under way, not after it
    assert log.index(("other",)) < log.index(("device", 12))
    # the sliced text is the document the door builds in one go (json's own reading of both)
    expected = door.status_frame([door.device_status(d) for d in door.devices()])
    assert json.loads(body) == expected


def test_without_the_servers_hook_the_document_is_built_in_one_go():
    log = []
    door = DevicesDoor(Clock(), 3, log)
    document = StatusDocument(door, clock=door.clock)
    environ = {}
    answer = document.get(environ)
    assert statusdoc.DEFERRED not in environ and door.builds == 1
    assert [d["address"] for d in json.loads(answer)["devices"]] == [1, 2, 3]
