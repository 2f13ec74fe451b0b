"""The hierarchies store (daemon/state/hierarchies.py): the manual's rules and limits, the tree's moves, the
non-measured point of the breakdown, the document kept across a restart."""

import asyncio

import pytest

from daemon.state.hierarchies import HierarchyRefused, Hierarchies, breakdown

CIRCUITS = dict(("%d:%d" % (a, n), "electricity") for a in range(1, 4) for n in range(1, 21))   # 60 loads
CIRCUITS["9:1"] = "water"


def run(store, change):
    return asyncio.run(store.change(change, CIRCUITS))


def refused(store, change):
    with pytest.raises(HierarchyRefused) as info:
        run(store, change)
    return info.value.key


def test_rules_and_limits(tmp_path):
    store = Hierarchies(str(tmp_path))
    for n in range(10):
        assert run(store, {"op": "create", "name": "H%d" % n, "fluid": "electricity"}) == {"hierarchy": "h%d" % (n + 1)}
    assert refused(store, {"op": "create", "name": "H10", "fluid": "electricity"}) == \
        "web.hierarchies.error.max_hierarchies"
    run(store, {"op": "delete", "hierarchy": "h10"})
    assert refused(store, {"op": "create", "name": "h0", "fluid": "water"}) == "web.hierarchies.error.name_taken"
    assert refused(store, {"op": "create", "name": "W", "fluid": "steam"}) == "web.hierarchies.error.bad_fluid"
    assert refused(store, {"op": "create", "name": " ", "fluid": "water"}) == "web.hierarchies.error.empty"
    assert refused(store, {"op": "create", "name": "x" * 33, "fluid": "water"}) == "web.hierarchies.error.too_long"
    for n in range(31):                                      # the main node + 31
        run(store, {"op": "add", "hierarchy": "h1", "parent": 1, "kind": "node", "name": "N%d" % n})
    assert refused(store, {"op": "add", "hierarchy": "h1", "parent": 1, "kind": "node", "name": "N"}) == \
        "web.hierarchies.error.max_nodes"
    keys = sorted(k for k, f in CIRCUITS.items() if f == "electricity")
    for key in keys[:49]:
        run(store, {"op": "add", "hierarchy": "h2", "parent": 1, "kind": "circuit", "circuit": key})
    run(store, {"op": "meter", "hierarchy": "h2", "item": 1, "circuit": keys[49]})           # a meter counts
    assert refused(store, {"op": "add", "hierarchy": "h2", "parent": 1, "kind": "circuit", "circuit": keys[50]}) == \
        "web.hierarchies.error.max_circuits"
    assert refused(store, {"op": "add", "hierarchy": "h3", "parent": 1, "kind": "circuit", "circuit": "9:1"}) == \
        "web.hierarchies.error.wrong_fluid"
    assert refused(store, {"op": "add", "hierarchy": "h2", "parent": 1, "kind": "circuit", "circuit": keys[0]}) == \
        "web.hierarchies.error.circuit_twice"
    assert refused(store, {"op": "add", "hierarchy": "h3", "parent": 1, "kind": "circuit", "circuit": "7:7"}) == \
        "web.hierarchies.error.no_circuit"
    assert refused(store, {"op": "add", "hierarchy": "h2", "parent": 2, "kind": "node", "name": "x"}) == \
        "web.hierarchies.error.not_a_node"
    # sub-hierarchies: one fluid, no cycle, a linked one is not deleted
    run(store, {"op": "add", "hierarchy": "h3", "parent": 1, "kind": "hierarchy", "ref": "h4"})
    run(store, {"op": "add", "hierarchy": "h4", "parent": 1, "kind": "hierarchy", "ref": "h5"})
    assert refused(store, {"op": "add", "hierarchy": "h5", "parent": 1, "kind": "hierarchy", "ref": "h3"}) == \
        "web.hierarchies.error.cycle"
    assert refused(store, {"op": "add", "hierarchy": "h3", "parent": 1, "kind": "hierarchy", "ref": "h3"}) == \
        "web.hierarchies.error.cycle"
    assert refused(store, {"op": "delete", "hierarchy": "h4"}) == "web.hierarchies.error.in_use"
    run(store, {"op": "create", "name": "Water", "fluid": "water"})
    assert refused(store, {"op": "add", "hierarchy": "h3", "parent": 1, "kind": "hierarchy", "ref": "h11"}) == \
        "web.hierarchies.error.wrong_fluid"
    assert refused(store, {"op": "nothing"}) == "web.hierarchies.error.bad_op"
    assert Hierarchies(str(tmp_path)).listing() == store.listing()            # kept across a restart


def test_moves_keep_a_tree(tmp_path):
    store = Hierarchies(str(tmp_path))
    run(store, {"op": "create", "name": "Site", "fluid": "electricity"})
    a = run(store, {"op": "add", "hierarchy": "h1", "parent": 1, "kind": "node", "name": "A"})["item"]
    b = run(store, {"op": "add", "hierarchy": "h1", "parent": 1, "kind": "node", "name": "B"})["item"]
    c = run(store, {"op": "add", "hierarchy": "h1", "parent": a, "kind": "circuit", "circuit": "1:1"})["item"]
    run(store, {"op": "move", "hierarchy": "h1", "item": b, "direction": "up"})
    order = [i["id"] for i in store.listing()[0]["items"] if i["parent"] == 1]
    assert order == [b, a]
    run(store, {"op": "move", "hierarchy": "h1", "item": a, "parent": b})
    assert refused(store, {"op": "move", "hierarchy": "h1", "item": b, "parent": a}) == \
        "web.hierarchies.error.under_itself"
    assert refused(store, {"op": "move", "hierarchy": "h1", "item": 1, "direction": "up"}) == \
        "web.hierarchies.error.main_node"
    run(store, {"op": "remove", "hierarchy": "h1", "item": b})                 # and what hangs under it
    assert [i["id"] for i in store.listing()[0]["items"]] == [1]
    assert c not in [i["id"] for i in store.listing()[0]["items"]]


def test_the_non_measured_point_is_the_meter_minus_the_measured_children(tmp_path):
    store = Hierarchies(str(tmp_path))
    run(store, {"op": "create", "name": "Site", "fluid": "electricity"})
    run(store, {"op": "create", "name": "Annex", "fluid": "electricity"})
    run(store, {"op": "meter", "hierarchy": "h1", "item": 1, "circuit": "1:1"})
    floor = run(store, {"op": "add", "hierarchy": "h1", "parent": 1, "kind": "node", "name": "Floor 1"})["item"]
    run(store, {"op": "meter", "hierarchy": "h1", "item": floor, "circuit": "1:2"})
    for key in ("1:3", "1:4"):
        run(store, {"op": "add", "hierarchy": "h1", "parent": floor, "kind": "circuit", "circuit": key})
    run(store, {"op": "add", "hierarchy": "h1", "parent": 1, "kind": "hierarchy", "ref": "h2"})
    run(store, {"op": "add", "hierarchy": "h2", "parent": 1, "kind": "circuit", "circuit": "2:1"})
    energy = {"1:1": 1000.0, "1:2": 600.0, "1:3": 250.0, "1:4": 100.0, "2:1": 150.0}.get
    tree = breakdown(store.listing(), "h1", energy)
    assert tree["total"] == 1000.0
    first, annex = tree["children"]
    assert (first["total"], first["unmeasured"]) == (600.0, 600.0 - 250.0 - 100.0)
    assert (annex["kind"], annex["total"]) == ("hierarchy", 150.0)
    assert tree["unmeasured"] == 1000.0 - 600.0 - 150.0
