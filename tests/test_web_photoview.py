"""The Photoview (/photoview, /photoview/edit, issue 17) in a real headless Chromium on the demo site.

One gateway (the demo topology, a ManualClock so the simulated meters hold still) and one Debian Chromium serve
the module: ``seen`` walks the scenario once and records what the pages showed. Admin makes two pages through
the API (a PNG background uploaded as the body; one past 1920x1080 refused), puts a measurement table of load 1
of the I-35 at address 4, a text, a device icon and a link on the first; User's viewer shows the table's values,
compared with the simulated meter (``board.find_meter(...).values(load)``, an independent source) within the
register's resolution, each with its quality; a click on the table opens that load's Monitor page, the link the
other page. User is refused the editor (a 403 page, the API 403). In the editor Admin adds a text by pressing its
tool and places it by its x / y fields, drops a measurement table by drag and drop, moves a widget with the
mouse, saves (the stored page follows); the 22nd page is refused with the catalogue's message in French.
axe-core on each page; screenshots EN/FR at 1920 px (and the viewer at 768 px) in tests/results/.
"""

import asyncio
import struct
import zlib

import pytest
from board.base import ManualClock
from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, axe, browser_ready, shot
from daemon.state.photoviews import MAX_WIDGETS, MIN_AREA
from conftest import (commission_accounts, demo_devices, demo_topology, resolution, running_gateway, wait_for,
                      web_login, web_server)

T0 = 1_790_000_000.0
READY = "() => document.documentElement.dataset.ready === '1'"
SETTINGS = {"alarms.check_s": 3600, "poll.backoff_max_s": 1}
METER, LOAD, KEYS = 4, 1, ["v1", "i1", "p"]
AREAS = {4: "Switchboard A", 5: "Switchboard A", 14: "Switchboard A", 20: "Plant room", 21: "Plant room"}
CELLS = r"""() => Object.fromEntries(Array.from(document.querySelectorAll('tr[data-key]')).map((r) =>
  [r.dataset.key, [r.querySelector('td.val').dataset.value, r.querySelector('td.val').textContent, r.className,
                   r.querySelector('td.q').textContent]]))"""
LIVE = ("() => document.querySelectorAll('tr[data-key]').length > 0 && Array.from(document.querySelectorAll("
        "'tr[data-key]')).every((r) => r.className === 'good')")


def png(width, height):
    """A small valid PNG (grey, 8-bit greyscale) of ``width`` x ``height``."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes([200 + (y // 40) % 2 * 20]) * width for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


async def _session_page(browser, base, profile, language="en", width=1920, height=1080):
    client = await asyncio.to_thread(web_login, base, profile, language)
    context = await browser.new_context(viewport={"width": width, "height": height})
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.errors = errors
    return page, client


async def _call(client, method, path, body=None, raw=None, headers=None):
    status, answer, _ = await asyncio.to_thread(client.request, method, path, body, headers, raw)
    return status, answer


async def _viewer(seen, browser, base, board):
    page, user = await _session_page(browser, base, "user")
    await page.goto(base + "/photoview")
    await page.wait_for_function(READY, timeout=30000)
    await page.wait_for_function(LIVE, timeout=60000)
    seen["cells"], seen["meter"] = await page.evaluate(CELLS), board.find_meter(address=METER).values(LOAD)
    seen["tabs"] = await page.eval_on_selector_all("#pages a", "(a) => a.map((x) => [x.textContent, "
                                                  "x.getAttribute('aria-current')])")
    seen["text"] = await page.text_content(".pv-text")
    seen["background"] = await page.eval_on_selector(".pv-background", "(i) => [i.naturalWidth, i.alt]")
    seen["edit_link_hidden"] = await page.eval_on_selector("#edit-link", "(a) => a.hidden")
    seen["axe_viewer"] = await axe(page)
    await page.screenshot(path=shot("photoview-en-1920.png"))
    await page.click(".pv-measure")
    await page.wait_for_function(READY, timeout=30000)
    seen["clicked"] = page.url
    await page.goto(base + "/photoview")
    await page.wait_for_function(READY, timeout=30000)
    await page.click(".pv-link")
    await page.wait_for_function(READY, timeout=30000)
    seen["linked"] = page.url
    seen["linked_title"] = await page.text_content("#page-title")
    seen["viewer_errors"] = list(page.errors)          # before the editor's 403, which the console reports
    response = await page.goto(base + "/photoview/edit")
    seen["user_editor"] = (response.status, await page.text_content("body"))
    seen["user_api"] = (await _call(user, "POST", "/api/photoview/pages", {"name": "Mine"}))[0]
    await page.context.close()
    small, _ = await _session_page(browser, base, "user", "fr", 768, 1024)
    await small.goto(base + "/photoview")
    await small.wait_for_function(READY, timeout=30000)
    await small.wait_for_function(LIVE, timeout=60000)
    seen["small_width"] = await small.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    seen["quality_fr"] = await small.text_content("tr[data-key] td.q")
    await small.screenshot(path=shot("photoview-fr-768.png"))
    await small.context.close()


async def _editor(seen, browser, base, admin_api):
    page, _ = await _session_page(browser, base, "admin")
    await page.goto(base + "/photoview/edit")
    await page.wait_for_function(READY, timeout=30000)
    seen["editor_widgets"] = await page.eval_on_selector_all("#stage .pv-widget", "(w) => w.length")
    seen["axe_editor"] = await axe(page)
    # the keyboard's way: press the Text tool, then its fields
    await page.click("#tool-text")
    await page.fill("#prop-x", "300")
    await page.dispatch_event("#prop-x", "change")
    await page.fill("#prop-y", "200")
    await page.dispatch_event("#prop-y", "change")
    await page.fill("#prop-text", "Main incomer")
    await page.dispatch_event("#prop-text", "change")
    # drag and drop from the toolbox onto the picture
    await page.drag_and_drop("#tool-measure", "#stage .pv-canvas", target_position={"x": 500, "y": 150})
    seen["after_drop"] = await page.eval_on_selector_all("#stage .pv-widget", "(w) => w.length")
    # move the first widget with the mouse
    await page.eval_on_selector("#stage .pv-widget[data-index='0']", "(n) => n.scrollIntoView({block: 'center'})")
    box = await page.eval_on_selector("#stage .pv-widget[data-index='0']",
                                      "(n) => { const r = n.getBoundingClientRect(); return [r.x, r.y]; }")
    await page.mouse.move(box[0] + 5, box[1] + 5)
    await page.mouse.down()
    await page.mouse.move(box[0] + 65, box[1] + 45, steps=5)
    await page.mouse.up()
    await page.screenshot(path=shot("photoview-edit-en-1920.png"))
    await page.click("#save")
    await page.wait_for_function("() => document.querySelector('#message').className.includes('good')")
    seen["saved_message"] = await page.text_content("#message")
    status, answer = await _call(admin_api, "GET", "/api/photoview")
    seen["stored"] = answer["pages"][0]["widgets"]
    seen["editor_errors"] = list(page.errors)
    await page.context.close()
    # 21 pages, then the 22nd refused in French
    for n in range(len(answer["pages"]), 21):
        assert (await _call(admin_api, "POST", "/api/photoview/pages", {"name": "Page %d" % (n + 1)}))[0] == 200
    seen["api_22nd"] = await _call(admin_api, "POST", "/api/photoview/pages", {"name": "One too many"})
    page, _ = await _session_page(browser, base, "admin", "fr")
    await page.goto(base + "/photoview/edit")
    await page.wait_for_function(READY, timeout=30000)
    await page.fill("#new-name", "Une de trop")
    await page.click("#add-page")
    await page.wait_for_function("() => document.querySelector('#message').className.includes('bad')")
    seen["refused_fr"] = await page.text_content("#message")
    seen["axe_editor_fr"] = await axe(page)
    await page.screenshot(path=shot("photoview-edit-fr-1920.png"))
    await page.context.close()


async def _drag_handle(page, dx, dy):
    """Drag the selected widget's corner handle by (dx, dy) screen pixels; the width and height fields after."""
    box = await page.eval_on_selector(".pv-widget.selected .pv-handle",
                                      "(n) => { const r = n.getBoundingClientRect(); return [r.x, r.y]; }")
    await page.mouse.move(box[0] + 4, box[1] + 4)
    await page.mouse.down()
    await page.mouse.move(box[0] + 4 + dx / 2, box[1] + 4 + dy / 2, steps=3)
    await page.mouse.move(box[0] + 4 + dx, box[1] + 4 + dy, steps=3)
    await page.mouse.up()
    return [int(await page.input_value("#prop-w")), int(await page.input_value("#prop-h"))]


async def _placing(seen, browser, base, admin_api):
    """The resize handle and "drop by location" on the first page (its 6 widgets, its 960x540 background)."""
    page, _ = await _session_page(browser, base, "admin")
    await page.goto(base + "/photoview/edit")
    await page.wait_for_function(READY, timeout=30000)
    await page.focus("#stage .pv-widget[data-index='2']")           # the device icon at (600, 200), 120x80
    seen["scale"] = await page.evaluate("() => stage.scale")
    seen["resize_small"] = await _drag_handle(page, 80, 40)
    seen["resize_min"] = await _drag_handle(page, -2000, -2000)
    seen["resize_max"] = await _drag_handle(page, 3000, 3000)
    seen["drawn_size"] = await page.eval_on_selector(".pv-widget.selected", "(n) => [n.style.width, n.style.height]")
    seen["resize_message"] = await page.text_content("#message")
    await page.select_option("#area-pick", label="Plant room (2 devices)")
    await page.select_option("#area-as", "measure")
    await page.click("#area-add")
    seen["area_message"] = await page.text_content("#message")
    await page.select_option("#area-pick", label="Switchboard A (3 devices)")
    await page.select_option("#area-as", "icon")
    await page.click("#area-add")
    seen["axe_placing"] = await axe(page)
    await page.screenshot(path=shot("photoview-edit-area-en-1920.png"))
    await page.click("#save")
    await page.wait_for_function("() => document.querySelector('#message').className.includes('good')")
    seen["placed"] = (await _call(admin_api, "GET", "/api/photoview"))[1]["pages"][0]["widgets"]
    counts = []
    for _ in range(20):                  # Switchboard A again and again, until the page's limit refuses it
        counts.append(await page.eval_on_selector_all("#stage .pv-widget", "(w) => w.length"))
        await page.click("#area-add")
        if "bad" in await page.get_attribute("#message", "class"):
            break
    seen["area_counts"] = counts
    seen["area_refused"] = await page.text_content("#message")
    seen["after_refusal"] = await page.eval_on_selector_all("#stage .pv-widget", "(w) => w.length")
    seen["placing_errors"] = list(page.errors)
    await page.context.close()
    page, _ = await _session_page(browser, base, "admin", "fr", 768, 1024)
    await page.goto(base + "/photoview/edit")
    await page.wait_for_function(READY, timeout=30000)
    await page.focus("#stage .pv-widget[data-index='2']")
    seen["area_options_fr"] = await page.eval_on_selector_all("#area-pick option", "(o) => o.map((x) => x.textContent)")
    seen["axe_placing_fr"] = await axe(page)
    seen["placing_fr_width"] = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    await page.screenshot(path=shot("photoview-edit-area-fr-768.png"), full_page=True)
    await page.context.close()


async def _scenario(tmp_path):
    from playwright.async_api import async_playwright
    web = web_server()
    seen = {}
    state = tmp_path / "state"
    commission_accounts(str(state))
    async with running_gateway(state, demo_topology(), SETTINGS, clock=ManualClock(T0), services=[web]) as gw:
        devices = demo_devices()
        for device in devices:
            device.area = AREAS.get(device.address, "")
        await gw.topology.replace(devices)
        await wait_for(lambda: all(p.cycles >= 2 for p in gw.pollers.values()), guard=30)
        base = "http://127.0.0.1:%d" % web.server.port
        admin = await asyncio.to_thread(web_login, base, "admin")
        first = (await _call(admin, "POST", "/api/photoview/pages", {"name": "Main switchboard"}))[1]["page"]
        second = (await _call(admin, "POST", "/api/photoview/pages", {"name": "Floor 1"}))[1]["page"]
        seen["upload"] = await _call(admin, "POST", "/api/photoview/background?page=" + first["id"],
                                     raw=png(960, 540), headers={"Content-Type": "image/png"})
        admin_fr = await asyncio.to_thread(web_login, base, "admin", "fr")
        seen["upload_wide"] = await _call(admin_fr, "POST", "/api/photoview/background?page=" + second["id"],
                                          raw=png(1921, 10), headers={"Content-Type": "image/png"})
        widgets = [{"type": "measure", "x": 40, "y": 60, "address": METER, "load": LOAD, "keys": KEYS, "title": ""},
                   {"type": "text", "x": 400, "y": 30, "text": "LV switchboard", "color": "#ffffff",
                    "background": "#0b5cad"},
                   {"type": "device", "x": 600, "y": 200, "address": METER, "load": LOAD, "mode": "icon",
                    "w": 120, "h": 80},
                   {"type": "link", "x": 700, "y": 420, "target": second["id"], "label": "Floor 1"}]
        seen["save"] = await _call(admin, "POST", "/api/photoview/pages/" + first["id"],
                                   {"name": "Main switchboard", "widgets": widgets})
        seen["save_bad"] = await _call(admin_fr, "POST", "/api/photoview/pages/" + first["id"], {
            "name": "Main switchboard", "widgets": [dict(widgets[0], x=5000)]})
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                await _viewer(seen, browser, base, gw.board)
                await _editor(seen, browser, base, admin)
                await _placing(seen, browser, base, admin)
            finally:
                await browser.close()
    return seen


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    browser_ready(AXE)
    return asyncio.run(_scenario(tmp_path_factory.mktemp("photoview")))


def test_the_background_is_checked_and_the_widgets_too(seen):
    status, answer = seen["upload"]
    assert status == 200 and answer["background"]["width"] == 960, answer
    status, answer = seen["upload_wide"]
    assert status == 400 and "1921x10" in answer["messages"][0]["message"], answer
    assert seen["save"][0] == 200, seen["save"]
    status, answer = seen["save_bad"]
    assert status == 400 and answer["messages"][0]["message"].startswith("Élément 1 : x doit"), answer


def test_the_viewer_shows_the_live_values_of_the_simulated_meter(seen):
    cells, meter = seen["cells"], seen["meter"]
    assert sorted(cells) == sorted(KEYS)
    for key in KEYS:
        value = float(cells[key][0])
        assert abs(value - meter[key]) <= resolution("I-35", LOAD, key) + 1e-9, (key, value, meter[key])
        assert cells[key][2] == "good" and cells[key][3] == "Up to date", cells[key]
    assert seen["tabs"] == [["Main switchboard", "page"], ["Floor 1", None]]
    assert seen["text"] == "LV switchboard"
    assert seen["background"] == [960, "Background picture of the page Main switchboard"]
    assert seen["edit_link_hidden"] is True                 # User is not offered the editor
    assert seen["quality_fr"] == "À jour", seen["quality_fr"]
    assert seen["small_width"][0] <= seen["small_width"][1], seen["small_width"]
    assert seen["viewer_errors"] == []


def test_a_click_opens_the_monitor_and_a_link_the_other_page(seen):
    assert seen["clicked"].endswith("/monitor?address=%d&load=%d" % (METER, LOAD)), seen["clicked"]
    assert seen["linked"].endswith("/photoview?page=p2") and seen["linked_title"] == "Floor 1"


def test_a_user_cannot_open_the_editor(seen):
    status, body = seen["user_editor"]
    assert status == 403 and "User" in body, body
    assert seen["user_api"] == 403


def test_the_editor_places_widgets_by_fields_by_drop_and_by_mouse(seen):
    assert seen["editor_widgets"] == 4 and seen["after_drop"] == 6
    stored = seen["stored"]
    assert len(stored) == 6
    text = stored[4]
    assert (text["type"], text["x"], text["y"], text["text"]) == ("text", 300, 200, "Main incomer")
    dropped = stored[5]
    assert dropped["type"] == "measure" and dropped["address"] > 0 and dropped["keys"]
    assert stored[0]["x"] > 40 and stored[0]["y"] > 60, stored[0]        # moved with the mouse
    assert seen["saved_message"] == "Page Main switchboard saved."
    assert seen["editor_errors"] == []


def test_the_22nd_page_is_refused(seen):
    status, answer = seen["api_22nd"]
    assert status == 400 and "21" in answer["error"], answer
    assert "Au plus 21 pages Photoview" in seen["refused_fr"], seen["refused_fr"]


def test_no_serious_accessibility_violation(seen):
    assert seen["axe_viewer"] == [] and seen["axe_editor"] == [] and seen["axe_editor_fr"] == []


def test_a_device_widget_is_resized_by_its_corner_handle(seen):
    scale = seen["scale"]
    w, h = seen["resize_small"]
    assert abs(w - (120 + 80 / scale)) <= 1 and abs(h - (80 + 40 / scale)) <= 1, (seen["resize_small"], scale)
    assert seen["resize_min"] == [MIN_AREA, MIN_AREA]
    assert seen["resize_max"] == [960 - 600, 540 - 200]          # bounded by the 960x540 background
    assert seen["drawn_size"] == ["360px", "340px"]
    assert seen["resize_message"] == "Widget resized to 360 × 340 pixels: save the page to keep it."
    device = seen["placed"][2]
    assert (device["type"], device["x"], device["y"], device["w"], device["h"]) == ("device", 600, 200, 360, 340)


def test_all_devices_of_an_area_are_added_in_a_grid_up_to_the_limit(seen):
    assert seen["area_message"] == "2 widgets added for the devices of Plant room: place them, then save the page."
    added = seen["placed"][6:]
    tables, icons = added[:2], added[2:]
    assert [(w["type"], w["address"]) for w in tables] == [("measure", a) for a in sorted(AREAS)
                                                            if AREAS[a] == "Plant room"]
    assert all(w["keys"] for w in tables)
    assert [(w["type"], w["mode"], w["address"]) for w in icons] == \
        [("device", "icon", a) for a in sorted(AREAS) if AREAS[a] == "Switchboard A"]
    places = [(w["x"], w["y"]) for w in added]
    assert len(set(places)) == len(places)                        # a grid: no two on the same spot
    assert all(0 <= x < 960 and 0 <= y < 540 for x, y in places)
    counts = seen["area_counts"]
    assert counts == list(range(11, counts[-1] + 1, 3))             # 3 more at each press
    assert counts[-1] + 3 > MAX_WIDGETS >= counts[-1] and seen["after_refusal"] == counts[-1]
    assert seen["area_refused"] == ("Switchboard A has 3 devices: with the %d widgets already on the page that "
                                    "passes the limit of 40 widgets. Nothing added." % counts[-1])
    assert seen["area_options_fr"] == ["Switchboard A (3 appareils)", "Plant room (2 appareils)",
                                       "Appareils sans zone (3 appareils)"]
    assert seen["axe_placing"] == [] and seen["axe_placing_fr"] == []
    assert seen["placing_fr_width"][0] <= seen["placing_fr_width"][1]
    assert seen["placing_errors"] == []
