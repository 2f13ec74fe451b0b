"""Alarm e-mail reports (issue 16, SPEC §5): real SMTP servers on loopback receive them.

aiosmtpd serves plain SMTP, STARTTLS and implicit TLS (SMTPS) with AUTH LOGIN / PLAIN through an authenticator;
its certificates come from a test CA made here with ``cryptography`` and put in the gateway's CA store. What
arrives is parsed with the ``email`` package and the HTML part with ``html.parser``: the words checked are the
manuals' (the WEBVIEW-M alarm views in English, the newer WEBVIEW-L manual's e-mail report in French), not only
our catalogue's. The gateways run on a ManualClock (started at the real time, so certificates are valid): the
throttle and the back-off are counted on it, the test moves it.
"""

import asyncio
import contextlib
import datetime
import email
import email.policy
import html.parser
import ipaddress
import json
import re
import ssl
import time

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from board.base import ManualClock
from conftest import (commission_accounts, demo_devices, demo_topology, free_tcp_port, running_gateway, topology_with,
                      wait_for)
from daemon.api import OFF, RIGHTS, Refused
from daemon.security.rights import Caller
from outbound.mail.pending import Pending
from outbound.mail.service import FIRST_BACKOFF_S, MailService

DAY = datetime.timedelta(days=1)
USER, PASSWORD = "alarms@site.example", "s3cret-Pa55"
SENDER, RECIPIENTS = "m70@site.example", ("ops@site.example", "boss@site.example")
I35_AT_5, U30_AT_11 = 0xDC85EA, 0xD5038A
INTERVAL_MIN = 10


# ---------------------------------------------------------------- a test CA and the servers' certificates

def _name(common):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


class MailCA:
    """A CA and a server certificate it issued for 127.0.0.1 (written to ``folder`` for ssl contexts)."""

    def __init__(self, folder, name="Mail Test CA"):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.pem = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(_name(name))
                    .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                    .not_valid_before(now - DAY).not_valid_after(now + 365 * DAY)
                    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                    .sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (x509.CertificateBuilder().subject_name(_name("smtp.site.example")).issuer_name(_name(name))
                  .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
                  .not_valid_before(now - DAY).not_valid_after(now + 365 * DAY)
                  .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                 critical=False)
                  .sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode())
        folder.mkdir(parents=True, exist_ok=True)
        self.cert_path, self.key_path = folder / "server.pem", folder / "server.key"
        self.cert_path.write_text(server + self.pem)
        self.key_path.write_bytes(server_key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8,
                                                           serialization.NoEncryption()))

    def server_context(self):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        return context


# ---------------------------------------------------------------- aiosmtpd on loopback

class Inbox:
    """aiosmtpd's handler: every message it accepts, and how each client logged in."""

    def __init__(self):
        self.messages = []          # (envelope recipients, parsed message)
        self.logins = []            # (mechanism, login)

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos),
                              email.message_from_bytes(envelope.original_content or envelope.content,
                                                       policy=email.policy.default)))
        return "250 2.0.0 Ok: queued as TEST%d" % len(self.messages)

    def authenticator(self, server, session, envelope, mechanism, auth_data):
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((mechanism, login))
        # handled=False: aiosmtpd answers the failure itself (535)
        return AuthResult(success=(login, password) == (USER, PASSWORD), handled=False)


@contextlib.contextmanager
def smtp_server(mode="plain", ca=None, auth=None):
    """aiosmtpd in its thread on a free loopback port: ``mode`` plain, starttls (offered and required) or
    implicit; ``auth``: None, or the one mechanism it offers ("LOGIN" or "PLAIN"). Yields (port, Inbox)."""
    inbox = Inbox()
    options = {}
    if mode == "starttls":
        options.update(tls_context=ca.server_context(), require_starttls=True)
    elif mode == "implicit":
        options.update(ssl_context=ca.server_context(), server_hostname="127.0.0.1")
    if auth is not None:
        # aiosmtpd sees TLS only after its own STARTTLS: implicit TLS must not ask for it again
        options.update(authenticator=inbox.authenticator, auth_required=True, auth_require_tls=mode == "starttls",
                       auth_exclude_mechanism=[m for m in ("LOGIN", "PLAIN") if m != auth])
    port = free_tcp_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


class SilentServer:
    """Accepts connections and never says a word (not even an SMTP greeting, nor a TLS handshake)."""

    def __init__(self):
        self.accepted = 0
        self._writers = []

    async def __aenter__(self):
        async def accept(_reader, writer):
            self.accepted += 1
            self._writers.append(writer)
        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        for writer in self._writers:
            writer.close()
        self.server.close()
        await self.server.wait_closed()


# ---------------------------------------------------------------- reading a report

class TableReader(html.parser.HTMLParser):
    """The rows of the HTML part's table(s) as lists of cell texts (the header row included)."""

    def __init__(self):
        html.parser.HTMLParser.__init__(self)
        self.rows, self._cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(self._cell.strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


class Mail:
    def __init__(self, message):
        self.message = message
        assert message.get_content_type() == "multipart/alternative"
        parts = list(message.iter_parts())
        assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
        self.subject = str(message["subject"])
        self.text, self.html = parts[0].get_content(), parts[1].get_content()
        reader = TableReader()
        reader.feed(self.html)
        self.header, self.rows = reader.rows[0], reader.rows[1:]

    def started(self):
        """(started, active, finished) as the text part's summary says them."""
        found = re.search(r": (\d+) \((\d+) \w+, (\d+) \w+\)", self.text)
        return tuple(int(n) for n in found.groups())


def mails(inbox):
    return [Mail(message) for _rcpt, message in inbox.messages]


# ---------------------------------------------------------------- the gateway

def mail_service(timeout=5.0, max_rows=50):
    def make(door):
        return MailService(door, timeout=timeout, max_rows=max_rows)
    make.name = "mail"
    return make


def smtp_settings(port, mode="plain", auth=False, password=PASSWORD, **more):
    settings = {"smtp.enabled": True, "smtp.host": "127.0.0.1", "smtp.port": port, "smtp.secure": mode != "plain",
                "smtp.tls_mode": "implicit" if mode == "plain" else mode, "smtp.auth": auth, "smtp.user": USER,
                "smtp.password": password, "notify.sender": SENDER, "notify.recipient1": RECIPIENTS[0],
                "notify.recipient2": RECIPIENTS[1], "notify.min_criticality": "information",
                "notify.min_interval_min": INTERVAL_MIN, "gateway.name": "Plant <North> & Co"}
    settings.update(more)
    return settings


@contextlib.asynccontextmanager
async def mail_gateway(state_dir, clock, topology=None, **service_options):
    """A commissioned gateway with the mail service; its settings are stored (set_many), not overrides, so a
    test changes them as a page would and a restarted gateway keeps them."""
    commission_accounts(str(state_dir))
    async with running_gateway(state_dir, topology or topology_with(), {"alarms.check_s": 3600}, clock=clock,
                               services=[mail_service(**service_options)]) as gw:
        yield gw, gw.outbound("mail")


async def configure(gw, settings):
    await gw.settings.set_many(settings)
    await wait_for(lambda: gw.outbound("mail").running == gw.outbound("mail").enabled())


async def add_ca(gw, ca):
    await gw.door(Caller("web", "cyber")).add_ca_certificates(ca.pem)


def push_alarm(gw, active=True, detail="upload refused"):
    """System alarm 6 as the data push raises it, through its own door."""
    gw.door(Caller("push")).report_alarm(active, detail)


def mail_alarm(gw):
    return gw.alarms.active.get((1, "mail"))


def run(coroutine):
    asyncio.run(coroutine)


# ---------------------------------------------------------------- implicit TLS, AUTH PLAIN, the report's content

def test_a_system_alarm_is_reported_over_smtps_with_auth_plain_as_text_and_html(tmp_path):
    async def body():
        ca = MailCA(tmp_path / "ca")
        clock = ManualClock(time.time())
        with smtp_server("implicit", ca, auth="PLAIN") as (port, inbox):
            async with mail_gateway(tmp_path / "state", clock) as (gw, svc):
                await configure(gw, smtp_settings(port, "implicit", auth=True))
                push_alarm(gw, detail="<script>alert(1)</script> 550 on /upload")
                assert await svc.cycle() == "failed"          # the CA store is empty: the server is not trusted
                state = mail_alarm(gw)
                assert state is not None and state["text"]["key"] == "mail.error.certificate"
                assert inbox.messages == [] and inbox.logins == []
                assert len(svc.book) == 2                     # alarm 6 and alarm 1 itself: held, not lost
                await add_ca(gw, ca)
                clock.advance(FIRST_BACKOFF_S)
                await wait_for(lambda: len(inbox.messages) == 1)
                await wait_for(lambda: mail_alarm(gw) is None)       # the next accepted mail clears alarm 1
                assert inbox.logins == [("PLAIN", USER)]
                recipients, _ = inbox.messages[0]
                assert recipients == list(RECIPIENTS)
                mail = mails(inbox)[0]
                netid = gw.identity["netid"]
                assert "Plant <North> & Co" in mail.subject and netid in mail.subject
                assert re.search(r"\b2 new alarm", mail.subject)     # alarm 6, and alarm 1 of the failed try
                assert mail.message["from"] == SENDER
                # The English words of the WEBVIEW-M alarm views: Starting date, End date, Source, Criticality.
                for header in ("Starting date", "End date", "Source", "Criticality"):
                    assert header in mail.header and header in mail.text
                assert mail.started() == (2, 2, 0)
                names = sorted(row[1] for row in mail.rows)
                assert names[0].startswith("FTP export error: <script>alert(1)</script>")
                assert names[1].startswith("e-mail transmission error: the certificate of 127.0.0.1")
                assert all(row[4] == "active" and row[5] == "non-critical" for row in mail.rows)
                # every device or settings text is escaped in the HTML part, never markup
                assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
                assert "<North>" not in mail.html and "Plant &lt;North&gt; &amp; Co" in mail.html
                assert "awaiting acknowledgement: 2" in mail.text
                # acknowledged: it no longer awaits; the report after the interval says so
                gw.door(Caller("web", "admin")).acknowledge_alarm(6, "push")
                gw.alarms.set(7, "test-source", True, "cipher suite")
                clock.advance(INTERVAL_MIN * 60)
                await wait_for(lambda: len(inbox.messages) == 2)
                second = mails(inbox)[1]
                assert second.started() == (1, 1, 0) and len(second.rows) == 1
                assert second.rows[0][5] == "critical"
                assert "Alarms still active: 2" in second.text and "awaiting acknowledgement: 1" in second.text
    run(body())


# ---------------------------------------------------------------- STARTTLS, AUTH LOGIN, the throttle, a restart

def test_starttls_with_auth_login_throttles_to_one_combined_report_that_a_restart_keeps(tmp_path):
    async def body():
        ca = MailCA(tmp_path / "ca")
        clock = ManualClock(time.time())
        state_dir = tmp_path / "state"
        with smtp_server("starttls", ca, auth="LOGIN") as (port, inbox):
            async with mail_gateway(state_dir, clock, max_rows=4) as (gw, svc):
                await add_ca(gw, ca)
                await configure(gw, smtp_settings(port, "starttls", auth=True))
                push_alarm(gw)
                await wait_for(lambda: len(inbox.messages) == 1)
                assert inbox.logins == [("LOGIN", USER)]
                assert mails(inbox)[0].started() == (1, 1, 0)
                # Inside the interval: held, whatever the number of tries.
                clock.advance(60)
                gw.alarms.set(3, "digiware:7", True, "no answer")
                gw.alarms.set(3, "digiware:7", False)
                for _ in range(3):
                    assert await svc.cycle() == "held"
                clock.advance(INTERVAL_MIN * 60 - 61)
                assert await svc.cycle() == "held"
                assert len(inbox.messages) == 1
                # A flood inside the interval: counts kept, the newest rows, "and K more".
                for n in range(6):
                    gw.alarms.set(7, "flood-%d" % n, True, "attempt %d" % n)
                clock.advance(1)
                await wait_for(lambda: len(inbox.messages) == 2)
                combined = mails(inbox)[1]
                assert combined.started() == (7, 6, 1)
                assert len(combined.rows) == 5                        # 4 rows and the "and 3 more" line
                assert [row[2] for row in combined.rows[:4]] == ["flood-5", "flood-4", "flood-3", "flood-2"]
                assert combined.rows[4][0].startswith("and 3 more")
                assert "and 3 more" in combined.text
                # One more alarm inside the next interval, then the gateway stops before it is due.
                clock.advance(120)
                gw.alarms.set(5, "digiware:4", True, "invalid NET ID")
                assert await svc.cycle() == "held"
            assert len(inbox.messages) == 2
            async with mail_gateway(state_dir, clock, max_rows=4) as (gw, svc):
                assert len(svc.book) == 1         # the pending report survived the restart
                assert await svc.cycle() == "held"                 # ... and so did the time of the last one
                clock.advance(INTERVAL_MIN * 60)
                await wait_for(lambda: len(inbox.messages) == 3)
                third = mails(inbox)[2]
                assert third.started() == (1, 1, 0)
                assert [row[2] for row in third.rows] == ["digiware:4"]      # nothing sent twice
                clock.advance(INTERVAL_MIN * 60)
                assert await svc.cycle() == "idle"
            assert len(inbox.messages) == 3
    run(body())


# ---------------------------------------------------------------- a wrong password

def test_a_wrong_password_raises_alarm_1_and_the_next_good_send_clears_it(tmp_path):
    async def body():
        clock = ManualClock(time.time())
        with smtp_server("plain", auth="LOGIN") as (port, inbox):
            async with mail_gateway(tmp_path / "state", clock) as (gw, svc):
                await configure(gw, smtp_settings(port, "plain", auth=True, password="wrong"))
                push_alarm(gw)
                assert await svc.cycle() == "failed"
                state = mail_alarm(gw)
                assert state["text"]["key"] == "mail.error.auth" and "535" in state["detail"]
                assert inbox.messages == [] and len(svc.book) == 2      # alarm 6 and alarm 1 itself, held
                # The back-off: no new try before it has passed (the server is not hammered).
                assert await svc.cycle() == "held" and len(inbox.logins) == 1
                clock.advance(FIRST_BACKOFF_S)
                assert await svc.cycle() == "failed" and len(inbox.logins) == 2
                await gw.settings.set_many({"smtp.password": PASSWORD})
                clock.advance(2 * FIRST_BACKOFF_S)
                await wait_for(lambda: len(inbox.messages) == 1)
                # the server has the mail before its client has the answer: the service's bookkeeping follows
                await wait_for(lambda: mail_alarm(gw) is None and svc.failures == 0 and len(svc.book) == 0)
                mail = mails(inbox)[0]
                assert mail.started() == (2, 2, 0)
                assert sorted(row[1].split(":")[0] for row in mail.rows) == ["FTP export error",
                                                                            "e-mail transmission error"]
                cleared = [e for e in gw.alarms.events() if e.get("alarm") == 1 and e.get("event") == "cleared"]
                assert len(cleared) == 1
    run(body())


# ---------------------------------------------------------------- French, the test button

# The newer WEBVIEW-L manual (French), "Email": the report is "1) Une synthèse qui indique le nombre d'alarmes
# apparues depuis le dernier envoi du rapport (alarmes actives et terminées), quelles alarmes sont toujours
# actives et quelles alarmes sont en attente d'acquittement. 2) Un tableau qui liste toutes les nouvelles alarmes
# apparues (actives et terminées) avec ... le type d'alarme, le produit concerné, la date de début, la date de fin".
MANUAL_WORDS_FR = ("synthèse", "depuis le dernier envoi du rapport", "actives", "terminées", "toujours actives",
                   "en attente d'acquittement", "nouvelles alarmes apparues")
MANUAL_COLUMNS_FR = ("type d'alarme", "produit concerné", "date de début", "date de fin")


def test_a_french_report_is_in_french_and_the_test_button_answers(tmp_path):
    async def body():
        clock = ManualClock(time.time())
        with smtp_server("plain") as (port, inbox):
            async with mail_gateway(tmp_path / "state", clock) as (gw, _svc):
                await configure(gw, smtp_settings(port, "plain", **{"notify.language": "fr"}))
                push_alarm(gw)
                clock.advance(30)
                push_alarm(gw, active=False)
                await wait_for(lambda: len(inbox.messages) == 1)
                mail = mails(inbox)[0]
                assert "nouvelle" in mail.subject and "alarme" in mail.subject
                for words in MANUAL_WORDS_FR:
                    assert words in mail.text.lower() and words in mail.html.lower().replace("&#x27;", "'")
                assert [h.lower() for h in mail.header if h.lower() in MANUAL_COLUMNS_FR] == list(MANUAL_COLUMNS_FR)
                assert mail.started() == (1, 0, 1)
                assert mail.rows[0][0] == "alarme système" and mail.rows[0][1].startswith("erreur d'export FTP")
                assert mail.rows[0][5] == "non critique" and mail.rows[0][4] != "active"
                assert "Summary" not in mail.text and "Starting date" not in mail.text
                # The page's button: a test mail now, inside the interval, with the server's answer.
                admin = gw.door(Caller("web", "admin"))
                answer = await admin.send_test_email()
                assert answer["ok"] and answer["code"] == 250 and "queued as TEST2" in answer["answer"]
                test_mail = inbox.messages[1][1]
                assert "test" in str(test_mail["subject"]) and test_mail.get_content_type() == "multipart/alternative"
                with pytest.raises(Refused) as refused:
                    await gw.door(Caller("web", "user")).send_test_email()
                assert refused.value.reason == RIGHTS
                await configure(gw, {"smtp.port": free_tcp_port()})     # nobody listens there
                answer = await admin.send_test_email()
                assert not answer["ok"] and answer["key"] == "mail.error.connect"
                assert mail_alarm(gw)["text"]["key"] == "mail.error.connect"
                await configure(gw, {"smtp.enabled": False})
                assert mail_alarm(gw) is None                           # switched off: its alarm goes
                with pytest.raises(Refused) as refused:
                    await admin.send_test_email()
                assert refused.value.reason == OFF
    run(body())


# ---------------------------------------------------------------- refusals and hostile servers

def test_smtps_mandatory_no_starttls_and_a_silent_server_give_alarm_1_and_never_block_the_loop(tmp_path):
    async def body():
        ca = MailCA(tmp_path / "ca")
        clock = ManualClock(time.time())
        async with SilentServer() as silent, mail_gateway(tmp_path / "state", clock, timeout=1.0) as (gw, svc):
            await add_ca(gw, ca)
            # SMTPS mandatory: a plain connection is not even opened.
            await configure(gw, smtp_settings(silent.port, "plain", **{"policy.smtps_mandatory": True}))
            push_alarm(gw)
            assert await svc.cycle() == "failed"
            assert mail_alarm(gw)["text"]["key"] == "mail.error.plain_refused" and silent.accepted == 0
            # A server that accepts and never speaks: a timeout, alarm 1, a retry after the back-off, no crash;
            # plain SMTP (no greeting) and implicit TLS (no handshake) alike. The loop keeps its pace.
            await configure(gw, {"policy.smtps_mandatory": False})
            turns = []
            for attempt, mode in enumerate(("plain", "plain", "implicit"), 1):
                await gw.settings.set_many({"smtp.secure": mode != "plain"})
                clock.advance(FIRST_BACKOFF_S * 2 ** attempt)
                # while the client waits out the server's silence (1 s), the loop goes on: other tasks get turns.
                # Counted, not timed: a client blocking the loop lets none run until the attempt is over.
                cycle = asyncio.ensure_future(svc.cycle())
                turns.append(0)
                while not cycle.done():
                    await asyncio.sleep(0.01)
                    turns[-1] += not cycle.done()
                assert cycle.result() == "failed"
                assert silent.accepted == attempt
                assert mail_alarm(gw)["text"]["key"] == "mail.error.timeout"
            assert min(turns) >= 10, turns             # ~100 on an idle machine
            assert svc.failures == 4 and len(svc.book) == 2 and svc._task.restarts == 0
        # A server that does not offer STARTTLS: nothing goes in clear.
        with smtp_server("plain") as (port, inbox):
            async with mail_gateway(tmp_path / "state2", clock) as (gw, svc):
                await configure(gw, smtp_settings(port, "starttls"))
                push_alarm(gw)
                assert await svc.cycle() == "failed"
                assert mail_alarm(gw)["text"]["key"] == "mail.error.no_starttls" and inbox.messages == []
    run(body())


# ---------------------------------------------------------------- minimum criticality, device alarms

def test_the_minimum_criticality_filters_system_and_device_alarms(tmp_path):
    async def body():
        clock = ManualClock(time.time())
        with smtp_server("plain") as (port, inbox):
            async with mail_gateway(tmp_path / "state", clock, demo_topology()) as (gw, _svc):
                await gw.topology.replace(demo_devices())
                await wait_for(lambda: gw.event_reader.status()["checks"] >= 5)    # every meter's log seen once
                await configure(gw, smtp_settings(port, "plain", **{"notify.min_criticality": "critical",
                                                                    "notify.min_interval_min": 1}))
                push_alarm(gw)                                            # non-critical: not reported
                gw.board.inject_event(I35_AT_5, kind="device", index=2, load=1, criticality="critical")
                gw.board.inject_event(U30_AT_11, kind="power_quality", index=1, key="v1", value=180.5,
                                      duration_ms=120, criticality="non-critical")
                for netid in (I35_AT_5, U30_AT_11):
                    device = [d for d in gw.topology.devices if d.netid == "%06X" % netid][0]
                    await gw.event_reader.check_device(gw.engines[device.bus], device)
                gw.alarms.set(7, "test-source", True, "weak cipher")     # critical
                gw.alarms.set(3, "test-bus:9", True, "does not answer")   # critical too: reported, not counted below
                clock.advance(60)                                         # a second report may go
                # A simulated meter that misses its polls on a loaded machine raises alarm 3, critical and
                # rightly reported: such rows are left out of the count, every other row is checked.
                def reported():
                    return [row for mail in mails(inbox) for row in mail.rows
                            if not row[1].startswith("Modbus slave timeout")]
                await wait_for(lambda: len(reported()) == 2)
                received = mails(inbox)
                assert all(row[5] == "critical" for mail in received for row in mail.rows)
                assert any(row[1] == "Modbus slave timeout: does not answer" and row[2] == "test-bus:9"
                           for mail in received for row in mail.rows)
                assert sum(mail.started()[0] for mail in received) == sum(len(mail.rows) for mail in received)
                rows = reported()
                assert sorted((row[0], row[5]) for row in rows) == [("device alarm", "critical"),
                                                                     ("system alarm", "critical")]
                device_row = [row for row in rows if row[0] == "device alarm"][0]
                assert device_row[1] == "CT disconnected" and "I-35@5" in device_row[2]
                assert "digiware:5:1" in device_row[2]
                assert not any("FTP export error" in mail.text or "voltage dip" in mail.text for mail in received)
                assert gw.device_alarms.status()["records"] >= 3          # the dip was read, and filtered
    run(body())


# ---------------------------------------------------------------- the held alarms' book, alarms arriving in flight

def test_alarms_arriving_while_a_report_is_in_flight_are_counted_once_whether_it_goes_or_not():
    def row(n, end=None):
        return {"category": "system", "alarm": 7, "source": "s%d" % n, "since": 1000.0 + n, "end": end}

    for outcome in ("sent", "failed"):
        book = Pending(max_rows=3)
        for n in range(4):                                 # s0 dropped: 1 more
            book.add(row(n))
        assert not book.add(row(3))                        # the same alarm twice is held once
        batch = book.begin()
        assert [r["source"] for r in batch.rows] == ["s1", "s2", "s3"] and batch.more == 1
        book.add(row(4))
        book.add(row(5))                                   # s1, s2 dropped: the report in flight carries them
        assert book.end("system", 7, "s5", 2000.0)
        if outcome == "sent":
            book.sent(batch, 3000.0)
            assert [r["source"] for r in book.rows] == ["s4", "s5"] and book.more == 0
        else:
            book.failed(batch)
            assert [r["source"] for r in book.rows] == ["s3", "s4", "s5"] and (book.more, len(book)) == (3, 6)
        again = Pending.from_doc(json.loads(json.dumps(book.as_doc())), 3)       # what the state file keeps
        assert (again.rows, again.more, again.more_finished, again.last_sent) == \
            (book.rows, book.more, book.more_finished, book.last_sent)
        assert [r["end"] for r in again.rows][-1] == 2000.0
    assert len(Pending.from_doc({"rows": [{"no": "seq"}]})) == 0                 # a damaged file: nothing held
