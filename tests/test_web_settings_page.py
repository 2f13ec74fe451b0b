"""The configuration page (``GET /settings``) in a real headless Chromium, driven by Playwright (issue 14).

As tests/test_web_login_page.py: Debian's ``/usr/bin/chromium`` on the gateway's loop, the gateway on a
loopback port, sessions made through the real login routes (conftest's web_login) and handed to the browser
as its cookie. Switching SNMP on from the Protocols page makes the agent answer net-snmp's ``snmpget`` at
once; a bad value shows its field's message and saves nothing (read back through the API); the French page
is French; the User profile gets the 403 page. axe-core (tests/web, npm) checks the Protocols page here and
every page in tests/test_web_every_page.py.
Screenshots in both languages go to tests/results/ (git-ignored).
"""

import asyncio

from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, axe, browser_ready, shot
from conftest import running_gateway, topology_with, wait_for, web_login, web_server
from protocols.snmp.agent import SnmpService
from snmp_support import run as snmp_run

SYS_NAME = "1.3.6.1.2.1.1.5.0"

FORM_READY = "() => document.querySelectorAll('#sections fieldset').length > 0"


async def _with_browser(tmp_path, overrides, scenario, services=()):
    from playwright.async_api import async_playwright
    web = web_server()
    async with running_gateway(tmp_path / "state", topology_with(), overrides, services=[web] + list(services)) as gw:
        base = "http://127.0.0.1:%d" % web.server.port
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                return await scenario(gw, base, browser)
            finally:
                await browser.close()


async def _page_as(browser, base, profile, language="en", width=1920, height=1080):
    """A browser page whose cookie is a session of ``profile`` logged in through the real routes; and the client."""
    client = await asyncio.to_thread(web_login, base, profile, language)
    context = await browser.new_context(viewport={"width": width, "height": height})
    if client.cookie:
        await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    return await context.new_page(), client


def _field(name):
    return '[name="%s"]' % name


def test_switching_snmp_on_from_the_protocols_page_makes_the_agent_answer_snmpget(tmp_path):
    browser_ready(AXE)
    overrides = {"snmp.enabled": False, "snmp.port": 0, "snmp.bind": "127.0.0.1"}

    async def scenario(gw, base, browser):
        agent = gw.services[1]
        # Admin switches the service on (configuration); its port stays Cyber Security's (SPEC §8)
        page, admin = await _page_as(browser, base, "admin")
        await page.goto(base + "/settings?page=protocols.field", wait_until="load")
        await page.wait_for_function(FORM_READY)
        admin_disabled = await page.is_disabled(_field("snmp.port"))
        admin_may_trap = await page.is_enabled(_field("snmp.trap.port1"))
        running_before = agent.running
        await page.check(_field("snmp.enabled"))
        await page.fill(_field("snmp.v2c.read_community"), "public")
        await page.click("#save")
        await page.wait_for_selector("#message.ok")
        confirmation = await page.text_content("#message-text")
        await page.screenshot(path=shot("settings-protocols-en-1920x1080.png"), full_page=True)
        await wait_for(lambda: agent.running and agent.port, guard=30)
        rc, out, err = await snmp_run("snmpget", "-On", "-v2c", "-c", "public", "-r", "1", "-t", "2",
                                      "127.0.0.1:%d" % agent.port, SYS_NAME)
        status, answer = await asyncio.to_thread(admin.get, "/api/settings/page/protocols.field")
        fields = dict((f["name"], f) for s in answer["sections"] for f in s["fields"])
        checked_after_reload = await page.is_checked(_field("snmp.enabled"))
        secret_box_empty = await page.input_value(_field("snmp.v2c.read_community"))
        violations = await axe(page)
        return (admin_disabled, admin_may_trap, running_before, confirmation, rc, out + err, status, fields,
                checked_after_reload, secret_box_empty, violations)

    (admin_disabled, admin_may_trap, running_before, confirmation, rc, text, status, fields, checked,
     secret_box, violations) = asyncio.run(_with_browser(tmp_path, overrides, scenario, [SnmpService]))
    assert admin_disabled and admin_may_trap
    assert not running_before
    assert confirmation == "Saved; the changes apply now."
    assert rc == 0 and '"M-70"' in text, text
    assert status == 200 and fields["snmp.enabled"]["value"] is True
    assert fields["snmp.v2c.read_community"]["set"] == "set" and "value" not in fields["snmp.v2c.read_community"]
    assert checked and secret_box == ""                  # the form shows what was saved; a secret never comes back
    assert violations == [], violations


def test_the_policy_page_turns_snmp_off_and_the_port_stops_answering(tmp_path):
    """Issue 15: Cyber Security unticks SNMP on the security policy page; the agent closes at once (snmpget, an
    independent client, then times out), though its configuration still says enabled."""
    browser_ready(AXE)
    overrides = {"snmp.enabled": True, "snmp.port": 0, "snmp.bind": "127.0.0.1",
                 "snmp.v2c.read_community": "public"}

    async def scenario(gw, base, browser):
        agent = gw.services[1]
        await wait_for(lambda: agent.running and agent.port, guard=30)
        port = agent.port
        before = await snmp_run("snmpget", "-On", "-v2c", "-c", "public", "-r", "1", "-t", "2",
                                "127.0.0.1:%d" % port, SYS_NAME)
        page, _cyber = await _page_as(browser, base, "cyber")
        await page.goto(base + "/settings?page=security.policy", wait_until="load")
        await page.wait_for_function(FORM_READY)
        await page.uncheck(_field("policy.snmp"))
        await page.click("#save")
        await page.wait_for_selector("#message.ok")
        await wait_for(lambda: not agent.running, guard=30)
        after = await snmp_run("snmpget", "-On", "-v2c", "-c", "public", "-r", "0", "-t", "1",
                               "127.0.0.1:%d" % port, SYS_NAME)
        await page.screenshot(path=shot("settings-policy-en-1920x1080.png"), full_page=True)
        return before, after, gw.settings.get("snmp.enabled"), await axe(page)

    before, after, configured, violations = asyncio.run(_with_browser(tmp_path, overrides, scenario, [SnmpService]))
    assert before[0] == 0 and '"M-70"' in before[1] + before[2], before
    assert after[0] != 0 and "Timeout" in after[1] + after[2], after          # the port no longer answers
    assert configured is True                                                  # the policy, not the setting
    assert violations == [], violations


def test_a_bad_value_shows_its_fields_message_and_nothing_is_saved(tmp_path):
    browser_ready(AXE)

    async def scenario(gw, base, browser):
        page, admin = await _page_as(browser, base, "admin", width=768, height=1024)
        await page.goto(base + "/settings?page=protocols.network", wait_until="load")
        await page.wait_for_function(FORM_READY)
        before = gw.settings.all()
        await page.fill(_field("network.address"), "999.1.2.3")
        await page.fill(_field("network.vlan.id"), "70000")
        await page.fill(_field("network.domain"), "site.example")       # valid, but the form is all or nothing
        await page.click("#save")
        await page.wait_for_selector("#message.bad")
        refused = {
            "address": await page.text_content('[id="error-network.address"]'),
            "vlan": await page.text_content('[id="error-network.vlan.id"]'),
            "domain": await page.text_content('[id="error-network.domain"]'),
            "invalid": await page.get_attribute(_field("network.address"), "aria-invalid"),
            "described": await page.get_attribute(_field("network.address"), "aria-describedby"),
            "focused": await page.evaluate("() => document.activeElement.name"),
            "message": await page.text_content("#message-text"),
        }
        probe = await page.evaluate(PAGE_PROBE)
        await page.screenshot(path=shot("settings-refused-en-768x1024.png"), full_page=True)
        status, answer = await asyncio.to_thread(admin.get, "/api/settings/page/protocols.network")
        read_back = dict((f["name"], f.get("value")) for s in answer["sections"] for f in s["fields"])
        after_refusal = gw.settings.all()
        # corrected: saved, and the page says the network applies after a restart
        await page.fill(_field("network.address"), "192.168.0.40")
        await page.fill(_field("network.vlan.id"), "40")
        await page.click("#save")
        await page.wait_for_selector("#message.ok")
        saved = (await page.text_content("#message-text"), await page.text_content("#restart-note"),
                 await page.get_attribute(_field("network.address"), "aria-invalid"))
        # Cancel puts back what is saved
        await page.fill(_field("network.domain"), "other.example")
        await page.click("#cancel")
        await page.wait_for_function("() => document.querySelector('[name=\"network.domain\"]').value === "
                                     "'site.example'")
        return before, after_refusal, refused, probe, read_back, saved, gw.settings.get("network.address")

    before, after_refusal, refused, probe, read_back, saved, address = asyncio.run(
        _with_browser(tmp_path, None, scenario))
    assert after_refusal == before
    assert refused["address"] == "'999.1.2.3' is not an IPv4 address such as 192.168.0.4", refused
    assert refused["vlan"] == "70000 is outside 1..4094" and refused["domain"] == ""
    assert refused["invalid"] == "true" and "error-network.address" in refused["described"].split()
    assert refused["focused"] == "network.address"
    assert refused["message"] == "Nothing was saved: correct the fields marked below."
    assert read_back["network.address"] == "192.168.0.4" and read_back["network.vlan.id"] == 1
    assert read_back["network.domain"] == ""
    assert probe["scrollWidth"] <= probe["innerWidth"] and probe["unlabelled"] == [], probe      # usable at 768 px
    assert saved[0] == "Saved; some changes apply only after a restart of the gateway."
    assert saved[1].startswith("Restart the gateway to apply: ") and saved[2] is None, saved
    assert address == "192.168.0.40"


def test_the_french_page_is_french_and_its_menu_lists_the_pages(tmp_path):
    """The French words the vendor uses, and the menu of pages. axe-core, labels, the lang attribute, no English
    text and the 768 px width on every configuration page are tests/test_web_every_page.py's."""
    browser_ready()

    async def scenario(gw, base, browser):
        page, _cyber = await _page_as(browser, base, "cyber", "fr")
        await page.goto(base + "/settings?page=protocols.field", wait_until="load")
        await page.wait_for_function(FORM_READY)
        await page.wait_for_function("() => document.documentElement.lang === 'fr'")
        french = await page.evaluate(PAGE_PROBE)
        await page.screenshot(path=shot("settings-protocols-fr-1920x1080.png"), full_page=True)
        links = await page.eval_on_selector_all("#menus a", "links => links.map((a) => a.getAttribute('href'))")
        return french, links

    french, links = asyncio.run(_with_browser(tmp_path, None, scenario))
    for words in ("Protocoles terrain", "Activation SNMP", "Enregistrer", "Annuler", "Protocoles", "Cybersécurité",
                  "Connecté en tant que Cyber Sécurité", "Aucune"):
        assert words in french["text"], words
    assert len(links) >= 10 and "/settings?page=devices.notifications" in links


def test_the_user_profile_gets_the_refusal_page_and_an_anonymous_browser_the_login_page(tmp_path):
    browser_ready(AXE)

    async def scenario(gw, base, browser):
        page, _user = await _page_as(browser, base, "user")
        response = await page.goto(base + "/settings?page=protocols.field", wait_until="load")
        refused = (response.status, await page.text_content("#forbidden"), await page.query_selector("#sections"))
        await page.screenshot(path=shot("settings-user-refused-en.png"))
        anonymous = await (await browser.new_context()).new_page()
        await anonymous.goto(base + "/settings", wait_until="load")
        return refused, anonymous.url

    refused, landed = asyncio.run(_with_browser(tmp_path, None, scenario))
    assert refused[0] == 403 and refused[1] == "The User profile cannot open the configuration pages." and \
        refused[2] is None
    assert landed.endswith("/login")


def test_a_line_speed_is_chosen_among_the_standard_speeds_and_saved_as_a_number(tmp_path):
    async def scenario(gw, base, browser):
        page, admin = await _page_as(browser, base, "admin", language="fr")
        await page.goto(base + "/settings?page=protocols.field", wait_until="load")
        await page.wait_for_function(FORM_READY)
        options = await page.eval_on_selector_all(_field("bus.rs485.baud") + " option",
                                                  "options => options.map(o => [o.value, o.textContent])")
        tag = await page.eval_on_selector(_field("bus.rs485.baud"), "e => e.tagName")
        await page.select_option(_field("bus.rs485.baud"), "19200")
        await page.click("#save")
        await page.wait_for_selector("#message.ok")
        # a speed no meter offers is refused at the door, whatever the form allows (a hand-made request)
        refused = await asyncio.to_thread(admin.post, "/api/settings", {"bus.rs485.baud": 20000})
        return tag, options, gw.settings.get("bus.rs485.baud"), refused

    tag, options, saved, (status, answer) = asyncio.run(_with_browser(tmp_path, None, scenario))
    assert tag == "SELECT"
    # the standard RS485 speeds, 9600 with the 10-device limit of SPEC §1
    assert [value for value, _ in options] == ["9600", "19200", "38400", "57600", "115200"]
    assert options[0][1] == "9600 bauds (10 appareils au plus)" and options[2][1] == "38400 bauds"
    assert saved == 19200 and type(saved) is int
    assert status == 400 and "bus.rs485.baud" in str(answer)


def test_log_off_from_a_configuration_page_ends_the_session_on_the_gateway(tmp_path):
    async def scenario(gw, base, browser):
        page, admin = await _page_as(browser, base, "admin")
        await page.goto(base + "/settings?page=protocols.field", wait_until="load")
        await page.wait_for_function(FORM_READY)
        label = await page.text_content("#logoff")
        before = await asyncio.to_thread(admin.get, "/api/session")
        await page.click("#logoff")
        await page.wait_for_url("**/login")
        after = await asyncio.to_thread(admin.get, "/api/session")       # the same cookie, asked again
        return label, before, after

    label, (status_before, before), (status_after, after) = asyncio.run(_with_browser(tmp_path, None, scenario))
    assert label == "Log off"
    assert status_before == 200 and before["logged_in"] is True and before["profile"] == "admin"
    assert status_after == 200 and after["logged_in"] is False
