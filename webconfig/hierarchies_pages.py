"""The Hierarchies editor (WEBVIEW-M manual §9.7, issue 17): Admin and Cyber Security build the hierarchies.

``GET /api/hierarchies``: the hierarchies, the limits, the circuits a hierarchy may take (each with its device,
name and fluid) and the fluids, in the reader's language (every profile: the Consumption page reads them).
``POST /api/hierarchies``: one change ({op, ...}, daemon/state/hierarchies.py OPERATIONS), refused with the
rule it breaks in the reader's language. The page ``/hierarchies`` (static/hierarchies.*) is the editor: a
keyboard-accessible tree with buttons and selects, and the same changes by drag and drop (a palette of the
free circuits and hierarchies, static/hierarchies-dnd.js); another profile gets the 403 page, nobody the login page.
"""

from daemon import api, i18n
from webconfig import auth, settings_pages
from webconfig.customisation import serve_page
from webconfig.jsonio import body as _body, deferred, reply as _json

COMMAND = "edit_hierarchies"


def _circuits(door, language):
    return [{"key": "%d:%d" % (c["address"], c["load"]), "address": c["address"], "load": c["load"],
             "device": c["device"], "name": c["name"] or i18n.text("web.pane.load", language, n=c["load"]),
             "fluid": c["fluid"]} for c in door.circuits()]


def listing(door, language):
    """What the editor and the Consumption page draw a hierarchy from."""
    out = door.hierarchies()
    out["circuits"] = _circuits(door, language)
    out["fluids"] = [{"key": f, "name": i18n.text("web.fluid." + f, language)}
                     for f in door.devices_catalogue()["fluids"]]
    return out


def mount(app, door, static):
    """Add the editor page and its routes to ``app`` over the door; ``static(name)`` serves an asset."""
    serve_page(app, door, static, "/hierarchies", COMMAND, "hierarchies.html", settings_pages._refusal_page)

    @app.get("/api/hierarchies", access="read", command="read_consumption")
    def hierarchies():
        language = auth.language()
        try:
            return _json(listing(auth.door(), language))
        except api.Refused as exc:
            status, answer = auth.refused(exc)
            return _json(answer, status)

    @app.post("/api/hierarchies", access="command", command=COMMAND)
    @deferred
    async def change():
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None or not isinstance(data.get("op"), str):
            return auth.refusal("bad_request", language, "expected a change such as {\"op\": \"create\", "
                                "\"name\": \"Building A\", \"fluid\": \"electricity\"}")
        try:
            return 200, {"ok": True, "result": await bound.change_hierarchies(data)}
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)

    return app
