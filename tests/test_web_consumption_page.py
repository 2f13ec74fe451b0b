"""The Consumption page (/consumption) and GET /api/consumption, in Debian's Chromium driven by Playwright (issue 17).

One gateway and one browser for the module (``site`` runs the scenario once and keeps what the tests check): an
I-35 with 3 loads whose consumption curves (10-minute Ea+ points) the test writes straight into the store for
the 45 days before a frozen clock, with a gap of a few hours; the gateway's local time is UTC+1 (the browser
runs in UTC: the buckets are the gateway's). The expected bar values are summed here from the points written,
in UTC+1 calendar buckets made with ``datetime`` (an independent source, not the gateway's bucket code). The
page is driven as a reader would: the year's bars, a click on October, on a week, on a day, on an hour (the
integration period), back up by the breadcrumb; a hierarchy whose main node is metered by load 1 with loads 2
and 3 under it shows the non-measured point = 1 - (2 + 3); hiding a load lowers the total by its own; the CSV
downloaded holds the table shown (and defuses a load named like a formula); malformed queries get a 400 with a
message. axe-core on the drawn page; screenshots EN/FR at 1920 and 768 px wide.
"""

import asyncio
import csv
import datetime
import io

import pytest
from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, axe, browser_ready, shot
from conftest import running_gateway, topology_with, web_login, web_server

from board.base import ManualClock
from daemon.runtime.curves import series_name
from daemon.security.rights import Caller
from daemon.state.topology import devices_from_simulation
from daemon.storage.format import Q_VALID, Geometry
from daemon.storage.store import Series

T = 1_700_002_800 - 1_700_002_800 % 3600              # an hour boundary: 2023-11-14 23:00 UTC
OFFSET = 3600                                          # the gateway's local time: UTC+1
TZ = datetime.timezone(datetime.timedelta(seconds=OFFSET))
PERIOD = 600
FIRST = T - 47 * 86400                                 # 47 days of 10-minute points before the clock
YEAR = tuple(int(datetime.datetime(year, 1, 1, tzinfo=TZ).timestamp()) for year in (2023, 2024))   # 2023, local
GAP_DAY = datetime.datetime(2023, 10, 18, tzinfo=TZ)   # points missing from 10:20 to 13:00 local that day
GAP = (int(GAP_DAY.timestamp()) + 10 * 3600 + 1200, int(GAP_DAY.timestamp()) + 13 * 3600)
DIGIWARE = [{"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 3, "nominal_w": 45000},
            {"reference": "U-30", "address": 11, "netid": "D5038A"}]
OVERRIDES = {"poll.min_cycle_ms": 300, "poll.backoff_max_s": 1, "alarms.check_s": 3600,
             "storage.consumption_period_min": 10, "time.utc_offset_min": OFFSET // 60}
FORMULA_NAME = '=SUM(A1); "north"'                     # load 3's name: a formula, a separator and quotes
READY = "() => document.documentElement.dataset.ready === '1'"
STEPS = ["month", "week", "day", "hour", "period"]
# the table as the page shows it: {row id: [data-v of each cell after the load's name]}, the head's bucket starts
TABLE = r"""() => {
  const rows = {};
  for (const tr of document.querySelectorAll("#table-rows tr, #table-foot tr")) {
    rows[tr.dataset.id] = {name: tr.querySelector("th").textContent,
                           cells: Array.from(tr.querySelectorAll("td")).map((td) => td.dataset.v !== undefined
                             ? td.dataset.v : td.dataset.q),
                           q: Array.from(tr.querySelectorAll("td")).map((td) => td.dataset.q || "")};
  }
  const starts = Array.from(document.querySelectorAll("#table-head th[data-t0]")).map((th) => Number(th.dataset.t0));
  return {rows, starts, unit: state.view.unit.name, decimals: state.view.unit.decimals, step: state.answer.step,
          total: document.getElementById("grand-total").dataset.v, level: state.levels.length,
          crumbs: Array.from(document.querySelectorAll("#crumb-list li")).map((li) => li.textContent)};
}"""


def value(series, i):
    """The energy (Wh) of point ``i`` of load ``series`` (1, 2, 3): load 1 feeds more than 2 and 3 together."""
    return {1: 500 + i % 37, 2: 100 + i % 11, 3: 50 + 2 * (i % 5)}[series]


def written():
    """{load: [(ts, Wh)]}: the points the test writes (none inside GAP)."""
    out = {1: [], 2: [], 3: []}
    for i in range((T - FIRST) // PERIOD):
        ts = FIRST + i * PERIOD
        if GAP[0] <= ts < GAP[1]:
            continue
        for load in out:
            out[load].append((ts, value(load, i)))
    return out


def local_buckets(step, start, end):
    """[(start, end)] of ``step`` in UTC+1, clipped to [start, end), by calendar arithmetic."""
    out, t = [], start
    while t < end:
        d = datetime.datetime.fromtimestamp(t, TZ)
        if step == "month":
            b0 = d.replace(day=1, hour=0, minute=0, second=0)
            b1 = b0.replace(year=b0.year + 1, month=1) if b0.month == 12 else b0.replace(month=b0.month + 1)
        elif step == "week":
            b0 = (d - datetime.timedelta(days=d.weekday())).replace(hour=0, minute=0, second=0)
            b1 = b0 + datetime.timedelta(days=7)
        elif step == "day":
            b0 = d.replace(hour=0, minute=0, second=0)
            b1 = b0 + datetime.timedelta(days=1)
        elif step == "hour":
            b0 = d.replace(minute=0, second=0)
            b1 = b0 + datetime.timedelta(hours=1)
        else:
            b0 = d.replace(minute=d.minute - d.minute % 10, second=0)
            b1 = b0 + datetime.timedelta(minutes=10)
        b0, b1 = int(b0.timestamp()), int(b1.timestamp())
        out.append((max(b0, start), min(b1, end)))
        t = b1
    return out


def expected(points, buckets):
    """[(sum in Wh or None, quality)] of ``points`` per bucket: good when every 10 minutes has its point."""
    out = []
    for b0, b1 in buckets:
        inside = [v for ts, v in points if b0 <= ts < b1]
        slots = len(range(b0 - b0 % PERIOD + (PERIOD if b0 % PERIOD else 0), b1, PERIOD))
        out.append((sum(inside) if inside else None,
                    "missing" if not inside else "good" if len(inside) == slots else "partial"))
    return out


def close(shown, wh, decimals, factor=1000.0):
    return shown == "" if wh is None else abs(float(shown) - wh / factor) <= 0.51 * 10 ** -decimals


async def open_page(browser, base, language, width=1920, query=""):
    client = await asyncio.to_thread(web_login, base, "user", language)
    context = await browser.new_context(viewport={"width": width, "height": 1080}, timezone_id="UTC",
                                        locale={"en": "en-GB", "fr": "fr-FR"}[language], accept_downloads=True)
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.goto(base + "/consumption" + query, wait_until="load")
    try:
        await page.wait_for_function(READY)
        await drawn(page, 1)
    except Exception as exc:
        raise AssertionError("%s; page errors: %s" % (exc, errors)) from None
    return page, errors


async def drawn(page, level):
    await page.wait_for_function("(level) => { const b = document.getElementById('bars'); return b.dataset.state"
                                 " === 'drawn' && b.dataset.level === String(level); }", arg=level)


async def drill(page, index, level):
    await page.click("#bars g.bucket[data-i='%d']" % index)
    await drawn(page, level)
    return await page.evaluate(TABLE)


def bucket_index(table, ts):
    return max(i for i, start in enumerate(table["starts"]) if start <= ts)


async def browse(browser, base, out):
    # by usage: the I-35's three loads (one usage group); the year 2023 in the gateway's local time
    page, errors = await open_page(browser, base, "en", query="?by=usage&from=%d&to=%d" % YEAR)
    out["errors"] = errors
    levels = [await page.evaluate(TABLE)]
    target = int(GAP_DAY.timestamp()) + 11 * 3600          # inside the gap's second hour (11:00 local)
    for level in range(2, 6):
        i = bucket_index(levels[-1], target)
        levels.append(await drill(page, i, level))
    out["levels"] = levels
    out["finest_drill"] = await page.locator("#bars g.bucket.drill").count()
    out["axe"] = await axe(page)
    out["probe"] = await page.evaluate(PAGE_PROBE)
    await page.screenshot(path=shot("consumption-hour-en-1920.png"), full_page=True)
    await page.click("#crumb-list button[data-level='0']")
    await drawn(page, 1)
    out["back"] = await page.evaluate(TABLE)
    await page.focus("#bars g.bucket.drill[data-i='9']")          # October, from the keyboard
    await page.keyboard.press("Enter")
    await drawn(page, 2)
    out["keyboard"] = await page.evaluate(TABLE)
    await page.click("#crumb-list button[data-level='0']")
    await drawn(page, 1)
    await page.screenshot(path=shot("consumption-year-en-1920.png"), full_page=True)
    # hide load 2: the total drops by its own
    before = await page.evaluate(TABLE)
    await page.uncheck("#toggles input[data-id='4:2']")
    await page.wait_for_function("() => !document.querySelector(\"#table-rows tr[data-id='4:2']\")")
    out["toggle"] = (before, await page.evaluate(TABLE))
    # the CSV of what is shown
    async with page.expect_download() as info:
        await page.click("#csv")
    download = await info.value
    with open(await download.path(), encoding="utf-8", newline="") as handle:
        out["csv"] = handle.read()
    out["csv_table"] = await page.evaluate(TABLE)
    # the hierarchy (the default organisation once one exists): its main node
    await page.select_option("#pane-by", "hierarchy")
    await page.wait_for_selector(".pane-item.node")
    await page.click(".pane-item.node")
    await page.wait_for_function("() => state.answer && state.answer.node && "
                                 "document.getElementById('bars').dataset.state === 'drawn'")
    out["hierarchy"] = await page.evaluate(TABLE)
    out["node_line"] = await page.text_content("#node-line")
    out["hierarchy_axe"] = await axe(page)
    await page.screenshot(path=shot("consumption-hierarchy-en-1920.png"), full_page=True)
    for language in ("en", "fr"):
        for width in (1920, 768):
            if (language, width) == ("en", 1920):
                continue
            other, other_errors = await open_page(browser, base, language, width, "?from=%d&to=%d" % YEAR)
            await other.screenshot(path=shot("consumption-%s-%d.png" % (language, width)), full_page=True)
            out[(language, width)] = {"probe": await other.evaluate(PAGE_PROBE), "axe": await axe(other),
                                      "errors": other_errors, "table": await other.evaluate(TABLE)}
            await other.context.close()


BAD_QUERIES = (
    ("/api/consumption?circuits=4:1&to=2&step=month", 400),                      # no from
    ("/api/consumption?circuits=4:x&from=1&to=2&step=month", 400),               # not address:load
    ("/api/consumption?circuits=4:1&from=1&to=2&step=minute", 400),              # no such step
    ("/api/consumption?circuits=4:1&from=1&to=2&step=month&data=power", 400),    # not a consumption
    ("/api/consumption?circuits=4:1&from=5&to=2&step=month", 400),               # from after to
    ("/api/consumption?circuits=4:1&hierarchy=h1&node=1&from=1&to=2&step=day", 400),   # both selections
    ("/api/consumption?circuits=4:1,4:1&from=1&to=2&step=day", 400),             # twice the same
    ("/api/consumption?circuits=4:1&from=0&to=%d&step=hour" % (10000 * 86400), 400),    # too many values
    ("/api/consumption?circuits=9:9&from=1&to=2&step=day", 404),                 # no such circuit
    ("/api/consumption?hierarchy=h99&node=1&from=1&to=2&step=day", 404),         # no such hierarchy
)


def api_reads(base):
    client = web_login(base, "user", "en")
    return {"bad": [(path, client.get(path)) for path, _status in BAD_QUERIES],
            "tree": client.get("/api/views/tree?by=hierarchy"), "pages": client.get("/api/pages")}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    browser_ready(AXE)
    from playwright.async_api import async_playwright
    base_dir = tmp_path_factory.mktemp("consumption")
    clock = ManualClock(T + 1)                   # frozen: the curve service adds nothing to the points written
    topology = topology_with(DIGIWARE, (), baud=115200)
    web = web_server()
    out = {"written": written()}

    async def scenario():
        async with running_gateway(base_dir / "state", topology, OVERRIDES, clock, services=[web],
                                   storage_geometry=Geometry(64, 8192, segments=4, segment_bytes=1 << 20)) as gw:
            await gw.topology.replace(devices_from_simulation(topology))
            admin = gw.door(Caller("web", "admin"))
            usage = next(c for c in admin.circuits() if c["address"] == 4 and c["load"] == 3)["usage"]
            await admin.edit_circuits({"loads": [{"address": 4, "load": 3}], "name": FORMULA_NAME,
                                       "fluid": "electricity", "usage": usage})
            store = gw.storage.store
            for load, points in out["written"].items():
                series = Series(series_name("consumption", "DC85E9", load, "ea_pos"), PERIOD, counter=True)
                for ts, wh in points:
                    store.add(series, ts, float(wh), Q_VALID)
            await gw.storage.commit()
            hid = (await admin.change_hierarchies({"op": "create", "name": "Site", "fluid": "electricity"}))[
                "hierarchy"]
            await admin.change_hierarchies({"op": "meter", "hierarchy": hid, "item": 1, "circuit": "4:1"})
            for circuit in ("4:2", "4:3"):
                await admin.change_hierarchies({"op": "add", "hierarchy": hid, "parent": 1, "kind": "circuit",
                                                "circuit": circuit})
            base = "http://127.0.0.1:%d" % web.server.port
            out["api"] = await asyncio.to_thread(api_reads, base)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    await browse(browser, base, out)
                except Exception as exc:
                    raise AssertionError("%s; page errors: %s" % (exc, out.get("errors"))) from exc
                finally:
                    await browser.close()
    asyncio.run(scenario())
    return out


def check_level(table, points_by_load, start, end):
    """Each load's bars (and the total row) are the sums of the points written, with their quality."""
    buckets = local_buckets(table["step"], start, end)
    assert table["starts"] == [b0 for b0, _b1 in buckets]
    factor = {"kWh": 1000.0, "MWh": 1e6}[table["unit"]]
    for load, points in points_by_load.items():
        row = table["rows"]["4:%d" % load]
        bars = row["cells"][4:]
        wanted = expected(points, buckets)
        assert len(bars) == len(wanted)
        for shown, q, (wh, quality) in zip(bars, row["q"][4:], wanted, strict=True):
            assert close(shown, wh, table["decimals"], factor), (load, shown, wh)
            assert q == quality
        known = [wh for wh, _q in wanted if wh is not None]
        total = sum(known) if known else None                            # no point at all: no total either
        assert close(row["cells"][0], total, table["decimals"], factor)
    return buckets


def test_the_drill_down_from_the_year_to_the_integration_period_shows_the_sums_of_the_points(site):
    levels, points = site["levels"], site["written"]
    assert [table["step"] for table in levels] == STEPS
    start, end = YEAR
    for k, table in enumerate(levels):
        buckets = check_level(table, points, start, end)
        if k + 1 < len(levels):
            following = levels[k + 1]["starts"][0]
            start, end = next(b for b in buckets if b[0] <= following < b[1])
    year = levels[0]["rows"]["4:1"]["q"][4:]
    assert year == ["missing"] * 8 + ["partial"] * 3 + ["missing"]      # Sep 29-30, October's gap, Nov 1-14
    assert "partial" in levels[2]["rows"]["4:1"]["q"][4:]            # the week holding the gap
    assert levels[4]["rows"]["4:1"]["q"][4:] == ["missing"] * 6      # 11:00-12:00 of the gap day: no point
    assert levels[3]["step"] == "hour" and len(levels[4]["starts"]) == 6
    assert site["finest_drill"] == 0                                  # the integration period is the finest
    assert site["back"]["step"] == "month" and site["back"]["level"] == 1
    assert len(levels[4]["crumbs"]) == 5
    assert levels[0]["crumbs"] == ["Jan 1, 2023 – Dec 31, 2023"]      # the gateway's local year, not UTC's
    keyboard = site["keyboard"]
    assert keyboard["step"] == "week" and keyboard["starts"] == levels[1]["starts"]   # Enter on October


def test_the_pane_organises_by_hierarchy_and_home_links_the_page(site):
    status, tree = site["api"]["tree"]
    assert status == 200 and tree["by"] == "hierarchy"
    (group,) = tree["groups"]
    assert group["label"] == "Site" and group["loads"] == 3                  # the meter and two circuits
    root = group["nodes"]
    assert root["kind"] == "node" and root["meter"]["circuit"] == "4:1"
    assert [c["circuit"] for c in root["children"]] == ["4:2", "4:3"]
    assert root["children"][1]["name"] == FORMULA_NAME
    status, pages = site["api"]["pages"]
    assert {"page": "consumption", "path": "/consumption"} in pages["pages"]


def test_a_hierarchy_node_shows_its_children_and_the_non_measured_point(site):
    table = site["hierarchy"]
    assert list(table["rows"]) == ["item:2", "item:3", "unmeasured", "total"]
    assert table["rows"]["unmeasured"]["name"] == "Non-measured point"
    factor = {"kWh": 1000.0, "MWh": 1e6}[table["unit"]]
    buckets = local_buckets(table["step"], *YEAR)
    sums = dict((load, expected(site["written"][load], buckets)) for load in (1, 2, 3))
    for i, shown in enumerate(table["rows"]["unmeasured"]["cells"][4:]):
        parts = [sums[load][i][0] for load in (1, 2, 3)]
        wanted = None if parts[0] is None else parts[0] - (parts[1] or 0) - (parts[2] or 0)
        assert close(shown, wanted, table["decimals"], factor), (i, shown, wanted)
    meter = sum(v for _ts, v in site["written"][1])
    assert close(table["total"], meter, table["decimals"], factor)        # children + non-measured = the meter
    assert "Node meter" in site["node_line"]


def test_hiding_a_load_lowers_the_total_by_its_own(site):
    before, after = site["toggle"]
    assert "4:2" in before["rows"] and "4:2" not in after["rows"]
    drop = float(before["total"]) - float(after["total"])
    assert abs(drop - float(before["rows"]["4:2"]["cells"][0])) <= 2 * 10 ** -before["decimals"]
    assert abs(float(after["total"]) - sum(float(after["rows"]["4:%d" % n]["cells"][0]) for n in (1, 3))) \
        <= 2 * 10 ** -after["decimals"]


def test_the_csv_holds_the_table_shown_and_defuses_a_formula(site):
    text, table = site["csv"], site["csv_table"]
    assert "\r\n" in text
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    head = next(i for i, row in enumerate(rows) if row and row[0] == "Load")
    body = rows[head + 1:]
    shown = [table["rows"][key] for key in ("4:1", "4:3", "total")]
    assert len(body) == len(shown)
    for row, line in zip(shown, body, strict=True):
        values = row["cells"][:3] + row["cells"][4:]
        assert line[1:4] + line[5:] == values
    assert body[1][0].startswith("'=SUM(A1); \"north\"")                   # defused, its ; and " kept
    assert '"\'=SUM(A1); ""north""' in text                                # RFC 4180 quoting
    assert [int(datetime.datetime.fromisoformat(c).replace(tzinfo=TZ).timestamp()) for c in rows[head][5:]] == \
        table["starts"]


def test_malformed_queries_are_refused_with_a_message(site):
    for (path, status), (_path, (got, answer)) in zip(BAD_QUERIES, site["api"]["bad"], strict=True):
        assert got == status, (path, got, answer)
        assert answer.get("error"), path


def test_the_page_is_accessible_in_both_languages_and_fits_768(site):
    assert site["axe"] == [] and site["hierarchy_axe"] == []
    assert site["errors"] == []
    for key in (("en", 768), ("fr", 1920), ("fr", 768)):
        seen = site[key]
        assert seen["axe"] == [] and seen["errors"] == [], (key, seen["axe"], seen["errors"])
        assert seen["probe"]["unlabelled"] == []
        assert seen["probe"]["scrollWidth"] <= seen["probe"]["innerWidth"], key
    assert "Consommations" in site[("fr", 1920)]["probe"]["text"]
    assert "Total of the loads shown" not in site[("fr", 1920)]["probe"]["text"]
