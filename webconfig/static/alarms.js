// The Alarms and events page (manual §8.3, issue 17): period and filters applied on the gateway
// (GET /api/alarms/log, one bounded page), the table newest first, a details pane, acknowledgement
// (POST /api/alarms/acknowledge: the gateway refuses the profiles without the right, with its message), the
// export of what is filtered (GET /api/alarms/export: a ZIP of CSV files). The table is polled every few
// seconds so active alarms come and go without a reload; the selected row stays selected.
"use strict";

const POLL_MS = 5000;
const PRESETS = {"24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400};
const FILTERS = ["source", "type", "status", "category", "criticality"];
const DEFAULT_PRESET = "30d";

let applied = {};              // the query of the table shown (what Validate last applied)
let pageIndex = 0;
let selectedId = null;
let shown = [];                // the rows of the page shown
let mayAcknowledge = false;
let ackProfiles = [];
let busy = false;

// ------------------------------------------------------------------ texts of a row

function alarmName(row) {
  if (row.type === "system") return t("web.status.alarm." + row.alarm) === "web.status.alarm." + row.alarm
    ? row.name : t("web.status.alarm." + row.alarm);
  const index = row.alarm % 100;
  const key = row.category === "power_quality" ? "web.alarms.pq." + index
    : row.category === "device" ? "web.alarms.device_alarm." + index : "web.alarms.kind." + row.category;
  const text = t(key, {n: index});
  return text === key ? row.name : text;
}

function sourceText(row) {
  return row.source_name ? row.source_name + (row.load ? " · " + t("web.alarms.load", {n: row.load}) : "")
    : row.source;
}

function statusText(row) {
  const status = t("web.alarms.status." + row.status);
  return row.acknowledged ? status + " · " + t("web.alarms.status.acknowledged") : status;
}

function when(ts) {
  if (typeof ts !== "number") return "";
  return new Date(ts * 1000).toLocaleString(document.documentElement.lang, {dateStyle: "short", timeStyle: "medium"});
}

function duration(seconds) {
  if (seconds < 1) return t("web.alarms.ms", {n: Math.round(seconds * 1000)});
  if (seconds < 120) return t("web.alarms.s", {n: Math.round(seconds)});
  if (seconds < 7200) return t("web.alarms.min", {n: Math.round(seconds / 60)});
  if (seconds < 172800) return t("web.alarms.h", {n: Math.round(seconds / 3600)});
  return t("web.alarms.d", {n: Math.round(seconds / 86400)});
}

// ------------------------------------------------------------------ the query

function toLocalInput(seconds) {
  const d = new Date(seconds * 1000);
  d.setMinutes(d.getMinutes() - d.getTimezoneOffset());
  return d.toISOString().slice(0, 19);
}

function fromLocalInput(text) {
  if (!text) return null;
  const ms = new Date(text).getTime();
  return Number.isNaN(ms) ? NaN : ms / 1000;
}

function presetPeriod(preset) {
  const now = Date.now() / 1000;
  if (PRESETS[preset]) return [now - PRESETS[preset], null];
  if (preset === "year") return [new Date(new Date().getFullYear(), 0, 1).getTime() / 1000, null];
  return [null, null];
}

function showPreset() {
  const preset = $("preset").value;
  const custom = preset === "custom";
  $("from").disabled = $("to").disabled = !custom;
  if (!custom) {
    const [from, to] = presetPeriod(preset);
    $("from").value = from === null ? "" : toLocalInput(from);
    $("to").value = to === null ? "" : toLocalInput(to);
  }
}

// The form's query, or null (with the field marked) when the period is not a period.
function formQuery() {
  const query = {};
  let from, to;
  if ($("preset").value === "custom") {
    from = fromLocalInput($("from").value);
    to = fromLocalInput($("to").value);
  } else {
    [from, to] = presetPeriod($("preset").value);
  }
  for (const id of ["from", "to"]) $(id).removeAttribute("aria-invalid");
  if (Number.isNaN(from) || Number.isNaN(to) || (from !== null && to !== null && from > to)) {
    $(Number.isNaN(from) ? "from" : "to").setAttribute("aria-invalid", "true");
    say($("message"), t("web.alarms.bad_period"), "bad");
    return null;
  }
  if (from !== null) query.from = from.toFixed(0);
  if (to !== null) query.to = to.toFixed(0);
  for (const name of FILTERS) if ($("f-" + name).value) query[name] = $("f-" + name).value;
  return query;
}

function queryString(query, paging) {
  const params = new URLSearchParams(query);
  if (paging) { params.set("page", pageIndex); params.set("size", $("size").value); }
  return params.toString();
}

function say(node, text, kind) {
  node.textContent = text || "";
  node.className = "message" + (kind ? " " + kind : "");
}

// ------------------------------------------------------------------ drawing

function drawSources(options) {
  const select = $("f-source");
  const chosen = select.value;
  const wanted = options.map((o) => o.source + "\u0000" + o.name).join("\n");
  if (select.dataset.options === wanted) return;
  select.dataset.options = wanted;
  const items = [el("option", {value: ""}, t("web.alarms.any"))];
  for (const option of options) {
    items.push(el("option", {value: option.source}, option.name ? option.name + " (" + option.source + ")"
      : option.source));
  }
  select.replaceChildren(...items);
  select.value = options.some((o) => o.source === chosen) ? chosen : "";
}

function drawRow(row, now) {
  const tr = el("tr", {"data-id": row.id, "class": "st-" + row.status + (row.acknowledged ? " acked" : ""),
                       "aria-selected": row.id === selectedId ? "true" : "false"});
  const name = el("button", {type: "button", "class": "link"}, alarmName(row));
  name.addEventListener("click", () => select(row.id));
  const end = row.end !== null ? when(row.end)
    : t("web.alarms.active_for", {age: duration(Math.max(0, now - row.start))});
  const cells = [el("td", null, when(row.start)), el("td", {"class": row.end === null ? "ongoing" : ""}, end)];
  const nameCell = el("td");
  nameCell.append(name);
  cells.push(nameCell, el("td", null, sourceText(row)), el("td", null, t("web.alarms.type." + row.type)));
  const crit = el("td");
  crit.append(el("span", {"class": "badge crit-" + row.criticality}, t("web.alarms.criticality." + row.criticality)));
  const status = el("td");
  status.append(el("span", {"class": "badge status-" + row.status}, statusText(row)));
  cells.push(crit, status);
  tr.append(...cells);
  tr.addEventListener("click", (event) => { if (event.target.tagName !== "BUTTON") select(row.id); });
  return tr;
}

function draw(answer) {
  shown = answer.rows;
  ackProfiles = answer.acknowledge_profiles || [];
  mayAcknowledge = ackProfiles.includes(session.profile);
  drawSources(answer.sources);
  $("rows").replaceChildren(...answer.rows.map((row) => drawRow(row, answer.now)));
  $("empty").hidden = answer.total > 0;
  const first = answer.total ? answer.page * answer.size + 1 : 0;
  const last = answer.page * answer.size + answer.rows.length;
  $("summary").textContent = t("web.alarms.summary", {first, last, total: answer.total});
  const pages = Math.max(1, Math.ceil(answer.total / answer.size));
  $("page-info").textContent = t("web.alarms.page_of", {page: answer.page + 1, pages});
  $("prev").disabled = answer.page === 0;
  $("next").disabled = answer.page + 1 >= pages;
  $("active-count").textContent = t("web.alarms.active_count", {n: answer.active});
  $("active-count").classList.toggle("some", answer.active > 0);
  $("updated").textContent = t("web.alarms.updated", {time: new Date().toLocaleTimeString(document.documentElement.lang)});
  $("export").href = "/api/alarms/export?" + queryString(applied, false);
  drawDetails();
}

function detail(list, key, value) {
  if (value === undefined || value === null || value === "") return;
  list.append(el("dt", null, t(key)), el("dd", null, value));
}

function drawDetails() {
  const row = shown.find((r) => r.id === selectedId);
  $("details-empty").hidden = !!row;
  $("details-list").hidden = !row;
  $("ack").hidden = !(row && row.ackable);
  $("ack-note").hidden = true;
  if (!row) return;
  const list = el("dl", {id: "details-list"});
  detail(list, "web.alarms.col.name", alarmName(row));
  detail(list, "web.alarms.col.source", sourceText(row));
  detail(list, "web.alarms.source_id", row.source);
  detail(list, "web.alarms.col.type", t("web.alarms.type." + row.type));
  detail(list, "web.alarms.category", t("web.alarms.category." + row.category));
  detail(list, "web.alarms.col.criticality", t("web.alarms.criticality." + row.criticality));
  detail(list, "web.alarms.col.status", statusText(row));
  detail(list, "web.alarms.col.start", when(row.start));
  detail(list, "web.alarms.col.end", row.end !== null ? when(row.end) : t("web.alarms.status.active"));
  if (row.duration_ms !== undefined && row.duration_ms !== null) {
    detail(list, "web.alarms.duration", duration(row.duration_ms / 1000));
  } else if (row.end !== null && typeof row.start === "number") {
    detail(list, "web.alarms.duration", duration(row.end - row.start));
  }
  detail(list, "web.alarms.number", row.alarm);
  detail(list, "web.alarms.value", row.value);
  detail(list, "web.alarms.detail", row.detail);
  if (row.acknowledged) {
    detail(list, "web.alarms.acked_by", row.acknowledged.by);
    detail(list, "web.alarms.acked_at", when(row.acknowledged.ts));
  }
  $("details-list").replaceWith(list);
  const note = $("ack-note");
  if (row.type !== "system") {
    note.textContent = t("web.alarms.ack_on_device");
    note.hidden = false;
  } else if (row.ackable && !mayAcknowledge) {
    note.textContent = t("web.alarms.ack_profiles", {profile: t("web.profile." + session.profile),
      profiles: ackProfiles.map((p) => t("web.profile." + p)).join(", ")});
    note.hidden = false;
  }
}

function select(id) {
  selectedId = id;
  say($("ack-message"), "");
  for (const tr of $("rows").children) tr.setAttribute("aria-selected", tr.dataset.id === id ? "true" : "false");
  drawDetails();
}

// ------------------------------------------------------------------ requests

async function load(quiet) {
  if (busy) return;
  busy = true;
  try {
    const [status, answer] = await getJson("/api/alarms/log?" + queryString(applied, true));
    if (status !== 200) { say($("message"), answer.error || t("web.alarms.failed"), "bad"); return; }
    if (answer.total && answer.page * answer.size >= answer.total) {     // the page emptied: show the last one
      pageIndex = Math.ceil(answer.total / answer.size) - 1;
      busy = false;
      return load(quiet);
    }
    if (!quiet) say($("message"), "");
    draw(answer);
  } catch (err) {
    say($("message"), t("web.alarms.failed"), "bad");
  } finally {
    busy = false;
  }
}

async function acknowledge() {
  const row = shown.find((r) => r.id === selectedId);
  if (!row) return;
  $("ack").disabled = true;
  try {
    const [status, answer] = await postJson("/api/alarms/acknowledge", {alarm: row.alarm, source: row.source});
    if (status === 200) {
      say($("ack-message"), t("web.alarms.acked"), "ok");
      await load(true);
    } else {
      say($("ack-message"), answer.error || t("web.alarms.failed"), "bad");
    }
  } finally {
    $("ack").disabled = false;
  }
}

function validate(event) {
  if (event) event.preventDefault();
  const query = formQuery();
  if (query === null) return;
  applied = query;
  pageIndex = 0;
  load(false);
}

function reset() {
  $("preset").value = DEFAULT_PRESET;
  for (const name of FILTERS) $("f-" + name).value = "";
  showPreset();
  validate();
}

async function start() {
  if (!(await startView())) return;             // the views' top bar (static/viewbar.js) and the session
  $("filters").addEventListener("submit", validate);
  $("reset").addEventListener("click", reset);
  $("preset").addEventListener("change", showPreset);
  $("prev").addEventListener("click", () => { pageIndex = Math.max(0, pageIndex - 1); load(false); });
  $("next").addEventListener("click", () => { pageIndex += 1; load(false); });
  $("size").addEventListener("change", () => { pageIndex = 0; load(false); });
  $("ack").addEventListener("click", acknowledge);
  $("export").addEventListener("click", (event) => {
    const query = formQuery();                         // what the form says now (the table follows it too)
    if (query === null) { event.preventDefault(); return; }
    if (queryString(query, false) !== queryString(applied, false)) { applied = query; pageIndex = 0; load(false); }
    $("export").href = "/api/alarms/export?" + queryString(applied, false);
  });
  $("preset").value = DEFAULT_PRESET;
  showPreset();
  applied = formQuery() || {};
  await load(false);
  pageReady();
  setInterval(() => { if (!document.hidden) load(true); }, POLL_MS);
}

start();
