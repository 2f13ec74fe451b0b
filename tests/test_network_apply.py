"""Network settings applied through the board (issue 14, SPEC §7.2 Protocols: network configuration).

Saving the Network page as Admin over real HTTP gives the simulated board the configuration (in memory, in
its state file, at GET /api/sim/network); an unusable combination is refused field by field in the caller's
language and nothing is applied nor saved; profiles without the right change nothing. The Pi board's writer
is run into a tmp root and its keyfiles read back as NetworkManager reads them (nm-settings-keyfile(5): an
ini file per connection, [connection] id/uuid/type/interface-name, [ipv4] method=manual with
address1=ip/prefix,gateway, dns= and dns-search= as ;-terminated lists, [vlan] parent and id; mode 0600).
"""

import asyncio
import configparser
import ipaddress
import json
import os
import stat
import uuid

from conftest import REPO, WebClient, running_gateway, topology_with, web_login, web_server

from board import netconfig
from board.rpi import RpiBoard
from board.sim import NETWORK_FILE
from daemon.security.rights import Caller

PAGE = "/api/settings/page/protocols.network"
STATIC = {"network.dhcp": False, "network.address": "10.20.30.40", "network.netmask": "255.255.255.0",
          "network.gateway": "10.20.30.1", "network.dns1": "10.20.30.2", "network.dns2": "9.9.9.9",
          "network.domain": "plant.example", "network.vlan.enabled": True, "network.vlan.id": 40}


def run(call, *args):
    return asyncio.to_thread(call, *args)


async def _site(tmp_path, scenario):
    web = web_server()
    async with running_gateway(tmp_path / "state", topology_with(), services=[web]) as gw:
        return await scenario(gw, "http://127.0.0.1:%d" % web.server.port)


def _state_file(gw):
    path = os.path.join(gw.state_dir, NETWORK_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def test_saving_static_settings_as_admin_gives_them_to_the_board_and_the_sim_route_shows_them(tmp_path):
    async def scenario(gw, base):
        admin = await run(web_login, base, "admin")
        before = await run(admin.get, "/api/sim/network")
        saved = await run(admin.post, PAGE, STATIC)
        shown = await run(admin.get, "/api/sim/network")
        page = await run(admin.get, PAGE)
        # a change elsewhere on the page that leaves the network as it is applies nothing more
        other = await run(admin.post, "/api/settings", {"gateway.name": "M-70 plant"})
        events = [e for e in gw.door(Caller("web", "admin")).events(None) if e.get("event") == "network_configured"]
        return before, saved, shown, page, other, gw.board.network, gw.board.network_applied, _state_file(gw), events

    before, saved, shown, page, other, network, applied, state_file, events = asyncio.run(_site(tmp_path, scenario))
    assert before == (200, {"network": None, "applied": 0})
    status, answer = saved
    assert status == 200 and answer["live"] == [], answer                   # none of them applies live
    assert sorted(answer["restart"] + answer["unchanged"]) == sorted(STATIC), answer
    assert applied == 1 and other[0] == 200
    assert network["dhcp"] is False and network["address"] == "10.20.30.40" and network["netmask"] == "255.255.255.0"
    assert network["gateway"] == "10.20.30.1" and network["dns"] == ["10.20.30.2", "9.9.9.9"]
    assert network["domain"] == "plant.example" and network["vlan"] == {"enabled": True, "id": 40}
    assert shown == (200, {"network": network, "applied": 1})
    assert state_file == network                                   # and in the state directory
    values = dict((f["name"], f.get("value")) for s in page[1]["sections"] for f in s["fields"])
    assert all(values[name] == value for name, value in STATIC.items())
    assert len(events) == 1 and events[0]["detail"] == "10.20.30.40/255.255.255.0" and "admin" in events[0]["by"]


# (form, field refused, English message, French message)
UNUSABLE = [
    ({"network.address": "10.20.30.0", "network.netmask": "255.255.255.0", "network.gateway": "10.20.30.1"},
     "network.address", "10.20.30.0 cannot be a device's address", "ne peut pas être l'adresse d'un appareil"),
    ({"network.address": "10.20.30.255", "network.netmask": "255.255.255.0", "network.gateway": "10.20.30.1"},
     "network.address", "cannot be a device's address", "adresse de réseau, de diffusion"),
    ({"network.address": "127.0.0.5", "network.netmask": "255.0.0.0", "network.gateway": ""},
     "network.address", "loopback", "bouclage"),
    ({"network.address": "10.20.30.40", "network.netmask": "255.255.255.0", "network.gateway": "10.20.31.1"},
     "network.gateway", "outside the network 10.20.30.0/24", "hors du réseau 10.20.30.0/24"),
    ({"network.address": "10.20.30.40", "network.netmask": "255.255.255.0", "network.gateway": "10.20.30.40"},
     "network.gateway", "cannot be the gateway's own address", "l'adresse de la passerelle elle-même"),
    ({"network.proxy.enabled": True, "network.proxy.host": ""},
     "network.proxy.host", "a proxy host is required", "un hôte de proxy est requis"),
    ({"network.netmask": "255.0.255.0"}, "network.netmask", "is not a network mask", "masque"),     # the schema's
]


def test_an_unusable_combination_is_refused_per_field_in_the_callers_language_and_nothing_is_applied(tmp_path):
    async def scenario(gw, base):
        english = await run(web_login, base, "admin", "en")
        french = await run(web_login, base, "cyber", "fr")
        settings_before, file_before = gw.settings.all(), _state_file(gw)
        out = []
        for form, field, _en, _fr in UNUSABLE:
            out.append((await run(english.post, PAGE, form), await run(french.post, PAGE, form)))
        applied, file_after = gw.board.network_applied, _state_file(gw)
        # DHCP on: the static fields are not used, so the same address is no problem
        dhcp = await run(english.post, PAGE, {"network.dhcp": True, "network.address": "10.20.30.0"})
        return out, settings_before, applied, (file_before, file_after), dhcp, gw.board.network, gw.settings.all()

    out, settings_before, applied, files, dhcp, network, settings_after = asyncio.run(_site(tmp_path, scenario))
    for (form, field, english_words, french_words), ((status_en, en), (status_fr, fr)) in zip(UNUSABLE, out):
        assert status_en == 400 and status_fr == 400, (form, en, fr)
        assert [m["field"] for m in en["messages"]] == [field], en
        assert english_words in en["messages"][0]["message"], en
        assert french_words in fr["messages"][0]["message"], fr
    assert applied == 0 and files == (None, None)                     # the board was never given any of them
    assert dhcp[0] == 200 and network["dhcp"] is True
    changed = dict((k, v) for k, v in settings_after.items() if settings_before[k] != v)
    assert changed == {"network.dhcp": True, "network.address": "10.20.30.0"}


def test_profiles_without_the_right_and_strangers_change_nothing_on_the_board(tmp_path):
    async def scenario(gw, base):
        answers = {"anonymous": await run(WebClient(base).post, PAGE, STATIC)}
        for profile in ("user", "advanced"):
            client = await run(web_login, base, profile)
            answers[profile] = await run(client.post, PAGE, STATIC)
            answers[profile + " /api/settings"] = await run(client.post, "/api/settings", STATIC)
        admin = await run(web_login, base, "admin")
        admin.csrf = "not-the-token"
        answers["admin without its token"] = await run(admin.post, PAGE, STATIC)
        return answers, gw.board.network_applied, _state_file(gw), gw.settings.get("network.address")

    answers, applied, state_file, address = asyncio.run(_site(tmp_path, scenario))
    assert answers["anonymous"][0] == 401
    assert all(status == 403 for name, (status, _a) in answers.items() if name != "anonymous"), answers
    assert applied == 0 and state_file is None and address == "192.168.0.4"


# ---------------------------------------------------------------- the Pi board's keyfiles

def _keyfile(path):
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str                       # keys are case-sensitive in a GLib key file
    with open(path, encoding="utf-8") as handle:
        parser.read_file(handle)
    return parser


def _config(**changes):
    values = {"network.dhcp": False, "network.address": "192.168.10.20", "network.netmask": "255.255.252.0",
              "network.gateway": "192.168.8.1", "network.dns1": "192.168.8.2", "network.dns2": "",
              "network.domain": "site.example", "network.proxy.enabled": True, "network.proxy.host": "proxy.site",
              "network.proxy.port": 3128, "network.vlan.enabled": False, "network.vlan.id": 1}
    values.update(changes)
    return netconfig.config_from_settings(values.get)


def test_the_pi_board_writes_a_networkmanager_keyfile_for_a_static_address(tmp_path):
    board = RpiBoard(network_root=str(tmp_path), interface="eth0")
    written = board.apply_network(_config(), state_dir=str(tmp_path / "state"))
    directory = tmp_path / "etc" / "NetworkManager" / "system-connections"
    assert written == [str(directory / "m70-wired.nmconnection")]
    assert sorted(os.listdir(directory)) == ["m70-wired.nmconnection"]        # no temporary file left
    mode = stat.S_IMODE(os.stat(written[0]).st_mode)
    assert mode == 0o600, oct(mode)                   # NetworkManager ignores a keyfile others may read
    keyfile = _keyfile(written[0])
    assert keyfile.sections() == ["connection", "ethernet", "ipv4", "ipv6"]
    connection = keyfile["connection"]
    assert connection["type"] == "ethernet" and connection["interface-name"] == "eth0"
    assert connection["id"] == "m70-wired" and uuid.UUID(connection["uuid"]).version == 5
    assert connection["autoconnect"] == "true" and int(connection["autoconnect-priority"]) > 0
    ipv4 = keyfile["ipv4"]
    assert ipv4["method"] == "manual"
    address, gateway = ipv4["address1"].split(",")
    assert ipaddress.IPv4Interface(address) == ipaddress.IPv4Interface("192.168.10.20/22")
    assert address == "192.168.10.20/22" and gateway == "192.168.8.1"
    assert ipv4["dns"] == "192.168.8.2;" and ipv4["dns-search"] == "site.example;"     # GLib lists end with ;
    assert "proxy" not in keyfile                     # NetworkManager's [proxy] knows PAC only: the proxy is ours
    # rewriting keeps the same connection (its uuid), so NetworkManager updates it rather than adding one
    board.apply_network(_config(**{"network.address": "192.168.10.21"}), state_dir=str(tmp_path))
    again = _keyfile(written[0])
    assert again["connection"]["uuid"] == connection["uuid"] and again["ipv4"]["address1"].startswith("192.168.10.21/")


def test_dhcp_and_vlan_keyfiles_and_vlan_off_removes_the_vlan_connection(tmp_path):
    board = RpiBoard(network_root=str(tmp_path))
    directory = tmp_path / "etc" / "NetworkManager" / "system-connections"
    board.apply_network(_config(**{"network.vlan.enabled": True, "network.vlan.id": 40}), str(tmp_path))
    assert sorted(os.listdir(directory)) == ["m70-vlan.nmconnection", "m70-wired.nmconnection"]
    wired, vlan = _keyfile(directory / "m70-wired.nmconnection"), _keyfile(directory / "m70-vlan.nmconnection")
    assert wired["ipv4"]["method"] == "disabled"                  # the address is on the tagged interface
    assert vlan["connection"]["type"] == "vlan" and vlan["connection"]["interface-name"] == "eth0.40"
    assert vlan["vlan"]["parent"] == "eth0" and vlan["vlan"]["id"] == "40"
    assert vlan["ipv4"]["method"] == "manual" and vlan["ipv4"]["address1"] == "192.168.10.20/22,192.168.8.1"
    assert vlan["connection"]["uuid"] != wired["connection"]["uuid"]
    assert stat.S_IMODE(os.stat(directory / "m70-vlan.nmconnection").st_mode) == 0o600
    board.apply_network(_config(**{"network.dhcp": True, "network.dns1": "", "network.domain": ""}), str(tmp_path))
    assert sorted(os.listdir(directory)) == ["m70-wired.nmconnection"]
    dhcp = _keyfile(directory / "m70-wired.nmconnection")
    assert dhcp["ipv4"]["method"] == "auto" and "address1" not in dhcp["ipv4"] and "dns" not in dhcp["ipv4"]
    board.apply_network(_config(**{"network.dhcp": True}), str(tmp_path))
    dns = _keyfile(directory / "m70-wired.nmconnection")["ipv4"]
    assert dns["dns"] == "192.168.8.2;" and dns["ignore-auto-dns"] == "true"       # the servers given, not DHCP's


def test_a_board_that_cannot_write_refuses_the_change_and_nothing_is_saved(tmp_path):
    blocker = tmp_path / "root"
    blocker.write_text("a file where the directory should be")

    async def scenario(gw, base):
        admin = await run(web_login, base, "admin")
        gw.board.apply_network = RpiBoard(network_root=str(blocker)).apply_network     # the Pi's writer, failing
        answer = await run(admin.post, PAGE, {"network.address": "192.168.0.50"})
        return answer, gw.settings.get("network.address")

    (status, answer), address = asyncio.run(_site(tmp_path, scenario))
    assert status == 503 and answer["reason"] == "storage", answer
    assert address == "192.168.0.4"


# ---------------------------------------------------------------- the settings page's reboot prompt, in Chromium

def test_the_network_page_refuses_an_unusable_gateway_then_saves_and_prompts_for_a_reboot(tmp_path):
    from browser_support import CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, browser_ready, shot
    from playwright.async_api import async_playwright
    axe = os.path.join(REPO, "tests", "web", "node_modules", "axe-core", "axe.min.js")
    browser_ready(axe)
    field = '[name="%s"]'.__mod__

    async def page_as(browser, base, profile, language, width, height):
        client = await run(web_login, base, profile, language)
        context = await browser.new_context(viewport={"width": width, "height": height})
        await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
        page = await context.new_page()
        await page.goto(base + "/settings?page=protocols.network", wait_until="load")
        await page.wait_for_function("() => document.querySelectorAll('#sections fieldset').length > 0")
        return page

    async def scenario(gw, base):
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await page_as(browser, base, "admin", "en", 1920, 1080)
                await page.fill(field("network.address"), "10.20.30.40")
                await page.fill(field("network.netmask"), "255.255.255.0")
                await page.click("#save")                       # the gateway 192.168.0.1 is outside 10.20.30.0/24
                await page.wait_for_selector("#message.bad")
                refused = (await page.text_content('[id="error-network.gateway"]'),
                           await page.is_hidden("#reboot-banner"), gw.board.network_applied)
                await page.fill(field("network.gateway"), "10.20.30.1")
                await page.click("#save")
                await page.wait_for_selector("#reboot-banner:not([hidden])")
                banner = await page.text_content("#reboot-text")
                applied = gw.board.network
                await page.screenshot(path=shot("settings-network-reboot-en-1920x1080.png"), full_page=True)
                await page.add_script_tag(path=axe)
                violations = await page.evaluate("""async () => (await axe.run(document)).violations
                    .filter((v) => v.impact === "critical" || v.impact === "serious").map((v) => v.id)""")
                answers = iter([False, True])
                page.on("dialog", lambda dialog: asyncio.ensure_future(
                    dialog.accept() if next(answers) else dialog.dismiss()))
                await page.click("#reboot-now")
                await page.wait_for_function("() => document.getElementById('reboot-result').textContent !== ''")
                declined = (await page.text_content("#reboot-result"),
                            [e for e in gw.alarms.events() if e.get("event") == "reboot"])
                await page.click("#reboot-now")
                await page.wait_for_function("() => document.getElementById('reboot-result').textContent"
                                             ".includes('restarting')")
                rebooted = [e for e in gw.alarms.events() if e.get("event") == "reboot"]
                french = await page_as(browser, base, "cyber", "fr", 768, 1024)
                await french.fill(field("network.domain"), "usine.example")
                await french.click("#save")
                await french.wait_for_selector("#reboot-banner:not([hidden])")
                narrow = await french.evaluate(PAGE_PROBE)
                await french.screenshot(path=shot("settings-network-reboot-fr-768x1024.png"), full_page=True)
                return refused, banner, applied, violations, declined, rebooted, narrow
            finally:
                await browser.close()

    refused, banner, applied, violations, declined, rebooted, narrow = asyncio.run(_site(tmp_path, scenario))
    assert refused == ("the gateway 192.168.0.1 is outside the network 10.20.30.0/24 of the address and mask", True, 0)
    assert banner == "Network settings saved; they take effect after a reboot."
    assert applied["address"] == "10.20.30.40" and applied["gateway"] == "10.20.30.1"
    assert violations == []
    assert declined == ("No reboot: the new network settings wait for the next one.", [])
    assert len(rebooted) == 1 and "admin" in rebooted[0]["by"]
    assert "Paramètres réseau enregistrés ; ils s'appliquent après un redémarrage." in narrow["text"]
    assert "Redémarrer maintenant" in narrow["text"] and narrow["scrollWidth"] <= narrow["innerWidth"]


def test_after_network_settings_the_pi_asks_for_a_system_reboot_through_the_watched_file(tmp_path):
    """The daemon restart alone would not apply keyfiles (NetworkManager reads them at boot): once the Pi board
    wrote them, a reboot is a system reboot, asked by the file deploy/open-m70-reboot.path watches."""
    board = RpiBoard(network_root=str(tmp_path))
    state = tmp_path / "state"
    state.mkdir()
    assert board.system_reboot_needed() is False                 # nothing written: a daemon restart is enough
    board.apply_network(_config(), str(state))
    assert board.system_reboot_needed() is True
    board.request_system_reboot(str(state))
    assert sorted(os.listdir(state)) == ["reboot-requested"]     # written whole (no temporary file left)
    with open(os.path.join(REPO, "deploy", "open-m70-reboot.path.in")) as handle:
        assert "PathExists=@STATE@/reboot-requested" in handle.read()
