// What the Photoview's viewer and editor share (loaded after page.js): the page's stage, drawn in the page's own
// pixels (its background's size) and scaled as a whole to the window's width, so a widget stays on its spot of
// the picture at 1920 px as at 768 px; and each widget's element (a measurement table, a text, a device icon or
// clickable area, a link to another page). Texts through textContent only.
"use strict";

const DEVICE_ICON = "M5 3h14v18H5zM8 6h8v5H8zM8 14h2M12 14h4M8 17h2M12 17h4";   // one SVG path, 24x24
const LINK_ICON = "M5 12h13M13 6l6 6-6 6";
let numbers = null;                 // the session's locale for numbers


function ageText(age) {
  if (age === null || age === undefined) return "";
  const s = Math.round(age);
  if (s < 120) return t("web.monitor.age_s", {n: s});
  if (s < 7200) return t("web.monitor.age_min", {n: Math.round(s / 60)});
  return t("web.monitor.age_h", {n: Math.round(s / 3600)});
}

function formatValue(value, unit) {
  if (value === null || value === undefined) return "—";
  if (typeof value !== "number") return String(value);
  const digits = Math.abs(value) >= 1000 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  const text = value.toLocaleString(numbers || undefined, {minimumFractionDigits: digits, maximumFractionDigits: digits});
  return unit ? text + "\u00a0" + unit : text;
}

// A value's name: its symbol (the Monitor's: "V1", "ΣP"), else the catalogue's word, else the registry's name;
// ``labels`` is the gateway's {key: [symbol or null, name]}.
const keyNames = {};

function keyLabel(key) {
  const [symbol, name] = keyNames[key] || [null, null];
  const word = "web.monitor.key." + key;
  return symbol || (texts[word] ? texts[word] : (name || key));
}

function learnLabels(labels) { Object.assign(keyNames, labels || {}); }

// The stage: an outer box as wide as its parent and an inner canvas of the page's own size, scaled to fit.
function makeStage(holder, size, backgroundUrl, backgroundAlt) {
  const outer = el("div", {class: "pv-outer"});
  const canvas = el("div", {class: "pv-canvas"});
  canvas.style.width = size[0] + "px";
  canvas.style.height = size[1] + "px";
  if (backgroundUrl) canvas.append(el("img", {class: "pv-background", src: backgroundUrl, alt: backgroundAlt,
                                               width: size[0], height: size[1]}));
  outer.append(canvas);
  holder.replaceChildren(outer);
  const stage = {outer, canvas, size, scale: 1};
  stage.fit = () => {
    const width = holder.clientWidth || size[0];
    stage.scale = Math.min(1, width / size[0]);
    canvas.style.transform = "scale(" + stage.scale + ")";
    outer.style.height = Math.ceil(size[1] * stage.scale) + "px";
  };
  stage.fit();
  return stage;
}

function place(node, widget) {
  node.style.left = widget.x + "px";
  node.style.top = widget.y + "px";
  if (widget.type === "device") {                   // an icon or an area: the size it was given
    node.style.width = widget.w + "px";
    node.style.height = widget.h + "px";
  }
}

// A widget's element; ``link(widget)`` is its href (null in the editor: nothing opens there). The measurement
// table has a cell per value (data-row "<address>/<load>", data-key) for the live values.
function widgetNode(widget, index, names, link) {
  const href = link ? link(widget) : null;
  const tag = href ? "a" : "div";
  const node = el(tag, {class: "pv-widget pv-" + widget.type + (widget.mode ? " pv-" + widget.mode : ""),
                        href, "data-index": index});
  const row = widget.address !== undefined ? widget.address + "/" + widget.load : null;
  if (widget.type === "measure") {
    const table = el("table");
    table.append(el("caption", {}, widget.title || names.device(widget.address, widget.load)));
    const body = el("tbody");
    for (const key of widget.keys) {
      const line = el("tr", {"data-row": row, "data-key": key});
      line.append(el("th", {scope: "row"}, keyLabel(key)), el("td", {class: "val num"}, "—"),
                  el("td", {class: "q"}, ""));
      body.append(line);
    }
    table.append(body);
    node.append(table);
  } else if (widget.type === "text") {
    node.textContent = widget.text;
    node.style.color = widget.color;
    node.style.background = widget.background;
  } else if (widget.type === "device") {
    const name = names.device(widget.address, widget.load);
    if (widget.mode === "icon") {
      node.append(lineIcon(DEVICE_ICON), el("span", {class: "pv-name"}, name));
      node.append(el("span", {class: "pv-state", "data-row": row}));
    } else {
      node.setAttribute("aria-label", t("web.photoview.area_of", {name}));
      node.append(el("span", {class: "pv-area-name"}, name));
    }
  } else if (widget.type === "link") {
    node.append(lineIcon(LINK_ICON), el("span", {}, widget.label));
  }
  place(node, widget);
  return node;
}
