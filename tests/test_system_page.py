"""The System page (issue 15, SPEC §7.2): its routes' rights and CSRF, the streamed uploads' refusals, the resets,
and the page in a real headless Chromium.

Server side: every route is tried by every profile (Admin and Cyber Security may, the others are refused and
nothing changes); a state-changing request without the CSRF token is refused, an upload before one byte of its
body is read; malformed, huge and abandoned uploads leave nothing behind, and nothing is written outside the
spool. Reset topology needs its confirmation. A factory reset, once the daemon starts again, leaves the default
passwords (alarm 8 raised for them again) and nothing of the old topology, settings or events.

Browser: a backup made on one gateway's page (the full one with its progress bar) is downloaded and restored
on a second gateway with an empty state directory through its page, after a wrong password was refused; a
tampered upgrade package is refused with its reason; axe-core finds nothing critical or serious; screenshots
EN/FR at 1920 and 768 px go to tests/results/.
"""

import asyncio
import os
import socket

import pytest
from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, axe, browser_ready, shot
from conftest import (
    DEFAULT_PASSWORDS,
    DEFAULT_PASSWORDS_ALARM,
    WebClient,
    demo_devices,
    retire_default_passwords,
    wait_for,
    web_login,
)
from system_support import BACKUP_PASSWORD, call, release_keys, system_site, upload

from daemon.security.rights import Caller
from daemon.system import reset
from daemon.upgrade import package as pkg
from daemon.version import VERSION

PROFILES = ("anonymous", "user", "advanced", "admin", "cyber")
ALLOWED = ("admin", "cyber")


def topology(gw):
    return [d.as_dict() for d in gw.topology.devices]


def state_files(state):
    """Every file under the state directory, but the ``.tmp`` of an atomic write the running parts may be making
    (the meters' event cursors) at that moment."""
    out = set()
    for root, _dirs, names in os.walk(state):
        for name in names:
            if not name.endswith(".tmp"):
                out.add(os.path.relpath(os.path.join(root, name), state))
    return out


# ---------------------------------------------------------------- server side

def test_every_route_answers_admin_and_cyber_only_and_a_refusal_changes_nothing(tmp_path):
    async def body():
        async with system_site(tmp_path / "state") as (gw, base):
            clients = {"anonymous": WebClient(base)}
            for profile in PROFILES[1:]:
                clients[profile] = await call(web_login, base, profile)
            seen = {}
            for who, client in clients.items():
                devices = len(gw.topology.devices)
                seen[who] = {
                    "overview": (await call(client.get, "/api/system"))[0],
                    "page": (await call(client.request, "GET", "/system"))[0],
                    "backup": (await call(client.post, "/api/system/backup",
                                          {"kind": "configuration", "password": "short"}))[0],
                    "restore": (await call(upload, client, "/api/system/restore", b"x" * 100, BACKUP_PASSWORD))[0],
                    "upgrade": (await call(upload, client, "/api/system/upgrade", b"x" * 100))[0],
                    "reset": (await call(client.post, "/api/system/reset-topology", {"confirm": False}))[0],
                    "factory": (await call(client.post, "/api/system/factory-reset", {}))[0],
                    "kept": len(gw.topology.devices) == devices and not reset.pending(str(tmp_path / "state")),
                }
            return seen
    seen = asyncio.run(body())
    for who, answers in seen.items():
        assert answers["kept"], who
        if who in ALLOWED:
            # let in: each then refuses the bad request itself (short password, not a backup, no slots,
            # no confirmation)
            assert (answers["overview"], answers["page"]) == (200, 200), (who, answers)
            assert answers["backup"] == answers["restore"] == answers["reset"] == answers["factory"] == 400, answers
            assert answers["upgrade"] == 409, answers
        else:
            expected = 401 if who == "anonymous" else 403
            assert answers["overview"] == answers["backup"] == answers["reset"] == answers["factory"] == expected, \
                (who, answers)
            assert answers["restore"] == answers["upgrade"] == expected, (who, answers)
            assert answers["page"] in (303, 403) if who != "anonymous" else answers["page"] in (200, 303)


def test_requests_without_the_csrf_token_or_from_another_origin_are_refused_uploads_before_their_body(tmp_path):
    async def body():
        async with system_site(tmp_path / "state") as (gw, base):
            admin = await call(web_login, base, "admin")
            token, admin.csrf = admin.csrf, None
            out = {"reset": (await call(admin.post, "/api/system/reset-topology", {"confirm": True}))[0],
                   "backup": (await call(admin.post, "/api/system/backup",
                                         {"kind": "full", "password": BACKUP_PASSWORD}))[0],
                   "restore": (await call(upload, admin, "/api/system/restore", b"x" * 5000, BACKUP_PASSWORD))[0],
                   "upgrade": (await call(upload, admin, "/api/system/upgrade", b"x" * 5000))[0]}
            admin.csrf = token
            out["cross-site upload"] = (await call(upload, admin, "/api/system/restore", b"x" * 5000,
                                                   BACKUP_PASSWORD, {"Origin": "http://evil.example"}))[0]
            out["cross-site reset"] = (await call(admin.request, "POST", "/api/system/reset-topology",
                                                  {"confirm": True}, {"Origin": "http://evil.example"}))[0]
            spool = tmp_path / "state" / "spool"
            return out, len(gw.topology.devices), os.path.exists(tmp_path / "state" / "backup-out"), \
                sorted(os.listdir(spool)) if spool.exists() else []
    out, devices, made, spool = asyncio.run(body())
    assert set(out.values()) == {403}, out
    assert devices == len(demo_devices()) and not made and spool == []


def _raw_request(port, head, body=b"", close_early=False):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + body)
        if close_early:
            return b""
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def test_malformed_huge_and_abandoned_uploads_write_nothing_outside_the_spool_and_leave_nothing(tmp_path):
    state = tmp_path / "state"

    async def body():
        async with system_site(state) as (gw, base):
            admin = await call(web_login, base, "admin")
            port = int(base.rsplit(":", 1)[1])
            await gw.alarms.flush()
            before = state_files(state)
            settings_before = (state / "settings.json").read_bytes() if (state / "settings.json").exists() else b""

            def head(length, password=True):
                return ("POST /api/system/restore HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nCookie: m70_session=%s\r\n"
                        "X-CSRF-Token: %s\r\n%sContent-Length: %s\r\nConnection: close\r\n\r\n"
                        % (port, admin.cookie, admin.csrf,
                           "X-Backup-Password: QmFja3VwLVBhc3MtMjAyNg\r\n" if password else "", length))
            out = {
                "huge": await call(_raw_request, port, head(2 * 1024 ** 3)),
                "bad length": await call(_raw_request, port, head("12abc")),
                "no password": await call(_raw_request, port, head(100, password=False), b"x" * 100),
                "empty": await call(_raw_request, port, head(0)),
                "not a backup": await call(_raw_request, port, head(3000), os.urandom(3000)),
            }
            uploads = gw.services[0].uploads
            await call(_raw_request, port, head(5_000_000), b"y" * 200_000, True)      # the client goes away
            await wait_for(lambda: uploads.abandoned == 1 and uploads.spooling == 0, guard=30)
            spool_now = sorted(os.listdir(state / "spool"))
            await gw.alarms.flush()
            after = state_files(state)
            return out, before, after, settings_before, len(gw.topology.devices), spool_now
    out, before, after, settings_before, devices, spool_now = asyncio.run(body())
    status = dict((name, answer.split(b" ", 2)[1]) for name, answer in out.items())
    assert status == {"huge": b"413", "bad length": b"400", "no password": b"400", "empty": b"400",
                      "not a backup": b"400"}, out
    assert after - before <= {"events.ring"} and before - after == set()
    settings_now = (state / "settings.json").read_bytes() if (state / "settings.json").exists() else b""
    assert settings_now == settings_before and devices == len(demo_devices())
    assert spool_now == []


def test_reset_topology_needs_its_confirmation(tmp_path):
    async def body():
        async with system_site(tmp_path / "state") as (gw, base):
            admin = await call(web_login, base, "admin")
            unconfirmed = await call(admin.post, "/api/system/reset-topology", {})
            kept = len(gw.topology.devices)
            confirmed = await call(admin.post, "/api/system/reset-topology", {"confirm": True})
            await gw.alarms.flush()
            return unconfirmed, kept, confirmed, topology(gw), gw.door(Caller("web", "admin")).events(None)
    unconfirmed, kept, confirmed, devices, events = asyncio.run(body())
    assert unconfirmed[0] == 400 and kept == len(demo_devices())
    assert confirmed == (200, {"ok": True, "removed": len(demo_devices())}) and devices == []
    assert [e for e in events if e.get("event") == "topology-reset" and e.get("by", "").startswith("web/admin")]


def test_a_factory_reset_leaves_the_default_passwords_and_nothing_of_the_old_gateway(tmp_path):
    state = tmp_path / "state"

    async def before_reset():
        async with system_site(state, overrides={}) as (gw, base):
            await retire_default_passwords(gw)                        # a commissioned gateway
            cyber = await call(web_login, base, "cyber")
            assert (await call(cyber.post, "/api/settings", {"gateway.name": "Old-Site",
                                                             "smtp.password": "Smtp-Secret-5Hv#"}))[0] == 200
            assert DEFAULT_PASSWORDS_ALARM not in gw.alarms.active
            answer = await call(cyber.post, "/api/system/factory-reset", {"confirm": True})
            return answer, (state / "device.key").read_bytes()

    async def after_restart():
        async with system_site(state, devices=False) as (gw, base):
            login = await call(WebClient(base).login, "cyber", DEFAULT_PASSWORDS["cyber"])
            door = gw.door(Caller("web", "admin"))
            await gw.alarms.flush()
            return (login, dict(gw.alarms.active), topology(gw), door.setting("gateway.name"),
                    door.setting("smtp.password"), door.events(None), (state / "device.key").read_bytes())
    answer, old_key = asyncio.run(before_reset())
    assert answer[0] == 200 and answer[1]["ok"], answer
    assert reset.pending(str(state))
    (status, session), alarms, devices, name, secret, events, new_key = asyncio.run(after_restart())
    assert status == 200 and session["must_change"]                  # the manual's password again, to be changed
    assert DEFAULT_PASSWORDS_ALARM in alarms
    assert devices == [] and name == "M-70" and secret == "" and new_key != old_key
    assert not reset.pending(str(state))
    assert [e["event"] for e in events if e.get("event", "").startswith("factory")] == ["factory-reset-done"]
    assert not [e for e in events if e.get("event") == "password-changed"]    # the old gateway's changes are gone
    assert len([e for e in events if e.get("event") == "login"]) == 1          # only the one just made


# ---------------------------------------------------------------- the page in Chromium

async def _page(browser, base, profile, language="en", width=1920, height=1080, accept_downloads=False):
    client = await asyncio.to_thread(web_login, base, profile, language)
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        accept_downloads=accept_downloads)
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    page = await context.new_page()
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(base + "/system", wait_until="load")
    await page.wait_for_function("() => document.documentElement.dataset.ready === '1'")
    return page


async def _message(page, selector):
    await page.wait_for_function("(s) => { const m = document.querySelector(s); "
                                 "return m.classList.contains('ok') || m.classList.contains('bad'); }", arg=selector)
    return await page.get_attribute(selector, "class"), await page.text_content(selector)


@pytest.fixture
def package_files(tmp_path):
    """(public key path, a tampered package file): a file changed after its manifest was signed."""
    private, public_path = release_keys(tmp_path)
    tree = tmp_path / "tree"
    (tree / "daemon").mkdir(parents=True)
    (tree / "daemon" / "gateway.py").write_bytes(b"print('new')\n" * 40)
    major, minor, _ = pkg.parse_version(VERSION)
    manifest = pkg.manifest_of(str(tree), ["daemon/gateway.py"], "%d.%d.0" % (major, minor + 1), VERSION)
    (tree / "daemon" / "gateway.py").write_bytes(b"print('tampered')\n" * 40)
    path = tmp_path / "tampered.tar.gz"
    with open(path, "wb") as handle:
        pkg.build(handle, str(tree), manifest, private)
    return public_path, str(path)


def test_backup_on_one_gateway_restores_on_another_through_the_pages(tmp_path, package_files):
    browser_ready(AXE)
    from playwright.async_api import async_playwright
    public_path, tampered = package_files

    async def body():
        results = {}
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                async with system_site(tmp_path / "a") as (gw_a, base_a):
                    admin = await call(web_login, base_a, "admin")
                    assert (await call(admin.post, "/api/settings", {"gateway.name": "Site-North",
                                                                     "smtp.password": "Smtp-Secret-5Hv#"}))[0] == 200
                    page = await _page(browser, base_a, "admin", accept_downloads=True)
                    results["probe"] = await page.evaluate(PAGE_PROBE)
                    results["axe en-1920"] = await axe(page)
                    await page.screenshot(path=shot("system-en-1920x1080.png"), full_page=True)
                    # the full backup: its progress bar, then the download
                    await page.check("#kind-full")
                    await page.fill("#backup-password", BACKUP_PASSWORD)
                    await page.fill("#backup-confirm", BACKUP_PASSWORD)
                    await page.click("#backup-start")
                    await page.wait_for_selector("#backup-progress-box:not([hidden])")
                    await page.wait_for_selector("#backup-download:not([hidden])")
                    results["full progress"] = await page.get_attribute("#backup-progress", "value")
                    results["full message"] = await page.text_content("#backup-message")
                    await page.screenshot(path=shot("system-backup-done-en-1920x1080.png"), full_page=True)
                    # the configuration backup, downloaded by the browser
                    await page.check("#kind-configuration")
                    await page.click("#backup-start")
                    await page.wait_for_function("() => document.getElementById('backup-start').disabled === false "
                                                 "&& !document.getElementById('backup-download').hidden")
                    async with page.expect_download() as info:
                        await page.click("#backup-download")
                    download = await info.value
                    saved = str(tmp_path / download.suggested_filename)
                    await download.save_as(saved)
                    results["source"] = (topology(gw_a), gw_a.door(Caller("web", "admin")).setting("gateway.name"),
                                         gw_a.door(Caller("web", "admin")).setting("smtp.password"))
                    page_fr = await _page(browser, base_a, "cyber", "fr", 768, 1024)
                    results["probe fr-768"] = await page_fr.evaluate(PAGE_PROBE)
                    results["axe fr-768"] = await axe(page_fr)
                    await page_fr.screenshot(path=shot("system-fr-768x1024.png"), full_page=True)
                    await page_fr.set_viewport_size({"width": 1920, "height": 1080})
                    await page_fr.screenshot(path=shot("system-fr-1920x1080.png"), full_page=True)
                    await page.set_viewport_size({"width": 768, "height": 1024})
                    results["probe en-768"] = await page.evaluate(PAGE_PROBE)
                    await page.screenshot(path=shot("system-en-768x1024.png"), full_page=True)
                async with system_site(tmp_path / "b", devices=False, release_key=public_path,
                                       install_root=str(tmp_path / "root")) as (gw_b, base_b):
                    results["fresh"] = topology(gw_b)
                    page = await _page(browser, base_b, "admin", "fr")
                    await page.set_input_files("#restore-file", saved)
                    await page.fill("#restore-password", "Wrong-Pass-2026")
                    await page.click("#restore-start")
                    results["wrong"] = await _message(page, "#restore-message")
                    results["after wrong"] = topology(gw_b)
                    await page.screenshot(path=shot("system-restore-refused-fr-1920x1080.png"), full_page=True)
                    await page.fill("#restore-password", BACKUP_PASSWORD)
                    await page.click("#restore-start")
                    await page.wait_for_function("() => document.getElementById('restore-message')"
                                                 ".classList.contains('ok')")
                    results["restored"] = (topology(gw_b), gw_b.door(Caller("web", "admin")).setting("gateway.name"),
                                           gw_b.door(Caller("web", "admin")).setting("smtp.password"))
                    results["restored message"] = await page.text_content("#restore-message")
                    await page.set_input_files("#upgrade-file", tampered)
                    await page.click("#upgrade-start")
                    results["tampered"] = await _message(page, "#upgrade-message")
                    results["slots"] = os.listdir(tmp_path / "root" / "slots")
                    await page.screenshot(path=shot("system-upgrade-refused-fr-1920x1080.png"), full_page=True)
                    results["axe fr-1920 refusals"] = await axe(page)
            finally:
                await browser.close()
        return results
    results = asyncio.run(body())
    for name in ("probe", "probe fr-768", "probe en-768"):
        probe = results[name]
        assert probe["unlabelled"] == [] and probe["scrollWidth"] <= probe["innerWidth"], (name, probe)
    assert results["probe fr-768"]["lang"] == "fr" and "Sauvegarde" in results["probe fr-768"]["text"]
    for name in ("axe en-1920", "axe fr-768", "axe fr-1920 refusals"):
        assert results[name] == [], (name, results[name])
    assert results["full progress"] == "100" and results["full message"]
    assert results["fresh"] == [] and results["after wrong"] == []
    cls, text = results["wrong"]
    assert "bad" in cls and "Mauvais mot de passe" in text
    assert results["restored"] == results["source"] and results["source"][0]
    assert results["restored message"]
    cls, text = results["tampered"]
    assert "bad" in cls and "manifeste signé" in text
    assert results["slots"] == []
