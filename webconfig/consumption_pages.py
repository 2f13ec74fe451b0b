"""The Consumption page (WEBVIEW-M manual §8.5, issue 17) and the one route behind it, over the door.

``GET /api/consumption?circuits=4:1,4:2|hierarchy=h1&node=1 &from=&to=&step=month|week|day|hour|period
[&data=ea_pos]``: the energy of the selected loads summed by the gateway in one grid of local-time buckets
(``Door.consumption``): each load's sums and qualities, a hierarchy node's children plus its non-measured point,
named in the reader's language. A malformed query is refused with a 400 saying what was expected. Every
profile reads it (``read_consumption``). The page ``/consumption`` (static/consumption.*) draws the bars that
drill down, the pie and the table, and writes the CSV of what it shows itself (it holds exactly that).
"""

import re

import bottle

from daemon import api, i18n
from webconfig import auth, home_pages
from webconfig.jsonio import deferred

MAX_QUERY = 4096                     # characters of the circuits parameter (256 "address:load" fit)
CIRCUIT = re.compile(r"^\d{1,3}:\d{1,3}$")
EXPECTED = ("expected ?circuits=<address:load,...> or ?hierarchy=<id>&node=<item>, with &from=<Unix s>&to=<Unix s>"
            "&step=%s[&data=%s]" % ("|".join(api.CONSUMPTION_STEPS), "|".join(api.CONSUMPTION_KEYS)))


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _selection(query):
    """{"circuits": [...]} or {"hierarchy", "node"} from the query, or None when it is neither."""
    raw, hierarchy = query.get("circuits"), query.get("hierarchy")
    if (raw is None) == (hierarchy is None):
        return None
    if hierarchy is not None:
        node = _int(query.get("node"))
        return {"hierarchy": hierarchy, "node": node} if node is not None and len(hierarchy) <= 40 else None
    circuits = raw.split(",")
    if len(raw) > MAX_QUERY or not all(CIRCUIT.match(c) for c in circuits):
        return None
    return {"circuits": circuits}


def _named(answer, language):
    """The loads' names in the reader's language: a load without a name is "Load n", the non-measured point."""
    for load in answer["loads"]:
        if load["kind"] == "unmeasured":
            load["name"] = i18n.text("web.consumption.unmeasured", language)
        elif load["kind"] == "circuit" and not load["name"]:
            load["name"] = (i18n.text("web.pane.load", language, n=load["load"]) if load["load"] is not None
                            else load["circuit"])
    node = answer.get("node")
    if node and node["meter"] and not node["meter_name"]:
        node["meter_name"] = node["meter"]
    return answer


def mount(app, door, static):
    """Add the Consumption page and its route to ``app`` over the door; ``static(name)`` serves an asset."""

    @app.get("/consumption", access="public")
    def consumption_page():
        return home_pages.view_gate(door, "consumption.html", static)      # a live session, else the login page

    @app.get("/api/consumption", access="read", command="read_consumption")
    @deferred
    async def consumption():
        bound, language, query = auth.door(), auth.language(), bottle.request.query
        selection, start, end = _selection(query), _int(query.get("from")), _int(query.get("to"))
        step, key = query.get("step") or "", query.get("data") or "ea_pos"
        if selection is None or start is None or end is None:
            return auth.refusal("bad_request", language, EXPECTED)
        try:
            return 200, _named(await bound.consumption(selection, start, end, step, key), language)
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)

    return app
