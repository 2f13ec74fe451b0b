// Read-only status page: polls /api/status every 2 s and redraws.
// All data goes into the DOM through textContent, never innerHTML, so
// device names or alarm details can't inject markup.
"use strict";

const POLL_MS = 2000;
const QUALITIES = ["good", "stale", "comm_lost", "not_supported"];
const DEVICE_STATES = ["ok", "comm_lost", "conflict", "unknown"];
const NBSP = "\u00a0";

let lastOk = null;      // browser time (ms) of the last successful update

function $(id) { return document.getElementById(id); }

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
  return tr;
}

// Only known names become CSS classes; anything else gets the neutral grey badge.
function badge(value, known) {
  const text = value === undefined || value === null ? "?" : String(value);
  return el("span", known.includes(text) ? "badge " + text : "badge", text.replace("_", " "));
}

function fmtNumber(v) {
  if (typeof v !== "number" || !Number.isFinite(v)) return v === undefined || v === null ? "—" : String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return v.toFixed(a >= 1000 ? 1 : a >= 100 ? 2 : 3);
}

function fmtMs(v) {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(1) + " ms" : "—";
}

function fmtValue(v, unit) {
  if (typeof v === "boolean") return v ? "on" : "off";
  const text = fmtNumber(v);
  return unit && text !== "—" ? text + " " + unit : text;
}

function fmtAge(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, seconds);
  if (s < 10) return s.toFixed(1) + " s";
  if (s < 120) return Math.round(s) + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " d";
}

function fmtClock(epoch) {
  return typeof epoch === "number" ? new Date(epoch * 1000).toLocaleTimeString() : "—";
}

function renderIdentity(gw) {
  document.title = (gw.name || "Gateway") + " status";
  $("gw-name").textContent = gw.name || "Gateway";
  const fields = [["Reference", gw.reference], ["NET ID", gw.netid], ["Firmware", gw.firmware],
                  ["Board", gw.board], ["Modbus address", gw.modbus_address], ["Uptime", fmtAge(gw.uptime_s)]];
  const items = fields.map(([label, value]) => {
    const div = el("div");
    div.append(el("dt", null, label), el("dd", null, value ?? "—"));
    return div;
  });
  $("gw-info").replaceChildren(...items);
}

// Device alarms read from the meters (docs/device-alarms.md), shaped like system alarm rows.
function deviceAlarmRows(deviceAlarms) {
  return ((deviceAlarms && deviceAlarms.list) || []).map((a) => ({
    alarm: a.alarm, name: a.name, criticality: a.criticality,
    sources: [{source: a.source + " (" + a.category + ")", since: a.since, detail: a.detail, confirmed: true}],
  }));
}

function renderAlarms(alarms) {
  const items = alarms.map((alarm) => {
    const li = el("li", alarm.criticality === "critical" ? "critical" : "minor");
    li.append(el("strong", null, alarm.name || "Alarm " + alarm.alarm));
    li.append(document.createTextNode(" (" + (alarm.criticality || "unknown") + ")"));
    const sources = (alarm.sources || []).map((s) =>
      s.source + " since " + fmtClock(s.since) + (s.confirmed ? "" : " (unconfirmed)") + (s.detail ? ": " + s.detail : ""));
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
    const queued = Object.entries(bus.queued || {}).map(([k, n]) => k + NBSP + n).join(", ");
    li.append(document.createTextNode(
      [bus.port, bus.baud ? bus.baud + NBSP + "baud " + (bus.parity ?? "") + (bus.stop_bits ?? "") : "", bus.mode,
       "cycle " + fmtMs(bus.cycle_ms), fmtNumber(bus.cycles) + NBSP + "cycles",
       queued ? "queued: " + queued : ""].filter(Boolean).join(" · ")));
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
  const title = el("h3", null, dev.name || (dev.reference || "Device") + "@" + dev.address);
  title.append(badge(dev.status, DEVICE_STATES));
  card.append(title);

  // Identity as a wrapping line; the communication counters as a narrow table of their own.
  const meta = el("dl", "device-meta");
  for (const [label, value] of [["Address", dev.address], ["Bus", dev.bus], ["Reference", dev.reference],
                                ["NET ID", dev.netid]]) {
    const div = el("div");
    div.append(el("dt", null, label), el("dd", null, value ?? "—"));
    meta.append(div);
  }
  card.append(meta);

  const c = dev.counters || {};
  const counters = el("table", "counters");
  counters.append(el("caption", null, "Communication"));
  counters.append(row(["Requests", "Timeouts", "CRC errors", "Exceptions", "Mean response"], true));
  counters.append(row([[fmtNumber(c.requests), "num"], [fmtNumber(c.timeouts), "num"], [fmtNumber(c.crc_errors), "num"],
                       [fmtNumber(c.exceptions), "num"], [fmtMs(c.mean_response_ms), "num"]]));
  card.append(scroller(counters));

  const loads = new Map((dev.loads || []).map((l) => [String(l.load), l]));
  const values = dev.values || {};
  const keys = Object.keys(values).sort((a, b) => Number(a) - Number(b));
  for (const key of keys) {
    const load = loads.get(key);
    const label = key === "0" ? "Device values"
      : "Load " + key + (load && load.name ? " — " + load.name : "") + (load && load.network ? " (" + load.network + ")" : "");
    const table = el("table", "values");
    table.append(el("caption", null, label));
    table.append(row(["Measurement", "Value", "Quality", "Age"], true));
    for (const [id, m] of Object.entries(values[key] || {})) {
      table.append(row([m.name || id, [fmtValue(m.value, m.unit), "num"], badge(m.quality, QUALITIES),
                        [typeof m.ts === "number" ? fmtAge(now - m.ts) : "—", "num"]]));
    }
    card.append(scroller(table));
  }
  if (!keys.length) card.append(el("p", "muted", "No values yet."));
  return card;
}

function renderFooter(s) {
  const d = s.discovery || {};
  const lag = s.loop_lag || {};
  const parts = ["Discovery: " + (d.state || "—") + (d.state && d.state !== "idle"
      ? " " + Math.round(100 * (d.progress || 0)) + "%, found " + (d.found ?? 0) : "") + (d.message ? " — " + d.message : ""),
    "Loop lag p50 " + fmtMs(lag.p50_ms) + ", p99 " + fmtMs(lag.p99_ms) + ", max " + fmtMs(lag.max_ms)];
  $("footer").textContent = parts.join(" · ");
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
  node.textContent = "Last update " + new Date(lastOk).toLocaleTimeString() + " (" + fmtAge(age) + " ago)";
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
  } catch (err) {
    const what = err.name === "AbortError" ? "request timed out" : err.message || String(err);
    $("fetch-error").textContent = "Status update failed: " + what +
      (lastOk === null ? "" : " — the data below is from " + new Date(lastOk).toLocaleTimeString());
    $("fetch-error").hidden = false;
  } finally {
    clearTimeout(timer);
    showLastUpdate();
    setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
  }
}

// Who is logged in (the session, in its language from the catalogue) and the Log off button. The
// gateway checks every request itself; this only shows who the requests are made as.
async function showSession() {
  try {
    const session = await (await fetch("/api/session", {cache: "no-store"})).json();
    const texts = (await (await fetch("/api/i18n/" + session.language, {cache: "no-store"})).json()).texts;
    const t = (key, params) => Object.entries(params || {}).reduce(
      (text, [name, value]) => text.split("{" + name + "}").join(value), texts[key] || key);
    if (session.logged_in && session.must_change) { location.assign("/login"); return; }
    $("who").textContent = session.logged_in ? t("web.session.as", {profile: t("web.profile." + session.profile)})
      : t("web.session.anonymous");
    $("logoff").textContent = t("web.session.logoff");
    $("login-link").textContent = t("web.session.login");
    $("logoff").hidden = !session.logged_in;
    $("login-link").hidden = session.logged_in;
    $("logoff").onclick = async () => {
      await fetch("/api/logout", {method: "POST", headers: {"Content-Type": "application/json",
                                                             "X-CSRF-Token": session.csrf}, body: "{}"});
      location.assign("/login");
    };
  } catch (err) {
    $("who").textContent = "";
  }
}

setInterval(showLastUpdate, 1000);
showSession();
poll();
