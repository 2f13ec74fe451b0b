"""Consumption buckets (the Consumption page, issue 17): the energy of counter series summed in one shared grid.

Why not ``query.aggregate``: the Consumption page puts every selected load on the same bars, so each bucket
must be the same for all loads (even a load whose points start later, or whose period is 60 min where another's
is 10), clipped to the period asked for (a month's first week holds only the month's days, and its quality says
whether those days are all there, not whether the whole ISO week is). And it sums a year of 192 series per
click: the sums are slices summed in C (``sum``, ``itertools.compress``), not a Python loop per point.

Pure: ``grid`` makes the buckets, ``bucket_sums`` sums one SeriesData into them, ``combine`` joins qualities,
``hierarchy_loads`` turns hierarchies.breakdown per bucket into the children of one node as loads plus the
non-measured point.
"""

import itertools

from daemon.state import hierarchies as hierarchies_mod
from daemon.storage.format import Q_VALID
from daemon.storage.query import bucket

STEPS = ("month", "week", "day", "hour", "period")       # coarsest first: the drill-down's order
_VALID = bytes((1 if code & Q_VALID else 0) for code in range(256))       # quality byte -> 1 when valid


def grid(step, start, end, utc_offset_s, period_s=None):
    """[(bucket start, bucket end)] covering [start, end), each clipped to it; "period" is ``period_s`` long."""
    out, t = [], start
    while t < end:
        if step == "period":
            b0, b1 = t - t % period_s, t - t % period_s + period_s
        else:
            b0, b1 = bucket(step, t, utc_offset_s)
        out.append((max(b0, start), min(b1, end)))
        t = b1
    return out


def bucket_sums(data, buckets):
    """([sum or None], [quality]) of ``data`` (a SeriesData of a counter) per bucket: the points whose
    interval starts in the bucket."""
    period, first = data.period, data.start if data.start is not None else 0
    values, codes, size = data.values, data.quality, len(data.values)
    sums, qualities = [], []
    for b0, b1 in buckets:
        expected = -(-b1 // period) - (-(-b0 // period))
        lo = min(max(0, -(-(b0 - first) // period)), size)
        hi = min(max(0, -(-(b1 - first) // period)), size)
        mask = codes[lo:hi].translate(_VALID)
        count = mask.count(1)
        qualities.append(quality(count, expected))
        if count == 0:
            sums.append(None)
        elif count == hi - lo:
            sums.append(float(sum(values[lo:hi])))
        else:
            sums.append(float(sum(itertools.compress(values[lo:hi], mask))))
    return sums, qualities


def quality(count, expected):
    """"good" when every interval of the bucket has its point, "missing" when none has, else "partial"."""
    if count == 0:
        return "missing"
    return "good" if count >= expected else "partial"


def combine(qualities):
    """The quality of a sum of loads: good when all are, missing when all are, else partial."""
    qualities = list(qualities)
    if qualities and all(q == "good" for q in qualities):
        return "good"
    if not qualities or all(q == "missing" for q in qualities):
        return "missing"
    return "partial"


def _depends(node):
    """The circuits a breakdown node's total is read from: its meter, else its children's."""
    if node.get("kind") == "circuit":
        return [node["circuit"]]
    if node.get("meter"):
        return [node["meter"]]
    return [c for child in node["children"] for c in _depends(child)]


def _find(node, item_id):
    if node["id"] == item_id and node["kind"] == "node":
        return node
    for child in node.get("children", []):
        if child["kind"] == "node":            # a sub-hierarchy's nodes are that hierarchy's
            found = _find(child, item_id)
            if found is not None:
                return found
    return None


def hierarchy_loads(doc_hierarchies, hid, item_id, series):
    """The node ``item_id`` of hierarchy ``hid`` over the buckets of ``series`` ({circuit: (v, q)}, lists of
    one length; a circuit absent has no point): ({name, meter, v, q} of the node, [loads]): each child (node,
    circuit or sub-hierarchy: {id, kind, name, circuit, v, q}) and, when the node has a meter and children,
    {"id": "unmeasured", "kind": "unmeasured", v, q} = meter - measured children. Raises KeyError for a node
    the hierarchy does not have."""
    width = len(next(iter(series.values()))[0]) if series else 0
    empty = ([None] * width, ["missing"] * width)
    trees = []
    for i in range(width):
        tree = hierarchies_mod.breakdown(doc_hierarchies, hid, lambda c, i=i: series.get(c, empty)[0][i])
        node = _find(tree, item_id)
        if node is None:
            raise KeyError(item_id)
        trees.append(node)
    if not trees:          # no bucket: the shape alone
        node = _find(hierarchies_mod.breakdown(doc_hierarchies, hid, lambda c: None), item_id)
        if node is None:
            raise KeyError(item_id)
        trees = [node]

    def q_of(tree_node, i):
        return combine(series.get(c, empty)[1][i] for c in _depends(tree_node))

    head = trees[0]
    out_node = {"id": head["id"], "name": head["name"], "meter": head.get("meter"),
                "v": [n["total"] for n in trees][:width], "q": [q_of(n, i) for i, n in enumerate(trees)][:width]}
    loads = []
    for k, child in enumerate(head["children"]):
        loads.append({"id": "item:%d" % child["id"], "kind": child["kind"], "name": child.get("name", ""),
                      "circuit": child.get("circuit"), "v": [n["children"][k]["total"] for n in trees][:width],
                      "q": [q_of(n["children"][k], i) for i, n in enumerate(trees)][:width]})
    if head.get("meter") and head["children"]:
        loads.append({"id": "unmeasured", "kind": "unmeasured", "name": "", "circuit": None,
                      "v": [n.get("unmeasured") for n in trees][:width],
                      "q": [combine([series.get(head["meter"], empty)[1][i]] +
                                    [q_of(c, i) for c in n["children"]]) for i, n in enumerate(trees)][:width]})
    return out_node, loads
