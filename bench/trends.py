"""Trends bench (issue 17): a year of one hourly series, and of ten overlaid, from request to drawn chart.

    PYTHONPATH=. .venv/bin/python -m bench.trends [--runs N] [--json]

A Gateway on a small simulated site (an I-35 with 3 loads: 15 load-curve series) whose store holds a leap year
of hourly points (8,784 per series) written straight into it (curve downloads not started, so the store holds
exactly that year); its web application on a loopback port; Debian's Chromium driven by Playwright opens
/trends as User with a favourite of the year (one series, then ten), and the page's own ``load()`` is run
``--runs`` times (7 by default, median): GET /api/series (the door reads the store in the executor), JSON
parsed, aligned, uPlot's chart drawn, to the next animation frame (the chart is on the canvas). Each run asks
the gateway again (no cache).

References measured in the same run, in the same page: "fetch": the same GET /api/series and its JSON parsed,
nothing drawn (what the network and the gateway cost); "inline": the same number of points drawn by uPlot from
an array already in the page (what drawing alone costs). Printed: each median, the ratio to each reference,
and PASS/FAIL against the issue's targets (one series <= 300 ms, ten <= 1 s; the exit status is 1 on a FAIL).
Also the door's own time for the same answer (Door.trend_series in this process: store read, compaction).
"""

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from board.sim import SimBoard  # noqa: E402
from daemon.gateway import Gateway  # noqa: E402
from daemon.runtime.curves import series_name  # noqa: E402
from daemon.security.rights import Caller  # noqa: E402
from daemon.state.topology import devices_from_simulation  # noqa: E402
from daemon.storage.format import Geometry  # noqa: E402
from daemon.storage.store import Series  # noqa: E402
from webconfig.app import make_app  # noqa: E402
from webconfig.server import HttpServer  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
HOURS = 8784                                   # a leap year of hours
TARGETS_MS = {1: 300.0, 10: 1000.0}            # issue 17: one series, ten series overlaid
SITE = {"buses": {"digiware": {"baud": 115200, "turnaround_ms": 2, "meters": [
    {"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 3, "nominal_w": 45000}]},
    "rs485": {"baud": 38400, "turnaround_ms": 2, "meters": []}}}
NAMES = [series_name("load_curve", "DC85E9", load, key) for load in (1, 2, 3)
         for key in ("lc_p_pos", "lc_q_pos", "lc_s", "lc_p_neg", "lc_q_neg")][:10]

# In the page: the page's own load() (request, JSON, alignment, uPlot) until the next frame, ``runs`` times.
MEASURE_PAGE = r"""async (runs) => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const out = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await load();
    await frame();
    out.push(performance.now() - t0);
  }
  return {times: out, points: state.answer.series.reduce((n, s) => n + s.t.length, 0),
          step: state.answer.step, drawn: document.getElementById('charts').dataset.state};
}"""
# Reference 1: the same request and its JSON, nothing drawn.
MEASURE_FETCH = r"""async (runs) => {
  const url = "/api/series?names=" + encodeURIComponent(state.selection.join(",")) + "&from=" + state.period.from +
    "&to=" + state.period.to + "&step=" + state.answer.step;
  const out = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const answer = await (await fetch(url, {cache: "no-store", credentials: "same-origin"})).json();
    if (!answer.series) throw new Error("no series");
    out.push(performance.now() - t0);
  }
  return out;
}"""
# Reference 2: as many points drawn by uPlot from arrays already in the page (one scale per unit as the page).
MEASURE_INLINE = r"""async (runs) => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const series = state.answer.series;
  const data = [series[0].t.slice()].concat(series.map((s) => s.v.slice()));
  const box = document.createElement("div");
  document.body.append(box);
  const opts = {width: 1400, height: 380, scales: {x: {time: true}},
                series: [{}].concat(series.map((s, i) => ({label: s.name, stroke: "#0b5cad", scale: "y" + (i % 3)}))),
                axes: [{}, {scale: "y0"}, {scale: "y1", side: 1}, {scale: "y2", side: 1}]};
  const out = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const chart = new uPlot(opts, data, box);
    await frame();
    out.push(performance.now() - t0);
    chart.destroy();
  }
  box.remove();
  return out;
}"""


def fill(store, start):
    """A leap year of hourly points of every series of NAMES: a daily profile times a per-series size."""
    made = [Series(name, 3600) for name in NAMES]
    for k in range(HOURS):
        shape = 0.55 + 0.45 * math.sin(math.pi * (k % 24 - 6) / 24.0) ** 2
        store.add_row(made, start + k * 3600, [round(2000.0 * (1 + i) * shape * (1 + (k % 7) / 40.0), 1)
                                                for i in range(len(made))])
        if k % 24 == 23:
            store.commit()
    store.commit()


async def _not_started():
    """The curve service's start, replaced: no download may add points to the year written."""


def _post(base, path, body, cookie=None, csrf=None):
    request = urllib.request.Request(base + path, json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    if cookie:
        request.add_header("Cookie", cookie)
    if csrf:
        request.add_header("X-CSRF-Token", csrf)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers, json.loads(response.read())


def login_with_favourites(base, start, end):
    """A User session (no password, SPEC §7.1) with the favourites "one" and "ten"; its cookie value."""
    headers, answer = _post(base, "/api/login", {"profile": "user", "password": "", "language": "en"})
    cookie = headers["Set-Cookie"].split(";")[0]
    for name, count in (("one", 1), ("ten", 10)):
        _post(base, "/api/trends/favourites", {"name": name, "series": NAMES[:count], "step": "auto",
                                               "period": {"preset": "custom", "from": start, "to": end}},
              cookie, answer["csrf"])
    return cookie.split("=", 1)[1]


async def browser_figures(base, session, runs):
    from playwright.async_api import async_playwright
    out = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1920, "height": 1080}, timezone_id="UTC")
            await context.add_cookies([{"name": "m70_session", "value": session, "url": base}])
            page = await context.new_page()
            for name, count in (("one", 1), ("ten", 10)):
                await page.goto(base + "/trends?favourite=" + name, wait_until="load")
                await page.wait_for_function("() => document.getElementById('charts').dataset.state === 'drawn'"
                                             " && state.answer && state.answer.series.length === %d" % count,
                                             timeout=60000)
                page_run = await page.evaluate(MEASURE_PAGE, runs)
                out[count] = {"page": page_run["times"], "points": page_run["points"], "step": page_run["step"],
                              "drawn": page_run["drawn"], "fetch": await page.evaluate(MEASURE_FETCH, runs),
                              "inline": await page.evaluate(MEASURE_INLINE, runs)}
        finally:
            await browser.close()
    return out


async def measure(runs):
    with tempfile.TemporaryDirectory(prefix="bench-trends-") as state:
        gateway = Gateway(SimBoard(topology=SITE), state, {"alarms.check_s": 3600},
                          storage_geometry=Geometry(len(NAMES) + 8, HOURS))
        gateway.curves.start = _not_started
        server = HttpServer(make_app(gateway.door(Caller("web", "user"))), host="127.0.0.1", port=0)
        gateway.services.append(server)
        await gateway.start()
        try:
            await gateway.topology.replace(devices_from_simulation(SITE))
            now = int(gateway.clock.time())
            end = now - now % 3600
            start = end - HOURS * 3600
            fill(gateway.storage.store, start)
            base = "http://127.0.0.1:%d" % server.port
            session = await asyncio.to_thread(login_with_favourites, base, start, end)
            door = gateway.door(Caller("web", "user"))
            door_ms = {}
            for count in (1, 10):
                times = []
                for _ in range(runs):
                    started = time.perf_counter()
                    answer = await door.trend_series(NAMES[:count], start, end, "raw")
                    times.append((time.perf_counter() - started) * 1000)
                door_ms[count] = times
                assert sum(len(s["t"]) for s in answer["series"]) == count * HOURS
            figures = await browser_figures(base, session, runs)
            for count in (1, 10):
                figures[count]["door"] = door_ms[count]
            return figures
        finally:
            await gateway.stop()


def report(figures, runs):
    print("Trends bench: a leap year of hourly points (%d per series), %d runs, median ms (Python %s, %s)"
          % (HOURS, runs, platform.python_version(), platform.machine()))
    failed = False
    for count, f in sorted(figures.items()):
        page, fetch, inline, door = (statistics.median(f[k]) for k in ("page", "fetch", "inline", "door"))
        target = TARGETS_MS[count]
        verdict = "PASS" if page <= target and f["drawn"] == "drawn" else "FAIL"
        failed |= verdict == "FAIL"
        print("  %2d series, %6d points (step %s): request to drawn chart %7.1f ms  [target <= %.0f ms: %s]"
              % (count, f["points"], f["step"], page, target, verdict))
        print("      reference fetch+JSON alone %7.1f ms (ratio %.2f); uPlot from an inline array %7.1f ms "
              "(ratio %.2f); door.trend_series %7.1f ms" % (fetch, page / fetch, inline, page / inline, door))
    return failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.runs))
    if args.json:
        print(json.dumps(dict((str(k), v) for k, v in figures.items()), indent=1))
    sys.exit(1 if report(figures, args.runs) else 0)


if __name__ == "__main__":
    main()
