"""A gateway SIGKILLed during a broker outage loses nothing from its MQTT spool (issue 18, store and forward).

A child process runs a ManualClock gateway with simulated meters and the MQTT publisher pointed at a port where
no broker listens; it steps the clock a second at a time (the meters move, every poll is a batch of samples),
waits for the spool's fsync and prints how many samples the spool holds. It is SIGKILLed at a random instant
once it has spooled a few steps, started again on the same state directory, killed again; after each kill the
spool, reopened as the gateway opens it, holds at least every sample printed, in the order they were taken.
Then the gateway runs in this process with Mosquitto up on that port and an independent subscriber: every
sample of the spool arrives once, in order, on its topic, as history, with its value and timestamp.
"""

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

from conftest import free_tcp_port, polled, running_gateway, topology_with, wait_for
from mqtt_broker import Mosquitto, Subscriber

from board.base import ManualClock
from daemon.security.rights import Caller
from daemon.state.topology import devices_from_simulation
from outbound.mqtt.service import SPOOL_DIR, MqttService
from outbound.mqtt.spool import SampleSpool

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
METERS = [{"reference": "U-30", "address": 11, "netid": "D5038A"}]
OVERRIDES = {"poll.min_cycle_ms": 300, "poll.backoff_max_s": 1, "push.site_name": "plant", "push.server_name": "GW1"}
ROUNDS = 2
STEPS_BEFORE_KILL = 3
GUARD_S = 60


class FastRetry(MqttService):
    min_backoff = 0.2
    max_backoff = 1.0


def gateway(state, clock):
    return running_gateway(state, topology_with(METERS, ()), OVERRIDES, clock, services=[FastRetry])


async def child_main(state, start, port, first):
    clock = ManualClock(start)
    async with gateway(state, clock) as gw:
        service = gw.services[-1]
        if first:
            await gw.topology.replace(devices_from_simulation(topology_with(METERS, ())))
            await gw.door(Caller("web", "cyber")).set_settings({
                "policy.cloud": True, "mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": port,
                "mqtt.tls": False, "mqtt.qos": 1})
        while True:
            clock.advance(1)
            await polled(gw)
            await service.spool.flush()
            print("spooled", service.spool.pending(), clock.time(), flush=True)


CHILD = """
import asyncio, sys
sys.path[:0] = [%(tests)r, %(repo)r]
import test_mqtt_restart
state, start, port, first = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
asyncio.run(test_mqtt_restart.child_main(state, start, port, first))
"""


def run_child(script, state, start, port, first, rng, errors):
    """One run, SIGKILLed at a random instant after a few steps: [(samples spooled, clock)] it printed whole."""
    child = subprocess.Popen([sys.executable, str(script), str(state), repr(start), str(port), str(int(first))],
                             stdout=subprocess.PIPE, stderr=errors, text=True, cwd=REPO)
    steps = []
    guard = threading.Timer(GUARD_S, child.kill)
    guard.start()
    try:
        while len(steps) < STEPS_BEFORE_KILL:
            line = child.stdout.readline()
            assert line.endswith("\n"), f"the child stopped: see {errors.name}"
            steps.append(line.split())
        time.sleep(rng.uniform(0.0, 1.0))                   # somewhere in a step: poll, spool, fsync
    finally:
        guard.cancel()
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate()
    assert child.returncode == -signal.SIGKILL
    steps += [line.split() for line in rest.split("\n")[:-1] if line.strip()]
    return [(int(words[1]), float(words[2])) for words in steps]


def reopened(state):
    """The samples of the spool as the gateway opens it after a kill, in order."""
    async def read():
        spool = SampleSpool(os.path.join(str(state), SPOOL_DIR), 10 ** 9)
        await spool.open()
        out, position = [], None
        while True:
            batch = await spool.read(position, 500)
            if not batch:
                return out
            out.extend(sample for sample, _p in batch)
            position = batch[-1][1]
    return asyncio.run(read())


def test_a_sigkill_during_an_outage_loses_no_spooled_sample_and_the_broker_gets_them_all_once(tmp_path):
    state = tmp_path / "state"
    port = free_tcp_port()                                   # no broker here until the last run
    script = tmp_path / "child.py"
    script.write_text(CHILD % {"tests": TESTS, "repo": REPO})
    rng = random.Random()
    start, kept = 1_700_000_000.0, []
    for round_ in range(ROUNDS):
        with open(tmp_path / f"child-{round_}.err", "w") as errors:
            steps = run_child(script, state, start, port, round_ == 0, rng, errors)
        now = reopened(state)
        assert now[:len(kept)] == kept                      # what an earlier run spooled is still there, first
        assert len(now) >= steps[-1][0]                      # every sample printed as spooled survived the kill
        stamps = [s.t for s in now]
        assert stamps == sorted(stamps)
        kept = now
        start = steps[-1][1] + 60                            # later than anything the killed step reached
    assert len(kept) > 10

    broker = Mosquitto(tmp_path / "broker", port=port).start()
    subscriber = Subscriber(port, persistent=False)
    clock = ManualClock(start)

    async def last_run():
        async with gateway(state, clock) as gw:
            service = gw.services[-1]
            await wait_for(lambda: service.status()["published"] >= len(kept), guard=60)
            names = dict((d.address, d.name) for d in gw.topology.devices)
        return names
    try:
        names = asyncio.run(last_run())
        deadline = time.monotonic() + 30
        while len([m for m in subscriber.snapshot() if not m[0].endswith("/status")]) < len(kept):
            assert time.monotonic() < deadline, "the spooled samples did not all arrive"
            time.sleep(0.05)
        received = [(topic, json.loads(payload)) for topic, payload, _r in subscriber.snapshot()
                    if not topic.endswith("/status")]
    finally:
        subscriber.close()
        broker.close()
    head = received[:len(kept)]
    expected = [("plant/GW1/%s/%d/%s" % (names[s.address], s.load, s.key), s) for s in kept]
    assert [topic for topic, _p in head] == [topic for topic, _s in expected]
    for (_topic, payload), (_t, sample) in zip(head, expected, strict=True):
        assert payload["timestamp"] == sample.t and payload["value"] == sample.value
        assert payload["history"] is True and payload["quality"] == sample.quality
    # after the backlog, the last run's own values: nothing of the spool was sent twice (a curve point the last run
    # logged or downloaded from a meter is history of its own, at another topic or time: it may come)
    spooled = {(topic, sample.t) for topic, sample in expected}
    assert not any((topic, payload["timestamp"]) in spooled for topic, payload in received[len(kept):])
