// The Photoview editor's two placing aids (manual §9.8), loaded before photoview-edit.js and called by it:
// a corner handle that resizes a device icon or clickable area by dragging (bounded to the page, at least the
// store's least size; the width and height fields follow), and "drop by location": one widget per device of an
// area, laid out in a grid on the page's free space, refused whole past the page's widget limit. Both change only the
// page being edited: Save sends it to the gateway, which checks every widget again.
"use strict";

const placing = {areas: [], minSize: 16};
// a widget's grid cell by the kind added (its size, or a measurement table's usual size, plus a gap)
const CELL = {icon: [200, 130], area: [140, 100], measure: [300, 160]};
const NEW_SIZE = {icon: [180, 110], area: [120, 80]};

// Width and height kept within [least size, the page's edge from the widget's corner].
function clampSize(widget, w, h) {
  widget.w = Math.max(placing.minSize, Math.min(current.canvas[0] - widget.x, Math.round(w)));
  widget.h = Math.max(placing.minSize, Math.min(current.canvas[1] - widget.y, Math.round(h)));
}

function showSize(widget) {
  for (const side of ["w", "h"]) if ($("prop-" + side)) $("prop-" + side).value = widget[side];
}

// The corner handle of the selected sized widget ``node``: a pointer drag sets its width and height.
function addHandle(node, widget) {
  if (widget.w === undefined) return;
  const handle = el("span", {class: "pv-handle", "aria-hidden": "true", title: t("web.photoview.dnd.handle")});
  handle.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    event.stopPropagation();                    // a resize, not a move
    const w0 = widget.w, h0 = widget.h, cx = event.clientX, cy = event.clientY;
    handle.setPointerCapture(event.pointerId);
    const move = (e) => {
      clampSize(widget, w0 + (e.clientX - cx) / stage.scale, h0 + (e.clientY - cy) / stage.scale);
      place(node, widget);
      showSize(widget);
    };
    handle.addEventListener("pointermove", move);
    handle.addEventListener("pointerup", () => {
      handle.removeEventListener("pointermove", move);
      say(t("web.photoview.dnd.resized", {w: widget.w, h: widget.h}));
    }, {once: true});
  });
  node.append(handle);
}

// ``n`` top-left corners of a grid of ``cw`` x ``ch`` cells over the page, the cells that cover the fewest
// widgets already drawn first (the free ones, in reading order), so a new batch does not land on the others.
function gridCells(n, cw, ch) {
  const taken = Array.from(stage.canvas.querySelectorAll(".pv-widget"))
    .map((node) => [node.offsetLeft, node.offsetTop, node.offsetWidth, node.offsetHeight]);
  const columns = Math.max(1, Math.floor((current.canvas[0] - 20) / cw));
  const lines = Math.max(1, Math.floor((current.canvas[1] - 20) / ch), Math.ceil(n / columns));
  const cells = [];
  for (let i = 0; i < columns * lines; i++) {
    const x = 20 + (i % columns) * cw, y = 20 + Math.floor(i / columns) * ch;
    const covered = taken.filter(([a, b, w, h]) => a < x + cw - 20 && x < a + w && b < y + ch - 20 && y < b + h).length;
    cells.push([covered, i, x, y]);
  }
  cells.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  return cells.slice(0, n).map(([, , x, y]) => [x, y]);
}

function areaName(area) { return area || t("web.photoview.dnd.no_area"); }

function drawAreaTool() {
  const pick = $("area-pick");
  pick.replaceChildren(...placing.areas.map((a, i) => el("option", {value: String(i)},
    t("web.photoview.dnd.area_option", {area: areaName(a.area), n: a.addresses.length}))));
  $("area-as").replaceChildren(...["icon", "area", "measure"].map((kind) =>
    el("option", {value: kind}, t(kind === "measure" ? "web.photoview.tool.measure" : "web.photoview.mode." + kind))));
  $("area-add").disabled = !placing.areas.length;
}

// One widget per device of the chosen area, at the device's first load that holds values (as the editor's
// device list); devices without values yet are left out and counted.
function addArea() {
  const area = placing.areas[Number($("area-pick").value)], kind = $("area-as").value;
  if (!area || !current) return;
  const firsts = area.addresses.map((address) => rows().find((r) => r[0] === address)).filter(Boolean);
  const skipped = area.addresses.length - firsts.length;
  if (!firsts.length) { say(t("web.photoview.dnd.area_empty", {area: areaName(area.area)}), "bad"); return; }
  if (current.widgets.length + firsts.length > limits.widgets) {
    say(t("web.photoview.dnd.area_too_many", {area: areaName(area.area), n: firsts.length,
                                              have: current.widgets.length, max: limits.widgets}), "bad");
    return;
  }
  const cells = gridCells(firsts.length, ...CELL[kind]);
  firsts.forEach(([address, load, , keys], i) => {
    const widget = kind === "measure"
      ? {type: "measure", address, load, title: "", keys: PREFERRED_KEYS.filter((k) => keys.includes(k))}
      : {type: "device", address, load, mode: kind, w: NEW_SIZE[kind][0], h: NEW_SIZE[kind][1]};
    if (kind === "measure" && !widget.keys.length) widget.keys = keys.slice(0, 3);
    clampPlace(widget, cells[i][0], cells[i][1]);
    if (widget.w !== undefined) clampSize(widget, widget.w, widget.h);
    current.widgets.push(widget);
  });
  selected = null;
  drawStage();
  drawProps();
  say(t("web.photoview.dnd.area_added", {n: firsts.length, area: areaName(area.area)}) +
      (skipped ? " " + t("web.photoview.dnd.area_skipped", {n: skipped}) : ""), "good");
}
