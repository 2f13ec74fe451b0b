"""The outbound clients on their settings pages, in a real headless Chromium (issue 16): *Test connection* on
the data-push page uploads a file to a real FTP server (pyftpdlib) and shows the server's answer, *Send test
e-mail* on the notifications page reaches a real SMTP server (aiosmtpd), a failure is said in the page's language,
an unsaved form is not tested, and each page shows its client's live state (files waiting, alarm 6).
"""

import asyncio

from browser_support import AXE, AXE_RUN, CHROMIUM, CHROMIUM_ARGS, browser_ready, shot
from conftest import running_gateway, topology_with, wait_for, web_login, web_server
from push_servers import PASSWORD, USER, FtpServer
from test_mail import smtp_server

from daemon.security.rights import Caller
from outbound.export.service import ExportService
from outbound.mail.service import MailService

FORM_READY = "() => document.documentElement.dataset.ready === '1' && !document.getElementById('outbound-state').hidden"
STATE_ROWS = "() => document.querySelectorAll('#state-rows dd').length > 0"


async def _page_as(browser, base, profile, language):
    client = await asyncio.to_thread(web_login, base, profile, language)
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    await context.add_cookies([{"name": "m70_session", "value": client.cookie, "url": base}])
    return await context.new_page()


def test_test_buttons_reach_real_servers_and_the_pages_show_the_clients_state(tmp_path):
    browser_ready(AXE)
    from playwright.async_api import async_playwright
    web = web_server()
    out = {}

    async def scenario():
        with smtp_server() as (smtp_port, inbox):
            ftp = FtpServer(tmp_path / "ftp").start()
            services = [web, ExportService, MailService]
            async with running_gateway(tmp_path / "state", topology_with(), services=services) as gw:
                cyber = gw.door(Caller("web", "cyber"))
                await cyber.set_settings({
                    "push.protocol": "ftp", "push.host": "127.0.0.1", "push.port": ftp.port, "push.user": USER,
                    "push.password": PASSWORD, "push.folder": "m70", "push.site_name": "plant",
                    "push.server_name": "GW7",
                    "smtp.enabled": True, "smtp.host": "127.0.0.1", "smtp.port": smtp_port, "smtp.secure": False,
                    "notify.sender": "m70@example.com", "notify.recipient1": "ops@example.com"})
                await wait_for(lambda: gw.outbound("mail").running)
                base = "http://127.0.0.1:%d" % web.server.port
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    try:
                        page = await _page_as(browser, base, "admin", "en")
                        await page.goto(base + "/settings?page=protocols.data_push", wait_until="load")
                        await page.wait_for_function(FORM_READY)
                        await page.wait_for_function(STATE_ROWS)
                        out["button_en"] = await page.text_content("#action-push-test")
                        await page.click("#action-push-test")
                        await page.wait_for_selector("#result-push-test.ok, #result-push-test.bad")
                        out["result_en"] = (await page.get_attribute("#result-push-test", "class"),
                                            await page.text_content("#result-push-test"))
                        out["ftp_after_test"] = ftp.names()
                        out["state_en"] = await page.text_content("#outbound-state")
                        out["axe"] = await page.add_script_tag(path=AXE) and await page.evaluate(AXE_RUN)
                        await page.screenshot(path=shot("settings-data-push-en-1280x900.png"), full_page=True)
                        # an unsaved change is not tested with the old settings
                        await page.fill('[name="push.folder"]', "elsewhere")
                        await page.click("#action-push-test")
                        await page.wait_for_selector("#result-push-test.bad")
                        out["unsaved"] = await page.text_content("#result-push-test")
                        out["ftp_after_unsaved"] = ftp.names()
                        # the server down: the failure in French, alarm 6 in the state
                        ftp.stop()
                        page_fr = await _page_as(browser, base, "admin", "fr")
                        await page_fr.goto(base + "/settings?page=protocols.data_push", wait_until="load")
                        await page_fr.wait_for_function(FORM_READY)
                        out["button_fr"] = await page_fr.text_content("#action-push-test")
                        await page_fr.click("#action-push-test")
                        await page_fr.wait_for_selector("#result-push-test.ok, #result-push-test.bad")
                        out["result_fr"] = (await page_fr.get_attribute("#result-push-test", "class"),
                                            await page_fr.text_content("#result-push-test"))
                        gw.door(Caller("push")).report_alarm(True, "the server refused the upload", part="delivery")
                        await page_fr.wait_for_function(
                            "() => document.getElementById('state-summary').classList.contains('bad')", timeout=15000)
                        out["state_fr"] = await page_fr.text_content("#outbound-state")
                        await page_fr.screenshot(path=shot("settings-data-push-fr-1280x900.png"), full_page=True)
                        # the e-mail notifications page: a real test mail
                        await page.goto(base + "/settings?page=devices.notifications", wait_until="load")
                        await page.wait_for_function(FORM_READY)
                        await page.click("#action-notify-test")
                        await page.wait_for_selector("#result-notify-test.ok, #result-notify-test.bad")
                        out["mail_result"] = (await page.get_attribute("#result-notify-test", "class"),
                                              await page.text_content("#result-notify-test"))
                        out["mails"] = [(rcpt, message["Subject"]) for rcpt, message in inbox.messages]
                        # User has no configuration menus: the button's route refuses it
                        user = await asyncio.to_thread(web_login, base, "user", "en")
                        out["user_post"] = await asyncio.to_thread(user.post, "/api/outbound/push-test", {})
                    finally:
                        await browser.close()
    asyncio.run(scenario())

    assert out["button_en"] == "Test connection" and out["button_fr"] == "Test de connexion"
    css, text = out["result_en"]
    assert "ok" in css.split() and text.startswith("Server answer: 2"), text
    assert len(out["ftp_after_test"]) == 1 and out["ftp_after_test"][0].startswith("plant_GW7_test_")
    assert "Files waiting" in out["state_en"] and "On, no alarm" in out["state_en"]
    assert out["axe"] == []
    assert out["unsaved"].startswith("Save the form first") and out["ftp_after_unsaved"] == out["ftp_after_test"]
    css, text = out["result_fr"]
    assert "bad" in css.split() and text.startswith("Échec"), text
    assert "Alarme active" in out["state_fr"] and "Envoi de données" in out["state_fr"]
    css, text = out["mail_result"]
    assert "ok" in css.split() and "250" in text, text
    assert len(out["mails"]) == 1 and out["mails"][0][0] == ["ops@example.com"]
    assert out["user_post"][0] == 403
