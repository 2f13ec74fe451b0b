"""Every web page, checked the same way, in English and French, at 1920x1080 and 768x1024 (issue 14).

The pages are one table (``PAGES``: name, path, the profile that opens it);
the configuration pages are added from what ``GET /api/settings/pages``
offers (Admin's, then Cyber Security's), so a new page is one row. One gateway
(the demo site, its web server on a loopback port) and one Debian Chromium
serve the whole module: ``survey`` opens each page once per language with a
session of its profile (logged in through the real routes, conftest's
``web_login``, in that language; nobody logged in for ``None``) and per width,
waits for the page's ready signal (``data-ready`` on the document, set after
its first data is drawn) and records what the tests below check: axe-core's
critical or serious violations, the page's width against the window's, the
fields without a label, the document's language, the page's text, every
request's URL and the console's errors. Screenshots go to tests/results/
(``page-<name>-<lang>-<width>.png``).
"""

import asyncio
import re
import urllib.parse

import pytest
from browser_support import AXE, AXE_RUN, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, browser_ready, shot
from conftest import demo_devices, demo_topology, running_gateway, wait_for, web_login, web_server

from daemon import i18n

READY = "() => document.documentElement.dataset.ready === '1'"
LOGOFF_SHOWN = "() => { const b = document.getElementById('logoff'); return !!b && b.offsetParent !== null; }"
LANGUAGES = ("en", "fr")
SIZES = ((1920, 1080), (768, 1024))
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
SETTINGS_PROFILES = ("admin", "cyber")          # together they open every configuration page

# name, path, the profile whose session opens it (None: nobody logged in). The configuration pages are added
# by ``page_table`` from GET /api/settings/pages; the devices, customisation and accounts pages add rows here.
PAGES = (
    ("status", "/", "user"),
    ("home", "/home", "user"),                    # issue 17
    ("login", "/login", None),
    ("password", "/password", "admin"),
    ("diagnosis", "/diagnosis", "user"),
    ("alarms", "/alarms", "user"),                 # issue 17: alarms and events
    ("sources", "/devices/sources", "admin"),
    ("circuits", "/devices/circuits", "admin"),
    ("usages", "/devices/usages", "admin"),
    ("customisation", "/customisation", "admin"),
    ("accounts", "/accounts", "cyber"),
    ("system", "/system", "admin"),
    ("certificates", "/security/https", "cyber"),
    ("firewall-rules", "/security/firewall-rules", "cyber"),
    ("trends", "/trends", "user"),
    ("monitor", "/monitor?address=4&load=1", "user"),          # issue 17: the data views
    ("hierarchies", "/hierarchies", "admin"),                  # issue 17: the hierarchies editor
    ("photoview", "/photoview", "user"),                       # issue 17: the photoview and its editor
    ("photoview-edit", "/photoview/edit", "admin"),
    ("datamodels", "/datamodels", "admin"),                    # issue 18: generic devices' data models
    ("bluetooth", "/bluetooth", "admin"),                      # issue 18: Bluetooth sensors and sources
    ("consumption", "/consumption", "user"),                   # issue 17: Consumption
)


def page_table(base):
    """PAGES and one row per configuration page, with the first of SETTINGS_PROFILES that may open it."""
    rows, seen = list(PAGES), set()
    for profile in SETTINGS_PROFILES:
        status, answer = web_login(base, profile).get("/api/settings/pages")
        assert status == 200, answer
        for entry in answer["pages"]:
            if entry["page"] not in seen:
                seen.add(entry["page"])
                rows.append(("settings-" + entry["page"], "/settings?page=" + urllib.parse.quote(entry["page"]),
                             profile))
    return rows


def english_only_texts():
    """The English texts of the pages' catalogue keys (web.*, language.*, the settings' labels and titles) that
    French says otherwise, as whole words: none may show on a French page. Templates are cut at their
    placeholders; a piece shorter than 4 letters, or found inside a French text too, says nothing."""
    english, french = i18n.CATALOGUES["en"], i18n.CATALOGUES["fr"]
    french_texts = "\n".join(french.values())
    out = set()
    for key, text in english.items():
        if not key.startswith(("web.", "language.", "page.", "section.", "setting.")) or text == french[key]:
            continue
        for piece in re.split(r"\{[^}]*\}", text):
            piece = piece.strip(" .,:;()—-…")
            if len(piece) >= 4 and re.search(r"[A-Za-z]{4}", piece) and piece not in french_texts:
                out.add(piece)
    return sorted(out)


async def _context(browser, base, profile, language):
    """A browser context in ``language`` with a session of ``profile`` (none for None) as its cookie."""
    context = await browser.new_context(locale={"en": "en-GB", "fr": "fr-FR"}[language])
    if profile is not None:
        client = await asyncio.to_thread(web_login, base, profile, language)
        await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    return context


async def _visit(context, base, name, path, language, anonymous):
    """One page at each size: what the tests check, by (name, language, width). Nobody logged in, the page is
    asked for in ``language`` (``?lang=``); a session's page is in the session's language."""
    page = await context.new_page()
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    out = {}
    try:
        for width, height in SIZES:
            await page.set_viewport_size({"width": width, "height": height})
            query = (("&" if "?" in path else "?") + "lang=" + language) if anonymous else ""
            await page.goto(base + path + query, wait_until="load")
            try:
                await page.wait_for_function(READY, timeout=30000)
            except Exception as exc:
                raise AssertionError("%s (%s, %s, %d px) never said it was ready: %s; console: %s" % (
                    name, path, language, width, exc, errors)) from None
            probe = await page.evaluate(PAGE_PROBE)
            probe["logoff"] = await page.evaluate(LOGOFF_SHOWN)
            await page.screenshot(path=shot("page-%s-%s-%d.png" % (name, language, width)), full_page=True)
            await page.add_script_tag(path=AXE)
            out[(name, language, width)] = dict(probe, axe=await page.evaluate(AXE_RUN), path=path,
                                                requests=list(requests), errors=list(errors))
            requests.clear()
            errors.clear()
    finally:
        await page.close()
    return out


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    """{(page, language, width): what the page showed}, from one gateway and one browser."""
    browser_ready(AXE)
    from playwright.async_api import async_playwright
    web = web_server()

    async def body():
        state = tmp_path_factory.mktemp("every-page") / "state"
        async with running_gateway(state, demo_topology(), {"alarms.check_s": 3600}, services=[web]) as gw:
            await gw.topology.replace(demo_devices())
            await wait_for(lambda: all(p.cycles >= 1 for p in gw.pollers.values()), guard=30)
            base = "http://127.0.0.1:%d" % web.server.port
            rows = await asyncio.to_thread(page_table, base)
            seen = {}
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    for language in LANGUAGES:
                        contexts = {}
                        for name, path, profile in rows:
                            if profile not in contexts:
                                contexts[profile] = await _context(browser, base, profile, language)
                            seen.update(await _visit(contexts[profile], base, name, path, language, profile is None))
                        for context in contexts.values():
                            await context.close()
                finally:
                    await browser.close()
            return rows, seen

    rows, seen = asyncio.run(body())
    return {"rows": rows, "seen": seen}


def _problems(survey, check):
    """[(page, language, width, what is wrong)] for every visit where ``check(result)`` says something."""
    out = []
    for (name, language, width), result in sorted(survey["seen"].items()):
        wrong = check(result, language, width)
        if wrong:
            out.append((name, language, width, wrong))
    return out


def test_the_table_has_every_page_in_both_languages_at_both_sizes(survey):
    names = [name for name, _path, _profile in survey["rows"]]
    assert {"status", "login", "password", "diagnosis"} <= set(names)
    assert len([n for n in names if n.startswith("settings-")]) >= 10          # the schema's pages
    assert any(n.startswith("settings-security.") for n in names)            # Cyber Security's pages too
    assert len(survey["seen"]) == len(names) * len(LANGUAGES) * len(SIZES)


def test_no_critical_or_serious_accessibility_violation(survey):
    assert _problems(survey, lambda r, lang, w: r["axe"]) == []


def test_no_sideways_scrolling_and_every_field_labelled(survey):
    assert _problems(survey, lambda r, lang, w: r["scrollWidth"] > r["innerWidth"] and
                     "page %d px wide in a %d px window" % (r["scrollWidth"], r["innerWidth"])) == []
    assert _problems(survey, lambda r, lang, w: r["unlabelled"]) == []
    # the forms are there (a page that drew nothing would pass the label check)
    assert all(r["fields"] > 0 for (name, _l, _w), r in survey["seen"].items()
               if name.startswith("settings-") or name in ("login", "password"))


def test_the_document_says_its_language_and_the_french_pages_show_no_english_text(survey):
    assert _problems(survey, lambda r, lang, w: r["lang"] != lang and "lang=%r" % r["lang"]) == []
    english = english_only_texts()
    assert "Save" in english and "Diagnosis" in english               # built from the catalogue's differences
    words = [re.compile(r"(?<![\w-])%s(?![\w-])" % re.escape(text)) for text in english]
    assert _problems(survey, lambda r, lang, w: lang == "fr" and
                     [w.pattern for w in words if w.search(_without_site_names(r["text"], r["identifiers"]))]) == []
    # and the English pages do show English (the check would find what it looks for)
    assert all(any(w.search(r["text"]) for w in words) for (_n, lang, _w), r in survey["seen"].items()
               if lang == "en")


def _without_site_names(text, identifiers=()):
    """The page's text without the site's own names (devices, loads: data the installer typed, in any language)
    and without what the page marks translate="no" (identifiers such as a usage's key, in no language)."""
    names = set(identifiers)
    for device in demo_devices():
        names.update([device.name] + [load["name"] for load in device.loads if load.get("name")])
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, "")
    return text


def test_no_request_leaves_the_gateway(survey):
    def outside(result, lang, width):
        hosts = set()
        for url in result["requests"]:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme in ("data", "about", "blob"):
                continue
            if parts.hostname not in LOOPBACK:
                hosts.add(url)
        return sorted(hosts)
    assert _problems(survey, outside) == []
    assert all(r["requests"] for r in survey["seen"].values())          # the pages' own requests were seen


def test_no_console_error(survey):
    assert _problems(survey, lambda r, lang, w: r["errors"]) == []


def test_every_page_of_a_session_offers_log_off(survey):
    """Whoever is signed in can end the session from any page they are on (a shared screen, a wall display)."""
    # the login page, and the password page of the login's flow (a forced change comes before any session page)
    outside = {name for name, path, profile in survey["rows"] if profile is None or path == "/password"}
    missing = _problems(survey, lambda result, language, width: not result["logoff"] and "no Log off button")
    assert [problem for problem in missing if problem[0] not in outside] == []
    assert any(name in outside for name, *_ in missing)       # the login page has none: the probe can say no
