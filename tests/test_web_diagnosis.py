"""The Diagnosis page (issue 14, SPEC §7.2): its JSON, its commands' rights, the syslog export, and the page in
a real headless Chromium.

The gateway runs the simulated demo site with the web server and Modbus TCP
on loopback ports it binds itself; the test's HTTP clients are real ones over
those sockets (``conftest.WebClient``), run in threads while the gateway's
loop serves. Counters are compared by their order (a reset makes a count
drop below what it was; a refused one never does), never by how fast the
meters answer. The syslog file is checked against RFC 5424's ABNF, written
here as a regular expression independent of the code that writes it. The
Pi board's reboot is run for real: ``python -m daemon --board rpi`` exits
with its reboot code and the next start's event log says who asked.
Screenshots go to tests/results/ (git-ignored).
"""

import asyncio
import calendar
import contextlib
import json
import os
import re
import time

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, browser_ready, shot
from conftest import (STRONG_PASSWORDS, WebClient, demo_devices, demo_topology, running_gateway, start_daemon,
                      wait_for, web_login, web_server)

from daemon.security.rights import Caller
from protocols.modbus.tcp import ModbusTcpService

# a meter that stops answering on a busy machine is retried every second, so every device's counts keep growing
SETTINGS = {"alarms.check_s": 3600, "modbus.port": 0, "modbus.bind": "127.0.0.1", "poll.backoff_max_s": 1}
MANY_REQUESTS = 15        # the slowest-polled meter needs seconds to reach this, and as long again after a reset:
#                           a reset shows as a drop below it unless the reset and the next read are that far apart

# RFC 5424 §6 (ABNF) as a regular expression: HEADER SP STRUCTURED-DATA [SP MSG].
PRINTUS = r"[\x21-\x7e]"
TIMESTAMP = (r"(?:-|(?P<date>\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01]))T"
             r"(?P<time>(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60))(?P<frac>\.\d{1,6})?"
             r"(?P<offset>Z|[+-](?:[01]\d|2[0-3]):[0-5]\d))")
SD_ELEMENT = r"\[[^\s=\]\"]{1,32}(?: [^\s=\]\"]{1,32}=\"(?:[^\"\\\]]|\\[\"\\\]])*\")*\]"
SYSLOG_LINE = re.compile(
    r"<(?P<pri>\d{1,3})>(?P<version>[1-9]\d{0,2}) " + TIMESTAMP +
    r" (?P<hostname>-|%s{1,255}) (?P<app>-|%s{1,48}) (?P<procid>-|%s{1,128}) (?P<msgid>-|%s{1,32})"
    % (PRINTUS, PRINTUS, PRINTUS, PRINTUS) +
    r" (?P<sd>-|(?:%s)+)(?: (?P<msg>.*))?" % SD_ELEMENT)
SEVERITY = {"critical": 2, "non-critical": 4, "information": 6}       # syslog crit, warning, info; else 5 notice


@contextlib.asynccontextmanager
async def demo_site(tmp_path, overrides=None):
    """The demo site polled at least twice, with the web server and Modbus TCP; yields (gateway, web base URL)."""
    web = web_server()
    settings = dict(SETTINGS)
    settings.update(overrides or {})
    async with running_gateway(tmp_path / "state", demo_topology(), settings, services=[web, ModbusTcpService]) as gw:
        await gw.topology.replace(demo_devices())
        await wait_for(lambda: all(p.cycles >= 2 for p in gw.pollers.values()), guard=60)
        yield gw, "http://127.0.0.1:%d" % web.server.port


def requests_by_address(gw):
    return dict((d["address"], d["counters"]["requests"]) for d in gw.door(_user()).diagnosis()["devices"])


def _user():
    return Caller("web", "user")


async def call(fn, *args):
    """A blocking HTTP client call, run in a thread while the gateway's loop goes on serving."""
    return await asyncio.to_thread(fn, *args)


async def many_requests(gw):
    await wait_for(lambda: min(requests_by_address(gw).values()) >= MANY_REQUESTS, guard=120)
    return requests_by_address(gw)


def reboot_events(gw):
    return [e for e in gw.door(_user()).events(None) if e.get("event") == "reboot"]


# ---------------------------------------------------------------- server side


def test_diagnosis_document_has_the_gateway_status_services_indicators_and_every_device(tmp_path):
    async def body():
        async with demo_site(tmp_path) as (gw, base):
            status, doc = await call(WebClient(base).get, "/api/diagnosis")
            return status, doc, gw.identity
    status, doc, identity = asyncio.run(body())
    assert status == 200
    gateway = doc["gateway"]
    assert (gateway["serial"], gateway["netid"], gateway["ip"]) == (identity["serial"], identity["netid"], "127.0.0.1")
    assert gateway["firmware"] and isinstance(gateway["time"], float)
    assert doc["services"]["web"]["running"] and doc["services"]["modbus"]["running"]
    assert doc["storage"]["available"] and 0 <= doc["storage"]["use"] <= 1
    assert set(doc["loop_lag"]) >= {"p50_ms", "p99_ms", "max_ms"}
    system = doc["system"]
    assert system["quality"] == "good" and system["ts"] <= gateway["time"] + 1
    assert 0 <= system["cpu"]["percent"] <= 100 and 0 < system["ram"]["percent"] < 100
    assert 0 < system["disk"]["percent"] <= 100 and system["disk"]["total_bytes"] > system["disk"]["free_bytes"]
    assert [d["address"] for d in doc["devices"]] == sorted(d.address for d in demo_devices())
    for device in doc["devices"]:
        counters = device["counters"]
        assert counters["requests"] >= counters["answers"] > 0, device
        assert device["last_success"] is not None and device["last_success_age_s"] >= 0, device


def test_reset_reboot_and_export_rights_per_profile_and_nothing_changes_on_refusal(tmp_path):
    async def body():
        async with demo_site(tmp_path) as (gw, base):
            clients = {"anonymous": WebClient(base), "user": await call(web_login, base, "user"),
                       "advanced": await call(web_login, base, "advanced"),
                       "admin": await call(web_login, base, "admin")}
            seen = {}
            for who, client in clients.items():
                # counts high enough for a reset to show, where one is expected; a refusal must keep any count
                before = await many_requests(gw) if who in ("advanced", "admin") else requests_by_address(gw)
                reset = await call(client.post, "/api/counters/reset", {})
                after = requests_by_address(gw)
                reboots = len(reboot_events(gw))
                reboot = await call(client.post, "/api/reboot", {})
                export = await call(client.request, "GET", "/api/events/syslog")
                rights = await call(client.get, "/api/diagnosis/rights")
                seen[who] = {"reset": reset[0], "dropped": [a for a in before if after[a] < before[a]],
                             "reboot": reboot, "reboot_events": len(reboot_events(gw)) - reboots,
                             "export": (export[0], export[2].get("Content-Disposition")), "rights": rights[1],
                             "modbus": gw.door(_user()).service_states()["modbus"]["running"]}
            return seen
    seen = asyncio.run(body())
    addresses = sorted(d.address for d in demo_devices())
    expected = {"anonymous": (401, 401, "user"), "user": (403, 403, "user"), "advanced": (200, 403, "advanced"),
                "admin": (200, 202, "admin")}
    for who, (reset_status, reboot_status, profile) in expected.items():
        got = seen[who]
        assert got["reset"] == reset_status, (who, got)
        # a refused reset leaves every count where it was (they only grow); an accepted one drops them all
        assert got["dropped"] == ([] if reset_status != 200 else addresses), (who, got)
        assert got["reboot"][0] == reboot_status, (who, got)
        assert got["reboot_events"] == (1 if reboot_status == 202 else 0), (who, got)
        assert got["export"][0] == 200 and re.fullmatch(r'attachment; filename="m70-events-\d{4}-\d\d-\d\d\.log"',
                                                        got["export"][1]), (who, got)
        assert got["rights"] == {"profile": profile, "may": {"reset_counters": reset_status == 200,
                                                             "reboot": reboot_status == 202, "export_events": True}}
        assert got["modbus"], who
    assert seen["user"]["reboot"][1]["reason"] == "rights" and seen["anonymous"]["reboot"][1]["reason"] == "auth"
    # the simulated board restarts its services in-process (a Pi's daemon exits for systemd to start it again)
    assert seen["admin"]["reboot"][1] == {"ok": True, "action": "services", "restarted": ["modbus"]}


def test_reset_of_one_device_zeroes_only_its_counters(tmp_path):
    async def body():
        async with demo_site(tmp_path) as (gw, base):
            admin = await call(web_login, base, "admin")
            chosen = sorted(d.address for d in demo_devices())[1]
            before = await many_requests(gw)
            status, answer = await call(admin.post, "/api/counters/reset", {"address": chosen})
            after = requests_by_address(gw)
            bad = await call(admin.post, "/api/counters/reset", {"address": "all"})
            return chosen, before, (status, answer), after, bad
    chosen, before, answer, after, bad = asyncio.run(body())
    assert answer == (200, {"ok": True})
    assert after[chosen] < before[chosen]
    assert all(after[a] >= before[a] for a in before if a != chosen), (before, after)
    assert bad[0] == 400


def test_syslog_export_is_rfc5424_one_line_per_event_as_get_events(tmp_path):
    async def body():
        async with demo_site(tmp_path) as (gw, base):
            admin = await call(web_login, base, "admin")
            # events of several kinds: logins, a failed one, a reboot; a name that is not ASCII for HOSTNAME
            assert (await call(WebClient(base).login, "cyber", "wrong-password"))[0] == 401
            assert (await call(admin.post, "/api/settings", {"gateway.name": "Passerelle été n°1"}))[0] == 200
            assert (await call(admin.post, "/api/reboot", {}))[0] == 202
            for _attempt in range(20):     # an event logged between the two reads: read again
                first = (await call(admin.get, "/api/events"))[1]["events"]
                status, data, headers = await call(admin.request, "GET", "/api/events/syslog")
                again = (await call(admin.get, "/api/events"))[1]["events"]
                if len(first) == len(again):
                    return first, status, data, headers, gw.clock.time()
            raise AssertionError("the event log never held still")
    events, status, data, headers, now = asyncio.run(body())
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert headers["Content-Disposition"] == 'attachment; filename="m70-events-%s.log"' % _utc_date(now)
    assert isinstance(data, bytes) and data.endswith(b"\n")
    lines = data.decode("ascii").split("\n")[:-1]
    assert len(lines) == len(events) >= 4
    assert {"login-failed", "reboot", "login"} <= set(e["event"] for e in events)
    for text, event in zip(lines, events):
        found = SYSLOG_LINE.fullmatch(text)
        assert found, text
        pri = int(found["pri"])
        assert pri <= 191 and found["version"] == "1" and found["sd"] == "-"
        assert pri % 8 == SEVERITY.get(event.get("criticality"), 5), (text, event)
        assert found["hostname"] == "Passerelle__t__n_1" and found["app"] == "openm70"
        assert found["msgid"] == event["event"]
        # the event's time, to the millisecond, in UTC
        assert found["offset"] == "Z" and found["date"] and found["frac"]
        stamp = calendar.timegm(tuple(map(int, found["date"].split("-") + found["time"].split(":"))) + (0, 0, 0))
        assert abs(stamp + float(found["frac"]) - event["ts"]) < 0.002, (text, event)
        fields = dict((k, v) for k, v in event.items() if k not in ("ts", "seq", "pending"))
        assert json.loads(found["msg"]) == fields, (text, event)
    reboot = [json.loads(SYSLOG_LINE.fullmatch(t)["msg"]) for t in lines if " reboot - " in t]
    assert len(reboot) == 1 and reboot[0]["by"].startswith("web/admin")


def test_reboot_on_the_pi_board_exits_for_systemd_and_the_event_log_says_who_asked(tmp_path):
    """``python -m daemon --board rpi`` with serial ports that do not exist (the buses report their error, the rest
    serves): the Admin's reboot stops the daemon cleanly with REBOOT_EXIT, what systemd (Restart=always) starts
    again; started again on the same state directory, the event log holds the request and who made it."""
    if os.path.exists("/dev/watchdog"):
        pytest.skip("this machine has a hardware watchdog: the Pi board would arm it")
    from daemon.api import REBOOT_EXIT
    args = ("--board", "rpi", "--port", "digiware=%s" % (tmp_path / "no-such-tty0"),
            "--port", "rs485=%s" % (tmp_path / "no-such-tty1"))
    proc = start_daemon(tmp_path / "state", *args)
    try:
        user = WebClient(proc.base)
        assert user.post("/api/reboot")[0] == 401 and proc.poll() is None
        admin = web_login(proc.base, "admin")
        assert admin.post("/api/reboot") == (202, {"ok": True, "action": "exit"})
        assert proc.wait(timeout=60) == REBOOT_EXIT
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    again = start_daemon(tmp_path / "state", *args)
    try:
        events = WebClient(again.base).get("/api/events")[1]["events"]
    finally:
        again.terminate()
        assert again.wait(timeout=60) == 0
        again.stdout.close()
        again.stderr.close()
    reboots = [e for e in events if e["event"] == "reboot"]
    assert len(reboots) == 1 and reboots[0]["by"].startswith("web/admin from 127.0.0.1"), reboots


def _utc_date(ts):
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


# ---------------------------------------------------------------- the page in a browser


# In the page: the devices' rows (address, status text, requests), which buttons show, every row's quality
# and age cells, the page's width against the viewport.
PAGE_PROBE = r"""() => {
  const shown = (id) => { const n = document.getElementById(id); return !!n && !n.hidden && n.offsetParent !== null; };
  const rows = Array.from(document.querySelectorAll("#devices tbody tr")).map((tr) => ({
    address: Number(tr.dataset.address), status: tr.dataset.status, text: tr.cells[2].textContent,
    requests: Number(tr.querySelector("td.requests").textContent), lost: tr.classList.contains("lost"),
    reset: !!tr.querySelector("button.reset-one")}));
  const valueRows = Array.from(document.querySelectorAll("#gateway tbody tr, #indicators tbody tr")).map(
    (tr) => Array.from(tr.cells).map((td) => td.textContent.trim()));
  const services = Array.from(document.querySelectorAll("#services tbody tr")).map(
    (tr) => [tr.cells[0].textContent, tr.dataset.state, tr.cells[1].textContent]);
  const doc = document.documentElement;
  return {rows, valueRows, services, resetAll: shown("reset-all"), reboot: shown("reboot"), export: shown("export"),
          text: document.body.innerText, lang: doc.lang, scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth,
          title: document.title};
}"""


async def _login_in_browser(context, base, profile):
    """Log the browser context in with the harness's strong password (the forced change done over HTTP first)."""
    await call(web_login, base, profile)                    # the default password changed once
    answer = await context.request.post(base + "/api/login", data=json.dumps(
        {"profile": profile, "password": STRONG_PASSWORDS[profile], "language": "en"}),
        headers={"Content-Type": "application/json"})
    assert answer.status == 200, await answer.text()


async def _open(context, base, path, width, height):
    page = await context.new_page()
    await page.set_viewport_size({"width": width, "height": height})
    await page.goto(base + path, wait_until="load")
    await page.wait_for_function("n => document.querySelectorAll('#devices tbody tr').length >= n",
                                 arg=len(demo_devices()), timeout=30000)
    return page


def test_page_shows_live_counters_and_offers_commands_by_profile_in_english_and_french(tmp_path):
    browser_ready()
    from playwright.async_api import async_playwright
    silent = next(d for d in demo_devices() if d.netid)

    async def body():
        # the lost device is retried every second (SETTINGS) and its timeouts count as requests: every row grows
        async with demo_site(tmp_path) as (gw, base):
            gw.board.configure_meter(int(silent.netid, 16), silent=True)     # a lost device to show
            await wait_for(lambda: gw.door(_user()).device_summary(silent.address).state == "comm_lost", guard=120)
            out = {}
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    # User (nobody logged in), English, desktop: two refreshes show the counters growing
                    context = await browser.new_context()
                    page = await _open(context, base, "/diagnosis?lang=en", 1920, 1080)
                    first = await page.evaluate(PAGE_PROBE)
                    await page.wait_for_function(
                        "before => Array.from(document.querySelectorAll('#devices tbody tr')).every((tr) => "
                        "Number(tr.querySelector('td.requests').textContent) > before[tr.dataset.address])",
                        arg=dict((str(r["address"]), r["requests"]) for r in first["rows"]), timeout=90000)
                    out["user"] = first, await page.evaluate(PAGE_PROBE)
                    await page.screenshot(path=shot("diagnosis-en-1920x1080.png"), full_page=True)
                    await page.set_viewport_size({"width": 768, "height": 1024})
                    out["user-768"] = await page.evaluate(PAGE_PROBE)
                    await page.screenshot(path=shot("diagnosis-en-768x1024.png"), full_page=True)
                    await context.close()
                    # French
                    context = await browser.new_context()
                    page = await _open(context, base, "/diagnosis?lang=fr", 1920, 1080)
                    await page.wait_for_function("() => document.documentElement.lang === 'fr'")
                    out["fr"] = await page.evaluate(PAGE_PROBE)
                    await page.screenshot(path=shot("diagnosis-fr-1920x1080.png"), full_page=True)
                    await page.set_viewport_size({"width": 768, "height": 1024})
                    await page.screenshot(path=shot("diagnosis-fr-768x1024.png"), full_page=True)
                    await context.close()
                    # Advanced: the Reset buttons; one device's reset through the page
                    context = await browser.new_context()
                    await _login_in_browser(context, base, "advanced")
                    page = await _open(context, base, "/diagnosis", 1920, 1080)
                    await page.wait_for_selector("#reset-all:not([hidden])")
                    out["advanced"] = await page.evaluate(PAGE_PROBE)
                    chosen = next(r["address"] for r in out["advanced"]["rows"] if r["address"] != silent.address)
                    before = await many_requests(gw)
                    await page.click("#devices tr[data-address='%d'] button.reset-one" % chosen)
                    await page.wait_for_function(
                        "() => /reset/.test(document.getElementById('action-result').textContent)")
                    after = requests_by_address(gw)
                    out["reset"] = chosen, before, after, await page.text_content("#action-result")
                    await context.close()
                    # Admin: Reboot behind a confirmation dialog; the event log says who asked
                    context = await browser.new_context()
                    await _login_in_browser(context, base, "admin")
                    page = await _open(context, base, "/diagnosis", 1920, 1080)
                    await page.wait_for_selector("#reboot:not([hidden])")
                    await page.click("#reboot")
                    await page.wait_for_selector("#reboot-dialog[open]")
                    await page.screenshot(path=shot("diagnosis-en-reboot-dialog.png"))
                    await page.click("#reboot-cancel")
                    cancelled = len(reboot_events(gw))
                    await page.click("#reboot")
                    await page.click("#reboot-yes")
                    await page.wait_for_function(
                        "() => /restarting/.test(document.getElementById('action-result').textContent)")
                    out["reboot"] = cancelled, reboot_events(gw)
                    await context.close()
                finally:
                    await browser.close()
            return out

    out = asyncio.run(body())
    addresses = sorted(d.address for d in demo_devices())
    first, second = out["user"]
    assert sorted(r["address"] for r in first["rows"]) == addresses
    assert all(r["requests"] > 0 for r in first["rows"]), first["rows"]
    assert [r["address"] for r in second["rows"]] == addresses
    assert all(b["requests"] > a["requests"] for a, b in zip(first["rows"], second["rows"])), (first, second)
    # a User sees no command but the export; the lost device is marked in words, not by colour only
    assert (first["resetAll"], first["reboot"], first["export"]) == (False, False, True)
    assert not any(r["reset"] for r in first["rows"])
    lost = next(r for r in second["rows"] if r["address"] == silent.address)
    assert lost["status"] == "comm_lost" and lost["lost"] and "Lost" in lost["text"], lost
    # every gateway value and indicator with its quality and age
    assert len(second["valueRows"]) >= 12
    for cells in second["valueRows"]:
        assert len(cells) == 4 and cells[2] in ("good", "not updated", "unavailable"), cells
        assert re.fullmatch(r"\d+(\.\d)? (s|min|h|d) ago", cells[3]), cells
    assert [s[1] for s in second["services"] if s[0] in ("Web server", "Modbus TCP")] == ["running", "running"]
    assert all(s[1] in ("running", "stopped", "error") for s in second["services"])
    for name in ("user", "user-768"):
        probe = out[name] if name != "user" else second
        assert probe["scrollWidth"] <= probe["innerWidth"], (name, "the page scrolls sideways")
    # French
    fr = out["fr"]
    assert fr["lang"] == "fr" and fr["title"] == "Diagnostic"
    for words in ("État de la passerelle", "Numéro de série", "Requêtes", "Délais dépassés", "Dernier succès",
                  "Exporter le journal des événements (syslog)", "Perdu", "Processeur"):
        assert words in fr["text"], words
    for english in ("Gateway status", "Serial number", "Requests", "Timeouts", "Last success", "Lost"):
        assert english not in fr["text"], english
    # Advanced: Reset (all and per device), no Reboot; the page's reset zeroes that device's counters only
    advanced = out["advanced"]
    assert (advanced["resetAll"], advanced["reboot"]) == (True, False)
    assert all(r["reset"] for r in advanced["rows"])
    chosen, before, after, message = out["reset"]
    assert after[chosen] < before[chosen] and message == "Communication counters reset."
    assert all(after[a] >= before[a] for a in before if a != chosen)
    cancelled, reboots = out["reboot"]
    assert cancelled == 0 and len(reboots) == 1 and reboots[0]["by"].startswith("web/admin")
