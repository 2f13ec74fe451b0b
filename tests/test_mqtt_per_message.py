"""The MQTT publisher's cheaper per-message paths (issue 19, target 6): the bytes stay the json module's and
paho's, byte for byte.

* Spool records and JSON payloads are formatted from their fields (outbound/mqtt/jsontext.py): the same bytes as
  ``json`` writes for every kind of value a sample holds (floats with NaN and the infinities, ints, bools, None,
  non-ASCII strings) and, through the encoder, for anything else.
* A sample sent from the spool's in-memory tail and the same sample read back from the file after a restart
  become the same topic and payload bytes.
* A device's topic format: a renamed device, another template or another site name gives the new topic, and
  every template gives the topics its own format gives.
* A batch's QoS 1 PUBLISHes go to paho as one write whose bytes are paho's own packets, in order; the queued
  messages that a receive's PUBACKs let go likewise (MQTT 3.1.1 §3.3, §3.4).
"""

import asyncio
import json
import math
import socket
import struct
import zlib

import paho.mqtt.client as mqtt

from outbound.mqtt import client as mqtt_client, spool as spool_mod
from outbound.mqtt.modes import DEFAULT_TEMPLATE, JsonMode, Message, Sample
from outbound.mqtt.spool import SampleSpool
from test_mqtt_json import Door
from test_mqtt_spool import read_all

VALUES = [230.1, -0.0, 0.0, 1e300, 5e-324, -1.5e-7, 123456789.125, float("nan"), float("inf"), float("-inf"),
          0, -7, 2 ** 70, True, False, None]
ODD = ["230.1", {"a": 1}, [1, 2]]                       # not a sample's value: the encoder's text
QUALITIES = ["good", "stale", "comm_lost", "qualit\u00e9", 'say "x"\\']
SETTINGS = {"push.site_name": "plant", "push.server_name": "", "mqtt.topic_template": DEFAULT_TEMPLATE, "mqtt.qos": 1}


def samples():
    out = []
    for n, value in enumerate(VALUES + ODD):
        for history in (False, True):
            out.append(Sample(1_700_000_000_000 + n, (4, 11, 99)[n % 3], n % 4, ("v1", "i1", "pt", "nokey")[n % 4],
                              value, QUALITIES[n % len(QUALITIES)], history))
    return out


def json_payload(sample, unit):
    """The payload as modes.py made it with the encoder (sorted keys, default separators)."""
    payload = {"value": sample.value, "unit": unit, "timestamp": sample.t, "quality": sample.quality}
    if sample.history:
        payload["history"] = True
    return json.dumps(payload, sort_keys=True).encode()


def test_records_are_the_json_modules_frames_for_every_kind_of_value():
    for sample in samples():
        payload = json.dumps(list(sample), separators=(",", ":")).encode()
        assert spool_mod.encode_record(sample) == struct.pack(">II", len(payload), zlib.crc32(payload)) + payload


def test_payloads_are_the_json_modules_for_every_kind_of_value():
    from core import registry
    mode = JsonMode(Door(), SETTINGS.get)
    batch = samples()
    for sample, message in zip(batch, mode.encode(batch, 0)):
        try:
            unit = registry.get(sample.key)[registry.UNIT]
        except KeyError:
            unit = ""
        assert message.payload == json_payload(sample, unit)
        assert message.retain is (not sample.history) and message.qos == 1


def test_a_sample_sent_from_the_tail_and_read_back_after_a_restart_make_the_same_message(tmp_path):
    batch = [s for s in samples() if s.value not in ODD or type(s.value) is not dict]
    batch = [s for s in batch if type(s.value) in (float, int, bool, type(None))]
    mode = JsonMode(Door(), SETTINGS.get)

    def comparable(messages):                           # NaN != NaN: compare the bytes, they are the wire's
        return [(m.topic, m.payload, m.qos, m.retain) for m in messages]

    async def from_tail():
        spool = SampleSpool(str(tmp_path), 10 ** 6)
        await spool.open()
        for sample in batch:
            spool.append(sample)
        await spool.flush()
        records = await read_all(spool)
        assert spool.file_reads == 0                    # the kept Samples, not the file
        await spool.close()
        return [sample for sample, _p in records]

    async def from_file():
        spool = SampleSpool(str(tmp_path), 10 ** 6)
        await spool.open()
        records = await read_all(spool)
        assert spool.file_reads > 0                     # decoded from the segment
        await spool.close()
        return [sample for sample, _p in records]
    kept, decoded = asyncio.run(from_tail()), asyncio.run(from_file())
    assert len(kept) == len(decoded) == len(batch)
    assert comparable(mode.encode(kept, 0)) == comparable(mode.encode(decoded, 0))
    assert any(isinstance(s.value, float) and math.isnan(s.value) for s in decoded)


def test_kept_topics_follow_a_renamed_device_a_new_template_and_a_new_site_name():
    settings = dict(SETTINGS)
    door = Door()
    mode = JsonMode(door, settings.get)
    sample = Sample(1_700_000_000_000, 11, 1, "v1", 230.0, "good", False)
    assert mode.encode([sample], 0)[0].topic == "plant/86C657/Main/1/v1"
    assert mode.encode([sample._replace(load=2, key="i1")], 0)[0].topic == "plant/86C657/Main/2/i1"
    door.table[11].name = "Main+2"
    assert mode.encode([sample], 0)[0].topic == "plant/86C657/Main_2/1/v1"
    settings["mqtt.topic_template"] = "{site}/{uid}/{load}/{measurement}"
    assert mode.encode([sample], 0)[0].topic == "plant/D5038A/1/v1"
    settings["push.site_name"] = "mill"
    assert mode.encode([sample], 0)[0].topic == "mill/D5038A/1/v1"
    assert mode.encode([sample._replace(address=42)], 0)[0].topic == "mill/42/1/v1"       # a device gone


class _Stub:
    """What Client.publish_batch uses of aiomqtt's client: the loop, paho, the batches, the queued ids."""

    def __init__(self, paho):
        self._loop = asyncio.get_running_loop()
        self._client = paho
        self._batches = {}
        self._queued = __import__("collections").deque()


def _connected_paho(inflight):
    paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    paho.max_inflight_messages_set(inflight)
    paho._sock = object()                               # "connected": paho queues the packets for the writer
    paho._call_socket_register_write = lambda: None
    paho._on_socket_register_write = lambda *args: None      # a host loop writes (as aiomqtt's), not publish()
    return paho


def _paho_packets(messages, inflight):
    """paho's own packets for ``messages`` (its publish() each), the in-flight ones, and its queued messages."""
    paho = _connected_paho(inflight)
    for message in messages:
        paho.publish(message.topic, message.payload, message.qos, message.retain)
    return [bytes(p["packet"]) for p in paho._out_packet], paho


def test_a_batch_goes_to_paho_as_one_write_of_pahos_own_packets_and_released_ones_too():
    messages = [Message("site/gw/m\u00e8tre/%d/v1" % n, b'{"value": %d}' % n * (1 + n * 40), 1, n % 2 == 0)
                for n in range(12)]
    expected, paho_own = _paho_packets(messages, 5)

    async def ours():
        paho = _connected_paho(5)
        stub = _Stub(paho)
        mqtt_client.lean_pubacks(paho, stub._queued)
        paho.on_publish = lambda *args: None
        future = mqtt_client.Client.publish_batch(stub, messages)
        first = [bytes(p["packet"]) for p in paho._out_packet]
        paho._out_packet.clear()
        assert list(stub._queued) == list(range(6, 13))
        ours_sock, broker = socket.socketpair()
        ours_sock.setblocking(False)
        try:                                            # three PUBACKs in one receive: three queued ones go
            paho._sock = mqtt_client.BufferedReads(ours_sock)
            broker.sendall(b"".join(struct.pack(">BBH", 0x40, 2, mid) for mid in (1, 2, 3)))
            paho.loop_read()
            released = [bytes(p["packet"]) for p in paho._out_packet]
        finally:
            paho._sock = None
            ours_sock.close()
            broker.close()
        return future, first, released, paho
    future, first, released, paho = asyncio.run(ours())
    assert first == [b"".join(expected)]                # the 5 in flight: one write, paho's bytes in order
    # paho's own send of the queued ones (its _send_publish), for the same three PUBACKs
    paho_own._out_packet.clear()
    for mid in (1, 2, 3):
        paho_own._in_packet = {"command": 0x40, "packet": bytearray(struct.pack(">H", mid))}
        paho_own._handle_pubackcomp("PUBACK")
    # the first PUBACK of a receive is read by paho's reader (it makes the receive), the rest from the buffer:
    # its released message is one write, the other two one more
    assert b"".join(released) == b"".join(bytes(p["packet"]) for p in paho_own._out_packet)
    assert len(released) == 2 and len(paho_own._out_packet) == 3
    assert sorted(paho._out_messages) == sorted(paho_own._out_messages) == list(range(4, 13))
    assert [paho._out_messages[m].state for m in range(4, 13)] == [paho_own._out_messages[m].state
                                                                   for m in range(4, 13)]


def test_a_device_s_topic_format_gives_the_template_s_own_topics():
    """Templates with specs, conversions and literal braces: the same topic as the whole template formatted."""
    from outbound.mqtt.modes import _level
    door = Door()
    door.table[11].name = "Ma{in}"
    templates = [DEFAULT_TEMPLATE, "{site}/{uid}/{load:02d}/{measurement}",
                 "{site}/{{x}}/{device!r}/{load}/{measurement:>6}",
                 "{address:>{load}}/{load}/{measurement}", "{device}/{measurement!s}/{load:x}"]
    for template in templates:
        settings = dict(SETTINGS, **{"mqtt.topic_template": template})
        mode = JsonMode(door, settings.get)
        for address, load, key in ((11, 3, "v1"), (4, 12, "i1"), (42, 0, "nokey")):
            device = door.device(address)
            fields = {"site": "plant", "server": "86C657", "device": _level(device.name) if device else str(address),
                      "uid": _level(device.uid) if device else str(address), "address": str(address)}
            sample = Sample(1_700_000_000_000, address, load, key, 1.0, "good", False)
            expected = template.format(load=load, measurement=_level(key), **fields)
            assert mode.encode([sample], 0)[0].topic == expected
