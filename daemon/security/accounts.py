"""The five profiles' passwords (SPEC §7.1): the password rule, lockout, yearly expiry, the recovery passphrase.

User has no password. Advanced User, Totem User, Admin and Cyber Security
start with the manual's default passwords; a login with a default (or
expired) password succeeds only to change it. Passwords are kept as Argon2id
hashes (parameters and their measured cost: docs/architecture.md,
"Passwords"), computed and checked in the one executor (daemon/blocking.py),
never on the loop. A default password is not stored at all: the record says
"default" and the manual's word is compared, so no hash is computed at the
first start.

Failed attempts are counted per profile, and an attempt counts from the
moment it starts: a profile never has more checks running than it has
attempts left, so a burst of logins costs at most ``session.max_attempts``
checks per profile per lockout period, and a slow check cannot be multiplied
by sending many at once. The counts and lock times are in the file, so a
restart does not reset them (a failure costs one small write; a locked profile
refuses without a check or a write).

The document (``state-dir/accounts.json``, written atomically with a good
copy ``.bak``) holds hashes and counters only. When it is damaged and the
good copy too, the accounts are *sealed*: a document saying so replaces it,
only the User profile logs in, an event says why, and it stays so across
restarts until a factory reset. Silently restoring the default passwords would
hand the gateway to whoever reads the manual, so it is never done.
"""

import asyncio
import hmac
import logging
import os
import secrets
import time

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from daemon.atomicfile import BACKUP_SUFFIX, read_json_recovering, write_json
from daemon.blocking import BlockingQueueFull, run_blocking
from daemon.security.rights import PROFILES

log = logging.getLogger("gateway.accounts")

PASSWORD_PROFILES = ("advanced", "totem", "admin", "cyber")
DEFAULT_PASSWORDS = {"advanced": "Advanced", "totem": "Totem", "admin": "Admin", "cyber": "Cyber"}   # the manual
PROFILE_NAMES = {"user": "User", "advanced": "Advanced User", "totem": "Totem User", "admin": "Admin",
                 "cyber": "Cyber Security"}
ALARM_PASSWORD = 8                  # SPEC §6
DEFAULTS_SOURCE = "defaults"        # alarm 8's source while a profile still has the manual's password
EXPIRY_WARNING_DAYS = 15            # alarm 8 from 15 days before a password expires
DAY_S = 86400
MIN_LENGTH = 10
MAX_LENGTH = 128                    # longer is refused before any hashing (SPEC §11)
FILE_NAME = "accounts.json"

# Argon2id: 19 MiB, 2 passes, 1 lane (docs/architecture.md, "Passwords and sessions": 20 ms here, 0.06-0.2 s
# estimated on a Pi 4).
HASH_TIME_COST = 2
HASH_MEMORY_KIB = 19456
HASH_PARALLELISM = 1

# refusal reasons (the door passes them on; the web maps them to its statuses)
AUTH = "auth"                       # wrong password or passphrase, no usable accounts
LOCKED = "locked"                   # locked after failed logins, or Totem not unlocked
BUSY = "busy"                       # as many checks running for the profile as it has attempts left
BAD_VALUE = "bad_value"             # a password the rule refuses, an unknown profile
STORAGE = "storage"                 # the document could not be written: nothing changed

PASSPHRASE_GROUPS, PASSPHRASE_GROUP_LEN = 6, 5      # 30 characters of base 32: 150 bits
_PASSPHRASE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class AccountRefused(Exception):
    """A refused login or change: ``reason`` (above), a message for people, ``details`` (rule violations)."""

    def __init__(self, reason, message, details=None):
        Exception.__init__(self, message)
        self.reason = reason
        self.details = list(details or ())


def password_problems(password):
    """What the password rule misses in ``password``, one message per missing element ([] when it passes)."""
    if not isinstance(password, str):
        return ["a password is text"]
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append("at least %d characters" % MIN_LENGTH)
    if len(password) > MAX_LENGTH:
        problems.append("at most %d characters" % MAX_LENGTH)
    if not any(c.isupper() for c in password):
        problems.append("an upper-case letter")
    if not any(c.islower() for c in password):
        problems.append("a lower-case letter")
    if not any(c.isdigit() for c in password):
        problems.append("a digit")
    if not any(not c.isalnum() for c in password):
        problems.append("a special character")
    if any(ord(c) < 32 or ord(c) == 127 for c in password):
        problems.append("no control characters")
    return problems


def new_passphrase():
    """A recovery passphrase people can copy: groups of base-32 characters (no 0/O, 1/I)."""
    text = "".join(secrets.choice(_PASSPHRASE_ALPHABET) for _ in range(PASSPHRASE_GROUPS * PASSPHRASE_GROUP_LEN))
    return "-".join(text[i:i + PASSPHRASE_GROUP_LEN] for i in range(0, len(text), PASSPHRASE_GROUP_LEN))


def normal_passphrase(text):
    """The passphrase as compared: upper case, without the separators and spaces people add or keep."""
    return "".join(c for c in text.upper() if c not in "- \t")


def _hasher():
    return PasswordHasher(time_cost=HASH_TIME_COST, memory_cost=HASH_MEMORY_KIB, parallelism=HASH_PARALLELISM,
                          type=Type.ID)


def _hash(secret):
    """An Argon2id hash string of ``secret`` (blocking: run it in the executor)."""
    return _hasher().hash(secret)


def _matches(stored, secret):
    """(matches, needs a new hash with today's parameters) (blocking: run it in the executor)."""
    hasher = _hasher()
    try:
        hasher.verify(stored, secret)
    except (VerificationError, InvalidHashError):
        return False, False
    return True, hasher.check_needs_rehash(stored)


def _default_record():
    return {"hash": None, "default": True, "changed": None, "failures": 0, "locked_until": 0}


def _document_shape(doc):
    """ValueError unless ``doc`` is an accounts document: every password profile with a hash or a default."""
    if doc.get("sealed") is not None:
        return
    profiles = doc.get("profiles")
    if not isinstance(profiles, dict) or sorted(profiles) != sorted(PASSWORD_PROFILES):
        raise ValueError("the profiles table is not the four password profiles")
    for name, record in profiles.items():
        if not isinstance(record, dict):
            raise ValueError("%s: not a record" % name)
        stored = record.get("hash")
        if record.get("default") is not True and not (isinstance(stored, str) and stored.startswith("$argon2id$")):
            raise ValueError("%s: neither a default password nor an Argon2id hash" % name)
        for field in ("failures", "locked_until") + (() if record.get("default") is True else ("changed",)):
            value = record.get(field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError("%s: %s is not a number" % (name, field))
    recovery = doc.get("recovery")
    if recovery is not None and not (isinstance(recovery, dict) and isinstance(recovery.get("hash"), str)
                                     and recovery["hash"].startswith("$argon2id$")):
        raise ValueError("the recovery passphrase is not an Argon2id hash")
    if not isinstance(doc.get("totem_locked"), bool):
        raise ValueError("totem_locked is not true or false")


class Accounts:
    """The profiles' passwords and their state; every change is one atomic write of the whole document."""

    def __init__(self, state_dir, clock, alarms, settings):
        self.path = os.path.join(state_dir, FILE_NAME)
        self.clock = clock
        self.alarms = alarms
        self.settings = settings
        self.load_problem = None     # what was wrong with the file when it was read
        self.sealed = None           # why only the User profile may log in (no good accounts file)
        self.checks = 0              # hashes checked (each in the executor)
        self.alarm_checks = 0        # alarm-8 evaluations (refresh_alarms)
        self._profiles = dict((p, _default_record()) for p in PASSWORD_PROFILES)
        self._recovery = None        # {"hash", "created"} of the one-time passphrase
        self._totem_locked = True
        self._inflight = dict.fromkeys(PASSWORD_PROFILES, 0)
        self._write_lock = asyncio.Lock()
        self._unsaved = False        # nothing on disk yet (first start), or a sealed state not yet written
        self._read()

    # ---------------------------------------------------------------- the document

    def _read(self):
        doc, problem = read_json_recovering(self.path, _document_shape)
        if doc is None and problem is None:          # no file: its good copy, else the factory state
            doc, problem = read_json_recovering(self.path + BACKUP_SUFFIX, _document_shape)
            if doc is not None:
                problem = "%s was missing: its good copy %s was used" % (self.path, self.path + BACKUP_SUFFIX)
            elif problem is None:
                self._unsaved = True
                return
        self.load_problem = problem
        if doc is None:
            self.sealed = problem
            self._unsaved = True
            log.error("accounts sealed: %s", problem)
            return
        if doc.get("sealed") is not None:
            self.sealed = doc["sealed"]
            return
        self._profiles = dict((p, dict(doc["profiles"][p])) for p in PASSWORD_PROFILES)
        self._recovery = doc.get("recovery")
        self._totem_locked = doc["totem_locked"]

    def _document(self, profiles=None, recovery=False, totem_locked=None):
        """The current document with some parts replaced (``recovery=None`` removes the passphrase)."""
        if self.sealed is not None:
            return {"version": 1, "sealed": self.sealed}
        return {"version": 1, "profiles": dict(self._profiles, **(profiles or {})),
                "recovery": self._recovery if recovery is False else recovery,
                "totem_locked": self._totem_locked if totem_locked is None else totem_locked}

    async def _commit(self, change=None):
        """Write the changed document, then hold it in memory: a failed write changes nothing.

        ``change()`` returns what changes (``_document``'s arguments); it runs under the write lock, so a
        change computed from the current state (a failure count) never loses another made meanwhile.
        """
        async with self._write_lock:
            doc = self._document(**(change() if change is not None else {}))
            try:
                await run_blocking(write_json, self.path, doc, True, indent=1, separators=None)
            except (OSError, BlockingQueueFull) as exc:
                log.error("%s could not be written: %s", self.path, exc)
                raise AccountRefused(STORAGE, "the accounts could not be saved (%s): nothing changed" % exc) from None
            if self.sealed is None:
                self._profiles = doc["profiles"]
                self._recovery = doc["recovery"]
                self._totem_locked = doc["totem_locked"]
            self._unsaved = False

    async def start(self):
        """Write the first document (or the sealed one), say what was wrong with the file, derive alarm 8."""
        if self.load_problem:
            self._event("accounts-file", detail=self.load_problem, sealed=self.sealed is not None)
        if self._unsaved:
            await self._commit()
        self.refresh_alarms()

    # ---------------------------------------------------------------- queries

    def state(self, profile):
        """What a page shows of a profile: default password, expiry, lock."""
        if profile not in PASSWORD_PROFILES:
            return {"profile": profile, "password": False}
        record, now = self._profiles[profile], self.clock.time()
        return {"profile": profile, "password": True, "default": bool(record["default"]),
                "expires": self._expires(record), "locked_for": self._locked_for(profile, now),
                "totem_locked": self._totem_locked if profile == "totem" else None}

    def has_recovery_passphrase(self):
        return self._recovery is not None

    def totem_locked(self):
        return self._totem_locked

    def _expires(self, record):
        if record["default"] or record["changed"] is None:
            return None
        return record["changed"] + self.settings.get("password.expiry_days") * DAY_S

    def _locked_for(self, profile, now):
        """Seconds the profile stays locked (0: not locked); a wall clock set back never lengthens a lock."""
        record = self._profiles[profile]
        left = record["locked_until"] - now
        longest = self.settings.get("session.lockout_s")
        if left > longest:
            record["locked_until"] = now + longest
            left = longest
        return max(0, int(left + 0.999))

    def _must_change(self, profile, now):
        record = self._profiles[profile]
        expires = self._expires(record)
        return bool(record["default"]) or (expires is not None and now >= expires)

    # ---------------------------------------------------------------- attempts

    def _usable(self):
        if self.sealed is not None:
            raise AccountRefused(AUTH, "the accounts file is damaged and has no good copy: only the User profile "
                                       "can log in until a factory reset")

    def _reserve(self, profile):
        """Count an attempt on ``profile`` from now on, or refuse it (locked, or every attempt left running)."""
        now = self.clock.time()
        locked_for = self._locked_for(profile, now)
        if locked_for:
            raise AccountRefused(LOCKED, "the %s profile is locked for %d more seconds after failed logins" % (
                PROFILE_NAMES[profile], locked_for))
        if self._profiles[profile]["failures"] + self._inflight[profile] >= self.settings.get("session.max_attempts"):
            raise AccountRefused(BUSY, "too many attempts at once for the %s profile, try again"
                                 % PROFILE_NAMES[profile])
        self._inflight[profile] += 1

    async def _attempt(self, profile, check, who, what):
        """Run ``check()`` (a coroutine → bool) as one counted attempt on ``profile``; AccountRefused on failure."""
        self._reserve(profile)
        try:
            ok = await check()
            if ok and not self._locked_for(profile, self.clock.time()):
                if self._profiles[profile]["failures"]:
                    await self._commit(lambda: {"profiles": {profile: dict(self._profiles[profile], failures=0)}})
                return
            if ok:      # locked by attempts that failed meanwhile
                raise AccountRefused(LOCKED, "the %s profile is locked after failed logins" % PROFILE_NAMES[profile])
            await self._failed(profile, who, what)
        finally:
            self._inflight[profile] -= 1
        raise AccountRefused(AUTH, "wrong %s" % ("passphrase" if what == "recovery" else "password"))

    async def _failed(self, profile, who, what):
        attempts = self.settings.get("session.max_attempts")
        outcome = {}

        def count():
            record = dict(self._profiles[profile])
            record["failures"] += 1
            outcome["locked"] = record["failures"] >= attempts
            if outcome["locked"]:
                record["failures"] = 0
                record["locked_until"] = self.clock.time() + self.settings.get("session.lockout_s")
            outcome["record"] = record
            return {"profiles": {profile: record}}

        try:
            await self._commit(count)
        except AccountRefused:          # not saved, but counted all the same: a full disk opens no door
            self._profiles = dict(self._profiles, **{profile: outcome["record"]})
        self._event("%s-failed" % what, profile=profile, by=who)
        if outcome["locked"]:
            self._event("profile-locked", profile=profile, by=who, attempts=attempts,
                        seconds=self.settings.get("session.lockout_s"))
            self.refresh_alarms()

    async def _password_matches(self, profile, password):
        record = self._profiles[profile]
        if record["default"]:
            return hmac.compare_digest(password.encode("utf-8"), DEFAULT_PASSWORDS[profile].encode("utf-8"))
        stored = record["hash"]
        self.checks += 1
        ok, stale = await run_blocking(_matches, stored, password)
        if ok and stale and self._profiles[profile]["hash"] == stored:     # parameters raised since: hash again
            fresh = await run_blocking(_hash, password)
            await self._commit(lambda: {"profiles": {profile: dict(self._profiles[profile], hash=fresh)}})
        return ok

    @staticmethod
    def _given(password):
        if not isinstance(password, str) or len(password) > MAX_LENGTH:
            raise AccountRefused(BAD_VALUE, "a password is text of at most %d characters" % MAX_LENGTH)
        return password

    # ---------------------------------------------------------------- commands

    async def authenticate(self, profile, password, who):
        """Check a login; True when the password must be changed before anything else. AccountRefused if not."""
        if profile not in PROFILES:
            raise AccountRefused(BAD_VALUE, "no profile %r" % (profile,))
        if profile == "user":
            return False
        self._usable()
        password = self._given(password)
        if profile == "totem" and self._totem_locked:
            raise AccountRefused(LOCKED, "the Totem User profile is locked: Cyber Security unlocks it")
        await self._attempt(profile, lambda: self._password_matches(profile, password), who, "login")
        must_change = self._must_change(profile, self.clock.time())
        self._event("login", profile=profile, by=who, must_change=must_change)
        return must_change

    async def change_password(self, profile, new, current, as_profile, who):
        """Set ``profile``'s password to ``new`` once ``current`` proves ``as_profile`` (the profile itself, or
        Cyber Security for another). The rule is checked first: a refused password costs no check."""
        if profile not in PASSWORD_PROFILES:
            raise AccountRefused(BAD_VALUE, "the %s profile has no password" % PROFILE_NAMES.get(profile, profile))
        self._usable()
        problems = password_problems(new)
        if problems:
            raise AccountRefused(BAD_VALUE, "the new password needs " + ", ".join(problems), problems)
        current = self._given(current)
        if profile == as_profile and new == current:
            raise AccountRefused(BAD_VALUE, "the new password must differ from the current one",
                                 ["differ from the current one"])
        await self._attempt(as_profile, lambda: self._password_matches(as_profile, current), who, "password-change")
        await self._set_password(profile, new, who, "password-changed")

    async def _set_password(self, profile, new, who, event, recovery=False):
        record = {"hash": await run_blocking(_hash, new), "default": False, "changed": self.clock.time(),
                  "failures": 0, "locked_until": 0}
        await self._commit(lambda: {"profiles": {profile: record}, "recovery": recovery})
        self._event(event, profile=profile, by=who)
        self.refresh_alarms()

    async def set_totem_locked(self, locked, who):
        self._usable()
        if locked != self._totem_locked:
            await self._commit(lambda: {"totem_locked": locked})
            self._event("totem-locked" if locked else "totem-unlocked", profile="totem", by=who)

    async def generate_passphrase(self, who):
        """A new one-time recovery passphrase for Cyber Security (the previous one stops working); only its
        hash is kept, so this is the only time it can be read."""
        self._usable()
        text = new_passphrase()
        stored = await run_blocking(_hash, normal_passphrase(text))
        await self._commit(lambda: {"recovery": {"hash": stored, "created": self.clock.time()}})
        self._event("passphrase-generated", profile="cyber", by=who)
        return text

    async def recover(self, passphrase, new, who):
        """Set Cyber Security's password with the one-time passphrase, which is used up (one write for both)."""
        self._usable()
        problems = password_problems(new)
        if problems:
            raise AccountRefused(BAD_VALUE, "the new password needs " + ", ".join(problems), problems)
        if not isinstance(passphrase, str) or len(passphrase) > 4 * PASSPHRASE_GROUPS * PASSPHRASE_GROUP_LEN:
            raise AccountRefused(BAD_VALUE, "a passphrase is text of its %d characters"
                                 % (PASSPHRASE_GROUPS * (PASSPHRASE_GROUP_LEN + 1) - 1))
        recovery = self._recovery

        async def check():
            if recovery is None:
                return False
            self.checks += 1
            ok, _stale = await run_blocking(_matches, recovery["hash"], normal_passphrase(passphrase))
            return ok and self._recovery is recovery         # a concurrent recovery used it first

        await self._attempt("cyber", check, who, "recovery")
        if self._recovery is not recovery:
            raise AccountRefused(AUTH, "wrong passphrase")
        self._recovery = None            # taken now, before the hashing's await: usable once, even concurrently
        try:
            await self._set_password("cyber", new, who, "password-recovered", recovery=None)
        except BaseException:
            self._recovery = recovery
            raise

    # ---------------------------------------------------------------- alarm 8 and the event log

    def refresh_alarms(self):
        """Alarm 8 from the profiles' state (SPEC §6): default passwords not yet changed (one source naming the
        profiles, so a fresh gateway raises one alarm, not three), a locked profile, a password expiring within
        15 days."""
        self.alarm_checks += 1
        if self.sealed is not None:
            return
        now = self.clock.time()
        defaults = [p for p in PASSWORD_PROFILES if self._profiles[p]["default"]]
        self.alarms.set(ALARM_PASSWORD, DEFAULTS_SOURCE, bool(defaults),
                        "default password not yet changed: %s" % ", ".join(PROFILE_NAMES[p] for p in defaults)
                        if defaults else "", text={"key": "web.status.alarm8.defaults", "params": {"profiles": defaults}})
        for profile in PASSWORD_PROFILES:
            locked_for = self._locked_for(profile, now)
            self.alarms.set(ALARM_PASSWORD, "lockout:" + profile, locked_for > 0,
                            "%s locked after failed logins" % PROFILE_NAMES[profile])
            expires = self._expires(self._profiles[profile])
            due = expires is not None and now >= expires - EXPIRY_WARNING_DAYS * DAY_S
            self.alarms.set(ALARM_PASSWORD, "expiry:" + profile, due, "%s password expires on %s UTC" % (
                PROFILE_NAMES[profile], time.strftime("%Y-%m-%d", time.gmtime(expires))) if due else "")

    def _event(self, event, **fields):
        record = {"event": event, "category": "security"}
        record.update(fields)
        log.info("%s", " ".join("%s=%s" % item for item in sorted(record.items())))
        self.alarms.record_event(record)
