"""GET /api/status under a burst: one build serves the requests of REUSE_S (webconfig/statusdoc.py, issue 19).

Counted on a clock the test moves: an occasional reader always gets a fresh document; a burst of requests
(BURST within REUSE_S) is served from one build per REUSE_S; a move of the gateway's clock other than with
time (a manual clock, a time synchronization) or a change of the topology makes the next answer fresh.
"""

import json

from webconfig import statusdoc
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
