"""Why a broker session failed, said once: a code, its parameters and the English text (alarm 6's detail).

aiomqtt turns a failed TCP connect or TLS handshake into a plain ``MqttError`` carrying the OS or ssl message,
and a refused CONNACK into ``MqttConnectError`` with its return code (MQTT 3.1.1 §3.2.2.3: 4 bad user name or
password, 5 not authorised; paho names them 134 and 135 in its MQTT 5 numbering). The texts are catalogue keys
``mqtt.error.<code>`` (daemon/locale/*/mqtt.json), so the alarm reads in the page's language.
"""

import logging

import aiomqtt
from aiomqtt.exceptions import MqttCodeError, MqttConnectError

AUTH_CODES = (4, 5, 134, 135)
# (code, words of the error text that identify it), first match wins
_BY_TEXT = (
    ("tls", ("certificate", "ssl", "tls", "hostname mismatch", "handshake")),
    ("refused", ("connection refused", "errno 111")),
    ("dns", ("name or service not known", "temporary failure in name resolution", "errno -2", "errno -3",
             "nodename nor servname")),
    ("timeout", ("timed out", "timeout")),
    ("unreachable", ("no route to host", "network is unreachable", "errno 113", "errno 101")),
)
ENGLISH = {
    "auth": "the broker {host}:{port} refused the credentials ({detail})",
    "refused_by_broker": "the broker {host}:{port} refused the connection ({detail})",
    "tls": "the TLS connection to {host}:{port} failed: {detail}",
    "refused": "nothing accepts connections at {host}:{port}",
    "dns": "the broker's name {host} is not known",
    "timeout": "the broker {host}:{port} did not answer in time",
    "unreachable": "the broker {host}:{port} cannot be reached",
    "lost": "the connection to {host}:{port} was lost: {detail}",
    "other": "the connection to {host}:{port} failed: {detail}",
}


class SessionError(Exception):
    """A session's failure: ``code`` (a key of ENGLISH), ``params`` for its texts."""

    def __init__(self, code, **params):
        self.code, self.params = code, params
        Exception.__init__(self, ENGLISH[code].format(**params))

    def text(self):
        """The catalogue text of alarm 6's detail."""
        return {"key": "mqtt.error." + self.code, "params": dict(self.params)}


class Client(aiomqtt.Client):
    """aiomqtt's client, failing at once when the broker drops the connection before its CONNACK (a TLS 1.3
    server that wanted a client certificate says so after the handshake): aiomqtt would wait for its timeout."""

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None):
        if not self._connected.done():
            self._connected.set_exception(MqttCodeError(reason_code, "disconnected before the broker's CONNACK"))
            return
        aiomqtt.Client._on_disconnect(self, client, userdata, flags, reason_code, properties)


class LastError(logging.Handler):
    """The last error paho logged (its socket errors, a TLS alert, go there and not into the exception)."""

    def __init__(self):
        logging.Handler.__init__(self, logging.ERROR)
        self.text = None

    def emit(self, record):
        self.text = record.getMessage()


def classify(exc, host, port, connected, logged=None):
    """The SessionError of ``exc`` raised by a session to ``host``:``port`` (``connected``: after the CONNACK;
    ``logged``: what the client logged as an error meanwhile, the real reason of an early disconnection)."""
    detail = str(exc)[:200] or type(exc).__name__
    if logged and not connected and isinstance(exc, MqttCodeError) and not isinstance(exc, MqttConnectError):
        detail = logged[:200]
    if isinstance(exc, MqttConnectError):
        rc = getattr(exc.rc, "value", exc.rc)
        return SessionError("auth" if rc in AUTH_CODES else "refused_by_broker", host=host, port=port, detail=detail)
    if connected:
        return SessionError("lost", host=host, port=port, detail=detail)
    lowered = detail.lower()
    for code, words in _BY_TEXT:
        if any(word in lowered for word in words):
            return SessionError(code, host=host, port=port, detail=detail)
    return SessionError("other", host=host, port=port, detail=detail)
