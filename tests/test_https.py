"""HTTPS, the certificate API and the CA store over real sockets (issue 15).

A gateway on the simulated board serves the web application twice, as the composition root builds it
(daemon/__main__.py): plain HTTP and HTTPS on loopback ports it binds itself. Certificates are made here with
``cryptography``; what the HTTPS server serves is read back with Python's ``ssl`` (OpenSSL), never from our
own summaries. Every refusal is checked to change nothing: the served certificate and the stored file stay
byte for byte what they were.
"""

import asyncio
import datetime
import hashlib
import ipaddress
import json
import os
import re
import select
import socket
import ssl
import threading
import time
import urllib.request
import warnings

from conftest import WebClient, running_gateway, start_daemon, topology_with, wait_for, web_login
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from daemon.security import tlsfiles, webtls
from daemon.security.rights import Caller
from daemon.security.secrets import SecretBox

DAY = datetime.timedelta(days=1)


# ---------------------------------------------------------------- certificates made by the tests

def pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def make_certificate(key, now, days=365, start_days=-1, ca=False, name="gw.test.example", signer=None,
                     names=("127.0.0.1",)):
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(signer[1] if signer else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + start_days * DAY).not_valid_after(now + days * DAY))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(n)) for n in names]), critical=False)
    return builder.sign(signer[2] if signer else key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def sha256_of(pem):
    return x509.load_pem_x509_certificate(pem.encode()).fingerprint(hashes.SHA256()).hex()


def gateway_now(gw):
    return datetime.datetime.fromtimestamp(gw.clock.time(), datetime.timezone.utc)


# ---------------------------------------------------------------- the two web servers, as build() makes them

def web_pair():
    """Service factories: plain HTTP (redirecting by https.redirect) and HTTPS over one application."""
    from daemon.__main__ import board_routes
    from webconfig.app import make_app
    from webconfig.https_serve import HttpsServer, redirecting
    from webconfig.server import HttpServer

    def make_http(door, board):
        app = make_app(door, mount=board_routes(board))
        make_https.server = HttpsServer(app, door, host="127.0.0.1", port=0)
        make_http.server = HttpServer(redirecting(app, door, make_https.server, board.kind), host="127.0.0.1",
                                      port=0)
        make_http.server.name = "http"
        return make_http.server

    def make_https(door):
        return make_https.server
    make_http.name, make_http.with_board, make_https.name = "web", True, "web"
    return make_http, make_https


class Site:
    def __init__(self, gw, http, https):
        self.gw, self.http, self.https = gw, http, https
        self.base = "http://127.0.0.1:%d" % http.port
        self.secure_base = "https://127.0.0.1:%d" % https.port
        self.tls_file = os.path.join(gw.state_dir, "tls", "web.json")

    def served(self):
        """(SHA-256 hex, DER) of the certificate the HTTPS server sends a new connection now (OpenSSL reads it)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", self.https.port), timeout=10) as raw:
            with context.wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
        return hashlib.sha256(der).hexdigest(), der

    def stored(self):
        with open(self.tls_file, "rb") as handle:
            return handle.read()


def run_site(tmp_path, scenario, overrides=None):
    make_http, make_https = web_pair()

    async def main():
        async with running_gateway(tmp_path / "state", topology_with(), overrides,
                                   services=[make_http, make_https]) as gw:
            site = Site(gw, make_http.server, make_https.server)
            return await scenario(site)
    return asyncio.run(main())


def cyber(site):
    return web_login(site.base, "cyber")


async def call(function, *args):
    return await asyncio.to_thread(function, *args)


# ---------------------------------------------------------------- first start

def test_first_start_makes_a_self_signed_certificate_that_ssl_verifies_for_the_gateways_name(tmp_path):
    async def scenario(site):
        fingerprint, der = await call(site.served)
        pem = ssl.DER_cert_to_PEM_cert(der)
        context = ssl.create_default_context(cadata=pem)       # trust exactly what it served, names checked
        for name in (socket.gethostname(), "localhost"):
            def connect(name=name):
                with socket.create_connection(("127.0.0.1", site.https.port), timeout=10) as raw:
                    with context.wrap_socket(raw, server_hostname=name) as tls:
                        tls.sendall(b"GET /api/session HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                                    % name.encode())
                        return tls.recv(200), tls.version()
            head, version = await call(connect)
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert version in ("TLSv1.2", "TLSv1.3")
        wrong = ssl.create_default_context(cadata=pem)

        def connect_as_other():
            with socket.create_connection(("127.0.0.1", site.https.port), timeout=10) as raw:
                with wrong.wrap_socket(raw, server_hostname="not-the-gateway.example"):
                    pass
        try:
            await call(connect_as_other)
            raise AssertionError("a name the certificate lacks was accepted")
        except ssl.SSLCertVerificationError:
            pass
        stored = site.stored()
        assert os.stat(site.tls_file).st_mode & 0o777 == 0o600
        key = json.loads(stored)["key"]                                            # sealed at rest
        assert b"PRIVATE KEY" not in stored and "PRIVATE KEY" not in key
        opened = SecretBox.for_state_dir(site.gw.state_dir)
        assert "PRIVATE KEY" in (opened.decrypt(webtls.KEY_NAME, key) or "")       # by this device's key only
        certificate = x509.load_der_x509_certificate(der)
        assert certificate.issuer == certificate.subject
        assert site.gw.alarms.active.get((7, webtls.WEB_SOURCE)) is None
        return fingerprint

    first = run_site(tmp_path, scenario)

    async def again(site):                          # a restart serves the same certificate, not a new one
        return (await call(site.served))[0]
    assert run_site(tmp_path, again) == first


def test_a_client_older_than_tls_1_2_is_refused(tmp_path):
    async def scenario(site):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)       # the point: a client of an old version
            context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("ALL:@SECLEVEL=0")

        def connect():
            with socket.create_connection(("127.0.0.1", site.https.port), timeout=10) as raw:
                with context.wrap_socket(raw):
                    return True
        try:
            await call(connect)
        except (ssl.SSLError, ConnectionError):
            return True
        return False
    assert run_site(tmp_path, scenario)


# ---------------------------------------------------------------- rights and CSRF

def test_only_cyber_security_reaches_the_certificate_api(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())

    async def scenario(site):
        before = site.stored()
        good = make_certificate(key, gateway_now(site.gw))
        body = {"certificate": good, "key": pem_key(key)}
        anonymous = WebClient(site.base)
        assert (await call(anonymous.get, "/api/tls"))[0] == 401
        assert (await call(anonymous.post, "/api/tls/web", body))[0] == 401
        for profile in ("user", "advanced", "admin"):
            client = await call(web_login, site.base, profile)
            for method, path, data in (("GET", "/api/tls", None), ("POST", "/api/tls/web", body),
                                       ("POST", "/api/tls/web/regenerate", {}), ("POST", "/api/tls/ca", {"pem": good}),
                                       ("POST", "/api/tls/ca/delete", {"id": "00"})):
                status, answer, _ = await call(client.request, method, path, data)
                assert status == 403 and answer["reason"] == "rights", (profile, path, status, answer)
            assert (await call(client.request, "GET", "/security/https"))[0] == 403      # the refusal page
        owner = await call(cyber, site)
        forged = WebClient(site.base)
        forged.cookie = owner.cookie                   # the session without its CSRF token
        status, answer, _ = await call(forged.request, "POST", "/api/tls/web", body)
        assert status == 403 and answer["reason"] == "csrf"
        assert site.stored() == before
        status, answer = await call(owner.get, "/api/tls")
        assert status == 200 and answer["web"]["self_signed"] is True and answer["cas"] == []
        assert (await call(owner.request, "GET", "/security/https"))[0] == 200
        return True
    assert run_site(tmp_path, scenario)


# ---------------------------------------------------------------- installing a certificate

def test_an_installed_pair_is_served_to_new_connections_at_once_and_kept_across_a_restart(tmp_path):
    key = rsa.generate_private_key(65537, 2048)

    async def scenario(site):
        owner = await call(cyber, site)
        old, _ = await call(site.served)
        ca_key, _, ca_name = _ca(gateway_now(site.gw), "Site Root CA")
        pem = make_certificate(key, gateway_now(site.gw), name="meter-room.example", signer=(ca_key, ca_name, ca_key))
        status, answer = await call(owner.post, "/api/tls/web", {"certificate": pem, "key": pem_key(key)})
        assert status == 200, answer
        assert answer["web"]["self_signed"] is False and answer["web"]["subject"] == "CN=meter-room.example"
        now, _ = await call(site.served)
        assert now == sha256_of(pem) != old
        # the page's own view agrees; the event log names the change and never the key
        status, view = await call(owner.get, "/api/tls")
        assert view["web"]["sha256"].replace(":", "").lower() == sha256_of(pem)
        events = [e for e in site.gw.alarms.events() if e.get("event") == "certificate"]
        assert events and "meter-room.example" in events[-1]["detail"]
        assert "PRIVATE" not in json.dumps(events)
        # and the session cookie is Secure over HTTPS (webconfig/auth.over_https)
        secure = await call(_login_over_https, site)
        assert "Secure" in secure and "HttpOnly" in secure
        plain = WebClient(site.base)
        _, _, headers = await call(plain.request, "POST", "/api/login", {"profile": "user", "password": ""})
        assert "Secure" not in headers.get("Set-Cookie")
        return sha256_of(pem)

    installed = run_site(tmp_path, scenario)

    async def again(site):
        return (await call(site.served))[0]
    assert run_site(tmp_path, again) == installed


def _login_over_https(site):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    request = urllib.request.Request(site.secure_base + "/api/login", method="POST",
                                     data=json.dumps({"profile": "user", "password": ""}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        assert response.status == 200
        return response.headers.get("Set-Cookie")


def test_bad_uploads_are_refused_next_to_their_field_and_change_nothing(tmp_path):
    good_key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    big_rsa = rsa.generate_private_key(65537, 4096)
    edwards = ed25519.Ed25519PrivateKey.generate()

    async def scenario(site):
        owners = {"en": await call(cyber, site), "fr": await call(web_login, site.base, "cyber", "fr")}
        owner = owners["en"]
        now = gateway_now(site.gw)
        good = make_certificate(good_key, now)
        ed_subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ed")])
        ed_cert = (x509.CertificateBuilder().subject_name(ed_subject).issuer_name(ed_subject)
                   .public_key(edwards.public_key()).serial_number(1).not_valid_before(now - DAY)
                   .not_valid_after(now + DAY * 30 * 12).sign(edwards, None)
                   .public_bytes(serialization.Encoding.PEM).decode())
        cases = {
            "not PEM": ({"certificate": "hello, this is not a certificate", "key": pem_key(good_key)},
                        "certificate", "tls.not_pem"),
            "truncated certificate": ({"certificate": good[:len(good) // 2], "key": pem_key(good_key)},
                                      "certificate", "tls.not_certificate"),
            "truncated key": ({"certificate": good, "key": pem_key(good_key)[:120]}, "key", "tls.not_key"),
            "huge certificate": ({"certificate": good + "A" * (tlsfiles.MAX_PEM + 10), "key": pem_key(good_key)},
                                 "certificate", "tls.too_large"),
            "mismatched key": ({"certificate": good, "key": pem_key(other_key)}, "key", "tls.mismatch"),
            "expired": ({"certificate": make_certificate(good_key, now, days=-1, start_days=-30),
                         "key": pem_key(good_key)}, "certificate", "tls.expired"),
            "RSA 4096": ({"certificate": make_certificate(big_rsa, now), "key": pem_key(big_rsa)}, "key",
                         "tls.key_type"),
            "Ed25519": ({"certificate": ed_cert, "key": pem_key(edwards)}, "key", "tls.key_type"),
        }
        served, stored = (await call(site.served))[0], site.stored()
        for name, (body, field, key) in cases.items():
            for language, client in owners.items():
                status, answer = await call(client.post, "/api/tls/web", body)
                assert status == 400, (name, status, answer)
                expected = tlsfiles_text(key, language)
                assert answer["messages"] == [{"field": field, "message": expected}], (name, answer)
            assert (await call(site.served))[0] == served, name
            assert site.stored() == stored, name
        # not JSON of the two strings, or a body larger than any pair: refused before any check
        for raw in (b"{", json.dumps({"certificate": good}).encode(), json.dumps([good]).encode(),
                    json.dumps({"certificate": good, "key": 5}).encode()):
            status, answer, _ = await call(owner.request, "POST", "/api/tls/web", None, None, raw)
            assert status == 400 and answer["reason"] == "bad_request", raw[:40]
        huge = json.dumps({"certificate": good * 200, "key": pem_key(good_key)}).encode()
        status, answer, _ = await call(owner.request, "POST", "/api/tls/web", None, None, huge)
        assert status == 400 and answer["messages"][0]["field"] == "certificate"
        assert (await call(site.served))[0] == served and site.stored() == stored
        return True
    assert run_site(tmp_path, scenario)


def tlsfiles_text(key, language):
    from daemon import i18n
    return i18n.text(key, language)


def test_the_https_server_uses_an_installed_certificate_only_after_it_is_checked(tmp_path):
    """Even the door's own caller (no web in between) cannot make the server take an unchecked pair."""
    key = ec.generate_private_key(ec.SECP384R1())

    async def scenario(site):
        from daemon.api import Refused
        door = site.gw.door(Caller("web", "admin"))
        try:
            await door.install_web_certificate(make_certificate(key, gateway_now(site.gw)), pem_key(key))
            raise AssertionError("Admin installed a certificate")
        except Refused as exc:
            assert exc.reason == "rights"
        return True
    assert run_site(tmp_path, scenario)


# ---------------------------------------------------------------- alarm 7

def test_alarm_7_follows_a_certificate_expiring_in_ten_days_and_clears_when_replaced(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())

    async def scenario(site):
        owner = await call(cyber, site)
        now = gateway_now(site.gw)
        soon = make_certificate(key, now, days=10, name="soon.example")
        status, answer = await call(owner.post, "/api/tls/web", {"certificate": soon, "key": pem_key(key)})
        assert status == 200 and answer["web"]["state"] == "expiring"
        state = site.gw.alarms.active.get((7, webtls.WEB_SOURCE))
        assert state is not None and "soon.example" in state["detail"] and "web certificate" in state["detail"]
        raised = [e for e in site.gw.door(Caller("web", "user")).system_alarms() if e["alarm"] == 7]
        assert raised and raised[0]["name"] == "cyber security alert"
        later = make_certificate(key, now, days=400, name="later.example")
        status, _ = await call(owner.post, "/api/tls/web", {"certificate": later, "key": pem_key(key)})
        assert status == 200
        assert (7, webtls.WEB_SOURCE) not in site.gw.alarms.active
        # the clock passing the 30-day line raises it again, on the gateway's own check
        site.gw.board.set_system_time(site.gw.clock.time() + 380 * 86400)
        await wait_for(lambda: (7, webtls.WEB_SOURCE) in site.gw.alarms.active)
        return True
    assert run_site(tmp_path, scenario, {"alarms.check_s": 1})


# ---------------------------------------------------------------- the CA store

def _ca(now, name, days=3650):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = make_certificate(key, now, days=days, ca=True, name=name)
    return key, pem, x509.load_pem_x509_certificate(pem.encode()).subject


def test_the_ca_store_lists_adds_once_deletes_and_is_what_the_gateways_clients_trust(tmp_path):
    async def scenario(site):
        owner = await call(cyber, site)
        now = gateway_now(site.gw)
        ca_key, ca_pem, ca_name = _ca(now, "Site Root CA")
        _, other_pem, _ = _ca(now, "Other CA")
        _, old_pem, _ = _ca(now, "Old CA", days=5)
        # a TLS server whose certificate the site CA issued
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_pem = make_certificate(server_key, now, signer=(ca_key, ca_name, ca_key), name="push.example")
        server = _tls_server(server_pem, pem_key(server_key))
        client = site.gw.door(Caller("web", "user")).tls_client_context()
        assert not await call(_handshake, client, server.port)            # empty store: trusts nobody
        status, answer = await call(owner.post, "/api/tls/ca", {"pem": ca_pem + other_pem})
        assert status == 200 and [a["subject"] for a in answer["added"]] == ["CN=Site Root CA", "CN=Other CA"]
        status, answer = await call(owner.post, "/api/tls/ca", {"pem": ca_pem})
        assert status == 200 and answer["added"] == []                   # already there: kept once
        status, view = await call(owner.get, "/api/tls")
        assert [(c["subject"], c["issuer"], c["state"]) for c in view["cas"]] == [
            ("CN=Site Root CA", "CN=Site Root CA", "valid"), ("CN=Other CA", "CN=Other CA", "valid")]
        assert await call(_handshake, site.gw.door(Caller("web", "user")).tls_client_context(), server.port)
        # a CA close to its end raises alarm 7 naming it; deleting it clears it
        status, answer = await call(owner.post, "/api/tls/ca", {"pem": old_pem})
        old_id = answer["added"][0]["id"]
        sources = [s for (n, s), st in site.gw.alarms.active.items() if n == 7 and "Old CA" in st["detail"]]
        assert sources and sources[0].startswith(webtls.CA_SOURCE)
        status, _ = await call(owner.post, "/api/tls/ca/delete", {"id": old_id})
        assert status == 200 and (7, sources[0]) not in site.gw.alarms.active
        # deleting the site CA: the gateway's clients no longer trust that server
        site_id = [c["id"] for c in view["cas"] if c["subject"] == "CN=Site Root CA"][0]
        assert (await call(owner.post, "/api/tls/ca/delete", {"id": site_id}))[0] == 200
        assert (await call(owner.post, "/api/tls/ca/delete", {"id": site_id}))[0] == 404
        assert not await call(_handshake, site.gw.door(Caller("web", "user")).tls_client_context(), server.port)
        status, view = await call(owner.get, "/api/tls")
        assert [c["subject"] for c in view["cas"]] == ["CN=Other CA"]
        # not a CA, not PEM: refused next to the field, the store unchanged
        for pem, key in ((server_pem, "tls.not_ca"), ("nothing", "tls.not_pem"), (ca_pem[:200], "tls.not_certificate")):
            status, answer = await call(owner.post, "/api/tls/ca", {"pem": pem})
            assert status == 400 and answer["messages"] == [{"field": "ca", "message": tlsfiles_text(key, "en")}]
        assert [c["subject"] for c in (await call(owner.get, "/api/tls"))[1]["cas"]] == ["CN=Other CA"]
        server.close()
        return True
    assert run_site(tmp_path, scenario)


class _tls_server:
    """A one-certificate TLS server on loopback in a thread (the far end of a gateway's TLS client)."""

    def __init__(self, cert_pem, key_pem):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with webtls._private_file((key_pem + cert_pem).encode(), "/tmp") as path:
            self.context.load_cert_chain(path)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.sock.close()


def _handshake(context, port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1"):
                return True
    except ssl.SSLCertVerificationError:
        return False


# ---------------------------------------------------------------- the redirect

def test_http_redirects_to_https_by_the_setting_and_auto_keeps_plain_http_on_the_simulated_board(tmp_path):
    async def scenario(site):
        owner = await call(cyber, site)

        def fetch(path):
            request = urllib.request.Request(site.base + path, headers={"Host": "gateway.local:8080"})
            opener = urllib.request.build_opener(_NoRedirect)
            try:
                with opener.open(request, timeout=10) as response:
                    return response.status, response.headers.get("Location")
            except urllib.error.HTTPError as exc:
                return exc.code, exc.headers.get("Location")
        assert site.gw.settings.get("https.redirect") == "auto"
        assert (await call(fetch, "/api/session"))[0] == 200                     # the simulated board: plain
        assert (await call(owner.post, "/api/settings/page/security.https", {"https.redirect": "on"}))[0] == 200
        status, location = await call(fetch, "/diagnosis?x=1&y=%C3%A9")
        assert status == 308 and location == "https://gateway.local:%d/diagnosis?x=1&y=%%C3%%A9" % site.https.port
        status, location = await call(fetch, "/")
        assert status == 308 and location == "https://gateway.local:%d/" % site.https.port
        # HTTPS itself never redirects; the setting goes back to off through it
        secure = WebClient(site.secure_base)
        secure.cookie, secure.csrf = owner.cookie, owner.csrf
        status, answer = await call(_insecure(secure.post), "/api/settings/page/security.https",
                                    {"https.redirect": "off"})
        assert status == 200, answer
        assert (await call(fetch, "/api/session"))[0] == 200
        return True
    assert run_site(tmp_path, scenario)


def _insecure(function):
    """Run ``function`` with urllib trusting any certificate (the test's client of the self-signed one)."""
    def run(*args):
        previous = ssl._create_default_https_context
        ssl._create_default_https_context = ssl._create_unverified_context
        try:
            return function(*args)
        finally:
            ssl._create_default_https_context = previous
    return run


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


# ---------------------------------------------------------------- the daemon's command line

def test_the_daemon_serves_https_on_the_port_it_reports_with_https_port_0(tmp_path):
    proc = start_daemon(tmp_path / "state", "--board", "sim", "--https-port", "0")
    try:
        port = _banner_https_port(proc)
        pem = ssl.get_server_certificate(("127.0.0.1", port))
        context = ssl.create_default_context(cadata=pem)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=socket.gethostname()) as tls:
                tls.sendall(b"GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                head = tls.recv(64)
        assert head.startswith(b"HTTP/1.1 200 ")
        status = json.loads(urllib.request.urlopen(proc.base + "/api/status", timeout=10).read())
        assert status["services"]["https"]["running"] is True and status["services"]["https"]["port"] == port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _banner_https_port(proc, guard=30.0):
    """The port of "web over HTTPS  : https://127.0.0.1:PORT/" in the banner (read on from where conftest
    stopped, straight from the pipe's descriptor)."""
    seen, end = proc.banner, time.monotonic() + guard
    while True:
        found = re.search(r"web over HTTPS  : https://127\.0\.0\.1:(\d+)/", seen)
        if found:
            return int(found.group(1))
        left = end - time.monotonic()
        assert left > 0, "no HTTPS line in the banner: %r" % seen
        if select.select([proc.stdout.fileno()], [], [], left)[0]:
            seen += os.read(proc.stdout.fileno(), 4096).decode("utf-8", "replace")


def test_auto_redirects_on_the_raspberry_pi_beyond_loopback_only_and_on_and_off_decide_on_any_board():
    from webconfig.https_serve import redirect_wanted
    binds = ("0.0.0.0", "192.168.0.4", "127.0.0.1", "::1", "localhost")
    table = {(setting, board, bind): redirect_wanted(setting, board, bind) for setting in ("auto", "on", "off")
             for board in ("rpi", "sim") for bind in binds}
    wanted = {key for key, value in table.items() if value}
    assert wanted == {("auto", "rpi", "0.0.0.0"), ("auto", "rpi", "192.168.0.4")} | {
        ("on", board, bind) for board in ("rpi", "sim") for bind in binds}


def test_the_redirect_keeps_the_host_asked_and_never_echoes_a_malformed_one():
    from webconfig.https_serve import redirecting

    class Door:
        def setting(self, name):
            return "on"

    class Https:
        port, ssl_context = 8443, object()
    app = redirecting(None, Door(), Https(), "sim")
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)
    cases = {"[fe80::1]:80": "https://[fe80::1]:8443/a%20b", "gw.example": "https://gw.example:8443/a%20b",
             "evil.example/x?y": "https://10.0.0.7:8443/a%20b", "": "https://10.0.0.7:8443/a%20b"}
    for host, expected in cases.items():
        app({"HTTP_HOST": host, "SERVER_NAME": "10.0.0.7", "PATH_INFO": "/a b"}, start_response)
        assert seen["status"].startswith("308 ") and seen["headers"]["Location"] == expected, host


def test_the_gateways_own_self_signed_certificate_is_renewed_at_start_when_near_its_end_not_an_installed_one(
        tmp_path):
    """A gateway whose clock went past its self-signed certificate's last 30 days (or a first start on a wrong
    clock) starts with a new one and no alarm 7; a certificate someone installed stays, with alarm 7."""
    from board.base import ManualClock
    start = 1_800_000_000.0
    make_http, make_https = web_pair()

    async def serve(clock):
        async with running_gateway(tmp_path / "state", topology_with(), clock=clock,
                                   services=[make_http, make_https]) as gw:
            site = Site(gw, make_http.server, make_https.server)
            served = (await call(site.served))[1]
            return x509.load_der_x509_certificate(served), dict(gw.alarms.active)

    first, _ = asyncio.run(serve(ManualClock(start)))
    late = start + (tlsfiles.SELF_SIGNED_DAYS - 10) * 86400
    renewed, alarms = asyncio.run(serve(ManualClock(late)))
    assert renewed.fingerprint(hashes.SHA256()) != first.fingerprint(hashes.SHA256())
    assert renewed.not_valid_before_utc.timestamp() > late - 3600 and (7, webtls.WEB_SOURCE) not in alarms
    # an installed certificate near its end is not replaced: alarm 7 says so instead
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.fromtimestamp(late, datetime.timezone.utc)

    async def install_then_restart():
        async with running_gateway(tmp_path / "state", topology_with(), clock=ManualClock(late)) as gw:
            await gw.door(Caller("web", "cyber")).install_web_certificate(
                make_certificate(key, now, days=40, name="installed.example"), pem_key(key))
    asyncio.run(install_then_restart())
    kept, alarms = asyncio.run(serve(ManualClock(late + 20 * 86400)))
    assert kept.subject.rfc4514_string() == "CN=installed.example"
    assert "installed.example" in alarms[(7, webtls.WEB_SOURCE)]["detail"]


def test_plain_http_is_guarded_by_the_firewall_and_streams_uploads_as_https_does(tmp_path):
    """The plain HTTP server serves the application through the redirect wrapper: the firewall's per-client
    rate and the streamed uploads must reach it there too (they once stopped at the wrapper, so a client
    flooding port 80 was never banned)."""
    make_http, make_https = web_pair()
    settings = {"firewall.enabled": True, "firewall.max_requests_per_s": 50, "firewall.ban_s": 600}

    def burst(source, count):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((source, 0))
            sock.settimeout(5)
            sock.connect(("127.0.0.1", make_http.server.port))
            sock.sendall(b"GET /api/session HTTP/1.1\r\nHost: gw\r\n\r\n" * count)
            data = b""
            sock.settimeout(1.5)
            try:
                while data.count(b"HTTP/1.1 ") < count:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
        return data.count(b"HTTP/1.1 200 "), data.count(b"HTTP/1.1 429 ")

    async def scenario():
        async with running_gateway(tmp_path / "state", topology_with(), settings,
                                   services=[make_http, make_https]):
            assert make_http.server.uploads is not None
            assert make_http.server.uploads is make_https.server.uploads
            served, refused = await asyncio.to_thread(burst, "127.0.1.9", 150)
            assert 1 <= served < 150, (served, refused)
            assert await asyncio.to_thread(burst, "127.0.1.9", 1) == (0, 1)        # banned: a 429
            assert await asyncio.to_thread(burst, "127.0.0.2", 1) == (1, 0)        # another client is served
    asyncio.run(scenario())
