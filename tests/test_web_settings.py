"""The schema-driven configuration pages' API (issue 14, SPEC §7.2, §11), over real HTTP on a loopback port.

Every page of the schema is asked by an anonymous client and by the User, Advanced, Admin and Cyber Security
profiles logged in through the real routes; secrets are looked for in every answer; malformed and refused
forms are compared with the settings (file and values) before and after, so a refusal that saved anything
fails. Playwright drives the page itself in tests/test_web_settings_page.py.
"""

import asyncio
import http.client
import json
import os

from conftest import WebClient, running_gateway, topology_with, web_login, web_server
from daemon.state import settings as schema

ANON, USER, ADVANCED, ADMIN, CYBER = "anonymous", "user", "advanced", "admin", "cyber"
# Distinctive secret values: none of them may appear in any answer.
SECRETS = {"snmp.v1.read_community": "Sekret-v1r", "snmp.v1.write_community": "Sekret-v1w",
           "snmp.v2c.read_community": "Sekret-v2r", "snmp.v2c.write_community": "Sekret-v2w",
           "snmp.v3.read_auth_password": "Sekret-3ra", "snmp.v3.read_priv_password": "Sekret-3rp",
           "snmp.v3.write_auth_password": "Sekret-3wa", "snmp.v3.write_priv_password": "Sekret-3wp",
           "snmp.trap.community": "Sekret-trp", "push.password": "Sekret-push", "smtp.password": "Sekret-smtp"}


def run(call, *args):
    return asyncio.to_thread(call, *args)


def admin_may_open(page):
    """The rights table's answer: Admin opens a page when it may change at least one of its settings."""
    return any(spec.profile == "admin" for spec in schema.page_rows(page))


def by_menu(pages):
    """The pages in the list's order: Devices, Protocols, System, Cyber security; the schema's order within."""
    menus = ("devices", "protocols", "system", "security")
    return sorted(pages, key=lambda page: menus.index(page.split(".")[0]))


def saved(gw):
    """What a refused form must leave as it was: the settings file and every current value."""
    path = os.path.join(gw.state_dir, "settings.json")
    with open(path, "rb") if os.path.exists(path) else open(os.devnull, "rb") as handle:
        return handle.read(), gw.settings.all()


async def clients(base):
    return {ANON: WebClient(base), USER: await run(web_login, base, "user"),
            ADVANCED: await run(web_login, base, "advanced"), ADMIN: await run(web_login, base, "admin"),
            CYBER: await run(web_login, base, "cyber")}


def page_status(port, client):
    """(status, Location, body) of GET /settings, redirects not followed (urllib would follow a 303)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Cookie": "m70_session=" + client.cookie} if client.cookie else {}
        connection.request("GET", "/settings", headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Location"), response.read().decode("utf-8")
    finally:
        connection.close()


def with_site(tmp_path, scenario, overrides=None):
    web = web_server()

    async def body():
        async with running_gateway(tmp_path / "state", topology_with(), overrides, services=[web]) as gw:
            base = "http://127.0.0.1:%d" % web.server.port
            return await scenario(gw, base, web.server.port)
    return asyncio.run(body())


def test_every_page_answers_each_profile_as_the_rights_say(tmp_path):
    async def scenario(gw, base, port):
        who = await clients(base)
        before = saved(gw)
        statuses, lists, pages = {}, {}, {}
        for name, client in who.items():
            status, answer = await run(client.get, "/api/settings/pages")
            lists[name] = (status, [p["page"] for p in answer.get("pages", ())], answer.get("reason"))
            for page in schema.PAGES:
                status, answer = await run(client.get, "/api/settings/page/" + page)
                statuses[name, "GET", page] = status
                if status == 200:
                    pages[name, page] = answer
                else:
                    assert answer["error"] and answer["reason"] in ("auth", "rights"), (name, page, answer)
                status, answer = await run(client.post, "/api/settings/page/" + page, {})
                statuses[name, "POST", page] = status
        views = {}
        for name, client in who.items():
            views[name] = await run(page_status, port, client)
        unknown = await run(who[ADMIN].get, "/api/settings/page/no.such.page")
        return before, saved(gw), statuses, lists, pages, views, unknown

    before, after, statuses, lists, pages, views, unknown = with_site(tmp_path, scenario)
    assert after == before                                     # the empty forms and the refusals saved nothing
    for page in schema.PAGES:
        for method in ("GET", "POST"):
            assert statuses[ANON, method, page] == 401
            assert statuses[USER, method, page] == statuses[ADVANCED, method, page] == 403
            assert statuses[ADMIN, method, page] == (200 if admin_may_open(page) else 403), page
            assert statuses[CYBER, method, page] == 200
    assert lists[ANON] == (401, [], "auth") and lists[USER] == lists[ADVANCED] == (403, [], "rights")
    assert lists[CYBER] == (200, by_menu(schema.PAGES), None)
    assert lists[ADMIN] == (200, by_menu(p for p in schema.PAGES if admin_may_open(p)), None)
    assert "protocols.field" in lists[ADMIN][1] and "devices.notifications" in lists[ADMIN][1]
    assert not any(p.startswith("security.") for p in lists[ADMIN][1])
    # each page shows the schema's rows, in order, each editable exactly when the profile may change it
    for (name, page), document in pages.items():
        fields = [f for section in document["sections"] for f in section["fields"]]
        assert [f["name"] for f in fields] == [spec.name for spec in schema.page_rows(page)]
        for field, spec in zip(fields, schema.page_rows(page)):
            assert field["editable"] == (name == CYBER or spec.profile == "admin"), (name, spec.name)
            assert field["live"] == spec.live and field["kind"] == spec.kind and field["label"] and field["help"]
    snmp = dict((f["name"], f) for s in pages[ADMIN, "protocols.field"]["sections"] for f in s["fields"])
    # switching a service on is configuration (Admin); its port is network exposure (Cyber Security, SPEC §8)
    assert snmp["snmp.enabled"]["editable"] is True and snmp["snmp.port"]["editable"] is False
    assert (snmp["snmp.port"]["min"], snmp["snmp.port"]["max"]) == (1, 65535)
    assert snmp["bus.rs485.parity"]["choices"] == [{"value": "N", "label": "None"}, {"value": "E", "label": "Even"},
                                                   {"value": "O", "label": "Odd"}], snmp["bus.rs485.parity"]
    # the page itself: the login page without a session, a 403 page for User and Advanced, the page for the others
    assert views[ANON][:2] == (303, "/login")
    for name in (USER, ADVANCED):
        assert views[name][0] == 403 and "cannot open the configuration pages" in views[name][2], views[name]
    for name in (ADMIN, CYBER):
        assert views[name][0] == 200 and "/static/settings.js" in views[name][2]
    assert unknown[0] == 404 and unknown[1]["reason"] == "not_found"


def test_secrets_never_leave_the_gateway_and_say_only_whether_they_are_set(tmp_path):
    async def scenario(gw, base, port):
        await gw.settings.set_many(dict((k, v) for k, v in SECRETS.items() if k != "smtp.password"))
        answers = []
        for profile in (ADMIN, CYBER):
            client = await run(web_login, base, profile)
            for page in [None] + list(schema.PAGES):
                path = "/api/settings/pages" if page is None else "/api/settings/page/" + page
                status, raw, _headers = await run(client.request, "GET", path, None, None)
                answers.append((status, json.dumps(raw)))
        return answers

    answers = with_site(tmp_path, scenario)
    assert sum(1 for status, _ in answers if status == 200) >= len(schema.PAGES) + 2
    for _status, text in answers:
        for value in SECRETS.values():
            assert value not in text
    fields = {}
    for _status, text in answers:
        for section in json.loads(text).get("sections", ()):
            fields.update((f["name"], f) for f in section["fields"])
    for name in SECRETS:
        assert "value" not in fields[name] and fields[name]["secret"] is True and fields[name]["kind"] == "password"
    assert fields["push.password"]["set"] == "set" and fields["smtp.password"]["set"] == "not set"


def test_an_empty_secret_keeps_the_stored_one_and_the_answer_says_what_applies_when(tmp_path):
    async def scenario(gw, base, port):
        await gw.settings.set_many({"snmp.v2c.read_community": "Kept-one"})
        admin = await run(web_login, base, "admin")
        changed = []
        gw.settings.on_change(lambda name, value: changed.append(name))
        first = await run(admin.post, "/api/settings/page/protocols.field",
                          {"snmp.v2c.read_community": "", "snmp.trap.port1": 1162, "sntp.port": 123})
        kept = gw.settings.get("snmp.v2c.read_community"), gw.settings.get("snmp.trap.port1")
        second = await run(admin.post, "/api/settings/page/protocols.network",
                           {"network.vlan.id": 12, "network.vlan.enabled": True})
        third = await run(admin.post, "/api/settings/page/protocols.field", {"snmp.v2c.read_community": "New-one"})
        return first, kept, second, third, gw.settings.get("snmp.v2c.read_community"), changed, \
            gw.settings.get("network.vlan.id")

    first, kept, second, third, community, changed, vlan = with_site(tmp_path, scenario)
    assert first == (200, {"ok": True, "live": ["snmp.trap.port1"], "restart": [],
                           "unchanged": ["snmp.v2c.read_community", "sntp.port"]})
    assert kept == ("Kept-one", 1162)
    assert second == (200, {"ok": True, "live": [], "restart": ["network.vlan.enabled", "network.vlan.id"],
                            "unchanged": []}) and vlan == 12
    assert third[0] == 200 and community == "New-one"
    # an unchanged value is not applied again (no service restarts for it), an empty secret not at all
    assert sorted(changed) == ["network.vlan.enabled", "network.vlan.id", "snmp.trap.port1", "snmp.v2c.read_community"]


MALFORMED = [
    # (raw body, expected reason, {field: a word its message holds} or None)
    (b"{not json", "bad_request", None),
    (b"[1, 2]", "bad_request", None),
    (b'"sntp.port"', "bad_request", None),
    (json.dumps({"sntp.port": "x" * 5000}).encode(), "bad_request", None),             # beyond the body limit
    (json.dumps({"sntp.port": "123"}).encode(), "bad_value", {"sntp.port": "integer"}),
    (json.dumps({"sntp.enabled": "yes"}).encode(), "bad_value", {"sntp.enabled": "true or false"}),
    (json.dumps({"sntp.port": 70000, "sntp.enabled": True}).encode(), "bad_value", {"sntp.port": "65535"}),
    (json.dumps({"bus.rs485.parity": "X", "snmp.trap.port1": 1000}).encode(), "bad_value",
     {"bus.rs485.parity": "N, E, O"}),
    (json.dumps({"sntp.server": "not a host!", "snmp.trap.host1": "x" * 3000}).encode(), "bad_value",
     {"sntp.server": "not a host", "snmp.trap.host1": "0 to 64"}),
    (json.dumps({"sntp.port": [123], "sntp.period_s": None, "bus.rs485.mode": {"a": 1}}).encode(), "bad_value",
     {"sntp.port": "integer", "sntp.period_s": "integer", "bus.rs485.mode": "master"}),
    (json.dumps({"no.such.setting": 1, "sntp.port": 1123}).encode(), "bad_value", {"no.such.setting": "unknown"}),
    (json.dumps({"gateway.name": "Other page", "sntp.port": 1123}).encode(), "bad_value",
     {"gateway.name": "not on this page"}),
]


def test_malformed_forms_are_refused_with_one_message_per_field_and_change_nothing(tmp_path):
    async def scenario(gw, base, port):
        admin = await run(web_login, base, "admin")
        french = await run(web_login, base, "cyber", "fr")
        before = saved(gw)
        answers = []
        for raw, _reason, _fields in MALFORMED:
            status, answer, _headers = await run(admin.request, "POST", "/api/settings/page/protocols.field",
                                                 None, None, raw)
            answers.append((status, answer))
        in_french = await run(french.post, "/api/settings/page/protocols.field", {"sntp.port": 70000})
        nowhere = await run(admin.post, "/api/settings/page/no.such.page", {"sntp.port": 1123})
        return before, saved(gw), answers, in_french, nowhere

    before, after, answers, in_french, nowhere = with_site(tmp_path, scenario)
    assert after == before
    for (raw, reason, fields), (status, answer) in zip(MALFORMED, answers):
        assert status == 400 and answer["reason"] == reason and answer["error"], (raw[:60], answer)
        if fields is None:
            continue
        messages = dict((m["field"], m["message"]) for m in answer["messages"])
        assert sorted(messages) == sorted(fields), (raw[:60], answer)
        for field, word in fields.items():
            assert word in messages[field], (field, messages[field])
    assert in_french[0] == 400 and in_french[1]["messages"] == [
        {"field": "sntp.port", "message": "70000 est hors de la plage 1..65535"}], in_french
    assert "rien n'a été modifié" in in_french[1]["error"]
    assert nowhere[0] == 404


def test_a_field_the_profile_may_not_change_is_refused_and_nothing_is_saved(tmp_path):
    async def scenario(gw, base, port):
        admin, cyber = await run(web_login, base, "admin"), await run(web_login, base, "cyber")
        before = saved(gw)
        mixed = await run(admin.post, "/api/settings/page/protocols.field",
                          {"snmp.port": 1161, "snmp.trap.port1": 1000})
        other = await run(admin.post, "/api/settings/page/security.policy", {"policy.banner": True})
        middle = saved(gw)
        allowed = await run(cyber.post, "/api/settings/page/protocols.field",
                            {"snmp.port": 1161, "snmp.trap.port1": 1000})
        return before, middle, mixed, other, allowed, gw.settings.get("snmp.port")

    before, middle, mixed, other, allowed, enabled = with_site(tmp_path, scenario)
    assert middle == before
    assert mixed[0] == 403 and mixed[1]["reason"] == "rights" and mixed[1]["messages"] == [
        {"field": "snmp.port", "message": "your profile may not change this setting"}], mixed
    assert other[0] == 403 and other[1]["reason"] == "rights"
    assert allowed == (200, {"ok": True, "live": ["snmp.port", "snmp.trap.port1"], "restart": [],
                             "unchanged": []}) and enabled == 1161


def test_the_pages_speak_the_sessions_language(tmp_path):
    async def scenario(gw, base, port):
        french = await run(web_login, base, "admin", "fr")
        return await run(french.get, "/api/settings/pages"), \
            await run(french.get, "/api/settings/page/protocols.field")

    (status, pages), (status2, page) = with_site(tmp_path, scenario)
    assert status == status2 == 200
    titles = dict((p["page"], (p["title"], p["menu_title"])) for p in pages["pages"])
    assert titles["protocols.field"] == ("Protocoles terrain", "Protocoles")
    fields = dict((f["name"], f) for s in page["sections"] for f in s["fields"])
    assert fields["snmp.enabled"]["label"] == "Activation SNMP"
    assert fields["bus.rs485.parity"]["choices"][0] == {"value": "N", "label": "Aucune"}
