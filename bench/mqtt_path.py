"""CPU per message of the MQTT publisher's whole path (issue 19, target 6): samples appended to the spool
(record encoded, flushed, fsynced), read back by the session, formatted by the JSON mode, published QoS 1 by
client.Client to a local Mosquitto, acknowledged (the spool's cursor moved). The reference, in the same run: the
same topics and payloads published QoS 1 by plain paho (its own network thread, ``publish()`` per message, the
batch's acknowledgements awaited), so the ratio says what the publisher costs over a bare MQTT client.

    PYTHONPATH=. .venv/bin/python bench/mqtt_path.py [--rate 550] [--seconds 20] [--runs 2] [--profile FILE]

Process CPU (every thread: the loop, the executor's fsyncs, paho's thread for the reference) per message.
The samples are the reference site's kind: 32 meters, loads 0-3, registry keys, values changing each poll,
appended in batches every 50 ms (a poll's batch) at ``--rate`` a second.
"""

import argparse
import asyncio
import cProfile
import os
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import paho.mqtt.client as paho_mqtt  # noqa: E402

from bench.lean import Mosquitto  # noqa: E402
from core import registry  # noqa: E402
from outbound.mqtt import client as mqtt_client  # noqa: E402
from outbound.mqtt.modes import JsonMode, Sample  # noqa: E402
from outbound.mqtt.session import Session  # noqa: E402
from outbound.mqtt.spool import MB, SampleSpool  # noqa: E402

TICK_S = 0.05
METERS = 32
SETTINGS = {"mqtt.topic_template": "{site}/{server}/{device}/{load}/{measurement}", "mqtt.qos": 1,
            "push.site_name": "bench-site", "push.server_name": "gw-bench"}


class Device:
    def __init__(self, address):
        self.address, self.name, self.uid = address, "Meter %d" % address, "NETID%06d" % address
        self.reference = "bench"


class Door:
    """What the JSON mode asks of the door."""

    def __init__(self):
        self._devices = dict((a, Device(a)) for a in range(1, METERS + 1))

    def identity(self):
        return {"netid": "GW0001", "name": "bench", "firmware": "0"}

    def device(self, address):
        return self._devices.get(address)

    def devices(self):
        return list(self._devices.values())

    def device_link(self, address):
        return "ok"


def sample_stream():
    """Samples as the collector makes them: one changed value of a device's load at a time, round the site."""
    keys = [k for k in registry.keys() if registry.get(k)[registry.UNIT]][:24]
    n = 0
    while True:
        for key in keys:
            for address in range(1, METERS + 1):
                n += 1
                yield Sample(1_700_000_000_000 + n, address, n % 4, key, 230.0 + (n % 977) / 10, "good", False)


async def path_cpu(port, rate, seconds, profile):
    directory = tempfile.mkdtemp(prefix="bench-mqtt-path-")
    spool = SampleSpool(directory, 16 * MB)
    await spool.open()
    mode = JsonMode(Door(), SETTINGS.get)
    client = mqtt_client.Client("127.0.0.1", port, identifier="bench-path", clean_session=True,
                                max_inflight_messages=100)
    stream = sample_stream()
    per_tick = max(1, int(rate * TICK_S))
    try:
        async with client:
            session = Session(client, mode, spool, lambda: int(time.time() * 1000))
            runner = asyncio.get_running_loop().create_task(session.run())
            loop = asyncio.get_running_loop()
            warm = loop.time() + 2.0
            end = warm + seconds
            start_cpu = start_published = None
            next_tick = loop.time()
            while loop.time() < end:
                if start_cpu is None and loop.time() >= warm:
                    if profile is not None:
                        profile.enable()
                    start_cpu, start_published = time.process_time(), session.published
                    start_loop = time.thread_time()
                for _ in range(per_tick):
                    spool.append(next(stream))
                next_tick += TICK_S
                await asyncio.sleep(max(0.0, next_tick - loop.time()))
            cpu = time.process_time() - start_cpu
            loop_cpu = time.thread_time() - start_loop
            if profile is not None:
                profile.disable()
            published = session.published - start_published
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
    finally:
        await spool.close()
        shutil.rmtree(directory, ignore_errors=True)
    return cpu / max(1, published) * 1e6, published, loop_cpu / max(1, published) * 1e6


def reference_cpu(port, rate, seconds):
    """The same messages by plain paho: publish() per message from this thread, paho's network thread."""
    mode = JsonMode(Door(), SETTINGS.get)
    stream = sample_stream()
    per_tick = max(1, int(rate * TICK_S))
    acked = threading.Semaphore(0)
    client = paho_mqtt.Client(paho_mqtt.CallbackAPIVersion.VERSION2, client_id="bench-ref", clean_session=True)
    client.max_inflight_messages_set(100)
    client.on_publish = lambda *args: acked.release()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        warm = time.monotonic() + 2.0
        end = warm + seconds
        start_cpu, count, formatting = None, 0, 0.0
        next_tick = time.monotonic()
        while time.monotonic() < end:
            if start_cpu is None and time.monotonic() >= warm:
                start_cpu, count, formatting = time.process_time(), 0, 0.0
            before = time.process_time()
            messages = mode.encode([next(stream) for _ in range(per_tick)], 0)
            formatting += time.process_time() - before          # the formatting is the publisher's, not paho's
            for message in messages:
                client.publish(message.topic, message.payload, message.qos, message.retain)
            for _ in messages:
                acked.acquire()
            count += len(messages)
            next_tick += TICK_S
            time.sleep(max(0.0, next_tick - time.monotonic()))
        return (time.process_time() - start_cpu - formatting) / max(1, count) * 1e6, count
    finally:
        client.loop_stop()
        client.disconnect()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=550.0, help="samples a second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--profile", help="cProfile the path's window into this file (one run, no reference)")
    args = parser.parse_args()
    broker = Mosquitto(tempfile.mkdtemp(prefix="bench-mqtt-"))
    try:
        if args.profile:
            profile = cProfile.Profile(time.thread_time)
            cpu, count, _loop = asyncio.run(path_cpu(broker.port, args.rate, args.seconds, profile))
            profile.dump_stats(args.profile)
            print("path %.1f us per message (%d messages, profiled)" % (cpu, count))
            return
        ratios = []
        for run in range(args.runs):
            ref, ref_count = reference_cpu(broker.port, args.rate, args.seconds)
            cpu, count, loop_cpu = asyncio.run(path_cpu(broker.port, args.rate, args.seconds, None))
            ratios.append(cpu / ref)
            print("run %d: publisher %.1f us/message (loop thread %.1f; %d messages), plain paho %.1f us/message (%d):"
                  " ratio %.2f, load %.2f" % (run + 1, cpu, loop_cpu, count, ref, ref_count, cpu / ref,
                                              os.getloadavg()[0]))
        print("ratio publisher / plain paho: %s" % " ".join("%.2f" % r for r in ratios))
    finally:
        broker.close()


if __name__ == "__main__":
    main()
