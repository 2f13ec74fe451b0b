// The Devices pages (WEBVIEW-M §9.6): one script draws the view its path names — /devices/sources (the
// topology: add by hand, edit, delete, refresh, detection with its live progress), /devices/circuits (name,
// fluid and usage of each load; several at once), /devices/usages (predefined and custom usages).
// The gateway checks every value and right and answers in the session's language; this page shows what it
// is told, every action ends in a message. Text goes in through textContent, never innerHTML.
"use strict";

const VIEW = (location.pathname.match(/^\/devices\/(sources|circuits|usages)/) || [null, "sources"])[1];
const LIVE_MS = 5000;            // the Sources rows' states and ages are read again this often
const DETECT_POLL_MS = 300;      // the detection's progress while it runs

let data = null;                 // the view's JSON (GET /api/devices/<view>)
let rows = [];                   // the view's rows, each with an ``id``
let selected = new Set();
let page = 1;
let detecting = false;

function say(kind, text) {
  $("message").className = "message" + (kind ? " " + kind : "");
  $("message").textContent = text || "";
}

function refusalText(answer) {
  const parts = (answer.messages || []).map((m) => (m.field ? fieldLabel(m.field) + ": " : "") + m.message);
  return t("web.devices.refused", {error: parts.length ? parts.join("; ") : (answer.error || "")});
}

function fieldLabel(name) {
  const keys = {address: "web.devices.col.address", name: "web.devices.col.name", area: "web.devices.col.area",
                reference: "web.devices.col.reference", bus: "web.devices.col.bus", netid: "web.devices.col.netid",
                serial: "web.devices.col.serial", fluid: "web.devices.col.fluid", usage: "web.devices.col.usage",
                name_pattern: "web.devices.name_pattern", gateway: "web.devices.gateway_row",
                loads: "web.devices.circuits", key: "web.devices.col.usage_name", link: "web.models.link",
                model: "web.models.pick", host: "web.models.host", port: "web.models.port", unit: "web.models.unit"};
  return keys[name] ? t(keys[name]) : name;
}

function age(seconds) {
  if (seconds === null || seconds === undefined) return null;
  if (seconds < 60) return Math.round(seconds) + " s";
  if (seconds < 3600) return Math.round(seconds / 60) + " min";
  return Math.round(seconds / 3600) + " h";
}

// ---------------------------------------------------------------- the table: search, pages, selection

function columns() {
  if (VIEW === "sources") {
    return [["select", ""], ["reference", "web.devices.col.reference"], ["name", "web.devices.col.name"],
            ["area", "web.devices.col.area"], ["bus", "web.devices.col.bus"], ["address", "web.devices.col.address"],
            ["network", "web.devices.col.network"], ["netid", "web.devices.col.netid"],
            ["status", "web.devices.col.status"], ["actions", "web.devices.actions"]];
  }
  if (VIEW === "circuits") {
    return [["select", ""], ["device", "web.devices.col.device"], ["area", "web.devices.col.area"],
            ["load", "web.devices.col.load"], ["name", "web.devices.col.circuit"],
            ["network", "web.devices.col.network"], ["fluid", "web.devices.col.fluid"],
            ["usage", "web.devices.col.usage"], ["actions", "web.devices.actions"]];
  }
  return [["name", "web.devices.col.usage_name"], ["key", "web.devices.col.key"], ["kind", "web.devices.col.kind"],
          ["in_use", "web.devices.col.in_use"], ["actions", "web.devices.actions"]];
}

function selectable(row) { return VIEW !== "usages" && !row.gateway; }

function matches(row, words) {
  if (!words) return true;
  return row.search.toLowerCase().includes(words.toLowerCase());
}

function shown() {
  const words = $("search").value.trim();
  return rows.filter((row) => row.gateway || matches(row, words));
}

function perPage() { return parseInt($("per-page").value, 10); }

function drawHead() {
  const head = $("head");
  head.replaceChildren();
  for (const [key, label] of columns()) {
    const th = el("th", {scope: "col"}, label ? t(label) : "");
    if (key === "select") th.append(el("span", {class: "visually-hidden"}, t("web.devices.select_page")));
    head.append(th);
  }
}

function cell(row, key, label) {
  const td = el("td", {"data-label": label ? t(label) : ""});
  const value = row.cells[key];
  if (value instanceof Node) td.append(value);
  else if (Array.isArray(value)) td.append(...value);
  else td.textContent = value === undefined || value === null ? "" : String(value);
  if (key === "actions") td.className = "actions";
  if (key === "key") td.setAttribute("translate", "no");     // an identifier (exports use it), in no language
  return td;
}

function drawRows() {
  const visible = shown();
  const pages = Math.max(1, Math.ceil(visible.length / perPage()));
  page = Math.min(Math.max(1, page), pages);
  const slice = visible.slice((page - 1) * perPage(), page * perPage());
  const body = $("rows");
  body.replaceChildren();
  for (const row of slice) {
    const tr = el("tr", {"data-id": row.id, class: (row.gateway ? "gateway" : "") + (selected.has(row.id) ? " selected" : "")});
    for (const [key, label] of columns()) {
      if (key === "select") {
        const td = el("td", {class: "select", "data-label": t("web.devices.select_row", {name: row.label})});
        if (selectable(row)) {
          const id = "select-" + row.id.replace(/[^A-Za-z0-9-]/g, "_");
          const box = el("input", {type: "checkbox", id, "data-id": row.id});
          box.checked = selected.has(row.id);
          box.addEventListener("change", () => { toggle(row.id, box.checked); });
          td.append(box, el("label", {for: id, class: "visually-hidden"}, t("web.devices.select_row", {name: row.label})));
        }
        tr.append(td);
      } else {
        tr.append(cell(row, key, label));
      }
    }
    body.append(tr);
  }
  $("empty").hidden = visible.length > 0;
  $("empty").textContent = VIEW === "circuits" && !rows.length ? t("web.devices.no_circuits") : t("web.devices.none");
  $("page-of").textContent = t("web.devices.page_of", {page, pages, count: visible.length});
  $("previous").disabled = page <= 1;
  $("next").disabled = page >= pages;
  $("selected-count").textContent = t("web.devices.selected", {count: selected.size});
}

function toggle(id, on) {
  if (on) selected.add(id); else selected.delete(id);
  drawRows();
}

function selectRows(which) {
  if (which === "none") selected.clear();
  else {
    const visible = shown().filter(selectable);
    const chosen = which === "page" ? visible.slice((page - 1) * perPage(), page * perPage()) : visible;
    for (const row of chosen) selected.add(row.id);
  }
  drawRows();
}

// ---------------------------------------------------------------- dialogs: a form, a confirmation

let submitForm = null;

function openForm(title, fields, onSubmit) {
  $("form-title").textContent = title;
  const box = $("form-fields");
  box.replaceChildren();
  for (const field of fields) {
    const wrap = el("div", {class: "field"});
    const id = "f-" + field.name;
    const described = ["error-" + field.name].concat(field.help ? ["help-" + field.name] : []).join(" ");
    wrap.append(el("label", {for: id}, field.label + (field.optional ? " (" + t("web.devices.optional") + ")" : "")));
    let input;
    if (field.choices) {
      input = el("select", {id, name: field.name, "aria-describedby": described});
      for (const [value, label] of field.choices) input.append(el("option", {value}, label));
    } else {
      input = el("input", {id, name: field.name, type: field.type || "text", autocomplete: "off",
                           "aria-describedby": described, maxlength: field.maxlength, min: field.min, max: field.max,
                           required: field.required});
    }
    if (field.value !== undefined && field.value !== null) input.value = String(field.value);
    if (field.onchange) input.addEventListener("change", () => field.onchange(input));
    wrap.append(input);
    if (field.help) wrap.append(el("p", {class: "help", id: "help-" + field.name}, field.help));
    wrap.append(el("p", {class: "error", id: "error-" + field.name}));
    box.append(wrap);
  }
  $("form-error").textContent = "";
  submitForm = onSubmit;
  $("form-dialog").showModal();
  const first = box.querySelector("input, select");
  if (first) first.focus();
}

function formValues() {
  const out = {};
  for (const input of $("form-fields").querySelectorAll("input, select")) out[input.name] = input.value;
  return out;
}

function showFieldErrors(answer) {
  const general = [];
  let first = null;
  for (const message of answer.messages || []) {
    const error = message.field ? $("error-" + message.field) : null;
    if (error) {
      error.textContent = message.message;
      const input = $("f-" + message.field);
      input.setAttribute("aria-invalid", "true");
      first = first || input;
    } else {
      general.push((message.field ? fieldLabel(message.field) + ": " : "") + message.message);
    }
  }
  $("form-error").textContent = first && !general.length ? t("web.devices.refused", {error: ""}).replace(/[:\s]+$/, "")
    : t("web.devices.refused", {error: general.length ? general.join("; ") : answer.error});
  if (first) first.focus();
}

async function onFormSubmit(event) {
  event.preventDefault();
  for (const node of $("form-fields").querySelectorAll(".error")) node.textContent = "";
  for (const node of $("form-fields").querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
  $("form-save").disabled = true;
  $("form-error").textContent = t("web.devices.saving");
  try {
    const [status, answer, done] = await submitForm(formValues());
    if (status === 200) {
      $("form-dialog").close();
      say("ok", done);
      await load();
    } else {
      showFieldErrors(answer);
    }
  } catch (err) {
    $("form-error").textContent = t("web.devices.load_failed", {error: err.message});
  } finally {
    $("form-save").disabled = false;
  }
}

function confirmed(text) {
  return new Promise((resolve) => {
    const dialog = $("confirm-dialog");
    $("confirm-text").textContent = text;
    dialog.returnValue = "";
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), {once: true});
    dialog.showModal();
    $("confirm-no").focus();
  });
}

// ---------------------------------------------------------------- Sources

function stateCell(row) {
  const parts = [el("span", {class: "state " + row.status}, t("web.devices.state." + row.status))];
  const notes = [];
  if (row.not_found) notes.push(t("web.devices.state.not_found"));
  if (!row.gateway) {
    if (row.age_s !== null && row.age_s !== undefined) notes.push(t("web.devices.age", {age: age(row.age_s)}));
    notes.push(row.last_success_age_s === null ? t("web.devices.never")
      : t("web.devices.answered", {age: age(row.last_success_age_s)}));
  }
  for (const note of notes) parts.push(el("span", {class: "age"}, note));
  return parts;
}

function busName(bus) { return t("web.devices.bus." + bus); }

function sourceRows(doc) {
  return doc.sources.map((s) => {
    const row = Object.assign({}, s, {id: s.gateway ? "gateway" : String(s.address), label: s.name});
    const actions = [];
    if (s.gateway) {
      actions.push(el("span", {class: "muted"}, t("web.devices.gateway_row")));
    } else {
      const refresh = el("button", {type: "button", class: "secondary small", "aria-label": t("web.devices.refresh_row", {name: s.name})},
                         t("web.devices.refresh"));
      refresh.addEventListener("click", () => refreshDevices([s.address]));
      const edit = el("button", {type: "button", class: "small", "aria-label": t("web.devices.edit_row", {name: s.name})},
                      t("web.devices.edit"));
      edit.addEventListener("click", () => editDevice(s));
      actions.push(refresh, edit);
    }
    const status = stateCell(s);
    if (s.generic) status.push(genericValues(s));
    const reference = s.generic ? t("web.devices.generic_reference") : s.reference;
    row.cells = {reference: s.generic ? [reference, el("span", {class: "age"}, t("web.genweb.model", {model: s.generic.model}))]
                   : reference,
                 name: s.name, area: s.area, bus: s.generic ? linkText(s) : busName(s.bus),
                 address: s.gateway ? s.address + " (" + t("web.devices.gateway_address") + ")" : s.address,
                 network: s.networks.length ? s.networks.join(", ") : t("web.devices.network.none"),
                 netid: s.netid || "—", status, actions};
    row.search = [reference, s.name, s.area, s.address, s.netid, s.serial,
                  s.generic ? s.generic.model + " " + linkText(s) : ""].join(" ");
    return row;
  });
}

function productChoices() {
  return data.products.map((p) => [p.reference, p.group + " · " + p.reference]);
}

function busChoices() { return data.buses.map((b) => [b, busName(b)]); }

function deviceFields(device) {
  const [min, max] = data.address_range;
  const fields = [];
  if (!device) {
    fields.push({name: "reference", label: t("web.devices.col.reference"), choices: productChoices(),
                 help: t("web.devices.field.reference_help"),
                 onchange: (input) => {
                   const product = data.products.find((p) => p.reference === input.value);
                   if (product) $("f-bus").value = product.bus;
                 }});
  }
  // a generic device on Modbus TCP has no serial bus to choose: its link (host, port, unit) is set when it is added
  const overTcp = device && device.generic && device.generic.link.kind === "tcp";
  if (!overTcp) {
    fields.push({name: "bus", label: t("web.devices.col.bus"), choices: busChoices(),
                 value: device ? device.bus : data.products[0].bus});
  }
  fields.push({name: "address", label: t("web.devices.col.address"), type: "number", min, max, required: true,
               value: device ? device.address : "", help: t("web.devices.field.address_help")});
  fields.push({name: "name", label: t("web.devices.col.name"), maxlength: data.max_name, optional: !device,
               value: device ? device.name : "", help: t("web.devices.field.name_help", {max: data.max_name})});
  fields.push({name: "area", label: t("web.devices.col.area"), maxlength: data.max_name, optional: true,
               value: device ? device.area : "", help: t("web.devices.field.area_help")});
  if (!device) {
    fields.push({name: "netid", label: t("web.devices.col.netid"), maxlength: 6, optional: true,
                 help: t("web.devices.field.netid_help")});
    fields.push({name: "serial", label: t("web.devices.col.serial"), maxlength: 24, optional: true,
                 help: t("web.devices.field.serial_help")});
  }
  return fields;
}

function deviceBody(values, device) {
  const body = {};
  for (const [name, value] of Object.entries(values)) {
    if (name === "address") body.address = /^[0-9]+$/.test(value.trim()) ? parseInt(value, 10) : value;
    else if (!device && (name === "netid" || name === "serial" || name === "name" || name === "area") && value === "") continue;
    else body[name] = value;
  }
  if (device) {
    for (const name of Object.keys(body)) if (body[name] === device[name]) delete body[name];
  }
  return body;
}

function addDevice() {
  openForm(t("web.devices.add_title"), deviceFields(null), async (values) => {
    const [status, answer] = await request("POST", "/api/devices/sources", deviceBody(values, null));
    return [status, answer, status === 200 ? t("web.devices.added", {name: answer.result.name}) : ""];
  });
}

function editDevice(device) {
  openForm(t("web.devices.edit_title", {address: device.address}), deviceFields(device), async (values) => {
    const body = deviceBody(values, device);
    if (!Object.keys(body).length) return [200, {}, t("web.devices.edited", {name: device.name})];
    const [status, answer] = await request("POST", "/api/devices/sources/" + device.address, body);
    return [status, answer, status === 200 ? t("web.devices.edited", {name: answer.result.name}) : ""];
  });
}

// ---------------------------------------------------------------- generic Modbus devices (issue 18)
// Added here (RTU: bus + address + model; TCP: host + port + unit + address + model) through the same door command
// as any device form (POST /api/devices/generic: Door.add_generic_device); the refusals are shown per field. The
// list shows each one's link, model and values (its model's own names too) with quality and age.

const LINK_FIELDS = {rtu: ["bus"], tcp: ["host", "port", "unit"]};
const openValues = new Set();        // the generic devices whose values are unfolded (kept across live reloads)

function linkText(s) {
  const link = s.generic.link;
  return link.kind === "tcp" ? t("web.genweb.tcp_at", {host: link.host, port: link.port, unit: link.unit})
    : busName(s.bus) + " · " + t("web.genweb.rtu");
}

function valueText(v) {
  if (v.value === null || v.value === undefined) return "—";
  const text = v.value.toLocaleString(session.language === "fr" ? "fr-FR" : "en-GB", {maximumFractionDigits: 6});
  return v.unit ? text + "\u00a0" + v.unit : text;
}

function genericValues(s) {
  const box = el("details", {class: "values", "data-address": String(s.address)});
  box.open = openValues.has(s.address);
  box.addEventListener("toggle", () => { if (box.open) openValues.add(s.address); else openValues.delete(s.address); });
  const good = s.generic.values.filter((v) => v.quality === "good").length;
  box.append(el("summary", {}, t("web.genweb.values", {count: s.generic.values.length, good})));
  const table = el("table", {class: "mini"});
  const head = el("tr");
  for (const key of ["name", "value", "quality", "age"]) head.append(el("th", {scope: "col"}, t("web.genweb.v." + key)));
  table.append(el("thead").appendChild(head).parentNode);
  const body = el("tbody");
  for (const v of s.generic.values) {
    const unread = v.value === null && v.age_s === null && v.quality === "not_supported";   // not polled yet
    const tr = el("tr", {"data-name": v.name, "data-value": v.value === null ? "" : String(v.value),
                         "data-quality": v.quality});
    tr.append(el("th", {scope: "row"}, v.name + (v.standard ? "" : " *")), el("td", {}, valueText(v)),
              el("td", {class: "q-" + v.quality}, t("web.models.q." + (unread ? "unknown" : v.quality))),
              el("td", {}, v.age_s === null ? "—" : age(v.age_s)));
    body.append(tr);
  }
  table.append(body);
  box.append(table, el("p", {class: "help"}, t("web.genweb.own_note")));
  return box;
}

function integerOrText(value) { return /^[0-9]+$/.test(value.trim()) ? parseInt(value, 10) : value; }

function showLinkFields() {
  const link = $("f-link").value;
  for (const [kind, names] of Object.entries(LINK_FIELDS)) {
    for (const name of names) $("f-" + name).closest(".field").hidden = kind !== link;
  }
}

async function addGenericDevice() {
  const [status, models] = await request("GET", "/api/datamodels");
  if (status !== 200) { say("bad", t("web.devices.load_failed", {error: models.error || status})); return; }
  if (!models.models.length) { say("bad", t("web.genweb.no_models")); return; }
  const [min, max] = data.address_range;
  const fields = [
    {name: "link", label: t("web.models.link"), choices: [["rtu", t("web.models.link.rtu")], ["tcp", t("web.models.link.tcp")]],
     onchange: showLinkFields},
    {name: "bus", label: t("web.devices.col.bus"), choices: models.catalogue.buses.map((b) => [b, busName(b)])},
    {name: "host", label: t("web.models.host"), maxlength: 253, help: t("web.genweb.host_help")},
    {name: "port", label: t("web.models.port"), type: "number", min: 1, max: 65535, value: 502},
    {name: "unit", label: t("web.models.unit"), type: "number", min: 0, max: 255, value: 1,
     help: t("web.genweb.unit_help")},
    {name: "address", label: t("web.devices.col.address"), type: "number", min, max, required: true,
     help: t("web.models.address_help")},
    {name: "model", label: t("web.models.pick"), choices: models.models.map((m) => [m.name, m.name]),
     help: t("web.genweb.model_help")},
    {name: "name", label: t("web.devices.col.name"), maxlength: data.max_name, optional: true,
     help: t("web.devices.field.name_help", {max: data.max_name})},
    {name: "area", label: t("web.devices.col.area"), maxlength: data.max_name, optional: true},
  ];
  openForm(t("web.models.add_device"), fields, async (values) => {
    const body = {link: values.link, address: integerOrText(values.address), model: values.model};
    for (const name of ["name", "area"]) if (values[name] !== "") body[name] = values[name];
    if (values.link === "tcp") {
      Object.assign(body, {host: values.host, port: integerOrText(values.port), unit: integerOrText(values.unit)});
    } else {
      body.bus = values.bus;
    }
    const [status, answer] = await request("POST", "/api/devices/generic", body);
    return [status, answer, status === 200 ? t("web.devices.added", {name: answer.result.name}) : ""];
  });
  showLinkFields();
}

async function deleteSelected() {
  const chosen = rows.filter((row) => selected.has(row.id) && !row.gateway);
  if (!chosen.length) { say("bad", t("web.devices.select_first")); return; }
  const names = chosen.map((row) => row.name).join(", ");
  if (!await confirmed(t("web.devices.delete_confirm", {count: chosen.length, names}))) return;
  const [status, answer] = await request("POST", "/api/devices/sources/delete",
                                         {addresses: chosen.map((row) => row.address)});
  if (status !== 200) { say("bad", refusalText(answer)); return; }
  selected.clear();
  say("ok", t("web.devices.deleted", {count: answer.result.length}));
  await load();
}

async function refreshDevices(addresses) {
  const count = addresses ? addresses.length : rows.filter((row) => !row.gateway).length;
  say("", t("web.devices.refreshing", {count}));
  const [status, answer] = await request("POST", "/api/devices/sources/refresh", addresses ? {addresses} : {});
  if (status !== 200) { say("bad", refusalText(answer)); return; }
  const names = new Map(rows.map((row) => [row.address, row.name]));
  const lines = answer.result.map((r) => t("web.devices.refresh." + r.result,
                                           {name: names.get(r.address) || r.address, reference: r.reference || ""}));
  const good = answer.result.every((r) => r.result === "same");
  await load();
  say(good ? "ok" : "bad", lines.join(" · "));
}

// ---------------------------------------------------------------- detection: start, live progress, result

function drawDetection(status) {
  if (!status) return;
  const percent = Math.round((status.progress || 0) * 100);
  $("detect-progress").value = percent;
  $("detect-percent").textContent = percent + " %";
  const line = $("detect-text");
  if (status.state === "running") {
    line.className = "";
    line.textContent = t("web.devices.detect_running", {mode: String(status.mode).toUpperCase(), percent});
  } else if (status.state === "done") {
    const changes = status.changes || {};
    line.className = "ok";
    line.textContent = t("web.devices.detect_done", {found: status.found, added: (changes.added || []).length,
                                                     not_found: (changes.not_found || []).length,
                                                     removed: (changes.removed || []).length});
  } else if (status.state === "failed") {
    line.className = "bad";
    line.textContent = t("web.devices.detect_failed", {message: status.message});
  } else if (status.state === "cancelled") {
    line.className = "bad";
    line.textContent = t("web.devices.detect_cancelled");
  } else {
    line.textContent = "";
  }
}

async function followDetection() {
  if (detecting) return;
  detecting = true;
  $("detect-start").disabled = $("synchronise").disabled = true;
  try {
    for (;;) {
      const [status, answer] = await request("GET", "/api/discovery");
      if (status !== 200 || !answer) break;
      drawDetection(answer);
      if (answer.state !== "running") break;
      await new Promise((resolve) => setTimeout(resolve, DETECT_POLL_MS));
    }
  } finally {
    detecting = false;
    $("detect-start").disabled = $("synchronise").disabled = false;
    await load();
  }
}

async function startDetection(synchronise) {
  if (synchronise && !await confirmed(t("web.devices.synchronise_confirm"))) return;
  const [status, answer] = await request("POST", "/api/discovery", {mode: $("detect-mode").value, synchronise});
  if (status !== 202) { say("bad", refusalText(answer)); return; }
  say("", "");
  drawDetection(answer);
  followDetection();
}

// ---------------------------------------------------------------- Circuits

function usageName(key) {
  const usage = data.usages.find((u) => u.key === key);
  return usage ? usage.name : key;
}

function fluidName(key) {
  const fluid = data.fluids.find((f) => f.key === key);
  return fluid ? fluid.name : key;
}

function circuitRows(doc) {
  return doc.circuits.map((c) => {
    const row = Object.assign({}, c, {id: c.address + ":" + c.load, label: c.device + " · " + c.name});
    const edit = el("button", {type: "button", class: "small", "aria-label": t("web.devices.edit_row", {name: row.label})},
                    t("web.devices.edit"));
    edit.addEventListener("click", () => editCircuits([row]));
    row.cells = {device: c.device, area: c.area, load: t("web.devices.load_n", {n: c.load}), name: c.name,
                 network: c.network || t("web.devices.network.none"), fluid: fluidName(c.fluid), usage: usageName(c.usage), actions: edit};
    row.search = [c.device, c.area, c.name, c.reference, c.address, fluidName(c.fluid), usageName(c.usage)].join(" ");
    return row;
  });
}

function editCircuits(chosen) {
  if (!chosen.length) { say("bad", t("web.devices.select_first")); return; }
  const one = chosen.length === 1 ? chosen[0] : null;
  const keep = [["", t("web.devices.keep")]];
  const fluids = data.fluids.map((f) => [f.key, f.name]);
  const usages = data.usages.map((u) => [u.key, u.name]);
  const fields = one ? [
    {name: "name", label: t("web.devices.col.circuit"), value: one.name, maxlength: data.max_name, required: true},
    {name: "fluid", label: t("web.devices.col.fluid"), choices: fluids, value: one.fluid},
    {name: "usage", label: t("web.devices.col.usage"), choices: usages, value: one.usage},
  ] : [
    {name: "name_pattern", label: t("web.devices.name_pattern"), optional: true, help: t("web.devices.name_pattern_help")},
    {name: "fluid", label: t("web.devices.col.fluid"), choices: keep.concat(fluids), value: ""},
    {name: "usage", label: t("web.devices.col.usage"), choices: keep.concat(usages), value: ""},
  ];
  const title = one ? t("web.devices.edit_circuit", {device: one.device, load: one.load})
    : t("web.devices.edit_circuits", {count: chosen.length});
  openForm(title, fields, async (values) => {
    const body = {loads: chosen.map((row) => ({address: row.address, load: row.load}))};
    for (const [name, value] of Object.entries(values)) if (value !== "" || name === "name") body[name] = value;
    if (one) {
      for (const name of ["name", "fluid", "usage"]) if (body[name] === one[name]) delete body[name];
      if (Object.keys(body).length === 1) return [200, {}, t("web.devices.circuits_saved", {count: 0})];
    }
    const [status, answer] = await request("POST", "/api/devices/circuits", body);
    return [status, answer, status === 200 ? t("web.devices.circuits_saved", {count: answer.result}) : ""];
  });
}

// ---------------------------------------------------------------- Usages

function usageRows(doc) {
  return doc.usages.map((u) => {
    const row = Object.assign({}, u, {id: u.key, label: u.name});
    const actions = [];
    if (u.custom) {
      const rename = el("button", {type: "button", class: "small secondary",
                                   "aria-label": t("web.devices.usage_rename_row", {name: u.name})},
                        t("web.devices.usage_rename"));
      rename.addEventListener("click", () => renameUsage(u));
      const remove = el("button", {type: "button", class: "small danger",
                                   "aria-label": t("web.devices.usage_delete_row", {name: u.name})},
                        t("web.devices.usage_delete"));
      remove.addEventListener("click", () => deleteUsage(u));
      actions.push(rename, remove);
    }
    row.cells = {name: u.name, key: u.key, kind: t(u.custom ? "web.devices.custom" : "web.devices.predefined"),
                 in_use: u.in_use, actions};
    row.search = [u.name, u.key].join(" ");
    return row;
  });
}

async function addUsage(event) {
  event.preventDefault();
  const input = $("usage-new");
  input.removeAttribute("aria-invalid");
  $("usage-new-error").textContent = "";
  const [status, answer] = await request("POST", "/api/devices/usages", {name: input.value});
  if (status !== 200) {
    input.setAttribute("aria-invalid", "true");
    $("usage-new-error").textContent = (answer.messages || []).map((m) => m.message).join("; ") || answer.error;
    say("bad", refusalText(answer));
    input.focus();
    return;
  }
  say("ok", t("web.devices.usage_added", {name: input.value.trim()}));
  input.value = "";
  await load();
}

function renameUsage(usage) {
  openForm(t("web.devices.usage_rename_title", {name: usage.name}),
           [{name: "name", label: t("web.devices.col.usage_name"), value: usage.name, maxlength: data.max_name,
             required: true}],
           async (values) => {
             const [status, answer] = await request("POST", "/api/devices/usages/" + encodeURIComponent(usage.key),
                                                    {name: values.name});
             return [status, answer, status === 200 ? t("web.devices.usage_renamed", {name: values.name.trim()}) : ""];
           });
}

async function deleteUsage(usage) {
  if (!await confirmed(t("web.devices.usage_delete_confirm", {name: usage.name}))) return;
  const [status, answer] = await request("POST", "/api/devices/usages/" + encodeURIComponent(usage.key) + "/delete");
  if (status !== 200) { say("bad", refusalText(answer)); return; }
  say("ok", t("web.devices.usage_deleted", {name: usage.name}));
  await load();
}

// ---------------------------------------------------------------- start

async function load() {
  const [status, doc] = await request("GET", "/api/devices/" + VIEW);
  if (status !== 200) { say("bad", t("web.devices.load_failed", {error: doc.error || status})); return false; }
  data = doc;
  rows = VIEW === "sources" ? sourceRows(doc) : VIEW === "circuits" ? circuitRows(doc) : usageRows(doc);
  const ids = new Set(rows.map((row) => row.id));
  selected = new Set([...selected].filter((id) => ids.has(id)));
  if (VIEW === "sources") {
    $("detect-range").textContent = t("web.devices.detect_range", {first: doc.detection.first, last: doc.detection.last});
    if (!detecting) drawDetection(doc.discovery && doc.discovery.state !== "idle" ? doc.discovery : null);
    if (doc.discovery && doc.discovery.state === "running") followDetection();
  }
  const focused = document.activeElement && document.activeElement.closest ?
    document.activeElement.closest("details.values") : null;
  drawRows();
  if (focused) {
    const again = document.querySelector('details.values[data-address="' + focused.dataset.address + '"] summary');
    if (again) again.focus();
  }
  return true;
}

// a live reload redraws the rows: not while a dialog is open or the keyboard is in the table
// (a generic device's values unfolded keep following: the focus on their summary comes back after the redraw)
function busy() {
  const active = document.activeElement;
  return $("form-dialog").open || $("confirm-dialog").open ||
    ($("rows").contains(active) && !(active.closest && active.closest("details.values")));
}

async function start() {
  if (!await startSession()) return;
  const title = t("web.devices." + VIEW);
  $("view-title").textContent = title;
  document.title = title + " · " + t("web.devices.title");
  $("nav-" + VIEW).setAttribute("aria-current", "page");
  $("detection").hidden = VIEW !== "sources";
  for (const node of document.querySelectorAll("[data-view]")) node.hidden = node.dataset.view !== VIEW;
  for (const id of ["select-page", "select-all", "select-none", "selected-count"]) $(id).hidden = VIEW === "usages";
  $("actions").hidden = VIEW === "usages";
  if (VIEW !== "sources") $("search-help").textContent = t("web.devices.search_help_" + VIEW);
  drawHead();
  say("", t("web.devices.loading"));
  if (await load()) say("", "");
  pageReady();  // first data drawn (bench/web_pages.py waits for it)
  if (VIEW === "sources") {
    $("detect-mode").value = data.detection.mode;
    if (new URLSearchParams(location.search).get("add") === "generic") addGenericDevice();   // from Data models
    setInterval(() => { if (!busy() && !detecting && !document.hidden) load(); }, LIVE_MS);
  }
}

$("search").addEventListener("input", () => { page = 1; drawRows(); });
$("clear").addEventListener("click", () => { $("search").value = ""; page = 1; drawRows(); });
$("per-page").addEventListener("change", () => { page = 1; drawRows(); });
$("previous").addEventListener("click", () => { page -= 1; drawRows(); });
$("next").addEventListener("click", () => { page += 1; drawRows(); });
$("select-page").addEventListener("click", () => selectRows("page"));
$("select-all").addEventListener("click", () => selectRows("all"));
$("select-none").addEventListener("click", () => selectRows("none"));
$("add").addEventListener("click", addDevice);
$("add-generic").addEventListener("click", addGenericDevice);
$("refresh-all").addEventListener("click", () => refreshDevices(null));
$("delete").addEventListener("click", deleteSelected);
$("edit-selected").addEventListener("click", () => editCircuits(rows.filter((row) => selected.has(row.id))));
$("detect-start").addEventListener("click", () => startDetection(false));
$("synchronise").addEventListener("click", () => startDetection(true));
$("usage-add").addEventListener("submit", addUsage);
$("form").addEventListener("submit", onFormSubmit);
$("form-cancel").addEventListener("click", () => $("form-dialog").close());
start().catch((err) => say("bad", t("web.devices.load_failed", {error: err.message})));
