"""Cyber Security's certificate page (``/security/https``, issue 15) in a real headless Chromium.

As the other page tests: Debian's Chromium under Playwright, the gateway on loopback ports serving HTTP and
HTTPS as the composition root does (tests/test_https.py ``web_pair``), a Cyber Security session made through
the real login routes and handed to the browser as its cookie. Cyber Security uploads a certificate and key
as files and the gateway then answers over HTTPS with that certificate, read back with Python's ``ssl``; the
page itself then works over HTTPS. A mismatched key, an expired certificate and a 4096-bit RSA key are each
refused with the catalogue's message next to the field, and the served certificate stays the old one. CAs
are added, listed and deleted. axe-core finds no critical or serious violation; screenshots EN/FR at
1920x1080 and 768 px go to tests/results/.
"""

import asyncio
import datetime

from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, axe, browser_ready, shot
from conftest import running_gateway, topology_with, web_login
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from test_https import Site, _ca, make_certificate, pem_key, sha256_of, web_pair

from daemon import i18n
from daemon.security.rights import Caller

READY = "html[data-ready='1']"


async def _with_browser(tmp_path, scenario):
    from playwright.async_api import async_playwright
    make_http, make_https = web_pair()
    async with running_gateway(tmp_path / "state", topology_with(), services=[make_http, make_https]) as gw:
        site = Site(gw, make_http.server, make_https.server)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                return await scenario(site, browser)
            finally:
                await browser.close()


async def _page(browser, site, language="en", width=1920, height=1080, base=None):
    """The certificate page as Cyber Security (logged in through the real routes in ``language``)."""
    base = base or site.base
    client = await asyncio.to_thread(web_login, site.base, "cyber", language)
    context = await browser.new_context(viewport={"width": width, "height": height}, ignore_https_errors=True)
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    page = await context.new_page()
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(base + "/security/https", wait_until="load")
    await page.wait_for_selector(READY)
    return page


def _now(site):
    return datetime.datetime.fromtimestamp(site.gw.clock.time(), datetime.timezone.utc)


def _files(tmp_path, **texts):
    paths = {}
    for name, text in texts.items():
        paths[name] = str(tmp_path / ("%s.pem" % name))
        with open(paths[name], "w") as handle:
            handle.write(text)
    return paths


def test_cyber_security_uploads_a_certificate_and_https_then_answers_with_it(tmp_path):
    browser_ready(AXE)
    key = ec.generate_private_key(ec.SECP256R1())

    async def scenario(site, browser):
        page = await _page(browser, site)
        before_text = await page.text_content("#web-details")
        port_line = await page.text_content("#web-port")
        old = (await asyncio.to_thread(site.served))[0]
        ca_key, _, ca_name = _ca(_now(site), "Site Root CA")
        cert = make_certificate(key, _now(site), name="meter-room.example", signer=(ca_key, ca_name, ca_key))
        files = _files(tmp_path, cert=cert, key=pem_key(key))
        await page.set_input_files("#certificate-file", files["cert"])
        await page.set_input_files("#key-file", files["key"])
        await page.wait_for_function("() => document.getElementById('key').value.includes('PRIVATE KEY')")
        await page.click("#install-submit")
        await page.wait_for_selector("#install-message.ok")
        message = await page.text_content("#install-message")
        await page.wait_for_function("() => document.getElementById('web-subject').textContent"
                                     ".includes('meter-room.example')")
        shown = {name: await page.text_content("#web-" + name) for name in ("subject", "issuer", "self-signed",
                                                                          "sha256")}
        served = (await asyncio.to_thread(site.served))[0]
        key_left = await page.input_value("#key")
        await page.screenshot(path=shot("https-installed-en-1920x1080.png"), full_page=True)
        # the page itself over HTTPS, with the new certificate (the browser is told to accept it)
        secure = await _page(browser, site, base=site.secure_base)
        secure_subject = await secure.text_content("#web-subject")
        secure_scheme = await secure.evaluate("() => location.protocol")
        assert port_line == i18n.text("web.https.served_on", port=site.https.port)     # the port bound, not 443
        return before_text, old, message, shown, served, cert, key_left, secure_subject, secure_scheme

    before_text, old, message, shown, served, cert, key_left, secure_subject, secure_scheme = asyncio.run(
        _with_browser(tmp_path, scenario))
    assert "self-signed" in before_text
    assert served == sha256_of(cert) != old                 # what OpenSSL receives is what was uploaded
    assert "meter-room.example" in message
    assert shown["subject"] == "CN=meter-room.example" and shown["issuer"] == "CN=Site Root CA"
    assert shown["self-signed"] == "No"
    assert shown["sha256"].replace(":", "").lower() == served
    assert key_left == ""                                   # the form is emptied: the key is not left on screen
    assert secure_scheme == "https:" and secure_subject == "CN=meter-room.example"


def test_a_mismatched_key_an_expired_certificate_and_a_4096_bit_key_are_refused_next_to_the_field(tmp_path):
    browser_ready(AXE)
    good = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    big = rsa.generate_private_key(65537, 4096)

    async def scenario(site, browser):
        now = _now(site)
        cases = (
            ("mismatch", make_certificate(good, now), pem_key(other), "key", "tls.mismatch"),
            ("expired", make_certificate(good, now, days=-2, start_days=-40), pem_key(good), "certificate",
             "tls.expired"),
            ("rsa4096", make_certificate(big, now), pem_key(big), "key", "tls.key_type"),
        )
        served, stored = (await asyncio.to_thread(site.served))[0], site.stored()
        found = []
        for language in ("en", "fr"):
            page = await _page(browser, site, language)
            for name, cert, key, field, catalogue_key in cases:
                await page.fill("#certificate", cert)
                await page.fill("#key", key)
                await page.click("#install-submit")
                await page.wait_for_selector("#install-message.bad")
                error = await page.text_content("#%s-error" % field)
                other_field = "key" if field == "certificate" else "certificate"
                found.append((language, name, error, i18n.text(catalogue_key, language),
                              await page.get_attribute("#" + field, "aria-invalid"),
                              await page.text_content("#%s-error" % other_field),
                              await page.text_content("#install-message"),
                              await page.evaluate("() => document.activeElement.id")))
                if name == "mismatch":
                    await page.screenshot(path=shot("https-refused-%s-1920x1080.png" % language), full_page=True)
                await page.evaluate("() => document.getElementById('install-message').className = 'message'")
            still = ((await asyncio.to_thread(site.served))[0], site.stored())
        return found, (served, stored), still

    found, before, after = asyncio.run(_with_browser(tmp_path, scenario))
    assert after == before                                  # nothing served or stored changed
    assert len(found) == 6
    for language, name, error, expected, invalid, other_error, message, focused in found:
        assert error == expected, (language, name, error)
        assert invalid == "true" and other_error == "", (language, name)
        assert message == i18n.text("web.https.refused", language)
        assert focused in ("certificate", "key")


def test_cas_are_added_listed_and_deleted_from_the_page(tmp_path):
    browser_ready(AXE)

    async def scenario(site, browser):
        page = await _page(browser, site)
        empty = await page.text_content("#cas tbody")
        now = _now(site)
        _, root, _ = _ca(now, "Site Root CA")
        _, other, _ = _ca(now, "Other CA")
        await page.fill("#ca", root + other)
        await page.click("#ca-submit")
        await page.wait_for_selector("#ca-message.ok")
        await page.wait_for_function("() => document.querySelectorAll('#cas tbody button').length === 2")
        rows = await page.eval_on_selector_all("#cas tbody tr", "(rows) => rows.map((r) => r.innerText)")
        stored = [c["subject"] for c in site.gw.webtls.cas]
        # not a CA: refused next to the field
        leaf = make_certificate(ec.generate_private_key(ec.SECP256R1()), now)
        await page.fill("#ca", leaf)
        await page.click("#ca-submit")
        await page.wait_for_selector("#ca-message.bad")
        refused = await page.text_content("#ca-error")
        await page.screenshot(path=shot("https-cas-en-1920x1080.png"), full_page=True)
        await page.click("#cas tbody tr:first-child button")
        await page.wait_for_function("() => document.querySelectorAll('#cas tbody button').length === 1")
        left = [c["subject"] for c in site.gw.webtls.cas]
        return empty, rows, stored, refused, left

    empty, rows, stored, refused, left = asyncio.run(_with_browser(tmp_path, scenario))
    assert empty.strip() == i18n.text("web.https.store_empty")
    assert stored == ["CN=Site Root CA", "CN=Other CA"]
    assert "CN=Site Root CA" in rows[0] and i18n.text("web.https.state_valid") in rows[0]
    assert refused == i18n.text("tls.not_ca")
    assert left == ["CN=Other CA"]


def test_the_page_passes_axe_fits_768_px_and_speaks_french(tmp_path):
    browser_ready(AXE)

    async def scenario(site, browser):
        _, root, _ = _ca(_now(site), "Site Root CA with a rather long name for narrow screens")
        await site.gw.door(Caller("web", "cyber")).add_ca_certificates(root)
        out = {}
        for language in ("en", "fr"):
            for width, height in ((1920, 1080), (768, 1024)):
                page = await _page(browser, site, language, width, height)
                probe = await page.evaluate(PAGE_PROBE)
                out[(language, width)] = (probe, await axe(page), await page.text_content("h1"))
                await page.screenshot(path=shot("https-%s-%dx%d.png" % (language, width, height)), full_page=True)
                await page.context.close()
        return out

    out = asyncio.run(_with_browser(tmp_path, scenario))
    for (language, width), (probe, violations, title) in out.items():
        assert violations == [], (language, width, violations)
        assert probe["unlabelled"] == [], (language, width)
        assert probe["scrollWidth"] <= probe["innerWidth"], (language, width, probe["scrollWidth"])
        assert probe["lang"] == language
        assert title == i18n.text("web.https.title", language)
    assert i18n.text("web.https.cas", "fr") in out[("fr", 1920)][0]["text"]
    assert i18n.text("web.https.cas", "en") not in out[("fr", 1920)][0]["text"]
