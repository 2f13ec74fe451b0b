"""The Monitor page (/monitor, issue 17) in a real headless Chromium, driven by Playwright, on the demo site.

One gateway (the demo topology, its clock a ManualClock so the simulated meters hold still between the
test's own moves) and one Debian Chromium serve the module: ``seen`` walks the scenario once and records
what the page showed; the tests below check it. The values shown are compared with the simulated meters
(``board.find_meter(...).values(load)``, an independent source) within the register's resolution; the
clock is moved and the same cells change without a reload (the long-poll); a load's power factor is
changed on the simulated meter and the phasor diagram's current angle follows; a silenced meter's values
turn grey with their age; tabs follow the device's data (no Quality tab on the COUNTIS E23, which has no
THD; only Inputs/outputs on the IO-10); the IO-10's output is switched by Admin with the policy on (the
simulated IO-10's output changes), refused to User (no control, the reason said; the API answers 403) and
to Admin with the policy off. axe-core on each view; screenshots EN/FR at 1920 and 768 px in tests/results/.
"""

import asyncio
import re

import pytest
from board.base import ManualClock
from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, axe, browser_ready, shot
from conftest import (commission_accounts, demo_devices, demo_topology, resolution, running_gateway, wait_for,
                      web_login, web_server)

T0 = 1_790_000_000.0
READY = "() => document.documentElement.dataset.ready === '1'"
SETTINGS = {"alarms.check_s": 3600, "poll.backoff_max_s": 1, "policy.modbus_write": True}
METER, LOAD, SILENCED, IO10, E23, U30 = 4, 1, 5, 15, 21, 11
# every value cell of the panel: key -> [data-value, shown text, row class, quality text]
CELLS = r"""() => Object.fromEntries(Array.from(document.querySelectorAll('#panel td.val[data-key]')).map((c) =>
  [c.dataset.key, [c.dataset.value, c.textContent, c.parentElement.className,
                   c.parentElement.querySelector('td.q').textContent]]))"""
TABS = "() => Array.from(document.querySelectorAll('#tabs [role=tab]')).map((b) => b.dataset.tab)"
ANGLES = r"""() => Object.fromEntries(Array.from(document.querySelectorAll('#phasor line.vec')).map((l) =>
  [l.dataset.name, [parseFloat(l.dataset.angle), parseFloat(l.getAttribute('x2')),
                    parseFloat(l.getAttribute('y2'))]]))"""
PREFIX = {"k": 1e3, "M": 1e6}


def shown_number(text):
    """The number a cell shows, in the registry's unit ("229.4 V" -> 229.4, "15.43 kW" -> 15430)."""
    found = re.match(r"^(-?[\d,.\u202f]+)(?:\u00a0([kM]?))?", text)
    number = float(found.group(1).replace(",", "").replace("\u202f", "").replace(" ", ""))
    return number * PREFIX.get(found.group(2) or "", 1)


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


async def _open(page, base, address, load=None):
    await page.goto(base + "/monitor?address=%d%s" % (address, "" if load is None else "&load=%d" % load))
    await page.wait_for_function(READY, timeout=30000)
    await page.wait_for_function("() => document.querySelector('#panel td.val[data-key]') !== null")


async def _settled(page):
    """Until every value of the panel is good (a loaded machine can make a meter miss a poll now and then)."""
    await page.wait_for_function("() => Array.from(document.querySelectorAll('#panel td.val[data-key]'))"
                                 ".every((c) => c.parentElement.className === 'good')", timeout=60000)


async def _tab(page, name):
    await page.click("#tab-" + name)
    await page.wait_for_function("() => document.querySelector('#tab-%s').getAttribute('aria-selected') === 'true'"
                                 % name)


async def _scenario(tmp_path):
    from playwright.async_api import async_playwright
    clock = ManualClock(T0)
    web = web_server()
    seen = {}
    state = tmp_path / "state"
    commission_accounts(str(state))
    async with running_gateway(state, demo_topology(), SETTINGS, clock=clock, services=[web]) as gw:
        await gw.topology.replace(demo_devices())
        await wait_for(lambda: all(p.cycles >= 2 for p in gw.pollers.values()), guard=30)
        base = "http://127.0.0.1:%d" % web.server.port
        board = gw.board
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page, admin = await _session_page(browser, base, "admin")
                # ---- the values of load 1 of the I-35 at 4, against the simulated meter
                await _open(page, base, METER, LOAD)
                seen["title"] = await page.text_content("#title")
                seen["url"] = page.url
                seen["tabs_meter"] = await page.evaluate(TABS)
                meter = board.find_meter(address=METER)
                await _tab(page, "ui")
                await _settled(page)
                seen["ui_cells"], seen["ui_meter"] = await page.evaluate(CELLS), meter.values(LOAD)
                await _tab(page, "power")
                await _settled(page)
                seen["power_cells"], seen["power_meter"] = await page.evaluate(CELLS), meter.values(LOAD)
                await _tab(page, "energy")
                await _settled(page)
                seen["energy_cells"], seen["energy_meter"] = await page.evaluate(CELLS), meter.values(LOAD)
                seen["axe_energy"] = await axe(page)
                # ---- live: the meter moves (the clock), the same cells follow without a reload
                await _tab(page, "ui")
                await _settled(page)
                before = await page.evaluate(CELLS)
                await page.evaluate("() => { window.notReloaded = true; }")
                clock.advance(60)
                moved = meter.values(LOAD)
                await page.wait_for_function(
                    "(v) => { const c = document.querySelector('#panel td.val[data-key=v1]');"
                    " return c && Math.abs(parseFloat(c.dataset.value) - v) <= 0.011 &&"
                    " c.parentElement.className === 'good'; }", arg=moved["v1"], timeout=60000)
                seen["live"] = (before, await page.evaluate(CELLS), moved,
                                await page.evaluate("() => window.notReloaded === true"))
                # ---- the phasor diagram follows the meter's power factor
                await _tab(page, "summary")
                await page.wait_for_selector("#phasor line.vec[data-name='I1']", state="attached")
                seen["angles_before"] = await page.evaluate(ANGLES)
                meter.configure_load(LOAD, pf=-0.5)            # leading: the current leads its voltage by 60°
                await page.wait_for_function(
                    "() => { const l = document.querySelector(\"#phasor line.vec[data-name='I1']\");"
                    " return l && Math.abs(parseFloat(l.dataset.angle) - 60) < 0.5; }", timeout=20000)
                seen["angles_leading"] = await page.evaluate(ANGLES)
                seen["pf_after"] = meter.values(LOAD)["pf1"]
                meter.configure_load(LOAD, pf=0.8)             # lagging: it lags by 36.87°
                await page.wait_for_function(
                    "() => { const l = document.querySelector(\"#phasor line.vec[data-name='I2']\");"
                    " return l && Math.abs(parseFloat(l.dataset.angle) - (-120 - 36.87)) < 0.5; }", timeout=20000)
                seen["angles_lagging"] = await page.evaluate(ANGLES)
                seen["phasor_table"] = await page.text_content("#phasor-table")
                await _settled(page)
                seen["axe_summary"] = await axe(page)
                seen["probe_summary"] = await page.evaluate(PAGE_PROBE)
                await page.screenshot(path=shot("monitor-summary-en-1920.png"), full_page=True)
                # ---- a silenced meter: its values greyed with their age
                await _open(page, base, SILENCED, 2)
                await _tab(page, "ui")
                await _settled(page)
                seen["fresh_silenced"] = await page.evaluate(CELLS)
                silenced = board.find_meter(address=SILENCED)
                board.configure_meter(silenced.netid, silent=True)
                await wait_for(lambda: gw.cache.comm_lost(SILENCED), guard=30)
                clock.advance(90)
                await page.wait_for_function(
                    "() => { const r = document.querySelector('#panel tr[data-row=v1]');"
                    " return r && r.className === 'comm_lost' && /min|s/.test(r.querySelector('td.q').textContent); }",
                    timeout=20000)
                seen["lost_cells"] = await page.evaluate(CELLS)
                seen["lost_state"] = await page.text_content("#state")
                seen["lost_colour"] = await page.evaluate(
                    "() => [getComputedStyle(document.querySelector('#panel tr[data-row=v1] td.val')).color,"
                    " getComputedStyle(document.querySelector('#tabs')).color]")
                await page.screenshot(path=shot("monitor-lost-en-1920.png"), full_page=True)
                board.configure_meter(silenced.netid, silent=False)
                # ---- tabs follow the data: the E23 has no THD, the U-30 voltages only, the IO-10 I/O only
                await _open(page, base, E23, 1)
                seen["tabs_e23"] = await page.evaluate(TABS)
                await _open(page, base, U30)
                seen["tabs_u30"] = await page.evaluate(TABS)
                # ---- the IO-10's output: Admin with the policy on switches it
                io10 = board.find_meter(address=IO10)
                await _open(page, base, IO10)
                seen["tabs_io10"] = await page.evaluate(TABS)
                seen["io_refusal_admin"] = await page.query_selector("#output-refusal")
                before_outputs = io10.outputs
                await page.click("button[data-output=out_1]")
                await page.wait_for_selector("#confirm[open]")
                seen["confirm_text"] = await page.text_content("#confirm-text")
                await page.click("#confirm-yes")
                await page.wait_for_selector("#message.ok")
                seen["switched"] = (before_outputs, io10.outputs, await page.text_content("#message"))
                await page.wait_for_function(
                    "() => document.querySelector('#panel td.val[data-key=out_1]').dataset.value === '1'")
                seen["out_cell"] = (await page.evaluate(CELLS))["out_1"]
                seen["axe_io"] = await axe(page)
                await page.screenshot(path=shot("monitor-io10-admin-en-1920.png"), full_page=True)
                seen["admin_errors"] = list(page.errors)
                # ---- refused for User: no control, the reason said; the API refuses too
                user_page, user = await _session_page(browser, base, "user")
                await _open(user_page, base, IO10)
                seen["user_buttons"] = await user_page.query_selector_all("button[data-output]")
                seen["user_refusal"] = await user_page.text_content("#output-refusal")
                seen["user_post"] = await asyncio.to_thread(user.post, "/api/devices/%d/0/out_1" % IO10, {"value": 0})
                seen["user_outputs"] = io10.outputs
                seen["user_errors"] = list(user_page.errors)
                # ---- Admin with the policy off: no control, the policy named
                await gw.settings.set_many({"policy.modbus_write": False})
                await _open(page, base, IO10)
                seen["policy_buttons"] = await page.query_selector_all("button[data-output]")
                seen["policy_refusal"] = await page.text_content("#output-refusal")
                # ---- screenshots EN/FR at 1920 and 768, axe on each
                seen["shots"] = {}
                for language in ("en", "fr"):
                    for width, height in ((1920, 1080), (768, 1024)):
                        shot_page, _client = await _session_page(browser, base, "admin", language, width, height)
                        await _open(shot_page, base, METER, LOAD)
                        await shot_page.wait_for_selector("#phasor line.vec", state="attached")
                        await _settled(shot_page)
                        await shot_page.screenshot(path=shot("monitor-%s-%d.png" % (language, width)), full_page=True)
                        probe = await shot_page.evaluate(PAGE_PROBE)
                        seen["shots"][(language, width)] = dict(probe, axe=await axe(shot_page),
                                                                errors=list(shot_page.errors))
                        await shot_page.context.close()
            finally:
                await browser.close()
    return seen


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    browser_ready(AXE)
    return asyncio.run(_scenario(tmp_path_factory.mktemp("monitor")))


def _close(cells, meter, keys, load=LOAD, reference="I-35"):
    """[(key, shown, meter)] of the cells that differ from the meter beyond the register's resolution."""
    wrong = []
    for key in keys:
        value = float(cells[key][0])
        step = resolution(reference, load, key)
        if abs(value - meter[key]) > step + 1e-9:
            wrong.append((key, value, meter[key]))
        shown = shown_number(cells[key][1])          # the text rounds to its digits, never further than 1 %
        if abs(shown - value) > max(0.0051, abs(value) * 0.005):
            wrong.append((key, cells[key][1], value))
    return wrong


def test_the_page_opens_the_device_and_load_of_its_address(seen):
    assert "I-35" in seen["title"] and "@4" in seen["title"] and "Load 1" in seen["title"]
    assert seen["url"].endswith("/monitor?address=4&load=1")
    assert seen["tabs_meter"] == ["summary", "ui", "power", "energy", "quality"]     # the I-35 has THD, no I/O


def test_the_values_shown_are_the_simulated_meters(seen):
    assert _close(seen["ui_cells"], seen["ui_meter"], ("v1", "v2", "v3", "u12", "i1", "i2", "i3", "freq")) == []
    assert _close(seen["power_cells"], seen["power_meter"], ("p1", "p2", "p3", "p", "q", "s", "pf1", "pf")) == []
    assert _close(seen["energy_cells"], seen["energy_meter"], ("ea_pos", "ea_neg", "er_pos", "er_neg", "es")) == []
    # every value with its unit and quality and age
    assert seen["ui_cells"]["v1"][1].endswith("V") and seen["ui_cells"]["i1"][1].endswith("A")
    assert seen["energy_cells"]["ea_pos"][1].endswith("Wh")
    assert [(key, cell) for key, cell in seen["ui_cells"].items()
            if not (cell[2] == "good" and cell[3].startswith("Up to date"))] == []
    # tan φ is Q / P of the same phase
    tan = float(seen["power_cells"]["tan_phi1"][0])
    assert abs(tan - seen["power_meter"]["q1"] / seen["power_meter"]["p1"]) < 0.01


def test_the_values_change_live_without_a_reload(seen):
    before, after, meter, not_reloaded = seen["live"]
    assert not_reloaded
    assert [key for key in ("v1", "v2", "v3", "i1", "i2", "i3") if before[key][0] != after[key][0]] != []
    assert _close(after, meter, ("v1", "v2", "v3", "i1", "i2", "i3")) == []


def test_the_phasor_angles_follow_the_simulated_meter(seen):
    before, leading, lagging = seen["angles_before"], seen["angles_leading"], seen["angles_lagging"]
    assert [before[name][0] for name in ("V1", "V2", "V3")] == [0.0, -120.0, 120.0]
    assert before["I1"][0] < 0                          # the demo's loads lag (pf 0.86..0.97)
    assert seen["pf_after"] == pytest.approx(-0.5)
    assert leading["I1"][0] == pytest.approx(60.0, abs=0.2)
    assert leading["I2"][0] == pytest.approx(-60.0, abs=0.2) and leading["I3"][0] == pytest.approx(180.0, abs=0.2)
    assert lagging["I1"][0] == pytest.approx(-36.9, abs=0.2) and lagging["I3"][0] == pytest.approx(83.1, abs=0.2)
    # the line drawn points that way (SVG's y runs down)
    x, y = leading["I1"][1], leading["I1"][2]
    assert x > 0 and y < 0 and abs(-y / x - 3 ** 0.5) < 0.05
    assert "I1" in seen["phasor_table"] and "°" in seen["phasor_table"]


def test_a_silenced_meter_is_greyed_with_its_age(seen):
    assert all(cell[2] == "good" for cell in seen["fresh_silenced"].values())
    lost = seen["lost_cells"]
    assert lost["v1"][2] == "comm_lost" and lost["i1"][2] == "comm_lost"
    assert lost["v1"][3].startswith("Lost") and re.search(r"\d+ (s|min) ago", lost["v1"][3])
    assert lost["v1"][0] != ""                          # the last value stays, greyed
    assert "Communication lost" in seen["lost_state"]
    assert seen["lost_colour"][0] != "rgb(29, 35, 43)"  # not the text colour of a fresh value


def test_tabs_only_where_the_device_has_the_data(seen):
    assert "quality" not in seen["tabs_e23"] and seen["tabs_e23"][:4] == ["summary", "ui", "power", "energy"]
    assert seen["tabs_u30"] == ["summary", "ui"]
    assert seen["tabs_io10"] == ["io"]


def test_the_io10_output_is_switched_by_admin_with_the_policy_on(seen):
    assert seen["io_refusal_admin"] is None
    assert "Output 1" in seen["confirm_text"]
    before, after, message = seen["switched"]
    assert before & 1 == 0 and after & 1 == 1            # the simulated IO-10's output 1 is on
    assert "Output 1" in message and "on" in message
    assert seen["out_cell"][1] == "On"
    assert seen["admin_errors"] == []


def test_user_and_a_policy_off_get_no_control_and_are_told_why(seen):
    assert seen["user_buttons"] == []
    assert "Admin" in seen["user_refusal"]
    status, answer = seen["user_post"]
    assert status == 403, answer
    assert seen["user_outputs"] & 1 == 1                  # unchanged by the refused request
    assert seen["user_errors"] == []
    assert seen["policy_buttons"] == []
    assert "security policy" in seen["policy_refusal"]


def test_accessibility_and_both_languages_at_both_sizes(seen):
    assert seen["axe_summary"] == [] and seen["axe_energy"] == [] and seen["axe_io"] == []
    assert seen["probe_summary"]["unlabelled"] == []
    assert sorted(seen["shots"]) == [("en", 768), ("en", 1920), ("fr", 768), ("fr", 1920)]
    for (language, width), probe in seen["shots"].items():
        assert probe["axe"] == [], (language, width)
        assert probe["errors"] == [], (language, width)
        assert probe["lang"] == language
        assert probe["scrollWidth"] <= probe["innerWidth"], (language, width)
        assert probe["unlabelled"] == []
    assert "Vector diagram" in seen["shots"][("en", 1920)]["text"]
    assert "Diagramme vectoriel" in seen["shots"][("fr", 1920)]["text"]
    assert "Synthèse" in seen["shots"][("fr", 768)]["text"] and "Summary" not in seen["shots"][("fr", 768)]["text"]


class _Door:
    """What monitor_live.LiveValues asks of the door: the pollers' batches."""

    def on_values(self, listener):
        self.store = listener


def test_the_long_poll_is_bounded_and_wakes_on_its_own_row():
    from webconfig import monitor_live

    async def scenario():
        door = _Door()
        live = monitor_live.LiveValues(door, max_waiters=2, wait_s=0.3)
        assert live.version(4, 1) == 0
        await live.wait(4, 1, None)                        # no version yet: at once
        door.store(4, 1, {"v1": 230.0}, 0.0)
        assert live.version(4, 1) == 1
        await live.wait(4, 1, 0)                           # behind: at once
        first = asyncio.ensure_future(live.wait(4, 1, 1))
        second = asyncio.ensure_future(live.wait(5, 2, 0))
        await asyncio.sleep(0.01)
        assert live.waiters == 2
        with pytest.raises(monitor_live.Full):             # the cap: refused at once, nothing kept
            await live.wait(6, 1, 0)
        door.store(4, 2, {"v1": 230.0}, 0.0)               # another load of the device: not this waiter's
        await asyncio.sleep(0.01)
        assert not first.done()
        door.store(4, 1, {"v1": 231.0}, 0.0)               # its row: woken
        await asyncio.wait_for(first, 0.1)
        await asyncio.wait_for(second, 1.0)                # a gone browser's waiter ends with its timeout
        assert live.waiters == 0 and live._waiting == {} and live.woken == 1

    asyncio.run(scenario())
