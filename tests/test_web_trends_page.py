"""The Trends page (/trends) and the series API, in Debian's Chromium driven by Playwright (issue 17).

One gateway and one browser for the module (``site`` runs the scenario once and keeps what the tests check),
on a ManualClock site as tests/test_export_collect.py: an I-35 (3 loads) and a U-30 whose load curves,
histories and consumption the gateway downloads from the simulated meters over a few 10-minute steps. The
page's chart and data table are read back and compared with the store's own reads and with the simulated
meter's own curve (an independent source); two units give two y scales; a drag zooms, *Back* restores the
range; a favourite saved by Admin reopens the same selection after a reload and is not User's; the API
refuses a request past its bounds in the reader's language. axe-core on the drawn page; screenshots EN/FR.
"""

import asyncio
import datetime
import math

import pytest
from browser_support import AXE, AXE_RUN, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, browser_ready, shot
from conftest import running_gateway, topology_with, web_login, web_server

from board.base import ManualClock
from daemon.runtime.curves import series_name
from daemon.state.topology import devices_from_simulation
from daemon.storage.format import Q_CLOCK_NOT_SET, Q_VALID, Geometry
from daemon.storage.store import Series

READY = "() => document.documentElement.dataset.ready === '1'"
DRAWN = "() => document.getElementById('charts').dataset.state === 'drawn'"
T = 1_700_002_800.0 - 1_700_002_800 % 3600          # an hour boundary (November 2023)
DIGIWARE = [{"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 3, "nominal_w": 45000},
            {"reference": "U-30", "address": 11, "netid": "D5038A"}]
OVERRIDES = {"poll.min_cycle_ms": 300, "poll.backoff_max_s": 1, "alarms.check_s": 3600}
P_POS, Q_POS = series_name("load_curve", "DC85E9", 1, "lc_p_pos"), series_name("load_curve", "DC85E9", 1, "lc_q_pos")
EA_POS = series_name("consumption", "DC85E9", 1, "ea_pos")
DAY, POINTS = int(T - 2 * 86400), 144                # a day of 10-minute points, two days before the clock
GAP, UNCERTAIN = range(40, 43), (10, 11, 100)        # missing points; points whose meter clock was not set
START, END = DAY - 3600, DAY + 86400 + 3600          # the period the page shows
FAVOURITE = "Load 1 powers"
# the table as the page shows it: {series name: {ts: (value text in data-v, quality)}}
TABLE = r"""() => {
  const names = Array.from(document.querySelectorAll("#table-head th[data-name]")).map((th) => th.dataset.name);
  const out = {};
  names.forEach((n) => { out[n] = {}; });
  for (const row of document.querySelectorAll("#table-rows tr")) {
    Array.from(row.querySelectorAll("td")).forEach((td, i) => {
      if (td.dataset.v !== "") out[names[i]][row.dataset.t] = [td.dataset.v, td.dataset.q];
    });
  }
  return out;
}"""
CHARTS = r"""() => state.charts.map((c) => ({
  series: c.series.slice(1).map((s) => s.label), scales: c.series.slice(1).map((s) => s.scale),
  axes: c.axes.slice(1).map((a) => [a.scale, a.label]), x: [c.scales.x.min, c.scales.x.max]}))"""
RANGE = "() => [document.getElementById('range').dataset.min, document.getElementById('range').dataset.max]"


def local_input(ts):
    """A datetime-local field's value of ``ts`` (the browser runs in UTC)."""
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M")


async def open_page(browser, base, profile, language, query=""):
    client = await asyncio.to_thread(web_login, base, profile, language)
    context = await browser.new_context(viewport={"width": 1920, "height": 1080}, timezone_id="UTC",
                                        locale={"en": "en-GB", "fr": "fr-FR"}[language])
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.goto(base + "/trends" + query, wait_until="load")
    try:
        await page.wait_for_function(READY)
    except Exception as exc:
        raise AssertionError("%s; page errors: %s" % (exc, errors)) from None
    return page, client, errors


async def set_period(page, start, end):
    await page.fill("#pane-from", local_input(start))
    await page.fill("#pane-to", local_input(end))
    await page.click("[data-part='apply']")


async def pick(page, names):
    await page.click(".pane-item[data-key='4:1']")
    await page.click("button.category[data-category='measure']")
    for name in names:
        await page.check("#pick-" + name.replace("/", "_"))
        await page.wait_for_function(DRAWN)


async def drag(page, start_fraction, end_fraction):
    box = await page.locator(".u-over").first.bounding_box()
    y = box["y"] + box["height"] / 2
    await page.mouse.move(box["x"] + box["width"] * start_fraction, y)
    await page.mouse.down()
    await page.mouse.move(box["x"] + box["width"] * (start_fraction + end_fraction) / 2, y)
    await page.mouse.move(box["x"] + box["width"] * end_fraction, y)
    await page.mouse.up()


def written_points():
    """{series name: [(ts, value or None, quality code)]}: a day of 10-minute points the test writes into the
    store itself (the independent source the page is compared with): a sine-like power, a gap of three missing
    points, a few points whose meter clock was not set; the energy of each interval for the consumption curve."""
    out = {P_POS: [], Q_POS: [], EA_POS: []}
    for i in range(POINTS):
        ts = DAY + i * 600
        quality = Q_VALID | (Q_CLOCK_NOT_SET if i in UNCERTAIN else 0)
        if i in GAP:
            quality = 0
        power = 20000 + 15000 * math.sin(i / 24.0) + (i % 7) * 0.25
        out[P_POS].append((ts, None if not quality else power, quality))
        out[Q_POS].append((ts, None if not quality else 4000 + 10 * i, quality))
        out[EA_POS].append((ts, 3000 + i, Q_VALID))
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    browser_ready(AXE)
    from playwright.async_api import async_playwright
    base_dir = tmp_path_factory.mktemp("trends")
    clock = ManualClock(T + 1)                   # frozen: the curve service adds nothing to the day written here
    topology = topology_with(DIGIWARE, (), baud=115200)
    web = web_server()
    out = {"written": written_points()}

    async def scenario():
        async with running_gateway(base_dir / "state", topology, OVERRIDES, clock, services=[web],
                                   storage_geometry=Geometry(96, 2000, segments=4, segment_bytes=1 << 20)) as gw:
            await gw.topology.replace(devices_from_simulation(topology))
            store = gw.storage.store
            for name, points in out["written"].items():
                series = Series(name, 600, counter=name == EA_POS)
                for ts, value, quality in points:
                    store.add(series, ts, 0.0 if value is None else value, quality)
            await gw.storage.commit()
            base = "http://127.0.0.1:%d" % web.server.port
            out["stored"] = dict((n, list(store.read(n, START, END).points())) for n in (P_POS, Q_POS))
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    await browse(browser, base, START, END, out)
                except Exception as exc:
                    raise AssertionError("%s; page errors: %s" % (exc, out.get("page_errors"))) from exc
                finally:
                    await browser.close()
            out["api"] = await asyncio.to_thread(api_reads, base, START, END)
    asyncio.run(scenario())
    return out


async def browse(browser, base, start, end, out):
    page, admin, errors = await open_page(browser, base, "admin", "en")
    out["page_errors"] = errors
    await set_period(page, start, end)
    await pick(page, [P_POS, Q_POS])
    await page.check("#show-table")
    out["table"] = await page.evaluate(TABLE)
    out["charts"] = await page.evaluate(CHARTS)
    out["units"] = await page.get_attribute("#charts", "data-units")
    out["step"] = await page.evaluate("() => state.answer.step")
    out["quality_text"] = await page.text_content("#table-rows")
    await page.add_script_tag(path=AXE)
    out["axe"] = await page.evaluate(AXE_RUN)
    out["probe"] = await page.evaluate(PAGE_PROBE)
    await page.screenshot(path=shot("trends-en-1920x1080.png"), full_page=True)
    # zoom into the middle, then back
    out["range_before"] = await page.evaluate(RANGE)
    out["rows_before"] = await page.locator("#table-rows tr").count()
    await drag(page, 0.3, 0.7)
    await page.wait_for_function("() => !document.getElementById('zoom-back').disabled")
    out["range_zoomed"] = await page.evaluate(RANGE)
    out["rows_zoomed"] = await page.locator("#table-rows tr").count()
    out["zoom_text"] = await page.text_content("#range")
    await page.click("#zoom-back")
    await page.wait_for_function("() => document.getElementById('zoom-back').disabled")
    out["range_after"] = await page.evaluate(RANGE)
    out["rows_after"] = await page.locator("#table-rows tr").count()
    # stacked: one chart per unit
    await page.select_option("#mode", "stack")
    await page.wait_for_function("() => document.querySelectorAll('#charts .chart').length === 2")
    out["stacked"] = await page.evaluate(CHARTS)
    await page.screenshot(path=shot("trends-stacked-en-1920x1080.png"), full_page=True)
    # a favourite, then a reload: the same selection
    await page.fill("#fav-name", FAVOURITE)
    await page.click("#fav-save")
    await page.wait_for_selector("#message.ok")
    out["saved_message"] = await page.text_content("#message")
    await page.fill("#fav-name", "")
    await page.click("#fav-save")
    await page.wait_for_function("() => document.getElementById('fav-error').textContent !== ''")
    out["unnamed_refused"] = await page.text_content("#fav-error")
    await page.goto(base + "/trends", wait_until="load")
    await page.wait_for_function(READY)
    out["after_reload_empty"] = await page.evaluate("() => state.selection.length")
    await page.select_option("#fav-list", FAVOURITE)
    await page.click("#fav-open")
    await page.wait_for_function(DRAWN)
    out["reopened"] = {"selection": await page.evaluate("() => state.selection"),
                       "mode": await page.input_value("#mode"), "table": await page.is_checked("#show-table"),
                       "from": await page.input_value("#pane-from"), "to": await page.input_value("#pane-to"),
                       "charts": await page.evaluate(CHARTS), "table_data": await page.evaluate(TABLE)}
    out["errors"] = list(errors)
    await page.context.close()
    # User sees no Admin favourite
    page, user, _ = await open_page(browser, base, "user", "en")
    out["user_list"] = await page.evaluate("() => Array.from(document.querySelectorAll('#fav-list option'))"
                                           ".map((o) => o.value)")
    out["user_api"] = await asyncio.to_thread(user.get, "/api/trends/favourites")
    await page.context.close()
    # French: the favourite opened from its address
    page, _french, errors = await open_page(browser, base, "admin", "fr", "?favourite=" + FAVOURITE)
    await page.wait_for_function(DRAWN)
    out["fr_text"] = await page.evaluate("() => document.body.innerText")
    out["fr_selection"] = await page.evaluate("() => state.selection")
    await page.add_script_tag(path=AXE)
    out["fr_axe"] = await page.evaluate(AXE_RUN)
    await page.screenshot(path=shot("trends-fr-1920x1080.png"), full_page=True)
    await page.set_viewport_size({"width": 768, "height": 1024})
    await page.wait_for_timeout(300)
    out["narrow"] = await page.evaluate(PAGE_PROBE)
    await page.screenshot(path=shot("trends-fr-768.png"), full_page=True)
    out["fr_errors"] = list(errors)
    await page.context.close()


def api_reads(base, start, end):
    out = {}
    user = web_login(base, "user", "en")
    out["catalogue"] = user.get("/api/series/catalogue")
    names = ",".join([P_POS, Q_POS])
    out["hour"] = user.get("/api/series?names=%s&from=%d&to=%d&step=hour" % (names, start, end))
    many = ",".join(series_name("load_curve", "DC85E9", load, key) for load in (1, 2, 3)
                    for key in ("lc_p_pos", "lc_p_neg", "lc_q_pos", "lc_q_neg", "lc_s"))
    out["too_many_names"] = user.get("/api/series?names=%s&from=%d&to=%d&step=hour" % (many, start, end))
    out["too_many_points"] = user.get("/api/series?names=%s&from=%d&to=%d&step=raw&lang=fr" % (names, 0, end))
    out["unknown"] = user.get("/api/series?names=nothing/here/0/x&from=%d&to=%d&step=raw" % (start, end))
    out["bad_step"] = user.get("/api/series?names=%s&from=%d&to=%d&step=year" % (names, start, end))
    return out


def test_the_chart_and_its_table_are_the_stored_points(site):
    assert site["step"] == "raw"                          # a day: every recorded point
    for name in (P_POS, Q_POS):
        written = site["written"][name]
        assert [(t, v is None) for t, v, _q in site["stored"][name]] == [(t, v is None) for t, v, _q in written]
        shown = site["table"][name]
        assert sorted(shown) == sorted(str(t) for t, _v, _q in written)
        for t, value, quality in written:
            text, q = shown[str(t)]
            if value is None:
                assert (text, q) == ("null", "missing")          # a gap, said in the table
            else:
                assert abs(float(text) - value) <= 1e-6 * abs(value)            # float32 in the store
                assert q == ("clock_not_set" if quality & Q_CLOCK_NOT_SET else "good")
    assert "meter clock not set" in site["quality_text"] and "missing" in site["quality_text"]


def test_two_units_give_two_scales_overlaid_and_two_charts_stacked(site):
    (chart,) = site["charts"]
    assert len(chart["series"]) == 2 and chart["scales"][0] != chart["scales"][1]
    assert sorted(label for _scale, label in chart["axes"]) == ["W", "var"]
    assert site["units"] == "2"
    assert [c["axes"][0][1] for c in site["stacked"]] == ["W", "var"]
    assert site["stacked"][0]["x"] == site["stacked"][1]["x"]           # one time axis


def test_a_zoom_then_back_restores_the_range(site):
    before, zoomed, after = site["range_before"], site["range_zoomed"], site["range_after"]
    assert int(before[0]) < int(zoomed[0]) < int(zoomed[1]) < int(before[1])
    assert site["rows_before"] > site["rows_zoomed"] > 0
    assert "Zoomed" in site["zoom_text"]
    assert after == before and site["rows_after"] == site["rows_before"]


def test_a_favourite_reopens_the_same_selection_after_a_reload_and_is_not_another_profiles(site):
    assert FAVOURITE in site["saved_message"]
    assert site["unnamed_refused"] == "Give the favourite a name."
    assert site["after_reload_empty"] == 0
    again = site["reopened"]
    assert again["selection"] == [P_POS, Q_POS] and again["mode"] == "stack" and again["table"] is True
    assert (again["from"], again["to"]) == (local_input(START), local_input(END))
    assert again["table_data"] == site["table"]
    assert site["user_list"] == [""]
    assert site["user_api"] == (200, {"favourites": []})
    assert site["fr_selection"] == [P_POS, Q_POS]
    # the refused unnamed favourite is the only failed request (Chromium logs its 400)
    assert [e for e in site["errors"] if "status of 400" not in e] == [] and site["fr_errors"] == []


def test_the_series_api_aggregates_and_refuses_past_its_bounds(site):
    api = site["api"]
    status, catalogue = api["catalogue"]
    assert status == 200 and catalogue["max_names"] == 12
    entry = next(e for e in catalogue["series"] if e["name"] == P_POS)
    assert (entry["category"], entry["unit"], entry["address"], entry["load"]) == ("measure", "W", 4, 1)
    assert {e["category"] for e in catalogue["series"]} == {"measure", "meter"}
    status, answer = api["hour"]
    assert status == 200 and answer["step"] == "hour"
    hours = answer["series"][0]
    # the mean of each hour, from the store's raw points (computed here, not by the store's aggregate)
    raw = [(t, v) for t, v, _q in site["stored"][P_POS] if v is not None]
    for t, mean, low, high, q in zip(hours["t"], hours["v"], hours["min"], hours["max"], hours["q"], strict=True):
        inside = [v for ts, v in raw if t <= ts < t + 3600]
        if not inside:
            assert mean is None and q == "missing"
            continue
        assert abs(mean - sum(inside) / len(inside)) < 1e-3 * max(1.0, abs(mean))
        assert (low, high) == (pytest.approx(min(inside), rel=1e-6), pytest.approx(max(inside), rel=1e-6))
        assert q == ("good" if len(inside) == 6 else "partial")
    status, answer = api["too_many_names"]
    assert status == 400 and answer["messages"][0]["message"] == "At most 12 data on one chart: remove one first."
    status, answer = api["too_many_points"]
    assert status == 400 and "choisissez une résolution plus grossière" in answer["messages"][0]["message"]
    assert api["unknown"][0] == 404 and api["bad_step"][0] == 400


def test_the_page_is_accessible_and_fits(site):
    assert site["axe"] == [] and site["fr_axe"] == []
    assert site["probe"]["unlabelled"] == [] and site["narrow"]["unlabelled"] == []
    assert site["narrow"]["scrollWidth"] <= site["narrow"]["innerWidth"]
    assert "Tendances" in site["fr_text"] and "Favoris" in site["fr_text"]
