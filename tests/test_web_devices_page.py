"""The Devices pages (/devices/sources, /circuits, /usages) in a real headless Chromium, driven by Playwright.

As tests/test_web_settings_page.py: Debian's Chromium, the gateway on a
loopback port with the simulated demo site, sessions made through the real
login routes (conftest's web_login: the forced change of the default
password) and handed to the browser as its cookie. A meter is added by hand
from the Sources page and then communicates (the simulator has it); a FULL
detection is started and its progress bar watched to 100 % and its result;
a circuit is renamed and several edited at once; a custom usage is added and
cannot be deleted while a circuit has it. What the page did is read back
through the API. axe-core runs on each page; screenshots in English and French at
1920x1080 and 768 px go to tests/results/ (git-ignored).
"""

import asyncio
import contextlib

from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, axe, browser_ready, shot
from conftest import demo_devices, demo_topology, running_gateway, web_login, web_server

LAST_ADDRESS = 16                # the detection scans 1..16 on each bus: seconds, not the 247 addresses
SETTINGS = {"alarms.check_s": 3600, "poll.backoff_max_s": 1, "discovery.last_address": LAST_ADDRESS}
HAND_ADDED = 14                  # the demo's I-35 with 2 loads: out of the preset topology, added from the page
ROWS_READY = "() => document.querySelectorAll('#rows tr').length > 1"
# every text the progress line shows, in order, recorded in the page as it changes
WATCH_PROGRESS = r"""() => {
  window.progressSeen = [];
  const bar = document.getElementById("detect-progress");
  new MutationObserver(() => window.progressSeen.push(bar.value)).observe(bar, {attributes: true});
  new MutationObserver(() => window.progressSeen.push(bar.value))
    .observe(document.getElementById("detect-percent"), {childList: true, characterData: true, subtree: true});
}"""


@contextlib.asynccontextmanager
async def browser_site(tmp_path):
    from playwright.async_api import async_playwright
    web = web_server()
    async with running_gateway(tmp_path / "state", demo_topology(), SETTINGS, services=[web]) as gw:
        await gw.topology.replace([d for d in demo_devices() if d.address != HAND_ADDED])
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield gw, "http://127.0.0.1:%d" % web.server.port, browser
            finally:
                await browser.close()


async def page_as(browser, base, profile, language="en", width=1920, height=1080):
    client = await asyncio.to_thread(web_login, base, profile, language)
    context = await browser.new_context(viewport={"width": width, "height": height})
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    return await context.new_page(), client


async def open_view(page, base, view):
    await page.goto(base + "/devices/" + view, wait_until="load")
    await page.wait_for_function("() => document.getElementById('view-title').textContent !== ''")
    await page.wait_for_function("() => document.getElementById('message').textContent === ''")


async def row_text(page, row_id):
    return await page.text_content('#rows tr[data-id="%s"]' % row_id)


async def status_device(client, address):
    status, answer = await asyncio.to_thread(client.get, "/api/status")
    assert status == 200
    return [d for d in answer["devices"] if d["address"] == address]


def test_sources_add_by_hand_and_a_full_detection_with_its_progress_bar(tmp_path):
    browser_ready(AXE)

    async def scenario():
        async with browser_site(tmp_path) as (gw, base, browser):
            page, admin = await page_as(browser, base, "admin")
            seen = {}
            await open_view(page, base, "sources")
            await page.wait_for_function(ROWS_READY)
            seen["first_row"] = await page.get_attribute("#rows tr:first-child", "data-id")
            seen["gateway_checkbox"] = await page.query_selector('#rows tr[data-id="gateway"] input')
            seen["axe"] = await axe(page)
            seen["probe"] = await page.evaluate(PAGE_PROBE)
            await page.screenshot(path=shot("devices-sources-en-1920x1080.png"), full_page=True)
            # a refused form: the address of the I-35 at 4 is taken; the field says so, nothing is added
            await page.click("#add")
            await page.select_option("#f-reference", "I-35")
            await page.fill("#f-address", "4")
            await page.click("#form-save")
            await page.wait_for_function("() => document.getElementById('error-address').textContent !== ''")
            seen["refused"] = (await page.text_content("#error-address"),
                               await page.get_attribute("#f-address", "aria-invalid"),
                               await page.evaluate("() => document.activeElement.id"))
            seen["dialog_probe"] = await page.evaluate(PAGE_PROBE)
            await page.screenshot(path=shot("devices-sources-add-refused-en-1920x1080.png"))
            seen["count_after_refusal"] = len(gw.topology.devices)
            # corrected: added, and the simulator's I-35 at that address then communicates
            await page.fill("#f-address", str(HAND_ADDED))
            await page.fill("#f-name", "Kitchen feeder")
            await page.fill("#f-area", "Building B")
            await page.click("#form-save")
            await page.wait_for_selector("#message.ok")
            seen["added_message"] = await page.text_content("#message")
            await page.wait_for_function(
                "() => { const r = document.querySelector('#rows tr[data-id=\"%d\"]');"
                " return r && r.textContent.includes('Communicating'); }" % HAND_ADDED, timeout=60000)
            seen["added_row"] = await row_text(page, HAND_ADDED)
            seen["added_status"] = await status_device(admin, HAND_ADDED)
            # FULL detection: the bar moves and reaches 100 %, then the result
            await page.evaluate(WATCH_PROGRESS)
            await page.select_option("#detect-mode", "full")
            await page.click("#detect-start")
            await page.wait_for_selector("#detect-text.ok", timeout=120000)
            seen["progress"] = await page.evaluate("() => window.progressSeen")
            seen["bar"] = await page.get_attribute("#detect-progress", "value")
            seen["percent"] = await page.text_content("#detect-percent")
            seen["result"] = await page.text_content("#detect-text")
            seen["discovery"] = gw.discovery.status()
            seen["after_detection"] = await status_device(admin, HAND_ADDED)
            await page.screenshot(path=shot("devices-sources-detected-en-1920x1080.png"), full_page=True)
            # refresh one row: the page says what answered
            await page.click('#rows tr[data-id="%d"] button:has-text("Refresh")' % HAND_ADDED)
            await page.wait_for_function("() => document.getElementById('message').textContent.includes('answered')")
            seen["refreshed"] = await page.text_content("#message")
            # delete it again: select its row, confirm
            await page.check('#rows tr[data-id="%d"] input[type=checkbox]' % HAND_ADDED)
            await page.click("#delete")
            seen["confirm"] = await page.text_content("#confirm-text")
            await page.click("#confirm-yes")
            await page.wait_for_function("() => document.getElementById('message').textContent.includes('deleted')")
            seen["deleted"] = (await page.text_content("#message"), await status_device(admin, HAND_ADDED),
                               await page.query_selector('#rows tr[data-id="%d"]' % HAND_ADDED))
            # at 768 px: cards, no sideways scrolling
            await page.set_viewport_size({"width": 768, "height": 1024})
            seen["narrow"] = await page.evaluate(PAGE_PROBE)
            await page.screenshot(path=shot("devices-sources-en-768.png"), full_page=True)
            return seen

    seen = asyncio.run(scenario())
    assert seen["first_row"] == "gateway" and seen["gateway_checkbox"] is None
    assert seen["axe"] == [], seen["axe"]
    assert seen["probe"]["unlabelled"] == [] and seen["dialog_probe"]["unlabelled"] == []
    assert seen["refused"][0].startswith("address 4 is already used") and seen["refused"][1] == "true"
    assert seen["refused"][2] == "f-address" and seen["count_after_refusal"] == len(demo_devices()) - 1
    assert seen["added_message"] == "Kitchen feeder added."
    assert "Kitchen feeder" in seen["added_row"] and "Building B" in seen["added_row"]
    assert seen["added_status"][0]["status"] == "ok" and seen["added_status"][0]["name"] == "Kitchen feeder"
    progress = [int(v) for v in seen["progress"] if v is not None]
    assert progress == sorted(progress) and len(set(progress)) >= 3 and progress[-1] == 100, progress
    assert seen["bar"] == "100" and seen["percent"] == "100 %"
    in_range = [m for bus in demo_topology()["buses"].values() for m in bus["meters"] if m["address"] <= LAST_ADDRESS]
    assert seen["discovery"]["state"] == "done" and seen["discovery"]["found"] == len(in_range)
    assert seen["result"].startswith("Detection finished: %d device(s) found, 0 added" % len(in_range)), seen["result"]
    kept = seen["after_detection"][0]               # the detection found it there: the same device, named as it was
    assert (kept["name"], kept["area"], kept["netid"] != "") == ("Kitchen feeder", "Building B", True)
    assert seen["refreshed"] == "Kitchen feeder: answered, identification read again"
    assert seen["confirm"] == "Delete 1 device(s): Kitchen feeder? Their circuits go with them."
    assert seen["deleted"] == ("1 device(s) deleted.", [], None)
    assert seen["narrow"]["scrollWidth"] <= seen["narrow"]["innerWidth"], seen["narrow"]


def test_circuits_rename_one_and_edit_several_at_once(tmp_path):
    browser_ready(AXE)

    async def scenario():
        async with browser_site(tmp_path) as (gw, base, browser):
            page, admin = await page_as(browser, base, "admin")
            seen = {}
            await open_view(page, base, "circuits")
            await page.wait_for_function(ROWS_READY)
            seen["axe"] = await axe(page)
            # one circuit: name, fluid, usage
            await page.click('#rows tr[data-id="4:1"] button')
            await page.fill("#f-name", "Oven line")
            await page.select_option("#f-usage", "Process")
            await page.click("#form-save")
            await page.wait_for_selector("#message.ok")
            seen["one_message"] = await page.text_content("#message")
            seen["one_row"] = await row_text(page, "4:1")
            # several: the loads of the I-35 at 5 get one usage and names from a pattern
            for load in (1, 2, 3):
                await page.check('#rows tr[data-id="5:%d"] input[type=checkbox]' % load)
            seen["selected"] = await page.text_content("#selected-count")
            await page.click("#edit-selected")
            seen["dialog_axe"] = await axe(page)
            await page.fill("#f-name_pattern", "Floor {n}")
            await page.select_option("#f-usage", "Heating")
            await page.screenshot(path=shot("devices-circuits-edit-several-en-1920x1080.png"))
            await page.click("#form-save")
            # the first save's "ok" message is still shown: wait for this save's own answer
            await page.wait_for_function("(before) => document.getElementById('message').textContent !== before",
                                         arg=seen["one_message"])
            await page.wait_for_selector("#message.ok")
            seen["many_message"] = await page.text_content("#message")
            seen["status4"] = (await status_device(admin, 4))[0]["loads"]
            seen["status5"] = (await status_device(admin, 5))[0]["loads"]
            await page.screenshot(path=shot("devices-circuits-en-1920x1080.png"), full_page=True)
            await page.set_viewport_size({"width": 768, "height": 1024})
            seen["narrow"] = await page.evaluate(PAGE_PROBE)
            await page.screenshot(path=shot("devices-circuits-en-768.png"), full_page=True)
            return seen

    seen = asyncio.run(scenario())
    assert seen["axe"] == [] and seen["dialog_axe"] == [], (seen["axe"], seen["dialog_axe"])
    assert seen["one_message"] == "1 circuit(s) saved." and "Oven line" in seen["one_row"]
    load1 = [x for x in seen["status4"] if x["load"] == 1][0]
    assert (load1["name"], load1["usage"]) == ("Oven line", "Process") and "fluid" not in load1     # unchanged: not sent
    assert seen["selected"] == "3 selected" and seen["many_message"] == "3 circuit(s) saved."
    assert [(x["name"], x["usage"]) for x in seen["status5"]] == [("Floor %d" % n, "Heating") for n in (1, 2, 3)]
    assert seen["narrow"]["scrollWidth"] <= seen["narrow"]["innerWidth"] and seen["narrow"]["unlabelled"] == []


def test_usages_and_every_page_in_french(tmp_path):
    browser_ready(AXE)

    async def scenario():
        async with browser_site(tmp_path) as (gw, base, browser):
            page, cyber = await page_as(browser, base, "cyber", "fr")
            seen = {}
            await open_view(page, base, "usages")
            await page.wait_for_function(ROWS_READY)
            await page.fill("#usage-new", "Chambres froides")
            await page.click("#usage-add-button")
            await page.wait_for_selector("#message.ok")
            seen["added"] = await page.text_content("#message")
            key = [u["key"] for u in (await asyncio.to_thread(cyber.get, "/api/devices/usages"))[1]["usages"]
                   if u["custom"]][0]
            await asyncio.to_thread(cyber.post, "/api/devices/circuits",
                                    {"loads": [{"address": 4, "load": 2}], "usage": key})
            await open_view(page, base, "usages")
            await page.click('#rows tr[data-id="%s"] button.danger' % key)
            await page.click("#confirm-yes")
            await page.wait_for_selector("#message.bad")
            seen["in_use"] = await page.text_content("#message")
            seen["still_there"] = await page.query_selector('#rows tr[data-id="%s"]' % key) is not None
            for view in ("sources", "circuits", "usages"):
                for width, height in ((1920, 1080), (768, 1024)):
                    await page.set_viewport_size({"width": width, "height": height})
                    await open_view(page, base, view)
                    await page.wait_for_function(ROWS_READY)
                    probe = await page.evaluate(PAGE_PROBE)
                    await page.screenshot(path=shot("devices-%s-fr-%s.png" % (view, width if width == 768
                                                                                   else "1920x1080")),
                                          full_page=True)
                    seen[(view, width)] = (probe, await axe(page))
            english, _admin = await page_as(browser, base, "admin", "en", 1920, 1080)
            await open_view(english, base, "usages")
            await english.wait_for_function(ROWS_READY)
            seen["en_usages_axe"] = await axe(english)
            seen["en_usages_probe"] = await english.evaluate(PAGE_PROBE)
            await english.screenshot(path=shot("devices-usages-en-1920x1080.png"), full_page=True)
            await english.set_viewport_size({"width": 768, "height": 1024})
            await english.screenshot(path=shot("devices-usages-en-768.png"), full_page=True)
            return seen

    seen = asyncio.run(scenario())
    assert seen["added"] == "Usage Chambres froides ajouté."
    assert "attribué à 1 circuit(s)" in seen["in_use"] and seen["still_there"]
    for view in ("sources", "circuits", "usages"):
        for width in (1920, 768):
            probe, violations = seen[(view, width)]
            assert violations == [], (view, width, violations)
            assert probe["lang"] == "fr" and probe["unlabelled"] == [], (view, width, probe["unlabelled"])
            assert probe["scrollWidth"] <= probe["innerWidth"], (view, width)
            assert "Équipements" in probe["text"] and "Rechercher" in probe["text"], (view, width)
            for english in ("Search", "Rows per page", "Devices menu", "Logged in"):
                assert english not in probe["text"], (view, width, english)
    assert "Détection" in seen[("sources", 1920)][0]["text"] and "Chauffage" in seen[("usages", 1920)][0]["text"]
    assert seen["en_usages_axe"] == [] and "Heating" in seen["en_usages_probe"]["text"]
