"""The configuration pages, drawn from the settings schema: one JSON API and one generic page (issue 14).

``GET /api/settings/pages`` lists the schema's pages (``daemon.state.settings.PAGES``) the caller's profile
may open: a page it may change at least one setting of (so Admin does not see the Cyber Security pages).
``GET /api/settings/page/<page>`` gives its sections and fields with the labels, help, bounds and choices of
the caller's language, each field's value (a secret's never: only whether it is set), whether it applies live
or after a restart and whether this caller may change it. ``POST`` of ``{name: value...}`` saves through the
door, all or nothing: a refusal is 400 (403 for a field the profile may not change) with one message per
field in the caller's language. ``GET /settings`` serves the page (settings.html renders any schema page
from that JSON): without a session it sends the browser to the login page, a profile without the
configuration menus gets a 403 page. The door checks everything again (``Door.set_settings``).
"""

import html

import bottle

from daemon import api, i18n
from daemon.security import rights
from daemon.state import settings as schema
from webconfig import auth, outbound_pages
from webconfig.jsonio import MAX_JSON_BODY, body as _body, deferred, reply as _json

COMMAND = "set_settings"                 # what the configuration menus need (Admin, Cyber Security)
MENUS = ("devices", "protocols", "system", "security")      # SPEC §7.2's order; a page's menu is its name's head
SECRET_SET, SECRET_UNSET = "set", "not set"


def _menu(page):
    return page.split(".", 1)[0]


def _may_change(caller, spec):
    return rights.may_change_setting(caller, spec.name, spec.profile)


def _menu_order(page):
    return MENUS.index(_menu(page)) if _menu(page) in MENUS else len(MENUS)


def visible_pages(caller):
    """The schema's pages ``caller`` may change at least one setting of, by menu, in schema order within one."""
    pages = [page for page in schema.PAGES if any(_may_change(caller, spec) for spec in schema.page_rows(page))]
    return sorted(pages, key=_menu_order)       # a stable sort: the schema's order within a menu


def _field(door, caller, spec, language):
    """One setting as a form shows it; a secret's value stays on the gateway (``set``: whether it has one)."""
    field = {"name": spec.name, "kind": spec.kind, "type": spec.type, "label": i18n.text(spec.label, language),
             "help": i18n.text(spec.help, language), "live": spec.live, "editable": _may_change(caller, spec),
             "secret": spec.secret}
    value = door.setting(spec.name)
    if spec.secret:
        field["set"] = SECRET_SET if value else SECRET_UNSET
    else:
        field["value"] = value
    if spec.type == "int":
        field["min"], field["max"] = spec.bounds
    elif spec.type in ("enum", "intenum"):
        field["choices"] = [{"value": choice, "label": i18n.text(spec.choice(choice), language)}
                            for choice in spec.bounds]
    elif spec.type in schema.TEXT_TYPES:
        field["minlength"], field["maxlength"] = spec.bounds
    return field


def page_document(door, caller, page, language):
    """{page, title, menu, sections: [{section, title, fields}]} of one page in ``language``."""
    sections = {}
    for spec in schema.page_rows(page):
        if spec.section not in sections:
            sections[spec.section] = {"section": spec.section, "fields": [],
                                      "title": i18n.text("section.%s.%s.title" % (page, spec.section), language)}
        sections[spec.section]["fields"].append(_field(door, caller, spec, language))
    document = {"page": page, "title": i18n.text("page.%s.title" % page, language), "menu": _menu(page),
                "sections": list(sections.values()), "language": language}
    document.update(outbound_pages.page_extras(page, language))      # issue 16: test buttons, the client's state
    return document


def _detail(name, key, **params):
    return {"field": name, "key": key, "params": params}


def changes_of(door, caller, page, data):
    """(changes, unchanged names, refusal or None) of a posted form.

    A name the schema lacks or that another page shows is a field message (400), as is a setting the profile
    may not change (403: the door would refuse the whole change); an empty secret means "keep it"; a value
    equal to the current one is left out (nothing to apply, no service restarted for it)."""
    rows = dict((spec.name, spec) for spec in schema.page_rows(page))
    bad, forbidden, changes, unchanged = [], [], {}, []
    for name, value in data.items():
        spec = rows.get(name)
        if spec is None:
            try:
                schema.row(name)
            except schema.SettingError as exc:
                bad.extend(exc.details())
            else:
                bad.append(_detail(name, "web.settings.error.other_page"))
        elif not _may_change(caller, spec):
            forbidden.append(_detail(name, "web.settings.error.not_allowed"))
        elif spec.secret and value == "":
            unchanged.append(name)
        elif type(value) is type(door.setting(name)) and value == door.setting(name):
            unchanged.append(name)
        else:
            changes[name] = value
    if bad:
        return None, None, (api.BAD_VALUE, "unknown setting or one of another page: %s"
                            % ", ".join(sorted(d["field"][:40] for d in bad)), bad + forbidden)
    if forbidden:
        return None, None, (api.RIGHTS, "%r may not change %s" % (caller, ", ".join(sorted(d["field"]
                                                                                          for d in forbidden))),
                            forbidden)
    return changes, sorted(unchanged), None


def _refusal_page(language, profile):
    """The 403 page a profile without the configuration menus gets at /settings (catalogue texts, escaped)."""
    words = dict((key, html.escape(i18n.text("web.settings." + key, language, profile=i18n.text(
        "web.profile." + profile, language)))) for key in ("forbidden_title", "forbidden", "home", "login"))
    return ("<!DOCTYPE html>\n<html lang=\"%s\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>%s</title>"
            "<link rel=\"icon\" href=\"data:,\"><link rel=\"stylesheet\" href=\"/static/base.css\">"
            "<link rel=\"stylesheet\" href=\"/static/settings.css\"></head>"
            "<body class=\"refused\"><main><h1>%s</h1><p id=\"forbidden\">%s</p>"
            "<p><a href=\"/\">%s</a> · <a href=\"/login\">%s</a></p></main></body></html>\n"
            % (language, words["forbidden_title"], words["forbidden_title"], words["forbidden"], words["home"],
               words["login"]))


def mount(app, door, static):
    """Add the settings routes to ``app`` over the door (bound to User); ``static(name)`` serves an asset."""

    @app.get("/settings", access="public")
    def settings_page():
        """The page for a profile with the configuration menus; the login page without a session."""
        sid = auth.session_id()
        try:
            caller = door.session_caller(sid, auth.peer()) if sid else None
        except api.Refused:          # an ended session, or a password that must be changed first: the login page
            caller = None
        if caller is None:
            bottle.response.status = 303
            bottle.response.set_header("Location", "/login")
            bottle.response.set_header("Cache-Control", "no-store")
            return ""
        try:
            door.as_caller(caller).check(COMMAND)
        except api.Refused:
            language = i18n.language_of((door.session(sid) or {}).get("language"))
            bottle.response.status = 403
            bottle.response.content_type = "text/html; charset=utf-8"
            bottle.response.set_header("Cache-Control", "no-store")
            return _refusal_page(language, caller.profile)
        return static("settings.html")

    @app.get("/api/settings/pages", access="command", command=COMMAND)
    def pages():
        caller, language = auth.door().caller, auth.language()
        return _json({"language": language, "pages": [
            {"page": page, "title": i18n.text("page.%s.title" % page, language), "menu": _menu(page),
             "menu_title": i18n.text("web.settings.menu." + _menu(page), language)}
            for page in visible_pages(caller)]})

    def _page_refusal(page, caller):
        """(status, answer) when ``page`` is no page this caller may open, else None."""
        if page not in schema.PAGES:
            return auth.refusal(api.NOT_FOUND, auth.language(), "no settings page %r" % page[:64])
        if page not in visible_pages(caller):
            return auth.refusal(api.RIGHTS, auth.language(), "the %s profile may not open %s" % (caller.profile,
                                                                                                 page))
        return None

    @app.get("/api/settings/page/<page>", access="command", command=COMMAND)
    def page_get(page):
        bound = auth.door()
        refused = _page_refusal(page, bound.caller)
        if refused is not None:
            return _json(refused[1], refused[0])
        return _json(page_document(bound, bound.caller, page, auth.language()))

    @app.post("/api/settings/page/<page>", access="command", command=COMMAND)
    @deferred
    async def page_post(page):
        """{name: value...} of this page: every change valid and allowed, saved at once, or none."""
        bound, language, data = auth.door(), auth.language(), _body()      # the request, before the first await
        refused = _page_refusal(page, bound.caller)
        if refused is not None:
            return refused
        if data is None:
            return auth.refusal("bad_request", language, "expected a JSON object of at most %d bytes: "
                                "{\"setting.name\": value, ...}" % MAX_JSON_BODY)
        changes, unchanged, refusal = changes_of(bound, bound.caller, page, data)
        if refusal is not None:
            return auth.refusal(refusal[0], language, refusal[1], refusal[2])
        if changes:
            try:
                await bound.set_settings(changes)
            except api.Refused as exc:
                return auth.refusal(exc.reason, language, str(exc), exc.details)
        live = sorted(name for name in changes if schema.row(name).live)
        restart = sorted(name for name in changes if not schema.row(name).live)
        return 200, {"ok": True, "live": live, "restart": restart, "unchanged": unchanged}

    return app
