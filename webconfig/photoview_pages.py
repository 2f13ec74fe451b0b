"""The Photoview (SPEC §7.2-7.3, WEBVIEW-M manual §8.4, §9.8): its viewer, its editor and their JSON.

``GET /photoview`` (any signed-in profile; ``?page=<id>`` opens that page) draws a page's background and its
widgets with live values: ``GET /api/photoview/live?page=<id>`` reads, for each device and load the page's
widgets name, the Monitor's own document (webconfig/monitor_view.py: each value ``[value, quality, age_s]``) cut
down to the values shown; the page polls it. ``GET /photoview/edit`` is the editor (right ``edit_photoviews``:
Admin, Cyber Security; a 403 page for the others): pages made, renamed, deleted, widgets placed and saved, a
background uploaded as the request body (``POST /api/photoview/background?page=<id>``, spooled to disk by
webconfig/uploads.py: SPEC §10 allows 10 MiB, past the server's 1 MiB body limit) and checked by the door
(daemon/state/photoviews.py, daemon/pictures.py's rules).
"""

import bottle

from daemon import api
from webconfig import auth, monitor_view
from webconfig.customisation import PICTURE_HEADERS, page_gate, refusal_page
from webconfig.home_pages import view_gate
from webconfig.jsonio import deferred
from webconfig.server import DEFERRED, UPLOAD

EDIT = "edit_photoviews"
READ = "read_photoviews"
BACKGROUND_PATH = "/api/photoview/background"
STREAMED = {("POST", BACKGROUND_PATH): (EDIT, 10485760 + 1)}     # one byte more: the store says "too big"


def live(door, page):
    """{time, rows: {"<address>/<load>": {name, state, age_s, values: {key: [value, quality, age_s]}, labels,
    units}}} of what ``page``'s widgets show (a device widget: its state only)."""
    wanted = {}
    for widget in page.get("widgets", []):
        if "address" in widget:
            keys = wanted.setdefault((widget["address"], widget["load"]), set())
            keys.update(widget.get("keys", ()))
    rows = {}
    for (address, load), keys in wanted.items():
        document = monitor_view.document(door, address, load, labels=True)
        name = "%d/%d" % (address, load)
        if document is None:
            rows[name] = {"missing": True}
            continue
        values = dict((k, document["values"].get(k, [None, "not_supported", None])) for k in sorted(keys))
        device = document["device"]
        load_name = next((e["name"] for e in device["loads"] if e["load"] == document["load"]), "")
        rows[name] = {"name": device["name"], "load_name": load_name, "state": device["state"],
                      "age_s": device["age_s"], "values": values,
                      "labels": labels(keys),
                      "units": dict((k, monitor_view.units([k])[k]) for k in keys)}
    return {"time": door.time(), "rows": rows}


def labels(keys):
    """{key: [symbol or None, the registry's name]}: the page says a key by its symbol (the Monitor's), else by
    the catalogue's word (web.monitor.key.<key>), else by the registry's name."""
    return dict((k, [monitor_view.SYMBOLS.get(k), api.measurement(k)[0]]) for k in keys)


def _page_id():
    return (bottle.request.query.get("page") or "")[:16]


def _json_body():
    try:
        data = bottle.request.json
    except ValueError:
        data = None
    return data if isinstance(data, dict) else {}


def mount(app, door, static):
    """Add the Photoview's pages and API to ``app`` over the door (bound to User)."""
    if getattr(app, "uploads", None) is not None:
        app.uploads.routes.update(STREAMED)

    @app.get("/photoview", access="public")
    def viewer():
        return view_gate(door, "photoview.html", static)

    app.route("/photoview/edit", "GET", lambda: page_gate(door, EDIT, "photoview-edit.html", static, refusal_page),
              access="public")

    @app.get("/api/photoview", access="read", command=READ)
    @deferred
    async def pages():
        bound = auth.door()
        try:
            return 200, {"pages": await bound.photoview_pages(), "limits": bound.photoview_limits()}
        except api.Refused as exc:
            return auth.refused(exc)

    @app.get("/api/photoview/live", access="read", command=READ)
    @deferred
    async def values():
        bound, page_id = auth.door(), _page_id()
        try:
            page = next((p for p in await bound.photoview_pages() if p["id"] == page_id), None)
        except api.Refused as exc:
            return auth.refused(exc)
        if page is None:
            return auth.refusal("not_found", auth.language(), "no photoview page %r" % page_id)
        return 200, live(bound, page)

    @app.get("/photoview/background/<page_id:re:p[0-9]{1,6}>", access="read", command=READ)
    def background(page_id):
        bound, tag = auth.door(), auth.header("If-None-Match")

        async def serve():
            entry = await bound.photoview_background(page_id)
            if entry is None:
                return 404, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], \
                    b'{"error":"this page has no background"}'
            info, data = entry
            etag = '"%s"' % info["version"]
            headers = [("ETag", etag)] + PICTURE_HEADERS
            if tag == etag:
                return 304, headers, b""
            return 200, [("Content-Type", info["type"])] + headers, data

        async def answer():
            status, headers, payload = await serve()
            return "%d %s" % (status, bottle.HTTP_CODES.get(status, "Unknown")), headers, payload
        bottle.request.environ[DEFERRED] = answer()
        return b""

    @app.get("/api/photoview/devices", access="command", command=EDIT)
    def devices():
        """{devices, areas, min_size}: what the editor places (Door.photoview_devices, Door.photoview_areas)."""
        def read(bound):
            devices = bound.photoview_devices()
            for device in devices:
                for load in device["loads"]:
                    load["labels"] = labels(load["keys"])
            return dict(bound.photoview_areas(), devices=devices)
        return auth.door_reply(read)

    @app.post("/api/photoview/pages", access="command", command=EDIT)
    @deferred
    async def create():
        bound, data = auth.door(), _json_body()
        try:
            return 200, {"ok": True, "page": await bound.create_photoview(data.get("name"))}
        except api.Refused as exc:
            return auth.refused(exc)

    @app.post("/api/photoview/pages/<page_id:re:p[0-9]{1,6}>", access="command", command=EDIT)
    @deferred
    async def save(page_id):
        bound, data = auth.door(), _json_body()
        try:
            return 200, {"ok": True, "page": await bound.save_photoview(page_id, data.get("name"),
                                                                         data.get("widgets"))}
        except api.Refused as exc:
            return auth.refused(exc)

    @app.post("/api/photoview/pages/<page_id:re:p[0-9]{1,6}>/delete", access="command", command=EDIT)
    @deferred
    async def delete(page_id):
        bound = auth.door()
        try:
            await bound.delete_photoview(page_id)
        except api.Refused as exc:
            return auth.refused(exc)
        return 200, {"ok": True}

    @app.post(BACKGROUND_PATH, access="command", command=EDIT)
    @deferred
    async def upload():
        """The picture as the body, its type in Content-Type: checked, stored, or refused with nothing stored."""
        environ, bound, language = bottle.request.environ, auth.door(), auth.language()
        spooled = environ.get(UPLOAD)
        if spooled is None or spooled.size == 0:
            return auth.refusal("bad_value", language, "send the picture as the body", [
                {"field": "file", "key": "error.picture.empty", "params": {}}])
        try:
            info = await bound.set_photoview_background(_page_id(), environ.get("CONTENT_TYPE", ""), spooled.path)
        except api.Refused as exc:
            return auth.refused(exc)
        return 200, {"ok": True, "background": info}

    return app
