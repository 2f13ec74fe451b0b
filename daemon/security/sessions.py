"""Web sessions (SPEC §7.1): who is logged in, behind which random id, until when.

A session is made at each login with a new id (``secrets.token_urlsafe(32)``:
an id known before the login is never the id after it) and its own CSRF
token, which the web checks on every state-changing request. It ends at
logout, when its profile's password changes, or after ``session.lifetime_s``
seconds without use (Totem User's never: a wall display stays logged in).
Time is the gateway's monotonic clock, so setting the wall clock ends no
session, and tests advance a ManualClock.

The table holds at most ``MAX_SESSIONS``; a new session beyond that first
drops expired ones, then the least recently used User session (anyone may
open one without a password), and only then the least recently used of any
profile, so a flood of anonymous logins cannot push out a logged-in Admin.
"""

import hmac
import secrets

MAX_SESSIONS = 64
ID_BYTES = 32
NEVER_IDLE_OUT = ("totem",)


class Session:
    __slots__ = ("id", "profile", "csrf", "language", "must_change", "peer", "created", "last_seen")

    def __init__(self, profile, must_change, language, peer, now):
        self.id = secrets.token_urlsafe(ID_BYTES)
        self.csrf = secrets.token_urlsafe(ID_BYTES)
        self.profile = profile
        self.must_change = must_change     # a default or expired password: only its change is allowed
        self.language = language
        self.peer = peer
        self.created = now
        self.last_seen = now

    def as_dict(self):
        return {"session": self.id, "csrf": self.csrf, "profile": self.profile, "must_change": self.must_change,
                "language": self.language}


class SessionTable:
    def __init__(self, clock, lifetime, cap=MAX_SESSIONS):
        """``lifetime()``: the idle timeout in seconds now (the setting, read at each use)."""
        self.clock = clock
        self.lifetime = lifetime
        self.cap = cap
        self._sessions = {}
        self.evicted = 0

    def __len__(self):
        return len(self._sessions)

    def create(self, profile, must_change=False, language=None, peer=None):
        now = self.clock.monotonic()
        while len(self._sessions) >= self.cap:
            self._evict(now)
        session = Session(profile, must_change, language, peer, now)
        self._sessions[session.id] = session
        return session

    def _expired(self, session, now):
        return session.profile not in NEVER_IDLE_OUT and now - session.last_seen >= self.lifetime()

    def _evict(self, now):
        sessions = list(self._sessions.values())
        expired = [s for s in sessions if self._expired(s, now)]
        if expired:
            for session in expired:
                del self._sessions[session.id]
            return
        users = [s for s in sessions if s.profile == "user"]
        oldest = min(users or sessions, key=lambda s: s.last_seen)
        del self._sessions[oldest.id]
        self.evicted += 1

    def lookup(self, session_id, touch=True):
        """The live session behind ``session_id`` (its idle time restarts when ``touch``), else None."""
        if not isinstance(session_id, str) or len(session_id) > 2 * ID_BYTES:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self.clock.monotonic()
        if self._expired(session, now):
            del self._sessions[session_id]
            return None
        if touch:
            session.last_seen = now
        return session

    def end(self, session_id):
        """End one session; False when there was none."""
        return self._sessions.pop(session_id, None) is not None if isinstance(session_id, str) else False

    def end_profile(self, profile):
        """End every session of ``profile`` (its password changed); how many ended."""
        ended = [sid for sid, s in self._sessions.items() if s.profile == profile]
        for sid in ended:
            del self._sessions[sid]
        return len(ended)

    @staticmethod
    def csrf_ok(session, token):
        """Whether ``token`` is ``session``'s CSRF token (constant-time comparison)."""
        return isinstance(token, str) and hmac.compare_digest(token.encode("utf-8", "replace"),
                                                             session.csrf.encode("ascii"))
