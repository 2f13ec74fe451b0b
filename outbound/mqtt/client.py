"""The publisher's client: aiomqtt for the connection, subscriptions, incoming messages and the will; the
session's messages handed straight to paho, a batch at a time (issue 19, lean).

aiomqtt's ``publish()`` is a coroutine per message: the caller's task, an Event, a ``wait_for`` and two scans of
every pending call (to check the message id and to count them). At ~200 changed values a second that was most of
the publisher's time. ``publish_batch`` gives paho a batch of messages and returns ONE future, done when paho has
reported each of them published through the same ``on_publish`` callback aiomqtt uses (QoS 1: its PUBACK; QoS 0:
written to the socket). Messages keep their call order (paho sends in order; over its in-flight window it
queues, in order), so the spool's acknowledgement rule is unchanged.

Two per-message costs of the plumbing go too, behaviour unchanged:
* paho asks its host loop to watch the socket for writing whenever it has queued a packet; aiomqtt does it with
  ``call_soon_threadsafe`` (paho may call from the executor thread that runs ``connect()``): a self-pipe write
  and read per packet. On the loop thread the writer is added directly.
* paho sends packet by packet, a system call and (on an idle connection) a TCP segment each: while it writes
  more than one, the socket is corked (Linux TCP_CORK), so they leave in as few segments as fit.
* paho reads a packet in three receive calls (command byte, length, body); its socket is wrapped so that one
  receive takes what the kernel holds and paho's reads are served from it. ``pending()`` says what is buffered,
  so aiomqtt's reader goes on until it is consumed (as it already does for TLS's buffered bytes).
* paho decodes each PUBACK into a new ReasonCode and Properties; an MQTT 3.1.1 PUBACK is the message id alone
  (§3.4), so for it those two are made once (``lean_pubacks``); MQTT 5, PUBCOMP and a PUBACK of the wrong size
  (paho's malformed-packet error) keep paho's own handler.
* issue 19, again (~550 messages a second on the reference site): a PUBACK frees a slot of paho's in-flight window
  and paho then scans every message it holds for the first one queued; the ids ``publish_batch`` saw paho queue
  are kept in order, so the next one is found at once (``_published``). PUBACKs already in the buffer of the
  one receive are handled without paho's packet reader. A QoS 1 PUBLISH under MQTT 3.1.1 is made by
  ``_lean_publish``: paho's checks, message and packet, without a ``threading.Condition`` per message (paho's
  ``MQTTMessageInfo``, for ``wait_for_publish()`` from another thread) nor its debug-log formatting.
"""

import collections
import socket
import struct
import threading

from aiomqtt.exceptions import MqttCodeError
from paho.mqtt.client import (MQTT_ERR_NO_CONN, MQTT_ERR_QUEUE_SIZE, MQTT_ERR_SUCCESS, MQTT_LOG_ERR, PUBLISH,
                              MQTTMessage, MQTTv5, mqtt_ms_invalid, mqtt_ms_publish, mqtt_ms_queued,
                              mqtt_ms_wait_for_puback, mqtt_ms_wait_for_pubrec, time_func)
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from outbound.mqtt import errors

READ_BYTES = 65536          # one receive: what the kernel holds, up to this
CORK = getattr(socket, "TCP_CORK", None)        # Linux: hold partial segments while paho writes packet by packet
MID = STR16 = struct.Struct(">H")            # a packet id; a string's length (MQTT 3.1.1 §1.5.3)
# What paho hands on_publish for every MQTT 3.1.1 PUBACK (success, no properties): made once, not per packet.
PUBACK_SUCCESS, PUBACK_NO_PROPERTIES = ReasonCode(PacketTypes.PUBACK), Properties(PacketTypes.PUBACK)


class BufferedReads:
    """paho's socket with its receives served from one larger receive; everything else is the socket's."""

    __slots__ = ("sock", "_data", "_pos")

    def __init__(self, sock):
        self.sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, size):
        if self._pos >= len(self._data):
            data = self.sock.recv(READ_BYTES)           # BlockingIOError, ssl.SSLWantReadError... as before
            if not data:
                return data                             # the end of the stream
            self._data, self._pos = data, 0
        start = self._pos
        self._pos = start + size
        return self._data[start:self._pos]

    def pending(self):
        inner = getattr(self.sock, "pending", None)
        return len(self._data) - min(self._pos, len(self._data)) + (inner() if inner is not None else 0)

    def __getattr__(self, name):
        return getattr(self.sock, name)


class _Batch:
    """Messages of one call to ``publish_batch``: the future is done once none is left unacknowledged."""

    __slots__ = ("left", "future")

    def __init__(self, future):
        self.left = 0
        self.future = future

    def one_done(self):
        self.left -= 1
        if self.left == 0 and not self.future.done():
            self.future.set_result(None)


class Client(errors.Client):
    """aiomqtt's client (with errors.Client's early CONNACK failure) and the batch path above."""

    def __init__(self, *args, **kwargs):
        errors.Client.__init__(self, *args, **kwargs)
        self._thread = threading.get_ident()            # the loop's thread (the client is made on it)
        self._batches = {}                              # message id -> its _Batch, until published
        self._queued = collections.deque()              # ids of our messages paho queued (its window was full)
        lean_pubacks(self._client, self._queued)

    def publish_batch(self, messages):
        """Hand ``messages`` (Message: topic payload qos retain) to paho now, in order; a future done when all
        are published. Raises MqttCodeError at once when paho refuses one (no connection). The QoS 1 PUBLISHes
        that go in flight at once are queued to paho as ONE write (``_queue_packets``), in their order."""
        batch = _Batch(self._loop.create_future())
        paho = self._client
        lean = paho._protocol != MQTTv5
        out_messages = paho._out_messages
        packets = []                                    # PUBLISH packets made, not yet queued to paho

        def queued_state(mid):
            message = out_messages.get(mid)
            return None if message is None else message.state
        try:
            for message in messages:
                if lean and message.qos == 1 and type(message.payload) is bytes:
                    info = _lean_publish(paho, message.topic, message.payload, 1, message.retain, packets)
                else:                                   # paho's own, after what is already made (the order)
                    _queue_packets(paho, packets)
                    info = paho.publish(message.topic, message.payload, message.qos, message.retain)
                if info.rc != MQTT_ERR_SUCCESS:
                    raise MqttCodeError(info.rc, "Could not publish message")
                if not info._published:                 # (is_published() takes its Condition's lock)
                    mid = info.mid
                    self._batches[mid] = batch
                    batch.left += 1
                    if queued_state(mid) == mqtt_ms_queued:
                        self._queued.append(mid)
        finally:
            rc = _queue_packets(paho, packets)
        if rc != MQTT_ERR_SUCCESS:
            raise MqttCodeError(rc, "Could not publish message")
        if batch.left == 0:
            batch.future.set_result(None)
        return batch.future

    def _on_publish(self, client, userdata, mid, reason_code, properties=None):
        batch = self._batches.pop(mid, None)
        if batch is None:                               # aiomqtt's own publish() (the goodbye)
            errors.Client._on_publish(self, client, userdata, mid, reason_code, properties)
            return
        batch.one_done()

    def _on_socket_open(self, client, userdata, sock):
        client._sock = BufferedReads(sock)              # paho's reads of the socket, from here on
        errors.Client._on_socket_open(self, client, userdata, sock)

    def _on_socket_register_write(self, client, userdata, sock):
        if threading.get_ident() != self._thread:       # connect() on the executor: aiomqtt's thread-safe way
            errors.Client._on_socket_register_write(self, client, userdata, sock)
            return
        self._loop.add_writer(sock.fileno(), self._writable, client)

    def _writable(self, client):
        corked = CORK is not None and len(getattr(client, "_out_packet", ())) > 1 and _cork(client, 1)
        try:
            client.loop_write()
        except Exception as exc:                        # a broken connection: the session ends with it
            if not self._disconnected.done():
                self._disconnected.set_exception(exc)
        finally:
            if corked:
                _cork(client, 0)                        # what is held leaves now, in as few segments as fit

    def _on_socket_unregister_write(self, client, userdata, sock):
        errors.Client._on_socket_unregister_write(self, client, userdata, sock)


class _Info:
    """What paho keeps of a message's ``MQTTMessageInfo`` for a QoS 1 message of ``publish_batch``: its id, its
    code and whether it was published. paho's own makes a ``threading.Condition`` per message, for a thread
    calling ``wait_for_publish()``; the batch's future is what waits here."""

    __slots__ = ("mid", "rc", "_published")

    def __init__(self, mid):
        self.mid = mid
        self.rc = MQTT_ERR_SUCCESS
        self._published = False

    def _set_as_published(self):
        self._published = True

    def is_published(self):
        return self._published


def _lean_publish(paho, topic, payload, qos, retain, packets=None):
    """paho's ``publish()`` of an MQTT 3.1.1 QoS 1 message (MQTT 3.1.1 §3.3: fixed header, remaining length,
    topic, packet id, payload), the same checks, state and packet, without its Condition per message and its
    debug-log formatting; anything else (QoS 0 or 2, a payload not bytes) is paho's own. With ``packets`` (a
    list), a packet going in flight is appended there for the caller to queue (``_queue_packets``)."""
    if qos != 1 or type(payload) is not bytes:
        return paho.publish(topic, payload, qos, retain)
    if not topic:
        raise ValueError("Invalid topic.")
    topic_bytes = topic.encode("utf-8")
    paho._raise_for_invalid_topic(topic_bytes)
    if len(payload) > 268_435_455:
        raise ValueError("Payload too large.")
    mid = paho._mid_generate()
    message = MQTTMessage.__new__(MQTTMessage)         # every slot set as MQTTMessage(mid, topic) and publish() do
    message.timestamp = time_func()
    message.dup = False
    message.mid = mid
    message._topic = topic_bytes
    message.payload = payload
    message.qos = 1
    message.retain = retain
    message.properties = None
    message.state = mqtt_ms_invalid
    message.info = info = _Info(mid)
    out = paho._out_messages
    with paho._out_message_mutex:
        if 0 < paho._max_queued_messages <= len(out) or mid in out:
            info.rc = MQTT_ERR_QUEUE_SIZE
            return info
        out[mid] = message
        if paho._max_inflight_messages == 0 or paho._inflight_messages < paho._max_inflight_messages:
            paho._inflight_messages += 1
            message.state = mqtt_ms_wait_for_puback
            if paho._sock is None:
                paho._inflight_messages -= 1
                message.state = mqtt_ms_publish
                info.rc = MQTT_ERR_NO_CONN
                return info
            packet = _publish_packet(topic_bytes, mid, payload, retain)
            if packets is None:
                info.rc = paho._packet_queue(PUBLISH, packet, mid, 1, None)
            else:
                packets.append(packet)
        else:
            message.state = mqtt_ms_queued
        return info


def _queue_packets(paho, packets):
    """Queue ``packets`` (QoS 1 PUBLISHes, in order) to paho as one write, and empty the list. paho's writer
    sends a packet's bytes as they are and, for QoS 1, keeps nothing else of it (the message awaiting its PUBACK
    is in ``_out_messages``): one packet dict, one send and one TCP segment (as far as fits) for a batch, not one
    each (issue 19, target 6)."""
    if not packets:
        return MQTT_ERR_SUCCESS
    data = packets[0] if len(packets) == 1 else b"".join(packets)
    packets.clear()
    if paho._sock is None:
        return MQTT_ERR_NO_CONN
    return paho._packet_queue(PUBLISH, data, 0, 1, None)


def _publish_packet(topic, mid, payload, retain):
    """A QoS 1 PUBLISH packet (MQTT 3.1.1 §3.3), not a duplicate."""
    remaining = 2 + len(topic) + 2 + len(payload)
    if remaining > 268_435_455:
        raise ValueError("Packet too large")           # where paho's _pack_remaining_length raises it
    packet = bytearray((PUBLISH | 2 | (1 if retain else 0),))
    while True:                                         # §2.2.3: 7 bits a byte, the high bit "more follows"
        byte, remaining = remaining & 0x7F, remaining >> 7
        packet.append(byte | 0x80 if remaining else byte)
        if not remaining:
            break
    packet += STR16.pack(len(topic))
    packet += topic
    packet += STR16.pack(mid)
    packet += payload
    return packet


def _cork(client, on):
    """TCP_CORK on paho's socket (True when set); a socket that refuses it is written as before."""
    sock = client._sock
    try:
        sock.setsockopt(socket.IPPROTO_TCP, CORK, on)
    except (OSError, AttributeError):
        return False
    return True


def lean_pubacks(paho, queued=None):
    """Give ``paho`` (a paho.mqtt Client speaking MQTT 3.1.1) the PUBACK handler above; paho's own otherwise.
    ``queued``: the ids, in order, of the messages ``publish_batch`` saw paho queue behind its in-flight window."""
    handle = getattr(paho, "_handle_pubackcomp", None)
    if handle is None or getattr(paho, "_protocol", MQTTv5) == MQTTv5 \
            or getattr(paho, "_callback_api_version", None) != CallbackAPIVersion.VERSION2:
        return
    queued = collections.deque() if queued is None else queued

    def pubackcomp(cmd):
        packet = paho._in_packet["packet"]
        if cmd != "PUBACK" or len(packet) != 2:
            return handle(cmd)
        mid, = MID.unpack(packet)
        with paho._out_message_mutex:
            if mid in paho._out_messages:               # only the first PUBACK of a message counts (as paho)
                return _published(paho, mid, queued)
        return MQTT_ERR_SUCCESS
    paho._handle_pubackcomp = pubackcomp
    read = paho._packet_read

    def packet_read():
        # The whole PUBACKs (0x40, 2, the id: §3.4) already received, at a packet's start: handled here, not through
        # paho's three reads and its packet dict (PUBACKs come back ~550 a second at the reference site's pace),
        # all of them at once: the queued messages they let go leave as one write.
        sock = paho._sock
        if paho._in_packet["command"] == 0 and type(sock) is BufferedReads:
            data, pos = sock._data, sock._pos
            if len(data) - pos >= 4 and data[pos] == 0x40 and data[pos + 1] == 2:
                rc, sends = MQTT_ERR_SUCCESS, []
                with paho._out_message_mutex:
                    while len(data) - pos >= 4 and data[pos] == 0x40 and data[pos + 1] == 2:
                        mid = (data[pos + 2] << 8) | data[pos + 3]
                        pos += 4
                        sock._pos = pos
                        if mid in paho._out_messages:
                            rc = _published(paho, mid, queued, sends)
                            if rc != MQTT_ERR_SUCCESS:
                                break
                    sent = _queue_packets(paho, sends)
                with paho._msgtime_mutex:
                    paho._last_bytes_received = time_func()
                return rc if rc != MQTT_ERR_SUCCESS else sent
        return read()
    paho._packet_read = packet_read


def _published(paho, mid, queued, sends=None):
    """paho's ``_do_on_publish`` for a QoS 1 message, with its ``_update_inflight`` made O(1): paho scans every
    message it holds (~100 in flight) at each PUBACK to find the first one queued; the queued ones are the ids
    ``publish_batch`` put in ``queued``, in publish order (paho's order too). Anything else queued (aiomqtt's
    own publish, the goodbye) goes by paho's scan once ours are out, in that order as paho would. A queued
    MQTT 3.1.1 QoS 1 message is sent with ``_publish_packet`` (paho's ``_send_publish`` makes the same bytes,
    and formats a debug log line each); with ``sends`` (a list) its packet is appended there, in order, for
    the caller to queue with the others (``_queue_packets``)."""
    on_publish = paho.on_publish
    if on_publish:
        with paho._in_callback_mutex:
            try:
                on_publish(paho, paho._userdata, mid, PUBACK_SUCCESS, PUBACK_NO_PROPERTIES)
            except Exception as err:
                paho._easy_log(MQTT_LOG_ERR, "Caught exception in on_publish: %s", err)
                if not paho.suppress_exceptions:
                    raise
    message = paho._out_messages.pop(mid)
    message.info._set_as_published()
    if message.qos == 0:
        return MQTT_ERR_SUCCESS
    paho._inflight_messages -= 1
    limit = paho._max_inflight_messages
    if limit <= 0:
        return MQTT_ERR_SUCCESS
    out = paho._out_messages
    while queued and paho._inflight_messages < limit:
        message = out.get(queued.popleft())
        if message is None or message.state != mqtt_ms_queued:
            continue                                    # sent or dropped meanwhile by paho itself
        paho._inflight_messages += 1
        message.state = mqtt_ms_wait_for_puback if message.qos == 1 else mqtt_ms_wait_for_pubrec
        if message.qos == 1 and not message.dup and type(message.payload) is bytes and paho._sock is not None:
            packet = _publish_packet(message._topic, message.mid, message.payload, message.retain)
            if sends is not None:
                sends.append(packet)
                continue
            rc = paho._packet_queue(PUBLISH, packet, message.mid, 1, None)
        else:
            if sends:
                _queue_packets(paho, sends)             # what was made first leaves first
            rc = paho._send_publish(message.mid, message.topic.encode("utf-8"), message.payload, message.qos,
                                    message.retain, message.dup, properties=message.properties)
        if rc != MQTT_ERR_SUCCESS:
            return rc
    if not queued and len(out) > paho._inflight_messages:
        if sends:
            _queue_packets(paho, sends)
        return paho._update_inflight()                  # queued by someone else: paho's scan, as before
    return MQTT_ERR_SUCCESS
