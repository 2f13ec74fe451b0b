"""The daemon's firewall in every service, driven from several loopback addresses (issue 15, SPEC §8).

One gateway runs HTTP, Modbus TCP, SNMP and BACnet on 127.0.0.1 with the firewall on and a low rate (50
requests/s). For each protocol a client at its own address (127.0.1.x: Linux answers for all of
127.0.0.0/8, so a client socket can bind any of them) sends 150 requests in one burst: it is banned (HTTP:
429 and the connection closed; Modbus TCP: the connection closed; SNMP and BACnet: datagrams dropped), a
request it sends afterwards is refused, while 127.0.0.2 keeps being served; alarm 7 is raised once per ban
with the client's address (not once per refused packet) and the ban is one audit event. Then the whitelist,
edited through the Cyber Security page's API: a rule for 127.0.0.2 admits it on every protocol, 127.0.0.3
is refused on every one, a rule limited to HTTP keeps the test's own web client (127.0.0.1) out of Modbus;
a refused rule gets one message per field. A short ban ends and its alarm clears. Asserts are counts only.
"""

import asyncio
import contextlib
import os
import socket
import struct

import bacnet_support  # noqa: F401,I001 (first: it puts tests/bacnet on the path)
from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, axe, browser_ready, shot
from bacnet_peer import DEVICE, PROP, frame_read_property
from conftest import (commission_accounts, demo_devices, demo_topology, running_gateway, wait_for, web_login,
                      web_server)
from core import modbus_rtu as rtu
from protocols.bacnet import BacnetService
from protocols.modbus.tcp import ModbusTcpService
from protocols.snmp import ber
from protocols.snmp.agent import SnmpService

RATE = 50
BURST = 3 * RATE                        # sent at once: well over one second's allowance
GOOD, OTHER = "127.0.0.2", "127.0.0.3"
FLOODERS = {"http": "127.0.1.1", "modbus": "127.0.1.2", "snmp": "127.0.1.3", "bacnet": "127.0.1.4"}
SETTINGS = {"firewall.enabled": True, "firewall.max_requests_per_s": RATE, "firewall.ban_s": 600,
            "modbus.port": 0, "modbus.bind": "127.0.0.1",
            "snmp.enabled": True, "snmp.port": 0, "snmp.bind": "127.0.0.1",
            "bacnet.enabled": True, "bacnet.port": 0, "bacnet.bind": "127.0.0.1"}
QUIET_S = 1.5                           # how long a datagram client waits for answers that do not come


def _tcp(source, port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def _read_all(sock, enough):
    """Bytes until the server closes, ``enough(data)`` says so, or it stays quiet for QUIET_S."""
    data = b""
    sock.settimeout(QUIET_S)
    with contextlib.suppress(OSError):
        while not enough(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def http_burst(source, port, count):
    """(answers 200, answers 429) of ``count`` pipelined GETs on one connection from ``source``."""
    sock = _tcp(source, port)
    try:
        sock.sendall(b"GET /api/session HTTP/1.1\r\nHost: gw\r\n\r\n" * count)
        data = _read_all(sock, lambda d: d.count(b"HTTP/1.1 ") >= count)
    finally:
        sock.close()
    return data.count(b"HTTP/1.1 200 "), data.count(b"HTTP/1.1 429 ")


def modbus_burst(source, port, count):
    """Answers to ``count`` pipelined reads of the gateway table (unit 255) from ``source``."""
    pdu = rtu.read_request(3, 0, 1)
    frames = b"".join(struct.pack(">HHHB", i, 0, len(pdu) + 1, 255) + pdu for i in range(count))
    sock = _tcp(source, port)
    try:
        sock.sendall(frames)
        data = _read_all(sock, lambda d: len(d) >= count * 11)
    finally:
        sock.close()
    answers, at = 0, 0
    while at + 6 <= len(data):
        at += 6 + struct.unpack_from(">H", data, at + 4)[0]
        answers += at <= len(data)
    return answers


def _datagrams(source, port, payloads):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    try:
        for payload in payloads:
            sock.sendto(payload, ("127.0.0.1", port))
        answers = 0
        sock.settimeout(QUIET_S)
        with contextlib.suppress(OSError):
            while answers < len(payloads):
                sock.recvfrom(70000)
                answers += 1
        return answers
    finally:
        sock.close()


def snmp_burst(source, port, count):
    oid = (1, 3, 6, 1, 2, 1, 1, 5, 0)
    return _datagrams(source, port, [ber.encode_request(1, b"publicV2", ber.GET, 100 + i, [oid])
                                     for i in range(count)])


def bacnet_burst(source, port, count):
    return _datagrams(source, port, [frame_read_property(i % 256, DEVICE, 100, PROP["object_name"])
                                     for i in range(count)])


class FirewallSite:
    """The demo site with HTTP, Modbus TCP, SNMP and BACnet on 127.0.0.1 and the firewall on."""

    def __init__(self, tmp_path):
        self.state_dir = tmp_path / "state"

    async def __aenter__(self):
        commission_accounts(str(self.state_dir))
        self.web = web_server()
        async with contextlib.AsyncExitStack() as stack:
            self.gw = await stack.enter_async_context(running_gateway(
                self.state_dir, demo_topology(), SETTINGS,
                services=[ModbusTcpService, SnmpService, BacnetService, self.web]))
            await self.gw.topology.replace(demo_devices())
            await wait_for(lambda: all(getattr(s, "running", True) for s in self.gw.services))
            bacnet = self.service("bacnet")
            await wait_for(lambda: bacnet.stack is not None and bacnet.stack.settled())
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc):
        return await self._stack.__aexit__(*exc)

    def service(self, name):
        return next(s for s in self.gw.services if getattr(s, "name", "web") == name)

    def port(self, protocol):
        if protocol == "http":
            return self.web.server.port
        return self.service(protocol).port

    async def served(self, protocol, source, count=1):
        """How many of ``count`` requests from ``source`` were answered (HTTP: with 200)."""
        port = self.port(protocol)
        if protocol == "http":
            return (await asyncio.to_thread(http_burst, source, port, count))[0]
        burst = {"modbus": modbus_burst, "snmp": snmp_burst, "bacnet": bacnet_burst}[protocol]
        return await asyncio.to_thread(burst, source, port, count)

    async def events(self):
        """The event log once written (while a record is being written, events() lists it twice)."""
        await self.gw.alarms.flush()
        return self.gw.alarms.events()

    async def raised(self, ip):
        return [e for e in await self.events()
                if e.get("event") == "raised" and e.get("alarm") == 7 and e.get("source") == "firewall:" + ip]

    async def bans_audited(self, ip):
        return [e for e in await self.events() if e.get("event") == "firewall-ban" and e.get("client") == ip]


def test_a_flooding_client_is_banned_on_each_protocol_while_another_is_served(tmp_path):
    async def scenario():
        async with FirewallSite(tmp_path) as site:
            for protocol, flooder in FLOODERS.items():
                assert await site.served(protocol, GOOD) == 1, protocol
                answered = await site.served(protocol, flooder, BURST)
                assert 1 <= answered < BURST, (protocol, answered)           # served until over the rate
                assert flooder in site.gw.firewall.firewall.banned(), protocol
                assert await site.served(protocol, flooder) == 0, protocol   # still refused afterwards
                assert await site.served(protocol, GOOD) == 1, protocol      # the other client is served
                assert len(await site.raised(flooder)) == 1, protocol              # once per ban, not per packet
                audited = await site.bans_audited(flooder)
                assert len(audited) == 1 and audited[0]["outcome"] == "refused", audited
                assert audited[0]["protocol"] == protocol and audited[0]["category"] == "audit", audited
            # the HTTP refusal is a 429; each service counts what the firewall refused
            assert (await asyncio.to_thread(http_burst, FLOODERS["http"], site.port("http"), 1)) == (0, 1)
            assert site.service("modbus").stats["closed_firewall"] >= 1
            assert site.service("snmp").dropped["firewall"] >= 1
            assert site.service("bacnet").site.counters["firewall_dropped"] >= 1
            active = dict((key, state) for key, state in site.gw.alarms.active.items() if key[0] == 7)
            assert sorted(active) == sorted((7, "firewall:" + ip) for ip in FLOODERS.values())
            assert all(ip in active[(7, "firewall:" + ip)]["detail"] for ip in FLOODERS.values())
    asyncio.run(scenario())


def test_the_whitelist_admits_only_matching_clients_and_is_edited_per_field(tmp_path):
    rules = [{"name": "plant", "mac": "*", "ip": GOOD, "protocols": "*", "ports": "*"},
             {"name": "engineer", "mac": "*", "ip": "127.0.0.1", "protocols": ["http"], "ports": "*"}]

    async def scenario():
        async with FirewallSite(tmp_path) as site:
            base = "http://127.0.0.1:%d" % site.port("http")
            cyber = await asyncio.to_thread(web_login, base, "cyber")
            bad = [dict(rules[0], ip="10.*.0.1", ports=[0]), dict(rules[1], mac="AA:BB", protocols=["ftp"])]
            status, answer = await asyncio.to_thread(cyber.post, "/api/firewall/rules", {"rules": bad})
            assert status == 400, answer
            assert sorted(m["field"] for m in answer["messages"]) == ["0.ip", "0.ports", "1.mac", "1.protocols"]
            assert (await asyncio.to_thread(cyber.get, "/api/firewall/rules"))[1]["rules"] == []   # nothing kept
            status, answer = await asyncio.to_thread(cyber.post, "/api/firewall/rules", {"rules": rules * 6})
            assert status == 400 and [m["field"] for m in answer["messages"]] == ["rules"], answer
            status, answer = await asyncio.to_thread(cyber.post, "/api/firewall/rules", {"rules": rules})
            assert status == 200 and answer["rules"] == rules, answer
            status, answer = await asyncio.to_thread(cyber.post, "/api/settings", {"firewall.whitelist.enabled": True})
            assert status == 200, answer
            for protocol in FLOODERS:
                assert await site.served(protocol, GOOD) == 1, protocol
                assert await site.served(protocol, OTHER) == 0, protocol
            assert await site.served("modbus", "127.0.0.1") == 0             # the HTTP-only rule
            status, answer = await asyncio.to_thread(cyber.get, "/api/firewall/rules")
            assert status == 200 and answer["enabled"] is True and answer["rules"] == rules
            with open(os.path.join(site.state_dir, "firewall-rules.json")) as handle:
                assert '"plant"' in handle.read()
            with open(os.path.join(site.state_dir, "firewall.nft")) as handle:    # the simulated board's record
                ruleset = handle.read()
            assert "ip saddr 127.0.0.2" in ruleset and "ip saddr 127.0.0.1" in ruleset
            changed = [e for e in await site.events() if e.get("event") == "firewall-rules-changed"]
            assert len(changed) == 1 and changed[0]["profile"] == "cyber" and changed[0]["new"] == 2, changed
            # Admin may not edit the rules, nor open the page
            admin = await asyncio.to_thread(web_login, base, "admin")
            status, answer = await asyncio.to_thread(admin.post, "/api/firewall/rules", {"rules": []})
            assert status == 403, answer
    asyncio.run(scenario())


def test_a_ban_ends_and_its_alarm_clears(tmp_path):
    async def scenario():
        async with FirewallSite(tmp_path) as site:
            await site.gw.settings.set_many({"firewall.ban_s": 1})
            flooder = "127.0.1.9"
            assert await site.served("snmp", flooder, BURST) < BURST
            assert len(await site.raised(flooder)) == 1          # (its 1 s may be over already)
            await wait_for(lambda: (7, "firewall:" + flooder) not in site.gw.alarms.active, guard=20)
            assert await site.served("snmp", flooder) == 1                  # served again
            cleared = [e for e in await site.events() if e.get("event") == "cleared"
                       and e.get("source") == "firewall:" + flooder]
            assert len(cleared) == 1 and len(await site.raised(flooder)) == 1
    asyncio.run(scenario())


# ---------------------------------------------------------------- the rules page in Chromium



async def _page_as(browser, base, profile, language="en", width=1920, height=1080):
    client = await asyncio.to_thread(web_login, base, profile, language)
    context = await browser.new_context(viewport={"width": width, "height": height})
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    page = await context.new_page()
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(base + "/security/firewall-rules", wait_until="load")
    await page.wait_for_selector("html[data-ready='1']")
    return page


def test_the_rules_page_adds_edits_and_deletes_a_rule_and_says_each_refused_field(tmp_path):
    browser_ready(AXE)
    from playwright.async_api import async_playwright

    async def scenario():
        commission_accounts(str(tmp_path / "state"))
        web = web_server()
        async with running_gateway(tmp_path / "state", demo_topology(), {}, services=[web]) as gw:
            base = "http://127.0.0.1:%d" % web.server.port
            out = {}
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = await _page_as(browser, base, "cyber")
                    out["empty"] = await page.is_visible("#empty")
                    await page.click("#add")
                    await page.fill("#f-name", "scada")
                    await page.fill("#f-mac", "AA:BB")
                    await page.fill("#f-ip", "10.*.0.1")
                    await page.fill("#f-ports", "502, x")
                    await page.click("#save")
                    await page.wait_for_selector("#rule-message.bad")
                    out["errors"] = {}
                    for field in ("name", "mac", "ip", "ports", "protocols"):
                        out["errors"][field] = await page.text_content("#e-" + field)
                    out["focused"] = await page.evaluate("() => document.activeElement.id")
                    out["refused"] = await page.text_content("#rule-message")
                    out["after_refusal"] = gw.firewall.rules()
                    await page.screenshot(path=shot("firewall-rules-refused-en-1920x1080.png"), full_page=True)
                    await page.fill("#f-mac", "*")
                    await page.fill("#f-ip", "192.168.1.*")
                    await page.fill("#f-ports", "502")
                    await page.uncheck("#f-protocols input[value='*']")
                    await page.check("#f-protocols input[value='modbus']")
                    await page.click("#save")
                    await page.wait_for_selector("#page-message.ok")
                    out["saved"] = gw.firewall.rules()
                    out["table"] = await page.text_content("#rules")
                    out["probe"] = await page.evaluate(PAGE_PROBE)
                    out["axe-en"] = await axe(page)
                    await page.screenshot(path=shot("firewall-rules-en-1920x1080.png"), full_page=True)
                    await page.click("#rules button:has-text('Edit')")
                    await page.fill("#f-name", "scada-2")
                    await page.click("#save")
                    await page.wait_for_function("() => document.getElementById('rules').textContent"
                                                 ".includes('scada-2')")
                    out["edited"] = [rule["name"] for rule in gw.firewall.rules()]
                    fr = await _page_as(browser, base, "cyber", "fr", 768, 1024)
                    out["fr"] = await fr.evaluate(PAGE_PROBE)
                    out["axe-fr"] = await axe(fr)
                    await fr.click("#add")
                    await fr.screenshot(path=shot("firewall-rules-fr-768x1024.png"), full_page=True)
                    await page.click("#rules button:has-text('Delete')")
                    await page.wait_for_selector("#empty:not([hidden])")
                    out["deleted"] = gw.firewall.rules()
                    admin = await _page_as_admin(browser, base)
                    out["admin"] = admin
                finally:
                    await browser.close()
            return out

    out = asyncio.run(scenario())
    assert out["empty"] is True
    assert out["errors"]["mac"] and out["errors"]["ip"] and out["errors"]["ports"], out["errors"]
    assert out["errors"]["name"] == "" and out["errors"]["protocols"] == ""
    assert out["focused"] == "f-mac" and out["after_refusal"] == []                 # refused: nothing stored
    assert out["saved"] == [{"name": "scada", "mac": "*", "ip": "192.168.1.*", "protocols": ["modbus"],
                             "ports": [502]}]
    assert "192.168.1.*" in out["table"] and "Modbus TCP" in out["table"]
    assert out["refused"] == "The rule was not saved: correct the fields marked below."
    assert out["edited"] == ["scada-2"] and out["deleted"] == []
    for probe in (out["probe"], out["fr"]):
        assert probe["unlabelled"] == [] and probe["scrollWidth"] <= probe["innerWidth"], probe
    assert out["fr"]["lang"] == "fr" and "Règles du pare-feu" in out["fr"]["text"]
    assert out["axe-en"] == [] and out["axe-fr"] == [], (out["axe-en"], out["axe-fr"])
    assert out["admin"] == 403


async def _page_as_admin(browser, base):
    """The status of the page for Admin (not Cyber Security): refused."""
    client = await asyncio.to_thread(web_login, base, "admin")
    context = await browser.new_context()
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    page = await context.new_page()
    response = await page.goto(base + "/security/firewall-rules", wait_until="load")
    return response.status
