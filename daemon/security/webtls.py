"""The gateway's TLS state: the web certificate and key the HTTPS server uses, and the CA store (issue 15).

Both live in ``<state>/tls/``, apart from the configuration:

- ``web.json``: ``{"certificate": PEM, "key": sealed}``, one file replaced atomically so the certificate and
  its key change together. The private key is sealed (AES-256-GCM, ``daemon/security/sealed.py``) under
  the device key ``<state>/device.key`` with ``tls.web.key`` as associated data, so neither the
  configuration nor this file alone reveals it; the file is mode 0600 as well.
- ``ca.json``: ``{"certificates": [PEM, ...]}``, the CAs the gateway's own TLS clients (FTPS, SMTPS, HTTPS
  push, MQTT over TLS) trust. Only these: ``client_context`` does not add the system's CAs, as the M-70's
  own store works (WEBVIEW-M manual §9.4) — a site decides whom its gateway trusts.

On first start ``start`` makes a self-signed certificate for the gateway's own names (``own_names``) so HTTPS
works out of the box. Every check and write is CPU or disk work and runs off the loop (``run_blocking``);
the summaries the pages and alarm 7 read are kept in memory. ``server_context`` gives the HTTPS server a
new ``ssl.SSLContext`` (TLS 1.2 and later) after each change: connections accepted from then on use it.
"""

import asyncio
import contextlib
import datetime
import json
import logging
import os
import socket
import ssl
import tempfile

from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from daemon.atomicfile import atomic_write, read_json
from daemon.blocking import run_blocking
from daemon.security import tlsfiles
from daemon.security.secrets import SecretBox

log = logging.getLogger("gateway.tls")

TLS_DIR = "tls"
WEB_FILE = "web.json"
CA_FILE = "ca.json"
KEY_NAME = "tls.web.key"            # the sealed key's associated data: it opens as this and nothing else
MAX_CA_STORE = 50                   # CAs in the store (an upload of more is refused)
WEB_SOURCE = "certificate:web"      # alarm 7's sources: the web certificate, each CA by its fingerprint
CA_SOURCE = "certificate:ca:"
OWN_ORGANIZATION = "open-m70 gateway (self-signed)"      # the O= of tlsfiles.self_signed: ours to renew


class StoreRefused(ValueError):
    """A CA store operation refused as a whole: ``key`` is a catalogue key (tls.*)."""

    def __init__(self, key, message):
        super().__init__(message)
        self.key = key


def own_names(get):
    """The gateway's own names and addresses for its self-signed certificate (``get``: a setting)."""
    names = []
    host = socket.gethostname()
    domain = get("network.domain")
    for name in (host, "%s.%s" % (host, domain) if domain and host else "", "localhost"):
        if name and name.isascii() and name not in names:
            names.append(name)
    for address in ("127.0.0.1", "::1", get("network.address"), get("http.bind")):
        if address and address not in ("0.0.0.0", "::") and tlsfiles._is_ip(address) and address not in names:
            names.append(address)
    return names


def fingerprint_id(summary):
    """A CA's id in the store and in URLs: its SHA-256 fingerprint as lowercase hex, without colons."""
    return summary["sha256"].replace(":", "").lower()


def _self_signed(certificate):
    return certificate.issuer == certificate.subject


def _ours_to_renew(cert_pem, now):
    """Whether the stored certificate is the gateway's own self-signed one and expired or within 30 days of its
    end: made again at start rather than left to alarm 7 (a certificate someone installed is theirs to renew)."""
    leaf = tlsfiles.load_certificates(cert_pem)[0]
    ours = _self_signed(leaf) and any(attribute.value == OWN_ORGANIZATION for attribute in
                                      leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return ours and tlsfiles.expiry_state(leaf.not_valid_after_utc.timestamp(), now) != "valid"


def _web_summary(cert_pem):
    leaf = tlsfiles.load_certificates(cert_pem)[0]
    info = tlsfiles.summary(leaf)
    info["self_signed"] = _self_signed(leaf)
    return info


def _ca_summaries(pems):
    out = []
    for pem in pems:
        leaf = tlsfiles.load_certificates(pem)[0]
        info = tlsfiles.summary(leaf)
        info["id"] = fingerprint_id(info)
        out.append(info)
    return out


@contextlib.contextmanager
def _private_file(data, directory):
    """A path holding ``data`` for OpenSSL to read, as private as the system allows: an anonymous memory file
    (never on disk) where Linux has one, else a 0600 file in ``directory`` removed at once."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("gateway-tls", os.MFD_CLOEXEC)
        try:
            os.write(fd, data)
            yield "/proc/self/fd/%d" % fd
        finally:
            os.close(fd)
        return
    handle = tempfile.NamedTemporaryFile(dir=directory, delete=False)       # mode 0600
    try:
        handle.write(data)
        handle.close()
        yield handle.name
    finally:
        os.unlink(handle.name)


def server_context(cert_pem, key_pem, directory):
    """An SSLContext serving ``cert_pem`` with ``key_pem``: TLS 1.2 and later, the ssl module's ciphers."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with _private_file(key_pem + b"\n" + cert_pem, directory) as path:
        context.load_cert_chain(path)
    return context


class WebTls:
    """The web certificate and the CA store of one state directory; the loop's side of them."""

    def __init__(self, state_dir):
        self.directory = os.path.join(state_dir, TLS_DIR)
        self._key_path = os.path.join(state_dir, "device.key")
        self.web = None             # summary of the served certificate
        self.cas = []               # summaries of the CA store, in the order they were added
        self.context = None         # the HTTPS server's SSLContext for new connections
        self._ca_pems = []
        self._lock = asyncio.Lock()
        self._listeners = []

    def on_change(self, listener):
        """``listener()`` after the web certificate or the CA store changed (HTTPS server, alarm 7)."""
        self._listeners.append(listener)

    def _changed(self):
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("TLS change listener failed")

    # ---------------------------------------------------------------- blocking parts (off the loop)

    def _box(self):
        return SecretBox.for_state_dir(os.path.dirname(self._key_path))   # the settings' device key

    def _read_web(self):
        """(cert PEM, key PEM) stored, or None (no file, or one this device's key cannot open)."""
        doc = read_json(os.path.join(self.directory, WEB_FILE))
        if not doc:
            return None
        try:
            key = self._box().decrypt(KEY_NAME, doc["key"])
            if key is None:
                raise ValueError("the private key does not open with this device's key")
            return doc["certificate"].encode("ascii"), key.encode("ascii")
        except (KeyError, AttributeError, ValueError) as exc:
            log.error("the stored web certificate cannot be used (%s): a new self-signed one is made", exc)
            return None

    def _write_web(self, cert_pem, key_pem):
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        sealed = self._box().encrypt(KEY_NAME, key_pem.decode("ascii"))
        atomic_write(os.path.join(self.directory, WEB_FILE),
                     (b'{"certificate":%s,"key":"%s"}' % (_json_text(cert_pem), sealed.encode("ascii"))))

    def _load(self, names, now):
        """Read (or first make) the web certificate, read the CA store; (web summary, context, CA PEMs)."""
        pair = None
        try:
            pair = self._read_web()
            if pair is not None and _ours_to_renew(pair[0], now):
                log.warning("the gateway's self-signed web certificate is expired or expires within %d days: "
                            "a new one is made", tlsfiles.EXPIRY_WARNING_DAYS)
                pair = None
        except ValueError as exc:
            pair = None
            log.error("%s is damaged (%s): a new self-signed certificate is made", WEB_FILE, exc)
        made = pair is None
        if made:
            pair = tlsfiles.self_signed(names, now)
            self._write_web(*pair)
        try:
            context = server_context(pair[0], pair[1], self.directory)
        except ssl.SSLError as exc:                 # a file that parsed but OpenSSL refuses: start over
            log.error("the stored web certificate is refused by OpenSSL (%s): a new self-signed one is made", exc)
            pair, made = tlsfiles.self_signed(names, now), True
            self._write_web(*pair)
            context = server_context(pair[0], pair[1], self.directory)
        try:
            doc = read_json(os.path.join(self.directory, CA_FILE)) or {}
            pems = [pem.encode("ascii") for pem in doc.get("certificates", [])]
            _ca_summaries(pems)
        except (ValueError, AttributeError, TypeError) as exc:
            log.error("%s is damaged (%s): the CA store starts empty", CA_FILE, exc)
            pems = []
        return _web_summary(pair[0]), context, pems, made

    def _install(self, cert_pem, key_pem, now):
        tlsfiles.check_pair(cert_pem, key_pem, now)
        cert, key = _bytes(cert_pem), _bytes(key_pem)
        try:
            context = server_context(cert, key, self.directory)
        except ssl.SSLError as exc:
            raise tlsfiles.TlsRefused("certificate", "tls.not_certificate", "OpenSSL refuses the pair: %s"
                                      % exc.reason) from None
        self._write_web(cert, key)
        return _web_summary(cert), context

    def _regenerate(self, names, now):
        pair = tlsfiles.self_signed(names, now)
        context = server_context(pair[0], pair[1], self.directory)
        self._write_web(*pair)
        return _web_summary(pair[0]), context

    def _write_cas(self, pems):
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        atomic_write(os.path.join(self.directory, CA_FILE),
                     b'{"certificates":[%s]}' % b",".join(_json_text(pem) for pem in pems))

    def _add_cas(self, pem, now, current):
        found = tlsfiles.check_ca(pem, now)
        certificates = tlsfiles.load_certificates(pem, "ca")
        known = set(fingerprint_id(info) for info in _ca_summaries(current))
        added, pems = [], list(current)
        for info, certificate in zip(found, certificates):
            if fingerprint_id(info) in known:
                continue
            known.add(fingerprint_id(info))
            info["id"] = fingerprint_id(info)
            pems.append(certificate.public_bytes(Encoding.PEM))
            added.append(info)
        if len(pems) > MAX_CA_STORE:
            raise StoreRefused("tls.store_full", "the CA store holds at most %d certificates" % MAX_CA_STORE)
        if added:
            self._write_cas(pems)
        return added, pems

    # ---------------------------------------------------------------- the loop's side

    async def start(self, names, now):
        """Load the stored material, making the first self-signed certificate when there is none."""
        async with self._lock:
            self.web, self.context, self._ca_pems, made = await run_blocking(self._load, names, now)
            self.cas = _ca_summaries(self._ca_pems)
        if made:
            log.info("self-signed web certificate made for %s", ", ".join(names))
        return made

    async def install(self, cert_pem, key_pem, now):
        """Check the pair (tlsfiles.check_pair: TlsRefused naming the field), store it, serve it from now on."""
        async with self._lock:
            self.web, self.context = await run_blocking(self._install, cert_pem, key_pem, now)
        self._changed()
        return self.web

    async def regenerate(self, names, now):
        async with self._lock:
            self.web, self.context = await run_blocking(self._regenerate, names, now)
        self._changed()
        return self.web

    async def add_cas(self, pem, now):
        """Add the CA certificates of ``pem`` (those already there are kept once); the summaries added."""
        async with self._lock:
            added, pems = await run_blocking(self._add_cas, pem, now, list(self._ca_pems))
            self._ca_pems, self.cas = pems, _ca_summaries(pems)
        if added:
            self._changed()
        return added

    async def delete_ca(self, ca_id):
        """Remove the CA whose fingerprint id is ``ca_id``; False when there is none."""
        async with self._lock:
            kept = [pem for pem, info in zip(self._ca_pems, self.cas) if info["id"] != ca_id]
            if len(kept) == len(self._ca_pems):
                return False
            await run_blocking(self._write_cas, kept)
            self._ca_pems, self.cas = kept, _ca_summaries(kept)
        self._changed()
        return True

    def client_context(self):
        """An SSLContext for the gateway's own TLS clients: verifies servers (and their names) against the CA
        store only; an empty store trusts nobody."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self._ca_pems:
            context.load_verify_locations(cadata=b"\n".join(self._ca_pems).decode("ascii"))
        return context

    def alarm_states(self, now):
        """{source: detail} of every certificate alarm 7 is about (expired or expiring), and the sources of
        those that are fine ({source: None}), so the caller raises and clears in one pass."""
        states = {}
        entries = [(WEB_SOURCE, "web certificate", self.web)] if self.web else []
        entries += [(CA_SOURCE + info["id"][:16], "CA certificate", info) for info in self.cas]
        for source, what, info in entries:
            state = tlsfiles.expiry_state(info["not_after"], now)
            states[source] = None if state == "valid" else "%s %s %s on %s UTC (SHA-256 %s)" % (
                what, info["subject"], "expired" if state == "expired" else "expires",
                _date(info["not_after"]), info["sha256"][:23])
        return states


def _bytes(pem):
    return pem.encode("ascii", "replace") if isinstance(pem, str) else pem


def _json_text(pem):
    return json.dumps(pem.decode("ascii")).encode("ascii")


def _date(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
