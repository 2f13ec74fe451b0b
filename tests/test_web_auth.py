"""Sessions and rights on every web route (issue 14, SPEC §7.1, §11), over real HTTP on a loopback port.

Each route is asked by an anonymous client, the User, the Advanced User and
the Admin, logged in through the real routes (conftest's WebClient keeps the
cookie and the CSRF token); refusals are compared with what the gateway holds
before and after (settings, accounts file, counters, simulated meters,
sessions), so a refusal that changed something fails. CSRF, session
fixation, logout, expiry on the gateway's ManualClock, the end of the other
sessions at a password change and malformed logins are each tried.
"""

import asyncio
import json
import os

from board.base import ManualClock
from conftest import (DEFAULT_PASSWORDS, STRONG_PASSWORDS, WebClient, demo_devices, demo_topology, running_gateway,
                      topology_with, wait_for, web_login, web_server)

I35_AT_5 = "DC85EA"
ANON, USER, ADVANCED, ADMIN = "anonymous", "user", "advanced", "admin"


def run(call, *args):
    return asyncio.to_thread(call, *args)


def file_bytes(gw, name):
    path = os.path.join(gw.state_dir, name)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as handle:
        return handle.read()


def world(gw):
    """What a refused request must leave as it was."""
    meters = dict(("%06X" % m.netid, (m.silent, m.extra_delay, m.crc_error_rate, m.outputs))
                  for bus in gw.board.buses.values() for m in bus.meters)
    return {"settings": file_bytes(gw, "settings.json"), "accounts": file_bytes(gw, "accounts.json"),
            "name": gw.settings.get("gateway.name"), "discovery": gw.discovery.status()["state"], "meters": meters,
            "acknowledged": [a for a in gw.alarms.events() if a.get("event") == "acknowledged"],
            "sessions": len(gw.sessions)}


def counts(gw):
    """Every device's request count: a counter reset makes one go down."""
    return dict(((name, address), c.requests) for name, engine in gw.engines.items()
                for address, c in engine.counters.items())


# (method, path, body, {client: expected status}); a client left out is not asked (its success would change
# what the next rows compare).
ROUTES = [
    ("GET", "/api/status", None, {ANON: 200, USER: 200, ADVANCED: 200, ADMIN: 200}),
    ("GET", "/api/events", None, {ANON: 200, USER: 200, ADVANCED: 200, ADMIN: 200}),
    ("GET", "/api/alarms", None, {ANON: 200, USER: 200, ADVANCED: 200, ADMIN: 200}),
    ("GET", "/api/discovery", None, {ANON: 200, USER: 200, ADVANCED: 200, ADMIN: 200}),
    ("GET", "/api/files", None, {ANON: 200, USER: 200, ADVANCED: 200, ADMIN: 200}),
    ("GET", "/api/files/no-such-file", None, {ANON: 404, USER: 404, ADVANCED: 404, ADMIN: 404}),
    ("GET", "/api/sim/meters", None, {ANON: 200, USER: 200, ADVANCED: 200, ADMIN: 200}),
    ("GET", "/api/session", None, {ANON: 200, USER: 200, ADVANCED: 200, ADMIN: 200}),
    ("GET", "/api/i18n/fr", None, {ANON: 200, USER: 200, ADVANCED: 200, ADMIN: 200}),
    ("GET", "/", None, {ANON: 200, USER: 200, ADVANCED: 200, ADMIN: 200}),
    ("GET", "/login", None, {ANON: 200, USER: 200, ADVANCED: 200, ADMIN: 200}),
    ("GET", "/static/login.js", None, {ANON: 200, USER: 200, ADVANCED: 200, ADMIN: 200}),
    ("POST", "/api/settings", {"gateway.name": "Renamed"}, {ANON: 401, USER: 403, ADVANCED: 403, ADMIN: 200}),
    ("POST", "/api/discovery", {"mode": "fast"}, {ANON: 401, USER: 403, ADVANCED: 403}),
    ("POST", "/api/alarms/acknowledge", {"alarm": 3, "source": "digiware:5"},
     {ANON: 401, USER: 403, ADVANCED: 404, ADMIN: 404}),          # allowed, but nothing is active to acknowledge
    ("POST", "/api/counters/reset", {"address": 4}, {ANON: 401, USER: 403, ADVANCED: 200, ADMIN: 200}),
    ("POST", "/api/devices/15/0/out_1", {"value": 1}, {ANON: 401, USER: 403, ADVANCED: 403, ADMIN: 403}),
    ("POST", "/api/sim/meters/" + I35_AT_5, {"crc_error_rate": 0.5}, {ANON: 401, USER: 403, ADVANCED: 403, ADMIN: 200}),
    ("POST", "/api/sim/meters/%s/events" % I35_AT_5, {"kind": "device", "index": 2, "load": 1},
     {ANON: 401, USER: 403, ADVANCED: 403}),
    ("POST", "/api/sim/button", {"held_s": 3}, {ANON: 401, USER: 403, ADVANCED: 403}),
    ("POST", "/api/password", {"current": "x", "new": "Another-Pass-2026"}, {ANON: 401, USER: 403}),
    ("POST", "/api/logout", {}, {ANON: 401}),
]


def test_every_route_answers_each_profile_as_the_rights_table_says_and_a_refusal_changes_nothing(tmp_path):
    web = web_server()

    async def scenario():
        async with running_gateway(tmp_path / "state", demo_topology(), {"alarms.check_s": 3600},
                                   services=[web]) as gw:
            await gw.topology.replace(demo_devices())
            await wait_for(lambda: all(p.cycles >= 2 for p in gw.pollers.values()), guard=30)
            base = "http://127.0.0.1:%d" % web.server.port
            clients = {ANON: WebClient(base), USER: await run(web_login, base, "user"),
                       ADVANCED: await run(web_login, base, "advanced"), ADMIN: await run(web_login, base, "admin")}
            before, counted = world(gw), counts(gw)
            refusals = 0
            for method, path, body, expected in ROUTES:
                for who, code in expected.items():
                    if code not in (401, 403):
                        continue
                    status, answer, _headers = await run(clients[who].request, method, path, body)
                    assert status == code, (who, method, path, status, answer)
                    assert isinstance(answer.get("error"), str) and answer["error"], (who, path, answer)
                    if who == ANON:
                        assert answer["reason"] == "auth", (path, answer)
                    elif who == ADMIN:
                        assert answer["reason"] == "policy", (path, answer)       # the write: policy, not rights
                    else:
                        assert answer["reason"] == "rights", (who, path, answer)
                    refusals += 1
            assert refusals == sum(1 for *_r, e in ROUTES for c in e.values() if c in (401, 403))
            assert world(gw) == before
            assert all(requests >= counted[key] for key, requests in counts(gw).items())   # no counter was reset
            # what each profile may do, it does (and the reads answer the same to everyone)
            for method, path, body, expected in ROUTES:
                for who, code in expected.items():
                    if code in (401, 403):
                        continue
                    status, answer, _headers = await run(clients[who].request, method, path, body)
                    assert status == code, (who, method, path, status, answer)
            assert gw.settings.get("gateway.name") == "Renamed"
            assert gw.board.find_meter(netid=0xDC85EA).crc_error_rate == 0.5
            status, answer = await run(clients[ADMIN].post, "/api/discovery", {"mode": "fast"})
            assert status == 202 and answer["state"] == "running"
    asyncio.run(scenario())


def test_a_state_change_needs_the_sessions_csrf_token_and_a_same_origin(tmp_path):
    web = web_server()

    async def scenario():
        async with running_gateway(tmp_path / "state", topology_with(), services=[web]) as gw:
            base = "http://127.0.0.1:%d" % web.server.port
            admin, user = await run(web_login, base, "admin"), await run(web_login, base, "user")
            before = world(gw)
            host = "127.0.0.1:%d" % web.server.port
            change = {"gateway.name": "Forged"}
            for headers, reason in (({"X-CSRF-Token": None}, "csrf"), ({"X-CSRF-Token": ""}, "csrf"),
                                    ({"X-CSRF-Token": "x" * 43}, "csrf"), ({"X-CSRF-Token": user.csrf}, "csrf"),
                                    ({"X-CSRF-Token": "é" * 20}, "csrf"),
                                    ({"Origin": "http://evil.example"}, "origin"), ({"Origin": "null"}, "origin"),
                                    ({"Referer": "http://evil.example/page"}, "origin"),
                                    ({"Origin": "https://%s" % host.replace("127.0.0.1", "127.0.0.2")}, "origin")):
                status, answer, _h = await run(admin.request, "POST", "/api/settings", change, headers)
                assert (status, answer["reason"]) == (403, reason), (headers, answer)
                status, answer, _h = await run(admin.request, "POST", "/api/logout", {}, headers)
                assert status == 403, (headers, answer)
            # a login from another site is refused too (login CSRF), and a page posting to us
            stranger = WebClient(base)
            status, answer, _h = await run(stranger.request, "POST", "/api/login",
                                           {"profile": "user", "password": ""}, {"Origin": "http://evil.example"})
            assert (status, answer["reason"], stranger.cookie) == (403, "origin", None)
            assert world(gw) == before
            assert (await run(admin.get, "/api/session"))[1]["profile"] == "admin"      # still logged in
            # the same request with its token, from the same origin, passes
            status, answer, _h = await run(admin.request, "POST", "/api/settings", change,
                                           {"Origin": "http://" + host, "Referer": "http://%s/settings" % host})
            assert status == 200 and gw.settings.get("gateway.name") == "Forged", answer
    asyncio.run(scenario())


def test_a_login_never_keeps_the_id_the_client_had_and_sets_a_strict_cookie(tmp_path):
    web = web_server()

    async def scenario():
        async with running_gateway(tmp_path / "state", topology_with(), services=[web]) as gw:
            base = "http://127.0.0.1:%d" % web.server.port
            # an id made up by an attacker is not taken
            victim = WebClient(base)
            victim.cookie = "attacker-chosen-id"
            status, answer, headers = await run(victim.request, "POST", "/api/login",
                                                {"profile": "advanced", "password": DEFAULT_PASSWORDS["advanced"]})
            assert status == 200 and answer["must_change"] and victim.cookie != "attacker-chosen-id"
            cookie = headers["Set-Cookie"]
            assert all(part in cookie for part in ("HttpOnly", "SameSite=Strict", "Path=/")), cookie
            assert "Secure" not in cookie                   # plain HTTP here; HTTPS adds Secure
            assert victim.cookie not in json.dumps(answer)  # the id is never in a body (the cookie is HttpOnly)
            # a real session planted by an attacker ends at the victim's login: neither keeps the other's id
            attacker = await run(web_login, base, "user")
            planted = attacker.cookie
            victim = WebClient(base)
            victim.cookie = planted
            status, answer = await run(victim.login, "advanced", DEFAULT_PASSWORDS["advanced"])
            assert status == 200 and victim.cookie != planted
            assert (await run(attacker.get, "/api/session"))[1]["logged_in"] is False
            assert gw.sessions.lookup(planted) is None
            # a failed login keeps the session the client had, and makes none
            sessions = len(gw.sessions)
            status, answer = await run(victim.login, "admin", "wrong")
            assert status == 401 and answer["reason"] == "auth" and len(gw.sessions) == sessions
    asyncio.run(scenario())


def test_logout_and_a_password_change_end_sessions_and_expiry_follows_the_gateways_clock(tmp_path):
    web = web_server()
    clock = ManualClock()

    async def scenario():
        async with running_gateway(tmp_path / "state", topology_with(), {"session.lifetime_s": 600},
                                   clock=clock, services=[web]) as gw:
            base = "http://127.0.0.1:%d" % web.server.port
            first = await run(web_login, base, "admin")
            second = await run(web_login, base, "admin")
            assert (await run(second.post, "/api/settings", {"gateway.name": "Second"}))[0] == 200
            # the first session changes the password: the second ends, the first goes on under a new id
            old = first.cookie
            status, answer = await run(first.change_password, STRONG_PASSWORDS["admin"], "Admin-Pass-2027!")
            assert status == 200 and first.cookie != old
            status, answer = await run(second.post, "/api/settings", {"gateway.name": "Late"})
            assert (status, answer["reason"]) == (401, "auth")
            assert gw.sessions.lookup(old) is None
            assert (await run(first.post, "/api/settings", {"gateway.name": "First"}))[0] == 200
            # idle time below the lifetime keeps it (each use restarts it); the lifetime ends it
            clock.advance(500)
            assert (await run(first.post, "/api/counters/reset", {}))[0] == 200
            clock.advance(500)
            assert (await run(first.post, "/api/counters/reset", {}))[0] == 200
            # reading (a status page polling) is not a use: it keeps no session alive
            clock.advance(599)
            assert (await run(first.get, "/api/status"))[0] == 200
            clock.advance(1)
            status, answer = await run(first.post, "/api/settings", {"gateway.name": "Expired"})
            assert (status, answer["reason"]) == (401, "auth") and gw.settings.get("gateway.name") == "First"
            assert (await run(first.get, "/api/session"))[1]["logged_in"] is False
            # logout ends the session on the gateway, whatever the client keeps
            third = WebClient(base)
            assert (await run(third.login, "admin", "Admin-Pass-2027!"))[0] == 200
            kept = third.cookie
            status, _answer, headers = await run(third.request, "POST", "/api/logout", {})
            assert status == 200 and "Max-Age=0" in headers["Set-Cookie"]
            third.cookie = kept
            status, answer = await run(third.post, "/api/settings", {"gateway.name": "After logout"})
            assert status == 401 and gw.settings.get("gateway.name") == "First"
    asyncio.run(scenario())


def test_the_forced_change_allows_only_itself_and_speaks_the_sessions_language(tmp_path):
    web = web_server()

    async def scenario():
        async with running_gateway(tmp_path / "state", topology_with(), services=[web]) as gw:
            base = "http://127.0.0.1:%d" % web.server.port
            admin = WebClient(base)
            status, answer = await run(admin.login, "admin", "Admin", "fr")
            assert status == 200 and answer["must_change"] and answer["language"] == "fr"
            assert (await run(admin.get, "/api/status"))[0] == 200             # what User sees, still
            before = world(gw)
            status, answer = await run(admin.post, "/api/settings", {"gateway.name": "Too early"})
            assert (status, answer["reason"]) == (403, "must_change")
            assert answer["error"] == "Le mot de passe doit être changé avant toute autre chose."
            status, answer = await run(admin.change_password, "Admin", "lower-case-only-7")
            assert (status, answer["reason"]) == (400, "bad_value")
            assert answer["messages"] == ["une lettre majuscule"], answer
            status, answer = await run(admin.change_password, "Admin", "short")
            assert "au moins 10 caractères" in answer["messages"] and "un chiffre" in answer["messages"], answer
            assert world(gw) == before
            status, answer = await run(admin.change_password, "Admin", STRONG_PASSWORDS["admin"])
            assert status == 200 and not answer["must_change"]
            assert (await run(admin.post, "/api/settings", {"gateway.name": "Now"}))[0] == 200
            # a refusal without a session follows Accept-Language
            status, answer, _h = await run(WebClient(base).request, "POST", "/api/settings", {"gateway.name": "x"},
                                           {"Accept-Language": "fr-FR,fr;q=0.9"})
            assert status == 401 and answer["error"].startswith("Connectez-vous")
    asyncio.run(scenario())


def test_wrong_passwords_lock_the_profile_with_the_time_left(tmp_path):
    web = web_server()
    clock = ManualClock()

    async def scenario():
        async with running_gateway(tmp_path / "state", topology_with(), {"session.lockout_s": 120},
                                   clock=clock, services=[web]) as gw:
            base = "http://127.0.0.1:%d" % web.server.port
            client = WebClient(base)
            for _ in range(3):
                status, answer = await run(client.login, "advanced", "Wrong-1")
                assert (status, answer["reason"], answer["error"]) == (401, "auth", "Wrong password.")
            status, answer = await run(client.login, "advanced", "Advanced")          # right, but locked
            assert (status, answer["reason"], answer["seconds"]) == (403, "locked", 120), answer
            assert "120 s" in answer["error"] and client.cookie is None
            clock.advance(121)
            status, answer = await run(client.login, "advanced", "Advanced")
            assert status == 200 and answer["must_change"]
    asyncio.run(scenario())


def test_malformed_logins_are_400_and_change_nothing(tmp_path):
    web = web_server()

    async def scenario():
        async with running_gateway(tmp_path / "state", topology_with(), services=[web]) as gw:
            base = "http://127.0.0.1:%d" % web.server.port
            await run(web_login, base, "admin")          # the accounts file exists and has a hash
            before = world(gw)
            bodies = [b"{not json", b"[1, 2]", b"\"admin\"", b"", b"{}", b'{"profile": 5}', b'{"profile": null}',
                      b'{"profile": "root", "password": "x"}', b'{"profile": ["admin"]}',
                      b'{"profile": "admin", "password": 12345}', b'{"profile": "admin", "password": {"$ne": 1}}',
                      b'{"profile": "admin", "password": "x", "language": 7}',
                      b'{"profile": "admin", "password": "x", "language": "' + b"f" * 100 + b'"}',
                      json.dumps({"profile": "admin", "password": "A-" * 600}).encode(),        # > 1 KiB field
                      json.dumps({"profile": "admin", "password": "A-1" * 60}).encode(),        # > 128 characters
                      json.dumps({"profile": "admin", "password": "x" * 5000}).encode(),        # > the 4 KiB body
                      b'{"profile": "admin", "password": "\xff\xfe"}']
            for body in bodies:
                client = WebClient(base)
                status, answer, headers = await run(client.request, "POST", "/api/login", None, None, body)
                assert status == 400, (body[:60], status, answer)
                assert answer["reason"] in ("bad_request", "bad_value") and "Set-Cookie" not in headers, answer
            assert world(gw) == before           # no failed attempt counted, no session made, nothing written
            user = await run(web_login, base, "user")
            assert (await run(user.get, "/api/session"))[1]["profile"] == "user"
            assert gw.accounts.state("admin")["locked_for"] == 0
            # a password body of the wrong types is refused as well
            admin = await run(web_login, base, "admin")
            for body in ({"current": 1, "new": "x"}, {"current": STRONG_PASSWORDS["admin"]}, {"new": None},
                         {"current": "x" * 2000, "new": "y"}, {"current": "x", "new": "y", "profile": "root"}):
                status, answer = await run(admin.post, "/api/password", body)
                assert status == 400, (body, answer)
            assert file_bytes(gw, "accounts.json") == before["accounts"]
    asyncio.run(scenario())


def test_a_flood_of_logins_keeps_the_session_table_bounded_and_the_admin_logged_in(tmp_path):
    web = web_server()

    async def scenario():
        async with running_gateway(tmp_path / "state", topology_with(), services=[web]) as gw:
            base = "http://127.0.0.1:%d" % web.server.port
            admin = await run(web_login, base, "admin")
            cap = gw.sessions.cap

            def flood():
                for _ in range(3 * cap):
                    assert WebClient(base).login("user")[0] == 200
            await run(flood)
            assert len(gw.sessions) <= cap
            assert (await run(admin.post, "/api/settings", {"gateway.name": "Still here"}))[0] == 200
    asyncio.run(scenario())


def test_over_https_the_session_cookie_is_secure(tmp_path):
    """The server's own TLS (a self-signed certificate made here with openssl): the cookie gets Secure."""
    import ssl
    import subprocess
    import urllib.request

    from daemon.__main__ import board_routes
    from webconfig.app import make_app
    from webconfig.server import HttpServer

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
                    "-days", "1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))

    def make(door, board):
        make.server = HttpServer(make_app(door, mount=board_routes(board)), host="127.0.0.1", port=0,
                                 ssl_context=context)
        return make.server
    make.name, make.with_board = "web", True

    def login(port):
        client_context = ssl.create_default_context(cafile=str(cert))
        client_context.check_hostname = False
        request = urllib.request.Request("https://127.0.0.1:%d/api/login" % port, method="POST",
                                         data=json.dumps({"profile": "user"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30, context=client_context) as response:
            return response.status, response.headers["Set-Cookie"]

    async def scenario():
        async with running_gateway(tmp_path / "state", topology_with(), services=[make]):
            return await run(login, make.server.port)

    status, cookie = asyncio.run(scenario())
    assert status == 200 and "; Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
