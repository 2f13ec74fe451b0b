// The Consumption page (WEBVIEW-M manual §8.5): the energy of the loads picked in the left pane (a hierarchy's
// node: its children and the non-measured point; a usage or fluid group, a device or one load), over the pane's
// period, as bars that drill down (year -> month -> week -> day -> hour -> integration period) by a click or
// Enter on a bar and back up by the breadcrumb; stacked or one bar per load; loads shown or hidden (the totals
// follow); a pie of the shares; one table of each load's total, average per bar, share and bar values; the CSV
// of that table. The gateway sums the points (GET /api/consumption): the page never sees a raw point. Every
// value carries its quality (≈ partial: some intervals have no point; — no point at all). Times are the
// gateway's local time (its buckets'). Text through textContent only.
"use strict";

const PALETTE = ["#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#be185d",
                 "#4d7c0f", "#1e3a8a", "#6b4f2a", "#475569"];
const PREFIXES = [["G", 1e9, 1e10], ["M", 1e6, 1e7], ["k", 1e3, 0]];    // prefix, factor, from this many base units
const FORMULA_START = ["=", "+", "-", "@", "\t", "\r"];                  // as outbound/export/formats.py's text()

const state = {offset: 0, selection: null, levels: [], answer: null, hidden: new Set(), key: "ea_pos",
               mode: "stacked", seq: 0, view: null};
let pane = null;

function say(kind, text) {
  $("message").className = "message " + (kind || "");
  $("message").textContent = text || "";
}

// ---------------------------------------------------------------- times (the gateway's local time)

function gatewayDate(ts) {
  const shifted = (ts + state.offset) * 1000;
  return new Date(shifted + new Date(shifted).getTimezoneOffset() * 60000);
}

const formats = {};
function fmt(name, options) {
  if (!formats[name]) formats[name] = new Intl.DateTimeFormat(document.documentElement.lang, options);
  return formats[name];
}
const dayText = (ts) => fmt("day", {day: "numeric", month: "short", year: "numeric"}).format(gatewayDate(ts));
const clockText = (ts) => fmt("clock", {hour: "2-digit", minute: "2-digit"}).format(gatewayDate(ts));

function iso(ts) {               // as the exports write a time: local, no zone suffix
  return new Date((ts + state.offset) * 1000).toISOString().slice(0, 19);
}

// {label: under the bar, title: in full} of bucket [b0, b1) of ``step``.
function bucketWords(step, b0, b1) {
  const d = gatewayDate(b0);
  switch (step) {
    case "month": return {label: fmt("mshort", {month: "short", year: "2-digit"}).format(d),
                          title: fmt("mlong", {month: "long", year: "numeric"}).format(d)};
    case "week": return {label: fmt("dshort", {day: "numeric", month: "short"}).format(d),
                         title: t("web.consumption.week_of", {from: dayText(b0), to: dayText(b1 - 1)})};
    case "day": return {label: fmt("wday", {weekday: "short", day: "numeric"}).format(d),
                        title: fmt("dlong", {weekday: "long", day: "numeric", month: "long", year: "numeric"}).format(d)};
    default: return {label: clockText(b0), title: dayText(b0) + " " + clockText(b0) + "–" + clockText(b1)};
  }
}

function periodWords(from, to) { return dayText(from) + " – " + dayText(to - 1); }

// The step of a range's bars: a year in months, a month in weeks, a week in days, a day in hours, an hour in
// the integration period.
function autoStep(from, to) {
  const span = to - from;
  if (span > 62 * 86400) return "month";
  if (span > 10 * 86400) return "week";
  if (span > 2 * 86400) return "day";
  if (span > 3600) return "hour";
  return "period";
}

// ---------------------------------------------------------------- numbers and units

// The unit of the whole page from the highest bar: kWh, MWh past 10,000 kWh, GWh past 10,000 MWh; decimals so
// a bar's value keeps about four digits.
function unitOf(answer, highest) {
  const [prefix, factor] = PREFIXES.find(([, , from]) => Math.abs(highest) >= from);
  const scaled = Math.abs(highest) / factor;
  const decimals = scaled < 10 ? 3 : scaled < 100 ? 2 : scaled < 1000 ? 1 : 0;
  return {name: prefix + answer.unit, factor, decimals};
}

let numberFormat = null;
function shown(text) {           // "1234.5" (the table's data-v and the CSV) in the reader's language
  if (text === "") return "—";
  const decimals = (text.split(".")[1] || "").length;
  if (!numberFormat || numberFormat.decimals !== decimals) {
    numberFormat = new Intl.NumberFormat(document.documentElement.lang, {minimumFractionDigits: decimals,
                                                                        maximumFractionDigits: decimals});
    numberFormat.decimals = decimals;
  }
  return numberFormat.format(Number(text));
}

function colourOf(index) {
  return index < PALETTE.length ? PALETTE[index] : "hsl(" + Math.round((index * 137.508) % 360) + " 60% 38%)";
}

function combine(qualities) {
  if (qualities.length && qualities.every((q) => q === "good")) return "good";
  if (!qualities.length || qualities.every((q) => q === "missing")) return "missing";
  return "partial";
}

// ---------------------------------------------------------------- the view: what is drawn, from one answer

// Everything the bars, the pie, the table and the CSV show, computed once per draw (the CSV is this).
function viewOf(answer) {
  const loads = answer.loads.map((load, i) => Object.assign({}, load, {colour: colourOf(i)}));
  const visible = loads.filter((l) => !state.hidden.has(l.id));
  const buckets = answer.buckets;
  const sums = buckets.map((_, i) => visible.reduce((a, l) => a + Math.max(0, l.v[i] || 0), 0));
  const unit = unitOf(answer, Math.max(0, ...sums));
  const fixed = (v) => (v === null || v === undefined) ? "" : (v / unit.factor).toFixed(unit.decimals);
  const rows = visible.map((l) => {
    const values = l.v.filter((v) => v !== null);
    const total = values.reduce((a, v) => a + v, 0);
    return {load: l, total, count: values.length, quality: combine(l.q)};
  });
  const grand = rows.reduce((a, r) => a + r.total, 0);
  const positive = rows.reduce((a, r) => a + Math.max(0, r.total), 0);
  for (const r of rows) {
    r.cells = [fixed(r.count ? r.total : null), fixed(r.count ? r.total / r.count : null),
               positive > 0 && r.total >= 0 ? (100 * r.total / positive).toFixed(1) : ""];
    r.bars = r.load.v.map(fixed);
  }
  const bucketTotals = buckets.map((_, i) => {
    const known = visible.filter((l) => l.v[i] !== null);
    return known.length ? known.reduce((a, l) => a + l.v[i], 0) : null;
  });
  const filled = bucketTotals.filter((v) => v !== null);
  const foot = {cells: [fixed(rows.some((r) => r.count) ? grand : null), fixed(filled.length ? grand / filled.length : null),
                        positive > 0 ? "100.0" : ""],
                bars: bucketTotals.map(fixed), quality: combine(rows.map((r) => r.quality)),
                q: buckets.map((_, i) => combine(visible.map((l) => l.q[i])))};
  return {loads, visible, rows, foot, unit, fixed, grand, positive, step: answer.step,
          words: buckets.map(([b0, b1]) => bucketWords(answer.step, b0, b1))};
}

function qualityText(q, load) {
  if (q === "good") return t("web.consumption.q.good");
  if (q === "missing") return t("web.consumption.q.missing");
  const complete = load ? load.q.filter((x) => x === "good").length : 0;
  return load ? t("web.consumption.q.partial_of", {count: complete, total: load.q.length})
    : t("web.consumption.q.partial");
}

function loadName(load) {
  return load.kind === "circuit" && load.device ? load.name + " · " + load.device : load.name;
}

// ---------------------------------------------------------------- drawing

function drillable(answer) {
  return answer.step !== "period" && !(answer.step === "hour" && answer.period_s >= 3600);
}

function drawChart(view) {
  const answer = state.answer;
  const box = $("bars");
  const drill = drillable(answer);
  drawBars(box, {width: box.clientWidth, height: window.innerWidth < 900 ? 280 : 340, labelledBy: "chart-title",
                 buckets: view.words.map((w) => ({label: w.label, title: w.title, drill})),
                 loads: view.visible.map((l) => ({colour: l.colour, name: l.name, q: l.q,
                                                  v: l.v.map((v) => (v === null ? null : v / view.unit.factor))})),
                 mode: state.mode, unit: view.unit.name,
                 format: (v) => shown(v.toFixed(view.unit.decimals)),
                 words: {partial: t("web.consumption.q.partial"), missing: t("web.consumption.q.missing"),
                         open: t("web.consumption.open")},
                 onDrill: (i) => drillInto(i)});
  $("drill-hint").textContent = drill ? t("web.consumption.drill_hint") : t("web.consumption.finest");
}

function drawToggles(view) {
  const list = $("toggles");
  list.replaceChildren(...view.loads.map((l, i) => {
    const id = "load-" + i;
    const box = el("input", {type: "checkbox", id, "data-id": l.id});
    box.checked = !state.hidden.has(l.id);
    box.addEventListener("change", () => {
      if (box.checked) state.hidden.delete(l.id); else state.hidden.add(l.id);
      draw();
    });
    const item = el("li", {class: "toggle" + (l.kind === "unmeasured" ? " unmeasured" : "")});
    const swatch = el("span", {class: "swatch", "aria-hidden": "true"});
    swatch.style.background = l.colour;
    item.append(box, swatch, el("label", {for: id}, loadName(l)));
    return item;
  }));
}

function drawPieChart(view) {
  const slices = view.rows.filter((r) => r.total > 0)
    .map((r) => ({name: loadName(r.load), colour: r.load.colour, value: r.total}));
  const negative = view.rows.filter((r) => r.total < 0).map((r) => loadName(r.load));
  if (!slices.length) {
    $("pie").replaceChildren(el("p", {class: "muted"}, t("web.consumption.pie_empty")));
  } else {
    drawPie($("pie"), slices, t("web.consumption.pie_label", {count: slices.length}),
            (v) => shown(v.toFixed(1)));
  }
  $("pie-note").textContent = negative.length ? t("web.consumption.pie_negative", {names: negative.join(", ")}) : "";
}

function cell(tag, text, attrs) {
  const node = el(tag, attrs);
  node.textContent = text;
  return node;
}

function valueCell(text, q) {
  const td = el("td", {class: "num q-" + q, "data-v": text, "data-q": q});
  td.textContent = shown(text);
  if (q !== "good") td.append(el("span", {class: "qmark", title: t("web.consumption.q." + q)}, q === "missing" ? "" : " ≈"));
  return td;
}

function tableHead(view) {
  return [t("web.consumption.col.load"), t("web.consumption.col.total", {unit: view.unit.name}),
          t("web.consumption.col.average", {unit: view.unit.name}), t("web.consumption.col.share"),
          t("web.consumption.col.quality")];
}

function drawTable(view) {
  const head = tableHead(view).map((text, i) => cell("th", text, {scope: "col", class: i && i < 4 ? "num" : null}));
  view.words.forEach((w, i) => head.push(cell("th", w.label, {scope: "col", class: "num", title: w.title,
                                                              "data-t0": state.answer.buckets[i][0]})));
  $("table-head").replaceChildren(...head);
  $("table-rows").replaceChildren(...view.rows.map((r) => {
    const tr = el("tr", {"data-id": r.load.id});
    tr.append(cell("th", loadName(r.load), {scope: "row"}), valueCell(r.cells[0], r.quality),
              valueCell(r.cells[1], r.quality), cell("td", r.cells[2] === "" ? "—" : shown(r.cells[2]) + " %",
                                                       {class: "num", "data-v": r.cells[2]}),
              cell("td", qualityText(r.quality, r.load), {"data-q": r.quality}));
    r.bars.forEach((text, i) => tr.append(valueCell(text, r.load.q[i])));
    return tr;
  }));
  const tr = el("tr", {"data-id": "total"});
  tr.append(cell("th", t("web.consumption.total_shown"), {scope: "row"}), valueCell(view.foot.cells[0], view.foot.quality),
            valueCell(view.foot.cells[1], view.foot.quality),
            cell("td", view.foot.cells[2] === "" ? "—" : shown(view.foot.cells[2]) + " %",
                 {class: "num", "data-v": view.foot.cells[2]}),
            cell("td", qualityText(view.foot.quality), {"data-q": view.foot.quality}));
  view.foot.bars.forEach((text, i) => tr.append(valueCell(text, view.foot.q[i])));
  $("table-foot").replaceChildren(tr);
}

function drawCrumbs() {
  const items = state.levels.map((level, k) => {
    const li = el("li");
    const label = k ? bucketWords(state.levels[k - 1].step, level.from, level.to).title
      : periodWords(level.from, level.to);
    if (k === state.levels.length - 1) li.append(el("span", {"aria-current": "page"}, label));
    else {
      const button = el("button", {type: "button", class: "crumb", "data-level": k}, label);
      button.addEventListener("click", () => { state.levels = state.levels.slice(0, k + 1); load(); });
      li.append(button);
    }
    return li;
  });
  $("crumb-list").replaceChildren(...items);
}

function drawNode() {
  const node = state.answer.node, line = $("node-line");
  line.hidden = !node;
  if (!node) return;
  const view = state.view;
  const known = node.v.filter((v) => v !== null);
  const total = known.length ? view.fixed(known.reduce((a, v) => a + v, 0)) : "";
  line.textContent = node.meter
    ? t("web.consumption.node_meter", {meter: node.meter_name, total: shown(total), unit: view.unit.name})
    : t("web.consumption.node_sum");
}

function draw() {
  const answer = state.answer;
  if (!answer) return;
  const view = state.view = viewOf(answer);
  $("grand-total").textContent = view.foot.cells[0] !== "" ? shown(view.foot.cells[0]) + " " + view.unit.name : "—";
  $("grand-total").dataset.v = view.foot.cells[0];
  drawChart(view);
  drawToggles(view);
  drawPieChart(view);
  drawTable(view);
  drawCrumbs();
  drawNode();
  $("csv").disabled = false;
  const bars = $("bars");
  bars.dataset.level = String(state.levels.length);
  bars.dataset.step = answer.step;
  bars.dataset.state = "drawn";
}

// ---------------------------------------------------------------- reading

async function load() {
  if (!state.selection || !state.levels.length) return;
  const level = state.levels[state.levels.length - 1];
  const seq = ++state.seq;
  $("bars").dataset.state = "loading";
  const [status, answer] = await getJson("/api/consumption?" + state.selection.query + "&from=" + level.from +
                                         "&to=" + level.to + "&step=" + level.step + "&data=" + state.key);
  if (seq !== state.seq) return;                   // a newer request is on its way
  if (status !== 200) {
    say("bad", (answer.messages && answer.messages.length ? answer.messages[0].message : answer.error) ||
               String(status));
    $("bars").dataset.state = "error";
    return;
  }
  say("", "");
  state.offset = answer.utc_offset_s;
  state.answer = answer;
  draw();
}

function drillInto(i) {
  const answer = state.answer;
  if (!answer || !drillable(answer)) return;
  const [b0, b1] = answer.buckets[i];
  state.levels.push({from: b0, to: b1, step: autoStep(b0, b1)});
  load();
}

function onPeriod(period) {
  state.levels = [{from: period.from, to: period.to, step: autoStep(period.from, period.to)}];
  load();
}

function onSelect(item) {
  if (item.hierarchy) {
    state.selection = {name: item.name, query: "hierarchy=" + encodeURIComponent(item.hierarchy) + "&node=" + item.node};
  } else if (item.circuits && item.circuits.length) {
    state.selection = {name: item.name, query: "circuits=" + item.circuits.join(",")};
  } else {
    say("bad", t("web.consumption.no_loads", {name: item.name}));
    return;
  }
  $("selection-name").textContent = item.name;
  state.hidden.clear();
  load();
}

let switched = false;
function onTree(doc) {
  if (doc.by === "hierarchy" && !doc.groups.length && !switched) {      // manual §8.5: no hierarchy, no breakdown
    switched = true;
    $("note").textContent = t("web.consumption.no_hierarchy");
    $("note").hidden = false;
    pane.$("by").value = pane.by = "usage";
    pane.refresh();
    return;
  }
  if (!state.asked) {
    const first = pane.box.querySelector(".pane-item");
    if (first) first.click();
  }
}

// ---------------------------------------------------------------- the CSV of what is shown

// One cell (RFC 4180: quoted when it holds the separator, a quote or a line end); a text that a spreadsheet
// would take for a formula is defused with a leading "'" (a number such as -5.000 stays a number).
function csvCell(value, numeric) {
  let text = String(value);
  if (!numeric && FORMULA_START.some((c) => text.startsWith(c))) text = "'" + text;
  return /[";\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

// The table as shown (its numbers as its data-v: the unit's decimals, a "." separator), under three lines
// that say what it is: the selection, the energy and its unit, the period.
function csvText() {
  const view = state.view, answer = state.answer, level = state.levels[state.levels.length - 1];
  const text = (v) => csvCell(v, false), num = (v) => csvCell(v, true);
  const lines = [[text(t("web.consumption.title")), text($("selection-name").textContent)],
                 [text($("data-key").selectedOptions[0].textContent), text(view.unit.name)],
                 [text(t("web.pane.from")), iso(level.from), text(t("web.pane.to")), iso(level.to)], [],
                 tableHead(view).map(text).concat(answer.buckets.map(([b0]) => iso(b0)))];
  for (const r of view.rows) {
    lines.push([text(loadName(r.load))].concat(r.cells.map(num), [text(qualityText(r.quality, r.load))],
                                               r.bars.map(num)));
  }
  lines.push([text(t("web.consumption.total_shown"))].concat(view.foot.cells.map(num),
                                                             [text(qualityText(view.foot.quality))],
                                                             view.foot.bars.map(num)));
  return lines.map((line) => line.join(";")).join("\r\n") + "\r\n";
}

function downloadCsv() {
  const level = state.levels[state.levels.length - 1];
  const blob = new Blob([csvText()], {type: "text/csv;charset=utf-8"});
  const link = el("a", {href: URL.createObjectURL(blob),
                        download: "consumption-" + iso(level.from).slice(0, 10) + "-" + answerStep() + ".csv"});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  say("ok", t("web.consumption.csv_done"));
}

function answerStep() { return state.answer ? state.answer.step : ""; }

// ---------------------------------------------------------------- start

async function start() {
  if (!await startView()) return;                          // static/viewbar.js: the views' top bar
  const query = new URLSearchParams(location.search);
  if (query.get("data")) { state.key = query.get("data"); $("data-key").value = state.key; }
  if (query.get("mode")) { state.mode = query.get("mode"); $("mode").value = state.mode; }
  state.asked = query.get("select");
  $("data-key").addEventListener("change", () => { state.key = $("data-key").value; load(); });
  $("mode").addEventListener("change", () => { state.mode = $("mode").value; draw(); });
  $("csv").addEventListener("click", downloadCsv);
  $("all-on").addEventListener("click", () => { state.hidden.clear(); draw(); });
  $("all-off").addEventListener("click", () => {
    if (state.answer) for (const l of state.answer.loads) state.hidden.add(l.id);
    draw();
  });
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { if (state.view) drawChart(state.view); }, 150);
  });
  pane = new Pane($("pane"), {organisations: ["hierarchy", "usage", "fluid"], period: true, select: "load",
                              groups: true, preset: "this_year", onSelect, onPeriod, onTree});
  const by = query.get("by");
  if (by && by !== "hierarchy") { switched = true; pane.by = by; }
  await pane.load();
  if (by) pane.$("by").value = pane.by;
  const from = Number(query.get("from")), to = Number(query.get("to"));
  if (from > 0 && to > from) {
    pane.$("preset").value = "custom";
    pane.setPeriod({preset: "custom", from, to});
  }
  if (state.asked) {
    const button = pane.box.querySelector(".pane-item[data-key='" + CSS.escape(state.asked) + "']");
    if (button) button.click(); else say("bad", t("web.consumption.not_found", {key: state.asked}));
  }
  pageReady();
}

start();
