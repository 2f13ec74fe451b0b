"""The left pane the data views share (WEBVIEW-M manual §7, issue 17): the navigation tree of one organisation.

``GET /api/views/tree?by=area|usage|fluid|hierarchy`` groups the topology's devices and their loads as the manual's
*Organisation* heading does (Monitor and Trends: area, usage, fluid; Consumption adds its hierarchies): each
group with its label in the reader's language and its number of loads, each device with its reference, state
and loads (name, usage, fluid). Devices without loads (a U-30 network module, an IO module) stay under their
area; by usage or fluid they are listed under "no load" so the Monitor can still reach them. The time period
and the name filter are the browser's (static/pane.js): nothing here depends on them.
By hierarchy (the Consumption page, manual §9.7) each hierarchy is a group whose ``nodes`` is its tree: nodes
(with their meter), circuits (named as their load) and links to sub-hierarchies, in the hierarchy's order.
"""

import bottle

from daemon import api, i18n
from webconfig import auth
from webconfig.jsonio import reply as _json

ORGANISATIONS = ("area", "usage", "fluid", "hierarchy")
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


def _hierarchy_tree(door, language):
    """Each hierarchy a group: {key, label, fluid, loads (its circuits), nodes: the main node's tree}."""
    names = {}
    for c in door.circuits():
        names["%d:%d" % (c["address"], c["load"])] = (c["name"] or i18n.text("web.pane.load", language, n=c["load"]),
                                                      c["device"])
    doc = door.hierarchies()["hierarchies"]
    titles = dict((h["id"], h["name"]) for h in doc)

    def circuit(key):
        name, device = names.get(key, (key, ""))
        return {"circuit": key, "name": name, "device": device}

    def branch(h, item):
        out = {"id": item["id"], "kind": item["kind"]}
        if item["kind"] == "node":
            out.update(name=item["name"], meter=circuit(item["meter"]) if item.get("meter") else None,
                       children=[branch(h, i) for i in h["items"] if i["parent"] == item["id"]])
        elif item["kind"] == "circuit":
            out.update(circuit(item["circuit"]))
        else:
            out.update(ref=item["ref"], name=titles.get(item["ref"], item["ref"]))
        return out

    groups = []
    for h in doc:
        root = next(i for i in h["items"] if i["parent"] is None)
        used = [i for i in h["items"] if i["kind"] == "circuit" or (i["kind"] == "node" and i.get("meter"))]
        groups.append({"key": h["id"], "label": h["name"], "fluid": i18n.text("web.fluid." + h["fluid"], language),
                       "loads": len(used), "devices": [], "nodes": branch(h, root)})
    return {"by": "hierarchy", "groups": groups}


def tree(door, by, language):
    """{by, groups: [{key, label, loads, devices: [{address, name, reference, status, loads: [...]}]}]}."""
    if by == "hierarchy":
        return _hierarchy_tree(door, language)
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
    """Add GET /api/views/tree to ``app`` over the door ("hierarchy" reads them: read_consumption)."""

    @app.get("/api/views/tree", access="read")
    def views_tree():
        language = auth.language()
        by = bottle.request.query.get("by") or "area"
        if by not in ORGANISATIONS:
            status, answer = auth.refusal("bad_request", language, "by must be one of %s" % ", ".join(ORGANISATIONS))
            return _json(answer, status)
        try:
            return _json(tree(auth.door(), by, language))
        except api.Refused as exc:
            status, answer = auth.refused(exc)
            return _json(answer, status)

    return app
