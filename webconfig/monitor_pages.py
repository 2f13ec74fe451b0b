"""The Monitor page (WEBVIEW-M manual §8.2, SPEC §7.3): its route and its live JSON document.

``GET /monitor`` (``?address=N&load=L`` opens that device or load: the photoview and home link to it) is
static/monitor.html with the shared left pane (static/pane.js). ``GET /api/monitor/<address>?load=L&since=V``
is what User reads (``access="read"``): the document of webconfig/monitor_view.py, answered at once without
``since`` (or when the values moved on since that version), else when the pollers store the next batch
(webconfig/monitor_live.py: a bounded long-poll). The outputs are switched through the existing
``POST /api/devices/<address>/<load>/<key>`` (right ``write_value``: Admin and Cyber Security, and only while
the policy allows writes to devices); ``GET /api/monitor/may-write`` tells the page whether its session may,
and why not.
"""

import bottle

from daemon import api, i18n
from webconfig import auth, monitor_live, monitor_view
from webconfig.jsonio import deferred, reply as _json

MAX_VERSION = 2 ** 53        # what a browser's number keeps exactly
RETRY_S = 2                  # the page waits this long after a refusal for too many waiters


def _int_query(name, low, high):
    """An integer query parameter within low..high, None when absent; ValueError when malformed."""
    text = bottle.request.query.get(name)
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 16 or not low <= int(text) <= high:
        raise ValueError(name)
    return int(text)


def mount(app, door, static):
    """Add the Monitor's page and API to ``app`` over the door (bound to User); ``static(name)`` serves an asset."""
    live = monitor_live.LiveValues(door)
    app.monitor_live = live              # the bench reads its counters

    @app.get("/monitor", access="public")
    def page():
        return static("monitor.html")

    @app.get("/api/monitor/may-write", access="session")
    def may_write():
        """Whether this session's profile may switch outputs now (asked once by the page: the long-poll is User's
        and never looks the session up, so an open Monitor page does not keep a session alive)."""
        try:
            caller = door.session_caller(auth.session_id(), auth.peer())
        except api.Refused as exc:
            status, answer = auth.refused(exc)
            return _json(answer, status)
        return _json(monitor_view.may_write(door.as_caller(caller)))

    @app.get("/api/monitor/<address:int>", access="read")
    @deferred
    async def values(address):
        """The document of one device's load (its first load without ``load``; 0: a device without loads)."""
        bound, language = auth.door(), auth.language()
        try:
            load = _int_query("load", 0, 255)
            since = _int_query("since", 0, MAX_VERSION)
        except ValueError as exc:
            return auth.refusal("bad_request", language, "%s must be a whole number" % exc)
        try:
            await live.wait(address, load, since)
        except monitor_live.Full:
            return 503, {"error": i18n.text("web.monitor.busy", language), "reason": "busy", "retry_s": RETRY_S}
        document = monitor_view.document(bound, address, load, 0, labels=since is None)
        if document is None:
            return 404, {"error": i18n.text("web.monitor.no_device", language), "reason": "not_found"}
        document["version"] = live.version(address, document["load"])
        return 200, document

    return app
