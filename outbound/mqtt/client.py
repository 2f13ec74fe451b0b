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
"""

import socket
import struct
import threading

from aiomqtt.exceptions import MqttCodeError
from paho.mqtt.client import MQTT_ERR_SUCCESS, MQTTv5
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from outbound.mqtt import errors

READ_BYTES = 65536          # one receive: what the kernel holds, up to this
CORK = getattr(socket, "TCP_CORK", None)        # Linux: hold partial segments while paho writes packet by packet
MID = struct.Struct(">H")
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
        lean_pubacks(self._client)

    def publish_batch(self, messages):
        """Hand ``messages`` (Message: topic payload qos retain) to paho now, in order; a future done when all
        are published. Raises MqttCodeError at once when paho refuses one (no connection)."""
        batch = _Batch(self._loop.create_future())
        publish = self._client.publish
        for message in messages:
            info = publish(message.topic, message.payload, message.qos, message.retain)
            if info.rc != MQTT_ERR_SUCCESS:
                raise MqttCodeError(info.rc, "Could not publish message")
            if not info.is_published():
                self._batches[info.mid] = batch
                batch.left += 1
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


def _cork(client, on):
    """TCP_CORK on paho's socket (True when set); a socket that refuses it is written as before."""
    sock = client._sock
    try:
        sock.setsockopt(socket.IPPROTO_TCP, CORK, on)
    except (OSError, AttributeError):
        return False
    return True


def lean_pubacks(paho):
    """Give ``paho`` (a paho.mqtt Client speaking MQTT 3.1.1) the PUBACK handler above; paho's own otherwise."""
    handle = getattr(paho, "_handle_pubackcomp", None)
    if handle is None or getattr(paho, "_protocol", MQTTv5) == MQTTv5:
        return

    def pubackcomp(cmd):
        packet = paho._in_packet["packet"]
        if cmd != "PUBACK" or len(packet) != 2:
            return handle(cmd)
        mid, = MID.unpack(packet)
        with paho._out_message_mutex:
            if mid in paho._out_messages:               # only the first PUBACK of a message counts (as paho)
                return paho._do_on_publish(mid, PUBACK_SUCCESS, PUBACK_NO_PROPERTIES)
        return MQTT_ERR_SUCCESS
    paho._handle_pubackcomp = pubackcomp
