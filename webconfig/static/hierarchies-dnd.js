// The Hierarchies editor's drag and drop (manual §9.7 "just drag & drop the modules ... and create links"),
// loaded after hierarchies.js: a palette of the free circuits and of the other hierarchies of the same fluid,
// each dragged onto a node of the tree to add it; a row of the tree dragged onto another node to move it there.
// A drop sends the very change the forms send (hierarchies.js change()), so the gateway refuses the same things
// (a cycle, another fluid, the limits, the main node) with the same message and nothing changes. HTML5 drag
// and drop, delegated on the tree and the palette (redrawn after every change); the forms stay the keyboard's way.
"use strict";

const drag = {target: null};

function paletteItem(payload, label, kind) {
  const item = el("li", {class: "chip " + kind, draggable: "true", "data-drag": payload});
  item.append(el("span", {class: "kind"}, t("web.hierarchies.kind." + kind)), el("span", {class: "name"}, label));
  return item;
}

// The palette of the hierarchy ``h``: what may still be added (free circuits of its fluid, linkable hierarchies).
function drawPalette(h) {
  const d = state.data;
  if (!h) {
    $("free-circuits").replaceChildren();
    $("free-hierarchies").replaceChildren();
    return;
  }
  const used = h.items.filter((i) => i.kind === "circuit").map((i) => i.circuit)
    .concat(h.items.filter((i) => i.kind === "node" && i.meter).map((i) => i.meter));
  const free = d.circuits.filter((c) => c.fluid === h.fluid && !used.includes(c.key));
  const linked = h.items.filter((i) => i.kind === "hierarchy").map((i) => i.ref);
  const others = d.hierarchies.filter((x) => x.id !== h.id && x.fluid === h.fluid && !linked.includes(x.id));
  $("free-circuits").replaceChildren(...(free.length
    ? free.map((c) => paletteItem("circuit:" + c.key, circuitLabel(c.key), "circuit"))
    : [el("li", {class: "muted"}, t("web.hierarchies.dnd.no_circuit"))]));
  $("free-hierarchies").replaceChildren(...(others.length
    ? others.map((x) => paletteItem("hierarchy:" + x.id, x.name, "hierarchy"))
    : [el("li", {class: "muted"}, t("web.hierarchies.dnd.no_hierarchy"))]));
}

function nodeRow(event) {
  const box = event.target.closest ? event.target.closest(".item.node") : null;
  return box && $("tree").contains(box) ? box : null;
}

function mark(box) {
  if (drag.target === box) return;
  if (drag.target) drag.target.classList.remove("drop-target");
  drag.target = box;
  if (box) box.classList.add("drop-target");
}

function endDrag() {
  mark(null);
  $("tree").classList.remove("dragging");
}

// What a drop of ``payload`` on the node ``parent`` asks the gateway, and the message once done.
function dropChange(h, payload, parent) {
  const at = payload.indexOf(":"), kind = payload.slice(0, at), value = payload.slice(at + 1);
  const node = h.items.find((i) => i.id === parent), under = node ? node.name : "";
  if (kind === "circuit") {
    return [{op: "add", hierarchy: h.id, parent, kind: "circuit", circuit: value},
            t("web.hierarchies.dnd.added", {name: circuitLabel(value), parent: under})];
  }
  if (kind === "hierarchy") {
    const sub = state.data.hierarchies.find((x) => x.id === value);
    return [{op: "add", hierarchy: h.id, parent, kind: "hierarchy", ref: value},
            t("web.hierarchies.dnd.added", {name: sub ? sub.name : value, parent: under})];
  }
  if (kind === "item") {
    const item = h.items.find((i) => i.id === Number(value));
    return [{op: "move", hierarchy: h.id, item: Number(value), parent},
            t("web.hierarchies.dnd.moved", {name: item ? itemLabel(h, item) : value, parent: under})];
  }
  return [null, ""];
}

function startDrag(event) {
  const source = event.target.closest ? event.target.closest("[data-drag]") : null;
  if (!source) return;
  event.dataTransfer.setData("text/plain", source.dataset.drag);
  event.dataTransfer.effectAllowed = "move";
  $("tree").classList.add("dragging");
}

function wireDrag() {
  for (const id of ["tree", "palette"]) $(id).addEventListener("dragstart", startDrag);
  document.addEventListener("dragend", endDrag);
  const tree = $("tree");
  // the element entered says which node is marked (dragleave's relatedTarget is null in Chromium)
  document.addEventListener("dragenter", (event) => mark(nodeRow(event)));
  tree.addEventListener("dragover", (event) => {
    const box = nodeRow(event);
    mark(box);
    if (!box) return;
    event.preventDefault();                       // a node takes the drop
    event.dataTransfer.dropEffect = "move";
  });
  tree.addEventListener("drop", (event) => {
    const box = nodeRow(event), h = current();
    endDrag();
    if (!box || !h) return;
    event.preventDefault();
    const [body, done] = dropChange(h, event.dataTransfer.getData("text/plain"), Number(box.dataset.id));
    if (body) change(body, done);
  });
}
