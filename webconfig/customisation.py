"""Application customisation over HTTP (SPEC §7.2): the company logo and the background picture.

``POST /api/customisation/<kind>`` takes the picture as the request body itself (``Content-Type: image/png``
or ``image/jpeg``, at most the kind's bytes: the server's body limit, 1 MiB, bounds the background), checked
by the door (daemon/pictures.py: magic bytes and declared type, size, dimensions from the file's header);
``DELETE`` puts the default back (no picture). Both need the ``customise`` right (Admin, Cyber Security).
``GET /customisation/<kind>`` serves the stored picture to anyone (the login page shows the logo) with its
type, ``X-Content-Type-Options: nosniff`` and a validator; ``GET /api/customisation`` says what is set and
the bounds. ``GET /customisation`` is the page (customisation.html), behind the same gate as /settings.
"""

import html

import bottle

from daemon import api, i18n
from webconfig import auth
from webconfig.jsonio import deferred
from webconfig.server import DEFERRED

COMMAND = "customise"
PICTURE_HEADERS = [("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-cache"),
                   ("Content-Security-Policy", "default-src 'none'; sandbox")]


def refusal_page(language, profile):
    """The 403 page of a profile without the page's right (catalogue texts, escaped)."""
    words = dict((key, html.escape(i18n.text("web.settings." + key, language, profile=i18n.text(
        "web.profile." + profile, language)))) for key in ("forbidden_title", "home", "login"))
    words["forbidden"] = html.escape(i18n.text("web.page.forbidden", language, profile=i18n.text(
        "web.profile." + profile, language)))
    return ("<!DOCTYPE html>\n<html lang=\"%s\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>%s</title>"
            "<link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/static/base.css\">"
            "<link rel=\"stylesheet\" href=\"/static/settings.css\"></head>"
            "<body class=\"refused\"><main><h1>%s</h1><p id=\"forbidden\">%s</p>"
            "<p><a href=\"/\">%s</a> · <a href=\"/login\">%s</a></p></main></body></html>\n"
            % (language, words["forbidden_title"], words["forbidden_title"], words["forbidden"], words["home"],
               words["login"]))


def serve_page(app, door, static, path, command, page, refusal=refusal_page):
    """Route ``GET path`` to the static ``page`` behind page_gate: the login page, a 403 page, or the HTML."""
    app.route(path, "GET", lambda: page_gate(door, command, page, static, refusal), access="public")


def page_gate(door, command, page, static, refusal=refusal_page):
    """A page for the profiles the door allows ``command``: the login page without a session (303), a 403
    page for another profile (``refusal(language, profile)``), else the page's HTML. The page's own API
    routes check again."""
    sid = auth.session_id()
    try:
        caller = door.session_caller(sid, auth.peer()) if sid else None
    except api.Refused:          # an ended session, or a password to change first: the login page
        caller = None
    bottle.response.set_header("Cache-Control", "no-store")
    if caller is None:
        bottle.response.status = 303
        bottle.response.set_header("Location", "/login")
        return ""
    try:
        door.as_caller(caller).check(command)
    except api.Refused:
        language = i18n.language_of((door.session(sid) or {}).get("language"))
        bottle.response.status = 403
        bottle.response.content_type = "text/html; charset=utf-8"
        return refusal(language, caller.profile)
    return static(page)


def _raw(coroutine):
    """Answer with what ``coroutine`` returns, (status, headers, bytes), once it finishes on the loop."""
    async def answer():
        status, headers, payload = await coroutine
        return "%d %s" % (status, bottle.HTTP_CODES.get(status, "Unknown")), headers, payload
    bottle.request.environ[DEFERRED] = answer()
    return b""


def mount(app, door, static):
    """Add the customisation routes to ``app`` over the door (bound to User); ``static(name)`` serves an asset."""

    serve_page(app, door, static, "/customisation", COMMAND, "customisation.html")

    @app.get("/api/customisation", access="public")
    @deferred
    async def customisation_state():
        """What is set ({kind: {type, width, height, size, version} or null}) and the bounds of each kind."""
        base = auth.door()
        return 200, {"pictures": await base.picture_infos(), "types": ["image/png", "image/jpeg"],
                     "limits": dict((kind, {"bytes": most, "width": width, "height": height})
                                    for kind, (most, width, height) in base.picture_limits().items())}

    @app.get("/customisation/<kind:re:logo|background>", access="public")
    def picture(kind):
        base, tag = auth.door(), auth.header("If-None-Match")

        async def serve():
            entry = await base.picture(kind)
            if entry is None:
                return 404, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], \
                    b'{"error":"no %s picture is set"}' % kind.encode()
            info, data = entry
            etag = '"%s"' % info["version"]
            headers = [("ETag", etag)] + PICTURE_HEADERS
            if tag == etag:
                return 304, headers, b""
            return 200, [("Content-Type", info["type"])] + headers, data
        return _raw(serve())

    @app.post("/api/customisation/<kind:re:logo|background>", access="command", command=COMMAND)
    @deferred
    async def upload(kind):
        """The picture as the body, its type in Content-Type: checked, stored, or refused with nothing stored."""
        bound, language = auth.door(), auth.language()
        declared = bottle.request.environ.get("CONTENT_TYPE", "")
        data = bottle.request.environ["wsgi.input"].read()
        try:
            info = await bound.set_picture(kind, declared, data)
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        return 200, {"ok": True, "picture": info}

    @app.delete("/api/customisation/<kind:re:logo|background>", access="command", command=COMMAND)
    @deferred
    async def reset(kind):
        bound, language = auth.door(), auth.language()
        try:
            removed = await bound.reset_picture(kind)
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        return 200, {"ok": True, "removed": removed}

    return app
