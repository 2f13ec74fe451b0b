"""The Home page (``GET /home``, issue 17) in a real headless Chromium, driven by Playwright.

One gateway (the demo site, commissioned: no default password, so no
password alarm) and one Debian Chromium serve the whole module: the fixture
walks the scenario once and records what the tests below check. The User
logs in through the login form and lands on /home; an Admin session (the
real login routes, handed to the browser as its cookie) sees the
configuration links the User does not; a simulated meter made silent raises
the slave-timeout alarm and the page's active-alarm shortcut counts it
(compared with the gateway's own alarm table, an independent source) without
the page being reloaded, then counts it no more once the meter answers again;
Log off ends the session on the gateway. axe-core runs on the pages;
screenshots in English and French at 1920x1080 and 768x1024 go to
tests/results/ (``home-*.png``, git-ignored).
"""

import asyncio

import pytest
from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, axe, browser_ready, shot
from conftest import (WebClient, commission_accounts, demo_devices, demo_topology, running_gateway, wait_for,
                      web_login, web_server)

from daemon import i18n
from daemon.security.rights import Caller
from daemon.state.alarms import SYSTEM_ALARMS
from webconfig import home_pages

READY = "html[data-ready='1']"
SETTINGS = {"alarms.check_s": 3600, "poll.backoff_max_s": 1}
SILENCED = demo_devices()[2]             # the U-30 at 11 on the Digiware bus
CRITICALITIES = ("critical", "non-critical", "information")
# What the page shows: its tiles (link or not), its configuration links, the alarm chips, the devices' summary.
READ_PAGE = r"""() => {
  const tiles = Array.from(document.querySelectorAll(".tile")).map((tile) => ({
    id: tile.id, link: tile.tagName === "A", href: tile.getAttribute("href"), text: tile.innerText}));
  const links = Array.from(document.querySelectorAll("#configuration-links a")).map((a) => a.getAttribute("href"));
  const chips = Object.fromEntries(Array.from(document.querySelectorAll("#alarm-by .chip"))
    .map((chip) => [chip.dataset.criticality, Number(chip.querySelector("b").textContent)]));
  const states = Object.fromEntries(Array.from(document.querySelectorAll("#device-states li"))
    .map((li) => [li.dataset.state, Number(li.querySelector("b").textContent)]));
  return {tiles, links, chips, states, total: document.getElementById("alarm-total").textContent,
          shortcut: document.getElementById("alarm-shortcut").getAttribute("href"),
          attention: document.getElementById("devices-attention").innerText,
          who: document.getElementById("who").textContent, logoff: document.getElementById("logoff").textContent,
          title: document.title, homeCurrent: document.getElementById("viewbar-home").getAttribute("aria-current")};
}"""


def gateway_alarm_counts(gw):
    """{criticality: active alarms} from the gateway's own tables: a system alarm per source, a device alarm each."""
    counts = dict((c, 0) for c in CRITICALITIES)
    for number, _source in gw.alarms.active:
        counts[SYSTEM_ALARMS[number][1]] += 1
    for alarm in gw.device_alarms.active.values():
        counts[alarm["criticality"]] += 1
    return counts


def silenced_alarm(gw):
    """Whether the silent meter's slave-timeout alarm (3) is active in the gateway's table."""
    return (3, "digiware:%d" % SILENCED.address) in gw.alarms.active


async def _matching(page, gw, condition, guard=30.0):
    """What the page shows once ``condition(gw)`` holds and its alarm chips equal the gateway's own counts (the
    page polls; another meter slow to answer on a loaded machine may raise an alarm of its own meanwhile)."""
    deadline = asyncio.get_running_loop().time() + guard
    while True:
        look = await page.evaluate(READ_PAGE)
        counts = gateway_alarm_counts(gw)
        if condition(gw) and look["chips"] == counts:
            return dict(look, gateway=counts)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the page shows %s, the gateway holds %s" % (look["chips"], counts))
        await asyncio.sleep(0.2)


async def _page_as(browser, base, profile, language, width, height):
    client = await asyncio.to_thread(web_login, base, profile, language)
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        locale={"en": "en-GB", "fr": "fr-FR"}[language])
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    page = await context.new_page()
    await page.goto(base + "/home", wait_until="load")
    await page.wait_for_selector(READY)
    return page


async def _look(page, name):
    """What the page shows, its probe and axe's violations, and its screenshot ``home-<name>.png``."""
    await page.screenshot(path=shot("home-%s.png" % name), full_page=True)
    return dict(await page.evaluate(READ_PAGE), probe=await page.evaluate(PAGE_PROBE), axe=await axe(page))


async def _walk(gw, base, browser):
    seen = {}
    # the summary the page polls, read as any reader may (nobody logged in), against the gateway's own tables
    # (again after the summary's second of reuse if a meter slow to answer changed something meanwhile)
    door = gw.door(Caller("web", "user"))
    for _attempt in range(5):
        answer = await asyncio.to_thread(WebClient(base).get, "/api/home")
        seen["api_home"] = (answer, gateway_alarm_counts(gw),
                            dict((d.address, door.device_summary(d.address).state) for d in gw.topology.devices))
        if answer[1]["alarms"] == seen["api_home"][1] and \
                dict((d["address"], d["status"]) for d in answer[1]["devices"]) == seen["api_home"][2]:
            break
        await asyncio.sleep(1.1)
    # nobody logged in: /home sends the browser to the login page
    anonymous = await browser.new_context(viewport={"width": 1920, "height": 1080})
    page = await anonymous.new_page()
    await page.goto(base + "/home", wait_until="load")
    seen["anonymous_url"] = page.url
    # the User logs in through the form and lands on Home
    await page.goto(base + "/login?lang=en", wait_until="load")
    await page.wait_for_selector(READY)
    await page.select_option("#profile", "user")
    await page.click("#login-submit")
    await page.wait_for_url(base + "/home")
    await page.wait_for_selector(READY)
    seen["user"] = await _look(page, "user-en-1920x1080")
    await anonymous.close()

    # Admin: the configuration links; the alarm shortcut follows a silent meter without a reload
    page = await _page_as(browser, base, "admin", "en", 1920, 1080)
    seen["admin"] = await _look(page, "admin-en-1920x1080")
    seen["before"] = await _matching(page, gw, lambda gw: not silenced_alarm(gw))
    await page.evaluate("() => { window.notReloaded = true; }")
    gw.board.configure_meter(int(SILENCED.netid, 16), silent=True)
    seen["raised_match"] = await _matching(page, gw, silenced_alarm)
    await page.wait_for_function("(name) => document.getElementById('devices-attention').textContent.includes(name)",
                                 arg=SILENCED.name, timeout=30000)
    seen["raised"] = dict(await _look(page, "admin-alarm-en-1920x1080"), gateway=gateway_alarm_counts(gw),
                          same=await page.evaluate("() => window.notReloaded === true"))
    gw.board.configure_meter(int(SILENCED.netid, 16), silent=False)
    seen["cleared"] = dict(await _matching(page, gw, lambda gw: not silenced_alarm(gw)),
                           same=await page.evaluate("() => window.notReloaded === true"))
    await page.set_viewport_size({"width": 768, "height": 1024})
    seen["admin_768"] = await _look(page, "admin-en-768x1024")
    # Log off: the login page, the session ended on the gateway, Home out of reach again
    sessions = len(gw.sessions)
    await page.click("#logoff")
    await page.wait_for_url(base + "/login")
    seen["after_logoff"] = (sessions, len(gw.sessions),
                            await page.evaluate("async () => (await (await fetch('/api/session')).json())"))
    await page.goto(base + "/home", wait_until="load")
    seen["home_after_logoff"] = page.url
    await page.context.close()

    # French, both sizes
    for width, height in ((1920, 1080), (768, 1024)):
        page = await _page_as(browser, base, "admin", "fr", width, height)
        seen["fr", width] = await _look(page, "admin-fr-%dx%d" % (width, height))
        await page.context.close()
    return seen


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    browser_ready(AXE)
    from playwright.async_api import async_playwright
    web = web_server()
    state = tmp_path_factory.mktemp("home") / "state"
    commission_accounts(state)

    async def body():
        async with running_gateway(state, demo_topology(), SETTINGS, services=[web]) as gw:
            await gw.topology.replace(demo_devices())
            await wait_for(lambda: all(p.cycles >= 1 for p in gw.pollers.values()), guard=30)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    return await _walk(gw, "http://127.0.0.1:%d" % web.server.port, browser)
                finally:
                    await browser.close()

    return asyncio.run(body())


def _tiles(look):
    return dict((tile["id"], tile) for tile in look["tiles"])


def test_login_lands_on_home_and_nobody_logged_in_is_sent_to_the_login_page(seen):
    assert seen["anonymous_url"].endswith("/login"), seen["anonymous_url"]
    user = seen["user"]
    assert user["who"] == "Logged in as User" and user["logoff"] == "Log off"
    assert user["homeCurrent"] == "page" and user["title"].endswith("— Home")


def test_the_tiles_say_which_views_exist_and_the_configuration_follows_the_profile(seen):
    for look in (seen["user"], seen["admin"]):
        tiles = _tiles(look)
        assert list(tiles) == ["tile-monitor", "tile-alarms", "tile-photoview", "tile-consumption", "tile-trends"]
        assert [(tiles[t]["link"], tiles[t]["href"]) for t in ("tile-monitor", "tile-alarms", "tile-photoview",
                                                               "tile-consumption", "tile-trends")] == [
            (True, "/monitor"), (True, "/alarms"), (True, "/photoview"), (True, "/consumption"), (True, "/trends")]
        for tile in tiles.values():                   # every view exists now: none said not available yet
            assert "Not available yet" not in tile["text"], tile
    # the configuration links: the User's are the status page and Diagnosis; Admin's add the configuration
    assert seen["user"]["links"] == ["/", "/diagnosis"], seen["user"]["links"]
    admin = seen["admin"]["links"]
    assert {"/", "/diagnosis", "/settings", "/devices/sources", "/system", "/customisation", "/password"} <= set(admin)
    assert "/accounts" not in admin and "/security/https" not in admin        # Cyber Security's pages
    assert not {"/home", "/monitor", "/alarms", "/trends"} & set(admin)        # views are tiles, not links here


def test_the_alarm_shortcut_counts_a_raised_alarm_live(seen):
    before, matched, raised, cleared = seen["before"], seen["raised_match"], seen["raised"], seen["cleared"]
    # each time, the page's counts by criticality were the gateway's own (the alarm table read independently):
    # without the silent meter's slave timeout, with it (critical), and without it again once it answers
    for look in (before, matched, cleared):
        assert look["chips"] == look["gateway"], look
    assert matched["chips"]["critical"] >= 1 and raised["shortcut"] == "/alarms?status=active"
    assert raised["total"] == "%d active" % sum(raised["chips"].values()), raised["total"]
    assert raised["same"] and cleared["same"]                # no reload: the same document all along
    # the devices' summary: the silent meter lost, named with its state and age
    assert raised["states"].get("comm_lost", 0) >= 1 and raised["states"].get("ok", 0) >= 1, raised["states"]
    line = [text for text in raised["attention"].split("\n") if SILENCED.name in text]
    assert line and "Lost, last answer " in line[0] and line[0].endswith(" ago"), raised["attention"]


def test_log_off_ends_the_session(seen):
    sessions_before, sessions_after, answer = seen["after_logoff"]
    assert sessions_after == sessions_before - 1
    assert answer["logged_in"] is False
    assert seen["home_after_logoff"].endswith("/login")


def test_accessible_readable_and_french_in_french(seen):
    looks = {"user-en-1920": seen["user"], "admin-en-1920": seen["admin"], "alarm-en-1920": seen["raised"],
             "admin-en-768": seen["admin_768"], "admin-fr-1920": seen["fr", 1920], "admin-fr-768": seen["fr", 768]}
    assert dict((name, look["axe"]) for name, look in looks.items() if look["axe"]) == {}
    for name, look in looks.items():
        probe = look["probe"]
        assert probe["scrollWidth"] <= probe["innerWidth"], (name, probe["scrollWidth"], probe["innerWidth"])
    french = seen["fr", 1920]
    assert french["probe"]["lang"] == "fr" and seen["admin"]["probe"]["lang"] == "en"
    fr = i18n.CATALOGUES["fr"]
    tiles = _tiles(french)
    assert fr["web.home.tile.monitor"] in tiles["tile-monitor"]["text"]
    assert fr["web.home.tile.consumption"] in tiles["tile-consumption"]["text"]
    for key in ("web.home.section.monitor", "web.home.section.analyse", "web.home.configuration", "web.home.summary",
                "web.session.logoff"):
        assert fr[key] in french["probe"]["text"], key
    for key in ("web.home.tile.monitor", "web.home.not_yet", "web.home.configuration", "web.home.summary"):
        assert i18n.CATALOGUES["en"][key] not in french["probe"]["text"], key


def test_the_summary_is_small_and_says_what_the_gateway_holds(seen):
    (status, answer), alarms, states = seen["api_home"]
    assert status == 200 and answer["alarms"] == alarms
    assert dict((d["address"], d["status"]) for d in answer["devices"]) == states
    assert set(answer["devices"][0]) == {"address", "bus", "reference", "name", "status", "age_s"}    # no values


def test_the_summary_is_built_at_most_once_a_second():
    class Door:
        built = 0

        def home_summary(self):
            Door.built += 1
            return {"built": Door.built}
    now = [100.0]
    summary = home_pages.Summary(Door(), clock=lambda: now[0])
    answers = [summary.get()]
    now[0] += 0.5
    answers.append(summary.get())
    now[0] += 0.6
    answers.append(summary.get())
    now[0] -= 5                      # a clock that went back builds again rather than serving an old answer
    answers.append(summary.get())
    assert [a["built"] for a in answers] == [1, 1, 2, 3]
