// Diagnosis page (SPEC §7.2): polls /api/diagnosis every 2 s while the tab is visible and redraws. Texts come
// from the catalogue (/api/i18n); what the profile may do from /api/diagnosis/rights (the gateway checks every
// command again). Data goes into the DOM through textContent only.
"use strict";

const POLL_MS = 2000;
const SERVICES = ["modbus", "rtu_slave", "snmp", "bacnet", "web"];
const DEVICE_CLASS = {ok: "good", stale: "warn", unknown: "warn", comm_lost: "bad", conflict: "bad", absent: "bad"};

let texts = {}, session = {csrf: null}, mayDo = {}, lastDoc = null, lastOk = null, timer = null, busy = false;

const $ = (id) => document.getElementById(id);
function t(key, params) {
  return Object.entries(params || {}).reduce((s, [k, v]) => s.split("{" + k + "}").join(String(v)), texts[key] || key);
}
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function cells(tr, values) {
  for (const v of values) {
    const td = el("td");
    if (v instanceof Node) td.append(v); else if (Array.isArray(v)) { td.className = v[1]; td.textContent = v[0]; }
    else td.textContent = v === undefined || v === null || v === "" ? "—" : String(v);
    tr.append(td);
  }
  return tr;
}
function mark(kind, text) { return el("span", "state " + kind, text); }
function num(v, digits) {
  return typeof v === "number" && Number.isFinite(v) ? (digits === undefined ? String(v) : v.toFixed(digits)) : "—";
}
function ms(v) { return typeof v === "number" ? t("web.diagnosis.ms", {value: v.toFixed(1)}) : "—"; }
function bytes(n) {
  if (typeof n !== "number") return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return (i ? n.toFixed(1) : String(n)) + "\u00a0" + units[i];
}
function duration(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, seconds);
  return s < 10 ? s.toFixed(1) + " s" : s < 120 ? Math.round(s) + " s" : s < 7200 ? Math.round(s / 60) + " min"
    : s < 172800 ? Math.round(s / 3600) + " h" : Math.round(s / 86400) + " d";
}
function age(seconds) {
  const text = duration(seconds);
  return text === "—" ? text : t("web.diagnosis.ago", {age: text});
}
function dateTime(epoch) {
  return typeof epoch === "number" ? new Date(epoch * 1000).toLocaleString(document.documentElement.lang) : "—";
}
// Seconds since the document was read on the gateway's clock (the browser's clock only measures the time since).
function docAge() { return lastOk === null ? null : (Date.now() - lastOk) / 1000; }
function freshness() {
  const a = docAge();
  return a !== null && a <= 3 * POLL_MS / 1000 ? mark("good", t("web.diagnosis.quality.good"))
    : mark("warn", t("web.diagnosis.quality.old"));
}

function renderGateway(doc) {
  const gw = doc.gateway || {}, st = doc.storage || {};
  const ip = gw.dhcp ? t("web.diagnosis.ip_dhcp", {ip: gw.ip || "—"})
    : t("web.diagnosis.ip_static", {ip: gw.ip || "—", address: gw.address || "—"});
  let storage = st.available ? t("web.diagnosis.storage_value", {percent: num(100 * (st.use || 0), 1),
                                                                  size: bytes(st.size_bytes)}) : "—";
  if (st.write_errors) storage += " · " + t("web.diagnosis.storage_errors", {count: st.write_errors});
  const rows = [["name", gw.name], ["serial", gw.serial], ["netid", gw.netid], ["firmware", gw.firmware],
                ["datetime", dateTime(gw.time)], ["uptime", duration(gw.uptime_s)], ["ip", ip],
                ["storage", storage]];
  $("gateway").tBodies[0].replaceChildren(...rows.map(([key, value]) => {
    const quality = key === "storage" && !st.available ? mark("bad", t("web.diagnosis.quality.unavailable"))
      : freshness();
    return cells(el("tr"), [t("web.diagnosis." + key), value, quality, age(docAge())]);
  }));
}

function renderServices(doc) {
  const services = doc.services || {};
  $("services").tBodies[0].replaceChildren(...SERVICES.filter((name) => name in services).map((name) => {
    const s = services[name];
    const state = s.error ? mark("bad", t("web.diagnosis.state.error", {error: s.error}))
      : s.running ? mark("good", t("web.diagnosis.state.running")) : mark("warn", t("web.diagnosis.state.stopped"));
    const tr = cells(el("tr", "service-" + name), [t("web.diagnosis.service." + name), state, age(docAge())]);
    tr.dataset.state = s.error ? "error" : s.running ? "running" : "stopped";
    return tr;
  }));
}

function renderIndicators(doc) {
  const sys = doc.system || {}, lag = doc.loop_lag || {}, gw = doc.gateway || {};
  const good = sys.quality === "good";
  const sysAge = good && typeof sys.ts === "number" ? (gw.time - sys.ts) + docAge() : null;
  const cpu = sys.cpu || {}, ram = sys.ram || {}, disk = sys.disk || {};
  const rows = [
    ["cpu", good && cpu.percent !== null ? t("web.diagnosis.cpu_value", {percent: num(cpu.percent, 1),
                                            cores: num(cpu.cores), load: num(cpu.load_1min, 2)}) : null, good, sysAge],
    ["ram", good && ram.percent !== null ? t("web.diagnosis.ram_value", {percent: num(ram.percent, 1),
                                            total: bytes(ram.total_bytes), daemon: bytes(ram.daemon_bytes)}) : null,
     good, sysAge],
    ["disk", good && disk.percent !== null ? t("web.diagnosis.disk_value", {percent: num(disk.percent, 1),
                                              total: bytes(disk.total_bytes), free: bytes(disk.free_bytes)}) : null,
     good, sysAge],
    ["lag", t("web.diagnosis.lag_value", {p50: ms(lag.p50_ms), p99: ms(lag.p99_ms), max: ms(lag.max_ms)}), true,
     docAge()],
  ];
  $("indicators").tBodies[0].replaceChildren(...rows.map(([key, value, ok, a]) => cells(el("tr", "indicator-" + key), [
    t("web.diagnosis." + key), value,
    ok && value !== null ? freshness() : mark("bad", t("web.diagnosis.quality.unavailable")),
    age(a)])));
}

function renderDevices(doc) {
  const devices = doc.devices || [];
  const canReset = !!mayDo.reset_counters;
  const headings = Array.from($("devices").tHead.rows[0].cells).map((th) => th.textContent);
  const rows = devices.map((d) => {
    const label = d.name || (d.reference + "@" + d.address);
    const name = el("span", null, label);
    const tr = el("tr", DEVICE_CLASS[d.status] === "bad" ? "lost" : "");
    tr.dataset.address = d.address;
    tr.dataset.status = d.status;
    const status = el("span");
    status.append(mark(DEVICE_CLASS[d.status] || "warn", t("web.diagnosis.device." + d.status)));
    if (d.not_found) status.append(el("span", "note", t("web.diagnosis.not_found")));
    const c = d.counters || {};
    const last = el("span", null, d.last_success === null || d.last_success === undefined ? t("web.diagnosis.never")
      : age(d.last_success_age_s + (docAge() || 0)));
    if (typeof d.last_success === "number") last.append(el("span", "note", dateTime(d.last_success)));
    cells(tr, [name, [d.bus + " " + d.address, "num"], status, [num(c.requests), "num requests"],
               [num(c.answers), "num answers"], [num(c.timeouts), "num"], [num(c.crc_errors), "num"],
               [num(c.exceptions), "num"], [ms(c.mean_response_ms), "num"], [ms(c.max_response_ms), "num"], last]);
    if (canReset) {
      const button = el("button", "reset-one", t("web.diagnosis.reset_short"));
      button.type = "button";
      button.setAttribute("aria-label", t("web.diagnosis.reset_one", {device: label}));
      button.onclick = () => command("/api/counters/reset", {address: d.address}, t("web.diagnosis.reset_done"));
      const td = el("td");
      td.append(button);
      tr.append(td);
    }
    // each cell carries its column's heading: a narrow screen shows the rows stacked, a heading by each value
    Array.from(tr.cells).forEach((td, i) => { td.dataset.label = headings[i] || ""; });
    return tr;
  });
  $("devices").tBodies[0].replaceChildren(...rows);
  $("no-devices").hidden = rows.length > 0;
}

function render() {
  if (!lastDoc) return;
  renderGateway(lastDoc);
  renderServices(lastDoc);
  renderIndicators(lastDoc);
  renderDevices(lastDoc);
  const when = new Date(lastOk).toLocaleTimeString(document.documentElement.lang);
  $("updated").textContent = t("web.diagnosis.updated", {time: when});
}

async function poll() {
  clearTimeout(timer);
  timer = null;
  if (document.hidden) { $("updated").textContent = t("web.diagnosis.paused"); return; }
  const abort = new AbortController();
  const guard = setTimeout(() => abort.abort(), POLL_MS * 3);
  try {
    const response = await fetch("/api/diagnosis", {cache: "no-store", signal: abort.signal});
    if (!response.ok) throw new Error("HTTP " + response.status);
    lastDoc = await response.json();
    lastOk = Date.now();
    $("problem").hidden = true;
    render();
    document.documentElement.dataset.ready = "1";          // drawn once: what a benchmark waits for
  } catch (err) {
    $("problem").textContent = t("web.diagnosis.update_failed", {reason: err.message || String(err),
      time: lastOk === null ? "—" : new Date(lastOk).toLocaleTimeString()});
    $("problem").hidden = false;
    if (lastDoc) render();          // the ages grow and the qualities say the values are not updated
  } finally {
    clearTimeout(guard);
    if (!document.hidden && timer === null) timer = setTimeout(poll, POLL_MS);
  }
}

// A command of the page: POST with the session's CSRF token; the answer (or refusal, in the session's language).
async function command(path, body, done) {
  if (busy) return;
  busy = true;
  try {
    const response = await fetch(path, {method: "POST", cache: "no-store", body: JSON.stringify(body),
      headers: {"Content-Type": "application/json", "X-CSRF-Token": session.csrf || ""}});
    const answer = await response.json().catch(() => ({}));
    $("action-result").textContent = response.ok ? done
      : t("web.diagnosis.refused", {reason: answer.error || response.status});
  } catch (err) {
    $("action-result").textContent = t("web.diagnosis.refused", {reason: err.message || String(err)});
  } finally {
    busy = false;
    poll();
  }
}

async function start() {
  const lang = new URLSearchParams(location.search).get("lang");
  try {
    const query = lang ? "?lang=" + encodeURIComponent(lang) : "";
    session = await (await fetch("/api/session" + query, {cache: "no-store"})).json();
    texts = (await (await fetch("/api/i18n/" + session.language, {cache: "no-store"})).json()).texts;
    mayDo = (await (await fetch("/api/diagnosis/rights", {cache: "no-store"})).json()).may || {};
  } catch (err) {
    mayDo = {};
  }
  if (session.logged_in && session.must_change) { location.assign("/login"); return; }
  document.documentElement.lang = session.language || "en";
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  document.title = t("web.diagnosis.title");
  $("who").textContent = session.logged_in ? t("web.session.as", {profile: t("web.profile." + session.profile)})
    : t("web.session.anonymous");
  if (session.logged_in) addLogOff($("who"), t, () => session.csrf);
  $("reset-all").hidden = !mayDo.reset_counters;
  for (const th of document.querySelectorAll(".reset-col")) th.hidden = !mayDo.reset_counters;
  $("reboot").hidden = !mayDo.reboot;
  $("export").hidden = !mayDo.export_events;
  $("reset-all").onclick = () => command("/api/counters/reset", {}, t("web.diagnosis.reset_done"));
  $("reboot").onclick = () => $("reboot-dialog").showModal();
  $("reboot-dialog").addEventListener("close", () => {
    if ($("reboot-dialog").returnValue === "yes") command("/api/reboot", {}, t("web.diagnosis.reboot_done"));
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  poll();
}

start();
