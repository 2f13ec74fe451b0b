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
