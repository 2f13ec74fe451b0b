"""From an HTTP request to the door's ``Caller``: the session cookie, the CSRF token, the same-origin check.

Every route of the application says what it needs (its Bottle config, set
with the route): ``access="public"`` (pages, assets, the catalogue, logging
in), ``"read"`` (what the User profile sees: status, events, alarms), or
``"session"`` (a live session, even one whose password must be changed:
logging out, changing the password), or ``"command"`` (a session whose
profile the door allows ``command=``, the rights row checked before the
handler runs). A ``read`` route may name a ``command`` too (a generated
file): the door checks it for the session's profile, or User's. The plugin resolves the
caller once per request, before the handler, so a refusal changes nothing.

Every request acts as the User profile on ``read`` routes, logged in or not:
User has no password (SPEC §7.1), so asking for an explicit User login would
prove nothing and would cost a session per monitoring script; and a read
does not count as a session's use, so a page left polling the status does
not keep a session from idling out. Anything above
User needs a session: 401 without one, 403 when its profile lacks the right.
Every POST/PUT/DELETE except the login itself carries the session's token in
``X-CSRF-Token``; an ``Origin`` (or, without it, a ``Referer``) naming
another host is refused on every state-changing request, the login included.
"""

import re
from urllib.parse import urlsplit

import bottle

from daemon import api, i18n
from daemon.security.rights import Caller
from webconfig.jsonio import reply

SESSION_COOKIE = "m70_session"
CSRF_HEADER = "X-CSRF-Token"
STATE_CHANGING = ("POST", "PUT", "DELETE", "PATCH")
ACCESS = ("public", "read", "session", "command")
ENVIRON_DOOR = "openm70.door"          # the door bound to the request's caller
ENVIRON_SESSION = "openm70.session"    # the live session (dict) or None
ENVIRON_LANGUAGE = "openm70.language"

# refusal reason -> (HTTP status, catalogue key)
REFUSALS = {api.AUTH: (401, "web.refused.auth"), api.LOCKED: (403, "web.refused.locked"),
            api.MUST_CHANGE: (403, "web.refused.must_change"), api.RIGHTS: (403, "web.refused.rights"),
            api.POLICY: (403, "web.refused.policy"), "csrf": (403, "web.refused.csrf"),
            "origin": (403, "web.refused.origin"), "bad_request": (400, "web.refused.bad_request"),
            api.BAD_VALUE: (400, "web.refused.bad_value"), api.BUSY: (409, "web.refused.busy"),
            api.NOT_FOUND: (404, "web.refused.not_found"), api.NO_DEVICE: (404, "web.refused.not_found"),
            api.NOT_WRITABLE: (405, "web.refused.other"), api.NO_ANSWER: (504, "web.refused.other"),
            api.DEVICE_REFUSED: (502, "web.refused.other"), api.UNSUPPORTED: (501, "web.refused.other"),
            api.STORAGE: (503, "web.refused.storage"), api.OFF: (409, "web.refused.off")}

# The password rule's elements, as the accounts name them (English), -> catalogue key and parameter.
_RULE = [(re.compile(r"at least (\d+) characters"), "web.rule.min_length", "min"),
         (re.compile(r"at most (\d+) characters"), "web.rule.max_length", "max"),
         (re.compile(r"an upper-case letter"), "web.rule.upper", None),
         (re.compile(r"a lower-case letter"), "web.rule.lower", None),
         (re.compile(r"a digit"), "web.rule.digit", None),
         (re.compile(r"a special character"), "web.rule.special", None),
         (re.compile(r"no control characters"), "web.rule.control", None),
         (re.compile(r"differ from the current one"), "web.rule.differ", None)]


def header(name, default=""):
    """A request header as sent (latin-1 text, never decoded further: a byte that is not UTF-8 is no error)."""
    key = "HTTP_" + name.upper().replace("-", "_")
    return bottle.request.environ.get(key, default)


def session_id():
    """The session id the client sent (a cookie), or None."""
    found = re.search(r"(?:^|;)\s*%s=([A-Za-z0-9_-]{1,128})\s*(?:;|$)" % SESSION_COOKIE, header("Cookie"))
    return found.group(1) if found else None


def peer():
    return bottle.request.environ.get("REMOTE_ADDR")


def language():
    """The request's language: its session's, else ``?lang=``, else Accept-Language (English by default)."""
    environ = bottle.request.environ
    if ENVIRON_LANGUAGE not in environ:
        session = environ.get(ENVIRON_SESSION)
        asked = (session or {}).get("language") or bottle.request.query.get("lang") or \
            header("Accept-Language")[:16]
        environ[ENVIRON_LANGUAGE] = i18n.language_of(asked)
    return environ[ENVIRON_LANGUAGE]


def door():
    """The door bound to this request's caller (set by the plugin before the handler)."""
    return bottle.request.environ[ENVIRON_DOOR]


def current_session():
    return bottle.request.environ.get(ENVIRON_SESSION)


def rule_messages(problems, lang):
    """The password rule's unmet elements in ``lang`` (an element the catalogue does not know stays as it is)."""
    out = []
    for problem in problems:
        if not isinstance(problem, str):
            continue
        for pattern, key, param in _RULE:
            found = pattern.search(problem)
            if found:
                out.append(i18n.text(key, lang, **({param: int(found.group(1))} if param else {})))
                break
        else:
            out.append(problem)
    return out


def refusal(reason, lang, message=None, details=()):
    """(HTTP status, JSON answer) of a refusal: ``error`` in ``lang`` (the door's own precise English text when
    the language is English), ``reason``, and ``messages``: one per refused field or unmet rule element."""
    status, key = REFUSALS.get(reason, (500, "web.refused.other"))
    answer = {"error": message if (message and lang == i18n.DEFAULT_LANGUAGE) else i18n.text(key, lang),
              "reason": reason}
    messages = []
    for detail in details:
        if isinstance(detail, dict) and isinstance(detail.get("key"), str):
            params = detail.get("params") if isinstance(detail.get("params"), dict) else {}
            text = i18n.Message(detail["key"], **params).text(lang)
            messages.append({"field": detail.get("field"), "message": text})
        elif isinstance(detail, str):
            messages.extend(rule_messages([detail], lang))
    if messages:
        answer["messages"] = messages
    return status, answer


def refused(exc):
    """(status, answer) of the door's ``Refused`` in the request's language."""
    return refusal(exc.reason, language(), str(exc), exc.details)


def door_reply(read):
    """A page's GET of its data: ``read(door bound to the caller)`` as JSON, or the door's refusal as JSON."""
    try:
        return reply(read(door()))
    except api.Refused as exc:
        status, answer = refused(exc)
        return reply(answer, status)


def same_origin():
    """False when Origin (or, without it, Referer) names a host other than the one the request was sent to."""
    source = header("Origin") or header("Referer")
    if not source:
        return True             # a script (curl, urllib) sends neither; the CSRF token still binds it
    if source == "null":
        return False
    parts = urlsplit(source)
    host = header("Host")
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


class Access:
    """Bottle plugin: each route's ``access`` (and ``command``) checked before its handler, as the module says."""
    name, api = "access", 2

    def __init__(self, base_door):
        self.base_door = base_door

    def apply(self, callback, route):
        access = route.config.get("access")
        command = route.config.get("command")
        if access not in ACCESS or (access == "command" and command is None) or \
                (access in ("public", "session") and command is not None):
            raise ValueError("route %s %s: access must be one of %s (command= with \"command\")"
                             % (route.method, route.rule, ACCESS))
        check_csrf = route.config.get("csrf", True)

        def checked(*args, **kwargs):
            refusal_answer = self._admit(access, command, check_csrf)
            if refusal_answer is not None:
                status, answer = refusal_answer
                return reply(answer, status)
            return callback(*args, **kwargs)
        return checked

    def _admit(self, access, command, check_csrf):
        """None when the request may go on (its door and session set in the environ), else (status, answer)."""
        environ = bottle.request.environ
        environ[ENVIRON_SESSION] = None
        environ[ENVIRON_DOOR] = self.base_door.as_caller(Caller("web", "user", peer()))
        changing = bottle.request.method in STATE_CHANGING
        if changing and not same_origin():
            return refusal("origin", language())
        if access == "public":
            return None
        if access == "read":
            # Reads are User's and never look the session up: a looked-up session counts as used, and a
            # status page polling every 2 s would keep an Admin logged in for ever.
            if command is not None:
                try:
                    environ[ENVIRON_DOOR].check(command)
                except api.Refused as exc:
                    return refused(exc)
            return None
        sid = session_id()
        session = self.base_door.session(sid) if sid else None
        environ[ENVIRON_SESSION] = session
        if session is None:
            return refusal(api.AUTH, language(), "not logged in, or the session ended")
        if changing and check_csrf and not self.base_door.csrf_ok(sid, header(CSRF_HEADER, None)):
            return refusal("csrf", language())
        if access == "session":
            return None
        try:
            caller = self.base_door.session_caller(sid, peer())
            bound = self.base_door.as_caller(caller)
            bound.check(command)
        except api.Refused as exc:
            return refused(exc)
        environ[ENVIRON_DOOR] = bound
        return None


def session_cookie(session_id_value, secure):
    """The Set-Cookie value of a session (no Max-Age: it ends with the browser or on the gateway)."""
    return "%s=%s; Path=/; HttpOnly; SameSite=Strict%s" % (SESSION_COOKIE, session_id_value,
                                                           "; Secure" if secure else "")


def expired_cookie(secure):
    return "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict%s" % (SESSION_COOKIE, "; Secure" if secure else "")


def over_https():
    return bottle.request.environ.get("wsgi.url_scheme") == "https"
