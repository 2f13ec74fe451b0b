"""Cyber Security's accounts page and the password recovery (issue 14, SPEC §7.1), over HTTP and in Chromium.

Server side: every new route (the page, ``GET /api/accounts``, ``POST /api/accounts/totem``,
``POST /api/accounts/passphrase``) refuses strangers (401) and the User, Advanced User and Admin profiles
(403) and changes nothing (the accounts' own state is read before and after); the CSRF token and the origin
are needed; malformed bodies are 400 with nothing changed; ``POST /api/recover`` is public, uses the
passphrase once and its wrong guesses lock Cyber Security like failed logins. In Chromium: the Totem User is
refused at the login page until Cyber Security unlocks it on /accounts, then logs in; the passphrase
generated on /accounts recovers the Cyber Security password from the login page's form (the old password
refused, the new one accepted, the passphrase refused a second time). axe-core and screenshots EN/FR at
1920x1080 and 768 px.
"""

import asyncio
import http.client

from browser_support import AXE, CHROMIUM, CHROMIUM_ARGS, PAGE_PROBE, axe, browser_ready, shot
from conftest import (
    DEFAULT_PASSWORDS,
    STRONG_PASSWORDS,
    WebClient,
    running_gateway,
    topology_with,
    web_login,
    web_server,
)

NEW_CYBER = "Recovered-Pass-2027!"
ROUTES = [("GET", "/api/accounts", None), ("POST", "/api/accounts/totem", {"locked": False}),
          ("POST", "/api/accounts/passphrase", {})]


def run(call, *args):
    return asyncio.to_thread(call, *args)


async def _site(tmp_path, scenario, overrides=None):
    web = web_server()
    async with running_gateway(tmp_path / "state", topology_with(), overrides, services=[web]) as gw:
        return await scenario(gw, "http://127.0.0.1:%d" % web.server.port)


def accounts_state(gw):
    """What the routes could change: Totem's lock, the passphrase, every profile's record."""
    return (gw.accounts.totem_locked(), gw.accounts.has_recovery_passphrase(),
            [gw.accounts.state(p) for p in ("advanced", "totem", "admin", "cyber")])


def page_status(port, client):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Cookie": "m70_session=" + client.cookie} if client.cookie else {}
        connection.request("GET", "/accounts", headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Location"), response.read().decode()
    finally:
        connection.close()


def test_every_new_route_refuses_strangers_and_the_other_profiles_and_changes_nothing(tmp_path):
    async def scenario(gw, base):
        port = int(base.rsplit(":", 1)[1])
        clients = {"anonymous": WebClient(base)}
        for profile in ("user", "advanced", "admin"):
            clients[profile] = await run(web_login, base, profile)
        before = accounts_state(gw)
        answers = {}
        for name, client in clients.items():
            for method, path, body in ROUTES:
                answers[(name, path)] = (await run(client.request, method, path, body))[:2]
            answers[(name, "/accounts")] = await run(page_status, port, client)
        after = accounts_state(gw)
        cyber = await run(web_login, base, "cyber")
        page = await run(page_status, port, cyber)
        overview = await run(cyber.get, "/api/accounts")
        return before, after, answers, page, overview

    before, after, answers, page, overview = asyncio.run(_site(tmp_path, scenario))
    assert after == before and before[0] is True and before[1] is False
    for (name, path), answer in answers.items():
        if path == "/accounts":
            expected = (303, "/login") if name == "anonymous" else (403, None)
            assert answer[:2] == expected, (name, answer)
            if name != "anonymous":
                assert "cannot open this page" in answer[2]
        else:
            assert answer[0] == (401 if name == "anonymous" else 403), (name, path, answer)
            assert "passphrase" not in answer[1], answer
    assert page[0] == 200 and 'id="profiles"' in page[2]
    status, body = overview
    assert status == 200 and body["recovery_passphrase"] is False
    rows = dict((row["profile"], row) for row in body["profiles"])
    assert list(rows) == ["user", "advanced", "totem", "admin", "cyber"]
    assert rows["user"] == {"profile": "user", "password": False}
    assert rows["totem"]["totem_locked"] is True and rows["totem"]["default"] is True
    assert rows["totem"]["must_change"] is True and rows["totem"]["expires"] is None
    for profile in ("advanced", "admin", "cyber"):           # changed by web_login: a year from now
        assert rows[profile]["default"] is False and rows[profile]["must_change"] is False
        assert 364 * 86400 < rows[profile]["expires"] - body["time"] <= 366 * 86400


def test_csrf_origin_and_malformed_bodies_are_refused_and_change_nothing(tmp_path):
    async def scenario(gw, base):
        cyber = await run(web_login, base, "cyber")
        before = accounts_state(gw)
        token, answers = cyber.csrf, {}
        cyber.csrf = None
        answers["no token"] = (await run(cyber.post, "/api/accounts/totem", {"locked": False}))[0]
        cyber.csrf = "x" * 43
        answers["wrong token"] = (await run(cyber.post, "/api/accounts/passphrase", {}))[0]
        cyber.csrf = token
        answers["other site"] = (await run(cyber.request, "POST", "/api/accounts/totem", {"locked": False},
                                           {"Origin": "http://evil.example"}))[0]
        answers["recover from another site"] = (await run(WebClient(base).request, "POST", "/api/recover",
                                                          {"passphrase": "A", "new": NEW_CYBER},
                                                          {"Origin": "http://evil.example"}))[0]
        bad = [("/api/accounts/totem", {"locked": "no"}), ("/api/accounts/totem", {}),
               ("/api/accounts/totem", {"locked": False, "profile": "admin"}), ("/api/accounts/totem", [False]),
               ("/api/accounts/passphrase", {"length": 40}), ("/api/recover", {"passphrase": "ABCDE"}),
               ("/api/recover", {"passphrase": 12345, "new": NEW_CYBER}),
               ("/api/recover", {"passphrase": "A" * 2000, "new": NEW_CYBER}),
               ("/api/recover", {"passphrase": "A", "new": NEW_CYBER, "profile": "admin"})]
        for path, body in bad:
            answers[path + " " + repr(body)[:40]] = (await run(cyber.post, path, body))[0]
        answers["not JSON"] = (await run(cyber.request, "POST", "/api/accounts/totem", None, None, b"{locked"))[0]
        answers["recover, not JSON"] = (await run(WebClient(base).request, "POST", "/api/recover", None, None,
                                                  b"\xff\xfe"))[0]
        return before, accounts_state(gw), answers

    before, after, answers = asyncio.run(_site(tmp_path, scenario))
    assert after == before
    assert answers.pop("no token") == 403 and answers.pop("wrong token") == 403
    assert answers.pop("other site") == 403 and answers.pop("recover from another site") == 403
    assert set(answers.values()) == {400}, answers


def test_the_passphrase_recovers_once_and_wrong_guesses_lock_cyber_security(tmp_path):
    async def scenario(gw, base):
        cyber = await run(web_login, base, "cyber")
        first = (await run(cyber.post, "/api/accounts/passphrase", {}))[1]["passphrase"]
        status, answer = await run(cyber.post, "/api/accounts/passphrase", {})
        phrase = answer["passphrase"]                       # the second one cancels the first
        anonymous = WebClient(base)
        out = {"weak": await run(anonymous.post, "/api/recover", {"passphrase": phrase, "new": "short"}),
               "first one": (await run(anonymous.post, "/api/recover", {"passphrase": first, "new": NEW_CYBER}))[0],
               "recovered": await run(anonymous.post, "/api/recover", {"passphrase": phrase.lower(),
                                                                       "new": NEW_CYBER}),
               "old session": (await run(cyber.get, "/api/accounts"))[0],
               "old password": (await run(WebClient(base).login, "cyber", STRONG_PASSWORDS["cyber"]))[0],
               "new password": (await run(WebClient(base).login, "cyber", NEW_CYBER))[0],
               "twice": (await run(anonymous.post, "/api/recover", {"passphrase": phrase,
                                                                    "new": "Another-Pass-2027!"}))[0]}
        # wrong guesses count as failed logins: the lockout stops them (max_attempts 3 here)
        guesses = []
        for _ in range(4):
            guesses.append((await run(anonymous.post, "/api/recover", {"passphrase": "WRONG-GUESS",
                                                                       "new": "Another-Pass-2027!"}))[0])
        locked_login = (await run(WebClient(base).login, "cyber", NEW_CYBER))[0]
        return status, out, guesses, locked_login, gw.accounts.has_recovery_passphrase()

    status, out, guesses, locked_login, left = asyncio.run(_site(tmp_path, scenario, {"session.max_attempts": 3}))
    assert status == 200
    weak_status, weak = out["weak"]
    assert weak_status == 400 and weak["messages"], weak            # the rule first: the passphrase is not spent
    assert out["first one"] == 401
    assert out["recovered"] == (200, {"ok": True})                  # the passphrase's letters in any case
    assert out["old session"] == 401 and out["old password"] == 401 and out["new password"] == 200
    assert out["twice"] == 401 and left is False
    assert guesses[:2] == [401, 401] and guesses[2:] == [403, 403], guesses    # 1 + 2 failures = 3: locked
    assert locked_login == 403


# ---------------------------------------------------------------- the pages in Chromium

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
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    page = await context.new_page()
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    return page, client


async def _login_page(browser, base, width=1920, height=1080, language="en"):
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    await page.goto(base + "/login?lang=" + language, wait_until="load")
    await page.wait_for_function("() => document.getElementById('profile').options.length === 5 && "
                                 "document.documentElement.lang === '%s'" % language)
    return page


async def _log_in(page, profile, password):
    """Fill the login form and submit; the message shown (empty when the page moved on)."""
    await page.select_option("#profile", profile)
    await page.fill("#password", password)
    await page.click("#login-submit")
    await page.wait_for_function("() => !document.getElementById('login-form') || "
                                 "document.getElementById('login-form').hidden || "
                                 "(document.getElementById('login-message').textContent && "
                                 "!document.getElementById('login-submit').disabled)")
    return await page.text_content("#login-message") if await page.is_visible("#login-form") else ""


def test_totem_is_refused_until_cyber_security_unlocks_it_on_the_accounts_page(tmp_path):
    browser_ready(AXE)

    async def scenario(gw, base, browser):
        login = await _login_page(browser, base)
        refused = await _log_in(login, "totem", DEFAULT_PASSWORDS["totem"])
        page, _cyber = await _page_as(browser, base, "cyber")
        await page.goto(base + "/accounts", wait_until="load")
        await page.wait_for_selector("html[data-ready='1']")
        before = (await page.text_content("#totem-state"), await page.text_content("#totem-toggle"))
        await page.click("#totem-toggle")
        await page.wait_for_selector("#totem-message.ok")
        after = (await page.text_content("#totem-state"), await page.text_content("#totem-message"),
                 gw.accounts.totem_locked())
        table = await page.text_content("#profiles")
        probe = await page.evaluate(PAGE_PROBE)
        violations = {"en-1920": await axe(page)}
        await page.screenshot(path=shot("accounts-en-1920x1080.png"), full_page=True)
        settings = await page.context.new_page()
        await settings.goto(base + "/settings", wait_until="load")
        await settings.wait_for_selector("#accounts-link:not([hidden])")
        await settings.click("#accounts-link")
        await settings.wait_for_url(base + "/accounts")
        await settings.close()
        # Totem now logs in (default password: the forced change, then the Home page)
        message = await _log_in(login, "totem", DEFAULT_PASSWORDS["totem"])
        await login.wait_for_selector("#change-form:not([hidden])")
        await login.fill("#current", DEFAULT_PASSWORDS["totem"])
        await login.fill("#new", STRONG_PASSWORDS["totem"])
        await login.fill("#confirm", STRONG_PASSWORDS["totem"])
        await login.click("#change-submit")
        await login.wait_for_url(base + "/home")
        session = await login.evaluate("async () => (await (await fetch('/api/session')).json())")
        # French at 768 px
        page_fr, _c = await _page_as(browser, base, "cyber", "fr", 768, 1024)
        await page_fr.goto(base + "/accounts", wait_until="load")
        await page_fr.wait_for_selector("html[data-ready='1']")
        narrow = await page_fr.evaluate(PAGE_PROBE)
        violations["fr-768"] = await axe(page_fr)
        await page_fr.screenshot(path=shot("accounts-fr-768x1024.png"), full_page=True)
        await page_fr.set_viewport_size({"width": 1920, "height": 1080})
        await page_fr.screenshot(path=shot("accounts-fr-1920x1080.png"), full_page=True)
        await page.set_viewport_size({"width": 768, "height": 1024})
        await page.screenshot(path=shot("accounts-en-768x1024.png"), full_page=True)
        return refused, before, after, table, probe, violations, message, session, narrow

    (refused, before, after, table, probe, violations, message, session,
     narrow) = asyncio.run(_with_browser(tmp_path, scenario))
    assert refused == "The Totem User profile is locked: Cyber Security unlocks it.", refused
    assert before == ("Locked: the Totem User profile cannot log in.", "Unlock the Totem User profile")
    assert after == ("Unlocked: the Totem User profile can log in.", "The Totem User profile is unlocked.", False)
    assert "Default password: must be changed at the next login" in table and "No password" in table
    assert message == ""
    assert session["logged_in"] is True and session["profile"] == "totem" and session["must_change"] is False
    assert probe["unlabelled"] == [] and probe["scrollWidth"] <= probe["innerWidth"], probe
    assert narrow["lang"] == "fr" and "Déverrouillé : le profil Utilisateur Totem peut se connecter." in narrow["text"]
    assert "Phrase secrète de récupération" in narrow["text"] and "Logged in" not in narrow["text"]
    assert narrow["unlabelled"] == [] and narrow["scrollWidth"] <= narrow["innerWidth"], narrow
    assert violations == {"en-1920": [], "fr-768": []}, violations


def test_the_passphrase_from_the_accounts_page_recovers_the_cyber_password_on_the_login_page(tmp_path):
    browser_ready(AXE)

    async def scenario(gw, base, browser):
        page, _cyber = await _page_as(browser, base, "cyber")
        await page.goto(base + "/accounts", wait_until="load")
        await page.wait_for_selector("html[data-ready='1']")
        none_yet = await page.text_content("#passphrase-state")
        await page.click("#passphrase-generate")
        await page.wait_for_selector("#passphrase-box:not([hidden])")
        phrase = await page.text_content("#passphrase")
        warning = await page.text_content("#passphrase-warning")
        shown = (await page.text_content("#passphrase-state"), gw.accounts.has_recovery_passphrase())
        await page.screenshot(path=shot("accounts-passphrase-shown-en-1920x1080.png"), full_page=True)
        await page.click("#passphrase-hide")
        hidden = (await page.is_hidden("#passphrase-box"), await page.text_content("#passphrase"))
        # the login page's recovery form
        login = await _login_page(browser, base)
        await login.click("#forgot")
        await login.wait_for_selector("#recover-form:not([hidden])")
        violations = {"en-1920": await axe(login)}
        probe = await login.evaluate(PAGE_PROBE)
        await login.screenshot(path=shot("login-recover-en-1920x1080.png"), full_page=True)
        await login.set_viewport_size({"width": 768, "height": 1024})
        narrow_en = await login.evaluate(PAGE_PROBE)
        await login.screenshot(path=shot("login-recover-en-768x1024.png"), full_page=True)
        await login.set_viewport_size({"width": 1920, "height": 1080})
        await login.fill("#passphrase", "WRONG-WRONG-WRONG")
        await login.fill("#recover-new", NEW_CYBER)
        await login.fill("#recover-confirm", NEW_CYBER)
        await login.click("#recover-submit")
        await login.wait_for_function("() => document.getElementById('recover-text').textContent !== ''")
        wrong = await login.text_content("#recover-text")
        await login.fill("#passphrase", phrase)
        await login.click("#recover-submit")
        await login.wait_for_selector("#login-form:not([hidden])")
        done = (await login.text_content("#login-message"), await login.input_value("#profile"))
        old = await _log_in(login, "cyber", STRONG_PASSWORDS["cyber"])
        # the passphrase a second time
        again = await _login_page(browser, base, 768, 1024, "fr")
        await again.click("#forgot")
        await again.wait_for_selector("#recover-form:not([hidden])")
        violations["fr-768"] = await axe(again)
        narrow = await again.evaluate(PAGE_PROBE)
        await again.screenshot(path=shot("login-recover-fr-768x1024.png"), full_page=True)
        await again.set_viewport_size({"width": 1920, "height": 1080})
        await again.screenshot(path=shot("login-recover-fr-1920x1080.png"), full_page=True)
        await again.fill("#passphrase", phrase)
        await again.fill("#recover-new", "Another-Pass-2027!")
        await again.fill("#recover-confirm", "Another-Pass-2027!")
        await again.click("#recover-submit")
        await again.wait_for_function("() => document.getElementById('recover-text').textContent !== ''")
        twice = await again.text_content("#recover-text")
        await again.screenshot(path=shot("login-recover-refused-fr-768x1024.png"), full_page=True)
        new = await _log_in(login, "cyber", NEW_CYBER)
        await login.wait_for_url(base + "/home")
        return (none_yet, phrase, warning, shown, hidden, violations, probe, wrong, done, old, narrow, twice, new,
                narrow_en)

    (none_yet, phrase, warning, shown, hidden, violations, probe, wrong, done, old, narrow, twice,
     new, narrow_en) = asyncio.run(_with_browser(tmp_path, scenario))
    assert none_yet.startswith("No recovery passphrase")
    assert len(phrase.replace("-", "").replace(" ", "")) >= 24, phrase
    assert "shown only once" in warning
    assert shown == ("A recovery passphrase exists (not used yet).", True)
    assert hidden == (True, "")
    assert wrong.startswith("Wrong or used passphrase")
    assert done == ("The Cyber Security password was changed: log in with it. The passphrase is used up.", "cyber")
    assert old == "Wrong password.", old
    assert twice.startswith("Phrase secrète incorrecte ou déjà utilisée"), twice
    assert new == ""
    assert probe["unlabelled"] == [] and narrow["unlabelled"] == [], (probe, narrow)
    assert narrow_en["scrollWidth"] <= narrow_en["innerWidth"], narrow_en
    assert narrow["scrollWidth"] <= narrow["innerWidth"] and "Mot de passe Cyber Sécurité oublié" not in narrow["text"]
    assert "Récupérer le mot de passe Cyber Sécurité" in narrow["text"]
    assert violations == {"en-1920": [], "fr-768": []}, violations
