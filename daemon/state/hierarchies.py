"""The hierarchies (WEBVIEW-M manual §9.7, SPEC §7.2): trees of nodes, circuits and sub-hierarchies.

A hierarchy organises the measured loads of one fluid in the direction of flow (site => building => floor) so
the Consumption page can break the energy down. Each hierarchy has a main node (made with it, never deleted or
moved); under a node hang other nodes, circuits (a device's load, "address:load") and links to other
hierarchies of the same fluid (a multi-level hierarchy; no cycle). A node may be fed by a circuit (its *meter*,
the manual's "load associated with the node"): a node with a meter and children gets the automatic
*non-measured point* = meter - the measured children (computed by the Consumption page's reads, not stored).

Limits (manual §9.7.1): 10 hierarchies, 32 nodes and 50 circuits (items and meters) each. Every refusal is a
``HierarchyRefused`` with a catalogue key (daemon/locale/*/hierarchies.json) and nothing changes. The document
is ``hierarchies.json`` in the state directory, written atomically with a good copy off the loop, as usages.py.
Changes are one table of operations (``OPERATIONS``), each a pure function of the document.
"""

import asyncio
import copy
import os

from daemon.atomicfile import AtomicJSONStorage
from daemon.blocking import run_blocking
from daemon.state.usages import FLUIDS, name_problem

FILE_NAME = "hierarchies.json"
MAX_HIERARCHIES, MAX_NODES, MAX_CIRCUITS = 10, 32, 50
KINDS = ("node", "circuit", "hierarchy")
E = "web.hierarchies.error."


class HierarchyRefused(ValueError):
    """A change refused: ``field``, catalogue ``key`` and ``params`` say why (nothing changed)."""

    def __init__(self, message, field, key, **params):
        ValueError.__init__(self, message)
        self.field, self.key, self.params = field, E + key, params


def _name(value, field="name"):
    problem = name_problem(value, field)
    if problem is not None:
        raise HierarchyRefused(str(problem), field, problem.detail["key"].rsplit(".", 1)[1],
                               **problem.detail["params"])
    return value.strip()


def _hierarchy(doc, hid):
    for h in doc["hierarchies"]:
        if h["id"] == hid:
            return h
    raise HierarchyRefused("no hierarchy %r" % str(hid)[:40], "hierarchy", "no_hierarchy")


def _item(h, item_id):
    for item in h["items"]:
        if item["id"] == item_id:
            return item
    raise HierarchyRefused("no item %r in this hierarchy" % str(item_id)[:40], "item", "no_item")


def _node(h, item_id, field="parent"):
    item = _item(h, item_id)
    if item["kind"] != "node":
        raise HierarchyRefused("only a node has children or a meter", field, "not_a_node")
    return item


def _circuits_used(h):
    return [i["circuit"] for i in h["items"] if i["kind"] == "circuit"] + \
        [i["meter"] for i in h["items"] if i["kind"] == "node" and i.get("meter")]


def _check_circuit(h, circuit, circuits, adding=True):
    """``circuits``: {"address:load": fluid} of the topology's loads."""
    if circuit not in circuits:
        raise HierarchyRefused("no circuit %r in the topology" % str(circuit)[:40], "circuit", "no_circuit")
    if circuits[circuit] != h["fluid"]:
        raise HierarchyRefused("the circuit's fluid is %s, the hierarchy's %s" % (circuits[circuit], h["fluid"]),
                               "circuit", "wrong_fluid")
    used = _circuits_used(h)
    if circuit in used:
        raise HierarchyRefused("the circuit %s is already in this hierarchy" % circuit, "circuit", "circuit_twice")
    if adding and len(used) >= MAX_CIRCUITS:
        raise HierarchyRefused("at most %d circuits per hierarchy" % MAX_CIRCUITS, "circuit", "max_circuits",
                               max=MAX_CIRCUITS)


def _links(doc, hid):
    return [i["ref"] for i in _hierarchy(doc, hid)["items"] if i["kind"] == "hierarchy"]


def _reaches(doc, start, target):
    """Whether hierarchy ``start`` includes ``target`` (itself or through its sub-hierarchies)."""
    seen, todo = set(), [start]
    while todo:
        hid = todo.pop()
        if hid == target:
            return True
        if hid not in seen:
            seen.add(hid)
            todo.extend(_links(doc, hid))
    return False


def _descendants(h, item_id):
    out, todo = set(), [item_id]
    while todo:
        parent = todo.pop()
        for item in h["items"]:
            if item["parent"] == parent and item["id"] not in out:
                out.add(item["id"])
                todo.append(item["id"])
    return out


# ---------------------------------------------------------------- the operations (doc, change, circuits)

def _create(doc, change, _circuits):
    name = _name(change.get("name"))
    if change.get("fluid") not in FLUIDS:
        raise HierarchyRefused("fluid must be one of %s" % ", ".join(FLUIDS), "fluid", "bad_fluid")
    if len(doc["hierarchies"]) >= MAX_HIERARCHIES:
        raise HierarchyRefused("at most %d hierarchies" % MAX_HIERARCHIES, "name", "max_hierarchies",
                               max=MAX_HIERARCHIES)
    if any(h["name"].lower() == name.lower() for h in doc["hierarchies"]):
        raise HierarchyRefused("a hierarchy is already named %r" % name, "name", "name_taken")
    hid = "h%d" % doc["next"]
    doc["next"] += 1
    doc["hierarchies"].append({"id": hid, "name": name, "fluid": change["fluid"], "next": 2,
                               "items": [{"id": 1, "kind": "node", "name": name, "parent": None, "meter": None}]})
    return {"hierarchy": hid}


def _rename(doc, change, _circuits):
    h, name = _hierarchy(doc, change.get("hierarchy")), _name(change.get("name"))
    if "item" in change:
        _node(h, change["item"], "item")["name"] = name
        return {}
    if any(o["id"] != h["id"] and o["name"].lower() == name.lower() for o in doc["hierarchies"]):
        raise HierarchyRefused("a hierarchy is already named %r" % name, "name", "name_taken")
    h["name"] = name
    return {}


def _delete_hierarchy(doc, change, _circuits):
    h = _hierarchy(doc, change.get("hierarchy"))
    users = [o["name"] for o in doc["hierarchies"] if h["id"] in _links(doc, o["id"])]
    if users:
        raise HierarchyRefused("the hierarchy is part of %s: remove it there first" % ", ".join(users),
                               "hierarchy", "in_use", names=", ".join(users))
    doc["hierarchies"].remove(h)
    return {}


def _add(doc, change, circuits):
    h = _hierarchy(doc, change.get("hierarchy"))
    parent = _node(h, change.get("parent"))
    kind = change.get("kind")
    item = {"id": h["next"], "kind": kind, "parent": parent["id"]}
    if kind == "node":
        if sum(i["kind"] == "node" for i in h["items"]) >= MAX_NODES:
            raise HierarchyRefused("at most %d nodes per hierarchy" % MAX_NODES, "kind", "max_nodes", max=MAX_NODES)
        item.update(name=_name(change.get("name")), meter=None)
    elif kind == "circuit":
        _check_circuit(h, change.get("circuit"), circuits)
        item["circuit"] = change["circuit"]
    elif kind == "hierarchy":
        ref = change.get("ref")
        sub = _hierarchy(doc, ref)
        if sub["fluid"] != h["fluid"]:
            raise HierarchyRefused("a hierarchy holds one fluid", "ref", "wrong_fluid")
        if ref in _links(doc, h["id"]):
            raise HierarchyRefused("this hierarchy is already linked", "ref", "linked_twice")
        if _reaches(doc, ref, h["id"]):
            raise HierarchyRefused("a hierarchy cannot contain itself", "ref", "cycle")
        item["ref"] = ref
    else:
        raise HierarchyRefused("kind must be one of %s" % ", ".join(KINDS), "kind", "bad_kind")
    h["next"] += 1
    h["items"].append(item)
    return {"item": item["id"]}


def _meter(doc, change, circuits):
    h = _hierarchy(doc, change.get("hierarchy"))
    node = _node(h, change.get("item"), "item")
    circuit = change.get("circuit") or None
    if circuit is not None and circuit != node.get("meter"):
        node_meter, node["meter"] = node.get("meter"), None          # its old meter frees its place
        try:
            _check_circuit(h, circuit, circuits)
        except HierarchyRefused:
            node["meter"] = node_meter
            raise
    node["meter"] = circuit
    return {}


def _move(doc, change, _circuits):
    """{direction: "up"|"down"} among its siblings, or {parent: node id} (reparent, in the direction of flow)."""
    h = _hierarchy(doc, change.get("hierarchy"))
    item = _item(h, change.get("item"))
    if item["parent"] is None:
        raise HierarchyRefused("the main node stays at the top", "item", "main_node")
    if "parent" in change:
        parent = _node(h, change["parent"])
        if parent["id"] == item["id"] or parent["id"] in _descendants(h, item["id"]):
            raise HierarchyRefused("a node cannot go under itself", "parent", "under_itself")
        h["items"].remove(item)
        item["parent"] = parent["id"]
        h["items"].append(item)
        return {}
    step = {"up": -1, "down": 1}.get(change.get("direction"))
    if step is None:
        raise HierarchyRefused("direction must be up or down", "direction", "bad_direction")
    siblings = [i for i in h["items"] if i["parent"] == item["parent"]]
    at = siblings.index(item) + step
    if 0 <= at < len(siblings):
        a, b = h["items"].index(item), h["items"].index(siblings[at])
        h["items"][a], h["items"][b] = h["items"][b], h["items"][a]
    return {}


def _remove(doc, change, _circuits):
    h = _hierarchy(doc, change.get("hierarchy"))
    item = _item(h, change.get("item"))
    if item["parent"] is None:
        raise HierarchyRefused("the main node stays at the top", "item", "main_node")
    gone = _descendants(h, item["id"]) | {item["id"]}
    h["items"] = [i for i in h["items"] if i["id"] not in gone]
    return {}


OPERATIONS = {"create": _create, "rename": _rename, "delete": _delete_hierarchy, "add": _add, "meter": _meter,
              "move": _move, "remove": _remove}


def _shape(doc):
    if not isinstance(doc.get("hierarchies", []), list):
        raise ValueError("hierarchies are not a list")


class Hierarchies:
    """The hierarchies of one state directory, read once, changed one at a time, written atomically."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, FILE_NAME)
        storage = AtomicJSONStorage(self.path, check=_shape)
        data = storage.read() or {}
        self.load_problem = storage.problem
        self.doc = {"hierarchies": list(data.get("hierarchies", [])), "next": int(data.get("next", 1))}
        self._lock = asyncio.Lock()

    def listing(self):
        return copy.deepcopy(self.doc["hierarchies"])

    async def change(self, change, circuits):
        """Apply ``change`` ({op, ...}, OPERATIONS) and write; what the operation returns."""
        operation = OPERATIONS.get(change.get("op")) if isinstance(change, dict) else None
        if operation is None:
            raise HierarchyRefused("op must be one of %s" % ", ".join(OPERATIONS), "op", "bad_op")
        async with self._lock:
            doc = copy.deepcopy(self.doc)
            result = operation(doc, change, circuits)
            await run_blocking(AtomicJSONStorage(self.path).write, doc)
            self.doc = doc
            return result


# ---------------------------------------------------------------- the breakdown (Consumption)

def breakdown(doc_hierarchies, hid, energy):
    """The tree of hierarchy ``hid`` with energies: ``energy(circuit) -> float or None``. Each node:
    {id, kind, name, circuit/ref, total, children, [meter, unmeasured]}; a node's total is its meter's energy when
    it has one, else the sum of its children's; ``unmeasured`` = meter - children (the non-measured point)."""
    by_id = dict((h["id"], h) for h in doc_hierarchies)

    def node_out(h, node, seen):
        children = []
        for item in h["items"]:
            if item["parent"] != node["id"]:
                continue
            if item["kind"] == "node":
                children.append(node_out(h, item, seen))
            elif item["kind"] == "circuit":
                children.append({"id": item["id"], "kind": "circuit", "circuit": item["circuit"],
                                 "total": energy(item["circuit"])})
            elif item["ref"] in by_id and item["ref"] not in seen:
                sub = by_id[item["ref"]]
                root = next(i for i in sub["items"] if i["parent"] is None)
                inner = node_out(sub, root, seen | {sub["id"]})
                children.append(dict(inner, id=item["id"], kind="hierarchy", ref=sub["id"], name=sub["name"]))
        known = [c["total"] for c in children if c["total"] is not None]
        out = {"id": node["id"], "kind": "node", "name": node["name"], "children": children,
               "total": sum(known) if known else None}
        if node.get("meter"):
            meter = energy(node["meter"])
            out.update(meter=node["meter"], total=meter)
            if children and meter is not None:
                out["unmeasured"] = meter - sum(known)
        return out

    h = by_id[hid]
    root = next(i for i in h["items"] if i["parent"] is None)
    return node_out(h, root, {hid})
