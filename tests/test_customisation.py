"""Application customisation (issue 14, SPEC §7.2): the company logo and the background picture.

Over real HTTP on loopback: a picture uploaded by Admin or Cyber Security is served back byte for byte with
its type, ``nosniff`` and a validator; every kind of bad file (SVG, a declared type that is not the file's,
text posing as a picture, a damaged PNG or JPEG, too many bytes or pixels, empty) is refused with a message
in the caller's language and the stored picture stays as it was (served bytes and file compared); other
profiles and strangers change nothing; the default comes back on delete. The header parser is also checked
against pictures Chromium's own encoder makes (canvas PNG and JPEG), which share nothing with ours. The
page is driven in Chromium: upload, preview, a refusal shown, removal, axe-core, screenshots EN/FR at 1920
and 768 px, and the logo in the other pages' headers.
"""

import asyncio
import base64
import os
import struct
import zlib

from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, axe, browser_ready, shot
from conftest import (
    WebClient,
    running_gateway,
    topology_with,
    web_login,
    web_server,
)

from daemon import pictures



def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width, height, extra=b""):
    """A well-formed greyscale PNG of ``width`` x ``height`` (rows of zeros), ``extra`` in a private chunk."""
    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + (chunk(b"teXt", extra) if extra else b"") + chunk(b"IDAT", zlib.compress(rows))
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b"")


def jpeg(width, height, eoi=True):
    """A JPEG's segment structure (SOI, APP0, DQT, SOF0, DHT, SOS, scan bytes, EOI), enough for a header parser."""
    def segment(marker, data):
        return b"\xff" + bytes([marker]) + struct.pack(">H", len(data) + 2) + data
    out = b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    out += segment(0xDB, b"\x00" + bytes(range(1, 65)))
    out += segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    out += segment(0xC4, b"\x00" + bytes([0, 1] + [0] * 14) + b"\x00")
    out += segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\x12\x34\xff\x00\x56"
    return out + (b"\xff\xd9" if eoi else b"")


def run(call, *args):
    return asyncio.to_thread(call, *args)


def upload(client, kind, data, content_type):
    return client.request("POST", "/api/customisation/" + kind, raw=data, headers={"Content-Type": content_type})


async def _site(tmp_path, scenario):
    web = web_server()
    async with running_gateway(tmp_path / "state", topology_with(), services=[web]) as gw:
        return await scenario(gw, "http://127.0.0.1:%d" % web.server.port)


def stored(gw, kind):
    path = os.path.join(gw.state_dir, "customisation", kind)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as handle:
        return handle.read()


def test_a_logo_uploaded_by_admin_is_served_back_with_its_type_nosniff_and_a_validator(tmp_path):
    logo = png(300, 120)

    async def scenario(gw, base):
        admin = await run(web_login, base, "admin")
        before = await run(WebClient(base).get, "/api/customisation")
        none = await run(WebClient(base).request, "GET", "/customisation/logo")
        status, answer, _h = await run(upload, admin, "logo", logo, "image/png")
        anonymous = WebClient(base)
        served = await run(anonymous.request, "GET", "/customisation/logo")
        again = await run(anonymous.request, "GET", "/customisation/logo", None, {"If-None-Match": served[2]["ETag"]})
        state = await run(anonymous.get, "/api/customisation")
        return before, none, (status, answer), served, again, state, stored(gw, "logo")

    before, none, (status, answer), served, again, state, on_disk = asyncio.run(_site(tmp_path, scenario))
    assert before[0] == 200 and before[1]["pictures"] == {"logo": None, "background": None}
    assert none[0] == 404
    assert status == 200 and answer["picture"]["width"] == 300 and answer["picture"]["height"] == 120, answer
    assert answer["picture"]["type"] == "image/png" and answer["picture"]["size"] == len(logo)
    body, headers = served[1], served[2]
    assert served[0] == 200 and body == logo and headers["Content-Type"] == "image/png"
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["ETag"]
    assert again[0] == 304 and again[1] in (b"", "")
    assert state[1]["pictures"]["logo"]["version"] in headers["ETag"]
    assert on_disk == logo


BAD = [  # (kind, body, declared type, catalogue words EN, FR)
    ("logo", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "image/svg+xml",
     "SVG pictures are refused", "SVG sont refusées"),
    ("logo", png(10, 10), "image/jpeg", "is a image/png picture but was sent as image/jpeg", "envoyé comme"),
    ("logo", b"GIF89a\x01\x00\x01\x00", "image/gif", "send a PNG or JPEG picture, not image/gif", "pas image/gif"),
    ("logo", b"this is plain text, not a picture", "image/png", "not a PNG or JPEG picture", "pas une image"),
    ("logo", png(10, 10)[:-7] + b"\x00" * 7, "image/png", "not a valid one", "pas une valide"),   # IEND's CRC
    ("logo", png(10, 10)[:40], "image/png", "not a valid one", "pas une valide"),                # cut short
    ("logo", b"\x89PNG\r\n\x1a\n" + chunk(b"IEND", b""), "image/png", "not a valid one", "valide"),   # no image
    ("logo", png(1025, 4), "image/png", "1025x4 pixels; at most 1024x512", "1025x4 pixels"),
    ("logo", png(16, 16, extra=os.urandom(262200)), "image/png", "at most 262144 are accepted", "262144"),
    ("logo", b"", "image/png", "the file is empty", "vide"),
    ("background", jpeg(4000, 2000), "image/jpeg", "4000x2000 pixels; at most 3840x2160", "4000x2000"),
    ("background", jpeg(800, 600, eoi=False), "image/jpeg", "not a valid one", "valide"),
    ("background", b"\xff\xd8\xff\xe0\x00\x02", "image/jpeg", "not a valid one", "valide"),
]


def test_every_bad_file_is_refused_with_its_message_in_the_callers_language_and_nothing_changes(tmp_path):
    good = {"logo": png(64, 32), "background": jpeg(1920, 1080)}

    async def scenario(gw, base):
        admin = await run(web_login, base, "admin", "en")
        cyber = await run(web_login, base, "cyber", "fr")
        for kind, data in good.items():
            status = (await run(upload, admin, kind, data, "image/png" if kind == "logo" else "image/jpeg"))[0]
            assert status == 200
        before = dict((kind, stored(gw, kind)) for kind in good), await run(WebClient(base).get, "/api/customisation")
        out = []
        for kind, data, declared, _en, _fr in BAD:
            out.append(((await run(upload, admin, kind, data, declared))[:2],
                        (await run(upload, cyber, kind, data, declared))[:2]))
        served = {}
        for kind in good:
            served[kind] = (await run(WebClient(base).request, "GET", "/customisation/" + kind))[1]
        after = dict((kind, stored(gw, kind)) for kind in good), await run(WebClient(base).get, "/api/customisation")
        return out, before, after, served

    out, before, after, served = asyncio.run(_site(tmp_path, scenario))
    for (kind, _data, declared, english, french), ((status_en, en), (status_fr, fr)) in zip(BAD, out):
        assert status_en == 400 and status_fr == 400, (kind, declared, en, fr)
        assert en["messages"][0]["field"] == "file" and english in en["messages"][0]["message"], (declared, en)
        assert french in fr["messages"][0]["message"], (declared, fr)
    assert after == before and served == good


def test_only_admin_and_cyber_security_change_pictures_and_the_token_is_needed(tmp_path):
    logo = png(20, 20)

    async def scenario(gw, base):
        answers = {"anonymous": (await run(upload, WebClient(base), "logo", logo, "image/png"))[0],
                   "anonymous delete": (await run(WebClient(base).request, "DELETE", "/api/customisation/logo"))[0]}
        for profile in ("user", "advanced"):
            client = await run(web_login, base, profile)
            answers[profile] = (await run(upload, client, "logo", logo, "image/png"))[0]
            answers[profile + " delete"] = (await run(client.request, "DELETE", "/api/customisation/logo"))[0]
        admin = await run(web_login, base, "admin")
        token, admin.csrf = admin.csrf, None
        answers["admin without token"] = (await run(upload, admin, "logo", logo, "image/png"))[0]
        answers["admin, other site"] = (await run(admin.request, "POST", "/api/customisation/logo", None,
                                                  {"Content-Type": "image/png", "X-CSRF-Token": token,
                                                   "Origin": "http://evil.example"}, logo))[0]
        nothing = stored(gw, "logo")
        admin.csrf = token
        cyber = await run(web_login, base, "cyber")
        by_cyber = (await run(upload, cyber, "logo", logo, "image/png"))[0]
        user = await run(web_login, base, "user")
        kept = (await run(user.request, "DELETE", "/api/customisation/logo"))[0], stored(gw, "logo")
        removed = (await run(admin.request, "DELETE", "/api/customisation/logo"))[:2]
        twice = (await run(admin.request, "DELETE", "/api/customisation/logo"))[:2]
        gone = (await run(WebClient(base).request, "GET", "/customisation/logo"))[0]
        unknown = (await run(upload, admin, "favicon", logo, "image/png"))[0]
        return answers, nothing, by_cyber, kept, removed, twice, gone, stored(gw, "logo"), unknown

    answers, nothing, by_cyber, kept, removed, twice, gone, after, unknown = asyncio.run(_site(tmp_path, scenario))
    assert answers.pop("anonymous") == 401 and answers.pop("anonymous delete") == 401
    assert set(answers.values()) == {403}, answers
    assert nothing is None
    assert by_cyber == 200 and kept == (403, logo)
    assert removed == (200, {"ok": True, "removed": True}) and twice == (200, {"ok": True, "removed": False})
    assert gone == 404 and after is None and unknown == 404


def test_a_body_beyond_the_servers_limit_is_refused_before_it_is_read(tmp_path):
    async def scenario(gw, base):
        admin = await run(web_login, base, "admin")
        return (await run(upload, admin, "background", b"\xff\xd8\xff" + b"\x00" * (1048576 + 10), "image/jpeg"))[0]

    assert asyncio.run(_site(tmp_path, scenario)) == 413


def test_the_stored_picture_survives_a_restart_and_a_damaged_file_is_not_served(tmp_path):
    logo = png(40, 40)

    async def first(gw, base):
        admin = await run(web_login, base, "admin")
        return (await run(upload, admin, "logo", logo, "image/png"))[0]

    async def second(gw, base):
        return (await run(WebClient(base).request, "GET", "/customisation/logo"))[:2]

    assert asyncio.run(_site(tmp_path, first)) == 200
    pictures._stores.clear()                       # a new process: nothing of the first run is in memory
    assert asyncio.run(_site(tmp_path, second)) == (200, logo)
    with open(tmp_path / "state" / "customisation" / "logo", "r+b") as handle:      # damaged on the medium
        handle.seek(20)
        handle.write(b"\xff\xff")
    pictures._stores.clear()
    assert asyncio.run(_site(tmp_path, second))[0] == 404


# ---------------------------------------------------------------- the header parser against Chromium's encoder

CANVAS = r"""async ([width, height, type]) => {
  const canvas = document.createElement("canvas");
  canvas.width = width; canvas.height = height;
  const g = canvas.getContext("2d");
  g.fillStyle = "#0b5cad"; g.fillRect(0, 0, width, height);
  g.fillStyle = "#fff"; g.font = Math.floor(height / 2) + "px sans-serif"; g.fillText("ACME", 8, height * 0.7);
  return canvas.toDataURL(type, 0.9).split(",")[1];
}"""


async def _canvas_pictures(browser, sizes):
    page = await browser.new_page()
    out = []
    for width, height, kind in sizes:
        out.append(base64.b64decode(await page.evaluate(CANVAS, [width, height, kind])))
    await page.close()
    return out


def test_the_header_parser_reads_the_size_of_pictures_chromium_encodes():
    browser_ready()
    from playwright.async_api import async_playwright
    sizes = [(321, 123, "image/png"), (1024, 512, "image/png"), (640, 480, "image/jpeg"), (1920, 1080, "image/jpeg"),
             (17, 3, "image/jpeg")]

    async def scenario():
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                return await _canvas_pictures(browser, sizes)
            finally:
                await browser.close()

    for (width, height, kind), data in zip(sizes, asyncio.run(scenario())):
        info = pictures.check("background", kind, data)
        assert (info["type"], info["width"], info["height"]) == (kind, width, height)


# ---------------------------------------------------------------- the page in Chromium

async def _with_browser(tmp_path, scenario):
    from playwright.async_api import async_playwright
    web = web_server()
    async with running_gateway(tmp_path / "state", topology_with(), services=[web]) as gw:
        base = "http://127.0.0.1:%d" % web.server.port
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                return await scenario(gw, base, browser)
            finally:
                await browser.close()


async def _page_as(browser, base, profile, language="en", width=1920, height=1080):
    client = await asyncio.to_thread(web_login, base, profile, language)
    context = await browser.new_context(viewport={"width": width, "height": height})
    if client.cookie:
        await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    return await context.new_page(), client


def test_the_customisation_page_uploads_previews_refuses_and_removes_and_the_logo_shows_in_every_header(tmp_path):
    browser_ready(AXE)
    files = tmp_path / "files"
    files.mkdir()

    async def scenario(gw, base, browser):
        logo_png, photo = await _canvas_pictures(browser, [(360, 120, "image/png"), (1600, 900, "image/jpeg")])
        (files / "logo.png").write_bytes(logo_png)
        (files / "photo.jpg").write_bytes(photo)
        (files / "huge.png").write_bytes(png(2000, 10))
        (files / "fake.png").write_bytes(b"<html><script>alert(1)</script></html>")
        page, _admin = await _page_as(browser, base, "admin")
        page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.goto(base + "/customisation", wait_until="load")
        await page.wait_for_selector("html[data-ready='1']")
        empty = await page.text_content("#logo-preview")
        await page.set_input_files("#logo-file", str(files / "logo.png"))
        await page.click("#logo-upload")
        await page.wait_for_selector("#logo-message.ok")
        await page.wait_for_function("() => { const i = document.querySelector('#logo-preview img');"
                                     " return i && i.complete && i.naturalWidth > 0; }")
        preview = await page.evaluate("() => { const i = document.querySelector('#logo-preview img');"
                                      " return [i.naturalWidth, i.naturalHeight, i.alt]; }")
        facts = await page.text_content("#logo-facts")
        await page.set_input_files("#background-file", str(files / "photo.jpg"))
        await page.click("#background-upload")
        await page.wait_for_selector("#background-message.ok")
        await page.set_input_files("#logo-file", str(files / "huge.png"))
        await page.click("#logo-upload")
        await page.wait_for_selector("#logo-message.bad")
        too_wide = await page.text_content("#logo-message")
        await page.set_input_files("#logo-file", str(files / "fake.png"))
        await page.click("#logo-upload")
        await page.wait_for_function("() => document.querySelector('#logo-message').textContent.includes('PNG')")
        fake = await page.text_content("#logo-message")
        still = stored(gw, "logo")
        wide = await page.evaluate(PAGE_PROBE)
        violations = {"en-1920": await axe(page)}
        await page.screenshot(path=shot("customisation-en-1920x1080.png"), full_page=True)
        await page.set_viewport_size({"width": 768, "height": 1024})
        narrow_en = await page.evaluate(PAGE_PROBE)
        await page.screenshot(path=shot("customisation-en-768x1024.png"), full_page=True)
        await page.set_viewport_size({"width": 1920, "height": 1080})
        # the logo in the other pages' headers, the background behind the login page
        headers = {}
        for path in ("/", "/diagnosis", "/settings"):
            await page.goto(base + path, wait_until="load")
            await page.wait_for_function("() => { const i = document.getElementById('company-logo');"
                                         " return i && i.complete && i.naturalWidth > 0; }")
            headers[path] = await page.evaluate("() => document.getElementById('company-logo').closest('header, main')"
                                                ".tagName")
            await page.screenshot(path=shot("customisation-logo-on-%s-en-1920x1080.png" % (path.strip("/") or "status")))
        await page.wait_for_load_state("networkidle")                   # /settings, the loop's last: its links
        links = (await page.is_visible("#customisation-link"), await page.is_hidden("#accounts-link"))

        login = await browser.new_page(viewport={"width": 1920, "height": 1080})
        await login.goto(base + "/login", wait_until="load")
        await login.wait_for_function("() => document.getElementById('company-logo') && "
                                      "document.body.style.backgroundImage.includes('/customisation/background')")
        await login.screenshot(path=shot("customisation-login-with-pictures-en-1920x1080.png"))
        # French, narrow
        page_fr, _cyber = await _page_as(browser, base, "cyber", "fr", width=768, height=1024)
        page_fr.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page_fr.goto(base + "/customisation", wait_until="load")
        await page_fr.wait_for_selector("html[data-ready='1']")
        narrow = await page_fr.evaluate(PAGE_PROBE)
        violations["fr-768"] = await axe(page_fr)
        await page_fr.screenshot(path=shot("customisation-fr-768x1024.png"), full_page=True)
        await page_fr.click("#logo-remove")
        await page_fr.wait_for_selector("#logo-message.ok")
        removed = (await page_fr.text_content("#logo-message"), await page_fr.text_content("#logo-preview"),
                   stored(gw, "logo"))
        await page_fr.set_viewport_size({"width": 1920, "height": 1080})
        await page_fr.screenshot(path=shot("customisation-fr-1920x1080.png"), full_page=True)
        return (logo_png, empty, preview, facts, too_wide, fake, still, wide, violations, headers, narrow, removed,
                narrow_en, links)

    (logo_png, empty, preview, facts, too_wide, fake, still, wide, violations, headers, narrow,
     removed, narrow_en, links) = asyncio.run(_with_browser(tmp_path, scenario))
    assert links == (True, True)                 # Admin: the customisation page, not the accounts page
    assert empty == "No picture (default)"
    assert preview == [360, 120, "Preview of the Company logo"]
    assert facts.startswith("PNG, 360x120 pixels")
    assert "2000x10 pixels; at most 1024x512" in too_wide and too_wide.startswith("Refused, nothing was stored")
    assert "not a PNG or JPEG picture" in fake
    assert still == logo_png                                 # the refused files left the stored logo as it was
    assert wide["unlabelled"] == [] and wide["scrollWidth"] <= wide["innerWidth"], wide
    assert narrow_en["scrollWidth"] <= narrow_en["innerWidth"], narrow_en
    assert set(headers.values()) == {"HEADER"}, headers
    assert "Logo de l'entreprise" in narrow["text"] and "Envoyer" in narrow["text"] and narrow["lang"] == "fr"
    assert narrow["unlabelled"] == [] and narrow["scrollWidth"] <= narrow["innerWidth"], narrow
    assert violations == {"en-1920": [], "fr-768": []}, violations
    assert removed[0] == "Logo de l'entreprise supprimé : l'affichage par défaut s'applique."
    assert removed[1] == "Aucune image (par défaut)" and removed[2] is None


def test_damaged_pictures_are_refused_never_crash_the_parser():
    """Seeded random damage (bytes changed, cut, repeated) to a PNG and a JPEG: each is taken with its true
    size or refused with a PictureRefused, never another exception."""
    import random
    rng = random.Random(14)
    originals = [("image/png", png(48, 20)), ("image/jpeg", jpeg(64, 32))]
    outcomes = {"taken": 0, "refused": 0}
    for _ in range(3000):
        declared, data = rng.choice(originals)
        data = bytearray(data)
        for _edit in range(rng.randint(1, 4)):
            where = rng.randrange(len(data))
            kind = rng.random()
            if kind < 0.5:
                data[where] = rng.randrange(256)
            elif kind < 0.75:
                del data[where:where + rng.randint(1, 16)]
            else:
                data[where:where] = data[where:where + rng.randint(1, 16)]
        try:
            info = pictures.check("logo", declared, bytes(data))
        except pictures.PictureRefused:
            outcomes["refused"] += 1
        else:
            assert 0 < info["width"] <= 1024 and 0 < info["height"] <= 512
            outcomes["taken"] += 1
    assert outcomes["refused"] > 1500, outcomes
