// The Photoview editor (WEBVIEW-M manual §9.8, Admin and Cyber Security): pages added, renamed, deleted; a
// background uploaded (PNG or JPEG within SPEC §10's bounds, checked again by the gateway); widgets taken from
// the toolbox by drag and drop (or by pressing the tool: the keyboard's way) and placed by dragging them or by
// their x / y fields; Save sends the page's widgets, each checked by the gateway, which refuses with the field's
// message. A device icon or area is resized by its corner handle or its fields; a whole area's devices are added
// at once (photoview-place.js). Texts through textContent only.
"use strict";

const TOOLS = ["measure", "text", "device", "link"];
const PREFERRED_KEYS = ["p", "i_sys", "v_sys", "ea_pos"];
let pages = [], limits = null, current = null, selected = null, sources = [], stage = null;

function say(text, kind) {
  const line = $("message");
  line.textContent = text;
  line.className = "message" + (kind ? " " + kind : "");
}

function refusalText(status, answer) {
  const details = (answer.messages || []).map((m) => m.message).filter(Boolean);
  return [answer.error || String(status)].concat(details).join(" — ");
}

function rows() {              // every device's load that holds values, as [address, load, label, keys]
  const out = [];
  for (const device of sources) {
    for (const load of device.loads) {
      if (!load.keys.length) continue;
      const name = device.name + (load.name ? " · " + load.name : (load.load ? " · " + t("web.photoview.load", {load: load.load}) : ""));
      out.push([device.address, load.load, name + " (" + device.address + ")", load.keys]);
    }
  }
  return out;
}

const names = {
  device(address, load) {
    const row = rows().find((r) => r[0] === address && r[1] === load);
    return row ? row[2] : t("web.photoview.device_at", {address, load});
  },
};

function drawTabs() {
  $("pages").replaceChildren(...pages.map((page) => {
    const item = el("li");
    const button = el("button", {type: "button", "aria-pressed": current && page.id === current.id ? "true" : "false"},
                      page.name);
    button.addEventListener("click", () => choose(page.id));
    item.append(button);
    return item;
  }));
}

function choose(id) {
  const page = pages.find((p) => p.id === id);
  current = page ? JSON.parse(JSON.stringify(page)) : null;
  selected = null;
  drawTabs();
  $("editor").hidden = !current;
  if (!current) return;
  $("page-name").value = current.name;
  drawStage();
  drawProps();
}

function drawStage() {
  const url = current.background ? "/photoview/background/" + current.id + "?v=" + current.background.version : null;
  stage = makeStage($("stage"), current.canvas, url, t("web.photoview.background_of", {name: current.name}));
  current.widgets.forEach((widget, index) => {
    const node = widgetNode(widget, index, names, null);
    node.tabIndex = 0;
    node.setAttribute("role", "button");
    node.setAttribute("aria-label", t("web.photoview.widget_named", {type: t("web.photoview.tool." + widget.type),
                                                                    n: index + 1}));
    if (index === selected) {
      node.classList.add("selected");
      addHandle(node, widget);
    }
    node.addEventListener("pointerdown", (event) => startMove(event, index, node));
    node.addEventListener("keydown", (event) => keyMove(event, index));
    node.addEventListener("focus", () => { if (selected !== index) select(index); });
    stage.canvas.append(node);
  });
  stage.canvas.addEventListener("dragover", (event) => { event.preventDefault(); stage.canvas.classList.add("drop"); });
  stage.canvas.addEventListener("dragleave", () => stage.canvas.classList.remove("drop"));
  stage.canvas.addEventListener("drop", (event) => {
    event.preventDefault();
    stage.canvas.classList.remove("drop");
    const type = event.dataTransfer.getData("text/plain");
    if (!TOOLS.includes(type)) return;
    const box = stage.canvas.getBoundingClientRect();
    add(type, (event.clientX - box.left) / stage.scale, (event.clientY - box.top) / stage.scale);
  });
}

function clampPlace(widget, x, y) {
  widget.x = Math.max(0, Math.min(current.canvas[0] - 1, Math.round(x)));
  widget.y = Math.max(0, Math.min(current.canvas[1] - 1, Math.round(y)));
}

function select(index) {
  selected = index;
  for (const node of stage.canvas.querySelectorAll(".pv-widget")) {
    node.classList.toggle("selected", Number(node.dataset.index) === index);
  }
  for (const handle of stage.canvas.querySelectorAll(".pv-handle")) handle.remove();
  const node = stage.canvas.querySelector(".pv-widget[data-index='" + index + "']");
  if (node && current.widgets[index]) addHandle(node, current.widgets[index]);
  drawProps();
}

function startMove(event, index, node) {
  if (event.button !== 0) return;
  event.preventDefault();
  node.focus();
  select(index);
  const widget = current.widgets[index], x0 = widget.x, y0 = widget.y, cx = event.clientX, cy = event.clientY;
  node.setPointerCapture(event.pointerId);
  const move = (e) => {
    clampPlace(widget, x0 + (e.clientX - cx) / stage.scale, y0 + (e.clientY - cy) / stage.scale);
    place(node, widget);
    $("prop-x").value = widget.x;
    $("prop-y").value = widget.y;
  };
  node.addEventListener("pointermove", move);
  node.addEventListener("pointerup", () => node.removeEventListener("pointermove", move), {once: true});
}

function keyMove(event, index) {
  const steps = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]}[event.key];
  if (!steps) return;
  event.preventDefault();
  const widget = current.widgets[index], step = event.shiftKey ? 10 : 1;
  clampPlace(widget, widget.x + steps[0] * step, widget.y + steps[1] * step);
  place(event.currentTarget, widget);
  drawProps();
}

function defaults(type, x, y) {
  const widget = {type, x: 0, y: 0};
  const first = rows()[0];
  if (type === "measure" || type === "device") {
    if (!first) { say(t("web.photoview.no_devices"), "bad"); return null; }
    widget.address = first[0];
    widget.load = first[1];
  }
  if (type === "measure") {
    const keys = PREFERRED_KEYS.filter((k) => first[3].includes(k));
    widget.keys = keys.length ? keys : first[3].slice(0, 3);
    widget.title = "";
  } else if (type === "text") {
    Object.assign(widget, {text: t("web.photoview.default_text"), color: "#1d232b", background: "#ffffff"});
  } else if (type === "device") {
    Object.assign(widget, {mode: "icon", w: NEW_SIZE.icon[0], h: NEW_SIZE.icon[1]});
  } else if (type === "link") {
    const other = pages.find((p) => p.id !== current.id);
    if (!other) { say(t("web.photoview.no_other_page"), "bad"); return null; }
    Object.assign(widget, {target: other.id, label: other.name});
  }
  clampPlace(widget, x, y);
  return widget;
}

function add(type, x, y) {
  if (current.widgets.length >= limits.widgets) {
    say(t("web.photoview.error.too_many_widgets", {max: limits.widgets}), "bad");
    return;
  }
  const widget = defaults(type, x, y);
  if (!widget) return;
  current.widgets.push(widget);
  selected = current.widgets.length - 1;
  drawStage();
  drawProps();
  say(t("web.photoview.added", {type: t("web.photoview.tool." + type)}));
  $("prop-x").focus();
}

function field(label, input) {
  const id = input.id;
  return [el("label", {for: id}, label), input];
}

function numberInput(id, value, min, max, change) {
  const input = el("input", {id, type: "number", min, max, step: 1, value});
  input.addEventListener("change", () => {
    const v = Number(input.value);
    if (Number.isInteger(v)) change(v);
  });
  return input;
}

function redrawWidget() {
  const focused = document.activeElement && document.activeElement.id;
  drawStage();
  if (focused && $(focused)) $(focused).focus();
}

function rowSelect(widget) {
  const select = el("select", {id: "prop-device"});
  for (const [address, load, label] of rows()) {
    select.append(el("option", {value: address + "/" + load,
                                selected: address === widget.address && load === widget.load}, label));
  }
  select.addEventListener("change", () => {
    const [address, load] = select.value.split("/").map(Number);
    widget.address = address;
    widget.load = load;
    if (widget.type === "measure") {
      const keys = rows().find((r) => r[0] === address && r[1] === load)[3];
      widget.keys = widget.keys.filter((k) => keys.includes(k));
      if (!widget.keys.length) widget.keys = keys.slice(0, 1);
    }
    redrawWidget();
    drawProps();
  });
  return select;
}

function drawProps() {
  const box = $("props");
  if (selected === null || !current.widgets[selected]) {
    box.replaceChildren(el("p", {class: "muted"}, t("web.photoview.none_selected")));
    return;
  }
  const widget = current.widgets[selected];
  const parts = [el("p", {}, t("web.photoview.tool." + widget.type))];
  const xy = el("div", {class: "pv-xy"});
  xy.append(...field(t("web.photoview.x"), numberInput("prop-x", widget.x, 0, current.canvas[0] - 1, (v) => {
    clampPlace(widget, v, widget.y); redrawWidget(); })));
  xy.append(...field(t("web.photoview.y"), numberInput("prop-y", widget.y, 0, current.canvas[1] - 1, (v) => {
    clampPlace(widget, widget.x, v); redrawWidget(); })));
  parts.push(xy);
  if (widget.type === "measure" || widget.type === "device") parts.push(...field(t("web.photoview.device"), rowSelect(widget)));
  if (widget.type === "measure") {
    const title = el("input", {id: "prop-title", maxlength: limits.name, value: widget.title});
    title.addEventListener("change", () => { widget.title = title.value; redrawWidget(); });
    parts.push(...field(t("web.photoview.table_title"), title));
    const set = el("fieldset");
    set.append(el("legend", {}, t("web.photoview.values", {max: limits.keys})));
    const row = rows().find((r) => r[0] === widget.address && r[1] === widget.load);
    for (const key of row ? row[3] : []) {
      const id = "prop-key-" + key;
      const box = el("input", {type: "checkbox", id, value: key, checked: widget.keys.includes(key)});
      box.addEventListener("change", () => {
        widget.keys = box.checked ? widget.keys.concat([key]) : widget.keys.filter((k) => k !== key);
        if (widget.keys.length > limits.keys) say(t("web.photoview.error.keys", {widget: selected + 1, max: limits.keys}), "bad");
        redrawWidget();
      });
      const label = el("label", {for: id});
      label.append(box, document.createTextNode(" " + keyLabel(key)));
      set.append(label);
    }
    parts.push(set);
  } else if (widget.type === "text") {
    const text = el("textarea", {id: "prop-text", maxlength: limits.text, rows: 3});
    text.value = widget.text;
    text.addEventListener("change", () => { widget.text = text.value; redrawWidget(); });
    parts.push(...field(t("web.photoview.text"), text));
    for (const name of ["color", "background"]) {
      const input = el("input", {id: "prop-" + name, type: "color", value: widget[name]});
      input.addEventListener("change", () => { widget[name] = input.value; redrawWidget(); });
      parts.push(...field(t("web.photoview.colour." + name), input));
    }
  } else if (widget.type === "device") {
    const mode = el("select", {id: "prop-mode"});
    for (const m of ["icon", "area"]) mode.append(el("option", {value: m, selected: widget.mode === m}, t("web.photoview.mode." + m)));
    mode.addEventListener("change", () => { widget.mode = mode.value; redrawWidget(); });
    parts.push(...field(t("web.photoview.mode"), mode));
    const size = el("div", {class: "pv-xy"});
    size.append(...field(t("web.photoview.w"), numberInput("prop-w", widget.w, placing.minSize, current.canvas[0], (v) => {
      clampSize(widget, v, widget.h); showSize(widget); redrawWidget(); })));
    size.append(...field(t("web.photoview.h"), numberInput("prop-h", widget.h, placing.minSize, current.canvas[1], (v) => {
      clampSize(widget, widget.w, v); showSize(widget); redrawWidget(); })));
    parts.push(size);
  } else if (widget.type === "link") {
    const target = el("select", {id: "prop-target"});
    for (const page of pages.filter((p) => p.id !== current.id)) {
      target.append(el("option", {value: page.id, selected: page.id === widget.target}, page.name));
    }
    target.addEventListener("change", () => { widget.target = target.value; });
    parts.push(...field(t("web.photoview.target"), target));
    const label = el("input", {id: "prop-label", maxlength: limits.name, value: widget.label});
    label.addEventListener("change", () => { widget.label = label.value; redrawWidget(); });
    parts.push(...field(t("web.photoview.label"), label));
  }
  const remove = el("button", {type: "button", class: "secondary", id: "prop-remove"}, t("web.photoview.remove"));
  remove.addEventListener("click", () => {
    current.widgets.splice(selected, 1);
    selected = null;
    drawStage();
    drawProps();
    say(t("web.photoview.removed"));
  });
  parts.push(remove);
  box.replaceChildren(...parts);
}

async function reload(id) {
  const [status, answer] = await getJson("/api/photoview");
  if (status !== 200) { say(refusalText(status, answer), "bad"); return; }
  pages = answer.pages;
  limits = answer.limits;
  choose(pages.some((p) => p.id === id) ? id : (pages[0] ? pages[0].id : null));
  if (!pages.length) say(t("web.photoview.no_pages_editor"));
}

async function save() {
  current.name = $("page-name").value;
  const [status, answer] = await postJson("/api/photoview/pages/" + current.id, {name: current.name, widgets: current.widgets});
  if (status !== 200) { say(refusalText(status, answer), "bad"); return; }
  const index = pages.findIndex((p) => p.id === current.id);
  pages[index] = Object.assign(answer.page, {canvas: current.canvas});
  drawTabs();
  say(t("web.photoview.saved", {name: answer.page.name}), "good");
}

async function addPage(event) {
  event.preventDefault();
  if (pages.length >= limits.pages) { say(t("web.photoview.error.too_many_pages", {max: limits.pages}), "bad"); return; }
  const [status, answer] = await postJson("/api/photoview/pages", {name: $("new-name").value});
  if (status !== 200) { say(refusalText(status, answer), "bad"); return; }
  $("new-name").value = "";
  await reload(answer.page.id);
  say(t("web.photoview.page_added", {name: answer.page.name}), "good");
}

async function deletePage() {
  if (!window.confirm(t("web.photoview.confirm_delete", {name: current.name}))) return;
  const [status, answer] = await postJson("/api/photoview/pages/" + current.id + "/delete", {});
  if (status !== 200) { say(refusalText(status, answer), "bad"); return; }
  const name = current.name;
  await reload(null);
  say(t("web.photoview.page_deleted", {name}), "good");
}

async function upload() {
  const file = $("background").files[0];
  if (!file) return;
  const most = limits.background.bytes;
  if (file.size > most) {
    say(t("web.photoview.error.too_big", {size: file.size, max: most}), "bad");
    $("background").value = "";
    return;
  }
  say(t("web.photoview.uploading"));
  let status, answer = {};
  try {
    const response = await fetch("/api/photoview/background?page=" + encodeURIComponent(current.id), {
      method: "POST", credentials: "same-origin", body: file,
      headers: {"Content-Type": file.type || "application/octet-stream", "X-CSRF-Token": csrf}});
    status = response.status;
    try { answer = await response.json(); } catch (e) { answer = {error: response.statusText}; }
  } catch (err) {
    status = 0;
    answer = {error: err.message || String(err)};
  }
  $("background").value = "";
  if (status === 413) { say(t("web.photoview.error.too_big", {size: file.size, max: most}), "bad"); return; }
  if (status !== 200) { say(refusalText(status, answer), "bad"); return; }
  current.background = answer.background;
  current.canvas = [answer.background.width, answer.background.height];
  for (const widget of current.widgets) clampPlace(widget, widget.x, widget.y);
  const index = pages.findIndex((p) => p.id === current.id);
  pages[index].background = answer.background;
  pages[index].canvas = current.canvas;
  drawStage();
  drawProps();
  say(t("web.photoview.background_set", {width: answer.background.width, height: answer.background.height}), "good");
}

function drawTools() {
  $("tools").replaceChildren(...TOOLS.map((type) => {
    const button = el("button", {type: "button", draggable: "true", id: "tool-" + type},
                      t("web.photoview.add_tool", {type: t("web.photoview.tool." + type)}));
    button.addEventListener("dragstart", (event) => {
      event.dataTransfer.setData("text/plain", type);
      event.dataTransfer.effectAllowed = "copy";
    });
    button.addEventListener("click", () => add(type, 20, 20));
    return button;
  }));
}

async function start() {
  if (!(await startView())) return;
  numbers = session.language === "fr" ? "fr-FR" : "en-GB";
  const [status, answer] = await getJson("/api/photoview/devices");
  if (status !== 200) { say(refusalText(status, answer), "bad"); pageReady(); return; }
  sources = answer.devices;
  placing.areas = answer.areas;
  placing.minSize = answer.min_size;
  for (const device of sources) for (const load of device.loads) learnLabels(load.labels);
  drawTools();
  drawAreaTool();
  $("area-add").addEventListener("click", addArea);
  $("new-page").addEventListener("submit", addPage);
  $("save").addEventListener("click", save);
  $("delete-page").addEventListener("click", deletePage);
  $("background").addEventListener("change", upload);
  await reload(new URLSearchParams(location.search).get("page"));
  const b = limits.background;
  $("background-help").textContent = t("web.photoview.background_help", {mb: (b.bytes / 1048576).toFixed(0), width: b.width, height: b.height});
  window.addEventListener("resize", () => stage && stage.fit());
  pageReady();
}

document.addEventListener("DOMContentLoaded", start);
