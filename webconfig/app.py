"""The Bottle application: the read-only status API and page, detection control.

Handlers run on the daemon's loop (webconfig/server.py calls the WSGI app
inline), so they only read in-memory state or schedule work; they never
block. Documented in docs/status-api.md.
"""

import json
import mimetypes
import os

import bottle

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
MAX_JSON_BODY = 4096
# The page's assets change only with the software: a browser may keep them a
# few minutes (no validators are sent, so an upgrade shows within that time).
STATIC_CACHE_CONTROL = "max-age=300"


def _json(data, status=200):
    bottle.response.status = status
    bottle.response.content_type = "application/json"
    bottle.response.set_header("Cache-Control", "no-store")
    return json.dumps(data, separators=(",", ":"))


def _error(status, message):
    return _json({"error": message}, status)


def _body():
    """The request's JSON object, or None when absent/invalid."""
    raw = bottle.request.body.read(MAX_JSON_BODY + 1)
    if not raw:
        return {}
    if len(raw) > MAX_JSON_BODY:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


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


def make_app(gateway):
    app = bottle.Bottle()
    files = load_static()            # before the server starts: nothing touches the disk per request
    app.config["catchall"] = False   # errors reach the server: logged, short 500

    @app.get("/api/status")
    def status():
        return _json(gateway.status())

    @app.get("/api/discovery")
    def discovery_status():
        return _json(gateway.discovery.status())

    @app.post("/api/discovery")
    def discovery_start():
        body = _body()
        if body is None:
            return _error(400, "expected a JSON object such as {\"mode\": \"fast\"}")
        mode = body.get("mode", gateway.settings.get("discovery.mode"))
        if mode not in ("fast", "full"):
            return _error(400, "mode must be \"fast\" or \"full\"")
        if not gateway.discovery.start(mode):
            return _error(409, "a detection is already running")
        return _json(gateway.discovery.status(), 202)

    @app.get("/api/events")
    def events():
        return _json({"events": gateway.alarms.events()[-500:]})

    @app.get("/api/alarms")
    def active_alarms():
        """System alarms and the device alarms read from the meters, active now."""
        return _json({"system": gateway.alarms.active_list(), "devices": gateway.device_alarms.active_list()})

    @app.get("/api/files")
    def generated_files():
        return _json({"files": sorted(gateway.documents)})

    @app.get("/api/files/<name>")
    def generated_file(name):
        """Generated documents (register map, MIB, EDE...) registered by the services."""
        entry = gateway.documents.get(name)
        if entry is None:
            return _error(404, "no generated file %r" % name)
        content_type, render = entry
        bottle.response.content_type = content_type
        bottle.response.set_header("Content-Disposition", "attachment; filename=\"%s\"" % name)
        return render()

    @app.get("/")
    def index():
        return _static(files, "status.html")

    @app.get("/static/<name>")
    def static(name):
        return _static(files, name)

    if gateway.board.kind == "sim":
        _add_sim_routes(app, gateway)

    @app.error(404)
    def not_found(_err):
        return _error(404, "no such resource: %s" % bottle.request.path)

    @app.error(405)
    def not_allowed(_err):
        return _error(405, "method %s not allowed here" % bottle.request.method)

    return app


def _add_sim_routes(app, gateway):
    """Run-time control of the simulated meters (simulated board only)."""
    from board.sim import parse_netid

    def _sim_call(method, netid, **kwargs):
        """Call a SimBoard method on a meter: 404 for no such meter, 400 for a refused change."""
        try:
            method(parse_netid(netid), **kwargs)
        except KeyError as exc:
            return _error(404, str(exc).strip("'\""))
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        return _json({"ok": True})

    @app.get("/api/sim/meters")
    def sim_meters():
        out = []
        for bus, simbus in gateway.board.buses.items():
            for m in simbus.meters:
                out.append({"bus": bus, "reference": m.reference, "address": m.address, "netid": "%06X" % m.netid,
                            "silent": m.silent, "extra_delay": m.extra_delay, "crc_error_rate": m.crc_error_rate,
                            "outputs": m.outputs})
        return _json({"meters": out})

    @app.post("/api/sim/meters/<netid>")
    def sim_configure(netid):
        body = _body()
        if body is None:
            return _error(400, "expected a JSON object")
        allowed = {"silent": bool, "extra_delay": (int, float), "crc_error_rate": (int, float), "address": int,
                   "inputs": int}
        changes = {}
        for key, value in body.items():
            if key not in allowed or not isinstance(value, allowed[key]) or isinstance(value, bool) != (key == "silent"):
                return _error(400, "cannot set %r to %r" % (key, value))
            changes[key] = value
        if "crc_error_rate" in changes and not 0 <= changes["crc_error_rate"] <= 1:
            return _error(400, "crc_error_rate must be within 0..1")
        if "address" in changes and not 1 <= changes["address"] <= 247:
            return _error(400, "address must be within 1..247")
        if "inputs" in changes and not 0 <= changes["inputs"] <= 0xFF:
            return _error(400, "inputs is a bit field within 0..255")
        return _sim_call(gateway.board.configure_meter, netid, **changes)

    @app.post("/api/sim/meters/<netid>/alarms")
    def sim_alarms(netid):
        """Configure a meter's alarms: {"alarms": [{slot, load, key, op, threshold, criticality}],
        "logical_inputs": [n, ...]} (either may be left out)."""
        body = _body()
        if body is None or not set(body) <= {"alarms", "logical_inputs"}:
            return _error(400, "expected {\"alarms\": [...], \"logical_inputs\": [...]}")
        alarms, inputs = body.get("alarms"), body.get("logical_inputs")
        if alarms is not None and not (isinstance(alarms, list) and all(isinstance(a, dict) for a in alarms)):
            return _error(400, "alarms must be a list of objects")
        if inputs is not None and not (isinstance(inputs, list) and all(type(n) is int for n in inputs)):
            return _error(400, "logical_inputs must be a list of input numbers")
        return _sim_call(gateway.board.configure_alarms, netid, alarms=alarms, logical_inputs=inputs)

    @app.post("/api/sim/meters/<netid>/events")
    def sim_event(netid):
        """A power-quality event or a device alarm happens now: {kind, index, load, key, value,
        duration_ms, start, criticality}."""
        body = _body()
        if body is None or not isinstance(body.get("kind"), str) or type(body.get("index")) is not int:
            return _error(400, "expected {\"kind\": \"power_quality\"|\"device\", \"index\": n, ...}")
        fields = {"kind": str, "index": int, "load": int, "key": str, "value": (int, float),
                  "duration_ms": int, "start": bool, "criticality": str}
        for key, value in body.items():
            if key not in fields or not isinstance(value, fields[key]) or \
                    (isinstance(value, bool) and fields[key] is not bool):
                return _error(400, "cannot use %r = %r" % (key, value))
        return _sim_call(gateway.board.inject_event, netid, **body)

    @app.post("/api/sim/button")
    def sim_button():
        body = _body()
        held = body.get("held_s") if body else None
        if not isinstance(held, (int, float)) or isinstance(held, bool) or not 0 <= held <= 60:
            return _error(400, "expected {\"held_s\": seconds}")
        gateway.board.press_button(float(held))
        return _json({"ok": True}, 202)
