// Read-only status page: polls /api/status every 2 s and redraws. Every text comes from the gateway's catalogue
// (GET /api/i18n/<language>, the session's language, else ?lang=, else the browser's); the links offered are the
// pages the reader may open (GET /api/pages). All data goes into the DOM through textContent, never innerHTML, so
// device names or alarm details can't inject markup.
"use strict";

const POLL_MS = 2000;
const QUALITIES = ["good", "stale", "comm_lost", "not_supported"];
const DEVICE_STATES = ["ok", "stale", "comm_lost", "conflict", "unknown", "absent"];
const NBSP = "\u00a0";

let texts = {};
let lang = "en";
let lastOk = null;      // browser time (ms) of the last successful update

function $(id) { return document.getElementById(id); }

// The catalogue's text of ``key`` with its {placeholders} filled; ``fallback`` (else the key) when it has none.
function t(key, params, fallback) {
  const template = key in texts ? texts[key] : (fallback === undefined ? key : fallback);
  return Object.entries(params || {}).reduce((text, [name, value]) => text.split("{" + name + "}").join(value),
                                             String(template));
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function row(cells, header) {
  const tr = el("tr");
  for (const cell of cells) {
    const td = el(header ? "th" : "td");
    if (cell instanceof Node) td.append(cell);
    else if (Array.isArray(cell)) { td.className = cell[1]; td.textContent = String(cell[0]); }
    else td.textContent = cell === undefined || cell === null ? "—" : String(cell);
    tr.append(td);
  }
  if (header) for (const th of tr.children) th.scope = "col";
  return tr;
}

// Only known names become CSS classes; anything else gets the neutral grey badge. Its words from the catalogue.
function badge(value, known, prefix) {
  const text = value === undefined || value === null ? "?" : String(value);
  return el("span", known.includes(text) ? "badge " + text : "badge", t(prefix + text, null, text.replace("_", " ")));
}

// A number with ``digits`` decimals in the page's language (a decimal comma in French), no grouping.
function decimal(v, digits) {
  return v.toLocaleString(lang, {minimumFractionDigits: digits, maximumFractionDigits: digits, useGrouping: false});
}

function fmtNumber(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return v === undefined || v === null ? "—" : String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return decimal(v, a >= 1000 ? 1 : a >= 100 ? 2 : 3);
}

function fmtMs(v) {
  return typeof v === "number" && Number.isFinite(v) ? t("web.status.unit.ms", {value: decimal(v, 1)}) : "—";
}

function fmtValue(v, unit) {
  if (typeof v === "boolean") return t(v ? "web.status.on" : "web.status.off");
  const text = fmtNumber(v);
  return unit && text !== "—" ? text + " " + unit : text;
}

function fmtAge(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, seconds);
  if (s < 10) return t("web.status.unit.s", {value: decimal(s, 1)});
  if (s < 120) return t("web.status.unit.s", {value: Math.round(s)});
  if (s < 7200) return t("web.status.unit.min", {value: Math.round(s / 60)});
  if (s < 172800) return t("web.status.unit.h", {value: Math.round(s / 3600)});
  return t("web.status.unit.d", {value: Math.round(s / 86400)});
}

function fmtClock(epoch) {
  return typeof epoch === "number" ? new Date(epoch * 1000).toLocaleTimeString(lang) : "—";
}

function renderIdentity(gw) {
  const name = gw.name || t("web.status.gateway");
  document.title = t("web.status.title", {name});
  $("gw-name").textContent = name;
  const fields = [["reference", gw.reference], ["netid", gw.netid], ["firmware", gw.firmware],
                  ["board", gw.board], ["modbus_address", gw.modbus_address], ["uptime", fmtAge(gw.uptime_s)]];
  const items = fields.map(([key, value]) => {
    const div = el("div");
    div.append(el("dt", null, t("web.status." + key)), el("dd", null, value ?? "—"));
    return div;
  });
  $("gw-info").replaceChildren(...items);
}

// Device alarms read from the meters (docs/device-alarms.md), shaped like system alarm rows. Their names and
// details are the meters' records as the daemon describes them; the category is the catalogue's.
function deviceAlarmRows(deviceAlarms) {
  return ((deviceAlarms && deviceAlarms.list) || []).map((a) => ({
    device: true, alarm: a.alarm, name: a.name, criticality: a.criticality,
    sources: [{source: a.source + " (" + t("web.status.category." + a.kind, null, a.category) + ")",
               since: a.since, detail: a.detail, confirmed: true}],
  }));
}

function alarmName(alarm) {
  if (alarm.device) return alarm.name || t("web.status.alarm_number", {number: alarm.alarm});
  return t("web.status.alarm." + alarm.alarm, null, alarm.name || t("web.status.alarm_number", {number: alarm.alarm}));
}

// A detail the daemon also gives as a catalogue key is said in the page's language (profile lists translated);
// otherwise its English text.
function detailOf(source) {
  if (!source.text) return source.detail;
  const params = {};
  for (const [name, value] of Object.entries(source.text.params || {})) {
    params[name] = Array.isArray(value) ? value.map((p) => t("web.profile." + p, null, p)).join(", ") : value;
  }
  return t(source.text.key, params, source.detail);
}

function renderAlarms(alarms) {
  const items = alarms.map((alarm) => {
    const li = el("li", alarm.criticality === "critical" ? "critical" : "minor");
    li.append(el("strong", null, alarmName(alarm)));
    const criticality = alarm.criticality || "unknown";
    li.append(document.createTextNode(" (" + t("web.status.criticality." + criticality, null, criticality) + ")"));
    const sources = (alarm.sources || []).map((s) =>
      t("web.status.since", {source: s.source, time: fmtClock(s.since)}) +
      (s.confirmed ? "" : " (" + t("web.status.unconfirmed") + ")") + (detailOf(s) ? ": " + detailOf(s) : ""));
    if (sources.length) li.append(el("span", "sources", sources.join(" · ")));
    return li;
  });
  $("alarms").replaceChildren(...items);
  $("no-alarms").hidden = items.length > 0;
}

function renderBuses(buses) {
  const items = Object.entries(buses).map(([name, bus]) => {
    const li = el("li");
    li.append(el("b", null, name));
    // no-break spaces keep a number with its label when the line wraps (a narrow screen)
    const nb = (text) => text.split(" ").join(NBSP);
    const queued = Object.entries(bus.queued || {}).map(([k, n]) => t("web.status.class." + k, null, k) + NBSP + n).join(", ");
    const line = bus.baud ? nb(t("web.status.baud", {baud: bus.baud})) + " " + (bus.parity ?? "") + (bus.stop_bits ?? "")
      : "";
    li.append(document.createTextNode(
      [bus.port, line, bus.mode ? t("web.status.mode." + bus.mode, null, bus.mode) : "",
       nb(t("web.status.cycle", {time: fmtMs(bus.cycle_ms)})), nb(t("web.status.cycles", {count: fmtNumber(bus.cycles)})),
       queued ? t("web.status.queued", {list: queued}) : ""].filter(Boolean).join(" · ")));
    return li;
  });
  $("buses").replaceChildren(...items);
}

// A table inside its own horizontal scroller: a table wider than its card (a narrow screen, a long
// name) scrolls there, never the page, and its cells are never cut off.
function scroller(table) {
  const box = el("div", "table-scroll");
  box.append(table);
  return box;
}

function renderDevice(dev, now) {
  const card = el("article", "device");
  const title = el("h3", null, dev.name || (dev.reference || "?") + "@" + dev.address);
  title.append(badge(dev.status, DEVICE_STATES, "web.diagnosis.device."));
  card.append(title);

  // Identity as a wrapping line; the communication counters as a narrow table of their own.
  const meta = el("dl", "device-meta");
  for (const [key, value] of [["address", dev.address], ["bus", dev.bus], ["reference", dev.reference],
                              ["netid", dev.netid]]) {
    const div = el("div");
    div.append(el("dt", null, t("web.status." + key)), el("dd", null, value ?? "—"));
    meta.append(div);
  }
  card.append(meta);

  const c = dev.counters || {};
  const counters = el("table", "counters");
  counters.append(el("caption", null, t("web.status.communication")));
  counters.append(row(["requests", "timeouts", "crc_errors", "exceptions", "mean_response"].map(
    (key) => t("web.status." + key)), true));
  counters.append(row([[fmtNumber(c.requests), "num"], [fmtNumber(c.timeouts), "num"], [fmtNumber(c.crc_errors), "num"],
                       [fmtNumber(c.exceptions), "num"], [fmtMs(c.mean_response_ms), "num"]]));
  card.append(scroller(counters));

  const loads = new Map((dev.loads || []).map((l) => [String(l.load), l]));
  const values = dev.values || {};
  const keys = Object.keys(values).sort((a, b) => Number(a) - Number(b));
  for (const key of keys) {
    const load = loads.get(key);
    const label = key === "0" ? t("web.status.device_values")
      : t("web.status.load", {load: key}) + (load && load.name ? " — " + load.name : "") +
        (load && load.network ? " (" + load.network + ")" : "");
    const table = el("table", "values");
    table.append(el("caption", null, label));
    table.append(row(["measurement", "value", "quality", "age"].map((k) => t("web.status." + k)), true));
    for (const [id, m] of Object.entries(values[key] || {})) {
      table.append(row([t("web.status.measure." + id, null, m.name || id), [fmtValue(m.value, m.unit), "num"],
                        badge(m.quality, QUALITIES, "web.status.quality."),
                        [typeof m.ts === "number" ? fmtAge(now - m.ts) : "—", "num"]]));
    }
    card.append(scroller(table));
  }
  if (!keys.length) card.append(el("p", "muted", t("web.status.no_values")));
  return card;
}

function renderFooter(s) {
  const d = s.discovery || {};
  const lag = s.loop_lag || {};
  let discovery = d.state ? t("web.status.discovery." + d.state, null, d.state) : "—";
  if (d.state && d.state !== "idle") {
    discovery += " " + t("web.status.discovery_progress", {percent: Math.round(100 * (d.progress || 0)) + NBSP + "%",
                                                           found: d.found ?? 0});
  }
  if (d.message) discovery += " — " + d.message;
  $("footer").textContent = [t("web.status.discovery", {state: discovery}),
    t("web.status.lag", {p50: fmtMs(lag.p50_ms), p99: fmtMs(lag.p99_ms), max: fmtMs(lag.max_ms)})].join(" · ");
}

function render(s) {
  const gw = s.gateway || {};
  const now = typeof gw.time === "number" ? gw.time : Date.now() / 1000;   // ages on the gateway's clock
  renderIdentity(gw);
  renderAlarms((s.alarms || []).concat(deviceAlarmRows(s.device_alarms)));
  renderBuses(s.buses || {});
  const devices = (s.devices || []).map((dev) => renderDevice(dev, now));
  $("devices").replaceChildren(...devices);
  $("no-devices").hidden = devices.length > 0;
  renderFooter(s);
}

function showLastUpdate() {
  const node = $("last-update");
  if (lastOk === null) return;
  const age = (Date.now() - lastOk) / 1000;
  node.textContent = t("web.status.last_update", {time: new Date(lastOk).toLocaleTimeString(lang), age: fmtAge(age)});
  node.classList.toggle("stale", age > 3 * POLL_MS / 1000);
}

async function poll() {
  const started = Date.now();
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), POLL_MS * 2);
  try {
    const response = await fetch("/api/status", { cache: "no-store", signal: abort.signal });
    if (!response.ok) throw new Error("HTTP " + response.status + " " + response.statusText);
    render(await response.json());
    lastOk = Date.now();
    $("fetch-error").hidden = true;
    document.documentElement.dataset.ready = "1";          // drawn once: what a benchmark waits for
  } catch (err) {
    const reason = err.name === "AbortError" ? t("web.status.timed_out") : err.message || String(err);
    $("fetch-error").textContent = lastOk === null ? t("web.status.update_failed", {reason})
      : t("web.status.update_failed_since", {reason, time: new Date(lastOk).toLocaleTimeString(lang)});
    $("fetch-error").hidden = false;
  } finally {
    clearTimeout(timer);
    showLastUpdate();
    setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
  }
}

// The links to the pages this reader may open (the gateway checks each page again itself).
function showNavigation(pages) {
  const items = pages.map((entry) => {
    const link = el("a", null, t("web.status.nav." + entry.page, null, entry.page));
    link.href = entry.path;
    if (entry.path === location.pathname) link.setAttribute("aria-current", "page");
    const item = el("li");
    item.append(link);
    return item;
  });
  $("nav-links").replaceChildren(...items);
}

// Who is logged in and the Log off button, in the session's language. The gateway checks every request
// itself; this only shows who the requests are made as.
function showSession(session) {
  $("who").textContent = session.logged_in ? t("web.session.as", {profile: t("web.profile." + session.profile)})
    : t("web.session.anonymous");
  $("logoff").hidden = !session.logged_in;
  $("login-link").hidden = session.logged_in;
  $("logoff").onclick = async () => {
    await fetch("/api/logout", {method: "POST", headers: {"Content-Type": "application/json",
                                                           "X-CSRF-Token": session.csrf}, body: "{}"});
    location.assign("/login");
  };
}

async function getJson(url) {
  const response = await fetch(url, {cache: "no-store"});
  if (!response.ok) throw new Error("HTTP " + response.status);
  return response.json();
}

async function start() {
  const asked = new URLSearchParams(location.search).get("lang");
  let session = {logged_in: false, profile: "user", language: navigator.language}, pages = [];
  try {
    session = await getJson("/api/session" + (asked ? "?lang=" + encodeURIComponent(asked) : ""));
    if (session.logged_in && session.must_change) { location.assign("/login"); return; }
    const answers = await Promise.all([getJson("/api/i18n/" + session.language), getJson("/api/pages")]);
    texts = answers[0].texts;
    lang = answers[0].language;
    pages = answers[1].pages;
  } catch (err) {
    $("fetch-error").textContent = String(err.message || err);       // no catalogue: the status still shows
    $("fetch-error").hidden = false;
  }
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  showNavigation(pages);
  showSession(session);
  setInterval(showLastUpdate, 1000);
  poll();
}

start();
