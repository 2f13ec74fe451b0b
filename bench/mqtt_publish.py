"""Loop-thread CPU per QoS 1 message to a local Mosquitto: aiomqtt's publish() per message against the
publisher's client.Client.publish_batch (issue 19, target 6).

    .venv/bin/python bench/mqtt_publish.py [--messages 6000] [--inflight 100] [--kinds aiomqtt,ours,aiomqtt,ours]

Batches of 50 JSON messages (the size of the publisher's payloads), each batch awaited, 5 ms between batches.
"""

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.lean import Mosquitto  # noqa: E402
from outbound.mqtt import client as mqtt_client, errors  # noqa: E402
from outbound.mqtt.modes import Message  # noqa: E402

BATCH = 50
PAYLOAD = b'{"quality":"good","timestamp":1700000000000,"unit":"V","value":230.1}'


async def cpu_per_message(kind, port, count, inflight):
    cls = errors.Client if kind == "aiomqtt" else mqtt_client.Client
    async with cls("127.0.0.1", port, identifier="bench-%s" % kind, clean_session=True,
                   max_inflight_messages=inflight) as client:
        client.pending_calls_threshold = 10 ** 6
        messages = [Message("site/gw/meter%d/1/v%d" % (i % 32, i % 50), PAYLOAD, 1, True) for i in range(BATCH)]
        start = time.thread_time()
        for _ in range(count // BATCH):
            if kind == "aiomqtt":
                await asyncio.gather(*[client.publish(m.topic, m.payload, qos=1, retain=True, timeout=math.inf)
                                       for m in messages])
            else:
                await client.publish_batch(messages)
            await asyncio.sleep(0.005)
        return (time.thread_time() - start) / count * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--inflight", type=int, default=100)
    parser.add_argument("--kinds", default="aiomqtt,ours,aiomqtt,ours")
    args = parser.parse_args()
    broker = Mosquitto(tempfile.mkdtemp(prefix="bench-mqtt-"))
    try:
        for kind in args.kinds.split(","):
            cpu = asyncio.run(cpu_per_message(kind, broker.port, args.messages, args.inflight))
            print("%-8s %6.1f us of loop-thread CPU per QoS 1 message (%d in flight)" % (kind, cpu, args.inflight))
    finally:
        broker.close()


if __name__ == "__main__":
    main()
