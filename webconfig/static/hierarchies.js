// The Hierarchies editor (manual §9.7): every change is one POST /api/hierarchies {op, ...}; the gateway checks
// the rules (one fluid, 10 hierarchies, 32 nodes, 50 circuits, no cycle) and says why it refuses; the tree is
// drawn again from its answer. Keyboard: forms, selects and buttons (Up, Down, Remove on each row); the mouse
// may also drag and drop (hierarchies-dnd.js: the same changes).
"use strict";

const state = {data: null, current: null};

function say(text, ok) {
  const node = $("message");
  node.textContent = text;
  node.className = "message " + (ok ? "ok" : "error");
}

function refusalText(answer) {
  return (answer.messages || []).map((m) => m.message).join(" ") || answer.error || "";
}

function current() { return state.data.hierarchies.find((h) => h.id === state.current) || null; }
function circuitOf(key) { return state.data.circuits.find((c) => c.key === key); }
function circuitLabel(key) {
  const c = circuitOf(key);
  return c ? c.device + " – " + c.name : key;
}
function itemLabel(h, item) {
  if (item.kind === "node") return item.name;
  if (item.kind === "circuit") return circuitLabel(item.circuit);
  const sub = state.data.hierarchies.find((x) => x.id === item.ref);
  return sub ? sub.name : item.ref;
}

function options(select, rows, keep) {
  const before = keep ? select.value : null;
  select.replaceChildren(...rows.map(([value, label]) => el("option", {value}, label)));
  if (before !== null && rows.some(([value]) => value === before)) select.value = before;
}

async function load() {
  const [status, answer] = await getJson("/api/hierarchies");
  if (status !== 200) { say(answer.error || "", false); return; }
  state.data = answer;
  if (!current()) state.current = answer.hierarchies.length ? answer.hierarchies[0].id : null;
  draw();
}

async function change(body, done) {
  const [status, answer] = await postJson("/api/hierarchies", body);
  if (status !== 200) { say(refusalText(answer), false); return null; }
  if (body.op === "create") state.current = answer.result.hierarchy;
  await load();
  say(done, true);
  return answer.result;
}

function row(h, item) {
  const label = itemLabel(h, item);
  const box = el("div", {class: "item " + item.kind, "data-id": item.id});
  if (item.parent !== null) {                     // the main node stays; the rest may be dragged to another node
    box.draggable = true;
    box.dataset.drag = "item:" + item.id;
  }
  box.append(el("span", {class: "kind"}, t("web.hierarchies.kind." + item.kind)), el("span", {class: "name"}, label));
  const children = h.items.filter((i) => i.parent === item.id);
  if (item.kind === "node" && item.meter) {
    box.append(el("span", {class: "meter"}, t("web.hierarchies.fed_by", {circuit: circuitLabel(item.meter)})));
    if (children.length) box.append(el("span", {class: "nmp"}, t("web.hierarchies.nmp")));
  }
  if (item.parent !== null) {
    const tools = el("span", {class: "tools"});
    for (const [action, key] of [["up", "web.hierarchies.up"], ["down", "web.hierarchies.down"],
                                 ["remove", "web.hierarchies.remove"]]) {
      const button = el("button", {type: "button", "data-action": action, "aria-label": t(key + "_of", {name: label})},
                        t(key));
      button.addEventListener("click", () => {
        if (action === "remove") {
          if (!confirm(t("web.hierarchies.confirm_remove", {name: label}))) return;
          change({op: "remove", hierarchy: h.id, item: item.id}, t("web.hierarchies.removed", {name: label}));
        } else {
          change({op: "move", hierarchy: h.id, item: item.id, direction: action}, t("web.hierarchies.moved", {name: label}));
        }
      });
      tools.append(button);
    }
    box.append(tools);
  }
  const li = el("li", {});
  li.append(box);
  if (children.length) {
    const ul = el("ul", {});
    for (const child of children) ul.append(row(h, child));
    li.append(ul);
  }
  return li;
}

function draw() {
  const d = state.data, h = current();
  $("limits").textContent = t("web.hierarchies.limits", {count: d.hierarchies.length, max: d.max_hierarchies,
                                                         nodes: d.max_nodes, circuits: d.max_circuits});
  options($("new-fluid"), d.fluids.map((f) => [f.key, f.name]), true);
  options($("pick"), d.hierarchies.map((x) => [x.id, x.name + " (" + d.fluids.find((f) => f.key === x.fluid).name + ")"]));
  for (const id of ["pick", "rename", "rename-go", "delete", "add-go", "meter-go", "move-go"]) $(id).disabled = !h;
  // With no hierarchy there is nothing to edit: only "New hierarchy" and the tree's message stay
  for (const id of ["edit-row", "palette", "add-section", "more-section"]) $(id).hidden = !h;
  drawPalette(h);
  if (!h) {
    $("tree").replaceChildren(el("li", {class: "muted"}, t("web.hierarchies.none")));
    $("counts").textContent = "";
    for (const id of ["add-parent", "add-circuit", "add-ref", "meter-node", "meter-circuit", "move-item", "move-parent"]) {
      $(id).replaceChildren();
    }
    return;
  }
  $("pick").value = h.id;
  const nodes = h.items.filter((i) => i.kind === "node");
  const used = h.items.filter((i) => i.kind === "circuit").map((i) => i.circuit)
    .concat(nodes.filter((n) => n.meter).map((n) => n.meter));
  $("counts").textContent = t("web.hierarchies.counts", {nodes: nodes.length, max_nodes: d.max_nodes,
                                                         circuits: used.length, max_circuits: d.max_circuits});
  $("tree").replaceChildren(row(h, h.items.find((i) => i.parent === null)));
  const nodeRows = nodes.map((n) => [String(n.id), n.name]);
  options($("add-parent"), nodeRows, true);
  options($("meter-node"), nodeRows, true);
  options($("move-parent"), nodeRows, true);
  const sameFluid = d.circuits.filter((c) => c.fluid === h.fluid);
  options($("add-circuit"), sameFluid.filter((c) => !used.includes(c.key)).map((c) => [c.key, circuitLabel(c.key)]), true);
  options($("meter-circuit"), [["", t("web.hierarchies.no_meter")]].concat(
    sameFluid.map((c) => [c.key, circuitLabel(c.key)])), true);
  options($("add-ref"), d.hierarchies.filter((x) => x.id !== h.id && x.fluid === h.fluid).map((x) => [x.id, x.name]), true);
  options($("move-item"), h.items.filter((i) => i.parent !== null).map((i) => [String(i.id), itemLabel(h, i)]), true);
  kindFields();
}

function kindFields() {
  const kind = $("add-kind").value;
  $("add-node-field").hidden = kind !== "node";
  $("add-circuit-field").hidden = kind !== "circuit";
  $("add-ref-field").hidden = kind !== "hierarchy";
}

function wire() {
  $("new-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("new-name").value;
    change({op: "create", name, fluid: $("new-fluid").value}, t("web.hierarchies.created", {name}))
      .then((result) => { if (result) $("new-name").value = ""; });
  });
  $("pick").addEventListener("change", () => { state.current = $("pick").value; draw(); });
  $("rename-go").addEventListener("click", () => {
    const name = $("rename").value;
    change({op: "rename", hierarchy: state.current, name}, t("web.hierarchies.renamed", {name}));
  });
  $("delete").addEventListener("click", () => {
    const h = current();
    if (!h || !confirm(t("web.hierarchies.confirm_delete", {name: h.name}))) return;
    const id = h.id;
    change({op: "delete", hierarchy: id}, t("web.hierarchies.deleted", {name: h.name})).then((result) => {
      if (result && state.current === id) { state.current = null; load(); }
    });
  });
  $("add-kind").addEventListener("change", kindFields);
  $("add-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const kind = $("add-kind").value, body = {op: "add", hierarchy: state.current, parent: Number($("add-parent").value), kind};
    if (kind === "node") body.name = $("add-name").value;
    if (kind === "circuit") body.circuit = $("add-circuit").value;
    if (kind === "hierarchy") body.ref = $("add-ref").value;
    change(body, t("web.hierarchies.added")).then((result) => { if (result) $("add-name").value = ""; });
  });
  $("meter-form").addEventListener("submit", (event) => {
    event.preventDefault();
    change({op: "meter", hierarchy: state.current, item: Number($("meter-node").value), circuit: $("meter-circuit").value},
           t("web.hierarchies.meter_set"));
  });
  $("move-form").addEventListener("submit", (event) => {
    event.preventDefault();
    change({op: "move", hierarchy: state.current, item: Number($("move-item").value), parent: Number($("move-parent").value)},
           t("web.hierarchies.moved", {name: $("move-item").selectedOptions[0]?.textContent || ""}));
  });
}

async function start() {
  if (!(await startView())) return;
  wire();
  wireDrag();
  await load();
  pageReady();
}

start();
