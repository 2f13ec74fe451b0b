"""Web sessions (SPEC §7.1): a new id at every login, ended at logout and at a password change, idle
lifetime from the settings (Totem's never ends), a CSRF token per session, a bounded table.

Through the door of a gateway on a ManualClock (time advances without waiting),
and the table alone for its bound.
"""

import asyncio

import pytest

from board.base import ManualClock
from daemon import api
from daemon.api import Refused
from daemon.security import accounts
from daemon.security.rights import Caller
from daemon.security.sessions import MAX_SESSIONS, SessionTable
from tests.conftest import running_gateway, topology_with

STRONG = {"advanced": "Advanced-Pass1", "totem": "Totem-Wall-22", "admin": "Admin-Secret9", "cyber": "Cyber-Guard42"}


def gateway(tmp_path, clock, **overrides):
    return running_gateway(tmp_path / "state", topology_with(), overrides, clock=clock)


async def strong_login(door, profile):
    """Log in with the default password, change it; the session afterwards."""
    first = await door.login(profile, accounts.DEFAULT_PASSWORDS[profile])
    return await door.change_password(first["session"], accounts.DEFAULT_PASSWORDS[profile], STRONG[profile])


def test_login_rotates_the_id_logout_and_a_password_change_end_sessions(tmp_path):
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            door = gw.door(Caller("web", "user", "192.0.2.9"))
            anonymous = await door.login("user", language="fr")
            admin = await strong_login(door, "admin")
            # a login ends the session the client came with and never reuses an id
            again = await door.login("admin", STRONG["admin"], replacing=anonymous["session"])
            assert door.session(anonymous["session"]) is None
            assert len({anonymous["session"], admin["session"], again["session"]}) == 3
            assert len(again["session"]) >= 43 and again["csrf"] != admin["csrf"]
            assert door.session(again["session"])["profile"] == "admin"
            # logout ends that session only
            assert door.logout(again["session"]) and door.session(again["session"]) is None
            assert not door.logout(again["session"])
            assert door.session(admin["session"]) is not None
            # a password change ends every session of the profile, and gives the changer a new one
            other = await door.login("admin", STRONG["admin"])
            advanced = await strong_login(door, "advanced")
            fresh = await door.change_password(admin["session"], STRONG["admin"], "Admin-Changed-2")
            assert door.session(admin["session"]) is None and door.session(other["session"]) is None
            assert door.session(fresh["session"])["profile"] == "admin"
            assert fresh["session"] not in (admin["session"], other["session"])
            assert door.session(advanced["session"]) is not None       # another profile's are untouched
            with pytest.raises(Refused) as caught:
                door.session_caller(other["session"])
            assert caught.value.reason == api.AUTH
            # a recovery ends Cyber Security's sessions
            cyber = await strong_login(door, "cyber")
            passphrase = await door.as_caller(door.session_caller(cyber["session"])).generate_recovery_passphrase()
            await door.recover_with_passphrase(passphrase, "Cyber-Recovered3")
            assert door.session(cyber["session"]) is None
    asyncio.run(scenario())


def test_sessions_end_after_the_idle_lifetime_but_totems_does_not(tmp_path):
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            door = gw.door(Caller("web", "user"))
            cyber = await strong_login(door, "cyber")
            cyber_door = door.as_caller(door.session_caller(cyber["session"]))
            await cyber_door.unlock_totem()
            totem = await strong_login(door, "totem")
            admin = await strong_login(door, "admin")
            user = await door.login("user")
            lifetime = gw.settings.get("session.lifetime_s")
            assert lifetime == 86400
            clock.advance(lifetime - 1)
            assert door.session(admin["session"]) is not None          # used: its idle time starts again
            clock.advance(lifetime - 1)
            assert door.session(admin["session"]) is not None
            clock.advance(lifetime)
            for ended in (admin, user, cyber):
                assert door.session(ended["session"]) is None, ended["profile"]
            assert door.session(totem["session"])["profile"] == "totem"
            clock.advance(30 * lifetime)
            assert door.session_caller(totem["session"]).profile == "totem"
            # the lifetime is a live setting of Cyber Security's
            cyber = await door.login("cyber", STRONG["cyber"])
            await door.as_caller(door.session_caller(cyber["session"])).set_settings({"session.lifetime_s": 600})
            admin = await door.login("admin", STRONG["admin"])
            clock.advance(600)
            assert door.session(admin["session"]) is None
            # the CSRF token is the session's own
            totem_session = door.session(totem["session"])
            assert door.csrf_ok(totem["session"], totem_session["csrf"])
            assert not door.csrf_ok(totem["session"], cyber["csrf"])
            assert not door.csrf_ok(totem["session"], None) and not door.csrf_ok("no-such-id", totem_session["csrf"])
            assert not door.csrf_ok(totem["session"], totem_session["csrf"][:-1] + "?")
    asyncio.run(scenario())


def test_the_table_is_bounded_and_anonymous_sessions_go_first():
    clock = ManualClock()
    table = SessionTable(clock, lambda: 86400)
    admin = table.create("admin")
    totem = table.create("totem")
    clock.advance(1)
    users = [table.create("user") for _ in range(5 * MAX_SESSIONS)]
    assert len(table) == MAX_SESSIONS
    assert table.lookup(admin.id) is admin and table.lookup(totem.id) is totem
    assert table.lookup(users[-1].id) is not None and table.lookup(users[0].id) is None
    assert table.evicted == 5 * MAX_SESSIONS + 2 - MAX_SESSIONS
    # without User sessions, the least recently used goes
    table = SessionTable(clock, lambda: 86400, cap=3)
    first, second, third = table.create("admin"), table.create("cyber"), table.create("advanced")
    clock.advance(1)
    table.lookup(first.id)
    table.create("admin")
    assert table.lookup(second.id) is None and table.lookup(first.id) is first and table.lookup(third.id) is third
    # expired sessions make room before anyone live is evicted
    table = SessionTable(clock, lambda: 60, cap=2)
    old, live = table.create("admin"), None
    clock.advance(61)
    live = table.create("cyber")
    table.create("advanced")
    assert table.lookup(live.id) is live and table.evicted == 0
    # ids that are not ours are simply unknown
    for bad in (None, 7, "", "x" * 10000, old.id):
        assert table.lookup(bad) is None
