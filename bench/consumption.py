"""Consumption bench (issue 17): the drill-down year -> month -> week -> day -> hour of the reference site's 192
circuits, each step from the click to the drawn bars.

    PYTHONPATH=. .venv/bin/python -m bench.consumption [--runs N] [--json]

A Gateway on the reference site at the gateway's cap (SPEC §1: 32 devices, 192 circuits): the reference site's
Digiware bus (board/topologies/reference32.json, 38400 baud) with 32 DIRIS I-60 of 6 loads each (the reference file
itself has 48 loads), all polling as in production, whose store holds a leap year of hourly consumption points
(Ea+, 8,784 per circuit: 1.7 million points) written straight into it (curve downloads not started, so the store
holds exactly that year); its web application on a loopback port; Debian's Chromium driven by Playwright opens
/consumption as User, organised by fluid with the "electricity" group selected (the 192 circuits) over that year.
Each run, in the page: a click on a full month's bar (the month's weeks drawn), on a full week (its days), on a day
(its hours), then on the breadcrumb's first step (the year's months again: the whole year of 192 series read and
summed by the door); each measured from the click's dispatch to the next animation frame after the bars say
"drawn". Medians of ``--runs`` runs (5 by default); no cache anywhere (each click asks the gateway again).

References measured in the same run: "fetch": the same GET /api/consumption and its JSON parsed in the page,
nothing drawn; "door": Door.consumption in this process (store reads and sums in the executor). Printed: each
step's median, its ratio to the 500 ms target and to the fetch reference, PASS/FAIL (exit status 1 on a FAIL).
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

from bench.common import load_reference  # noqa: E402
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
TARGET_MS = 500.0                              # issue 17: each drill-down step
STEPS = ("month", "week", "day", "year")       # what each measured click draws: a month's weeks ... the year
# The click on a bucket (``pick``: "good" the longest complete bar, "crumb" the breadcrumb's first step) to the
# next animation frame after the bars are drawn at the level expected.
MEASURE_CLICK = r"""async ([pick, level]) => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  const bars = document.getElementById("bars");
  let target;
  if (pick === "crumb") target = document.querySelector("#crumb-list button[data-level='0']");
  else {
    let i = 0, longest = -1;                 // the longest complete bar (a month's first week may be one day)
    state.answer.buckets.forEach(([b0, b1], k) => {
      if (state.view.foot.q[k] === "good" && b1 - b0 > longest) { i = k; longest = b1 - b0; }
    });
    target = document.querySelector("#bars g.bucket[data-i='" + i + "']");
  }
  const t0 = performance.now();
  target.dispatchEvent(new MouseEvent("click", {bubbles: true}));
  while (!(bars.dataset.state === "drawn" && bars.dataset.level === String(level))) await frame();
  await frame();
  return {ms: performance.now() - t0, step: state.answer.step, bars: state.answer.buckets.length,
          loads: state.answer.loads.length};
}"""
# Reference: the request the page made for the level now drawn, and its JSON, nothing drawn.
MEASURE_FETCH = r"""async () => {
  const level = state.levels[state.levels.length - 1];
  const url = "/api/consumption?" + state.selection.query + "&from=" + level.from + "&to=" + level.to + "&step=" +
    level.step + "&data=" + state.key;
  const t0 = performance.now();
  const answer = await (await fetch(url, {cache: "no-store", credentials: "same-origin"})).json();
  if (!answer.loads) throw new Error("no loads");
  return performance.now() - t0;
}"""


def cap_site():
    """The reference site's Digiware bus carrying 32 I-60 of 6 loads: 192 circuits, the gateway's cap."""
    site = load_reference()
    bus = dict(site["buses"]["digiware"], meters=[
        {"reference": "I-60", "address": 2 + n, "netid": "DC%04X" % (0x8600 + n), "loads": 6,
         "nominal_w": 30000 + 1000 * n} for n in range(32)])
    return {"buses": {"digiware": bus, "rs485": dict(site["buses"]["rs485"], meters=[])}}


def fill(store, circuits, start):
    """A leap year of hourly Ea+ points for every circuit: a daily profile times a per-circuit size (Wh)."""
    made = [Series(series_name("consumption", uid, load, "ea_pos"), 3600, counter=True) for uid, load in circuits]
    for k in range(HOURS):
        shape = 0.55 + 0.45 * math.sin(math.pi * (k % 24 - 6) / 24.0) ** 2
        store.add_row(made, start + k * 3600, [float(round(800.0 * (1 + i % 9) * shape)) for i in range(len(made))])
        if k % 24 == 23:
            store.commit()
    store.commit()


async def _not_started():
    """The curve service's start, replaced: no download may add points to the year written."""


def login(base):
    request = urllib.request.Request(base + "/api/login", json.dumps({"profile": "user", "password": "",
                                                                      "language": "en"}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]


async def browser_figures(base, session, start, end, runs):
    from playwright.async_api import async_playwright
    out = dict((step, {"page": [], "fetch": []}) for step in STEPS)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1920, "height": 1080}, timezone_id="UTC")
            await context.add_cookies([{"name": "m70_session", "value": session, "url": base}])
            page = await context.new_page()
            await page.goto(base + "/consumption?by=fluid&select=g:electricity&from=%d&to=%d" % (start, end),
                            wait_until="load")
            await page.wait_for_function("() => { const b = document.getElementById('bars'); return b.dataset.state"
                                         " === 'drawn' && b.dataset.level === '1' && state.answer.loads.length"
                                         " === 192; }", timeout=120000)
            for _ in range(runs):
                for level, (step, pick) in enumerate(zip(STEPS, ("good", "good", "good", "crumb"), strict=True)):
                    got = await page.evaluate(MEASURE_CLICK, [pick, 1 if step == "year" else level + 2])
                    out[step]["page"].append(got["ms"])
                    out[step].update(bars=got["bars"], loads=got["loads"], drawn=got["step"])
                    out[step]["fetch"].append(await page.evaluate(MEASURE_FETCH))
        finally:
            await browser.close()
    return out


async def measure(runs):
    topology = cap_site()
    with tempfile.TemporaryDirectory(prefix="bench-consumption-") as state:
        devices = devices_from_simulation(topology)
        circuits = [(d.uid, x["load"]) for d in devices for x in d.loads]
        gateway = Gateway(SimBoard(topology=topology), state, {"alarms.check_s": 3600},
                          storage_geometry=Geometry(len(circuits) + 16, HOURS))
        gateway.curves.start = _not_started
        server = HttpServer(make_app(gateway.door(Caller("web", "user"))), host="127.0.0.1", port=0)
        gateway.services.append(server)
        await gateway.start()
        try:
            await gateway.topology.replace(devices)
            now = int(gateway.clock.time())
            end = now - now % 3600
            start = end - HOURS * 3600
            fill(gateway.storage.store, circuits, start)
            base = "http://127.0.0.1:%d" % server.port
            session = await asyncio.to_thread(login, base)
            door = gateway.door(Caller("web", "user"))
            keys = ["%d:%d" % (d.address, x["load"]) for d in devices for x in d.loads]
            door_ms = []
            for _ in range(runs):
                started = time.perf_counter()
                answer = await door.consumption({"circuits": keys}, start, end, "month")
                door_ms.append((time.perf_counter() - started) * 1000)
            assert len(answer["loads"]) == len(circuits) == 192
            figures = await browser_figures(base, session, start, end, runs)
            figures["year"]["door"] = door_ms
            return figures
        finally:
            await gateway.stop()


def report(figures, runs):
    print("Consumption bench: 192 circuits, a leap year of hourly points (%d each), %d runs, median ms "
          "(Python %s, %s)" % (HOURS, runs, platform.python_version(), platform.machine()))
    failed = False
    for step in STEPS:
        f = figures[step]
        page, fetch = statistics.median(f["page"]), statistics.median(f["fetch"])
        verdict = "PASS" if page <= TARGET_MS else "FAIL"
        failed |= verdict == "FAIL"
        print("  click on a %-5s -> %3d %-5s bars x %d loads: click to drawn %7.1f ms  (ratio to the %.0f ms "
              "target %.2f: %s)" % ({"year": "crumb"}.get(step, step), f["bars"], f["drawn"], f["loads"], page,
                                    TARGET_MS, page / TARGET_MS, verdict))
        print("      reference fetch+JSON alone %7.1f ms (ratio %.2f)%s" % (
            fetch, page / fetch, "; door.consumption %7.1f ms" % statistics.median(f["door"]) if "door" in f else ""))
    return failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.runs))
    if args.json:
        print(json.dumps(figures, indent=1))
    sys.exit(1 if report(figures, args.runs) else 0)


if __name__ == "__main__":
    main()
