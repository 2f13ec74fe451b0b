"""The Home page (``GET /home``, the WEBVIEW-M manual §8.1): where a signed-in reader lands after the login.

The page is the menu of the data views (Monitor, Alarms and events, Photoview;
Consumption, Trends), the configuration pages its profile may open, the
active-alarm shortcut and Log off. It reads only what exists: the links from
``GET /api/pages`` (webconfig/navigation.py), the live figures from
``GET /api/status``; so it needs no route of its own beyond the page.
``view_gate`` is shared with the other data views: they are for any
signed-in profile, and a reader without a session is sent to the login page
before any HTML is drawn (the page's script would do the same, later).
"""

import bottle

from daemon import api
from webconfig import auth


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


def mount(app, door, static):
    """Add ``GET /home`` to ``app`` over the door (bound to User); ``static(name)`` serves an asset."""

    @app.get("/home", access="public")
    def home_page():
        return view_gate(door, "home.html", static)

    return app
