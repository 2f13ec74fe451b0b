// The Bluetooth page (SPEC §7.2 Protocols > Bluetooth, issue 18): whether a scan runs and why not, the sources,
// and the sensors heard nearby with their values, each with its quality and age, or why their frames are
// refused. GET /api/bluetooth every 3 s; a heard sensor is added as a source through a small form (name, area),
// a source removed after a confirmation; the gateway's answer (or its refusal, per field) is said.
// Text goes in through textContent only.
"use strict";

const REFRESH_MS = 3000;
let state = null;          // the last GET /api/bluetooth
let adding = null;         // the address being added, or null
let timer = null;

function say(id, cls, text) {
  $(id).className = "message" + (cls ? " " + cls : "");
  $(id).textContent = text || "";
}

function number(value) {
  return Number(value).toLocaleString(document.documentElement.lang, {maximumFractionDigits: 3});
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.max(0, seconds);
  return s < 120 ? t("web.bluetooth.seconds", {value: number(Math.round(s * 10) / 10)})
    : t("web.bluetooth.minutes", {value: number(Math.floor(s / 60))});
}

function cell(label, content, cls) {
  const td = el("td", {"data-label": label, class: cls});
  if (content instanceof Node) td.append(content); else td.textContent = content === undefined ? "" : content;
  return td;
}

function valuesList(values) {
  const list = el("ul", {class: "values"});
  const units = state.status.units || {};
  for (const [key, value] of Object.entries(values || {})) {
    const item = el("li", {"data-key": key});
    item.append(t("web.bluetooth.value." + key) + " ", el("span", {class: "num", "data-value": value}, number(value)));
    if (units[key]) item.append(" " + units[key]);
    list.append(item);
  }
  return list;
}

function qualityText(row) {
  if (!row || !row.quality) return t("web.bluetooth.quality.none");
  if (row.values_age_s === null || row.values_age_s === undefined) return t("web.bluetooth.quality." + row.quality);
  return t("web.bluetooth.quality_age", {quality: t("web.bluetooth.quality." + row.quality),
                                         age: t("web.bluetooth.ago", {age: age(row.values_age_s)})});
}

function formatName(row) {
  return t("web.bluetooth.format." + (row.format || "none"));
}

function drawState() {
  const s = state.status;
  $("state-policy").textContent = t(s.policy ? "web.bluetooth.policy.on" : "web.bluetooth.policy.off");
  $("state-policy").className = s.policy ? "on" : "off";
  $("state-enabled").textContent = t(s.enabled ? "web.bluetooth.enabled.on" : "web.bluetooth.enabled.off");
  $("state-enabled").className = s.enabled ? "on" : "off";
  let scan;
  if (!s.radio) scan = t("web.bluetooth.scan.no_radio");
  else if (s.error) scan = t("web.bluetooth.scan.error", {error: s.error});
  else scan = s.running ? t("web.bluetooth.scan.running", {count: s.received}) : t("web.bluetooth.scan.stopped");
  $("state-scan").textContent = scan;
  $("state-scan").className = s.running ? "on" : "off";
}

// A source's values are the cache's ({key: [value, quality, age_s]}: registry keys, "user:<name>" for the others).
const STORED_NAMES = {battery_v: "voltage"};
const QUALITY_RANK = ["good", "stale", "comm_lost"];

function sourceValues(values) {
  const named = {};
  for (const [key, entry] of Object.entries(values || {})) {
    if (entry[0] !== null) named[key.startsWith("user:") ? key.slice(5) : (STORED_NAMES[key] || key)] = entry[0];
  }
  return named;
}

function sourceQuality(values) {
  let worst = null, oldest = null;
  for (const [, quality, age] of Object.values(values || {})) {
    if (worst === null || QUALITY_RANK.indexOf(quality) > QUALITY_RANK.indexOf(worst)) worst = quality;
    if (age !== null && (oldest === null || age > oldest)) oldest = age;
  }
  return {quality: oldest === null ? (worst === "comm_lost" ? worst : null) : worst, values_age_s: oldest};
}

function drawSources() {
  const body = $("sources").tBodies[0];
  body.replaceChildren(...state.sources.map((source) => {
    const summary = sourceQuality(source.values);
    const tr = el("tr", {"data-address": source.address, class: summary.quality || "none"});
    const actions = el("td", {"data-label": t("web.bluetooth.col.actions")});
    if (state.may_edit) {
      const remove = el("button", {type: "button", class: "secondary",
                                   "aria-label": t("web.bluetooth.remove") + " " + source.name}, t("web.bluetooth.remove"));
      remove.addEventListener("click", () => removeSource(source));
      actions.append(remove);
    }
    tr.append(cell(t("web.bluetooth.col.name"), source.name), cell(t("web.bluetooth.col.area"), source.area),
              cell(t("web.bluetooth.col.address"), source.address, "address"),
              cell(t("web.bluetooth.col.device"), source.device),
              cell(t("web.bluetooth.col.format"), t("web.bluetooth.format." + source.format)),
              cell(t("web.bluetooth.col.values"), valuesList(sourceValues(source.values)), "vals"),
              cell(t("web.bluetooth.col.quality"), qualityText(summary), "q " + (summary.quality || "none")),
              actions);
    return tr;
  }));
  $("sources-none").hidden = state.sources.length > 0;
  $("sources-count").textContent = t("web.bluetooth.sources_count", {count: state.sources.length,
                                                                     max: state.status.max_sources});
}

function drawHeard() {
  const body = $("heard").tBodies[0];
  const full = state.sources.length >= state.status.max_sources;
  body.replaceChildren(...state.heard.map((row) => {
    const tr = el("tr", {"data-address": row.address, class: row.quality || "none"});
    const values = el("div");
    if (row.values) values.append(valuesList(row.values));
    if (row.refusal) values.append(el("p", {class: "refusal"}, t("web.bluetooth.refused." + row.refusal)));
    const actions = el("td", {"data-label": t("web.bluetooth.col.actions")});
    if (row.source) {
      actions.textContent = t("web.bluetooth.is_source", {name: row.source});
    } else if (state.may_edit) {
      const add = el("button", {type: "button", "aria-label": t("web.bluetooth.add_title", {address: row.address})},
                     t("web.bluetooth.add"));
      const why = !row.values || !row.format ? "web.bluetooth.not_readable" : (full ? "web.bluetooth.full" : null);
      if (why) { add.disabled = true; add.title = t(why); }
      add.addEventListener("click", () => openEditor(row));
      actions.append(add);
      if (why) actions.append(el("p", {class: "help"}, t(why)));
    }
    tr.append(cell(t("web.bluetooth.col.name"), row.name || t("web.bluetooth.unnamed")),
              cell(t("web.bluetooth.col.address"), row.address, "address"),
              cell(t("web.bluetooth.col.format"), formatName(row)),
              cell(t("web.bluetooth.col.values"), values, "vals"),
              cell(t("web.bluetooth.col.quality"), qualityText(row), "q " + (row.quality || "none")),
              cell(t("web.bluetooth.col.signal"), row.rssi === null ? "" : t("web.bluetooth.rssi", {value: row.rssi})),
              cell(t("web.bluetooth.col.heard"), t("web.bluetooth.ago", {age: age(row.age_s)})),
              actions);
    return tr;
  }));
  $("heard-none").hidden = state.heard.length > 0;
  $("heard-none").textContent = t(state.status.running ? "web.bluetooth.heard_none" : "web.bluetooth.heard_off");
  $("updated").textContent = t("web.bluetooth.updated", {time: new Date().toLocaleTimeString(
    document.documentElement.lang === "fr" ? "fr-FR" : "en-GB")});
}

// force: redraw even with the focus in a table (after this page's own change, the focused row may be gone)
async function refresh(force) {
  clearTimeout(timer);
  try {
    const [status, answer] = await getJson("/api/bluetooth");
    if (status !== 200) { say("page-message", "bad", answer.error || t("web.bluetooth.error")); return; }
    state = answer;
    drawState();
    // a focused button keeps its place: redraw the tables only when the focus is not inside them
    const inTable = document.activeElement && document.activeElement.closest("table");
    if (force || !inTable) { drawSources(); drawHeard(); }
  } finally {
    timer = setTimeout(() => refresh(false), REFRESH_MS);
  }
}

function clearErrors() {
  for (const field of ["name", "area", "address"]) $("e-" + field).textContent = "";
  for (const field of ["name", "area"]) $("f-" + field).removeAttribute("aria-invalid");
  say("add-message", "", "");
}

function openEditor(row) {
  adding = row.address;
  $("editor-title").textContent = t("web.bluetooth.add_title", {address: row.address});
  $("f-name").value = row.name || "";
  $("f-area").value = "";
  clearErrors();
  $("editor").hidden = false;
  $("f-name").focus();
}

function closeEditor() {
  adding = null;
  $("editor").hidden = true;
}

async function save(event) {
  event.preventDefault();
  clearErrors();
  const name = $("f-name").value;
  const [status, answer] = await postJson("/api/bluetooth/sources", {address: adding, name: name, area: $("f-area").value});
  if (status === 200) {
    closeEditor();
    say("page-message", "ok", t("web.bluetooth.added", {name: answer.source.name}));
    await refresh(true);
    return;
  }
  say("add-message", "bad", (answer.messages || []).length ? t("web.bluetooth.refused") : answer.error);
  for (const message of answer.messages || []) {
    const target = $("e-" + message.field);
    if (target) target.textContent = message.message;
    if ($("f-" + message.field)) $("f-" + message.field).setAttribute("aria-invalid", "true");
  }
}

async function removeSource(source) {
  if (!confirm(t("web.bluetooth.confirm_remove", {name: source.name, address: source.address}))) return;
  const [status, answer] = await postJson("/api/bluetooth/sources/remove", {address: source.address});
  if (status === 200) say("page-message", "ok", t("web.bluetooth.removed", {name: source.name}));
  else say("page-message", "bad", answer.error);
  await refresh(true);
  $("sources-title").focus();          // the removed row's button is gone: the focus goes to its table's title
}

async function start() {
  if (!await startSession()) return;
  document.title = t("web.bluetooth.title");
  await refresh(true);
  if (state && !state.may_edit) say("page-message", "", t("web.bluetooth.read_only"));
  $("add-form").addEventListener("submit", save);
  $("cancel").addEventListener("click", closeEditor);
  $("editor").addEventListener("keydown", (event) => { if (event.key === "Escape") closeEditor(); });
  pageReady();  // drawn once: what a test waits for
}

start().catch((err) => say("page-message", "bad", t("web.bluetooth.error") + " " + err.message));
