"""Signed upgrade upload over HTTP (issue 15): a package signed by the release key the gateway was built with (here
a test key pair, given to the Gateway as its constructor parameter) is verified and installed into the inactive
slot; unsigned, tampered, wrong-product and below-minimum packages are refused with their reason, in the caller's
language, and nothing of the slots changes; a gateway without a launcher's installation root refuses with the
words the page shows; a body over the package bound is refused before it is read."""

import asyncio
import io
import os

import pytest
from conftest import web_login
from system_support import call, release_keys, system_site, upload

from daemon.security.rights import Caller
from daemon.upgrade import package as pkg
from daemon.upgrade.slots import Slots
from daemon.version import VERSION

FILES = ["daemon/gateway.py", "tools/run.sh"]


def newer(version):
    major, minor, patch = pkg.parse_version(version)
    return "%d.%d.%d" % (major, minor + 1, 0)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "daemon").mkdir(parents=True)
    (root / "daemon" / "gateway.py").write_bytes(b"print('new gateway')\n" * 50)
    (root / "tools").mkdir()
    (root / "tools" / "run.sh").write_bytes(b"#!/bin/sh\nexec python3 -m daemon\n")
    os.chmod(root / "tools" / "run.sh", 0o755)
    return root


def build(tree, private, version=None, min_version=VERSION, after=None, **changes):
    manifest = pkg.manifest_of(str(tree), FILES, version or newer(VERSION), min_version)
    manifest.update(changes)
    if after is not None:
        after()                            # a file changed once the manifest was signed
    out = io.BytesIO()
    pkg.build(out, str(tree), manifest, private)
    return out.getvalue()


def slot_files(root):
    found = []
    for folder, _dirs, names in os.walk(root):
        found.extend(os.path.relpath(os.path.join(folder, name), root) for name in names)
    return sorted(found)


def test_a_signed_package_is_installed_into_the_inactive_slot(tmp_path, tree):
    private, public_path = release_keys(tmp_path)
    root = tmp_path / "root"
    data = build(tree, private)

    async def body():
        async with system_site(tmp_path / "state", devices=False, release_key=public_path,
                               install_root=str(root)) as (gw, base):
            admin = await call(web_login, base, "admin")
            before = (await call(admin.get, "/api/system"))[1]
            answer = await call(upload, admin, "/api/system/upgrade", data)
            after = (await call(admin.get, "/api/system"))[1]
            restart = await call(admin.post, "/api/reboot", {})
            return before, answer, after, restart, gw.door(Caller("web", "admin")).events(None)
    before, (status, answer), after, restart, events = asyncio.run(body())
    assert before["upgrade"]["slots"]["trial"] is None
    assert status == 200 and answer == {"ok": True, "version": newer(VERSION), "slot": "B"}, answer
    assert after["upgrade"]["slots"]["trial"] == "B" and after["upgrade"]["slots"]["slots"]["B"] == newer(VERSION)
    assert Slots(str(root)).state()["active"] == "A"
    for name in FILES:
        assert (root / "slots" / "B" / name).read_bytes() == (tree / name).read_bytes()
    assert restart[0] == 202
    assert [e for e in events if e.get("event") == "upgrade-installed"]
    assert os.listdir(tmp_path / "state" / "spool") == []


@pytest.mark.parametrize("language", ["en", "fr"])
def test_unsigned_tampered_wrong_product_and_below_minimum_packages_are_refused_and_change_nothing(
        tmp_path, tree, language):
    private, public_path = release_keys(tmp_path)
    other, _ = release_keys(tmp_path / "..")
    root = tmp_path / "root"

    def tamper():
        (tree / "daemon" / "gateway.py").write_bytes(b"print('changed after signing')\n")
    cases = {"signature": build(tree, other), "product": build(tree, private, product="another-gateway"),
             "version": build(tree, private, min_version=newer(VERSION)),
             "malformed": b"this is not a package at all" * 10}
    cases["content"] = build(tree, private, after=tamper)

    async def body():
        async with system_site(tmp_path / "state", devices=False, release_key=public_path,
                               install_root=str(root)) as (gw, base):
            admin = await call(web_login, base, "admin", language)
            out = {}
            for name, data in cases.items():
                out[name] = await call(upload, admin, "/api/system/upgrade", data)
            await gw.alarms.flush()       # events() read while a record is being written lists it twice
            return out, gw.door(Caller("web", "admin")).events(None)
    out, events = asyncio.run(body())
    assert dict((name, (status, answer.get("reason"))) for name, (status, answer) in out.items()) == \
        dict((name, (400, name)) for name in cases)
    words = {"en": "Nothing was changed", "fr": "Rien n'a été modifié"}[language]
    assert all(words in answer["error"] and answer["detail"] for _status, answer in out.values()), out
    assert Slots(str(root)).state()["trial"] is None
    assert slot_files(root / "slots") == []               # no slot, no staging folder, no state file written
    refusals = [e for e in events if e.get("event") == "upgrade-refused"]
    assert len(refusals) == len(cases), refusals


def test_without_slots_the_upgrade_is_refused_with_the_installation_words(tmp_path, tree):
    private, public_path = release_keys(tmp_path)

    async def body():
        async with system_site(tmp_path / "state", devices=False, release_key=public_path) as (_gw, base):
            admin = await call(web_login, base, "admin")
            overview = (await call(admin.get, "/api/system"))[1]
            return overview, await call(upload, admin, "/api/system/upgrade", build(tree, private))
    overview, (status, answer) = asyncio.run(body())
    assert overview["upgrade"] == {"version": VERSION, "slots": None}
    assert status == 409 and answer["reason"] == "no_slots"
    assert "not installed with slots (make install)" in answer["error"]


def test_a_package_over_the_bound_is_refused_before_its_body_is_read(tmp_path):
    import socket

    async def body():
        async with system_site(tmp_path / "state", devices=False, install_root=str(tmp_path / "root")) as (gw, base):
            admin = await call(web_login, base, "admin")
            port = int(base.rsplit(":", 1)[1])

            def send():
                with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                    sock.sendall(("POST /api/system/upgrade HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                  "Cookie: m70_session=%s\r\nX-CSRF-Token: %s\r\n"
                                  "Content-Length: %d\r\n\r\n" % (port, admin.cookie, admin.csrf,
                                                                  64 * 1024 * 1024 + 1)).encode())
                    return sock.recv(4096)
            answer = await call(send)
            spool = tmp_path / "state" / "spool"
            return answer, sorted(os.listdir(spool)) if spool.exists() else []
    answer, spool = asyncio.run(body())
    assert answer.startswith(b"HTTP/1.1 413 ") and spool == []
