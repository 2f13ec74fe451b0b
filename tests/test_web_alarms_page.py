"""The Alarms and events page (/alarms, issue 17) in a real headless Chromium, driven by Playwright.

One gateway on the demo site (accounts commissioned: no default-password alarm) and one browser for the whole
scenario. The faults come from the simulated board, the independent source: the I-35 at 5 is silenced (system
alarm 3 for digiware:5), the U-30 at 11 logs a 60 ms voltage dip (an EN 50160 event) and a phase-rotation
device alarm. The filtered table shows those rows and only them; User's Acknowledge is refused with the
catalogue's message (in French), Advanced's moves the alarm to acknowledged; the export ZIP (downloaded through
the page, and read through the route) holds exactly the filtered rows; the meter answering again finishes the
alarm in the open page without a reload, the selection kept. axe-core on the page; screenshots EN/FR.
"""

import asyncio
import contextlib
import csv
import io
import zipfile

from browser_support import AXE, AXE_RUN, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, browser_ready, shot
from conftest import commission_accounts, demo_devices, demo_topology, running_gateway, wait_for, web_login, \
    web_server

from daemon import i18n
from daemon.state import alarmlog

I35_AT_5, U30_AT_11 = 0xDC85EA, 0xD5038A
SILENT_SOURCE = "digiware:5"
SETTINGS = {"alarms.check_s": 1, "poll.backoff_max_s": 1}
READY = "() => document.documentElement.dataset.ready === '1'"
ROWS = "() => [...document.querySelectorAll('#rows tr')].map((tr) => [tr.dataset.id, tr.textContent])"


@contextlib.asynccontextmanager
async def site(tmp_path):
    from playwright.async_api import async_playwright
    web = web_server()
    commission_accounts(str(tmp_path / "state"))
    async with running_gateway(tmp_path / "state", demo_topology(), SETTINGS, services=[web]) as gw:
        await gw.topology.replace(demo_devices())
        await wait_for(lambda: all(p.cycles >= 2 for p in gw.pollers.values()), guard=30)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield gw, "http://127.0.0.1:%d" % web.server.port, browser
            finally:
                await browser.close()


async def open_page(browser, base, profile, language="en", width=1920, height=1080):
    client = await asyncio.to_thread(web_login, base, profile, language)
    context = await browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    page = await context.new_page()
    await page.goto(base + "/alarms", wait_until="load")
    await page.wait_for_function(READY)
    return page, client


async def apply(page, **filters):
    """Set the filters (the others back to All), Validate, wait for the table's answer."""
    before = await page.text_content("#updated")
    for name in ("source", "type", "status", "category", "criticality"):
        await page.select_option("#f-" + name, filters.get(name, ""))
    await page.click("#validate")
    await page.wait_for_function("(before) => document.getElementById('updated').textContent !== before", arg=before)
    return await page.evaluate(ROWS)


def zip_rows(data):
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert sorted(archive.namelist()) == ["alarms.csv", "events.csv"]
        return dict((name, list(csv.DictReader(io.StringIO(archive.read(name).decode("utf-8")))))
                    for name in archive.namelist())


def test_alarms_page_filters_acknowledges_exports_and_follows_live(tmp_path):
    browser_ready(AXE)

    async def scenario():
        async with site(tmp_path) as (gw, base, browser):
            seen = {}
            # the faults, from the simulated board
            gw.board.configure_meter(I35_AT_5, silent=True)
            gw.board.inject_event(U30_AT_11, kind="power_quality", index=1, key="v1", value=180.5, duration_ms=60)
            gw.board.inject_event(U30_AT_11, kind="device", index=1, start=True, criticality="critical")
            await wait_for(lambda: (3, SILENT_SOURCE) in gw.alarms.active, guard=60)
            await wait_for(lambda: len([r for r in gw.alarms.events() if r.get("event") == "device-alarm"]) == 3,
                           guard=30)

            page, admin = await open_page(browser, base, "admin")
            status, answer = await asyncio.to_thread(
                admin.get, "/api/alarms/log?type=system&status=active&source=" + SILENT_SOURCE)
            assert status == 200 and len(answer["rows"]) == 1, answer
            alarm_id = answer["rows"][0]["id"]
            seen["all"] = await page.evaluate(ROWS)
            seen["en50160"] = await apply(page, type="en50160")
            seen["device"] = await apply(page, type="device")
            seen["active"] = await apply(page, status="active")
            seen["system"] = await apply(page, type="system", source=SILENT_SOURCE, status="active")
            seen["critical_device"] = await apply(page, type="device", criticality="critical")
            # the export of what is filtered, downloaded through the page
            seen["export_table"] = await apply(page, status="active", source=SILENT_SOURCE)
            async with page.expect_download() as info:
                await page.click("#export")
            download = await info.value
            seen["download_name"] = download.suggested_filename
            with open(await download.path(), "rb") as handle:
                seen["download"] = zip_rows(handle.read())
            status, data, headers = await asyncio.to_thread(admin.request, "GET", "/api/alarms/export?type=en50160")
            seen["route_export"] = (status, headers.get("Content-Type"))
            seen["route_rows"] = zip_rows(data if isinstance(data, bytes) else b"")
            status, data, headers = await asyncio.to_thread(admin.request, "GET", "/api/alarms/export?type=device")
            seen["device_rows"] = zip_rows(data)
            seen["bad"] = await asyncio.to_thread(admin.get, "/api/alarms/log?size=1000")
            seen["bad_type"] = await asyncio.to_thread(admin.get, "/api/alarms/log?type=nonsense")
            seen["paged"] = await asyncio.to_thread(admin.get, "/api/alarms/log?size=1&page=1")
            # the details pane of the system alarm
            await apply(page)
            alarm_row = '#rows tr[data-id="%s"]' % alarm_id
            await page.click(alarm_row + " button.link")
            seen["details"] = await page.text_content("#details")
            seen["axe"] = await page.add_script_tag(path=AXE) and await page.evaluate(AXE_RUN)
            seen["probe"] = await page.evaluate(PAGE_PROBE)
            await page.screenshot(path=shot("alarms-en-1920x1080.png"), full_page=True)

            # User (in French) is refused with the catalogue's message; nothing is acknowledged
            user_page, _user = await open_page(browser, base, "user", "fr")
            await user_page.click(alarm_row + " button.link")
            seen["user_note"] = await user_page.text_content("#ack-note")
            await user_page.click("#ack")
            await user_page.wait_for_selector("#ack-message.bad")
            seen["user_refused"] = await user_page.text_content("#ack-message")
            seen["after_user"] = gw.alarms.active[(3, SILENT_SOURCE)].get("acknowledged")
            seen["axe_fr"] = await user_page.add_script_tag(path=AXE) and await user_page.evaluate(AXE_RUN)
            await user_page.screenshot(path=shot("alarms-fr-1920x1080.png"), full_page=True)
            await user_page.set_viewport_size({"width": 768, "height": 1024})
            seen["probe_768"] = await user_page.evaluate(PAGE_PROBE)
            await user_page.screenshot(path=shot("alarms-fr-768x1024.png"), full_page=True)

            # Advanced acknowledges: the row says so, the gateway has it, the filter finds it
            advanced_page, _advanced = await open_page(browser, base, "advanced")
            await advanced_page.click(alarm_row + " button.link")
            await advanced_page.click("#ack")
            await advanced_page.wait_for_selector("#ack-message.ok")
            seen["acked_message"] = await advanced_page.text_content("#ack-message")
            await advanced_page.wait_for_function(
                "(sel) => document.querySelector(sel).textContent.includes('Acknowledged')", arg=alarm_row)
            seen["acked_state"] = gw.alarms.active[(3, SILENT_SOURCE)].get("acknowledged")
            seen["acknowledged_filter"] = await apply(advanced_page, status="acknowledged")
            seen["not_acknowledged_filter"] = await apply(advanced_page, status="not_acknowledged")

            # live: the meter answers again; the open page (no reload) shows the alarm finished, still selected
            await page.click(alarm_row + " button.link")
            gw.board.configure_meter(I35_AT_5, silent=False)
            await wait_for(lambda: (3, SILENT_SOURCE) not in gw.alarms.active, guard=60)
            await page.wait_for_function("(sel) => document.querySelector(sel).classList.contains('st-finished')",
                                         arg=alarm_row, timeout=20000)
            seen["live_selected"] = await page.get_attribute(alarm_row, "aria-selected")
            seen["live_details"] = await page.text_content("#details")
            await page.screenshot(path=shot("alarms-finished-en-1920x1080.png"), full_page=True)
            seen["alarm_id"] = alarm_id
            return seen

    seen = asyncio.run(scenario())
    # The demo site under a loaded machine may time a meter out now and then (more alarm 3 rows): the
    # assertions look at what the test caused, each through a filter that isolates it.
    alarm_id = seen["alarm_id"]
    assert alarm_id in [i for i, _t in seen["all"]], seen["all"]
    assert len(seen["en50160"]) == 1, seen["en50160"]
    assert "Voltage dip" in seen["en50160"][0][1] and "Finished" in seen["en50160"][0][1]
    assert len(seen["device"]) == 1 and "Phase rotation" in seen["device"][0][1], seen["device"]
    active_ids = [i for i, _t in seen["active"]]
    assert alarm_id in active_ids and seen["device"][0][0] in active_ids
    assert all("Active" in text for _i, text in seen["active"]) and not any("Finished" in t for _i, t in seen["active"])
    assert [i for i, _t in seen["system"]] == [alarm_id] and "Modbus slave timeout" in seen["system"][0][1]
    assert [i for i, _t in seen["critical_device"]] == [seen["device"][0][0]]
    # the exports: exactly the filtered rows
    name = seen["download_name"]
    assert name.endswith(".zip") and "_alarms_" in name, name
    assert [i for i, _t in seen["export_table"]] == [alarm_id]
    alarms = seen["download"]["alarms.csv"]
    assert [(r["name"], r["source"], r["status"], r["type"]) for r in alarms] == \
        [("Modbus slave timeout", SILENT_SOURCE, "active", "system")], alarms
    assert seen["download"]["events.csv"] == []
    assert seen["route_export"] == (200, "application/zip")
    events = seen["route_rows"]["events.csv"]
    assert len(events) == 1 and events[0]["duration_ms"] == "60" and events[0]["type"] == "en50160", events
    assert events[0]["source"] == "digiware:11:0" and events[0]["value"] == "180.5", events
    assert seen["route_rows"]["alarms.csv"] == []
    device = seen["device_rows"]["alarms.csv"]
    assert [(r["name"], r["criticality"], r["status"]) for r in device] == [("phase rotation", "critical", "active")]
    assert seen["bad"][0] == 400 and seen["bad_type"][0] == 400
    assert seen["paged"][0] == 200 and seen["paged"][1]["total"] >= 3 and len(seen["paged"][1]["rows"]) == 1
    assert "Modbus slave timeout" in seen["details"] and SILENT_SOURCE in seen["details"]
    assert seen["axe"] == [] and seen["axe_fr"] == [], (seen["axe"], seen["axe_fr"])
    for probe in (seen["probe"], seen["probe_768"]):
        assert probe["scrollWidth"] <= probe["innerWidth"] and not probe["unlabelled"], probe
    # User: told before, refused after, in French; nothing changed
    assert i18n.text("web.profile.user", "fr") in seen["user_note"]
    assert seen["user_refused"] == i18n.text("web.refused.rights", "fr")
    assert seen["after_user"] is None
    # Advanced: acknowledged
    assert seen["acked_message"] == "Alarm acknowledged."
    assert seen["acked_state"] and "advanced" in seen["acked_state"]["by"]
    assert [i for i, _t in seen["acknowledged_filter"]] == [alarm_id]
    assert alarm_id not in [i for i, _t in seen["not_acknowledged_filter"]]
    # live
    assert seen["live_selected"] == "true" and "Finished" in seen["live_details"]


def test_occurrences_pair_the_log_records():
    """A "still_active" whose "raised" was overwritten opens its row; an "end" without its "start" gives a
    finished row; a cleared alarm is finished; the live set has the last word."""
    records = [
        {"ts": 10.0, "event": "still_active", "since": 5.0, "alarm": 3, "source": "digiware:4", "category": "system",
         "name": "Modbus slave timeout", "criticality": "critical", "detail": ""},
        {"ts": 20.0, "event": "raised", "alarm": 6, "source": "push:delivery", "category": "system"},
        {"ts": 25.0, "event": "acknowledged", "alarm": 6, "source": "push:delivery", "category": "system",
         "by": "web:admin"},
        {"ts": 30.0, "event": "cleared", "alarm": 6, "source": "push:delivery", "category": "system"},
        {"ts": 40.0, "event": "device-alarm", "state": "end", "since": 39.9, "alarm": 401, "kind": "power_quality",
         "netid": "D5038A", "load": 0, "source": "digiware:11:0", "name": "voltage dip", "duration_ms": 80,
         "criticality": "information"},
    ]
    rows = alarmlog.occurrences(records, {(3, "digiware:4"): {"since": 5.0, "detail": ""}}, {},
                                {"digiware:11": "U-30 west"}, 50.0)
    by_alarm = dict((r["alarm"], r) for r in rows)
    assert by_alarm[3]["start"] == 5.0 and by_alarm[3]["status"] == "active" and by_alarm[3]["ackable"]
    assert by_alarm[6]["status"] == "finished" and by_alarm[6]["acknowledged"]["by"] == "web:admin"
    assert not by_alarm[6]["ackable"]
    dip = by_alarm[401]
    assert (dip["type"], dip["start"], dip["end"], dip["duration_ms"], dip["source_name"]) == \
        ("en50160", 39.9, 40.0, 80, "U-30 west")
    query = alarmlog.parse_query({"from": "35", "type": "", "page": "", "size": ""})
    assert [r["alarm"] for r in alarmlog.select(rows, query, 50.0)] == [401, 3]     # newest first, overlap
