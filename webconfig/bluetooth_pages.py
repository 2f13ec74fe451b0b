"""The Bluetooth page (SPEC §7.2 Protocols > Bluetooth, issue 18): Admin and Cyber Security.

``GET /api/bluetooth``: the scan's state (policy, activation, running, the radio's error), what it heard (each
sensor's format, values with their age and quality, or the reason its frames are refused; signal, last heard)
and the sources (the status carries the values' units); the page polls it every 3 s. ``POST /api/bluetooth/sources``
``{"address", "name", "area"}`` adds a heard sensor as a source, ``POST /api/bluetooth/sources/remove``
``{"address"}`` removes one; a refusal comes back in the reader's language, one message per refused field.
Rights ``read_bluetooth`` / ``edit_bluetooth_sources``; the door checks again.
"""

from daemon import api
from webconfig import auth
from webconfig.customisation import serve_page
from webconfig.jsonio import body as _body, deferred

PATH = "/bluetooth"
MAX_BODY_TEXT = 64           # a field longer than this is refused before the door (names are 32 at most)


def _text_fields(data, names):
    """{name: text} of a JSON object whose fields are exactly ``names``, each short text; else None."""
    if not isinstance(data, dict) or set(data) != set(names):
        return None
    if not all(isinstance(data[n], str) and len(data[n]) <= MAX_BODY_TEXT for n in names):
        return None
    return dict((n, data[n]) for n in names)


def mount(app, door, static):
    """Add the Bluetooth page and its routes to ``app`` over the door; ``static(name)`` serves an asset."""
    serve_page(app, door, static, PATH, "read_bluetooth", "bluetooth.html")

    @app.get("/api/bluetooth", access="command", command="read_bluetooth")
    def state():
        def read(bound):
            return {"status": bound.bluetooth_status(), "heard": bound.bluetooth_heard(),
                    "sources": bound.bluetooth_sources(),
                    "may_edit": _may(bound, "edit_bluetooth_sources")}
        return auth.door_reply(read)

    @app.post("/api/bluetooth/sources", access="command", command="edit_bluetooth_sources")
    @deferred
    async def add():
        bound, language = auth.door(), auth.language()
        data = _text_fields(_body(), ("address", "name", "area"))
        if data is None:
            return auth.refusal("bad_request", language, "expected {\"address\": \"A4:C1:38:8D:18:B2\", "
                                "\"name\": \"Cold room\", \"area\": \"Basement\"}")
        try:
            return 200, {"ok": True, "source": await bound.add_bluetooth_source(data["address"], data["name"],
                                                                                data["area"])}
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)

    @app.post("/api/bluetooth/sources/remove", access="command", command="edit_bluetooth_sources")
    @deferred
    async def remove():
        bound, language = auth.door(), auth.language()
        data = _text_fields(_body(), ("address",))
        if data is None:
            return auth.refusal("bad_request", language, "expected {\"address\": \"A4:C1:38:8D:18:B2\"}")
        try:
            await bound.remove_bluetooth_source(data["address"])
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        return 200, {"ok": True}

    return app


def _may(bound, command):
    try:
        bound.check(command)
    except api.Refused:
        return False
    return True
