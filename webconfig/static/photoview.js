// The Photoview (WEBVIEW-M manual §8.4): the pages as tabs, the chosen page's background and its widgets. The
// measurement tables' values are GET /api/photoview/live's, polled: each value with its quality and age, stale
// or lost ones greyed. A measurement table or a device opens the device's Monitor page; a link opens another
// photoview page. Texts through textContent only.
"use strict";

const POLL_MS = 2000;
let pages = [], current = null, devices = {}, received = 0, timer = null;

function chosenId() {
  const wanted = new URLSearchParams(location.search).get("page");
  return pages.some((p) => p.id === wanted) ? wanted : (pages[0] ? pages[0].id : null);
}

function monitorLink(widget) {
  if (widget.type === "measure" || widget.type === "device") {
    return "/monitor?address=" + widget.address + "&load=" + widget.load;
  }
  if (widget.type === "link") return "/photoview?page=" + encodeURIComponent(widget.target);
  return null;
}

const names = {
  device(address, load) {
    const row = devices[address + "/" + load];
    if (!row || row.missing) return t("web.photoview.device_at", {address, load});
    return row.name + (row.load_name ? " · " + row.load_name : (load ? " · " + t("web.photoview.load", {load}) : ""));
  },
};

function drawTabs() {
  const list = $("pages");
  list.replaceChildren(...pages.map((page) => {
    const item = el("li");
    const link = el("a", {href: "/photoview?page=" + encodeURIComponent(page.id),
                          "aria-current": page.id === current.id ? "page" : null}, page.name);
    item.append(link);
    return item;
  }));
}

function draw() {
  $("page-title").textContent = current.name;
  document.title = current.name + " — " + t("web.photoview.title");
  const url = current.background ? "/photoview/background/" + current.id + "?v=" + current.background.version : null;
  const stage = makeStage($("stage"), current.canvas, url, t("web.photoview.background_of", {name: current.name}));
  current.widgets.forEach((widget, index) => stage.canvas.append(widgetNode(widget, index, names, monitorLink)));
  window.addEventListener("resize", stage.fit);
  if (!current.widgets.length) say(t("web.photoview.empty_page"));
}

function say(text) { $("message").textContent = text; }

function update(answer) {
  devices = answer.rows;
  received = Date.now();
  for (const line of document.querySelectorAll("tr[data-row]")) {
    const row = devices[line.dataset.row];
    const cell = line.querySelector("td.val"), q = line.querySelector("td.q");
    if (!row || row.missing) {
      line.className = "comm_lost";
      cell.textContent = "—";
      q.textContent = t("web.photoview.no_device");
      continue;
    }
    learnLabels(row.labels);
    line.querySelector("th").textContent = keyLabel(line.dataset.key);
    const [value, quality, age] = row.values[line.dataset.key] || [null, "not_supported", null];
    line.className = quality;
    cell.dataset.value = value === null ? "" : String(value);
    cell.textContent = formatValue(value, row.units[line.dataset.key]);
    q.textContent = t("web.monitor.quality." + quality) + (quality === "good" || age === null ? "" :
      " · " + ageText(age));
  }
  for (const state of document.querySelectorAll(".pv-state[data-row]")) {
    const row = devices[state.dataset.row];
    const name = row && !row.missing ? row.state : "absent";
    state.dataset.state = name;
    state.textContent = t("web.devices.state." + name) + (row && row.state !== "ok" && row.age_s !== null
      ? " · " + ageText(row.age_s) : "");
  }
  for (const caption of document.querySelectorAll(".pv-measure caption, .pv-icon .pv-name, .pv-area-name")) {
    const widget = current.widgets[Number(caption.closest(".pv-widget").dataset.index)];
    if (widget.type !== "measure" || !widget.title) caption.textContent = names.device(widget.address, widget.load);
  }
  $("updated").textContent = t("web.photoview.updated", {time: new Date(answer.time * 1000).toLocaleTimeString(numbers)});
}

async function poll() {
  clearTimeout(timer);
  try {
    const [status, answer] = await getJson("/api/photoview/live?page=" + encodeURIComponent(current.id));
    if (status === 200) {
      update(answer);
      if (current.widgets.length) say("");
    } else {
      say(t("web.photoview.live_failed", {reason: answer.error || status}));
    }
  } catch (err) {
    say(t("web.photoview.live_failed", {reason: err.message || String(err)}));
  }
  timer = setTimeout(poll, POLL_MS);
}

async function start() {
  if (!(await startView())) return;
  numbers = session.language === "fr" ? "fr-FR" : "en-GB";
  const [[status, answer], [, offered]] = await Promise.all([getJson("/api/photoview"), getJson("/api/pages")]);
  $("edit-link").hidden = !(offered.pages || []).some((p) => p.page === "photoview-edit");
  if (status !== 200) { say(answer.error || String(status)); pageReady(); return; }
  pages = answer.pages;
  if (!pages.length) { say(t("web.photoview.no_pages")); pageReady(); return; }
  current = pages.find((p) => p.id === chosenId());
  drawTabs();
  $("view").hidden = false;
  draw();
  await poll();
  pageReady();
}

document.addEventListener("DOMContentLoaded", start);
