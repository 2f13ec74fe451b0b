"""Generic Modbus devices in the web (issue 18) in a real headless Chromium, driven by Playwright.

One gateway (no meters on its buses) and one Debian Chromium serve the module: ``seen`` walks the scenario
once and records what the pages showed; the tests below check it. On the Data models page a model is typed
into the rows editor, a malformed CSV is imported (one message per line at fault, nothing imported) and the
model is exported (the CSV holds the rows typed). The Data models page's link opens the Devices page's one
"Add a generic device" form: a refused TCP device (per-field messages), then one against a pymodbus Modbus TCP
server started here. Its values are compared, in the Devices list and on Monitor, with the server's register
image written below by hand with ``struct`` (not with the gateway's model). Then SPEC §1's limits: a TCP
generic device counts as one of the 32 devices and one of the 192 circuits; the 33rd is refused whole with its
message and nothing changes. axe-core on each page; screenshots EN/FR at 1920 and 768 px in tests/results/.
"""

import asyncio
import contextlib
import struct

import pytest

from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, axe, browser_ready, shot
from modbus_tcp_device import tcp_device
from conftest import commission_accounts, free_tcp_port, running_gateway, topology_with, web_login, web_server

READY = "() => document.documentElement.dataset.ready === '1'"
TCP_UNIT, TCP_ADDRESS = 3, 60
HEADER = "name;frame;function;register;encoding;word_order;coefficient;unit"      # WEBVIEW-L's CSV columns

# The TCP device's holding registers, by hand: a supply temperature as IEEE 754 float32 (high word first), the
# frequency as U16 in 1/100 Hz, a flow as U16 in 1/10 m3/h, an energy index as U32 in kWh (low word first).
IMAGE = (list(struct.unpack(">2H", struct.pack(">f", 21.75))) + [5002, 417]
         + list(struct.unpack(">2H", struct.pack(">I", 98765)))[::-1])
# What those registers say, worked out by hand from the image (not read back from the gateway's model).
EXPECTED = {"Supply temperature": 21.75, "IFreqInst": 50.02, "Flow": 41.7, "IEaPInst": 98765000.0}
# The rows typed into the page: name, frame, function, register, encoding, word order, coefficient, unit.
ROWS = [("Supply temperature", "all", "3", "0", "FLOAT32", "big", "1", "°C"),
        ("IFreqInst", "all", "3", "2", "U16", "big", "0.01", "Hz"),
        ("Flow", "all", "3", "3", "U16", "big", "0.1", "m3/h"),
        ("IEaPInst", "all", "3", "4", "U32", "swapped", "1000", "Wh")]
# A malformed CSV: function 9 on line 3, an encoding that does not exist on line 4.
BAD_CSV = "\n".join([HEADER, "Flow;all;3;3;U16;big;0.1;m3/h", "Valve;all;9;5;U16;big;1;%",
                     "Level;all;3;6;FLOAT64;big;1;m"]) + "\n"
# every value cell of the Monitor's panel: key -> [data-value, shown text, row class, quality text]
CELLS = r"""() => Object.fromEntries(Array.from(document.querySelectorAll('#panel td.val[data-key]')).map((c) =>
  [c.dataset.key, [c.dataset.value, c.textContent, c.parentElement.className,
                   c.parentElement.querySelector('td.q').textContent,
                   c.parentElement.querySelector('th').textContent]]))"""
LIST_VALUES = r"""(address) => Array.from(document.querySelectorAll(
  'details.values[data-address="' + address + '"] tbody tr')).map((r) =>
  [r.dataset.name, r.dataset.value, r.dataset.quality, Array.from(r.children).map((c) => c.textContent)])"""


async def _session_page(browser, base, language="en", width=1920, height=1080):
    client = await asyncio.to_thread(web_login, base, "admin", language)
    context = await browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True)
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.errors = errors
    return page, client


async def _type_model(page):
    """The model ROWS typed into the rows editor as a person does (fields left with Tab), then saved."""
    await page.click("#new")
    await page.fill("#name", "Heat meter")
    for i, row in enumerate(ROWS):
        if i:
            await page.click("#add-row")
        tr = page.locator("#rows-body tr").nth(i)
        for j, value in enumerate(row):
            field = tr.locator("td").nth(j).locator("input, select")
            if await field.evaluate("(f) => f.tagName") == "SELECT":
                await field.select_option(value)
            else:
                await field.fill(value)
                await field.press("Tab")
    await page.click("#save")
    await page.wait_for_selector("#message.ok")


async def _list_values(page, address):
    await page.wait_for_selector('details.values[data-address="%d"]' % address)
    if not await page.evaluate('(a) => document.querySelector(\'details.values[data-address="\' + a + \'"]\').open',
                               address):
        await page.click('details.values[data-address="%d"] summary' % address)
    await page.wait_for_function("(a) => { const rows = document.querySelectorAll("
                                 "'details.values[data-address=\"' + a + '\"] tbody tr');"
                                 " return rows.length === 4 && Array.from(rows).every((r) =>"
                                 " r.dataset.quality === 'good'); }", arg=address, timeout=60000)
    return await page.evaluate(LIST_VALUES, address)


async def _monitor(page, base, tab):
    await page.goto(base + "/monitor?address=%d&load=1" % TCP_ADDRESS)
    await page.wait_for_function(READY, timeout=30000)
    await page.click("#tab-" + tab)
    await page.wait_for_function("() => { const cells = document.querySelectorAll('#panel td.val[data-key]');"
                                 " return cells.length && Array.from(cells).every((c) =>"
                                 " c.parentElement.className === 'good'); }", timeout=60000)


async def _limits(client, gw):
    """SPEC §1 with a TCP generic device: 31 I-60 (186 circuits) + it = 32 devices: the 33rd refused; then 32 I-60
    (192 circuits): a TCP device would be the 33rd device and the 193rd circuit."""
    seen = {}
    tcp = {"link": "tcp", "host": "127.0.0.1", "port": 1502, "unit": 1, "model": "Heat meter"}
    for address in range(1, 32):
        status, answer = await asyncio.to_thread(client.post, "/api/devices/sources",
                                                 {"reference": "I-60", "bus": "digiware", "address": address})
        assert status == 200, answer
    before = (await asyncio.to_thread(client.get, "/api/devices/sources"))[1]["sources"]
    links = set(gw.links)
    seen["count"] = (len(before) - 1, sum(s["loads"] for s in before if not s["gateway"]))
    seen["refused_33rd"] = await asyncio.to_thread(client.post, "/api/devices/generic", dict(tcp, address=61))
    after = (await asyncio.to_thread(client.get, "/api/devices/sources"))[1]["sources"]
    seen["unchanged_33rd"] = ([(s["address"], s["reference"]) for s in before] ==
                              [(s["address"], s["reference"]) for s in after] and set(gw.links) == links)
    # 32 I-60: the TCP device deleted, a 32nd I-60 added
    assert (await asyncio.to_thread(client.post, "/api/devices/sources/delete", {"addresses": [TCP_ADDRESS]}))[0] == 200
    assert (await asyncio.to_thread(client.post, "/api/devices/sources",
                                    {"reference": "I-60", "bus": "digiware", "address": 32}))[0] == 200
    before = (await asyncio.to_thread(client.get, "/api/devices/sources"))[1]["sources"]
    seen["count_full"] = (len(before) - 1, sum(s["loads"] for s in before if not s["gateway"]))
    seen["refused_full"] = await asyncio.to_thread(client.post, "/api/devices/generic", dict(tcp, address=62))
    after = (await asyncio.to_thread(client.get, "/api/devices/sources"))[1]["sources"]
    seen["unchanged_full"] = [s["address"] for s in before] == [s["address"] for s in after]
    seen["fr_full"] = await asyncio.to_thread(lambda: web_login(client.base, "admin", "fr").post(
        "/api/devices/generic", dict(tcp, address=62)))
    return seen


async def _scenario(tmp_path):
    from playwright.async_api import async_playwright
    web = web_server()
    seen = {}
    state = tmp_path / "state"
    commission_accounts(str(state))
    port = free_tcp_port()
    settings = {"poll.backoff_max_s": 1, "generic.tcp_timeout_ms": 500}
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(tcp_device(port, TCP_UNIT, IMAGE))
        gw = await stack.enter_async_context(running_gateway(state, topology_with(), settings, services=[web]))
        base = "http://127.0.0.1:%d" % web.server.port
        pw = await stack.enter_async_context(async_playwright())
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.push_async_callback(browser.close)
        page, client = await _session_page(browser, base)
        # ---- Data models: a model typed into the rows editor
        await page.goto(base + "/datamodels")
        await page.wait_for_function(READY, timeout=30000)
        await _type_model(page)
        seen["saved"] = await page.text_content("#message")
        # ---- a malformed CSV: one message per line at fault, nothing imported
        await page.fill("#import-name", "Broken")
        await page.set_input_files("#import-file", files=[{"name": "broken.csv", "mimeType": "text/csv",
                                                          "buffer": BAD_CSV.encode()}])
        await page.click("#import-form button[type=submit]")
        await page.wait_for_selector("#problems li")
        seen["import_problems"] = await page.eval_on_selector_all("#problems li",
                                                                  "(li) => li.map((x) => x.textContent)")
        seen["import_message"] = (await page.get_attribute("#message", "class"), await page.text_content("#message"))
        seen["models_after_import"] = [m["name"] for m in (await asyncio.to_thread(client.get, "/api/datamodels"))[1]
                                       ["models"]]
        seen["axe_models"] = await axe(page)
        # ---- export: the CSV holds the rows typed
        async with page.expect_download() as download:
            await page.click("#export")
        path = await (await download.value).path()
        with open(path, encoding="utf-8") as exported:
            seen["exported"] = exported.read()
        seen["export_name"] = (await download.value).suggested_filename
        # ---- the Data models page's link opens the Devices page's one form
        await page.click("#add-device")
        await page.wait_for_selector("#form-dialog[open]")
        seen["form_url"] = page.url
        seen["form_title"] = await page.text_content("#form-title")
        await page.select_option("#f-link", "tcp")
        seen["rtu_hidden"] = await page.is_hidden("#f-bus")
        await page.fill("#f-host", "not a host!")
        await page.fill("#f-port", "70000")
        await page.fill("#f-unit", str(TCP_UNIT))
        await page.fill("#f-address", str(TCP_ADDRESS))
        await page.select_option("#f-model", "Heat meter")
        await page.fill("#f-name", "Heat meter TCP")
        await page.click("#form-save")
        await page.wait_for_selector("#f-host[aria-invalid=true]")
        seen["field_errors"] = {name: (await page.text_content("#error-" + name),
                                       await page.get_attribute("#f-" + name, "aria-invalid"))
                                for name in ("host", "port", "unit", "address", "model")}
        seen["sources_while_refused"] = [s["address"] for s in (await asyncio.to_thread(
            client.get, "/api/devices/sources"))[1]["sources"]]
        seen["axe_form"] = await axe(page)
        await page.screenshot(path=shot("generic-add-refused-en-1920.png"))
        await page.fill("#f-host", "127.0.0.1")
        await page.fill("#f-port", str(port))
        await page.click("#form-save")
        await page.wait_for_selector("#message.ok")
        seen["added"] = await page.text_content("#message")
        page.errors.clear()                      # the refused POST's 400 is in the console: it was meant
        # ---- the Devices list: its link, model and values with quality and age
        seen["list_values"] = await _list_values(page, TCP_ADDRESS)
        row = page.locator('#rows tr[data-id="%d"]' % TCP_ADDRESS)
        seen["list_row"] = await row.inner_text()
        seen["list_cells"] = await row.locator("td").all_inner_texts()
        # ---- its Edit form: no serial bus to choose over TCP; an edit keeps the link
        await row.locator("button", has_text="Edit").click()
        await page.wait_for_selector("#form-dialog[open]")
        seen["edit_fields"] = await page.eval_on_selector_all("#form-dialog [id^='f-']", "(e) => e.map((x) => x.id)")
        await page.fill("#f-area", "Plant room")
        await page.click("#form-save")
        # the add's "ok" message is still shown: the edit is done when its dialog closes
        await page.wait_for_function("() => !document.getElementById('form-dialog').open")
        await page.wait_for_selector("#message.ok")
        seen["edited"] = [s for s in (await asyncio.to_thread(client.get, "/api/devices/sources"))[1]["sources"]
                          if s["address"] == TCP_ADDRESS][0]
        seen["axe_devices"] = await axe(page)
        # ---- Monitor: the registry-named ones in their tabs, the model's own names in Device data
        await _monitor(page, base, "device_data")
        seen["tabs"] = await page.eval_on_selector_all("#tabs [role=tab]", "(b) => b.map((x) => x.dataset.tab)")
        seen["own_cells"] = await page.evaluate(CELLS)
        seen["axe_monitor"] = await axe(page)
        await page.click("#tab-ui")
        seen["ui_cells"] = await page.evaluate(CELLS)
        await page.click("#tab-energy")
        seen["energy_cells"] = await page.evaluate(CELLS)
        seen["errors"] = list(page.errors)
        # ---- Trends and exports: the stored series, no model's own name among them
        seen["trend_catalogue"] = (await asyncio.to_thread(client.get, "/api/series/catalogue"))
        # ---- screenshots EN/FR at 1920 and 768, axe on each
        seen["shots"] = {}
        for language in ("en", "fr"):
            for width, height in ((1920, 1080), (768, 1024)):
                shot_page, _ = await _session_page(browser, base, language, width, height)
                await shot_page.goto(base + "/devices/sources")
                await shot_page.wait_for_function(READY, timeout=30000)
                await _list_values(shot_page, TCP_ADDRESS)
                seen.setdefault("reference_cells", {})[language] = await shot_page.locator(
                    '#rows tr[data-id="%d"] td' % TCP_ADDRESS).nth(1).inner_text()
                await shot_page.screenshot(path=shot("generic-devices-%s-%d.png" % (language, width)), full_page=True)
                probes = [dict(await shot_page.evaluate(PAGE_PROBE), axe=await axe(shot_page))]
                await _monitor(shot_page, base, "device_data")
                await shot_page.screenshot(path=shot("generic-monitor-%s-%d.png" % (language, width)), full_page=True)
                probes.append(dict(await shot_page.evaluate(PAGE_PROBE), axe=await axe(shot_page)))
                await shot_page.goto(base + "/datamodels")
                await shot_page.wait_for_function(READY, timeout=30000)
                await shot_page.screenshot(path=shot("generic-models-%s-%d.png" % (language, width)), full_page=True)
                probes.append(dict(await shot_page.evaluate(PAGE_PROBE), axe=await axe(shot_page)))
                seen["shots"][(language, width)] = (probes, list(shot_page.errors))
                await shot_page.context.close()
        # ---- SPEC §1's limits with a TCP generic device
        seen["limits"] = await _limits(client, gw)
    return seen


@pytest.fixture(scope="module")
def seen(tmp_path_factory):
    browser_ready(AXE)
    return asyncio.run(_scenario(tmp_path_factory.mktemp("generic-web")))


def test_a_model_typed_in_the_page_is_saved_and_exported_as_its_rows(seen):
    assert seen["saved"] == "Model Heat meter saved."
    assert seen["export_name"] == "model-Heat_meter.csv"
    lines = seen["exported"].splitlines()
    assert lines[0] == HEADER
    rows = [line.split(";") for line in lines[1:]]
    assert [(r[0], r[1], r[2], r[3], r[4], r[5], float(r[6]), r[7]) for r in rows] == \
        [(r[0], r[1], r[2], r[3], r[4], r[5], float(r[6]), r[7]) for r in ROWS]


def test_a_malformed_csv_says_each_line_at_fault_and_imports_nothing(seen):
    problems = seen["import_problems"]
    assert len(problems) == 2 and problems[0].startswith("Line 3: ") and problems[1].startswith("Line 4: ")
    assert "FLOAT64" in problems[1] or "encoding" in problems[1].lower()
    assert seen["import_message"][0] == "message error"
    assert seen["models_after_import"] == ["Heat meter"]


def test_the_generic_device_form_is_the_devices_pages_and_refuses_per_field(seen):
    assert "/devices/sources?add=generic" in seen["form_url"] and seen["form_title"] == "Add a generic device"
    assert seen["rtu_hidden"]
    errors = seen["field_errors"]
    assert errors["host"][1] == "true" and errors["host"][0] == "Enter a host name or an IPv4 address."
    assert errors["port"][1] == "true" and "65535" in errors["port"][0]
    assert [name for name in ("unit", "address", "model") if errors[name] != ("", None)] == []
    assert TCP_ADDRESS not in seen["sources_while_refused"]              # refused: nothing added
    assert seen["added"] == "Heat meter TCP added."


def _close(shown, expected):
    return abs(float(shown) - expected) <= 1e-6 * max(1.0, abs(expected))


def test_the_devices_list_shows_the_values_of_the_register_image_with_quality(seen):
    values = dict((name, (value, quality, cells)) for name, value, quality, cells in seen["list_values"])
    assert sorted(values) == sorted(EXPECTED)
    assert [n for n, v in EXPECTED.items() if not _close(values[n][0], v)] == []
    assert all(q == "good" and cells[2] == "good" and cells[3].endswith("s") for _, q, cells in values.values())
    assert values["Flow"][2][0] == "Flow *" and values["Flow"][2][1] == "41.7\u00a0m3/h"     # own name marked
    assert "Modbus TCP 127.0.0.1:" in seen["list_row"] and ", unit 3" in seen["list_row"]
    assert "Model Heat meter" in seen["list_row"]
    assert "f-bus" not in seen["edit_fields"] and "f-area" in seen["edit_fields"]
    edited = seen["edited"]
    assert edited["area"] == "Plant room" and edited["generic"]["link"]["kind"] == "tcp"
    # a generic device is no Socomec product: its kind in the reader's language, no network type of its own
    assert seen["reference_cells"]["en"].startswith("Generic Modbus")
    assert seen["reference_cells"]["fr"].startswith("Modbus générique")
    assert "None / Unknown" in seen["list_cells"] and "3P+N" not in seen["list_row"]


def test_monitor_shows_the_models_own_names_in_device_data_and_the_registry_ones_in_their_tabs(seen):
    assert seen["tabs"] == ["ui", "energy", "device_data"]
    own = seen["own_cells"]
    assert sorted(own) == ["user:Flow", "user:Supply temperature"]
    for key, name in (("user:Flow", "Flow"), ("user:Supply temperature", "Supply temperature")):
        value, text, quality, quality_text, label = own[key]
        assert label == name and quality == "good" and quality_text.startswith("Up to date")
        assert _close(value, EXPECTED[name])
    assert own["user:Supply temperature"][1] == "21.75\u00a0°C"
    assert _close(seen["ui_cells"]["freq"][0], EXPECTED["IFreqInst"]) and seen["ui_cells"]["freq"][2] == "good"
    assert _close(seen["energy_cells"]["ea_pos"][0], EXPECTED["IEaPInst"])
    assert seen["errors"] == []


def test_trends_and_exports_leave_the_models_own_values_out(seen):
    status, catalogue = seen["trend_catalogue"]
    assert status == 200
    series = catalogue if isinstance(catalogue, list) else catalogue.get("series", [])
    assert [s for s in series if s.get("address") == TCP_ADDRESS or "user:" in s.get("name", "")] == []


def test_axe_finds_nothing_and_every_screenshot_is_clean(seen):
    assert seen["axe_models"] == [] and seen["axe_form"] == [] and seen["axe_devices"] == []
    assert seen["axe_monitor"] == []
    for (language, width), (probes, errors) in seen["shots"].items():
        assert errors == [], (language, width, errors)
        for probe in probes:
            assert probe["axe"] == [], (language, width, probe["axe"])
            assert probe["unlabelled"] == [], (language, width, probe["unlabelled"])
            assert probe["lang"] == language
            assert probe["scrollWidth"] <= probe["innerWidth"], (language, width, probes.index(probe))
    french = seen["shots"][("fr", 768)][0]
    assert "Données de l'équipement" in french[1]["text"] and "Modèle Heat meter" in french[0]["text"]


def test_a_tcp_generic_device_counts_toward_32_devices_and_192_circuits(seen):
    limits = seen["limits"]
    assert limits["count"] == (32, 31 * 6 + 1)                      # SPEC §1: 32 devices, 192 circuits
    status, answer = limits["refused_33rd"]
    assert status == 400 and [m["message"] for m in answer["messages"]] == ["the gateway serves at most 32 devices"]
    assert limits["unchanged_33rd"]
    assert limits["count_full"] == (32, 192)
    status, answer = limits["refused_full"]
    assert status == 400 and sorted(m["message"] for m in answer["messages"]) == [
        "the gateway serves at most 192 circuits", "the gateway serves at most 32 devices"]
    assert limits["unchanged_full"]
    status, answer = limits["fr_full"]
    assert status == 400 and len(answer["messages"]) == 2 and all("192" in m["message"] or "32" in m["message"]
                                                                  for m in answer["messages"])
