"""Sparkplug B end to end: the MQTT publisher in Sparkplug mode, a real Mosquitto, an independent subscriber.

The subscriber (paho, tests/mqtt_broker.py) decodes every message with the protobuf decoder of
tests/sparkplug_decoder.py (not the gateway's encoder) and checks them against the Eclipse Sparkplug 3.0 rules
and the simulated meters:

* an in-process gateway (ManualClock, simulated meters): NBIRTH then one DBIRTH per meter whose values match
  the meters, DDATA by alias after the meters moved, seq one more on every message from NBIRTH's 0; a host's
  NCMD Node Control/Rebirth -> a new NBIRTH (seq 0, same bdSeq) and the DBIRTHs; the broker stopped while the
  meters move and started again -> a new NBIRTH with the next bdSeq, then the outage's samples as historical
  metrics with their own timestamps, every sample once and in order; a meter that stops answering -> DDEATH,
  answering again -> DBIRTH (with the node's NDATA count of devices online); a primary host configured: nothing before
  its STATE says online, its NDEATH when it says offline and nothing more, births again when it is back, then
  the held samples;
* a gateway process (a child running the publisher) SIGKILLed: the broker publishes its will, an NDEATH whose bdSeq is
  its NBIRTH's and that has no seq; started again on the same state directory, its NBIRTH has the next bdSeq.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys

from conftest import REPO, polled, resolution, running_gateway, topology_with, wait_for, wait_until
from mqtt_broker import Mosquitto, Subscriber
from test_mqtt import FastRetry

import sparkplug_decoder as spb
from board.base import ManualClock
from core import registry
from daemon.security.rights import Caller
from daemon.state.topology import devices_from_simulation

T0 = 1_700_000_000.0
METERS = [{"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 3, "nominal_w": 45000},
          {"reference": "U-30", "address": 11, "netid": "D5038A"}]
OVERRIDES = {"poll.min_cycle_ms": 300, "poll.backoff_max_s": 1}
GROUP, NODE = "Plant", "gw1"
# Units of some standard names, from the SI / IEC 60050 (not from the gateway's registry).
UNITS = {"IV1Inst": "V", "II1Inst": "A", "IFreqInst": "Hz", "IPSumInst": "W", "IEaPInst": "Wh"}
TESTS = os.path.dirname(os.path.abspath(__file__))
STD_TO_KEY = dict((row[registry.STD_NAME], row[registry.KEY]) for row in registry.MEASUREMENTS)


def messages(subscriber):
    """[(verb, device id or None, decoded payload)] of the node's messages in arrival order (not the NCMDs
    the test sends as a host)."""
    out = []
    for topic, payload, _retain in subscriber.snapshot():
        parts = topic.split("/")
        if parts[:2] != ["spBv1.0", GROUP] or parts[3] != NODE or parts[2] == "NCMD":
            continue
        out.append((parts[2], parts[4] if len(parts) > 4 else None, spb.decode(payload)))
    return out


def since_last_nbirth(msgs):
    start = max(i for i, (verb, _d, _p) in enumerate(msgs) if verb == "NBIRTH")
    return msgs[start:]


def check_seq(msgs):
    """From an NBIRTH (seq 0) on, every message one more, 255 -> 0 (tck-id-payloads-sequence-num-*); an NDEATH
    (the broker's, outside the sequence) has none."""
    assert msgs[0][0] == "NBIRTH" and msgs[0][2].seq == 0
    assert all(not p.HasField("seq") for v, _d, p in msgs if v == "NDEATH")
    msgs = [m for m in msgs if m[0] != "NDEATH"]
    for (_v1, _d1, before), (verb, _d, after) in zip(msgs, msgs[1:], strict=False):
        assert after.HasField("seq") and after.seq == (before.seq + 1) % 256, verb


def bdseq(payload):
    return spb.metric_value(next(m for m in payload.metrics if m.name == "bdSeq"))


def ddata_metrics(msgs, births):
    """[(device id, load, key, value, timestamp, is_historical)] of the DDATA metrics, by the births' aliases."""
    out = []
    for verb, device_id, payload in msgs:
        if verb == "DDATA":
            for metric in payload.metrics:
                load, key = births[device_id][metric.alias]
                out.append((device_id, load, key, spb.metric_value(metric), metric.timestamp,
                            metric.is_historical))
    return out


def birth_table(msgs):
    """{device id: {alias: (load, registry key)}} from the DBIRTHs."""
    table = {}
    for verb, device_id, payload in msgs:
        if verb == "DBIRTH":
            for metric in payload.metrics:
                folder, _slash, std = metric.name.rpartition("/")
                load = int(folder.split()[1]) if folder else 0
                table.setdefault(device_id, {})[metric.alias] = (load, STD_TO_KEY[std])
    return table


def test_births_data_rebirth_and_outage_through_mosquitto(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port, topic="spBv1.0/#")
    clock = ManualClock(T0)

    async def scenario():
        async with running_gateway(tmp_path / "state", topology_with(METERS, ()), OVERRIDES, clock,
                                   services=[FastRetry]) as gw:
            service = gw.services[-1]
            await gw.topology.replace(devices_from_simulation(topology_with(METERS, ())))
            await gw.door(Caller("web", "cyber")).set_settings({
                "policy.cloud": True, "mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.port": broker.port,
                "mqtt.tls": False, "mqtt.qos": 1, "mqtt.mode": "sparkplug", "mqtt.group_id": GROUP,
                "mqtt.edge_node_id": NODE})
            def settled():
                return service.spool.buffered() == 0 and service.spool.pending() == 0 and \
                    service.status()["published"] == service.collector.samples

            await polled(gw)
            # the first values published before the manual clock moves: a sample taken at T0 and encoded after
            # the move would meet a DBIRTH made at T0 + 30 s, and be historical (acquired before its DBIRTH)
            await wait_for(settled, guard=60)
            clock.advance(30)                      # the meters move: most values change
            await polled(gw)

            def arrived():
                return len(ddata_metrics(messages(subscriber), birth_table(messages(subscriber)))) == \
                    service.collector.samples
            await wait_for(settled, guard=60)
            await wait_for(arrived, guard=60)
            first = messages(subscriber)
            ids = dict((d.address, d.name) for d in gw.topology.devices)
            # NBIRTH first; each meter's DBIRTH before its data (in the NBIRTH, or as soon as the meter answers)
            verbs = [(v, d) for v, d, _p in first]
            assert verbs[0] == ("NBIRTH", None)
            for address in (4, 11):
                assert ("DDATA", ids[address]) in verbs, (verbs, service.collector.samples, service.sessions)
                assert verbs.index(("DBIRTH", ids[address])) < verbs.index(("DDATA", ids[address]))
            check_seq(first)
            nbirth = first[0][2]
            assert bdseq(nbirth) == 0
            rebirth = next(m for m in nbirth.metrics if m.name == "Node Control/Rebirth")
            assert rebirth.datatype == spb.BOOLEAN and rebirth.boolean_value is False

            # DDATA: the values after the meters moved, by alias, each sample once, none historical yet
            births = birth_table(first)
            data = ddata_metrics(first, births)
            assert len(data) == service.collector.samples > 0
            assert not any(historical for *_rest, historical in data)
            assert len(set((d, lo, k, t) for d, lo, k, _v, t, _h in data)) == len(data)
            now_ms, moved = int(clock.time() * 1000), 0
            for device_id, load, key, value, t, _h in data:         # the values read since the meters moved
                address = next(a for a, name in ids.items() if name == device_id)
                meter = gw.board.find_meter(address=address)
                if t == now_ms and value is not None:
                    assert abs(value - meter.values(load)[key]) <= resolution(meter.reference, load, key), key
                    moved += 1
            assert moved > 0                       # (the energy indexes at least)

            # a host asks for a rebirth: NBIRTH (seq 0, same bdSeq) and the DBIRTHs again
            count = len(messages(subscriber))
            subscriber.client.publish("spBv1.0/%s/NCMD/%s" % (GROUP, NODE),
                                      spb.ncmd([("Node Control/Rebirth", spb.BOOLEAN, True)], int(T0 * 1000)))

            def reborn_now():
                msgs = messages(subscriber)[count:]
                verbs = [v for v, _d, _p in msgs]
                return msgs[verbs.index("NBIRTH"):] if "NBIRTH" in verbs else []
            await wait_for(lambda: set(d for v, d, _p in reborn_now() if v == "DBIRTH") == {ids[4], ids[11]},
                           guard=30)
            reborn = reborn_now()
            assert reborn[0][2].seq == 0 and bdseq(reborn[0][2]) == 0
            check_seq(reborn)

            # the DBIRTHs (the meters stood still since the last poll): every value as the meters hold it, with
            # its unit and GOOD quality
            checked = 0
            for verb, device_id, payload in reborn:
                if verb != "DBIRTH":
                    continue
                address = next(a for a, name in ids.items() if name == device_id)
                meter = gw.board.find_meter(address=address)
                for metric in payload.metrics:
                    folder, _slash, std = metric.name.rpartition("/")
                    load, key = int(folder.split()[1]) if folder else 0, STD_TO_KEY[std]
                    props = spb.properties(metric)
                    if std in UNITS:
                        assert props["engUnit"] == UNITS[std], std
                    value = spb.metric_value(metric)
                    if value is None:
                        assert props["Quality"] == 0
                        continue
                    assert props["Quality"] in (192, 500)               # GOOD, or STALE (a meter slow to answer)
                    if metric.timestamp == int(clock.time() * 1000) and props["Quality"] == 192:
                        assert abs(value - meter.values(load)[key]) <= resolution(meter.reference, load, key), key
                        checked += 1
            assert checked > 20

            # the broker goes away while the meters move; back, a new session (next bdSeq), then the outage's
            # samples as historical metrics with their own timestamps, every sample once and in order
            published = service.collector.samples
            before_outage = len(messages(subscriber))
            broker.stop()
            await wait_for(lambda: service.status()["connected"] is False, guard=30)
            outage = []
            for _ in range(3):
                clock.advance(30)
                outage.append(int(clock.time() * 1000))
                await polled(gw)
            assert service.collector.samples > published
            broker.start()
            await wait_for(settled, guard=60)
            await wait_for(lambda: len(ddata_metrics(messages(subscriber), birth_table(messages(subscriber))))
                           >= service.collector.samples, guard=60)
            # births are QoS 0: a host that reconnected after the node missed them and asks for a rebirth
            await wait_for(subscriber.connected.is_set, guard=30)
            count = len(messages(subscriber))
            subscriber.client.publish("spBv1.0/%s/NCMD/%s" % (GROUP, NODE),
                                      spb.ncmd([("Node Control/Rebirth", spb.BOOLEAN, True)], int(T0 * 1000)))
            await wait_for(lambda: [v for v, _d, _p in messages(subscriber)[count:]].count("DBIRTH") >= 2, guard=30)
            session = since_last_nbirth(messages(subscriber))
            check_seq(session)
            assert bdseq(session[0][2]) == 1                        # tck-id-topics-nbirth-bdseq-increment
            # the old session's will, if the broker delivered it, is told apart by its bdSeq
            assert all(bdseq(p) == 0 for v, _d, p in messages(subscriber) if v == "NDEATH")
            after = ddata_metrics(messages(subscriber)[before_outage:], birth_table(messages(subscriber)))
            backlog = [m for m in after if m[4] in outage[:-1]]    # (the last step's polls go on afterwards)
            assert backlog and all(historical for *_rest, historical in backlog)   # read during the outage
            def everything_now():
                return ddata_metrics(messages(subscriber), birth_table(messages(subscriber)))
            await wait_for(lambda: len(everything_now()) == service.collector.samples, guard=60)   # none lost
            everything = everything_now()
            assert len(set((d, lo, k, t) for d, lo, k, _v, t, _h in everything)) == len(everything)  # once
            stamps = {}
            for device_id, load, key, _v, t, _h in everything:
                stamps.setdefault((device_id, load, key), []).append(t)
            assert all(s == sorted(s) for s in stamps.values())                            # in order

            # the U-30 stops answering: DDEATH (with the next seq) and the node's count of devices online; it
            # answers again: DBIRTH and the count back
            count = len(messages(subscriber))
            gw.board.configure_meter(0xD5038A, silent=True)
            await wait_for(lambda: ("DDEATH", ids[11]) in [(v, d) for v, d, _p in messages(subscriber)[count:]],
                           guard=60)
            gw.board.configure_meter(0xD5038A, silent=False)
            await wait_for(lambda: ("DBIRTH", ids[11]) in [(v, d) for v, d, _p in messages(subscriber)[count:]],
                           guard=60)
            await wait_for(lambda: [v for v, _d, _p in messages(subscriber)[count:]].count("NDATA") >= 2, guard=30)
            tail = messages(subscriber)[count:]
            verbs = [(v, d) for v, d, _p in tail]
            death = tail[verbs.index(("DDEATH", ids[11]))][2]
            assert death.HasField("seq") and death.HasField("timestamp") and len(death.metrics) == 0
            assert verbs.index(("DDEATH", ids[11])) < verbs.index(("DBIRTH", ids[11]))
            online = [spb.metric_value(p.metrics[0]) for v, _d, p in tail if v == "NDATA"]
            assert online[:2] == [1, 2]
            check_seq(since_last_nbirth(messages(subscriber)))

            # a primary host is configured: nothing is born before its STATE says online; offline, the node stops
            # publishing (the samples wait in the spool); online again, births, then the wait's samples as history
            count = len(messages(subscriber))
            await gw.door(Caller("web", "cyber")).set_settings({"mqtt.primary_host_id": "scada"})
            # the reconnection: the old session says goodbye with its NDEATH (bdSeq 1), the new one waits
            await wait_for(lambda: "NDEATH" in [v for v, _d, _p in messages(subscriber)[count:]], guard=30)
            await wait_for(lambda: service.status()["connected"] is True, guard=30)
            tail = messages(subscriber)[count:]
            verbs = [v for v, _d, _p in tail]
            assert verbs.count("NDEATH") == 1 and bdseq(tail[verbs.index("NDEATH")][2]) == 1
            count += verbs.index("NDEATH") + 1
            clock.advance(30)
            await polled(gw)
            await asyncio.sleep(0.5)
            assert messages(subscriber)[count:] == [] and service.spool.pending() + service.spool.buffered() > 0

            def host(online, ms):
                subscriber.client.publish("spBv1.0/STATE/scada", json.dumps({"online": online, "timestamp": ms}),
                                          qos=1, retain=True)
            host(True, 1000)
            await wait_for(settled, guard=60)
            await wait_for(lambda: len(ddata_metrics(messages(subscriber), birth_table(messages(subscriber))))
                           >= service.collector.samples, guard=60)
            woke = messages(subscriber)[count:]
            assert woke[0][0] == "NBIRTH" and woke[0][2].seq == 0
            check_seq(woke)
            count = len(messages(subscriber))
            host(False, 2000)
            await wait_for(lambda: not service.mode.may_publish(), guard=30)
            await wait_for(lambda: "NDEATH" in [v for v, _d, _p in messages(subscriber)[count:]], guard=30)
            published = service.collector.samples
            clock.advance(30)
            waited = int(clock.time() * 1000)
            await polled(gw)
            await asyncio.sleep(0.5)
            assert [(v, bdseq(p)) for v, _d, p in messages(subscriber)[count:]] == [("NDEATH", bdseq(woke[0][2]))]
            assert service.collector.samples > published
            count += 1
            clock.advance(1)                     # the births come later than the samples held
            host(True, 3000)
            await wait_for(settled, guard=60)
            await wait_for(lambda: len(ddata_metrics(messages(subscriber), birth_table(messages(subscriber))))
                           >= service.collector.samples, guard=60)
            back = messages(subscriber)[count:]
            assert back[0][0] == "NBIRTH"
            # phid-offline asked for a new connection: its NBIRTH has the next bdSeq, and it was no failure
            assert bdseq(back[0][2]) == (bdseq(woke[0][2]) + 1) % 256, (bdseq(back[0][2]), bdseq(woke[0][2]))
            assert service.status()["failures"] == 0 and service.door.alarm_active() is None
            check_seq(back)
            held = [m for m in ddata_metrics(back, birth_table(back)) if m[4] == waited]
            assert held and all(historical for *_rest, historical in held)
    try:
        asyncio.run(scenario())
    finally:
        subscriber.close()
        broker.close()


SETTINGS = {"policy.cloud": True, "mqtt.enabled": True, "mqtt.host": "127.0.0.1", "mqtt.tls": False, "mqtt.qos": 1,
            "mqtt.mode": "sparkplug", "mqtt.group_id": GROUP, "mqtt.edge_node_id": NODE}


async def child_main(state, port, first):
    """The gateway process to kill: the publisher on (set by the first run, kept in the state directory by the
    next), running until it is killed."""
    async with running_gateway(state, topology_with(METERS[1:], ()), OVERRIDES, services=[FastRetry]) as gw:
        if first:
            await gw.topology.replace(devices_from_simulation(topology_with(METERS[1:], ())))
            await gw.door(Caller("web", "cyber")).set_settings(dict(SETTINGS, **{"mqtt.port": port}))
        await asyncio.Event().wait()


CHILD = """
import asyncio, sys
sys.path[:0] = [%(tests)r, %(repo)r]
import test_mqtt_sparkplug_broker
asyncio.run(test_mqtt_sparkplug_broker.child_main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"))
"""


def test_ndeath_will_when_the_gateway_is_killed_and_bdseq_after_a_restart(tmp_path):
    broker = Mosquitto(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port, topic="spBv1.0/#", persistent=False)
    script = tmp_path / "child.py"
    script.write_text(CHILD % {"tests": TESTS, "repo": REPO})
    errors = open(tmp_path / "child.log", "w")

    def gateway(first):
        return subprocess.Popen([sys.executable, str(script), str(tmp_path / "state"), str(broker.port),
                                 "1" if first else "0"], stdout=subprocess.DEVNULL, stderr=errors, cwd=REPO)

    def verbs(start=0):
        return [v for v, _d, _p in messages(subscriber)[start:]]
    procs = []
    try:
        procs.append(gateway(True))
        wait_until(lambda: "DBIRTH" in verbs() and "DDATA" in verbs(), guard=60)
        nbirth = since_last_nbirth(messages(subscriber))[0][2]
        os.kill(procs[0].pid, signal.SIGKILL)
        procs[0].wait()
        wait_until(lambda: "NDEATH" in verbs(), guard=30)              # the broker publishes the will
        death = next(p for v, _d, p in messages(subscriber) if v == "NDEATH")
        assert not death.HasField("seq")                                     # tck-id-topics-ndeath-seq
        assert [m.name for m in death.metrics] == ["bdSeq"]                  # tck-id-topics-ndeath-payload
        assert death.metrics[0].datatype == spb.INT64
        assert bdseq(death) == bdseq(nbirth)                                 # tck-id-...-bdseq-matching

        count = len(messages(subscriber))
        procs.append(gateway(False))                                         # the same state directory
        wait_until(lambda: "NBIRTH" in verbs(count), guard=60)
        again = next(p for v, _d, p in messages(subscriber)[count:] if v == "NBIRTH")
        assert bdseq(again) == (bdseq(nbirth) + 1) % 256                     # never the killed session's
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        errors.close()
        subscriber.close()
        broker.close()
