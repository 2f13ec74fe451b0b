"""The MQTT publisher's settings: what a connection needs, and the rules a change must keep.

The client certificate and key are PEM texts kept in settings rows (the key secret at rest, as push.password).
A settings value is one line (no control characters), and a browser's one-line field drops the line breaks of a
pasted PEM: ``pem_blocks`` reads a PEM with or without them. ``check`` is the settings' cross-check
(``Door.check_settings_with``): a malformed template, certificate or key, or a key that is not the
certificate's, is refused field by field and nothing changes.
"""

import collections
import os
import re
import ssl
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from daemon.i18n import Message
from daemon.state.settings import SettingError
from outbound.mqtt.modes import template_problem

# settings whose change needs a new connection (the others apply on the next sample)
RECONNECT = ("mqtt.host", "mqtt.port", "mqtt.tls", "mqtt.client_id", "mqtt.keep_alive_s", "mqtt.user",
             "mqtt.password", "mqtt.client_cert", "mqtt.client_key", "mqtt.mode", "mqtt.qos", "mqtt.topic_template",
             "mqtt.group_id", "mqtt.edge_node_id", "mqtt.primary_host_id", "push.site_name", "push.server_name")

_PEM = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.S)

Connection = collections.namedtuple("Connection", "host port tls client_id keep_alive user password cert key")


def pem_blocks(text):
    """[(label, PEM text with its line breaks)] of every PEM block in ``text`` (line breaks optional)."""
    out = []
    for label, body in _PEM.findall(text or ""):
        body = re.sub(r"\s+", "", body)
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        out.append((label, "-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label, "\n".join(lines), label)))
    return out


def connection(get, netid):
    """The connection the settings describe now (``get``: a setting's value by name)."""
    cert = "".join(pem for label, pem in pem_blocks(get("mqtt.client_cert")) if label == "CERTIFICATE")
    key = "".join(pem for label, pem in pem_blocks(get("mqtt.client_key")) if label.endswith("PRIVATE KEY"))
    return Connection(get("mqtt.host"), get("mqtt.port"), bool(get("mqtt.tls")), get("mqtt.client_id") or netid,
                      get("mqtt.keep_alive_s"), get("mqtt.user") or None, get("mqtt.password") or None,
                      cert or None, key or None)


def _certificate_problem(cert_text, key_text):
    """(field, catalogue key) of the first problem of the client certificate and key, or None."""
    certs = [pem for label, pem in pem_blocks(cert_text) if label == "CERTIFICATE"]
    keys = [pem for label, pem in pem_blocks(key_text) if label.endswith("PRIVATE KEY")]
    if cert_text and not certs:
        return "mqtt.client_cert", "mqtt.problem.not_certificate"
    if key_text and not keys:
        return "mqtt.client_key", "mqtt.problem.not_key"
    if bool(certs) != bool(keys):
        return ("mqtt.client_key" if certs else "mqtt.client_cert"), "mqtt.problem.pair_incomplete"
    if not certs:
        return None
    try:
        parsed = x509.load_pem_x509_certificate(certs[0].encode("ascii"))
    except ValueError:
        return "mqtt.client_cert", "mqtt.problem.not_certificate"
    try:
        key = serialization.load_pem_private_key(keys[0].encode("ascii"), password=None)
    except (ValueError, TypeError):         # TypeError: an encrypted key (no passphrase to open it)
        return "mqtt.client_key", "mqtt.problem.not_key"
    public = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if parsed.public_key().public_bytes(*public) != key.public_key().public_bytes(*public):
        return "mqtt.client_key", "mqtt.problem.key_mismatch"
    return None


def _sparkplug_id_problem(value):
    return "+" in value or "#" in value or "/" in value


def problems(get):
    """[(field, Message)] of what is wrong with the mqtt.* settings ``get`` gives (empty: usable)."""
    found = []
    why = template_problem(get("mqtt.topic_template"))
    if why is not None:
        found.append(("mqtt.topic_template", Message("mqtt.problem.template", why=why)))
    for name in ("mqtt.group_id", "mqtt.edge_node_id", "mqtt.primary_host_id", "mqtt.client_id"):
        if _sparkplug_id_problem(get(name)):
            found.append((name, Message("mqtt.problem.topic_characters")))
    problem = _certificate_problem(get("mqtt.client_cert"), get("mqtt.client_key"))
    if problem is not None:
        found.append((problem[0], Message(problem[1])))
    if (get("mqtt.client_cert") or get("mqtt.client_key")) and not get("mqtt.tls"):
        found.append(("mqtt.client_cert", Message("mqtt.problem.cert_without_tls")))
    if get("mqtt.password") and not get("mqtt.user"):
        found.append(("mqtt.user", Message("mqtt.problem.password_without_user")))
    if get("mqtt.enabled") and not get("mqtt.host"):
        found.append(("mqtt.host", Message("mqtt.problem.no_host")))
    return found


def check(proposed):
    """The settings' cross-check: SettingError naming each refused field (``proposed``: every setting)."""
    found = problems(proposed.get)
    if found:
        raise SettingError([Message("error.field", name=name, problem=problem) for name, problem in found], found)


def client_context(make_context, conn, directory):
    """The SSLContext of one connection (blocking: run it off the loop): the gateway's client context (the CA
    store only, the host name checked) with the client certificate when there is one (``ssl`` loads a key from
    a file only: a 0600 file in ``directory``, the state directory, removed at once)."""
    context = make_context()
    if conn.cert:
        handle, path = tempfile.mkstemp(prefix=".mqtt-client-", suffix=".pem", dir=directory)
        try:
            with os.fdopen(handle, "w") as out:
                out.write(conn.cert + conn.key)
            context.load_cert_chain(path)
        finally:
            os.unlink(path)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context
