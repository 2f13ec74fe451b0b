"""The Bottle application: the status API and page, and the commands of the door over HTTP.

The application receives the door (``daemon/api.py``) and nothing else of the
gateway; each request gets the door bound to its caller (``Caller("web",
profile)``), so rights and the policy are checked behind it. Handlers run on
the daemon's loop: synchronous ones only read memory, async ones
(``jsonio.deferred``) await the door's commands without blocking the loop.
Documented in docs/status-api.md.
"""

import mimetypes
import os

import bottle

from daemon import api
from webconfig import jsonio
from webconfig.jsonio import body as _body, deferred, error as _error, reply as _json

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
# Until login and profiles exist (the web-configuration issue), every web
# request acts with this profile: the rights the web had before the door.
WEB_PROFILE = "admin"
# The door's refusals -> HTTP status
REFUSAL_STATUS = {api.RIGHTS: 403, api.POLICY: 403, api.NO_DEVICE: 404, api.NOT_FOUND: 404,
                  api.NOT_WRITABLE: 405, api.BAD_VALUE: 400, api.BUSY: 409, api.NO_ANSWER: 504,
                  api.DEVICE_REFUSED: 502, api.UNSUPPORTED: 501}
# The page's assets change only with the software: a browser may keep them a
# few minutes (no validators are sent, so an upgrade shows within that time).
STATIC_CACHE_CONTROL = "max-age=300"


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


def _refused(exc):
    return REFUSAL_STATUS.get(exc.reason, 500), {"error": str(exc), "reason": exc.reason}


def _caller_door(door):
    """The door bound to this request's caller."""
    return door.as_caller(api.Caller("web", WEB_PROFILE, peer=bottle.request.environ.get("REMOTE_ADDR")))


def make_app(door, mount=None):
    """The application over ``door``; ``mount(app, helpers)`` adds board routes (the simulated board's)."""
    app = bottle.Bottle()
    files = load_static()            # before the server starts: nothing touches the disk per request
    app.config["catchall"] = False   # errors reach the server: logged, short 500

    @app.get("/api/status")
    def status():
        return _json(door.status())

    @app.get("/api/discovery")
    def discovery_status():
        return _json(door.discovery_status())

    @app.post("/api/discovery")
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
            return _json(_caller_door(door).start_detection(mode, synchronise=synchronise), 202)
        except api.Refused as exc:
            status_code, answer = _refused(exc)
            return _json(answer, status_code)

    @app.get("/api/events")
    def events():
        return _json({"events": door.events(500)})

    @app.get("/api/alarms")
    def active_alarms():
        """System alarms and the device alarms read from the meters, active now."""
        return _json({"system": door.system_alarms(), "devices": door.device_alarms()})

    @app.post("/api/alarms/acknowledge")
    def acknowledge():
        """{"alarm": n, "source": "digiware:5"}: acknowledge an active system alarm."""
        data = _body()
        if data is None or type(data.get("alarm")) is not int or not isinstance(data.get("source"), str):
            return _error(400, "expected {\"alarm\": number, \"source\": \"...\"}")
        try:
            _caller_door(door).acknowledge_alarm(data["alarm"], data["source"])
        except api.Refused as exc:
            status_code, answer = _refused(exc)
            return _json(answer, status_code)
        return _json({"ok": True})

    @app.post("/api/counters/reset")
    def reset_counters():
        """{} for every device, {"address": n} for one: zero the communication counters."""
        data = _body()
        address = data.get("address") if data else None
        if data is None or (address is not None and (type(address) is not int or not 1 <= address <= 247)):
            return _error(400, "expected {} or {\"address\": 1..247}")
        try:
            _caller_door(door).reset_counters(address)
        except api.Refused as exc:
            status_code, answer = _refused(exc)
            return _json(answer, status_code)
        return _json({"ok": True})

    @app.post("/api/settings")
    @deferred
    async def change_settings():
        """{"name": value, ...}: every change valid and allowed, applied at once, or none (400/403)."""
        data = _body()
        caller_door = _caller_door(door)         # read the request before the first await
        if not data:
            return 400, {"error": "expected a JSON object of settings, e.g. {\"gateway.name\": \"M-70 A\"}"}
        try:
            await caller_door.set_settings(data)
        except api.Refused as exc:
            return _refused(exc)
        return 200, {"ok": True, "changed": sorted(data)}

    @app.post("/api/devices/<address:int>/<load:int>/<key>")
    @deferred
    async def write_value(address, load, key):
        """{"value": v}: write one measurement of a device (IO-10 outputs) through the door."""
        data = _body()
        caller_door = _caller_door(door)
        value = data.get("value") if data else None
        if type(value) not in (int, float):
            return 400, {"error": "expected {\"value\": number}"}
        try:
            written = await caller_door.write_value(address, load, key, value)
        except api.Refused as exc:
            return _refused(exc)
        return 200, {"ok": True, "value": written}

    @app.get("/api/files")
    def generated_files():
        return _json({"files": door.document_names()})

    @app.get("/api/files/<name>")
    def generated_file(name):
        """Generated documents (register map, MIB, EDE...) published by the services."""
        entry = door.document(name)
        if entry is None:
            return _error(404, "no generated file %r" % name)
        content_type, text = entry
        bottle.response.content_type = content_type
        bottle.response.set_header("Content-Disposition", "attachment; filename=\"%s\"" % name)
        return text

    @app.get("/")
    def index():
        return _static(files, "status.html")

    @app.get("/static/<name>")
    def static(name):
        return _static(files, name)

    if mount is not None:
        mount(app, jsonio)

    @app.error(404)
    def not_found(_err):
        return _error(404, "no such resource: %s" % bottle.request.path)

    @app.error(405)
    def not_allowed(_err):
        return _error(405, "method %s not allowed here" % bottle.request.method)

    return app
