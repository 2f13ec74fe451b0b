"""The Home page (``GET /home``, the WEBVIEW-M manual §8.1): where a signed-in reader lands after the login.

The page is the menu of the data views (Monitor, Alarms and events, Photoview;
Consumption, Trends), the configuration pages its profile may open, the
active-alarm shortcut and Log off. Its links are ``GET /api/pages``'
(webconfig/navigation.py); its live figures ``GET /api/home``'s, a summary
(alarm counts, devices' states and ages: ``Door.home_summary``) polled every
2 s: ``GET /api/status`` would carry every value of every device for them
(67 KB and ~11 ms of the loop per answer on the 8-device demo site). The
summary itself (~2 ms there: every device's state reads its cache rows) is
built at most once a second, whatever the number of pages open.
``view_gate`` is shared with the other data views: they are for any
signed-in profile, and a reader without a session is sent to the login page
before any HTML is drawn (the page's script would do the same, later).
"""

import time

import bottle

from daemon import api
from webconfig import auth
from webconfig.jsonio import reply as _json


def view_gate(door, page, static):
    """``page`` (a static file name) for a live session; 303 to the login page without one, or while its
    password must change (the door refuses that session). The page's JSON routes check again."""
    sid = auth.session_id()
    try:
        caller = door.session_caller(sid, auth.peer()) if sid else None
    except api.Refused:
        caller = None
    if caller is None:
        bottle.response.status = 303
        bottle.response.set_header("Location", "/login")
        bottle.response.set_header("Cache-Control", "no-store")
        return ""
    answer = static(page)
    bottle.response.set_header("Cache-Control", "no-store")     # a page behind a session is never kept
    return answer


SUMMARY_REUSE_S = 1.0        # an answer of GET /api/home serves the requests of the next second too


class Summary:
    """``Door.home_summary()``, built again only when the last one is SUMMARY_REUSE_S old (every Home page polls)."""

    def __init__(self, door, clock=time.monotonic):
        self.door, self.clock = door, clock
        self.built, self.answer = None, None

    def get(self):
        now = self.clock()
        if self.built is None or not 0 <= now - self.built < SUMMARY_REUSE_S:
            self.answer, self.built = self.door.home_summary(), now
        return self.answer


def mount(app, door, static):
    """Add ``GET /home`` to ``app`` over the door (bound to User); ``static(name)`` serves an asset."""

    summary = Summary(door)

    @app.get("/home", access="public")
    def home_page():
        return view_gate(door, "home.html", static)

    @app.get("/api/home", access="read")
    def home_summary():
        """{gateway: {name, time}, alarms: {criticality: count}, devices: [{address, bus, reference, name,
        status, age_s}]}: what any reader may see on the status page, without the values."""
        return _json(summary.get())

    return app
