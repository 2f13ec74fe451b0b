"""The Bottle application: the status API and page, and the commands of the door over HTTP.

The application receives the door (``daemon/api.py``) and nothing else of the
gateway; each request gets the door bound to its caller (``Caller("web",
profile)``, the session's profile, User without one: ``webconfig/auth.py``),
and every route says what it needs, checked before its handler runs, so
rights and the policy are checked on the server behind the door. Handlers run on
the daemon's loop: synchronous ones only read memory, async ones
(``jsonio.deferred``) await the door's commands without blocking the loop.
Documented in docs/status-api.md.
"""

import mimetypes
import os

import bottle

from daemon import api, i18n
from daemon.security import rights
from webconfig import (accounts_pages, alarms_pages, auth, bluetooth_pages, consumption_pages, customisation,
                       datamodels_pages, devices_pages, diagnosis, firewall_pages, hierarchies_pages, home_pages,
                       https_pages, jsonio, monitor_pages, navigation, outbound_pages, photoview_pages, settings_pages,
                       system_pages, trends_pages, uploads, views_pane)
from webconfig.jsonio import body as _body, deferred, error as _error, reply as _json
from webconfig.statusdoc import StatusDocument

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# The page's assets change only with the software: a browser may keep them a
# few minutes (no validators are sent, so an upgrade shows within that time).
STATIC_CACHE_CONTROL = "max-age=300"
TEXT_PREFIXES = ("web.", "language.")     # the catalogue texts the pages show (GET /api/i18n/<language>)
MAX_PASSWORD_FIELD = 1024            # longer is a malformed body (the accounts refuse beyond 128 anyway)
MAX_LANGUAGE_FIELD = 16              # "fr", "fr-CA", an Accept-Language tag; more is a malformed body


def load_static(directory=STATIC_DIR):
    """{name: (content type, bytes)} of the page's assets, read once.

    ``bottle.static_file`` stats and opens the file on the loop for every
    request; the assets are a few KiB, fixed for the life of the process, so
    they are read when the app is built and served from memory.
    """
    files = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/"):
            content_type += "; charset=utf-8"
        with open(path, "rb") as handle:
            files[name] = (content_type, handle.read())
    return files


def _static(files, name):
    entry = files.get(name)
    if entry is None:            # as any unknown path (dot files and subdirectories are never listed)
        return _error(404, "no such resource: %s" % bottle.request.path)
    content_type, data = entry
    bottle.response.content_type = content_type
    bottle.response.set_header("Content-Length", str(len(data)))
    bottle.response.set_header("Cache-Control", STATIC_CACHE_CONTROL)
    return data


def _refused(exc, language=None):
    """(status, answer) of the door's refusal; an async handler passes the language it read before awaiting."""
    if language is None:
        return auth.refused(exc)
    return auth.refusal(exc.reason, language, str(exc), exc.details)


def _caller_door():
    """The door bound to this request's caller (the session's profile; User without one)."""
    return auth.door()


def _bad_request(message):
    """A malformed request: 400 with the catalogue's words (and the precise English ones in English)."""
    return auth.refusal("bad_request", auth.language(), message)


def catalogue_texts():
    """{language: {key: template}} of the pages' texts, built once (a page fills the ``{placeholders}``)."""
    english = i18n.CATALOGUES[i18n.DEFAULT_LANGUAGE]
    return dict((language, dict((key, i18n.CATALOGUES[language].get(key, english[key])) for key in sorted(english)
                                if key.startswith(TEXT_PREFIXES)))
                for language in i18n.LANGUAGES)


def _session_answer(session):
    """What a page or a script learns of its session: never the id (the cookie is HttpOnly)."""
    return {"profile": session["profile"], "must_change": session["must_change"], "csrf": session["csrf"],
            "language": i18n.language_of(session["language"])}


def _text_field(data, name, required=True):
    value = data.get(name)
    if value is None and not required:
        return True
    return isinstance(value, str) and len(value) <= MAX_PASSWORD_FIELD


def make_app(door, mount=None):
    """The application over ``door`` (bound to User: the anonymous caller); ``mount(app, helpers)`` adds board
    routes (the simulated board's: reading them is User-level, changing them needs the ``simulate`` right)."""
    app = bottle.Bottle()
    files = load_static()            # before the server starts: nothing touches the disk per request
    texts = catalogue_texts()
    app.config["catchall"] = False   # errors reach the server: logged, short 500
    app.install(auth.Access(door))

    # ---------------------------------------------------------------- sessions (SPEC §7.1)

    @app.get("/api/session", access="public")
    def who():
        """Who this request is: the session's profile, or User when not logged in; the login page's options."""
        session = door.session(auth.session_id()) if auth.session_id() else None
        answer = {"logged_in": session is not None, "profiles": list(rights.PROFILES),
                  "banner": bool(door.setting("policy.banner")), "language": auth.language()}
        if session is None:
            answer.update(profile="user", must_change=False)
        else:
            answer.update(_session_answer(session))
        return _json(answer)

    @app.get("/api/i18n/<language>", access="public")
    def catalogue(language):
        language = i18n.language_of(language)
        return _json({"language": language, "texts": texts[language]})

    @app.post("/api/login", access="public", csrf=False)
    @deferred
    async def login():
        """{profile, password, language}: a new session (its id in the cookie, never the one sent before)."""
        data = _body()
        base, old, secure = auth.door(), auth.session_id(), auth.over_https()
        if not data or not isinstance(data.get("profile"), str) or data["profile"] not in rights.PROFILES \
                or not _text_field(data, "password", required=False) \
                or not (data.get("language") is None or (isinstance(data.get("language"), str)
                                                         and 0 < len(data["language"]) <= MAX_LANGUAGE_FIELD)):
            return _bad_request("expected {\"profile\": one of %s, \"password\": \"...\", \"language\": \"en\"|\"fr\"}"
                                % "/".join(rights.PROFILES))
        language = i18n.language_of(data.get("language") or auth.language())
        bottle.request.environ[auth.ENVIRON_LANGUAGE] = language
        try:
            session = await base.login(data["profile"], data.get("password") or "", language, replacing=old)
        except api.Refused as exc:
            return _login_refused(base, data["profile"], exc, language)
        return 200, _session_answer(session), [("Set-Cookie", auth.session_cookie(session["session"], secure))]

    @app.post("/api/logout", access="session")
    def logout():
        door.logout(auth.session_id())
        bottle.response.set_header("Set-Cookie", auth.expired_cookie(auth.over_https()))
        return _json({"ok": True})

    @app.post("/api/password", access="session")
    @deferred
    async def change_password():
        """{current, new[, profile]}: one's own password (also while it must be changed), or, for Cyber
        Security, another profile's. The profile's sessions end; one's own goes on under a new id."""
        data = _body()
        base, sid, secure, language = auth.door(), auth.session_id(), auth.over_https(), auth.language()
        if not data or not _text_field(data, "current") or not _text_field(data, "new") \
                or not (data.get("profile") is None or data.get("profile") in rights.PROFILES):
            return _bad_request("expected {\"current\": \"...\", \"new\": \"...\"}")
        try:
            session = await base.change_password(sid, data["current"], data["new"], data.get("profile"))
        except api.Refused as exc:
            return _refused(exc, language)
        headers = [] if session["session"] == sid else [("Set-Cookie", auth.session_cookie(session["session"], secure))]
        return 200, _session_answer(session), headers

    # ---------------------------------------------------------------- what User sees

    status_document = app.status_document = StatusDocument(door)     # issue 19: built once for a burst

    @app.get("/api/status", access="read")
    def status():
        return status_document.get(bottle.request.environ)

    @app.get("/api/discovery", access="read")
    def discovery_status():
        return _json(door.discovery_status())

    @app.get("/api/events", access="read")
    def events():
        return _json({"events": door.events(500)})

    @app.get("/api/alarms", access="read")
    def active_alarms():
        """System alarms and the device alarms read from the meters, active now."""
        return _json({"system": door.system_alarms(), "devices": door.device_alarms()})

    @app.get("/api/files", access="read", command="read_document")
    def generated_files():
        return _json({"files": door.document_names()})

    @app.get("/api/files/<name>", access="read", command="read_document")
    def generated_file(name):
        """Generated documents (register map, MIB, EDE...) published by the services."""
        entry = door.document(name)
        if entry is None:
            return _error(404, "no generated file %r" % name)
        content_type, text = entry
        bottle.response.content_type = content_type
        bottle.response.set_header("Content-Disposition", "attachment; filename=\"%s\"" % name)
        return text

    # ---------------------------------------------------------------- commands (the door checks each)

    @app.post("/api/discovery", access="command", command="start_detection")
    def discovery_start():
        data = _body()
        if data is None:
            return _error(400, "expected a JSON object such as {\"mode\": \"fast\"}")
        mode = data.get("mode", door.setting("discovery.mode"))
        if mode not in ("fast", "full"):
            return _error(400, "mode must be \"fast\" or \"full\"")
        synchronise = data.get("synchronise", False)
        if not isinstance(synchronise, bool):
            return _error(400, "synchronise must be true or false")
        try:
            return _json(_caller_door().start_detection(mode, synchronise=synchronise), 202)
        except api.Refused as exc:
            status_code, answer = _refused(exc)
            return _json(answer, status_code)

    @app.post("/api/alarms/acknowledge", access="command", command="acknowledge_alarm")
    def acknowledge():
        """{"alarm": n, "source": "digiware:5"}: acknowledge an active system alarm."""
        data = _body()
        if data is None or type(data.get("alarm")) is not int or not isinstance(data.get("source"), str):
            return _error(400, "expected {\"alarm\": number, \"source\": \"...\"}")
        try:
            _caller_door().acknowledge_alarm(data["alarm"], data["source"])
        except api.Refused as exc:
            status_code, answer = _refused(exc)
            return _json(answer, status_code)
        return _json({"ok": True})

    @app.post("/api/counters/reset", access="command", command="reset_counters")
    def reset_counters():
        """{} for every device, {"address": n} for one: zero the communication counters."""
        data = _body()
        address = data.get("address") if data else None
        if data is None or (address is not None and (type(address) is not int or not 1 <= address <= 247)):
            return _error(400, "expected {} or {\"address\": 1..247}")
        try:
            _caller_door().reset_counters(address)
        except api.Refused as exc:
            status_code, answer = _refused(exc)
            return _json(answer, status_code)
        return _json({"ok": True})

    @app.post("/api/settings", access="command", command="set_settings")
    @deferred
    async def change_settings():
        """{"name": value, ...}: every change valid and allowed, applied at once, or none (400/403)."""
        data = _body()
        caller_door, language = _caller_door(), auth.language()     # read the request before the first await
        if not data:
            return 400, {"error": "expected a JSON object of settings, e.g. {\"gateway.name\": \"M-70 A\"}"}
        try:
            await caller_door.set_settings(data)
        except api.Refused as exc:
            return _refused(exc, language)
        return 200, {"ok": True, "changed": sorted(data)}

    @app.post("/api/devices/<address:int>/<load:int>/<key>", access="command", command="write_value")
    @deferred
    async def write_value(address, load, key):
        """{"value": v}: write one measurement of a device (IO-10 outputs) through the door."""
        data = _body()
        caller_door, language = _caller_door(), auth.language()
        value = data.get("value") if data else None
        if type(value) not in (int, float):
            return 400, {"error": "expected {\"value\": number}"}
        try:
            written = await caller_door.write_value(address, load, key, value)
        except api.Refused as exc:
            return _refused(exc, language)
        return 200, {"ok": True, "value": written}

    # ---------------------------------------------------------------- pages

    @app.get("/", access="public")
    def index():
        return _static(files, "status.html")

    @app.get("/login", access="public")
    def login_page():
        return _static(files, "login.html")

    @app.get("/password", access="public")
    def password_page():
        return _static(files, "login.html")

    @app.get("/static/<name>", access="public")
    def static(name):
        return _static(files, name)

    vendor = load_static(os.path.join(STATIC_DIR, "vendor"))     # issue 17: uPlot, its licence (vendor/README.md)

    @app.get("/static/vendor/<name>", access="public")
    def vendored(name):
        return _static(vendor, name)

    settings_pages.mount(app, door, lambda name: _static(files, name))
    diagnosis.mount(app, lambda name: _static(files, name))
    navigation.mount(app, door)          # GET /api/pages: the links a page offers its reader
    customisation.mount(app, door, lambda name: _static(files, name))        # logo, background (SPEC §7.2)
    accounts_pages.mount(app, door, lambda name: _static(files, name))       # Cyber Security's accounts page
    devices_pages.mount(app, door, lambda name: _static(files, name))
    system_pages.mount(app, door, lambda name: _static(files, name))         # backup, restore, resets, upgrade
    app.uploads = uploads.Uploads(door, system_pages.STREAMED)    # their bodies spooled to disk (webconfig/server.py)
    https_pages.mount(app, door, lambda name: _static(files, name))          # issue 15: certificate, CA store
    # issue 15: the firewall's whitelist page; every request passes the gateway's firewall (webconfig/server.py)
    firewall_pages.mount(app, door, lambda name: _static(files, name))
    app.admit = door.admit
    outbound_pages.mount(app, door)      # issue 16: the exports', e-mail's and SNTP's buttons and state
    views_pane.mount(app, door)          # issue 17: the data views' left pane (GET /api/views/tree)
    alarms_pages.mount(app, door, lambda name: _static(files, name))         # issue 17: alarms and events
    home_pages.mount(app, door, lambda name: _static(files, name))           # issue 17: the Home page
    trends_pages.mount(app, door, lambda name: _static(files, name))         # issue 17: Trends, /api/series
    monitor_pages.mount(app, door, lambda name: _static(files, name))        # issue 17: the Monitor page
    hierarchies_pages.mount(app, door, lambda name: _static(files, name))    # issue 17: the hierarchies
    photoview_pages.mount(app, door, lambda name: _static(files, name))      # issue 17: Photoview
    datamodels_pages.mount(app, door, lambda name: _static(files, name))     # issue 18: generic devices' models
    bluetooth_pages.mount(app, door, lambda name: _static(files, name))      # issue 18: Bluetooth sources
    consumption_pages.mount(app, door, lambda name: _static(files, name))    # issue 17: Consumption

    if mount is not None:
        before = len(app.routes)
        mount(app, jsonio)
        for route in app.routes[before:]:        # the board's routes: changing the simulated world is a command
            if route.method == "GET":
                route.config["access"] = "read"
            else:
                route.config.update(access="command", command="simulate")

    @app.error(404)
    def not_found(_err):
        return _error(404, "no such resource: %s" % bottle.request.path)

    @app.error(405)
    def not_allowed(_err):
        return _error(405, "method %s not allowed here" % bottle.request.method)

    return app


def _login_refused(base, profile, exc, language):
    """A refused login in ``language``: a wrong password says so; a lock says for how long."""
    status, answer = auth.refusal(exc.reason, language, str(exc), exc.details)
    if exc.reason == api.AUTH:
        answer["error"] = i18n.text("web.login.wrong", language)
    elif exc.reason == api.LOCKED:
        seconds = base.account_state(profile).get("locked_for") or 0
        if seconds:
            answer.update(seconds=seconds, error=i18n.text("web.login.locked", language, seconds=seconds))
        else:
            answer["error"] = i18n.text("web.login.totem_locked", language)
    return status, answer
