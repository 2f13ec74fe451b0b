"""The left pane the data views share (WEBVIEW-M manual §7, issue 17): the navigation tree of one organisation.

``GET /api/views/tree?by=area|usage|fluid`` groups the topology's devices and their loads as the manual's
*Organisation* heading does (Monitor and Trends: area, usage, fluid; Consumption adds its hierarchies): each
group with its label in the reader's language and its number of loads, each device with its reference, state
and loads (name, usage, fluid). Devices without loads (a U-30 network module, an IO module) stay under their
area; by usage or fluid they are listed under "no load" so the Monitor can still reach them. The time period
and the name filter are the browser's (static/pane.js): nothing here depends on them.
"""

import bottle

from daemon import i18n
from webconfig import auth
from webconfig.jsonio import reply as _json

ORGANISATIONS = ("area", "usage", "fluid")
NO_AREA, NO_LOAD = "", "-"


def _usage_names(door, language):
    return dict((u["key"], u["name"] if u["custom"] else i18n.text(u["label"], language))
                for u in door.devices_catalogue()["usages"])


def _group_label(by, key, language, usage_names):
    if key == NO_LOAD:
        return i18n.text("web.pane.no_load", language)
    if by == "area":
        return key or i18n.text("web.pane.no_area", language)
    if by == "usage":
        return usage_names.get(key, key)
    return i18n.text("web.fluid." + key, language)


def tree(door, by, language):
    """{by, groups: [{key, label, loads, devices: [{address, name, reference, status, loads: [...]}]}]}."""
    usage_names = _usage_names(door, language)
    sources = dict((row["address"], row) for row in door.sources() if not row["gateway"])
    circuits = {}
    for circuit in door.circuits():
        circuits.setdefault(circuit["address"], []).append(circuit)
    groups = {}
    for address, source in sources.items():
        loads = circuits.get(address, [])
        if by == "area" or not loads:
            keyed = {(source["area"] or NO_AREA) if by == "area" else NO_LOAD: loads}
        else:
            keyed = {}
            for circuit in loads:
                keyed.setdefault(circuit[by], []).append(circuit)
        for key, members in keyed.items():
            group = groups.setdefault(key, {"key": key, "loads": 0, "devices": []})
            group["loads"] += len(members)
            group["devices"].append({
                "address": address, "name": source["name"], "reference": source["reference"],
                "status": source["status"], "age_s": source["age_s"],
                "loads": [{"load": c["load"], "name": c["name"] or i18n.text("web.pane.load", language, n=c["load"]),
                           "usage": usage_names.get(c["usage"], c["usage"]),
                           "fluid": i18n.text("web.fluid." + c["fluid"], language)} for c in members]})
    ordered = sorted(groups.values(), key=lambda g: (g["key"] in (NO_AREA, NO_LOAD), g["key"]))
    for group in ordered:
        group["label"] = _group_label(by, group["key"], language, usage_names)
        group["devices"].sort(key=lambda d: d["address"])
    return {"by": by, "groups": ordered}


def mount(app, door):
    """Add GET /api/views/tree to ``app`` over the door."""

    @app.get("/api/views/tree", access="read")
    def views_tree():
        language = auth.language()
        by = bottle.request.query.get("by") or "area"
        if by not in ORGANISATIONS:
            status, answer = auth.refusal("bad_request", language, "by must be one of %s" % ", ".join(ORGANISATIONS))
            return _json(answer, status)
        return _json(tree(auth.door(), by, language))

    return app
