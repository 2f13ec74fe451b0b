"""The five profiles' passwords through the door (SPEC §7.1, §6 alarm 8, §11): defaults and the forced change,
the password rule, lockout, expiry, Totem's lock, the recovery passphrase, what is on disk, a damaged file.

A gateway on the simulated board with a ManualClock: time moves only when a
test advances it, so an hour's lock or a year's expiry costs no waiting.
"""

import asyncio
import json
import os
import threading

import pytest

from board.base import ManualClock
from daemon import api, blocking
from daemon.api import Refused
from daemon.security import accounts
from daemon.security.rights import Caller
from tests.conftest import running_gateway, topology_with, wait_for

DAY = 86400
STRONG = {"advanced": "Advanced-Pass1", "totem": "Totem-Wall-22", "admin": "Admin-Secret9", "cyber": "Cyber-Guard42"}


def gateway(tmp_path, clock, **overrides):
    return running_gateway(tmp_path / "state", topology_with(), overrides, clock=clock)


def anonymous(gw, peer="192.0.2.7"):
    """The door as a browser that has not logged in sees it (the web's User)."""
    return gw.door(Caller("web", "user", peer))


async def refused(coro_or_call, reason):
    """The Refused a door call raised, checked against ``reason``."""
    with pytest.raises(Refused) as caught:
        result = coro_or_call()
        if asyncio.iscoroutine(result):
            await result
    assert caught.value.reason == reason, (caught.value.reason, str(caught.value))
    return caught.value


async def set_own_password(door, profile, password):
    """First login with the manual's password, forced change; the usable session afterwards."""
    first = await door.login(profile, accounts.DEFAULT_PASSWORDS[profile])
    assert first["must_change"]
    return await door.change_password(first["session"], accounts.DEFAULT_PASSWORDS[profile], password)


def events(gw, name):
    return [e for e in gw.alarms.events() if e.get("event") == name]


def state_bytes(state_dir):
    """Every byte the gateway wrote in its state dir, file by file."""
    out = {}
    for dirpath, _dirs, files in os.walk(state_dir):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as handle:
                out[os.path.join(dirpath, name)] = handle.read()
    return out


# ---------------------------------------------------------------- the rule, alone

@pytest.mark.parametrize("password, missing", [
    ("Sh0rt-Pas", "at least 10 characters"),
    ("lower-case-only-7", "an upper-case letter"),
    ("UPPER-CASE-ONLY-7", "a lower-case letter"),
    ("No-Digits-Here", "a digit"),
    ("NoSpecials1234", "a special character"),
])
def test_the_password_rule_names_each_missing_element(password, missing):
    assert accounts.password_problems(password) == [missing]
    assert accounts.password_problems("Good-Enough-1") == []


# ---------------------------------------------------------------- defaults, forced change, the rule through the door

def test_default_passwords_log_in_only_to_be_changed_and_the_rule_refuses_each_weak_password(tmp_path):
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            door = anonymous(gw)
            user = await door.login("user")                   # no password
            assert user["profile"] == "user" and not user["must_change"]
            assert door.session_caller(user["session"]).profile == "user"
            for profile in ("advanced", "admin", "cyber"):
                await refused(lambda: door.login(profile, accounts.DEFAULT_PASSWORDS[profile].lower()), api.AUTH)
                session = await door.login(profile, accounts.DEFAULT_PASSWORDS[profile])
                assert session["must_change"], profile
                # nothing but the change is allowed to that session
                await refused(lambda: door.session_caller(session["session"]), api.MUST_CHANGE)
            await refused(lambda: door.login("totem", "Totem"), api.LOCKED)      # locked by default
            await refused(lambda: door.login("root", "x"), api.BAD_VALUE)

            admin = await door.login("admin", "Admin")
            path = os.path.join(gw.state_dir, "accounts.json")
            before = open(path, "rb").read()
            cases = [("Sh0rt-Pas", "at least 10 characters"), ("lower-case-only-7", "an upper-case letter"),
                     ("UPPER-CASE-ONLY-7", "a lower-case letter"), ("No-Digits-Here", "a digit"),
                     ("NoSpecials1234", "a special character")]
            checks = gw.accounts.checks
            for weak, missing in cases:
                refusal = await refused(lambda: door.change_password(admin["session"], "Admin", weak), api.BAD_VALUE)
                assert refusal.details == [missing] and missing in str(refusal)
            # nothing changed: the file, the session, the default password; no hash was even checked
            assert open(path, "rb").read() == before and gw.accounts.checks == checks
            assert door.session(admin["session"])["must_change"]
            assert (await door.login("admin", "Admin"))["must_change"]
            # the new password must not be the current one, and the current one must be right
            await refused(lambda: door.change_password(admin["session"], "Admin", "Admin"), api.BAD_VALUE)
            await refused(lambda: door.change_password(admin["session"], "Wrong", STRONG["admin"]), api.AUTH)
            fresh = await door.change_password(admin["session"], "Admin", STRONG["admin"])
            assert not fresh["must_change"] and door.session_caller(fresh["session"]).profile == "admin"
            await refused(lambda: door.login("admin", "Admin"), api.AUTH)
            assert not (await door.login("admin", STRONG["admin"]))["must_change"]
            assert [e["profile"] for e in events(gw, "password-changed")] == ["admin"]
            assert events(gw, "login-failed") and events(gw, "password-change-failed")
            # a field protocol cannot log in; the User profile has no password to change
            await refused(lambda: gw.door(Caller("snmp")).login("admin", STRONG["admin"]), api.RIGHTS)
            await refused(lambda: door.change_password(user["session"], "", STRONG["advanced"]), api.RIGHTS)
    asyncio.run(scenario())


# ---------------------------------------------------------------- lockout

def test_three_failures_lock_the_profile_for_the_lockout_period_even_with_the_right_password(tmp_path):
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            door = anonymous(gw)
            await set_own_password(door, "admin", STRONG["admin"])
            for _ in range(3):
                await refused(lambda: door.login("admin", "Not-The-One1!"), api.AUTH)
            locked = await refused(lambda: door.login("admin", STRONG["admin"]), api.LOCKED)
            assert "3600 more seconds" in str(locked)
            assert (8, "lockout:admin") in gw.alarms.active
            assert len(events(gw, "login-failed")) == 3 and len(events(gw, "profile-locked")) == 1
            assert gw.door(Caller("web", "user")).account_state("admin")["locked_for"] == 3600
            await door.login("advanced", "Advanced")          # the lock is the profile's, not the gateway's
            checks = gw.accounts.checks
            clock.advance(3599)
            await refused(lambda: door.login("admin", STRONG["admin"]), api.LOCKED)
            assert gw.accounts.checks == checks               # refused without a check
            clock.advance(2)
            assert not (await door.login("admin", STRONG["admin"]))["must_change"]
            gw.accounts.refresh_alarms()
            assert (8, "lockout:admin") not in gw.alarms.active
    asyncio.run(scenario())


def test_failures_are_counted_across_a_restart(tmp_path):
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            door = anonymous(gw)
            await set_own_password(door, "advanced", STRONG["advanced"])
            for _ in range(2):
                await refused(lambda: door.login("advanced", "Wrong-Guess-1"), api.AUTH)
        async with gateway(tmp_path, clock) as gw:
            door = anonymous(gw)
            await refused(lambda: door.login("advanced", "Wrong-Guess-2"), api.AUTH)
            await refused(lambda: door.login("advanced", STRONG["advanced"]), api.LOCKED)
        async with gateway(tmp_path, clock) as gw:           # and the lock too
            await refused(lambda: anonymous(gw).login("advanced", STRONG["advanced"]), api.LOCKED)
            assert (8, "lockout:advanced") in gw.alarms.active
    asyncio.run(scenario())


def test_a_burst_of_logins_costs_at_most_the_attempts_left_in_checks(tmp_path):
    """20 wrong logins at once: 3 hashes are checked (the attempts left), the others refused at once."""
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            door = anonymous(gw)
            await set_own_password(door, "admin", STRONG["admin"])
            checks = gw.accounts.checks
            results = await asyncio.gather(*[door.login("admin", "Burst-Guess-%d!x" % i) for i in range(20)],
                                           return_exceptions=True)
            assert all(isinstance(r, Refused) for r in results)
            reasons = sorted(r.reason for r in results)
            assert reasons.count(api.AUTH) == 3 and set(reasons) <= {api.AUTH, api.BUSY, api.LOCKED}
            assert gw.accounts.checks - checks == 3
            await refused(lambda: door.login("admin", STRONG["admin"]), api.LOCKED)
    asyncio.run(scenario())


# ---------------------------------------------------------------- expiry and alarm 8

def test_alarm_8_stays_raised_while_any_profile_keeps_the_manuals_password_and_says_which(tmp_path):
    """SPEC §6: alarm 8 while default passwords are not yet changed; one source naming the profiles left."""
    async def scenario():
        async with gateway(tmp_path, ManualClock()) as gw:
            door = anonymous(gw)
            key = (8, accounts.DEFAULTS_SOURCE)
            assert key in gw.alarms.active
            assert gw.alarms.active[key]["detail"].endswith("Advanced User, Totem User, Admin, Cyber Security")
            sessions = {}
            for profile in ("advanced", "admin", "cyber"):
                sessions[profile] = await set_own_password(door, profile, STRONG[profile])
            assert gw.alarms.active[key]["detail"].endswith(": Totem User")
            await door.as_caller(door.session_caller(sessions["cyber"]["session"])).unlock_totem()
            await set_own_password(door, "totem", STRONG["totem"])
            assert key not in gw.alarms.active
            raised = [e for e in gw.alarms.events() if e.get("alarm") == 8 and e.get("source") == key[1]]
            assert [e["event"] for e in raised] == ["raised", "cleared"]
    asyncio.run(scenario())


def test_a_password_raises_alarm_8_fifteen_days_before_it_expires_not_sixteen(tmp_path):
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock, **{"alarms.check_s": 1}) as gw:
            door = anonymous(gw)
            await set_own_password(door, "admin", STRONG["admin"])
            assert not [k for k in gw.alarms.active if k[0] == 8 and k[1] != accounts.DEFAULTS_SOURCE]

            async def next_checks(n=2):
                seen = gw.accounts.alarm_checks
                await wait_for(lambda: gw.accounts.alarm_checks >= seen + n, guard=30)

            clock.advance((365 - 16) * DAY)
            await next_checks()
            assert (8, "expiry:admin") not in gw.alarms.active
            clock.advance(DAY)
            await wait_for(lambda: (8, "expiry:admin") in gw.alarms.active, guard=30)
            assert "expires on" in gw.alarms.active[(8, "expiry:admin")]["detail"]
            assert [k for k in gw.alarms.active if k[0] == 8] == [(8, accounts.DEFAULTS_SOURCE), (8, "expiry:admin")]
            # expired: the login succeeds only to change it, which clears the alarm
            clock.advance(15 * DAY)
            session = await door.login("admin", STRONG["admin"])
            assert session["must_change"]
            await door.change_password(session["session"], STRONG["admin"], "Admin-Next-Year1")
            assert (8, "expiry:admin") not in gw.alarms.active
    asyncio.run(scenario())


# ---------------------------------------------------------------- Totem, Cyber Security's powers

def test_totem_stays_locked_until_cyber_security_unlocks_it_and_admin_cannot(tmp_path):
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            door = anonymous(gw)
            admin = await set_own_password(door, "admin", STRONG["admin"])
            cyber = await set_own_password(door, "cyber", STRONG["cyber"])
            admin_door = door.as_caller(door.session_caller(admin["session"]))
            cyber_door = door.as_caller(door.session_caller(cyber["session"]))
            await refused(lambda: door.login("totem", "Totem"), api.LOCKED)
            await refused(admin_door.unlock_totem, api.RIGHTS)
            await refused(lambda: door.login("totem", "Totem"), api.LOCKED)
            await refused(lambda: door.change_password(admin["session"], STRONG["admin"], STRONG["totem"],
                                                       profile="totem"), api.RIGHTS)
            await cyber_door.unlock_totem()
            totem = await door.login("totem", "Totem")
            assert totem["must_change"]
            totem = await door.change_password(totem["session"], "Totem", STRONG["totem"])
            assert door.session_caller(totem["session"]).profile == "totem"
            assert [e["by"] for e in events(gw, "totem-unlocked")] == [repr(cyber_door.caller)]
            # Cyber Security sets another profile's password with its own: that profile's sessions end
            await door.change_password(cyber["session"], STRONG["cyber"], "Admin-By-Cyber7", profile="admin")
            assert door.session(admin["session"]) is None
            await refused(lambda: door.login("admin", STRONG["admin"]), api.AUTH)
            assert not (await door.login("admin", "Admin-By-Cyber7"))["must_change"]
            await cyber_door.lock_totem()
            assert door.session(totem["session"]) is None
            await refused(lambda: door.login("totem", STRONG["totem"]), api.LOCKED)
    asyncio.run(scenario())


def test_the_recovery_passphrase_recovers_the_cyber_password_once(tmp_path):
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            door = anonymous(gw)
            cyber = await set_own_password(door, "cyber", STRONG["cyber"])
            admin = await set_own_password(door, "admin", STRONG["admin"])
            await refused(door.as_caller(door.session_caller(admin["session"])).generate_recovery_passphrase,
                          api.RIGHTS)
            cyber_door = door.as_caller(door.session_caller(cyber["session"]))
            passphrase = await cyber_door.generate_recovery_passphrase()
            assert len(accounts.normal_passphrase(passphrase)) == 30
            await refused(lambda: door.recover_with_passphrase(passphrase, "weak"), api.BAD_VALUE)
            await refused(lambda: door.recover_with_passphrase("AAAAA-" + passphrase[6:], "Recovered-Pass1"),
                          api.AUTH)
            # typed in lower case, without its dashes: the same passphrase
            await door.recover_with_passphrase(accounts.normal_passphrase(passphrase).lower(), "Recovered-Pass1")
            assert door.session(cyber["session"]) is None                 # Cyber Security's sessions ended
            await refused(lambda: door.login("cyber", STRONG["cyber"]), api.AUTH)
            assert not (await door.login("cyber", "Recovered-Pass1"))["must_change"]
            await refused(lambda: door.recover_with_passphrase(passphrase, "Second-Try-Pass2"), api.AUTH)
            assert not (await door.login("cyber", "Recovered-Pass1"))["must_change"]
            assert len(events(gw, "password-recovered")) == 1 and len(events(gw, "recovery-failed")) == 2
            assert not gw.accounts.has_recovery_passphrase()
            # two uses at once: one recovers, the other is refused
            cyber = await door.login("cyber", "Recovered-Pass1")
            passphrase = await door.as_caller(door.session_caller(cyber["session"])).generate_recovery_passphrase()
            results = await asyncio.gather(door.recover_with_passphrase(passphrase, "Racing-First-1"),
                                           door.recover_with_passphrase(passphrase, "Racing-Second-2"),
                                           return_exceptions=True)
            assert sorted(type(r).__name__ for r in results) == ["NoneType", "Refused"], results
            winner = "Racing-First-1" if results[0] is None else "Racing-Second-2"
            assert not (await door.login("cyber", winner))["must_change"]
    asyncio.run(scenario())


# ---------------------------------------------------------------- at rest, in the executor, across restarts

def test_only_argon2id_hashes_reach_the_disk_and_they_survive_a_restart(tmp_path):
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            door = anonymous(gw)
            cyber = await set_own_password(door, "cyber", STRONG["cyber"])
            cyber_door = door.as_caller(door.session_caller(cyber["session"]))
            await cyber_door.unlock_totem()
            for profile in ("advanced", "totem", "admin"):
                await set_own_password(door, profile, STRONG[profile])
            passphrase = await cyber_door.generate_recovery_passphrase()
        doc = json.loads(open(tmp_path / "state" / "accounts.json", "rb").read())
        for profile in accounts.PASSWORD_PROFILES:
            assert doc["profiles"][profile]["hash"].startswith("$argon2id$v=19$m=19456,t=2,p=1$"), profile
        assert doc["recovery"]["hash"].startswith("$argon2id$")
        secrets = [s.encode() for s in STRONG.values()] + [passphrase.encode(),
                                                           accounts.normal_passphrase(passphrase).encode()]
        for path, data in state_bytes(tmp_path / "state").items():
            for secret in secrets:
                assert secret not in data, (path, secret)
        async with gateway(tmp_path, clock) as gw:
            door = anonymous(gw)
            for profile, password in STRONG.items():
                assert not (await door.login(profile, password))["must_change"], profile
            assert not gw.accounts.totem_locked() and gw.accounts.has_recovery_passphrase()
    asyncio.run(scenario())


def test_a_password_is_checked_in_the_executor_thread(tmp_path, monkeypatch):
    threads = []
    real = accounts._matches

    def recording(stored, secret):
        threads.append(threading.current_thread().name)
        return real(stored, secret)
    monkeypatch.setattr(accounts, "_matches", recording)

    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            door = anonymous(gw)
            await set_own_password(door, "admin", STRONG["admin"])
            completed = blocking.executor().completed
            await door.login("admin", STRONG["admin"])
            assert threads and all(name.startswith("blocking") for name in threads), threads
            assert blocking.executor().completed > completed
            assert threading.current_thread().name not in threads
    asyncio.run(scenario())


# ---------------------------------------------------------------- a damaged accounts file

def test_a_damaged_accounts_file_with_a_good_copy_is_restored_and_said(tmp_path):
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            await set_own_password(anonymous(gw), "admin", STRONG["admin"])
        path = tmp_path / "state" / "accounts.json"
        path.write_bytes(b'{"profiles": {"admin": ')
        async with gateway(tmp_path, clock) as gw:
            assert not (await anonymous(gw).login("admin", STRONG["admin"]))["must_change"]
            record = events(gw, "accounts-file")[-1]
            assert "good copy" in record["detail"] and record["sealed"] is False
        assert (tmp_path / "state" / "accounts.json.corrupt").read_bytes() == b'{"profiles": {"admin": '
    asyncio.run(scenario())


def test_a_damaged_accounts_file_without_a_good_copy_seals_the_accounts_not_the_defaults(tmp_path):
    """Restoring the manual's passwords would open the gateway to anyone: only User logs in, an event says
    why, and it stays so after a restart."""
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            await set_own_password(anonymous(gw), "admin", STRONG["admin"])
        state = tmp_path / "state"
        (state / "accounts.json").write_bytes(b"\x00garbage")
        (state / "accounts.json.bak").write_bytes(json.dumps({"profiles": {"admin": {"default": True}}}).encode())
        for _restart in range(2):
            async with gateway(tmp_path, clock) as gw:
                door = anonymous(gw)
                for profile in accounts.PASSWORD_PROFILES:
                    for password in (accounts.DEFAULT_PASSWORDS[profile], STRONG[profile]):
                        refusal = await refused(lambda: door.login(profile, password), api.AUTH)
                        assert "factory reset" in str(refusal)
                assert (await door.login("user"))["profile"] == "user"
                assert gw.accounts.sealed
        assert json.loads((state / "accounts.json").read_bytes())["sealed"]
        async with gateway(tmp_path, clock) as gw:
            assert events(gw, "accounts-file")[0]["sealed"] is True
    asyncio.run(scenario())


def test_when_the_accounts_cannot_be_written_failures_still_count_and_a_change_is_refused_unchanged(tmp_path):
    """A directory where the atomic write's temporary file goes: every write fails (even as root)."""
    async def scenario():
        clock = ManualClock()
        async with gateway(tmp_path, clock) as gw:
            door = anonymous(gw)
            admin = await set_own_password(door, "admin", STRONG["admin"])
            os.mkdir(os.path.join(gw.state_dir, "accounts.json.tmp"))
            await refused(lambda: door.change_password(admin["session"], STRONG["admin"], "Never-Saved-42"),
                          api.STORAGE)
            assert door.session(admin["session"]) is not None
            assert not (await door.login("admin", STRONG["admin"]))["must_change"]      # the old one still works
            for _ in range(3):
                await refused(lambda: door.login("admin", "Full-Disk-Guess1"), api.AUTH)
            await refused(lambda: door.login("admin", STRONG["admin"]), api.LOCKED)
            assert (8, "lockout:admin") in gw.alarms.active and events(gw, "profile-locked")
    asyncio.run(scenario())
