"""Exports delivered to real servers on loopback (issue 16): FTP passive and active, FTPS explicit and implicit
verified against the gateway's CA store, HTTP(S) POST with Basic authentication; store and forward through a
server outage (in order, once each, alarm 6 raised then cleared); FTPS mandatory; hostile servers (552 on STOR,
an unknown CA, a wrong name, a server that never speaks) with the event loop kept responsive meanwhile.

A real gateway (empty topology) gives the door, its alarms and its CA store, and runs the real export service
(its schedules off, so its own spool stays empty: the tests drive a spool, transport and sender of their own in
the same state directory, with short timeouts and back-off); the servers are the test's (tests/push_servers.py).
The page's *Test connection* goes through the door to that service.
"""

import asyncio
import contextlib
import os
import re

from conftest import running_gateway, topology_with, wait_for
from push_servers import PASSWORD, USER, ChildFtpServer, FtpServer, HttpServer, Pki, SilentServer

from daemon.looplag import LoopLagMonitor
from daemon.security.rights import Caller
from outbound.export.sender import Sender
from outbound.export.service import ExportService
from outbound.export.spool import Spool, directory_of, drop_recorder, open_spool
from outbound.export.transports import Transport

FAST = {"connect_timeout": 2.0, "timeout": 2.0}


class Site:
    """A gateway, the push door, a spool in its state directory, a transport and a sender."""

    def __init__(self, tmp_path, gw, spool_bytes=10 ** 7, **transport_options):
        self.tmp = tmp_path
        self.gw = gw
        self.door = gw.door(Caller("push"))
        self.cyber = gw.door(Caller("web", "cyber"))
        self.spool = Spool(directory_of(self.door), spool_bytes, on_drop=drop_recorder(self.door))
        self.transport = Transport(self.door, **dict(FAST, **transport_options))
        self.sender = Sender(self.door, self.spool, self.transport, min_backoff=0.05, max_backoff=0.4)
        self.made = 0

    async def configure(self, **settings):
        await self.cyber.set_settings(dict(("push." + k if "." not in k else k, v) for k, v in settings.items()))

    async def spool_files(self, count, data_type="Energy"):
        """``count`` finished files put in the spool; their names, in order."""
        names = []
        for _ in range(count):
            self.made += 1
            name = "SITE1_GW1_Meter%02d_%s_2026-12-07_10-%02d-00.csv" % (self.made, data_type, self.made % 60)
            path = os.path.join(str(self.tmp), name)
            with open(path, "wb") as handle:
                handle.write(("file %d\r\n" % self.made).encode() + b"x" * (100 * self.made))
            await self.spool.put(path, name, {"data_type": data_type, "device": "Meter%02d" % self.made,
                                              "start": 1000 * self.made, "end": 1000 * self.made + 900})
            names.append(name)
        return names

    def alarm(self):
        return self.door.alarm_active(part="delivery")

    def alarm_key(self):
        state = self.alarm()
        return state and state.get("text", {}).get("key")


@contextlib.asynccontextmanager
async def site_of(tmp_path, **options):
    async with running_gateway(tmp_path / "state", topology_with(), services=[ExportService]) as gw:
        site = Site(tmp_path, gw, **options)
        await site.spool.open()
        yield site


def ftp_settings(server, **more):
    settings = dict(protocol="ftp", host="127.0.0.1", port=server.port, user=USER, password=PASSWORD,
                    folder="exports/site1", secure=False, ftp_mode="passive")
    settings.update(more)
    return settings


def content_of(name, files):
    return next(data for _folder, n, data in files if n == name)


def test_ftp_passive_then_active_delivers_in_order_into_the_created_folder(tmp_path):
    async def scenario():
        async with site_of(tmp_path) as site:
            with FtpServer(tmp_path / "ftp") as server:
                for mode, data_command in (("passive", "PASV"), ("active", "PORT")):
                    await site.configure(**ftp_settings(server, ftp_mode=mode))
                    del server.commands[:]
                    names = await site.spool_files(3)
                    assert await site.sender.deliver() == 3
                    assert server.names()[-3:] == names                         # in the order they were put
                    assert all(folder == "exports/site1" for folder, _n, _d in server.files)
                    for n, name in enumerate(names):
                        assert content_of(name, server.files).startswith(b"file %d\r\n" % (site.made - 2 + n))
                    used = set(server.commands) & {"PASV", "EPSV", "PORT", "EPRT"}
                    assert used == {data_command}, used                           # the mode asked for, only
                    assert site.spool.count() == 0 and site.alarm() is None
                on_disk = sorted(os.listdir(tmp_path / "ftp" / "exports" / "site1"))
                assert on_disk == sorted(server.names()) and not any(n.endswith(".part") for n in on_disk)
                answer = await site.gw.door(Caller("web", "admin")).test_push()
                assert answer["ok"] and answer["answer"].startswith("250"), answer
                assert re.fullmatch(r"SITE_[0-9A-F]{6}_test_\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.txt", answer["file"])
                assert server.names()[-1] == answer["file"]
    asyncio.run(scenario())


def test_ftps_explicit_and_implicit_passive_and_active_verify_the_server_against_the_ca_store(tmp_path):
    pki = Pki()
    certfile = pki.issue(tmp_path)

    async def scenario():
        async with site_of(tmp_path) as site:
            for kind in ("explicit", "implicit"):
                with FtpServer(tmp_path / kind, kind=kind, certfile=certfile) as server:
                    await site.configure(**ftp_settings(server, secure=True, tls_mode=kind))
                    names = await site.spool_files(1)
                    assert await site.sender.deliver() == 0                   # an empty CA store trusts nobody
                    assert site.alarm_key() == "push.transfer.tls_verify" and site.spool.count() == 1
                    assert server.files == []
                    await site.cyber.add_ca_certificates(pki.pem)
                    for mode in ("passive", "active"):
                        await site.configure(ftp_mode=mode)
                        names += await site.spool_files(2)
                        waiting = site.spool.count()
                        assert await site.sender.deliver() == waiting
                        assert server.names() == names and site.spool.count() == 0 and site.alarm() is None
                    assert "PBSZ" in server.commands and "PROT" in server.commands
                    assert ("AUTH" in server.commands) == (kind == "explicit")   # implicit: TLS before any command
                    for info in site.cyber.ca_certificates():                     # the next kind starts untrusted
                        await site.cyber.delete_ca_certificate(info["id"])
    asyncio.run(scenario())


def test_http_and_https_post_the_file_as_multipart_with_basic_authentication(tmp_path):
    pki = Pki()
    certfile = pki.issue(tmp_path)

    async def scenario():
        async with site_of(tmp_path) as site:
            await site.cyber.add_ca_certificates(pki.pem)
            for secure in (False, True):
                with HttpServer(certfile=certfile if secure else None) as server:
                    await site.configure(protocol="http", host="127.0.0.1", port=server.port, user=USER,
                                         password="wrong", folder="inbox/m70", secure=secure)
                    names = await site.spool_files(3)
                    assert await site.sender.deliver() == 0
                    assert site.alarm_key() == "push.transfer.login" and "401" in site.alarm()["detail"]
                    await site.configure(password=PASSWORD)
                    assert await site.sender.deliver() == 3
                    assert server.names() == names and site.alarm() is None
                    assert {path for path, _n, _d in server.files} == {"/inbox/m70"}
                    for n, (_path, name, data) in enumerate(server.files):
                        assert data == (b"file %d\r\n" % (site.made - 2 + n)) + b"x" * (100 * (site.made - 2 + n))
                    assert [fields for _p, ok, fields in server.requests if ok] == [["file"]] * 3
                    server.status = 500                                      # a server that fails: kept, alarm
                    names = await site.spool_files(1)
                    assert await site.sender.deliver() == 0 and site.spool.count() == 1
                    assert site.alarm_key() == "push.transfer.answer" and "500" in site.alarm()["detail"]
                    server.status = 200
                    assert await site.sender.deliver() == 1 and server.names()[-1] == names[0]
                    answer = await site.gw.door(Caller("web", "cyber")).test_push()
                    assert answer["ok"] and answer["answer"] == "200 OK" and server.names()[-1] == answer["file"]
    asyncio.run(scenario())


def test_ftps_mandatory_refuses_plain_ftp_and_http_before_connecting(tmp_path):
    async def scenario():
        async with site_of(tmp_path) as site:
            with FtpServer(tmp_path / "ftp") as ftp, HttpServer() as web:
                await site.configure(**ftp_settings(ftp))
                await site.configure(**{"policy.ftps_mandatory": True})
                await site.spool_files(2)
                assert await site.sender.deliver() == 0
                assert site.alarm_key() == "push.transfer.plain_refused"
                assert "FTPS mandatory" in site.alarm()["detail"] and "FTP" in site.alarm()["detail"]
                answer = await site.gw.door(Caller("web", "admin")).test_push()
                assert not answer["ok"] and answer["text"]["key"] == "push.transfer.plain_refused"
                await site.configure(protocol="http", port=web.port)
                assert await site.sender.deliver() == 0 and "HTTP" in site.alarm()["detail"]
                assert ftp.connections == 0 and web.requests == []                   # refused before connecting
                assert site.spool.count() == 2
                await site.configure(**{"policy.ftps_mandatory": False})
                assert await site.sender.deliver() == 2 and len(web.files) == 2 and site.alarm() is None
    asyncio.run(scenario())


def test_a_server_down_then_back_gets_every_file_once_in_order_and_alarm_6_comes_and_goes(tmp_path):
    async def scenario():
        async with site_of(tmp_path) as site:
            server = FtpServer(tmp_path / "ftp").start()
            port = server.port
            await site.configure(**ftp_settings(server))
            site.sender.start()
            try:
                expected = await site.spool_files(3)
                site.sender.wake()
                await wait_for(lambda: len(server.files) == 3)
                server.stop()
                expected += await site.spool_files(4)
                site.sender.wake()
                await wait_for(lambda: site.sender.failures >= 3)            # backing off, retrying
                assert site.alarm_key() == "push.transfer.refused" and site.spool.count() == 4
                state = site.sender.status()
                assert state["spool_files"] == 4 and "refused" in state["last_error"]
                assert state["next_retry"] is None or state["next_retry"] >= site.door.time() - 1
                assert state["last_delivered"] == expected[2]
                site.door.report_alarm(True, "EMS export with site name SITE", part="site")   # the service's own
                raised = [e for e in site.door.events(None)
                          if e.get("event") == "raised" and e.get("alarm") == 6 and e.get("source") == "push:delivery"]
                assert len(raised) == 1                                     # raised once, not once per retry
                restarted = FtpServer(tmp_path / "ftp", port=port).start()
                try:
                    expected += await site.spool_files(2)
                    site.sender.retry_now()
                    await wait_for(lambda: site.spool.count() == 0 and site.alarm() is None)
                    received = server.names() + restarted.names()
                    assert received == expected                             # all, in order, none twice
                    assert sorted(os.listdir(tmp_path / "ftp" / "exports" / "site1")) == sorted(expected)
                    cleared = [e for e in site.door.events(None) if e.get("event") == "cleared"
                               and e.get("alarm") == 6 and e.get("source") == "push:delivery"]
                    assert len(cleared) == 1
                    assert site.door.alarm_active(part="site") is not None      # a delivery clears its part only
                    state = site.sender.status()
                    assert (state["spool_files"], state["last_error"], state["next_retry"]) == (0, None, None)
                    assert state["last_delivered"] == expected[-1] and state["delivered"] == len(expected)
                finally:
                    restarted.stop()
            finally:
                await site.sender.stop()
                server.stop()
    asyncio.run(scenario())


def test_a_spool_reopened_after_a_crash_delivers_everything_and_a_full_spool_drops_the_oldest(tmp_path):
    async def scenario():
        async with site_of(tmp_path, spool_bytes=2000) as site:
            with FtpServer(tmp_path / "ftp") as server:
                names = await site.spool_files(3)                        # 1xx + 2xx + 3xx bytes
                directory = site.spool.directory
                with open(os.path.join(directory, "000000000099.part"), "wb") as handle:
                    handle.write(b"half a file")                            # a put cut by the power
                reopened = Spool(directory, 2000, on_drop=drop_recorder(site.door))
                await reopened.open()
                assert [e.name for e in reopened.entries()] == names
                assert not os.path.exists(os.path.join(directory, "000000000099.part"))
                site.spool = site.sender.spool = reopened
                names += await site.spool_files(3)                        # 4xx, 5xx, 6xx: the oldest must go
                dropped = [e for e in site.door.events(None) if e.get("event") == "export-dropped"]
                assert [e["file"] for e in dropped] == names[:len(dropped)] and dropped
                assert all(e["source"] == "push" and e["reason"] == "full" for e in dropped)
                assert dropped[0]["device"] == "Meter01" and dropped[0]["data_type"] == "Energy"
                await site.configure(**ftp_settings(server))
                lost = reopened.entries()[1]
                os.unlink(lost.path)                                      # a spooled file gone by hand
                assert await site.sender.deliver() == len(names) - len(dropped) - 1
                assert server.names() == [n for n in names[len(dropped):] if n != lost.name]
                assert site.alarm() is None and reopened.count() == 0     # skipped with an event, not a block
                damaged = [e for e in site.door.events(None) if e.get("event") == "export-dropped"][len(dropped):]
                assert [(e["file"], e["reason"]) for e in damaged] == [(lost.name, "damaged")]
    asyncio.run(scenario())


def test_hostile_servers_raise_alarm_6_retry_and_never_stall_the_loop(tmp_path):
    """The hostile servers run in a child process: the loop lag measured is the gateway's, not the GIL the
    test's own server threads would take."""
    pki, stranger = Pki(), Pki("Unknown CA")
    good_cert = pki.issue(tmp_path, label="good")
    strange_cert = stranger.issue(tmp_path, label="strange")
    wrong_name = pki.issue(tmp_path, names=("127.0.0.2",), label="wrong-name")

    async def scenario():
        async with site_of(tmp_path, connect_timeout=1.0, timeout=1.0) as site:
            await site.cyber.add_ca_certificates(pki.pem)
            names = await site.spool_files(2)
            cases = [
                (ChildFtpServer(tmp_path / "full", refuse_stor=True), {}, "push.transfer.answer", "552"),
                (ChildFtpServer(tmp_path / "unknown", kind="explicit", certfile=strange_cert),
                 {"secure": True, "tls_mode": "explicit"}, "push.transfer.tls_verify", "certificate"),
                (ChildFtpServer(tmp_path / "name", kind="implicit", certfile=wrong_name),
                 {"secure": True, "tls_mode": "implicit"}, "push.transfer.tls_verify", "127.0.0.1"),
                (SilentServer(), {}, "push.transfer.timeout", "did not answer"),
                (SilentServer(), {"secure": True, "tls_mode": "implicit"}, "push.transfer.timeout", "did not answer"),
                (SilentServer(), {"protocol": "http"}, "push.transfer.timeout", "did not answer"),
            ]
            lag = LoopLagMonitor(interval=0.01)
            with contextlib.ExitStack() as servers:
                for server, _options, _key, _words in cases:
                    servers.enter_context(server)                  # started before the loop is measured
                lag.start()
                try:
                    for server, options, key, words in cases:
                        await site.configure(**ftp_settings(server, **options))
                        for _attempt in (1, 2):
                            assert await site.sender.deliver() == 0
                            assert site.alarm_key() == key, site.alarm()
                            assert words in site.alarm()["detail"]
                            assert site.spool.count() == 2
                            assert not hasattr(server, "stored") or server.stored() == []
                        assert site.sender.backoff > site.sender.min_backoff      # backing off between tries
                    summary = lag.summary()
                finally:
                    await lag.stop()
            assert summary["p99_ms"] < 20.0, summary
            assert [e["event"] for e in site.door.events(None) if e.get("alarm") == 6] == ["raised"]
            with FtpServer(tmp_path / "good", kind="explicit", certfile=good_cert) as server:
                await site.configure(**ftp_settings(server, secure=True, tls_mode="explicit", protocol="ftp"))
                assert await site.sender.deliver() == 2 and server.names() == names
                assert site.alarm() is None
    asyncio.run(scenario())


def test_the_event_log_goes_along_when_asked(tmp_path):
    async def scenario():
        async with site_of(tmp_path) as site:
            with FtpServer(tmp_path / "ftp") as server:
                await site.configure(**ftp_settings(server, upload_log=True))
                names = await site.spool_files(1)
                assert await site.sender.deliver() == 1
                assert server.names()[0] == names[0]
                log_name = server.names()[1]
                assert re.fullmatch(r"m70-events-\d{4}-\d\d-\d\d\.log", log_name)
                lines = content_of(log_name, server.files).decode("ascii").splitlines()
                # RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG
                syslog = re.compile(r"<\d{1,3}>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \S+ \S+ \S+ \S+ - \{.*\}")
                assert lines and all(syslog.fullmatch(line) for line in lines), lines[:3]
                assert any('"setting-changed"' in line or "setting-changed" in line for line in lines)
    asyncio.run(scenario())


def test_the_spool_of_the_push_door_lives_in_the_state_directory_and_follows_push_spool_mb(tmp_path):
    async def scenario():
        async with site_of(tmp_path) as site:
            await site.configure(spool_mb=2)
            spool = await open_spool(site.door)
            assert spool.directory == str(tmp_path / "state" / "export-spool") and spool.max_bytes == 2 * 2 ** 20
            for index in range(3):
                path = str(tmp_path / ("big%d.csv" % index))
                with open(path, "wb") as handle:
                    handle.write(b"%d" % index * 600_000)
                await spool.put(path, "BIG%d.csv" % index, {"data_type": "Energy"})
            assert spool.count() == 3
            await site.configure(spool_mb=1)                             # smaller: the oldest go at once
            await wait_for(lambda: spool.resize_task is not None and spool.resize_task.done())
            assert [e.name for e in spool.entries()] == ["BIG2.csv"]
            dropped = [e["file"] for e in site.door.events(None) if e.get("event") == "export-dropped"]
            assert dropped == ["BIG0.csv", "BIG1.csv"]
    asyncio.run(scenario())
