"""The Diagnosis page's routes (SPEC §7.2, issue 14): gateway status, device counters, reboot, syslog export.

Mounted by ``webconfig/app.py`` (``mount(app, page)``). Every profile sees
diagnostics (SPEC §7.1: User too), so the page and its JSON are reads; the
commands are checked by the door as every other one: resetting counters is
the existing ``POST /api/counters/reset``, a reboot needs the ``reboot``
right (Admin, Cyber Security), the syslog export ``export_events``. What the
page offers a profile comes from the same rights table
(``GET /api/diagnosis/rights``), never from a list of its own.
Documented in docs/status-api.md.
"""

import bottle

from daemon import api
from daemon.blocking import BlockingQueueFull, run_blocking
from daemon.security.rights import Caller
from webconfig import auth, syslogfile
from webconfig.jsonio import deferred, reply
from webconfig.server import DEFERRED

PAGE_COMMANDS = ("reset_counters", "reboot", "export_events")     # what the page's buttons need
WEB_SERVICE = {"enabled": True, "running": True, "error": None}   # it is answering this request


def _caller():
    """The Caller of this request's session (User without a live one, or while its password must change)."""
    sid = auth.session_id()
    if sid:
        try:
            return auth.door().session_caller(sid, auth.peer())
        except api.Refused:
            pass
    return Caller("web", "user", auth.peer())


def may(door, command):
    try:
        door.check(command)
    except api.Refused:
        return False
    return True


async def _syslog_file(door, hostname):
    """The WSGI answer (status, headers, bytes) of the export: the whole event log, rendered off the loop."""
    records = door.events(None)
    now = door.time()
    try:
        payload = await run_blocking(syslogfile.render, records, hostname)
    except BlockingQueueFull:
        payload = b'{"error":"the gateway is busy, try again","reason":"busy"}'
        return "409 Conflict", [("Content-Type", "application/json"), ("Cache-Control", "no-store")], payload
    headers = [("Content-Type", "text/plain; charset=us-ascii"), ("Cache-Control", "no-store"),
               ("Content-Disposition", "attachment; filename=\"%s\"" % syslogfile.file_name(now))]
    return "200 OK", headers, payload


def mount(app, page):
    """Add the routes to ``app``; ``page(name)`` answers one of the static pages."""

    @app.get("/diagnosis", access="public")
    def diagnosis_page():
        return page("diagnosis.html")

    @app.get("/api/diagnosis", access="read")
    @deferred
    async def diagnosis():
        """Gateway status, services, loop lag, storage, device counters; the board's load figures with their
        time (``system.quality`` "unavailable" when they could not be read now)."""
        door = auth.door()
        answer = door.diagnosis()
        answer["gateway"]["ip"] = bottle.request.environ.get("SERVER_NAME")
        answer["services"]["web"] = dict(WEB_SERVICE)
        try:
            answer["system"] = dict(await door.system_load(), quality="good")
        except api.Refused as exc:
            answer["system"] = {"quality": "unavailable", "error": str(exc)}
        return 200, answer

    @app.get("/api/diagnosis/rights", access="public")
    def rights():
        """The profile this page acts as and which of its commands it may run (the door's rights table)."""
        caller = _caller()
        door = auth.door().as_caller(caller)
        return reply({"profile": caller.profile, "may": dict((c, may(door, c)) for c in PAGE_COMMANDS)})

    @app.get("/api/events/syslog", access="read", command="export_events")
    def export_events():
        """The event log as an RFC 5424 syslog file, downloaded as m70-events-<date>.log."""
        door = auth.door()
        bottle.request.environ[DEFERRED] = _syslog_file(door, door.setting("gateway.name"))
        return b""

    @app.post("/api/reboot", access="command", command="reboot")
    @deferred
    async def reboot():
        """{}: restart the gateway (Daemon.reboot: the daemon on a Pi, the services on the simulated board)."""
        door, language = auth.door(), auth.language()
        try:
            done = await door.reboot()
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        return 202, dict(done, ok=True)
