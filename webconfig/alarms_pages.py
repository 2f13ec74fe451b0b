"""The Alarms and events page's routes (SPEC §6, §7.3; WEBVIEW-M manual §8.3; issue 17).

Every profile reads the page (the event log is what User already reads: the ``export_events`` right). The
filtering and paging happen on the gateway: ``GET /api/alarms/log`` takes the period and filters as query
parameters and answers one bounded page of occurrences (daemon/state/alarmlog.py through the door, in the
executor); ``GET /api/alarms/export`` with the same parameters answers the ZIP of CSV files of everything that
passes them. Acknowledging is app.py's ``POST /api/alarms/acknowledge`` (``acknowledge_alarm``: Advanced,
Totem, Admin, Cyber Security), which refuses others with the catalogue's message.
"""

import bottle

from daemon import api
from daemon.security import rights
from webconfig import auth
from webconfig.customisation import page_gate
from webconfig.jsonio import deferred, encode
from webconfig.server import DEFERRED

PARAMETERS = ("from", "to", "type", "status", "category", "criticality", "source", "page", "size")


def _params():
    """The request's period, filters and paging as texts (the door checks them)."""
    return dict((name, (bottle.request.query.getunicode(name) or "").strip()) for name in PARAMETERS)


def mount(app, door, static):
    """Add the page and its two reads to ``app`` over the door (bound to User); ``static(name)`` serves an asset."""

    @app.get("/alarms", access="public")
    def alarms_page():
        return page_gate(door, "export_events", "alarms.html", static)

    @app.get("/api/alarms/log", access="read", command="export_events")
    @deferred
    async def alarm_log():
        """One page of the occurrences that pass the filters, newest first, and who may acknowledge."""
        bound, params, language = auth.door(), _params(), auth.language()
        try:
            answer = await bound.alarm_occurrences(params)
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        answer["acknowledge_profiles"] = list(rights.COMMANDS["acknowledge_alarm"][0])
        return 200, answer

    @app.get("/api/alarms/export", access="read", command="export_events")
    def alarm_export():
        """A ZIP (alarms.csv, events.csv) of every occurrence that passes the filters (paging ignored)."""
        bound, params, language = auth.door(), _params(), auth.language()

        async def answer():
            try:
                name, payload = await bound.alarm_export(params)
            except api.Refused as exc:
                return _json_answer(*auth.refusal(exc.reason, language, str(exc), exc.details))
            return "200 OK", [("Content-Type", "application/zip"), ("Cache-Control", "no-store"),
                              ("Content-Disposition", "attachment; filename=\"%s\"" % name)], payload
        bottle.request.environ[DEFERRED] = answer()
        return b""

    return app


def _json_answer(status, data):
    return ("%d %s" % (status, bottle.HTTP_CODES.get(status, "Unknown")),
            [("Content-Type", "application/json"), ("Cache-Control", "no-store")], encode(data).encode("utf-8"))
