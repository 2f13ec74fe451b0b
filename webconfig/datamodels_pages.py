"""The Data models page (WEBVIEW-L §8.2.1, §8.4: generic Modbus devices, issue 18) and its JSON API.

``GET /api/datamodels``: the models (rows, the devices using them) and what the forms offer (encodings,
functions, word orders, standard names with their units, limits, buses). ``POST /api/datamodels``
(``{"model": {name, rows}, "replacing": name or null}``), ``POST /api/datamodels/delete`` (``{"name"}``),
``POST /api/datamodels/import`` (``{"name", "csv", "replace"}``: a refused import answers one message per
CSV line at fault, each with its ``line``, and imports nothing), ``GET /api/datamodels/export?name=``
(``{"file", "csv"}``). ``POST /api/devices/generic`` adds a generic device (RTU: bus + address + model;
TCP: host + port + unit + address + model): the Devices page's form (static/devices.js), which this page links
to. ``GET /api/devices/generic/<address>``: every value of a generic device's model with unit, quality and age
(the model's own names too: the web shows them here, in the Devices list and on Monitor; no protocol does).
The page ``/datamodels`` (static/datamodels.*) is Admin's and Cyber Security's.
"""

import bottle

from daemon import api, i18n
from webconfig import auth, settings_pages
from webconfig.customisation import serve_page
from webconfig.jsonio import body as _body, deferred

COMMAND = "edit_data_models"
READ = "read_data_models"


def _refused(exc, language):
    """The door's refusal with each message's CSV ``line`` (and row) kept and said."""
    status, answer = auth.refusal(exc.reason, language, str(exc), exc.details)
    details = [d for d in exc.details if isinstance(d, dict) and isinstance(d.get("key"), str)]
    for message, found in zip(answer.get("messages", []), details, strict=False):
        for where in ("line", "row"):
            if where in found:
                message[where] = found[where]
                message["message"] = i18n.text("generic.%s_prefix" % where, language, n=found[where]) + \
                    message["message"]
    return status, answer


async def _run(language, command, *args):
    try:
        return 200, {"ok": True, "result": await command(*args)}
    except api.Refused as exc:
        return _refused(exc, language)


def _bad(language, example):
    return auth.refusal("bad_request", language, "expected a JSON object such as %s" % example)


def mount(app, door, static):
    """Add the page and its routes to ``app`` over the door; ``static(name)`` serves an asset."""
    serve_page(app, door, static, "/datamodels", COMMAND, "datamodels.html", settings_pages._refusal_page)

    @app.get("/api/datamodels", access="read", command=READ)
    def models():
        return auth.door_reply(lambda bound: {"models": bound.data_models(), "catalogue": bound.data_model_catalogue(),
                                              "generic": [d.as_dict() for d in bound.devices() if d.model is not None],
                                              "time": bound.time()})

    @app.post("/api/datamodels", access="command", command=COMMAND)
    @deferred
    async def save():
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None or not isinstance(data.get("model"), dict):
            return _bad(language, '{"model": {"name": "PM8000", "rows": [...]}, "replacing": null}')
        return await _run(language, bound.save_data_model, data["model"], data.get("replacing"))

    @app.post("/api/datamodels/delete", access="command", command=COMMAND)
    @deferred
    async def delete():
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None or not isinstance(data.get("name"), str):
            return _bad(language, '{"name": "PM8000"}')
        return await _run(language, bound.delete_data_model, data["name"])

    @app.post("/api/datamodels/import", access="command", command=COMMAND)
    @deferred
    async def import_csv():
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None or not isinstance(data.get("csv"), str) or not isinstance(data.get("name"), str):
            return _bad(language, '{"name": "PM8000", "csv": "name;frame;...", "replace": false}')
        return await _run(language, bound.import_data_model, data["name"], data["csv"], bool(data.get("replace")))

    @app.get("/api/datamodels/export", access="read", command=READ)
    def export():
        name = (bottle.request.query.getunicode("name") or "")[:64]
        return auth.door_reply(lambda bound: dict(zip(("file", "csv"), bound.export_data_model(name), strict=True)))

    @app.post("/api/devices/generic", access="command", command="edit_topology")
    @deferred
    async def add_generic():
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None:
            return _bad(language, '{"link": "tcp", "host": "10.0.0.5", "port": 502, "unit": 1, "address": 60, '
                                  '"model": "PM8000", "name": "Chiller"}')
        return await _run(language, bound.add_generic_device, data)

    @app.get("/api/devices/generic/<address:int>", access="read", command=READ)
    def values(address):
        return auth.door_reply(lambda bound: bound.generic_values(address))

    return app
