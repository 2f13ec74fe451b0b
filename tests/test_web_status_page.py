"""The status page (``GET /``) in a real headless Chromium, driven by Playwright.

The gateway runs the simulated demo site with its web server on a loopback
port; the browser is Debian's ``chromium`` (Makefile TEST_DEBS), driven by
Playwright's async API on the same event loop as the gateway (its own
browser download is never used). At a desktop (1920x1080) and a tablet
(1024x768) viewport the page must not scroll sideways, and every cell of
every table must be fully visible or inside a container that scrolls
horizontally by itself; each value shows its quality and age.

The page is drawn in English and in French from the catalogue (the language
asked with ``?lang=``, nobody logged in): its headings, qualities, measurement
names and ages in the language asked, and the links it offers are the pages the
reader may open (GET /api/pages, checked per profile over HTTP). Screenshots of
both viewports in both languages go to tests/results/ (``status-en-1920x1080.png``...).
"""

import asyncio
import re

from browser_support import CHROMIUM, CHROMIUM_ARGS, browser_ready, shot
from conftest import (WebClient, demo_devices, demo_topology, running_gateway, topology_with, wait_for, web_login,
                      web_server)

from core import registry
from daemon import i18n
from daemon.security.rights import COMMANDS
from webconfig import navigation

VIEWPORTS = [(1920, 1080), (1024, 768)]
LANGUAGES = ("en", "fr")
QUIET = {"alarms.check_s": 3600}
ANYONE = ["/", "/home", "/monitor", "/alarms", "/trends", "/diagnosis"]     # the pages offered to every reader

# In the page: its horizontal overflow, and every device table cell that can't be read whole. Each cell
# is scrolled into view as a user would (scrollIntoView scrolls the page vertically and any box that
# scrolls by itself); then the page must still be at scrollX 0 (no sideways page scroll was needed), the
# cell's box within the viewport, its text not wider than the cell, and both its inner edges must hit
# the cell itself: a cell overflowing its card under the next one, or cut off by a clipping box, fails.
LAYOUT_PROBE = r"""() => {
  const doc = document.documentElement;
  const page = {scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth};
  const problems = [];
  const cells = Array.from(document.querySelectorAll("#devices table th, #devices table td"));
  for (const cell of cells) {
    cell.scrollIntoView({block: "center", inline: "nearest"});
    const r = cell.getBoundingClientRect();
    const y = (r.top + r.bottom) / 2;
    const hits = [r.left + 2, r.right - 2].map((x) => document.elementFromPoint(x, y));
    const why = [];
    if (window.scrollX !== 0) why.push("page scrolled sideways to " + window.scrollX);
    if (r.left < -0.5 || r.right > window.innerWidth + 0.5) why.push("outside the viewport");
    if (cell.scrollWidth > cell.clientWidth + 1) why.push("text wider than the cell");
    if (!hits.every((hit) => hit && cell.contains(hit))) why.push("covered or clipped");
    if (why.length) problems.push({text: cell.textContent, rect: [r.left, r.right], why: why.join(", ")});
    window.scrollTo(0, window.scrollY);
  }
  window.scrollTo(0, 0);
  const counters = Array.from(document.querySelectorAll("#devices table.counters"));
  return Object.assign(page, {
    cells: cells.length, counterTables: counters.length,
    counterCells: counters.reduce((n, t) => n + t.querySelectorAll("th, td").length, 0),
    problems: problems.slice(0, 12), problemCount: problems.length,
  });
}"""

# In the page: the rows of every measured value, as (name, value, quality, age) read from the cells; the
# headings of the value tables; the navigation's links; the document's language and the page's words.
VALUE_ROWS = r"""() => Array.from(document.querySelectorAll("#devices table.values")).flatMap(
    (t) => Array.from(t.querySelectorAll("tr")).slice(1).map(
    (tr) => Array.from(tr.querySelectorAll("td")).map((td) => td.textContent.trim())))"""
WORDS = r"""() => ({
  headings: Array.from(document.querySelectorAll("#devices table.values tr:first-of-type th")).map((th) => th.textContent),
  links: Array.from(document.querySelectorAll("#nav-links a")).map((a) => [a.getAttribute("href"), a.textContent]),
  lang: document.documentElement.lang, lastUpdate: document.getElementById("last-update").textContent,
  text: document.body.innerText})"""


async def _open_status_page(browser, base, language, width, height):
    page = await browser.new_page(viewport={"width": width, "height": height})
    try:
        await page.goto(base + "/?lang=" + language, wait_until="load")
        # every device of the demo site drawn with its measured values (a table of values)
        await page.wait_for_function(
            "n => Array.from(document.querySelectorAll('#devices .device')).filter("
            "d => d.querySelector('table.values')).length >= n", arg=len(demo_devices()), timeout=20000)
        await page.wait_for_function("() => document.documentElement.dataset.ready === '1'")
        await page.wait_for_function("() => document.getElementById('who').textContent")
        # what the user sees first, at this viewport
        await page.screenshot(path=shot("status-%s-%dx%d.png" % (language, width, height)))
        who = (await page.text_content("#who"), await page.is_visible("#login-link"), await page.is_visible("#logoff"))
        return await page.evaluate(LAYOUT_PROBE), await page.evaluate(VALUE_ROWS), who, await page.evaluate(WORDS)
    finally:
        await page.close()


def test_status_page_fits_desktop_and_tablet_without_clipping(tmp_path):
    browser_ready()
    from playwright.async_api import async_playwright
    web = web_server()                  # binds port 0

    async def body():
        async with running_gateway(tmp_path / "state", demo_topology(), QUIET, services=[web]) as gw:
            await gw.topology.replace(demo_devices())
            await wait_for(lambda: all(p.cycles >= 2 for p in gw.pollers.values()), guard=30)
            base = "http://127.0.0.1:%d" % web.server.port
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    results = {}
                    for language in LANGUAGES:
                        for width, height in VIEWPORTS:
                            results[(language, width, height)] = await _open_status_page(
                                browser, base, language, width, height)
                    return results
                finally:
                    await browser.close()

    results = asyncio.run(body())
    names = dict((language, set(i18n.text("web.status.measure." + row[registry.KEY], language)
                                for row in registry.MEASUREMENTS)) for language in LANGUAGES)
    for (language, width, height), (layout, values, who, words) in results.items():
        where = "%s %dx%d" % (language, width, height)
        text = lambda key: i18n.text(key, language)       # noqa: E731  (the catalogue's words in this language)
        qualities = dict((text("web.status.quality." + q), q) for q in ("good", "stale", "comm_lost", "not_supported"))
        # nobody logged in: the page reads as the User profile and offers the login, not a Log off
        assert who == (text("web.session.anonymous"), True, False), (where, who)
        # the links a User may follow: the status (this page), Home and the data views (issue 17), Diagnosis;
        # not the configuration nor a password
        assert [href for href, _label in words["links"]] == ANYONE, (where, words["links"])
        assert [label for _href, label in words["links"]] == [text("web.status.nav." + name) for name in (
            "status", "home", "monitor", "alarms", "trends", "diagnosis")], where
        assert words["lang"] == language and words["lastUpdate"].startswith(
            i18n.CATALOGUES[language]["web.status.last_update"].split("{")[0]), where
        assert set(words["headings"]) == {text("web.status." + k) for k in ("measurement", "value", "quality", "age")}
        assert layout["counterTables"] == len(demo_devices()) and layout["counterCells"] > 0, (where, layout)
        assert layout["scrollWidth"] <= layout["innerWidth"], (where, "the page scrolls sideways", layout)
        assert layout["problemCount"] == 0, (where, "cells not readable whole", layout)
        # every value with its quality and age: a quality badge and an age in seconds/minutes, in this language
        assert values, where
        for cells in values:
            assert len(cells) == 4, (where, cells)
            name, value, quality, age = cells
            assert name in names[language], (where, cells)          # the measurement's name in this language
            assert quality in qualities, (where, cells)
            assert value, (where, cells)
            if qualities[quality] in ("good", "stale"):
                unit = "|".join(i18n.CATALOGUES[language]["web.status.unit." + u].replace("{value} ", "")
                                for u in ("s", "min", "h", "d"))
                assert re.fullmatch(r"\d+([.,]\d)? (%s)" % unit, age), (where, cells)
                if language == "fr":
                    assert "." not in age, (where, cells)           # a decimal comma in French
        assert any(qualities[cells[2]] == "good" for cells in values), where
    # French and English differ where the catalogue's words do (the French page is not the English one)
    assert results[("fr", 1920, 1080)][3]["headings"] != results[("en", 1920, 1080)][3]["headings"]


def test_the_pages_offered_follow_the_sessions_profile(tmp_path):
    """GET /api/pages over HTTP: the configuration only for the profiles that may change settings (the door's
    set_settings right, the same check as the settings routes), the password change for profiles with one."""
    web = web_server()

    async def body():
        async with running_gateway(tmp_path / "state", topology_with(), QUIET, services=[web]):
            base = "http://127.0.0.1:%d" % web.server.port
            return dict([(who, await asyncio.to_thread(_pages, base, who))
                         for who in ("anonymous", "user", "advanced", "admin", "cyber")])

    seen = asyncio.run(body())
    for who, pages in seen.items():
        expected = [path for _name, path, needs in navigation.PAGES
                    if needs == "anyone" or (needs == "session" and who != "anonymous")
                    or (needs == "password" and who not in ("anonymous", "user"))
                    or (needs in COMMANDS and who in COMMANDS[needs][0])]
        assert pages == expected, (who, pages)
    # read independently of the navigation's table: who gets the configuration, the certificates, a password
    assert "/settings" in seen["admin"] and "/settings" in seen["cyber"] and "/settings" not in seen["advanced"]
    assert "/security/https" in seen["cyber"] and "/security/https" not in seen["admin"]
    assert seen["anonymous"] == ANYONE and "/password" not in seen["user"]
    assert seen["admin"] != seen["advanced"] != seen["user"]      # the table says something per profile


def _pages(base, who):
    """The paths GET /api/pages offers ``who`` (a profile logged in through the real routes, or nobody)."""
    client = WebClient(base) if who == "anonymous" else web_login(base, who)
    status, answer = client.get("/api/pages")
    assert status == 200, answer
    return [entry["path"] for entry in answer["pages"]]
