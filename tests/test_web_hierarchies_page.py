"""The Hierarchies editor (/hierarchies, issue 17) in Debian's Chromium driven by Playwright.

One gateway and one browser for the module: Admin builds a hierarchy with the keyboard-accessible forms
(create, add a node, circuits under it, a meter, move up, reparent, remove), the tree drawn is compared with
the gateway's own listing; then with the mouse (HTML5 drag and drop): a free circuit dropped on a node, a
node dropped on its own child and a hierarchy on its own sub-hierarchy refused (the store unchanged, read through
the JSON API), a row dropped on the main node, a node marked while dragged over; the limits are refused with
their message in English and French (API); User gets the 403 page; axe-core; screenshots EN/FR at 1920 and 768 px.
"""

import asyncio

import pytest
from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, axe, browser_ready, shot
from conftest import running_gateway, topology_with, web_login, web_server

from daemon.state.topology import devices_from_simulation

READY = "() => document.documentElement.dataset.ready === '1'"
DIGIWARE = [{"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 3, "nominal_w": 45000}]
OVERRIDES = {"poll.min_cycle_ms": 300, "poll.backoff_max_s": 1, "alarms.check_s": 3600}
TREE = r"""() => {
  const walk = (li) => {
    const box = li.querySelector(":scope > .item");
    const kids = li.querySelector(":scope > ul");
    return [box.querySelector(".name").textContent, kids ? Array.from(kids.children).map(walk) : []];
  };
  return walk(document.querySelector("#tree > li"));
}"""


async def open_page(browser, base, profile, language, width=1920):
    client = await asyncio.to_thread(web_login, base, profile, language)
    context = await browser.new_context(viewport={"width": width, "height": 1080}, timezone_id="UTC")
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    page = await context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    response = await page.goto(base + "/hierarchies", wait_until="load")
    return page, client, errors, response


async def submit(page, button, expect):
    await page.evaluate("() => { document.getElementById('message').textContent = ''; }")
    await page.click(button)
    await page.wait_for_function("(t) => document.getElementById('message').textContent.includes(t)", arg=expect)


async def browse(browser, base, out):
    page, admin, errors, _ = await open_page(browser, base, "admin", "en")
    await page.wait_for_function(READY)
    out["empty"] = await page.text_content("#tree")
    editors = ("#edit-row", "#palette", "#add-section", "#more-section")
    out["empty_editors"] = [await page.is_visible(selector) for selector in editors]
    await page.fill("#new-name", "Building A")
    await submit(page, "#new-create", "created")
    out["editors"] = [await page.is_visible(selector) for selector in editors]
    await page.select_option("#add-kind", "node")
    await page.fill("#add-name", "Floor 1")
    await submit(page, "#add-go", "Added")
    await page.select_option("#add-kind", "circuit")
    for circuit in ("4:2", "4:3"):
        await page.select_option("#add-parent", label="Floor 1")
        await page.select_option("#add-circuit", circuit)
        await submit(page, "#add-go", "Added")
    await page.select_option("#meter-node", label="Building A")
    await page.select_option("#meter-circuit", "4:1")
    await submit(page, "#meter-go", "Meter set")
    await page.select_option("#add-parent", label="Building A")
    await page.select_option("#add-kind", "node")
    await page.fill("#add-name", "Floor 2")
    await submit(page, "#add-go", "Added")
    out["built"] = await page.evaluate(TREE)
    # keyboard: focus Floor 2's Up button and press Enter
    await page.focus("button[aria-label='Move Floor 2 up']")
    await page.keyboard.press("Enter")
    await page.wait_for_function("(t) => document.getElementById('message').textContent.includes(t)", arg="moved")
    out["moved_up"] = await page.evaluate(TREE)
    # reparent a circuit to Floor 2, then a refused move (a node under its own child)
    await page.select_option("#move-item", "4")            # the circuit 4:3
    await page.select_option("#move-parent", label="Floor 2")
    await submit(page, "#move-go", "moved")
    out["reparented"] = await page.evaluate(TREE)
    out["nmp_text"] = await page.text_content("#tree")
    out["axe"] = await axe(page)
    out["probe"] = await page.evaluate(PAGE_PROBE)
    await page.screenshot(path=shot("hierarchies-en-1920x1080.png"), full_page=True)
    await page.fill("#new-name", "Building A")
    await page.click("#new-create")
    await page.wait_for_selector("#message.error")
    out["taken"] = await page.text_content("#message")
    await page.click("button[aria-label='Remove Floor 2']")
    await page.wait_for_function("(t) => document.getElementById('message').textContent.includes(t)", arg="removed")
    out["removed"] = await page.evaluate(TREE)
    out["errors"] = list(errors)
    out["listing"] = await asyncio.to_thread(admin.get, "/api/hierarchies")
    await drag_and_drop(page, admin, out)
    out["dnd_errors"] = list(errors)
    await page.context.close()
    page, _, errors, _ = await open_page(browser, base, "admin", "fr", width=768)
    await page.wait_for_function(READY)
    out["fr_text"] = await page.evaluate("() => document.body.innerText")
    out["fr_axe"] = await axe(page)
    out["narrow"] = await page.evaluate(PAGE_PROBE)
    await page.screenshot(path=shot("hierarchies-fr-768.png"), full_page=True)
    await page.set_viewport_size({"width": 1920, "height": 1080})
    await page.screenshot(path=shot("hierarchies-fr-1920x1080.png"), full_page=True)
    await page.context.close()
    page, user, _, response = await open_page(browser, base, "user", "en")
    out["user_status"] = response.status
    out["user_post"] = await asyncio.to_thread(user.post, "/api/hierarchies",
                                               {"op": "create", "name": "Mine", "fluid": "electricity"})
    out["user_read"] = await asyncio.to_thread(user.get, "/api/hierarchies")
    await page.context.close()


async def drag_and_drop(page, admin, out):
    """The mouse's way (HTML5 drag and drop): a free circuit onto a node, a node onto its own child (refused),
    a circuit row onto the main node; the store read through the JSON API after each."""
    await page.select_option("#add-parent", label="Floor 1")
    await page.select_option("#add-kind", "node")
    await page.fill("#add-name", "Room 1")
    await submit(page, "#add-go", "Added")
    out["palette"] = await page.eval_on_selector_all("#free-circuits [data-drag]",
                                                     "(l) => l.map((x) => x.dataset.drag)")
    await page.evaluate("() => { document.getElementById('message').textContent = ''; }")
    await page.drag_and_drop("#free-circuits [data-drag='circuit:4:3']", ".item.node[data-id='6']")
    await page.wait_for_function("() => document.getElementById('message').textContent.includes('added under')")
    out["dropped_message"] = await page.text_content("#message")
    out["dropped"] = (await asyncio.to_thread(admin.get, "/api/hierarchies"))[1]["hierarchies"][0]["items"]
    out["palette_after"] = await page.eval_on_selector_all("#free-circuits [data-drag]", "(l) => l.length")
    # Floor 1 dragged over its own child Room 1 by the mouse: the node is marked while dragging, the drop refused
    await page.evaluate("() => { document.getElementById('message').textContent = ''; }")
    await page.hover(".item[data-id='2'] .name")
    await page.mouse.down()
    await page.hover(".item.node[data-id='6'] .name")
    await page.hover(".item.node[data-id='6'] .kind")
    out["while_dragging"] = await page.evaluate(
        "() => [document.getElementById('tree').classList.contains('dragging'), "
        "Array.from(document.querySelectorAll('.drop-target')).map((n) => n.dataset.id)]")
    await page.screenshot(path=shot("hierarchies-dnd-en-1920x1080.png"), full_page=True)
    await page.mouse.up()
    await page.wait_for_selector("#message.error")
    out["refused_message"] = await page.text_content("#message")
    out["after_refusal"] = (await asyncio.to_thread(admin.get, "/api/hierarchies"))[1]["hierarchies"][0]["items"]
    out["marks_after"] = await page.eval_on_selector_all(".drop-target", "(l) => l.length")
    # a circuit row onto the main node: re-parented
    await page.evaluate("() => { document.getElementById('message').textContent = ''; }")
    await page.drag_and_drop(".item[data-id='3']", ".item.node[data-id='1'] .name")
    await page.wait_for_function("() => document.getElementById('message').textContent.includes('moved under')")
    out["moved_message"] = await page.text_content("#message")
    out["moved_tree"] = await page.evaluate(TREE)
    out["moved_store"] = (await asyncio.to_thread(admin.get, "/api/hierarchies"))[1]["hierarchies"][0]["items"]
    # a sub-hierarchy dragged from the palette; then, in it, its parent: a cycle, refused
    await asyncio.to_thread(admin.post, "/api/hierarchies", {"op": "create", "name": "Building B",
                                                             "fluid": "electricity"})
    await page.reload()
    await page.wait_for_function(READY)
    await page.drag_and_drop("#free-hierarchies [data-drag='hierarchy:h2']", ".item.node[data-id='2'] .name")
    await page.wait_for_function("() => document.getElementById('message').textContent.includes('added under')")
    out["linked_message"] = await page.text_content("#message")
    await page.select_option("#pick", "h2")
    await page.evaluate("() => { document.getElementById('message').textContent = ''; }")
    before = (await asyncio.to_thread(admin.get, "/api/hierarchies"))[1]["hierarchies"]
    await page.drag_and_drop("#free-hierarchies [data-drag='hierarchy:h1']", ".item.node[data-id='1'] .name")
    await page.wait_for_selector("#message.error")
    out["cycle_message"] = await page.text_content("#message")
    out["cycle_unchanged"] = (await asyncio.to_thread(admin.get, "/api/hierarchies"))[1]["hierarchies"] == before
    await asyncio.to_thread(admin.post, "/api/hierarchies", {"op": "remove", "hierarchy": "h1", "item": 8})
    await asyncio.to_thread(admin.post, "/api/hierarchies", {"op": "delete", "hierarchy": "h2"})


def limits(base):
    admin, french = web_login(base, "admin", "en"), web_login(base, "admin", "fr")
    out = {}
    made = []
    for n in range(9):
        status, answer = admin.post("/api/hierarchies", {"op": "create", "name": "H%d" % n, "fluid": "electricity"})
        assert status == 200, answer
        made.append(answer["result"]["hierarchy"])
    out["eleventh"] = admin.post("/api/hierarchies", {"op": "create", "name": "H9", "fluid": "electricity"})
    out["eleventh_fr"] = french.post("/api/hierarchies", {"op": "create", "name": "H9", "fluid": "electricity"})
    for n in range(31):
        admin.post("/api/hierarchies", {"op": "add", "hierarchy": made[0], "parent": 1, "kind": "node",
                                           "name": "N%d" % n})
    out["node_33"] = admin.post("/api/hierarchies", {"op": "add", "hierarchy": made[0], "parent": 1, "kind": "node",
                                                     "name": "N"})
    out["water_link"] = admin.post("/api/hierarchies", {"op": "add", "hierarchy": "h1", "parent": 1,
                                                        "kind": "circuit", "circuit": "4:9"})
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    browser_ready(AXE)
    from playwright.async_api import async_playwright
    base_dir = tmp_path_factory.mktemp("hierarchies")
    topology = topology_with(DIGIWARE, (), baud=115200)
    web = web_server()
    out = {}

    async def scenario():
        async with running_gateway(base_dir / "state", topology, OVERRIDES, services=[web]) as gw:
            await gw.topology.replace(devices_from_simulation(topology))
            base = "http://127.0.0.1:%d" % web.server.port
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    await browse(browser, base, out)
                finally:
                    await browser.close()
            out.update(await asyncio.to_thread(limits, base))
    asyncio.run(scenario())
    return out


def test_admin_builds_a_tree_with_the_keyboard_forms(site):
    assert "No hierarchy yet" in site["empty"]
    # nothing to edit yet: only "New hierarchy" and the message; the editors come with the first hierarchy
    assert site["empty_editors"] == [False] * 4 and site["editors"] == [True] * 4
    floor1 = ["Floor 1", [["I-35@4 - DC85E9 – Load 2", []], ["I-35@4 - DC85E9 – Load 3", []]]]
    assert site["built"] == ["Building A", [floor1, ["Floor 2", []]]]
    assert site["moved_up"] == ["Building A", [["Floor 2", []], floor1]]
    assert site["reparented"] == ["Building A", [["Floor 2", [["I-35@4 - DC85E9 – Load 3", []]]],
                                                 ["Floor 1", [["I-35@4 - DC85E9 – Load 2", []]]]]]
    assert "fed by I-35@4 - DC85E9 – Load 1" in site["nmp_text"] and "non-measured point" in site["nmp_text"]
    assert site["taken"] == "Another hierarchy has this name."
    assert site["removed"] == ["Building A", [["Floor 1", [["I-35@4 - DC85E9 – Load 2", []]]]]]
    status, listing = site["listing"]
    assert status == 200
    (h,) = listing["hierarchies"]
    assert (h["name"], h["fluid"]) == ("Building A", "electricity")
    assert sorted((i["kind"], i.get("name") or i.get("circuit")) for i in h["items"]) == \
        [("circuit", "4:2"), ("node", "Building A"), ("node", "Floor 1")]
    assert h["items"][0]["meter"] == "4:1"
    assert site["errors"] == []


def test_drag_and_drop_builds_the_tree_with_the_same_rules(site):
    assert site["palette"] == ["circuit:4:3"]            # 4:1 is the main node's meter, 4:2 hangs under Floor 1
    assert site["dropped_message"] == "“I-35@4 - DC85E9 – Load 3” added under “Room 1”."
    parents = dict((i.get("circuit") or i.get("name"), i["parent"]) for i in site["dropped"])
    assert parents == {"Building A": None, "Floor 1": 1, "4:2": 2, "Room 1": 2, "4:3": 6}, parents
    assert site["palette_after"] == 0
    assert site["while_dragging"] == [True, ["6"]]
    assert site["refused_message"] == "An element cannot go under itself or under what hangs under it."
    assert site["after_refusal"] == site["dropped"]        # nothing changed
    assert site["marks_after"] == 0
    assert site["moved_message"] == "“I-35@4 - DC85E9 – Load 2” moved under “Building A”."
    parents = dict((i.get("circuit") or i.get("name"), i["parent"]) for i in site["moved_store"])
    assert parents == {"Building A": None, "Floor 1": 1, "4:2": 1, "Room 1": 2, "4:3": 6}, parents
    assert site["moved_tree"] == ["Building A", [["Floor 1", [["Room 1", [["I-35@4 - DC85E9 – Load 3", []]]]]],
                                                 ["I-35@4 - DC85E9 – Load 2", []]]]
    assert site["linked_message"] == "“Building B” added under “Floor 1”."
    assert site["cycle_message"] == "A hierarchy cannot contain itself, even through another."
    assert site["cycle_unchanged"] is True
    assert site["dnd_errors"] == []


def test_the_limits_are_refused_with_clear_messages(site):
    status, answer = site["eleventh"]
    assert status == 400 and answer["messages"][0]["message"] == "At most 10 hierarchies: delete one first."
    assert site["eleventh_fr"][1]["messages"][0]["message"] == "Au plus 10 hiérarchies : supprimez-en une d'abord."
    status, answer = site["node_33"]
    assert status == 400 and answer["messages"][0]["message"] == "At most 32 nodes per hierarchy: remove one first."
    assert site["water_link"][1]["messages"][0]["message"] == "This circuit is not in the topology."


def test_user_cannot_open_the_editor_but_reads_the_hierarchies(site):
    assert site["user_status"] == 403
    assert site["user_post"][0] == 403
    assert site["user_read"][0] == 200


def test_the_page_is_accessible_french_and_fits(site):
    assert site["axe"] == [] and site["fr_axe"] == []
    assert site["probe"]["unlabelled"] == [] and site["narrow"]["unlabelled"] == []
    assert site["narrow"]["scrollWidth"] <= site["narrow"]["innerWidth"]
    assert "Hiérarchies" in site["fr_text"] and "Nouvelle hiérarchie" in site["fr_text"]
