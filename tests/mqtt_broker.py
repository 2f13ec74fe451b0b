"""Mosquitto (the Debian package) for the MQTT tests, and an independent subscriber (paho).

``Mosquitto(directory)`` writes its own configuration file and runs ``mosquitto -c`` on 127.0.0.1 on a free
port: anonymous or with a password file (mosquitto_passwd), plain or TLS (a test CA's server certificate,
optionally requiring a client certificate), with persistence so that a stop (SIGTERM, which saves the
database) and a start on the same port keep the queued messages of persistent sessions.

``Subscriber`` is a paho-mqtt client of its own (clean_session False, QoS 1, "#"): it records every message
(topic, payload, retain flag) in arrival order, across broker restarts (paho reconnects by itself).
"""

import json
import os
import shutil
import subprocess
import threading

import paho.mqtt.client as paho

from conftest import free_tcp_port
from tools.mosquitto import Broker

PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"


class Mosquitto(Broker):
    """tools/mosquitto.py's broker as the MQTT tests run it: persistent, anonymous or with a password file,
    plain or TLS (CA PEM path, server PEM path: certificate then key), optionally requiring a client
    certificate; on a free port unless ``port`` is given (a restart on the same port)."""

    def __init__(self, directory, users=None, tls=None, require_certificate=False, port=None):
        directory = str(directory)
        os.makedirs(directory, exist_ok=True)
        lines = ["persistence true", "persistence_location %s/" % directory, "log_dest stderr", "log_type error",
                 "log_type warning", "log_type notice", "max_queued_messages 100000"]
        if users:
            path = os.path.join(directory, "passwd")
            open(path, "w").close()
            for user, password in users.items():
                subprocess.run([PASSWD, "-b", path, user, password], check=True, capture_output=True)
            lines += ["allow_anonymous false", "password_file %s" % path]
        else:
            lines.append("allow_anonymous true")
        if tls:
            ca, server = tls
            lines += ["cafile %s" % ca, "certfile %s" % server, "keyfile %s" % server]
            if require_certificate:
                lines += ["require_certificate true"]
        super().__init__(directory, port or free_tcp_port(), lines)


class Subscriber:
    """Every message of ``topic`` at QoS 1 in arrival order: ``messages`` [(topic, payload bytes, retain)]."""

    def __init__(self, port, client_id="test-subscriber", topic="#", persistent=True, tls_context=None,
                 user=None, password=None):
        self.messages = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.topic = topic
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=not persistent)
        if user:
            self.client.username_pw_set(user, password)
        if tls_context is not None:
            self.client.tls_set_context(tls_context)
        self.client.on_connect = self._connected
        self.client.on_message = self._message
        self.client.on_disconnect = lambda *args: self.connected.clear()
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(20), "the subscriber could not connect"

    def _connected(self, client, _userdata, flags, reason, _properties):
        if not reason.is_failure:
            if not flags.session_present:       # a persistent session kept its subscription (and its queue)
                client.subscribe(self.topic, qos=1)
            self.connected.set()

    def _message(self, _client, _userdata, message):
        with self.lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def snapshot(self):
        with self.lock:
            return list(self.messages)

    def json(self, prefix=""):
        """[(topic, decoded payload, retain)] of the messages whose topic starts with ``prefix``."""
        return [(t, json.loads(p), r) for t, p, r in self.snapshot() if t.startswith(prefix)]

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()
