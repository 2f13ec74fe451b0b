"""The Devices pages (SPEC §7.2, WEBVIEW-M §9.6): Sources, Circuits, Usages — their JSON API and the page.

Mounted by ``webconfig/app.py`` (``mount(app, door, static)``). Everything
here is configuration: every route, reads included, needs the
``edit_topology`` right (Admin, Cyber Security) checked before the handler
(``access="command"``), and the door checks each command again. ``/api/status``
stays what User reads. A form's refusal is 400 with one message per field in
the caller's language (``auth.refusal`` of the door's details); a refused
change changes nothing (``Topology.replace`` is all or nothing).

Routes: ``GET /api/devices/sources`` (the gateway's row first, then each
device with its communication state and ages, the forms' choices and the
detection's state), ``POST /api/devices/sources`` (add by hand),
``POST /api/devices/sources/<address>`` (edit), a generic Modbus device (issue 18) is added through
``POST /api/devices/generic`` (webconfig/datamodels_pages.py, ``Door.add_generic_device``) and listed here with
its values, ``POST /api/devices/sources/delete``
(``{"addresses": [...]}``), ``POST /api/devices/sources/refresh``
(``{"addresses": [...]}`` or ``{}`` for all); detection and synchronisation are
``POST /api/discovery`` (``app.py``). ``GET/POST /api/devices/circuits``;
``GET /api/devices/usages``, ``POST /api/devices/usages`` (add),
``POST /api/devices/usages/<key>`` (rename), ``POST /api/devices/usages/<key>/delete``.
The pages ``/devices/sources``, ``/devices/circuits``, ``/devices/usages`` are one
page (devices.html) that draws the view its path names.
"""

from daemon import api, i18n
from webconfig import auth, settings_pages
from webconfig.customisation import serve_page
from webconfig.jsonio import MAX_JSON_BODY, body as _body, deferred, reply as _json

COMMAND = "edit_topology"
VIEWS = ("sources", "circuits", "usages")


def _usage_rows(door, language):
    counts = door.usage_counts()
    return [{"key": u["key"], "custom": u["custom"], "in_use": counts.get(u["key"], 0),
             "name": u["name"] if u["custom"] else i18n.text(u["label"], language)}
            for u in door.devices_catalogue()["usages"]]


def _fluids(door, language):
    return [{"key": f, "name": i18n.text("web.fluid." + f, language)} for f in door.devices_catalogue()["fluids"]]


def _bad_body(language, example):
    return auth.refusal("bad_request", language, "expected a JSON object of at most %d bytes such as %s"
                        % (MAX_JSON_BODY, example))


def _with_generic(door, sources):
    """The Sources rows, a generic device's (issue 18) with its link, model and every value of its model with
    unit, quality and age (``Door.generic_values``): the list shows them, its own names included."""
    generic = dict((d.address, d) for d in door.devices() if d.model is not None)
    for row in sources:
        device = None if row["gateway"] else generic.get(row["address"])
        if device is not None:
            values = door.generic_values(device.address)["values"]
            row["generic"] = {"link": device.link, "model": device.model["name"],
                              "values": [dict((k, v[k]) for k in ("name", "standard", "value", "unit", "quality",
                                                                  "age_s")) for v in values]}
    return sources


async def _run(language, command, *args):
    """(status, answer) of a door command: 200 with its result, or the refusal in ``language``."""
    try:
        return 200, {"ok": True, "result": await command(*args)}
    except api.Refused as exc:
        return auth.refusal(exc.reason, language, str(exc), exc.details)


def mount(app, door, static):
    """Add the Devices routes to ``app`` over the door (bound to User); ``static(name)`` serves an asset."""

    for view in VIEWS:          # Admin / Cyber Security; the login page without a session, the 403 page for others
        serve_page(app, door, static, "/devices/" + view, COMMAND, "devices.html", settings_pages._refusal_page)

    # ---------------------------------------------------------------- Sources

    @app.get("/api/devices/sources", access="command", command=COMMAND)
    def sources():
        bound = auth.door()
        catalogue = bound.devices_catalogue()
        return _json({"sources": _with_generic(bound, bound.sources()), "products": catalogue["products"],
                      "buses": catalogue["buses"],
                      "max_name": catalogue["max_name"], "address_range": catalogue["address_range"],
                      "limits": catalogue["limits"], "discovery": bound.discovery_status(),
                      "detection": {"mode": bound.setting("discovery.mode"),
                                    "first": bound.setting("discovery.first_address"),
                                    "last": bound.setting("discovery.last_address")},
                      "time": bound.time()})

    @app.post("/api/devices/sources", access="command", command=COMMAND)
    @deferred
    async def add_source():
        """{bus, address, reference, name, area[, netid, serial]}: a device added by hand."""
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None:
            return _bad_body(language, '{"reference": "I-35", "address": 7, "name": "Floor 2"}')
        return await _run(language, bound.add_device, data)

    @app.post("/api/devices/sources/<address:int>", access="command", command=COMMAND)
    @deferred
    async def edit_source(address):
        """{name, area, address, bus} (any of them): the device at ``address`` changed."""
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None:
            return _bad_body(language, '{"name": "Floor 2", "area": "Building A"}')
        return await _run(language, bound.edit_device, address, data)

    @app.post("/api/devices/sources/delete", access="command", command=COMMAND)
    @deferred
    async def delete_sources():
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None or "addresses" not in data:
            return _bad_body(language, '{"addresses": [7, 8]}')
        return await _run(language, bound.delete_devices, data["addresses"])

    @app.post("/api/devices/sources/refresh", access="command", command=COMMAND)
    @deferred
    async def refresh_sources():
        """{"addresses": [n...]} or {} for every device: their identification read again."""
        bound, language, data = auth.door(), auth.language(), _body()
        addresses = data.get("addresses") if data else None
        if data is None or (addresses is not None and not (
                isinstance(addresses, list) and 0 < len(addresses) <= 64 and all(type(a) is int for a in addresses))):
            return _bad_body(language, '{"addresses": [7]} or {}')
        return await _run(language, bound.refresh_devices, addresses)

    # ---------------------------------------------------------------- Circuits

    @app.get("/api/devices/circuits", access="command", command=COMMAND)
    def circuits():
        bound, language = auth.door(), auth.language()
        return _json({"circuits": bound.circuits(), "fluids": _fluids(bound, language),
                      "usages": _usage_rows(bound, language), "max_name": bound.devices_catalogue()["max_name"]})

    @app.post("/api/devices/circuits", access="command", command=COMMAND)
    @deferred
    async def edit_circuits():
        """{"loads": [{"address", "load"}...], "name" | "name_pattern", "fluid", "usage"}."""
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None:
            return _bad_body(language, '{"loads": [{"address": 5, "load": 1}], "usage": "Heating"}')
        return await _run(language, bound.edit_circuits, data)

    # ---------------------------------------------------------------- Usages

    @app.get("/api/devices/usages", access="command", command=COMMAND)
    def usages():
        bound, language = auth.door(), auth.language()
        return _json({"usages": _usage_rows(bound, language), "max_name": bound.devices_catalogue()["max_name"]})

    @app.post("/api/devices/usages", access="command", command="edit_usages")
    @deferred
    async def add_usage():
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None or "name" not in data:
            return _bad_body(language, '{"name": "Cold rooms"}')
        return await _run(language, bound.add_usage, data["name"])

    @app.post("/api/devices/usages/<key>", access="command", command="edit_usages")
    @deferred
    async def rename_usage(key):
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None or "name" not in data:
            return _bad_body(language, '{"name": "Cold rooms"}')
        return await _run(language, bound.rename_usage, key, data["name"])

    @app.post("/api/devices/usages/<key>/delete", access="command", command="edit_usages")
    @deferred
    async def delete_usage(key):
        bound, language = auth.door(), auth.language()
        return await _run(language, bound.delete_usage, key)

    return app
