// The left pane the data views share (WEBVIEW-M manual §7): Organisation (view by area / usage / fluid), a
// name filter, the navigation tree with the number of loads of each group, and the time period (presets and a
// custom range). Loaded after page.js; a view makes one with
//
//   const pane = new Pane(container, {organisations: ["area", "usage", "fluid"], period: true,
//                                     select: "load" | "device", onSelect(item), onPeriod(period)});
//   await pane.load();
//
// ``item`` is {address, load (null for a device), device, name, reference, circuits: ["address:load", ...]};
// with ``groups: true`` a group's name is a button too ({group, by, name, circuits}). By "hierarchy" (Consumption)
// each hierarchy is a branch of its nodes ({hierarchy, node, name}), circuits and linked hierarchies (their main
// node); ``onTree(doc)`` is called after each tree is drawn. ``period`` is {preset, from, to}
// in Unix seconds (to exclusive). The tree comes from GET /api/views/tree?by=...; its states and ages are the
// gateway's (a lost or stale device is marked). Keyboard: every node is a button; the pane can be closed and
// pinned open (remembered in localStorage). Text goes in through textContent.
"use strict";

const PERIOD_PRESETS = ["today", "yesterday", "this_week", "last_7_days", "this_month", "last_month",
                        "this_year", "last_12_months", "custom"];

function periodOf(preset, now) {
  const d = new Date(now);
  const day = new Date(d.getFullYear(), d.getMonth(), d.getDate());
  const monday = new Date(day); monday.setDate(day.getDate() - ((day.getDay() + 6) % 7));
  const s = (date) => Math.floor(date.getTime() / 1000);
  const plus = (date, days) => { const x = new Date(date); x.setDate(x.getDate() + days); return x; };
  switch (preset) {
    case "today": return {from: s(day), to: s(plus(day, 1))};
    case "yesterday": return {from: s(plus(day, -1)), to: s(day)};
    case "this_week": return {from: s(monday), to: s(plus(monday, 7))};
    case "last_7_days": return {from: s(plus(day, -6)), to: s(plus(day, 1))};
    case "this_month": return {from: s(new Date(d.getFullYear(), d.getMonth(), 1)),
                               to: s(new Date(d.getFullYear(), d.getMonth() + 1, 1))};
    case "last_month": return {from: s(new Date(d.getFullYear(), d.getMonth() - 1, 1)),
                               to: s(new Date(d.getFullYear(), d.getMonth(), 1))};
    case "this_year": return {from: s(new Date(d.getFullYear(), 0, 1)), to: s(new Date(d.getFullYear() + 1, 0, 1))};
    default: return {from: s(new Date(d.getFullYear() - 1, d.getMonth() + 1, 1)),
                     to: s(new Date(d.getFullYear(), d.getMonth() + 1, 1))};      // last_12_months
  }
}

function localInput(seconds) {      // a datetime-local field's value
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" +
    pad(d.getMinutes());
}

class Pane {
  constructor(container, options) {
    this.box = container;
    this.options = Object.assign({organisations: ["area", "usage", "fluid"], period: false, select: "load",
                                  groups: false, onSelect: () => {}, onPeriod: () => {}, onTree: () => {}},
                                 options || {});
    this.by = this.options.organisations[0];
    this.doc = null;
    this.selected = null;           // "address" or "address:load"
    this.period = null;
  }

  async load() {
    this.draw();
    await this.refresh();
    if (this.options.period) this.setPreset(this.options.preset || "this_month");
  }

  async refresh() {
    const [status, doc] = await getJson("/api/views/tree?by=" + encodeURIComponent(this.by));   // page.js adds lang
    if (status !== 200) { this.$("tree").textContent = doc.error || String(status); return; }
    this.doc = doc;
    this.drawTree();
    this.options.onTree(doc);
  }

  $(part) { return this.box.querySelector("[data-part='" + part + "']"); }

  draw() {
    const box = this.box;
    box.classList.add("pane");
    box.replaceChildren();
    const head = el("div", {class: "pane-head"});
    const pin = el("button", {type: "button", class: "pane-toggle", "data-part": "toggle",
                              "aria-expanded": "true"}, t("web.pane.close"));
    pin.addEventListener("click", () => this.toggle());
    head.append(el("h2", {id: "pane-title"}, t("web.pane.organisation")), pin);
    const body = el("div", {class: "pane-body", "data-part": "body"});
    const byId = "pane-by", filterId = "pane-filter";
    const by = el("select", {id: byId, "data-part": "by"});
    for (const name of this.options.organisations) by.append(el("option", {value: name}, t("web.pane.by." + name)));
    by.addEventListener("change", () => { this.by = by.value; this.refresh(); });
    const filter = el("input", {id: filterId, type: "search", "data-part": "filter", autocomplete: "off",
                                placeholder: t("web.pane.filter_hint")});
    filter.addEventListener("input", () => this.drawTree());
    body.append(el("label", {for: byId}, t("web.pane.view")), by, el("label", {for: filterId}, t("web.pane.filter")),
                filter, el("h3", {id: "pane-nav-title"}, t("web.pane.navigation")),
                el("div", {class: "pane-tree", "data-part": "tree", role: "tree", "aria-labelledby": "pane-nav-title"}));
    if (this.options.period) body.append(this.periodBox());
    box.append(head, body);
    if (localStorage.getItem("pane.closed") === "1") this.toggle(true);
  }

  toggle(force) {
    const closed = force === true ? true : !this.box.classList.contains("closed");
    this.box.classList.toggle("closed", closed);
    this.$("toggle").setAttribute("aria-expanded", String(!closed));
    this.$("toggle").textContent = t(closed ? "web.pane.open" : "web.pane.close");
    localStorage.setItem("pane.closed", closed ? "1" : "0");
  }

  matches(device, load) {
    const text = (this.$("filter").value || "").trim().toLowerCase();
    if (!text) return true;
    return [device.name, device.reference, load ? load.name : ""].some((s) => (s || "").toLowerCase().includes(text));
  }

  drawTree() {
    const tree = this.$("tree");
    tree.replaceChildren();
    if (!this.doc) return;
    let shown = 0;
    for (const group of this.doc.groups) {
      if (group.nodes) { shown += this.drawHierarchy(tree, group); continue; }
      const devices = group.devices.filter((d) => this.matches(d) || d.loads.some((l) => this.matches(d, l)));
      if (!devices.length) continue;
      const node = el("div", {role: "treeitem", "aria-expanded": "true", class: "pane-group"});
      const title = t("web.pane.group", {name: group.label, count: group.loads});
      if (this.options.groups) {
        const circuits = group.devices.flatMap((d) => d.loads.map((l) => d.address + ":" + l.load));
        node.append(this.button("g:" + group.key, "pane-item pane-group-name", title,
                                {group: group.key, by: this.doc.by, name: group.label, circuits}, null));
      } else node.append(el("div", {class: "pane-group-name"}, title));
      const list = el("div", {role: "group"});
      for (const device of devices) {
        list.append(this.itemButton(device, null));
        if (this.options.select === "load") {
          for (const load of device.loads) if (this.matches(device) || this.matches(device, load)) {
            list.append(this.itemButton(device, load));
          }
        }
        shown += 1;
      }
      node.append(list);
      tree.append(node);
    }
    if (!shown) tree.append(el("p", {class: "pane-empty"}, t("web.pane.nothing")));
  }

  // A selectable node of the tree: marks itself current and calls onSelect(item).
  button(key, cls, label, item, role) {
    const button = el("button", {type: "button", role: role === undefined ? "treeitem" : role, class: cls,
                                 "data-key": key,
                                 "aria-current": this.selected === key ? "true" : null}, label);
    button.addEventListener("click", () => {
      this.selected = key;
      for (const b of this.box.querySelectorAll(".pane-item")) b.toggleAttribute("aria-current", b === button);
      this.options.onSelect(item);
    });
    return button;
  }

  // One hierarchy: its nodes (a node selects {hierarchy, node}), circuits and linked hierarchies, indented by
  // depth; the number of items shown (0 when the filter hides them all).
  drawHierarchy(tree, group) {
    const text = (this.$("filter").value || "").trim().toLowerCase();
    const hit = (item) => !text || (item.name || "").toLowerCase().includes(text) ||
      (item.children || []).some(hit);
    if (!hit(group.nodes) && !group.label.toLowerCase().includes(text)) return 0;
    const node = el("div", {role: "treeitem", "aria-expanded": "true", class: "pane-group"});
    node.append(el("div", {class: "pane-group-name"}, t("web.pane.group", {name: group.label, count: group.loads})));
    const list = el("div", {role: "group"});
    const walk = (item, depth) => {
      let button;
      if (item.kind === "node") {
        button = this.button("h:" + group.key + ":" + item.id, "pane-item node", item.name,
                             {hierarchy: group.key, node: item.id, name: item.name});
      } else if (item.kind === "circuit") {
        const [address, load] = item.circuit.split(":").map(Number);
        button = this.button("h:" + group.key + ":c" + item.circuit, "pane-item load", item.name,
                             {address, load, name: item.name, device: item.device, circuits: [item.circuit]});
      } else {
        button = this.button("h:" + group.key + ":h" + item.ref, "pane-item link", item.name,
                             {hierarchy: item.ref, node: 1, name: item.name});
      }
      button.style.paddingLeft = (6 + 14 * depth) + "px";       // CSSOM: allowed by the CSP
      list.append(button);
      for (const child of item.children || []) if (hit(child) || !text) walk(child, depth + 1);
    };
    walk(group.nodes, 0);
    node.append(list);
    tree.append(node);
    return 1;
  }

  itemButton(device, load) {
    const key = device.address + (load ? ":" + load.load : "");
    const label = load ? load.name : device.name + " · " + device.reference + "@" + device.address;
    const button = el("button", {type: "button", role: "treeitem", class: "pane-item " + (load ? "load" : "device"),
                                 "data-key": key, "data-status": device.status,
                                 "aria-current": this.selected === key ? "true" : null}, label);
    if (!load && device.loads.length) button.append(el("span", {class: "pane-count"}, " " + t(
      device.loads.length === 1 ? "web.pane.loads_one" : "web.pane.loads", {count: device.loads.length})));
    if (device.status !== "ok") button.append(el("span", {class: "pane-state"}, " " + t("web.devices.state." + device.status)));
    button.addEventListener("click", () => {
      this.selected = key;
      for (const b of this.box.querySelectorAll(".pane-item")) b.toggleAttribute("aria-current", b === button);
      this.options.onSelect({address: device.address, load: load ? load.load : null, device: device.name,
                             reference: device.reference, name: load ? load.name : device.name,
                             circuits: (load ? [load] : device.loads).map((l) => device.address + ":" + l.load)});
    });
    return button;
  }

  select(address, load) {
    const key = address + (load ? ":" + load : "");
    const button = this.box.querySelector(".pane-item[data-key='" + key + "']");
    if (button) button.click();
  }

  periodBox() {
    const box = el("fieldset", {class: "pane-period"});
    box.append(el("legend", null, t("web.pane.period")));
    const preset = el("select", {id: "pane-preset", "data-part": "preset"});
    for (const name of PERIOD_PRESETS) preset.append(el("option", {value: name}, t("web.pane.preset." + name)));
    const from = el("input", {id: "pane-from", type: "datetime-local", "data-part": "from"});
    const to = el("input", {id: "pane-to", type: "datetime-local", "data-part": "to"});
    const apply = el("button", {type: "button", "data-part": "apply"}, t("web.pane.apply"));
    preset.addEventListener("change", () => this.setPreset(preset.value));
    apply.addEventListener("click", () => {
      const start = Date.parse(from.value) / 1000, end = Date.parse(to.value) / 1000;
      if (!(start < end)) { this.$("period-error").textContent = t("web.pane.bad_period"); return; }
      this.$("period-error").textContent = "";
      preset.value = "custom";
      this.setPeriod({preset: "custom", from: start, to: end});
    });
    box.append(el("label", {for: "pane-preset", class: "pane-unseen"}, t("web.pane.period")), preset,
               el("label", {for: "pane-from"}, t("web.pane.from")), from,
               el("label", {for: "pane-to"}, t("web.pane.to")), to, apply,
               el("p", {class: "pane-error", "data-part": "period-error", role: "alert"}));
    return box;
  }

  setPreset(name) {
    if (name === "custom") return;
    this.$("preset").value = name;
    this.setPeriod(Object.assign({preset: name}, periodOf(name, Date.now())));
  }

  setPeriod(period) {
    this.period = period;
    this.$("from").value = localInput(period.from);
    this.$("to").value = localInput(period.to);
    this.options.onPeriod(period);
  }
}
