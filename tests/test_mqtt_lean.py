"""The MQTT publisher's lean paths (issue 19, target 6): what they keep of the behaviour.

* The spool's cursor is written at most once a second: a close still writes it at once; a cut before it was
  written sends the acknowledged samples again and skips none (at least once, MQTT 3.1.1 §4.3.2's QoS 1).
* paho's reads of the socket are served from one receive: the bytes come back the same, in order, and
  ``pending()`` says what is held, so the reader goes on until it is consumed; the end of the stream and "no
  data yet" reach paho as before. The frames are PUBACKs as MQTT 3.1.1 §3.4 defines them (0x40, 2, the id).
* MQTT 3.1.1 PUBACKs handled without a ReasonCode and Properties per packet: on_publish sees what paho's own
  handler gives it, for the same packets (a duplicate, an unknown id, a malformed one).
"""

import asyncio
import socket
import struct
import time

import paho.mqtt.client as mqtt
import pytest

from outbound.mqtt import client as mqtt_client, spool as spool_mod
from outbound.mqtt.modes import Sample
from outbound.mqtt.spool import SampleSpool
from test_mqtt_spool import read_all                    # the spool's records from a position, as the sender reads


def sample(n):
    return Sample(1_700_000_000_000 + n * 1000, 5, 1, "v1", 230.0 + n / 10, "good", False)


def test_many_acks_write_the_cursor_once_and_a_close_writes_it_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_mod, "CURSOR_EVERY_S", 3600.0)    # the delay never ends within the test
    writes = []
    save = spool_mod._save_cursor
    monkeypatch.setattr(spool_mod, "_save_cursor", lambda *args: (writes.append(args[1]), save(*args)))

    async def first():
        spool = SampleSpool(str(tmp_path), 10 ** 6)
        await spool.open()
        for n in range(30):
            spool.append(sample(n))
        await spool.flush()
        records = await read_all(spool)
        for record in records[:20]:                     # twenty acknowledgements, the executor's turn between
            spool.ack(record[1])
            await spool_mod.run_blocking(lambda: None)
        await spool.close()
        return records[19][1]
    acked = asyncio.run(first())
    assert writes == [acked]                            # one write, of the last position, by the close

    async def second():
        spool = SampleSpool(str(tmp_path), 10 ** 6)
        await spool.open()
        return [s for s, _p in await read_all(spool)]
    assert asyncio.run(second()) == [sample(n) for n in range(20, 30)]


def test_a_cut_before_the_cursor_is_written_sends_again_and_skips_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(spool_mod, "CURSOR_EVERY_S", 3600.0)

    async def go():
        spool = SampleSpool(str(tmp_path), 10 ** 6)
        await spool.open()
        for n in range(10):
            spool.append(sample(n))
        await spool.flush()
        records = await read_all(spool)
        spool.ack(records[4][1])                        # acknowledged; its cursor not written yet: the cut
        after_cut = SampleSpool(str(tmp_path), 10 ** 6)
        await after_cut.open()
        again = [s for s, _p in await read_all(after_cut)]
        await spool.close()                             # (the test's own clean-up)
        return again
    assert asyncio.run(go()) == [sample(n) for n in range(10)]


class CountingSocket:
    def __init__(self, sock):
        self.sock, self.recvs = sock, 0

    def recv(self, size):
        self.recvs += 1
        return self.sock.recv(size)

    def fileno(self):
        return self.sock.fileno()


def puback(mid):
    return struct.pack(">BBH", 0x40, 2, mid)


def test_buffered_reads_give_paho_the_same_bytes_from_one_receive():
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    try:
        counting = CountingSocket(ours)
        wrapped = mqtt_client.BufferedReads(counting)
        with pytest.raises(BlockingIOError):            # nothing yet: paho sees "try again", as before
            wrapped.recv(1)
        broker.sendall(b"".join(puback(mid) for mid in (1, 2, 300)))
        got = []
        for _ in range(3):                              # paho's way: command byte, length byte, the rest
            command = wrapped.recv(1)
            length = wrapped.recv(1)
            body = wrapped.recv(length[0])
            got.append((command[0], length[0], struct.unpack(">H", body)[0]))
            if len(got) < 3:
                assert wrapped.pending() == 4 * (3 - len(got))
        assert got == [(0x40, 2, 1), (0x40, 2, 2), (0x40, 2, 300)]
        assert counting.recvs == 2                      # the one that came empty-handed, then one for all
        assert wrapped.pending() == 0
        assert wrapped.fileno() == ours.fileno()        # everything else is the socket's
        broker.close()
        assert wrapped.recv(1) == b""                   # the end of the stream: paho's "connection lost"
    finally:
        ours.close()
        try:
            broker.close()
        except OSError:
            pass


def pubacks_seen(lean, packets):
    """What on_publish receives, and what paho still awaits, after ``packets`` (PUBACK bodies) come for a
    client that published three QoS 1 messages (not connected: paho keeps them awaiting their PUBACK)."""
    paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if lean:
        mqtt_client.lean_pubacks(paho)
    seen = []
    paho.on_publish = lambda _c, _u, mid, reason, props: seen.append((mid, reason.value, reason.getName(),
                                                                      props.json()))
    mids = [paho.publish("site/gw/m/1/v1", b"230", 1).mid for _ in range(3)]
    errors = []
    for body in packets(mids):
        paho._in_packet = {"command": 0x40, "packet": bytearray(body)}
        try:
            paho._handle_pubackcomp("PUBACK")
        except Exception as exc:                        # paho's _packet_read turns it into a protocol error
            errors.append(type(exc).__name__)
    return seen, sorted(paho._out_messages), errors


def test_lean_pubacks_do_what_paho_does_for_mqtt_3_1_1():
    def packets(mids):
        return [struct.pack(">H", mids[1]), struct.pack(">H", mids[1]),     # the second one twice
                struct.pack(">H", 999),                                     # an id paho does not await
                struct.pack(">H", mids[0]) + b"\x00"]                       # 3 bytes: malformed in 3.1.1
    ours, paho_own = pubacks_seen(True, packets), pubacks_seen(False, packets)
    assert ours == paho_own
    seen, awaiting, errors = ours
    assert [mid for mid, *_ in seen] == [2] and awaiting == [1, 3] and errors == ["MalformedPacket"]


def test_batches_over_the_inflight_window_all_arrive_in_order_without_paho_scanning(tmp_path, monkeypatch):
    """More messages than paho's in-flight window (MQTT 3.1.1 §4.3.2: QoS 1, each PUBACKed): every one reaches a
    subscriber of a real Mosquitto, once, in publish order, every batch's future is done, and the queued ones
    were sent as PUBACKs freed the window without paho's scan of every message it holds."""
    from mqtt_broker import Mosquitto, Subscriber
    from paho.mqtt.client import Client as PahoClient

    from outbound.mqtt.modes import Message
    scans = []
    scan = PahoClient._update_inflight
    monkeypatch.setattr(PahoClient, "_update_inflight", lambda self: scans.append(1) or scan(self))
    broker = Mosquitto(tmp_path / "broker").start()
    subscriber = Subscriber(broker.port, topic="lean/#")
    try:
        async def publish():
            async with mqtt_client.Client("127.0.0.1", broker.port, identifier="lean-window", clean_session=True,
                                          max_inflight_messages=7) as client:
                batches = [[Message("lean/%d" % (b * 40 + i), b"%d" % (b * 40 + i), 1, False) for i in range(40)]
                           for b in range(5)]
                futures = [client.publish_batch(batch) for batch in batches]
                assert len(client._queued) == 200 - 7           # paho's window took 7, the rest were queued
                await asyncio.wait_for(asyncio.gather(*futures), 30)
                assert client._client._out_messages == {} and client._client._inflight_messages == 0
        asyncio.run(publish())
        deadline = time.monotonic() + 20
        while len(subscriber.snapshot()) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [payload for _t, payload, _r in subscriber.snapshot()] == [b"%d" % n for n in range(200)]
        assert scans == []
    finally:
        subscriber.close()
        broker.close()


def stream_seen(lean, stream):
    """on_publish's calls and the ids paho still awaits after ``stream`` (bytes from the broker) is read by
    paho's loop_read, for a client that published three QoS 1 messages; paho's reads: how many."""
    paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    if lean:
        mqtt_client.lean_pubacks(paho)
    seen = []
    paho.on_publish = lambda _c, _u, mid, reason, props: seen.append((mid, reason.value, props.json()))
    mids = [paho.publish("site/gw/m/1/v1", b"230", 1).mid for _ in range(3)]
    ours, broker = socket.socketpair()
    ours.setblocking(False)
    try:
        paho._sock = mqtt_client.BufferedReads(ours) if lean else ours
        broker.sendall(stream(mids))
        for _ in range(3):
            paho.loop_read()
        return seen, sorted(paho._out_messages)
    finally:
        paho._sock = None
        ours.close()
        broker.close()


def test_pubacks_read_from_the_buffer_are_handled_as_paho_reads_them():
    """Several PUBACKs in one receive (MQTT 3.1.1 §3.4: 0x40, 2, the id), a duplicate, an unknown id and a
    PINGRESP (§3.13: 0xD0, 0) between them: on_publish sees what it sees with paho's own reader."""
    def stream(mids):
        return b"".join([puback(mids[1]), puback(mids[1]), puback(999), b"\xd0\x00", puback(mids[0]),
                         puback(mids[2])])
    ours, paho_own = stream_seen(True, stream), stream_seen(False, stream)
    assert ours == paho_own
    assert [mid for mid, *_ in ours[0]] == [2, 1, 3] and ours[1] == []


@pytest.mark.parametrize("payload_size, retain", [(0, False), (70, True), (200, False), (20000, True)])
def test_lean_publish_queues_the_packet_and_message_paho_would(payload_size, retain):
    """The QoS 1 PUBLISH of publish_batch, byte for byte paho's (MQTT 3.1.1 §3.3: the remaining length over 1, 2
    and 3 bytes, §2.2.3), and the message paho keeps awaiting its PUBACK: same id, topic, payload, state."""
    payload = bytes(range(256)) * (payload_size // 256) + bytes(payload_size % 256)
    queued = []
    for lean in (True, False):
        paho = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        paho._sock = object()                           # "connected": paho queues the packet for the writer
        paho._call_socket_register_write = lambda: None
        topic = "site/gw/m\u00e8tre/1/v1"
        info = mqtt_client._lean_publish(paho, topic, payload, 1, retain) if lean else \
            paho.publish(topic, payload, 1, retain)
        message = paho._out_messages[info.mid]
        queued.append((info.rc, info.mid, info.is_published(), bytes(paho._out_packet[0]["packet"]),
                       message.topic, message.payload, message.qos, message.retain, message.state, message.dup))
        paho._sock = None
    assert queued[0] == queued[1]
    with pytest.raises(ValueError):
        mqtt_client._lean_publish(mqtt.Client(mqtt.CallbackAPIVersion.VERSION2), "site/+/v1", b"1", 1, False)
