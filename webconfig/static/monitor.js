// The Monitor page (WEBVIEW-M manual §8.2): the left pane (pane.js) picks a device or a load; its values come
// from GET /api/monitor/<address>?load=L&since=V, a long-poll that answers when the gateway stores new values
// (webconfig/monitor_live.py), so they change without reloading. Tabs are the ones the device fills (the
// server's TABS); each value shows its unit, quality and age, stale or lost ones greyed. The phasor diagram is
// drawn here in SVG from the angles the server computes. Outputs are switched through the door
// (POST /api/devices/<address>/<load>/<key>) when the document says this profile may. Text via textContent.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const PREFIXED = {W: 1, var: 1, VA: 1, Wh: 1, varh: 1, VAh: 1};        // shown in k/M above a thousand
const DIGITS = {V: 1, A: 2, Hz: 2, "%": 1, "": 3};
let current = null;                  // {address, load}
let doc = null;                      // the last document
let receivedAt = 0;                  // performance.now() when it came
let token = 0;                       // the running long-poll's generation (a new selection starts another)
let activeTab = "summary";
let drawnShape = "";                 // what the panel's structure was built for
let pane = null;
let numbers = null;
let writeRights = {may: false, reason: "rights"};   // GET /api/monitor/may-write, asked once

function format(value, unit) {
  if (value === null || value === undefined) return "—";
  if (unit === "io") return t(value ? "web.monitor.on" : "web.monitor.off");
  let scaled = value, prefix = "";
  if (PREFIXED[unit] && Math.abs(value) >= 1e6) { scaled = value / 1e6; prefix = "M"; }
  else if (PREFIXED[unit] && Math.abs(value) >= 1e3) { scaled = value / 1e3; prefix = "k"; }
  const digits = prefix ? (unit.endsWith("h") ? 3 : 2) : (DIGITS[unit] !== undefined ? DIGITS[unit] : 0);
  const text = scaled.toLocaleString(numbers, {minimumFractionDigits: digits, maximumFractionDigits: digits});
  return unit ? text + "\u00a0" + prefix + unit : text;
}

function ageText(age) {
  if (age === null || age === undefined) return "";
  const s = Math.round(age);
  if (s < 120) return t("web.monitor.age_s", {n: s});
  if (s < 7200) return t("web.monitor.age_min", {n: Math.round(s / 60)});
  return t("web.monitor.age_h", {n: Math.round(s / 3600)});
}

function elapsed() { return (performance.now() - receivedAt) / 1000; }

function unitOf(key) {
  if (doc.own && doc.own[key]) return doc.own[key].unit;
  return key.startsWith("in_") || key.startsWith("out_") ? "io" : doc.units[key];
}

function label(key) {
  if (doc.own && doc.own[key]) return doc.own[key].name;       // a generic device's own name (its data model)
  return doc.symbols[key] || t("web.monitor.key." + key);
}

// A value a generic device's data model names itself: its own unit, up to 6 decimals (the coefficient's).
function formatOwn(value, unit) {
  if (value === null || value === undefined) return "—";
  const text = value.toLocaleString(numbers, {maximumFractionDigits: 6});
  return unit ? text + "\u00a0" + unit : text;
}

// ---------------------------------------------------------------- selection and the long-poll

function select(item) {
  current = {address: item.address, load: item.load};
  doc = null;
  drawnShape = "";
  const query = "?address=" + item.address + (item.load ? "&load=" + item.load : "");
  history.replaceState(null, "", "/monitor" + query);
  $("message").textContent = "";
  poll(++token);
}

async function poll(mine) {
  let since = null;
  while (mine === token) {
    const url = "/api/monitor/" + current.address + "?" + (current.load !== null && current.load !== undefined ?
      "load=" + current.load + "&" : "") + (since !== null ? "since=" + since : "");
    let status, answer;
    try { [status, answer] = await getJson(url); } catch (e) { status = 0; answer = {}; }
    if (mine !== token) return;
    if (status === 200) {
      since = answer.version;
      current.load = answer.load;
      if (!answer.units && doc) { answer.units = doc.units; answer.symbols = doc.symbols; }   // sent once
      doc = answer;
      receivedAt = performance.now();
      draw();
      pageReady();
      continue;
    }
    if (status === 404) { showMissing(answer.error); pageReady(); return; }
    await new Promise((done) => setTimeout(done, 1000 * ((answer && answer.retry_s) || 2)));
  }
}

function showMissing(text) {
  $("title").textContent = text || t("web.monitor.no_device");
  $("state").textContent = "";
  $("tabs").replaceChildren();
  $("panel").hidden = true;
}

// ---------------------------------------------------------------- drawing

function draw() {
  const device = doc.device;
  const loadEntry = device.loads.find((l) => l.load === doc.load);
  const where = device.reference + "@" + device.address;        // a default name already says it
  $("title").textContent = device.name + (device.name.includes(where) ? "" : " · " + where) +
    (loadEntry && loadEntry.name !== device.name ? " — " + (loadEntry.name || t("web.pane.load", {n: loadEntry.load}))
      : "");                                                     // a generic device's one load bears its name
  drawState();
  const shape = JSON.stringify([doc.address, doc.load, doc.tabs, doc.outputs, doc.phasors && doc.phasors.source]);
  if (!doc.tabs.some((tab) => tab.id === activeTab)) activeTab = doc.tabs.length ? doc.tabs[0].id : "";
  if (shape !== drawnShape) { drawTabs(); drawPanel(); drawnShape = shape; }
  updateValues();
}

function drawState() {
  const device = doc.device, state = $("state");
  state.className = "state " + device.state;
  const age = device.age_s === null ? null : device.age_s + elapsed();
  state.textContent = t("web.devices.state." + device.state) + (device.state === "ok" || age === null ? "" :
    " · " + ageText(age));
}

function drawTabs() {
  const bar = $("tabs");
  bar.replaceChildren();
  for (const tab of doc.tabs) {
    const selected = tab.id === activeTab;
    const button = el("button", {type: "button", role: "tab", id: "tab-" + tab.id, "data-tab": tab.id,
                                 "aria-selected": String(selected), "aria-controls": "panel",
                                 tabindex: selected ? "0" : "-1"}, t("web.monitor.tab." + tab.id));
    button.addEventListener("click", () => { activeTab = tab.id; drawTabs(); drawPanel(); updateValues(); });
    button.addEventListener("keydown", (event) => {
      const ids = doc.tabs.map((x) => x.id);
      const step = {ArrowRight: 1, ArrowLeft: -1}[event.key];
      if (!step) return;
      activeTab = ids[(ids.indexOf(activeTab) + step + ids.length) % ids.length];
      drawTabs(); drawPanel(); updateValues();
      $("tab-" + activeTab).focus();
    });
    bar.append(button);
  }
  $("panel").setAttribute("aria-labelledby", "tab-" + activeTab);
}

function drawPanel() {
  const panel = $("panel");
  panel.replaceChildren();
  const tab = doc.tabs.find((x) => x.id === activeTab);
  panel.hidden = !tab;
  if (!tab) { $("title").textContent += " — " + t("web.monitor.nothing"); return; }
  if (tab.id === "summary" && doc.phasors) panel.append(phasorCard());
  for (const group of tab.groups) panel.append(groupCard(tab.id, group));
}

function groupCard(tabId, group) {
  const card = el("section", {class: "card", "aria-labelledby": "g-" + group.id});
  card.append(el("h3", {id: "g-" + group.id}, t("web.monitor.group." + group.id)));
  if (tabId === "summary" && group.id === "network" && doc.network) {
    card.append(el("p", {class: "note"}, t("web.monitor.network_type", {type: doc.network})));
  }
  const table = el("table", {class: "values"});
  const body = el("tbody");
  const bars = ["currents", "phase_voltages", "line_voltages", "active", "apparent"].includes(group.id);
  for (const key of group.keys) {
    const row = el("tr", {"data-row": key});
    const head = el("th", {scope: "row"}, label(key));
    if (tabId === "device_data") head.setAttribute("translate", "no");     // the user's own name, in no language
    const value = el("td", {class: "val", "data-key": key});
    const quality = el("td", {class: "q", "data-q": key});
    row.append(head, value, quality);
    if (bars && !key.endsWith("sys") && key.length <= 3) {
      head.append(el("span", {class: "bar", "aria-hidden": "true"}));
      head.lastChild.append(el("span"));
    }
    if (group.id === "outputs") row.append(outputCell(key));
    body.append(row);
  }
  table.append(body);
  card.append(table);
  if (group.id === "outputs" && doc.outputs && !writeRights.may) {
    card.append(el("p", {class: "refusal", id: "output-refusal"},
                   t("web.monitor.refused." + (writeRights.reason === "policy" ? "policy" : "rights"))));
  }
  if (group.id === "factor") card.append(el("p", {class: "note"}, t("web.monitor.tan_note")));
  if (group.id === "device_data") card.append(el("p", {class: "note"}, t("web.genweb.monitor_note")));
  return card;
}

function outputCell(key) {
  const cell = el("td");
  if (!doc.outputs || !writeRights.may || !doc.outputs.keys.includes(key)) return cell;
  const button = el("button", {type: "button", class: "switch", "data-output": key});
  button.addEventListener("click", () => switchOutput(key, button));
  cell.append(button);
  return cell;
}

function updateValues() {
  const since = elapsed();
  let peaks = {};
  for (const cell of document.querySelectorAll("#panel td.val[data-key]")) {
    const key = cell.dataset.key, entry = doc.values[key];
    if (!entry) continue;
    const [value, quality, age] = entry;
    cell.dataset.value = value === null ? "" : String(value);
    cell.textContent = doc.own && doc.own[key] ? formatOwn(value, unitOf(key)) : format(value, unitOf(key));
    const row = cell.parentElement;
    row.className = quality;
    const q = row.querySelector("td.q");
    q.dataset.quality = quality;
    q.textContent = t("web.monitor.quality." + quality) + (age === null ? "" : " · " + ageText(age + since));
    const bar = row.querySelector(".bar > span");
    if (bar) {
      const group = row.closest("tbody");
      const peak = peaks[key[0]] || Math.max(...Array.from(group.querySelectorAll("td.val[data-key]"))
        .map((c) => Math.abs((doc.values[c.dataset.key] || [0])[0] || 0)));
      peaks[key[0]] = peak;
      bar.style.width = (peak ? Math.min(100, 100 * Math.abs(value || 0) / peak) : 0).toFixed(1) + "%";
    }
    const button = row.querySelector("button[data-output]");
    if (button && !button.disabled) {
      button.dataset.state = String(value ? 1 : 0);
      button.textContent = t(value ? "web.monitor.switch_off" : "web.monitor.switch_on");
      button.setAttribute("aria-label", t(value ? "web.monitor.switch_off_named" : "web.monitor.switch_on_named",
                                          {name: label(key)}));
    }
  }
  if (activeTab === "summary" && doc.phasors) updatePhasors();
}

// Ages tick every second between answers (the server's age plus the time since the answer came).
function tick() {
  if (!doc) return;
  drawState();
  const since = elapsed();
  for (const q of document.querySelectorAll("#panel td.q[data-q]")) {
    const entry = doc.values[q.dataset.q];
    if (entry && entry[2] !== null) {
      q.textContent = t("web.monitor.quality." + entry[1]) + " · " + ageText(entry[2] + since);
    }
  }
}

// ---------------------------------------------------------------- the phasor (vector) diagram

function phasorCard() {
  const card = el("section", {class: "card wide", "aria-labelledby": "g-phasor"});
  card.append(el("h3", {id: "g-phasor"}, t("web.monitor.group.phasor")));
  const box = el("div", {class: "phasor"});
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "-120 -120 240 240");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-labelledby", "g-phasor");
  svg.id = "phasor";
  for (const r of [50, 100]) {
    const circle = document.createElementNS(SVG, "circle");
    circle.setAttribute("r", String(r));
    circle.setAttribute("class", "grid");
    svg.append(circle);
  }
  for (const [x1, y1, x2, y2] of [[-110, 0, 110, 0], [0, -110, 0, 110]]) {
    const line = document.createElementNS(SVG, "line");
    for (const [name, v] of Object.entries({x1, y1, x2, y2})) line.setAttribute(name, String(v));
    line.setAttribute("class", "grid");
    svg.append(line);
  }
  const table = el("table", {class: "values", id: "phasor-table"});
  const head = el("thead");
  const headRow = el("tr");
  for (const key of ["web.monitor.phasor.name", "web.monitor.phasor.magnitude", "web.monitor.phasor.angle"]) {
    headRow.append(el("th", {scope: "col"}, t(key)));
  }
  head.append(headRow);
  table.append(head, el("tbody"));
  box.append(svg, table);
  card.append(box, el("p", {class: "note"}, t("web.monitor.phasor_note." + doc.phasors.source)));
  return card;
}

function updatePhasors() {
  const svg = $("phasor");
  if (!svg) return;
  for (const node of svg.querySelectorAll(".vec, text")) node.remove();
  const body = $("phasor-table").querySelector("tbody");
  body.replaceChildren();
  const {voltages, currents} = doc.phasors;
  const vmax = Math.max(...voltages.map((v) => v.magnitude), 1e-9);
  const imax = Math.max(...currents.map((c) => c.magnitude), 1e-9);
  const vectors = voltages.map((v) => Object.assign({kind: "voltage", length: 100 * v.magnitude / vmax, unit: "V"}, v))
    .concat(currents.map((c) => Object.assign({kind: "current", length: 75 * c.magnitude / imax, unit: "A"}, c)));
  for (const vector of vectors) {
    const radians = vector.angle * Math.PI / 180;
    const x = vector.length * Math.cos(radians), y = -vector.length * Math.sin(radians);
    const phase = "p" + vector.name.slice(1);
    const line = document.createElementNS(SVG, "line");
    for (const [name, v] of Object.entries({x1: 0, y1: 0, x2: x.toFixed(1), y2: y.toFixed(1)})) {
      line.setAttribute(name, String(v));
    }
    line.setAttribute("class", "vec " + phase + (vector.kind === "current" ? " cur" : "") +
                      (vector.quality === "good" ? "" : " lost"));
    line.dataset.name = vector.name;
    line.dataset.angle = String(vector.angle);
    const text = document.createElementNS(SVG, "text");
    const scale = (vector.length + 12) / Math.max(vector.length, 1e-9);
    text.setAttribute("x", (x * scale - 6).toFixed(1));
    text.setAttribute("y", (y * scale + 4).toFixed(1));
    text.setAttribute("class", phase);
    text.textContent = vector.name;
    svg.append(line, text);
    const row = el("tr", {class: vector.quality, "data-phasor": vector.name});
    row.append(el("th", {scope: "row"}, vector.name), el("td", {class: "val"}, format(vector.magnitude, vector.unit)),
               el("td", {class: "val", "data-angle": String(vector.angle)},
                  vector.angle.toLocaleString(numbers, {minimumFractionDigits: 1, maximumFractionDigits: 1}) + "°"));
    body.append(row);
  }
  svg.setAttribute("aria-label", t("web.monitor.group.phasor") + ": " + vectors.map((v) => v.name + " " +
    v.angle.toFixed(0) + "°").join(", "));
}

// ---------------------------------------------------------------- outputs

function confirmed(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise((done) => {
    dialog.addEventListener("close", () => done(dialog.returnValue === "yes"), {once: true});
    dialog.showModal();
  });
}

async function switchOutput(key, button) {
  const target = button.dataset.state === "1" ? 0 : 1;
  const name = label(key);
  const device = doc.device;
  if (!await confirmed(t(target ? "web.monitor.confirm_on" : "web.monitor.confirm_off",
                         {name, device: device.name}))) return;
  button.disabled = true;
  const message = $("message");
  const [status, answer] = await postJson("/api/devices/" + doc.address + "/0/" + key, {value: target});
  button.disabled = false;
  if (status === 200) {
    message.className = "message ok";
    message.textContent = t(target ? "web.monitor.switched_on" : "web.monitor.switched_off", {name});
    doc.values[key] = [target, "good", 0];
    receivedAt = performance.now();
    updateValues();
  } else {
    message.className = "message bad";
    message.textContent = t("web.monitor.switch_refused", {name, reason: answer.error || String(status)});
  }
}

// ---------------------------------------------------------------- start

async function start() {
  if (!await startView()) return;              // the views' top bar (static/viewbar.js) and the session
  numbers = session.language === "fr" ? "fr-FR" : "en-GB";
  const [rightsStatus, rights] = await getJson("/api/monitor/may-write");
  if (rightsStatus === 200) writeRights = rights;
  pane = new Pane($("pane"), {organisations: ["area", "usage", "fluid"], select: "load", onSelect: select});
  await pane.load();
  const query = new URLSearchParams(location.search);
  const address = parseInt(query.get("address"), 10), load = parseInt(query.get("load"), 10);
  if (address > 0) {
    const item = {address, load: load > 0 ? load : null};
    pane.select(address, item.load);
    if (!current) select(item);
  } else {
    const first = pane.doc && pane.doc.groups.flatMap((g) => g.devices).find((d) => d.loads.length) ||
      (pane.doc && pane.doc.groups.length && pane.doc.groups[0].devices[0]);
    if (first) pane.select(first.address, first.loads.length ? first.loads[0].load : null);
    else pageReady();
  }
  setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", start);
