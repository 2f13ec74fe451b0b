"""Backup and restore over HTTP (issue 15, SPEC §7.2): a backup made on one gateway restores onto another with
its own device key (same topology, same settings, the secrets sealed again under the receiver's key; a full one
also brings the time series back); a wrong password, a damaged, truncated or foreign file is refused with its
reason, in the caller's language, and changes nothing; a full backup's job reports its progress.

Two gateways run one after the other on the simulated board, each with the web server on loopback; the files
are the ones the API hands out. What "nothing changed" means is checked on the files themselves (their bytes)
and on the topology and settings the door answers.
"""

import asyncio
import io
import json
import os
import tarfile

import pytest
from conftest import web_login
from system_support import BACKUP_PASSWORD, call, make_backup, system_site, upload

from daemon.security import sealed
from daemon.security.rights import Caller
from daemon.storage.store import Series
from daemon.system import backup

CHANGED = {"gateway.name": "Site-North", "gateway.location": "Building 4", "smtp.password": "Smtp-Secret-5Hv#",
           "snmp.v3.write_auth_password": "Wr-Auth-9Kp!", "poll.stale_after_s": 7}
SERIES = Series("backup-test", 600)
T0 = 1_780_000_200


def view(gw):
    door = gw.door(Caller("web", "admin"))
    return [d.as_dict() for d in gw.topology.devices], dict((name, door.setting(name)) for name in CHANGED)


async def source_backups(state, kinds=("configuration",)):
    """The files of a gateway whose settings changed and whose store holds three points; (files, view)."""
    async with system_site(state) as (gw, base):
        admin = await call(web_login, base, "admin")
        assert (await call(admin.post, "/api/settings", CHANGED))[0] == 200
        for n in range(3):
            gw.storage.add(SERIES, T0 + 600 * n, 10.0 + n)
        assert await gw.storage.commit()
        files = {}
        for kind in kinds:
            files[kind] = await make_backup(admin, kind)
        return files, view(gw)


def test_a_configuration_backup_restores_onto_another_gateway_with_its_own_key(tmp_path):
    async def body():
        files, before = await source_backups(tmp_path / "a")
        _seen, data = files["configuration"]
        async with system_site(tmp_path / "b", devices=False) as (gw, base):
            fresh = view(gw)
            admin = await call(web_login, base, "admin")
            status, answer = await call(upload, admin, "/api/system/restore", data, BACKUP_PASSWORD)
            events = gw.door(Caller("web", "admin")).events(None)
            return before, fresh, status, answer, view(gw), events
    before, fresh, status, answer, after, events = asyncio.run(body())
    assert fresh != before and fresh[0] == []
    assert status == 200 and answer["ok"] and answer["kind"] == "configuration", answer
    assert after == before
    assert (tmp_path / "a" / "device.key").read_bytes() != (tmp_path / "b" / "device.key").read_bytes()
    raw = (tmp_path / "b" / "settings.json").read_bytes()
    assert CHANGED["smtp.password"].encode() not in raw and b"Site-North" in raw
    assert [e for e in events if e.get("event") == "restore"]
    assert os.listdir(tmp_path / "b" / "spool") == []           # the upload's spool file went with the answer


def test_a_full_backup_reports_its_progress_and_brings_the_time_series_back(tmp_path):
    async def body():
        files, before = await source_backups(tmp_path / "a", kinds=("full",))
        seen, data = files["full"]
        async with system_site(tmp_path / "b", devices=False) as (gw, base):
            empty = await gw.storage.newest(SERIES.name)
            admin = await call(web_login, base, "admin")
            status, answer = await call(upload, admin, "/api/system/restore", data, BACKUP_PASSWORD)
            newest = await gw.storage.newest(SERIES.name)
            points = await gw.storage.query([SERIES.name], T0, T0 + 1800)
            return seen, before, empty, status, answer, newest, points, view(gw)
    seen, before, empty, status, answer, newest, points, after = asyncio.run(body())
    final = seen[-1]
    assert final["state"] == "done" and final["total"] > 0 and final["done"] == final["total"]
    assert all(0 <= job["done"] <= (job["total"] or 0) or job["total"] is None for job in seen)
    assert status == 200 and answer["kind"] == "full", answer
    assert empty is None and newest == T0 + 1200
    assert list(points[SERIES.name].values) == [10.0, 11.0, 12.0]
    assert after == before


def test_the_encryption_reports_progress_chunk_by_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(sealed, "CHUNK", 4096)
    tar = tmp_path / "backup.tar"
    tar.write_bytes(os.urandom(5 * 4096 + 100))
    calls = []
    backup.encrypt_file(str(tar), str(tmp_path / "out"), BACKUP_PASSWORD, "full", 0,
                        lambda done, total: calls.append((done, total)))
    assert len(calls) == 6 and calls[-1] == (tar.stat().st_size, tar.stat().st_size)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def _tampered(data):
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 0x01
    return bytes(changed)


def _foreign_tar():
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        info = tarfile.TarInfo("settings.json")
        payload = b"{}"
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return out.getvalue()


@pytest.mark.parametrize("language", ["en", "fr"])
def test_wrong_password_damaged_truncated_and_foreign_files_are_refused_and_change_nothing(tmp_path, language):
    async def body():
        files, _before = await source_backups(tmp_path / "a")
        data = files["configuration"][1]
        cases = {"password": (data, "Wrong-Pass-2026"), "damaged": (_tampered(data), BACKUP_PASSWORD),
                 "truncated": (data[: len(data) - 40], BACKUP_PASSWORD), "foreign": (_foreign_tar(), BACKUP_PASSWORD),
                 "empty header": (sealed.MAGIC + b"\0\0\0\0", BACKUP_PASSWORD)}
        out = {}
        async with system_site(tmp_path / "b") as (gw, base):
            admin = await call(web_login, base, "admin", language)
            state = tmp_path / "b"
            before = view(gw), (state / "settings.json").read_bytes() if (state / "settings.json").exists() else b"", \
                (state / "topology.json").read_bytes()
            for name, (payload, password) in cases.items():
                out[name] = await call(upload, admin, "/api/system/restore", payload, password)
            after = view(gw), (state / "settings.json").read_bytes() if (state / "settings.json").exists() else b"", \
                (state / "topology.json").read_bytes()
            return out, before, after, os.listdir(state / "spool")
    out, before, after, spool = asyncio.run(body())
    assert after == before and spool == []
    reasons = dict((name, (status, answer.get("reason"))) for name, (status, answer) in out.items())
    assert reasons == {"password": (400, "password"), "damaged": (400, "damaged"), "truncated": (400, "damaged"),
                       "foreign": (400, "foreign"), "empty header": (400, "damaged")}
    words = {"en": {"password": "Wrong password", "damaged": "damaged", "foreign": "not a backup"},
             "fr": {"password": "Mauvais mot de passe", "damaged": "endommagé", "foreign": "pas une sauvegarde"}}
    for name, fragment in words[language].items():
        assert fragment in out[name][1]["error"], out[name]
        assert "nothing was changed" in out[name][1]["error"] or "rien n'a été modifié" in out[name][1]["error"]


def test_a_backup_whose_configuration_this_gateway_refuses_changes_nothing(tmp_path):
    """A backup that decrypts but names a product the catalogue does not know: refused as a whole."""
    tar = tmp_path / "bad.tar.gz"
    meta = {"product": sealed.PRODUCT, "format": backup.FORMAT, "kind": "configuration", "version": "0.1.0",
            "created": 0, "netid": "ABCDEF"}
    backup.write_tar(str(tar), meta, {"gateway.name": "Never-Applied"},
                     [{"bus": "digiware", "address": 5, "reference": "NO-SUCH-PRODUCT", "netid": "123456"}])
    backup.encrypt_file(str(tar), str(tmp_path / "bad.m70bak"), BACKUP_PASSWORD, "configuration", 0)
    data = (tmp_path / "bad.m70bak").read_bytes()

    async def body():
        async with system_site(tmp_path / "b") as (gw, base):
            before = view(gw)
            admin = await call(web_login, base, "admin")
            answer = await call(upload, admin, "/api/system/restore", data, BACKUP_PASSWORD)
            return before, answer, view(gw)
    before, (status, answer), after = asyncio.run(body())
    assert status == 400 and answer["reason"] == "configuration", answer
    assert after == before and after[1]["gateway.name"] != "Never-Applied"


def test_the_backup_password_rule_and_the_kind_are_checked_before_a_job_starts(tmp_path):
    async def body():
        async with system_site(tmp_path / "a", devices=False) as (gw, base):
            admin = await call(web_login, base, "admin")
            short = await call(admin.post, "/api/system/backup", {"kind": "full", "password": "short"})
            kind = await call(admin.post, "/api/system/backup", {"kind": "everything", "password": BACKUP_PASSWORD})
            extra = await call(admin.post, "/api/system/backup", {"kind": "full", "password": BACKUP_PASSWORD,
                                                                 "x": 1})
            return short, kind, extra, os.path.exists(tmp_path / "a" / "backup-out")
    short, kind, extra, made = asyncio.run(body())
    assert short[0] == 400 and short[1]["reason"] == "password_rule"
    assert kind[0] == 400 and kind[1]["reason"] == "kind"
    assert extra[0] == 400 and extra[1]["reason"] == "bad_request"
    assert not made


def test_the_backup_file_holds_the_documents_and_no_device_key(tmp_path):
    async def body():
        files, _ = await source_backups(tmp_path / "a", kinds=("full",))
        return files["full"][1]
    data = asyncio.run(body())
    clear = io.BytesIO()
    header = sealed.decrypt_stream(io.BytesIO(data), clear, BACKUP_PASSWORD)
    with tarfile.open(fileobj=io.BytesIO(clear.getvalue()), mode="r:gz") as archive:
        names = archive.getnames()
        settings_doc = json.load(archive.extractfile("settings.json"))
    assert header["kind"] == "full"
    assert names[:3] == ["backup.json", "settings.json", "topology.json"]
    assert "events.ring" in names and any(name.startswith("tsdb/") for name in names)
    assert not any("device.key" in name or "accounts" in name for name in names)
    assert settings_doc["settings"]["smtp.password"] == CHANGED["smtp.password"]    # clear inside the encryption
    key = (tmp_path / "a" / "device.key").read_bytes()
    assert key not in clear.getvalue()
