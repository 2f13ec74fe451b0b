// The Home page (the WEBVIEW-M manual §8.1): the data views as tiles in the manual's two sections, the active
// alarms by criticality (a click opens the Alarms page on the active ones), the configuration pages this profile
// may open, and a summary of the devices' communication. The links are GET /api/pages' (a view the gateway does
// not offer yet is a tile "not available yet", not a link); the live figures are GET /api/home's, polled.
// Texts through textContent only.
"use strict";

const POLL_MS = 2000;
const CRITICALITIES = ["critical", "non-critical", "information"];
const DEVICE_STATES = ["ok", "stale", "comm_lost", "conflict", "unknown", "absent"];
const ATTENTION_MAX = 6;            // devices not OK named one by one; more are counted
// The tiles, in the manual's order: [page (its name in GET /api/pages), section, icon (one SVG path, 24x24)].
const TILES = [
  ["monitor", "monitor", "M2 12h4l3-7 4 14 3-7h6"],
  ["alarms", "monitor", "M6 16V11a6 6 0 0 1 12 0v5l2 2H4l2-2M10 21h4"],
  ["photoview", "monitor", "M3 5h18v14H3zM3 16l5-5 4 4 3-3 6 6M15.5 8.5h.01"],
  ["consumption", "analyse", "M4 20V10M10 20V4M16 20v-7M22 20H2"],
  ["trends", "analyse", "M3 20h18M3 16l5-6 4 3 5-7 4 4"],
];

let lastOk = null;                  // browser time (ms) of the last answer of /api/status


// A view the gateway offers is a link; one it does not (yet) is shown, greyed, with the catalogue's words.
function tile(page, d, path) {
  const box = path ? el("a", {class: "tile", href: path, id: "tile-" + page})
    : el("div", {class: "tile unavailable", id: "tile-" + page});
  box.append(lineIcon(d));
  const words = el("span", {class: "tile-words"});
  words.append(el("strong", {class: "tile-name"}, t("web.home.tile." + page)),
               el("span", {class: "tile-help"}, t("web.home.tile." + page + "_help")));
  if (!path) words.append(el("span", {class: "tile-state"}, t("web.home.not_yet")));
  box.append(words);
  const item = el("li");
  item.append(box);
  return item;
}

function showPages(pages) {
  const paths = new Map(pages.map((entry) => [entry.page, entry.path]));
  for (const section of ["monitor", "analyse"]) {
    $("tiles-" + section).replaceChildren(...TILES.filter((row) => row[1] === section)
      .map(([page, , d]) => tile(page, d, paths.get(page))));
  }
  const tiled = new Set(TILES.map((row) => row[0]).concat(["home"]));
  const links = pages.filter((entry) => !tiled.has(entry.page)).map((entry) => {
    const item = el("li");
    item.append(el("a", {href: entry.path, id: "link-" + entry.page}, t("web.status.nav." + entry.page)));
    return item;
  });
  $("configuration-links").replaceChildren(...links);
  $("configuration-none").hidden = links.length > 0;
}

// A number in the page's language: ages with one decimal under 10 s, like the status page.
function age(seconds) {
  const s = Math.max(0, seconds);
  const lang = document.documentElement.lang;
  if (s < 10) return t("web.status.unit.s", {value: s.toLocaleString(lang, {maximumFractionDigits: 1,
                                                                             minimumFractionDigits: 1})});
  if (s < 120) return t("web.status.unit.s", {value: Math.round(s)});
  if (s < 7200) return t("web.status.unit.min", {value: Math.round(s / 60)});
  if (s < 172800) return t("web.status.unit.h", {value: Math.round(s / 3600)});
  return t("web.status.unit.d", {value: Math.round(s / 86400)});
}

// The gateway counts every active alarm once (a system alarm per source it is active for, a device alarm each).
function showAlarms(answer) {
  const counts = Object.fromEntries(CRITICALITIES.map((c) => [c, answer[c] || 0]));
  const total = CRITICALITIES.reduce((sum, c) => sum + counts[c], 0);
  $("alarm-total").textContent = total ? t("web.home.alarms_count", {count: total}) : t("web.home.alarms_none");
  const chips = CRITICALITIES.map((c) => {
    const chip = el("span", {class: "chip " + c + (counts[c] ? "" : " zero"), "data-criticality": c});
    chip.append(el("b", {class: "num"}, counts[c]), document.createTextNode(" " + t("web.status.criticality." + c)));
    return chip;
  });
  $("alarm-by").replaceChildren(...chips);
  const shortcut = $("alarm-shortcut");
  shortcut.classList.toggle("critical", counts.critical > 0);
  shortcut.classList.toggle("active", total > 0 && counts.critical === 0);
  shortcut.dataset.total = String(total);
}

function deviceName(dev) {
  return dev.name || (dev.reference || "?") + "@" + dev.address;
}

function showDevices(summary) {
  const devices = summary.devices || [];
  const counts = new Map();
  for (const dev of devices) counts.set(dev.status, (counts.get(dev.status) || 0) + 1);
  $("devices-count").textContent = devices.length ? t("web.home.devices_count", {count: devices.length})
    : t("web.home.devices_none");
  $("device-states").replaceChildren(...DEVICE_STATES.filter((s) => counts.get(s)).map((s) => {
    const item = el("li", {class: "state " + s, "data-state": s});
    item.append(el("b", {class: "num"}, counts.get(s)), document.createTextNode(" " + t("web.diagnosis.device." + s)));
    return item;
  }));
  const attention = devices.filter((dev) => dev.status !== "ok");
  const items = attention.slice(0, ATTENTION_MAX).map((dev) => {
    const state = t("web.diagnosis.device." + dev.status);
    const text = typeof dev.age_s === "number" ? t("web.home.device_since", {device: deviceName(dev), state,
                                                                              age: age(dev.age_s)})
      : t("web.home.device_never", {device: deviceName(dev), state});
    return el("li", {class: dev.status}, text);
  });
  if (attention.length > ATTENTION_MAX) {
    const more = el("li", {class: "more"});
    more.append(el("a", {href: "/"}, t("web.home.devices_more", {count: attention.length - ATTENTION_MAX})));
    items.push(more);
  }
  $("devices-attention").replaceChildren(...items);
}

function showLastUpdate(problem) {
  const node = $("last-update");
  const lang = document.documentElement.lang;
  const since = lastOk === null ? "" : t("web.status.last_update", {time: new Date(lastOk).toLocaleTimeString(lang),
                                                                    age: age((Date.now() - lastOk) / 1000)});
  if (problem) {
    node.textContent = lastOk === null ? t("web.status.update_failed", {reason: problem})
      : t("web.status.update_failed_since", {reason: problem, time: new Date(lastOk).toLocaleTimeString(lang)});
  } else {
    node.textContent = since;
  }
  node.classList.toggle("stale", Boolean(problem) || (lastOk !== null && Date.now() - lastOk > 3 * POLL_MS));
}

let problem = null;

async function poll() {
  if (document.hidden && lastOk !== null) { setTimeout(poll, POLL_MS); return; }     // a hidden tab asks nothing
  const started = Date.now();
  try {
    const [code, summary] = await getJson("/api/home");
    if (code !== 200) throw new Error(summary.error || "HTTP " + code);
    const name = (summary.gateway && summary.gateway.name) || "";
    if (name) document.title = t("web.home.doc_title", {name});
    showAlarms(summary.alarms || {});
    showDevices(summary);
    lastOk = Date.now();
    problem = null;
  } catch (err) {
    problem = err.message || String(err);
  } finally {
    showLastUpdate(problem);
    setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
  }
}

async function start() {
  $("alarm-total").textContent = "…";
  if (!(await startView())) return;
  $("alarm-total").textContent = t("web.home.alarms_waiting");
  const [code, answer] = await getJson("/api/pages");
  showPages(code === 200 ? answer.pages || [] : []);
  await poll();
  setInterval(() => showLastUpdate(problem), 1000);
  pageReady();
}

start();
