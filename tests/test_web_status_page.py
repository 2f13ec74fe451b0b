"""The status page (``GET /``) in a real headless Chromium, driven by Playwright.

The gateway runs the simulated demo site with its web server on a loopback
port; the browser is Debian's ``chromium`` (Makefile TEST_DEBS), driven by
Playwright's async API on the same event loop as the gateway (its own
browser download is never used). At a desktop (1920x1080) and a tablet
(1024x768) viewport the page must not scroll sideways, and every cell of
every table must be fully visible or inside a container that scrolls
horizontally by itself; each value shows its quality and age.

Screenshots of both viewports are saved in the test's tmp directory
(``status-1920x1080.png``, ``status-1024x768.png``) for a human to look at.
"""

import asyncio
import re

from browser_support import CHROMIUM, CHROMIUM_ARGS, browser_ready
from conftest import demo_devices, demo_topology, running_gateway, wait_for, web_server

VIEWPORTS = [(1920, 1080), (1024, 768)]
QUIET = {"alarms.check_s": 3600}

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
  const counters = Array.from(document.querySelectorAll("#devices table")).filter(
      (t) => /Requests/.test(t.textContent) && /Timeouts/.test(t.textContent));
  return Object.assign(page, {
    cells: cells.length, counterTables: counters.length,
    counterCells: counters.reduce((n, t) => n + t.querySelectorAll("th, td").length, 0),
    problems: problems.slice(0, 12), problemCount: problems.length,
  });
}"""

# In the page: the rows of every measured value, as (name, value, quality, age) read from the cells.
VALUE_ROWS = r"""() => Array.from(document.querySelectorAll("#devices table")).filter(
    (t) => /Quality/.test(t.textContent)).flatMap((t) => Array.from(t.querySelectorAll("tr")).slice(1).map(
    (tr) => Array.from(tr.querySelectorAll("td")).map((td) => td.textContent.trim())))"""


async def _open_status_page(browser, base, width, height, shot):
    page = await browser.new_page(viewport={"width": width, "height": height})
    try:
        await page.goto(base + "/", wait_until="load")
        # every device of the demo site drawn with its measured values (a table with a Quality column)
        await page.wait_for_function(
            "n => Array.from(document.querySelectorAll('#devices .device')).filter("
            "d => /Quality/.test(d.textContent)).length >= n", arg=len(demo_devices()), timeout=20000)
        await page.wait_for_function("() => /Last update/.test(document.getElementById('last-update').textContent)")
        await page.wait_for_function("() => document.getElementById('who').textContent")
        await page.screenshot(path=str(shot))             # what the user sees first, at this viewport
        who = (await page.text_content("#who"), await page.is_visible("#login-link"), await page.is_visible("#logoff"))
        return await page.evaluate(LAYOUT_PROBE), await page.evaluate(VALUE_ROWS), who
    finally:
        await page.close()


def test_status_page_fits_desktop_and_tablet_without_clipping(tmp_path):
    browser_ready()
    from playwright.async_api import async_playwright
    web = web_server()                  # binds port 0
    shots = {}

    async def body():
        async with running_gateway(tmp_path / "state", demo_topology(), QUIET, services=[web]) as gw:
            await gw.topology.replace(demo_devices())
            await wait_for(lambda: all(p.cycles >= 2 for p in gw.pollers.values()), guard=30)
            base = "http://127.0.0.1:%d" % web.server.port
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    results = {}
                    for width, height in VIEWPORTS:
                        shot = tmp_path / ("status-%dx%d.png" % (width, height))
                        shots[(width, height)] = shot
                        results[(width, height)] = await _open_status_page(browser, base, width, height, shot)
                    return results
                finally:
                    await browser.close()

    results = asyncio.run(body())
    print("screenshots:", *(str(s) for s in shots.values()))
    for (width, height), (layout, values, who) in results.items():
        where = "%dx%d" % (width, height)
        # nobody logged in: the page reads as the User profile and offers the login, not a Log off
        assert who == ("Not logged in (User profile)", True, False), (where, who)
        assert layout["counterTables"] == len(demo_devices()) and layout["counterCells"] > 0, (where, layout)
        assert layout["scrollWidth"] <= layout["innerWidth"], (where, "the page scrolls sideways", layout)
        assert layout["problemCount"] == 0, (where, "cells not readable whole", layout)
        # every value with its quality and age: a quality badge and an age in seconds/minutes
        assert values, where
        for cells in values:
            assert len(cells) == 4, (where, cells)
            name, value, quality, age = cells
            assert quality in ("good", "stale", "comm lost", "not supported"), (where, cells)
            assert value, (where, cells)
            if quality in ("good", "stale"):
                assert re.fullmatch(r"\d+(\.\d)? (s|min|h|d)", age), (where, cells)
        assert any(cells[2] == "good" for cells in values), where
