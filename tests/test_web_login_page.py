"""The login page (``GET /login``) in a real headless Chromium, driven by Playwright (issue 14).

As tests/test_web_status_page.py: Debian's ``/usr/bin/chromium`` on the
gateway's loop, the gateway on a loopback port. The browser logs in as Admin
with the manual's password, meets the forced change (a weak password refused
with the rule's messages, a strong one accepted), lands on the Home page
(issue 17) that names Admin with a Log off button; three wrong logins lock a profile
with the time left shown; the French page is French. Screenshots of the login
and change pages in both languages go to tests/results/ (git-ignored).
"""

import asyncio

from browser_support import CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, browser_ready, shot
from conftest import running_gateway, topology_with, web_server

STRONG = "Admin-Pass-2026!"


async def _with_browser(tmp_path, overrides, scenario):
    from playwright.async_api import async_playwright
    web = web_server()
    async with running_gateway(tmp_path / "state", topology_with(), overrides, services=[web]) as gw:
        base = "http://127.0.0.1:%d" % web.server.port
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                return await scenario(gw, base, browser)
            finally:
                await browser.close()


def test_admin_logs_in_with_the_default_password_and_must_change_it_by_keyboard(tmp_path):
    browser_ready()

    async def scenario(gw, base, browser):
        page = await browser.new_page(viewport={"width": 1920, "height": 1080})
        await page.goto(base + "/login?lang=en", wait_until="load")
        await page.wait_for_function("() => document.getElementById('profile').options.length === 5")
        login = await page.evaluate(PAGE_PROBE)
        await page.screenshot(path=shot("login-en-1920x1080.png"))
        # by keyboard only: the profile list, then the password, Enter submits
        await page.focus("#profile")
        await page.select_option("#profile", "admin")
        await page.keyboard.press("Tab")
        await page.keyboard.type("Admin")
        await page.keyboard.press("Enter")
        await page.wait_for_selector("#change-form:not([hidden])")
        change = await page.evaluate(PAGE_PROBE)
        await page.fill("#current", "Admin")
        await page.fill("#new", "weakpassword")
        await page.fill("#confirm", "weakpassword")
        await page.press("#confirm", "Enter")
        await page.wait_for_function("() => document.querySelectorAll('#change-problems li').length > 0")
        problems = await page.eval_on_selector_all("#change-problems li", "items => items.map(i => i.textContent)")
        await page.screenshot(path=shot("change-en-1920x1080.png"))
        still_default = gw.accounts.state("admin")["default"]
        await page.fill("#new", STRONG)
        await page.fill("#confirm", STRONG)
        await page.click("#change-submit")
        await page.wait_for_url(base + "/home")
        await page.wait_for_function("() => /Admin/.test(document.getElementById('who').textContent)")
        who = await page.text_content("#who")
        logoff_visible = await page.is_visible("#logoff")
        logoff_text = await page.text_content("#logoff")
        await page.screenshot(path=shot("home-admin-1920x1080.png"))
        await page.click("#logoff")
        await page.wait_for_url(base + "/login")
        return login, change, problems, still_default, who, logoff_visible, logoff_text, len(gw.sessions)

    login, change, problems, still_default, who, logoff_visible, logoff_text, sessions = asyncio.run(
        _with_browser(tmp_path, None, scenario))
    for probe in (login, change):
        assert probe["unlabelled"] == [] and probe["fields"] >= 3, probe
        assert probe["scrollWidth"] <= probe["innerWidth"], probe
    assert "Log in to the gateway" in login["text"] and login["lang"] == "en"
    assert "Change the password" in change["text"] and "The password of the Admin profile must be changed" in \
        change["text"]
    assert problems == ["an upper-case letter", "a digit", "a special character (not a letter or a digit)"], \
        problems
    assert still_default                                    # the weak password changed nothing
    assert who == "Logged in as Admin" and logoff_visible and logoff_text == "Log off"
    assert sessions == 0                                    # Log off ended the session on the gateway


def test_three_wrong_logins_lock_the_profile_and_say_for_how_long(tmp_path):
    browser_ready()

    async def scenario(gw, base, browser):
        page = await browser.new_page(viewport={"width": 768, "height": 1024})
        await page.goto(base + "/login?lang=en", wait_until="load")
        await page.wait_for_function("() => document.getElementById('profile').options.length === 5")
        messages = []
        for password in ("wrong-1", "wrong-2", "wrong-3", "Advanced"):
            await page.select_option("#profile", "advanced")
            await page.fill("#password", password)
            await page.evaluate("() => { document.getElementById('login-message').textContent = ''; }")
            await page.click("#login-submit")
            await page.wait_for_function("() => { const m = document.getElementById('login-message').textContent;"
                                         " return m && !/Checking/.test(m); }")
            messages.append(await page.text_content("#login-message"))
        probe = await page.evaluate(PAGE_PROBE)
        return messages, gw.accounts.state("advanced")["locked_for"], probe

    messages, locked_for, probe = asyncio.run(_with_browser(tmp_path, {"session.lockout_s": 600}, scenario))
    assert messages[:3] == ["Wrong password."] * 3, messages
    assert messages[3].startswith("This profile is locked after failed logins: try again in ") and \
        messages[3].endswith(" s."), messages
    seconds = int(messages[3].rsplit(" ", 2)[-2])
    assert 0 < seconds <= 600 and 0 < locked_for <= 600
    assert probe["scrollWidth"] <= probe["innerWidth"], probe          # 768 px wide: no sideways scroll


def test_the_french_pages_are_french_and_the_banner_shows_when_the_policy_asks(tmp_path):
    browser_ready()

    async def scenario(gw, base, browser):
        found = {}
        for width, height in ((1920, 1080), (768, 1024)):
            page = await browser.new_page(viewport={"width": width, "height": height})
            await page.goto(base + "/login?lang=fr", wait_until="load")
            await page.wait_for_function("() => document.documentElement.lang === 'fr'")
            found[("login", width)] = await page.evaluate(PAGE_PROBE)
            await page.screenshot(path=shot("login-fr-%dx%d.png" % (width, height)))
            if width == 1920:
                await page.select_option("#profile", "admin")
                await page.fill("#password", "Admin")
                await page.click("#login-submit")
                await page.wait_for_selector("#change-form:not([hidden])")
                await page.fill("#current", "Admin")
                await page.fill("#new", "court")
                await page.fill("#confirm", "court")
                await page.click("#change-submit")
                await page.wait_for_function("() => document.querySelectorAll('#change-problems li').length > 0")
                found[("change", width)] = await page.evaluate(PAGE_PROBE)
                await page.screenshot(path=shot("change-fr-%dx%d.png" % (width, height)))
            await page.close()
        page = await browser.new_page(viewport={"width": 768, "height": 1024})
        await page.goto(base + "/login?lang=en", wait_until="load")
        await page.wait_for_function("() => document.getElementById('profile').options.length === 5")
        await page.screenshot(path=shot("login-en-768x1024.png"))
        return found

    found = asyncio.run(_with_browser(tmp_path, {"policy.banner": True}, scenario))
    login, change = found[("login", 1920)], found[("change", 1920)]
    for words in ("Connexion à la passerelle", "Profil", "Mot de passe", "Langue", "Se connecter", "Administrateur",
                  "Avertissement : ce système est réservé aux utilisateurs autorisés"):
        assert words in login["text"], (words, login["text"])
    for english in ("Log in", "Password", "Profile", "Language", "English", "Warning"):
        assert english not in login["text"], (english, login["text"])
    for words in ("Changer le mot de passe", "Mot de passe actuel", "Nouveau mot de passe",
                  "Le nouveau mot de passe est refusé", "au moins 10 caractères", "une lettre majuscule",
                  "un chiffre"):
        assert words in change["text"], (words, change["text"])
    assert "upper-case" not in change["text"] and "Change the password" not in change["text"]
    for probe in found.values():
        assert probe["lang"] == "fr" and probe["unlabelled"] == [], probe
        assert probe["scrollWidth"] <= probe["innerWidth"], probe
