// The Trends page (WEBVIEW-M manual §8.6): the left pane (static/pane.js) picks a device or circuit and the
// period; a category (measure, meter, status, alarm) lists the data the store holds for it; the data checked go
// on one time axis with one scale per unit, overlaid or stacked (one chart per unit), scale automatic or from
// zero, drag to zoom and back, a data table under the chart, and favourites saved per profile.
// Points come aggregated by the gateway (GET /api/series: raw, hour, day, week, month; the finest that keeps a
// series under AUTO_POINTS when "Automatic"), drawn by the vendored uPlot. Every point's quality is shown: a
// missing point is a gap, an uncertain one (partial bucket, incomplete, clock not set, back-filled...) a marker
// on the curve and a mark in the table. Times are the gateway's local time (its UTC offset, as its buckets).
"use strict";

const CATEGORIES = ["measure", "meter", "status", "alarm"];
const STEPS = ["raw", "hour", "day", "week", "month"];
const BUCKET_S = {hour: 3600, day: 86400, week: 7 * 86400, month: 28 * 86400};
const AUTO_POINTS = 9000;              // a leap year of hours (8,784) per series is still drawn hour by hour
const TABLE_ROWS = 200;                // rows of the data table per page
const COLOURS = ["#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#be185d",
                 "#4d7c0f", "#1e3a8a", "#6b4f2a", "#475569"];

const state = {catalogue: [], byName: {}, offset: 0, maxNames: 12, maxPoints: 100000, item: null, category: null,
               selection: [], hidden: new Set(), period: null, answer: null, home: null, zoom: null,
               charts: [], favourites: [], tablePage: 0, rows: [], loading: 0};
let pane = null;

function say(kind, text) {
  $("message").className = "message " + (kind || "");
  $("message").textContent = text || "";
}

// ---------------------------------------------------------------- names, times, values

function seriesTitle(entry) {
  const load = entry.load ? (entry.load_name || t("web.pane.load", {n: entry.load})) : "";
  return entry.device + (load ? " · " + load : "") + " — " + entry.label;
}

function unitOf(entry) { return entry.unit || t("web.trends.no_unit"); }

// A Date whose local fields are the gateway's local time of ``ts`` (its buckets' time zone).
function gatewayDate(ts) {
  const shifted = (ts + state.offset) * 1000;
  return new Date(shifted + new Date(shifted).getTimezoneOffset() * 60000);
}

function timeText(ts) {
  const step = state.answer ? state.answer.step : "raw";
  const options = step === "month" ? {year: "numeric", month: "long"}
    : (step === "day" || step === "week") ? {dateStyle: "medium"} : {dateStyle: "short", timeStyle: "short"};
  return formatter("text-" + step, options).format(gatewayDate(ts));
}

// Date formats of the reader's language, made once (a formatter is costly to build, cheap to use).
const formats = {};
function formatter(name, options) {
  if (!formats[name]) formats[name] = new Intl.DateTimeFormat(document.documentElement.lang, options);
  return formats[name];
}

// The time axis' labels in the reader's language and the gateway's time (uPlot's own are English, 12-hour).
function timeTicks(u, splits, axisIndex, space, increment) {
  return splits.map((ts, i) => {
    const d = gatewayDate(ts);
    if (increment >= 28 * 86400) return formatter("month", {month: "short", year: "numeric"}).format(d);
    const day = formatter("day", {day: "numeric", month: "short"}).format(d);
    if (increment >= 86400) return day;
    const newDay = i === 0 || gatewayDate(splits[i - 1]).getDate() !== d.getDate();
    const time = formatter("time", {hour: "2-digit", minute: "2-digit"}).format(d);
    return newDay ? time + "\n" + day : time;
  });
}

let numbers = null;
function valueText(value) {
  if (!numbers) numbers = new Intl.NumberFormat(document.documentElement.lang, {maximumSignificantDigits: 7});
  return value === null || value === undefined ? "—" : numbers.format(value);
}

// "good" says nothing; "missing" is a gap; anything else is uncertain: its flags in words.
function qualityWords(q) {
  if (!q || q === "good") return "";
  return q.split("+").map((flag) => t("web.trends.q." + flag)).join(", ");
}

// ---------------------------------------------------------------- what the store holds, what is picked

function entriesOf(item) {
  if (!item) return [];
  return state.catalogue.filter((e) => e.address === item.address && (item.load === null || e.load === item.load));
}

function drawCategories() {
  const box = $("categories");
  for (const old of box.querySelectorAll("button")) old.remove();
  const entries = entriesOf(state.item);
  for (const category of CATEGORIES) {
    const count = entries.filter((e) => e.category === category).length;
    const button = el("button", {type: "button", class: "category", "data-category": category,
                                 "aria-pressed": String(state.category === category), disabled: !count},
                      t("web.trends.category." + category) + " (" + count + ")");
    button.addEventListener("click", () => { state.category = category; drawCategories(); drawChoices(); });
    box.append(button);
  }
}

function drawChoices() {
  const entries = entriesOf(state.item).filter((e) => e.category === state.category);
  $("choices").hidden = !entries.length;
  $("choices-title").textContent = state.category ? t("web.trends.category." + state.category) : "";
  const list = $("choice-list");
  list.replaceChildren();
  for (const entry of entries) {
    const id = "pick-" + entry.name.replace(/[^A-Za-z0-9]/g, "_");
    const box = el("input", {type: "checkbox", id, "data-name": entry.name});
    box.checked = state.selection.includes(entry.name);
    box.addEventListener("change", () => toggleData(entry.name, box));
    const text = (state.item.load === null && entry.load ? (entry.load_name || t("web.pane.load", {n: entry.load})) +
                  ": " : "") + entry.label + " (" + unitOf(entry) + ")";
    list.append(el("div", {class: "choice"}, null));
    list.lastChild.append(box, el("label", {for: id}, text));
  }
}

function toggleData(name, box) {
  if (box.checked) {
    if (state.selection.length >= state.maxNames) {
      box.checked = false;
      say("bad", t("web.trends.error.too_many_series", {max: state.maxNames}));
      return;
    }
    state.selection.push(name);
  } else {
    state.selection = state.selection.filter((n) => n !== name);
  }
  drawSelection();
  load();
}

function colourOf(name) { return COLOURS[state.selection.indexOf(name) % COLOURS.length]; }

function drawSelection() {
  const list = $("selection");
  list.replaceChildren();
  if (!state.selection.length) list.append(el("li", {class: "muted"}, t("web.trends.nothing_selected")));
  for (const name of state.selection) {
    const entry = state.byName[name];
    const id = "shown-" + name.replace(/[^A-Za-z0-9]/g, "_");
    const item = el("li", {"data-name": name});
    const shown = el("input", {type: "checkbox", id});
    shown.checked = !state.hidden.has(name);
    shown.addEventListener("change", () => {
      if (shown.checked) state.hidden.delete(name); else state.hidden.add(name);
      draw();
    });
    const remove = el("button", {type: "button", class: "secondary small",
                                 "aria-label": t("web.trends.remove_named", {name: seriesTitle(entry)})},
                      t("web.trends.remove"));
    remove.addEventListener("click", () => {
      state.selection = state.selection.filter((n) => n !== name);
      state.hidden.delete(name);
      drawSelection();
      drawChoices();
      load();
    });
    item.append(el("span", {class: "swatch", style: "background:" + colourOf(name), "aria-hidden": "true"}), shown,
                el("label", {for: id}, seriesTitle(entry) + " (" + unitOf(entry) + ")"), remove);
    list.append(item);
  }
}

// ---------------------------------------------------------------- points from the gateway

function stepFor(span) {
  const asked = $("step").value;
  if (asked !== "auto") return asked;
  for (const step of STEPS) {
    const counts = state.selection.map((n) => Math.ceil(span / (step === "raw" ? state.byName[n].period_s : BUCKET_S[step])));
    if (Math.max(...counts) <= AUTO_POINTS && counts.reduce((a, b) => a + b, 0) <= state.maxPoints) return step;
  }
  return "month";
}

async function load() {
  const ticket = ++state.loading;
  state.zoom = null;
  if (!state.selection.length || !state.period) {
    state.answer = null;
    draw();
    return;
  }
  const {from, to} = state.period;
  const step = stepFor(to - from);
  say("", t("web.trends.loading"));
  $("charts").dataset.state = "loading";
  const url = "/api/series?names=" + encodeURIComponent(state.selection.join(",")) + "&from=" + from + "&to=" + to +
    "&step=" + step + "&lang=" + session.language;        // a read: the words of the session's language
  const [status, answer] = await getJson(url);
  if (ticket !== state.loading) return;                        // a newer request is under way
  if (status !== 200) {
    state.answer = null;
    draw();
    $("charts").dataset.state = "refused";
    say("bad", (answer.messages && answer.messages[0] && answer.messages[0].message) || answer.error || String(status));
    return;
  }
  state.answer = answer;
  state.offset = answer.utc_offset_s;
  say("", "");
  draw();
}

// ---------------------------------------------------------------- the chart(s)

// Series of the answer that are shown, grouped by unit: [{unit, series: [{entry, data}]}].
function groups() {
  const out = new Map();
  for (const data of state.answer ? state.answer.series : []) {
    if (state.hidden.has(data.name)) continue;
    const entry = state.byName[data.name];
    if (!out.has(unitOf(entry))) out.set(unitOf(entry), []);
    out.get(unitOf(entry)).push({entry, data});
  }
  return Array.from(out, ([unit, series]) => ({unit, series}));
}

// uPlot's aligned data: one x array (every time of the series), one y array each (null: a missing point, a gap;
// undefined: that series has no interval starting then, spanned), and each point's quality.
// ``everyone``: the members of every chart, so stacked charts share one time axis.
function aligned(members, everyone) {
  const all = everyone || members, first = all[0].data.t;
  const same = all.every(({data}) => data.t.length === first.length && data.t[0] === first[0] &&
                         data.t[first.length - 1] === first[first.length - 1]);
  if (same) {                                  // one grid (same period or step, same range): nothing to merge
    return {data: [first].concat(members.map((m) => m.data.v)), quality: members.map((m) => m.data.q)};
  }
  const times = Array.from(new Set(all.flatMap((m) => m.data.t))).sort((a, b) => a - b);
  const at = new Map(times.map((ts, i) => [ts, i]));
  const ys = [], qs = [];
  for (const {data} of members) {
    const y = new Array(times.length).fill(undefined), q = new Array(times.length).fill(undefined);
    data.t.forEach((ts, i) => { y[at.get(ts)] = data.v[i]; q[at.get(ts)] = data.q[i]; });
    ys.push(y);
    qs.push(q);
  }
  return {data: [times, ...ys], quality: qs};
}

function yRange(zero) {
  return (u, min, max) => {
    if (min === null || max === null) return [0, 1];
    if (zero) {
      const low = Math.min(0, min), high = Math.max(0, max);
      return [low, high === low ? low + 1 : high + (high - low) * 0.05];
    }
    return uPlot.rangeNum(min, max, 0.1, true);
  };
}

function chartOptions(units, members, quality, width, height) {
  const zero = $("scale").value === "zero";
  const scales = {x: {time: true}};
  const axes = [{values: timeTicks, size: 52, space: 90}];        // room for "23:00" or "11:00 PM" labels
  units.forEach((unit, i) => {
    scales["u" + i] = {range: yRange(zero)};
    axes.push({scale: "u" + i, label: unit, side: i % 2 ? 1 : 3, grid: {show: i === 0}, size: 64,
               labelSize: 20});
  });
  const series = [{label: t("web.trends.time"), value: (u, ts) => ts === null ? "—" : timeText(ts)}];
  members.forEach(({entry, data}, i) => {
    const q = quality[i];
    series.push({label: seriesTitle(entry) + " (" + unitOf(entry) + ")", scale: "u" + units.indexOf(unitOf(entry)),
                 stroke: colourOf(data.name), width: 1.5, spanGaps: false,
                 value: (u, v, si, idx) => idx === null ? "—" : valueText(v) +
                   (qualityWords(q[idx]) ? " (" + qualityWords(q[idx]) + ")" : ""),
                 paths: data.counter ? uPlot.paths.stepped({align: 1}) : undefined,
                 points: {show: q.some((x) => x && x !== "good" && x !== "missing"), size: 7, fill: "#fff",
                          width: 2, filter: (u, si) => uncertain(q, u.data[si])}});
  });
  return {width, height, scales, axes, series, tzDate: gatewayDate, cursor: {drag: {x: true, y: false}},
          legend: {live: true}, hooks: {setScale: [onScale]}};
}

// Indexes of the points to mark: a value whose quality is neither good nor missing.
function uncertain(q, ys) {
  const out = [];
  for (let i = 0; i < q.length; i++) if (ys[i] !== null && ys[i] !== undefined && q[i] && q[i] !== "good") out.push(i);
  return out;
}

// A new time range on one chart (a drag, Back, or another chart's): the others follow, the range and table too.
function onScale(u, key) {
  if (key !== "x" || !state.home) return;
  const {min, max} = u.scales.x;
  for (const other of state.charts) {
    if (other !== u && (Math.abs(other.scales.x.min - min) >= 1 || Math.abs(other.scales.x.max - max) >= 1)) {
      other.setScale("x", {min, max});
    }
  }
  const whole = Math.abs(min - state.home.min) < 1 && Math.abs(max - state.home.max) < 1;
  state.zoom = whole ? null : {min, max};
  showRange();
  state.tablePage = 0;
  drawTable();
}

function showRange() {
  const range = state.zoom || state.home;
  $("zoom-back").disabled = !state.zoom;
  $("range").textContent = range ? t(state.zoom ? "web.trends.zoomed" : "web.trends.range",
                                     {from: timeText(range.min), to: timeText(range.max)}) : "";
  $("range").dataset.min = range ? String(Math.round(range.min)) : "";
  $("range").dataset.max = range ? String(Math.round(range.max)) : "";
}

function draw() {
  state.home = null;
  for (const chart of state.charts) chart.destroy();
  state.charts = [];
  const box = $("charts");
  box.replaceChildren();
  const shown = groups();
  box.dataset.series = String(shown.reduce((n, g) => n + g.series.length, 0));
  box.dataset.units = String(shown.length);
  if (!shown.length) {
    box.append(el("p", {class: "empty muted"}, t(state.selection.length ? "web.trends.no_points"
                                                                          : "web.trends.nothing_selected")));
    box.dataset.state = "drawn";
    showRange();
    drawTable();
    return;
  }
  const width = Math.max(280, box.clientWidth - 4);

  const stacked = $("mode").value === "stack" && shown.length > 1;
  const parts = stacked ? shown.map((g) => [g]) : [shown];
  const everyone = shown.flatMap((g) => g.series);
  let first = Infinity, last = -Infinity;
  for (const {data} of everyone) {
    if (data.t.length) { first = Math.min(first, data.t[0]); last = Math.max(last, data.t[data.t.length - 1]); }
  }
  state.home = {min: first, max: last};                 // the whole period's points
  for (const part of parts) {
    const members = part.flatMap((g) => g.series);
    const {data, quality} = aligned(members, everyone);
    const holder = el("div", {class: "chart", "data-units": part.map((g) => g.unit).join("|")});
    box.append(holder);
    const height = stacked ? 230 : 380;
    state.charts.push(new uPlot(chartOptions(part.map((g) => g.unit), members, quality, width, height), data,
                                holder));
  }
  state.zoom = null;
  box.dataset.state = "drawn";
  box.dataset.yAxes = String(state.charts.reduce((n, c) => n + c.axes.length - 1, 0));
  showRange();
  state.tablePage = 0;
  drawTable();
}

// The window's width changed: the charts take the new width (resized, not drawn again: the zoom is kept).
function fit() {
  const width = Math.max(280, $("charts").clientWidth - 4);
  for (const chart of state.charts) if (Math.abs(chart.width - width) > 2) chart.setSize({width, height: chart.height});
}

function zoomBack() {
  if (!state.home) return;
  state.charts[0].setScale("x", {min: state.home.min, max: state.home.max});
}

// ---------------------------------------------------------------- the data table

function drawTable() {
  $("table-panel").hidden = !$("show-table").checked;
  if (!$("show-table").checked) return;
  const members = groups().flatMap((g) => g.series);
  const head = $("table-head");
  head.replaceChildren(el("th", {scope: "col"}, t("web.trends.time")));
  for (const {entry, data} of members) {
    const what = data.step === "raw" ? "" : " — " + t(data.counter ? "web.trends.sum" : "web.trends.mean");
    head.append(el("th", {scope: "col", "data-name": data.name}, seriesTitle(entry) + " (" + unitOf(entry) + ")" + what));
  }
  const {data, quality} = aligned(members);
  const range = state.zoom || state.home;
  const rows = [];
  data[0].forEach((ts, i) => { if (!range || (ts >= range.min - 0.5 && ts <= range.max + 0.5)) rows.push(i); });
  const pages = Math.max(1, Math.ceil(rows.length / TABLE_ROWS));
  state.tablePage = Math.min(state.tablePage, pages - 1);
  const body = $("table-rows");
  body.replaceChildren();
  for (const i of rows.slice(state.tablePage * TABLE_ROWS, (state.tablePage + 1) * TABLE_ROWS)) {
    const row = el("tr", {"data-t": String(data[0][i])});
    row.append(el("th", {scope: "row"}, timeText(data[0][i])));
    members.forEach((member, s) => {
      const value = data[s + 1][i], q = quality[s][i];
      const cell = el("td", {class: "num", "data-v": value === undefined ? "" : String(value), "data-q": q || ""},
                      value === undefined ? "" : valueText(value));
      const words = value === null ? t("web.trends.q.missing") : qualityWords(q);
      if (value !== undefined && words) {
        cell.classList.add(value === null ? "q-missing" : "q-uncertain");
        cell.append(el("span", {class: "q-mark", "aria-hidden": "true", title: words}, value === null ? "" : " ◆"),
                    el("span", {class: "visually-hidden"}, " (" + words + ")"));
      }
      row.append(cell);
    });
    body.append(row);
  }
  $("page-of").textContent = t("web.trends.rows", {first: rows.length ? state.tablePage * TABLE_ROWS + 1 : 0,
                                                    last: Math.min(rows.length, (state.tablePage + 1) * TABLE_ROWS),
                                                    count: rows.length});
  $("previous").disabled = state.tablePage === 0;
  $("next").disabled = state.tablePage >= pages - 1;
}

// ---------------------------------------------------------------- favourites (the session's profile's)

async function loadFavourites(selectName) {
  const [status, answer] = await getJson("/api/trends/favourites");
  state.favourites = status === 200 ? answer.favourites : [];
  const list = $("fav-list");
  list.replaceChildren();
  if (!state.favourites.length) list.append(el("option", {value: ""}, t("web.trends.fav_none")));
  for (const favourite of state.favourites) list.append(el("option", {value: favourite.name}, favourite.name));
  if (selectName) list.value = selectName;
  $("fav-open").disabled = $("fav-delete").disabled = !state.favourites.length;
}

function currentFavourite(name) {
  const period = state.period || {preset: "this_month"};
  const kept = period.preset === "custom" ? {preset: "custom", from: period.from, to: period.to}
    : {preset: period.preset};
  return {name, series: state.selection.slice(), period: kept, step: $("step").value, mode: $("mode").value,
          scale: $("scale").value, table: $("show-table").checked};
}

async function saveFavourite() {
  const name = $("fav-name").value.trim();
  $("fav-error").textContent = "";
  $("fav-name").removeAttribute("aria-invalid");
  if (!state.selection.length) { $("fav-error").textContent = t("web.trends.error.nothing_to_save"); return; }
  const [status, answer] = await postJson("/api/trends/favourites", currentFavourite(name));
  if (status !== 200) {
    $("fav-error").textContent = (answer.messages && answer.messages[0] && answer.messages[0].message) ||
      answer.error || String(status);
    $("fav-name").setAttribute("aria-invalid", "true");
    $("fav-name").focus();
    return;
  }
  $("fav-name").value = "";
  await loadFavourites(answer.favourite.name);
  say("ok", t(answer.replaced ? "web.trends.fav_replaced" : "web.trends.fav_saved", {name: answer.favourite.name}));
}

async function deleteFavourite() {
  const name = $("fav-list").value;
  if (!name || !confirm(t("web.trends.fav_confirm_delete", {name}))) return;
  const [status, answer] = await postJson("/api/trends/favourites/delete", {name});
  if (status !== 200) { say("bad", answer.error || String(status)); return; }
  await loadFavourites();
  say("ok", t("web.trends.fav_deleted", {name}));
}

function openFavourite(name) {
  const favourite = state.favourites.find((f) => f.name === name);
  if (!favourite) { say("bad", t("web.trends.fav_unknown", {name})); return false; }
  const gone = favourite.series.filter((n) => !state.byName[n]);
  state.selection = favourite.series.filter((n) => state.byName[n]);
  state.hidden.clear();
  $("step").value = favourite.step;
  $("mode").value = favourite.mode;
  $("scale").value = favourite.scale;
  $("show-table").checked = favourite.table;
  const first = state.byName[state.selection[0]];
  if (first) {
    state.item = {address: first.address, load: first.load || null};
    state.category = first.category;
    pane.select(first.address, first.load || null);
  }
  drawSelection();
  drawCategories();
  drawChoices();
  if (favourite.period.preset === "custom") {
    pane.$("preset").value = "custom";
    pane.setPeriod({preset: "custom", from: favourite.period.from, to: favourite.period.to});
  } else {
    pane.setPreset(favourite.period.preset);
  }
  $("fav-list").value = name;
  const url = new URL(location.href);
  url.searchParams.set("favourite", name);
  history.replaceState(null, "", url);
  say(gone.length ? "bad" : "ok", gone.length ? t("web.trends.fav_gone", {count: gone.length})
                                               : t("web.trends.fav_opened", {name}));
  return true;
}

// ---------------------------------------------------------------- start

function onSelect(item) {
  state.item = item;
  const entries = entriesOf(item);
  if (!entries.some((e) => e.category === state.category)) {
    state.category = (CATEGORIES.find((c) => entries.some((e) => e.category === c))) || null;
  }
  $("pick-where").textContent = entries.length ? t("web.trends.picked", {name: item.name})
    : t("web.trends.nothing_stored", {name: item.name});
  drawCategories();
  drawChoices();
}

function toggleConfig() {
  const open = $("config").hidden;
  $("config").hidden = !open;
  $("config-toggle").setAttribute("aria-expanded", String(open));
  $("config-toggle").textContent = t(open ? "web.trends.hide_config" : "web.trends.show_config");
}

async function start() {
  if (!await startView()) return;                          // static/viewbar.js: the views' top bar
  const [status, answer] = await getJson("/api/series/catalogue?lang=" + session.language);
  if (status === 200) {
    state.catalogue = answer.series;
    state.maxNames = answer.max_names;
    state.maxPoints = answer.max_points;
    state.offset = answer.utc_offset_s;
    for (const entry of state.catalogue) state.byName[entry.name] = entry;
  } else {
    say("bad", answer.error || String(status));
  }
  $("legend-quality").textContent = t("web.trends.quality_legend");
  for (const id of ["step", "scale"]) $(id).addEventListener("change", load);
  $("mode").addEventListener("change", draw);
  $("show-table").addEventListener("change", () => { state.tablePage = 0; drawTable(); });
  $("zoom-back").addEventListener("click", zoomBack);
  $("previous").addEventListener("click", () => { state.tablePage -= 1; drawTable(); });
  $("next").addEventListener("click", () => { state.tablePage += 1; drawTable(); });
  $("fav-save").addEventListener("click", saveFavourite);
  $("fav-open").addEventListener("click", () => openFavourite($("fav-list").value));
  $("fav-delete").addEventListener("click", deleteFavourite);
  $("config-toggle").addEventListener("click", toggleConfig);
  let resizing = null;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(fit, 150); });
  drawSelection();
  drawCategories();
  await loadFavourites();
  pane = new Pane($("pane"), {organisations: ["area", "usage", "fluid"], period: true, select: "load", onSelect,
                              onPeriod: (period) => { state.period = period; load(); }});
  await pane.load();
  const asked = new URLSearchParams(location.search).get("favourite");
  if (asked) openFavourite(asked);
  pageReady();
}

start();
