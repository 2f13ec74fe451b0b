// The Data models page (WEBVIEW-L §8.2.1, §8.4; issue 18): edit a model's rows, import / export it as CSV, and read
// every generic device's values with quality and age. Generic devices are added on the Devices page (one form:
// static/devices.js addGenericDevice), which this page links to.
// The gateway checks everything and says why it refuses (one message per field, per row, per CSV line).
"use strict";

const state = {data: null, current: null, rows: []};

function say(text, ok) {
  const node = $("message");
  node.textContent = text;
  node.className = "message " + (ok ? "ok" : "error");
}

function refused(answer) {
  const list = $("problems");
  const messages = answer.messages || [];
  list.replaceChildren(...messages.map((m) => el("li", {}, m.message)));
  say(answer.error || t("web.models.refused"), false);
}

function options(select, rows) {
  const before = select.value;
  select.replaceChildren(...rows.map(([value, label]) => el("option", {value}, label)));
  if (rows.some(([value]) => value === before)) select.value = before;
}

function blankRow() {
  return {name: "", frame: "", function: 3, register: 0, encoding: "U16", word_order: "big", coefficient: 1, unit: ""};
}

let cells = 0;          // ids of the rows' fields, so each has its own (visually hidden) label

function cell(row, field, kind, choices, label) {
  let input;
  const id = "cell-" + (++cells);
  if (choices) {
    input = el("select", {id});
    for (const value of choices) input.append(el("option", {value: String(value)}, String(value)));
    input.value = String(row[field]);
  } else {
    input = el("input", {id, type: kind || "text", value: String(row[field]),
                         list: field === "name" ? "standard-names" : null, maxlength: kind ? null : 32});
  }
  input.addEventListener("change", () => {
    row[field] = field === "function" || field === "register" ? Number(input.value)
      : field === "coefficient" ? input.value : input.value;
  });
  const td = el("td");
  td.append(el("label", {for: id, class: "sr"}, label), input);
  return td;
}

function drawRows() {
  const cat = state.data.catalogue;
  const body = $("rows-body");
  body.replaceChildren();
  state.rows.forEach((row, i) => {
    const n = i + 1;
    const tr = el("tr");
    tr.append(cell(row, "name", null, null, t("web.models.col.name") + " " + n),
              cell(row, "frame", null, null, t("web.models.col.frame") + " " + n),
              cell(row, "function", null, cat.functions, t("web.models.col.function") + " " + n),
              cell(row, "register", "number", null, t("web.models.col.register") + " " + n),
              cell(row, "encoding", null, cat.encodings, t("web.models.col.encoding") + " " + n),
              cell(row, "word_order", null, cat.word_orders, t("web.models.col.word_order") + " " + n),
              cell(row, "coefficient", "text", null, t("web.models.col.coefficient") + " " + n),
              cell(row, "unit", null, null, t("web.models.col.unit") + " " + n));
    const remove = el("button", {type: "button", class: "danger"}, t("web.models.remove_row", {n}));
    remove.addEventListener("click", () => { state.rows.splice(i, 1); drawRows(); });
    tr.append(el("td").appendChild(remove).parentNode);
    body.append(tr);
  });
}

function showModel() {
  const model = state.data.models.find((m) => m.name === state.current);
  $("name").value = model ? model.name : "";
  state.rows = model ? model.rows.map((r) => Object.assign({}, r)) : [blankRow()];
  $("users").textContent = model && model.devices.length ? t("web.models.used_by", {devices: model.devices.join(", ")}) : "";
  $("delete").disabled = !model;
  $("export").disabled = !model;
  drawRows();
}

async function load(keep) {
  const [status, answer] = await getJson("/api/datamodels");
  if (status !== 200) { say(answer.error || "", false); return; }
  state.data = answer;
  const cat = answer.catalogue;
  $("limits").textContent = t("web.models.limits", {models: cat.limits.models, rows: cat.limits.rows,
                                                    span: cat.limits.register_span});
  $("standard-names").replaceChildren(...cat.standard.map((s) => el("option", {value: s.name},
                                                                    s.label + (s.unit ? " (" + s.unit + ")" : ""))));
  const names = answer.models.map((m) => [m.name, m.name]);
  options($("pick"), [["", t("web.models.none")]].concat(names));
  if (!keep || !answer.models.some((m) => m.name === state.current)) {
    state.current = answer.models.length ? answer.models[0].name : "";
  }
  $("pick").value = state.current;
  showModel();
  await drawValues();
}

async function drawValues() {
  const box = $("values");
  const devices = state.data.generic;
  if (!devices.length) { box.replaceChildren(el("p", {class: "muted"}, t("web.models.no_devices"))); return; }
  const parts = [];
  for (const device of devices) {
    const [status, doc] = await getJson("/api/devices/generic/" + device.address);
    if (status !== 200) continue;
    const where = device.link.kind === "tcp" ? device.link.host + ":" + device.link.port + " / " + device.link.unit
      : t("web.devices.bus." + device.bus);
    const table = el("table");
    table.append(el("caption", {}, t("web.models.device_caption", {name: doc.name, address: doc.address, where,
                                                                   model: doc.model, status: t("web.models.q." + doc.status)})));
    const head = el("tr");
    for (const key of ["name", "value", "unit", "quality", "age"]) head.append(el("th", {scope: "col"}, t("web.models.v." + key)));
    table.append(el("thead").appendChild(head).parentNode);
    const body = el("tbody");
    for (const v of doc.values) {
      const tr = el("tr");
      tr.append(el("td", {}, v.name + (v.standard ? "" : " *")),
                el("td", {}, v.value === null ? "–" : v.value.toLocaleString(session.language === "fr" ? "fr-FR"
                  : "en-GB", {maximumFractionDigits: 6})),
                el("td", {}, v.unit), el("td", {class: "q-" + v.quality}, t("web.models.q." + v.quality)),
                el("td", {}, v.age_s === null ? "–" : t("web.models.age", {s: v.age_s})));
      body.append(tr);
    }
    table.append(body);
    parts.push(el("div", {class: "scroll", role: "region", tabindex: "0",
                          "aria-label": doc.name}).appendChild(table).parentNode);
  }
  parts.push(el("p", {class: "muted"}, t("web.models.own_values")));
  box.replaceChildren(...parts);
}

async function save() {
  $("problems").replaceChildren();
  const model = {name: $("name").value, rows: state.rows};
  const replacing = state.data.models.some((m) => m.name === state.current) ? state.current : null;
  const [status, answer] = await postJson("/api/datamodels", {model, replacing});
  if (status !== 200) { refused(answer); return; }
  state.current = answer.result.name;
  await load(true);
  say(t("web.models.saved", {name: answer.result.name}), true);
}

async function remove() {
  if (!state.current || !confirm(t("web.models.confirm_delete", {name: state.current}))) return;
  const [status, answer] = await postJson("/api/datamodels/delete", {name: state.current});
  if (status !== 200) { refused(answer); return; }
  const name = state.current;
  state.current = "";
  await load(false);
  say(t("web.models.deleted", {name}), true);
}

async function importCsv(event) {
  event.preventDefault();
  $("problems").replaceChildren();
  const file = $("import-file").files[0];
  if (!file) { say(t("web.models.choose_file"), false); return; }
  const text = await file.text();
  const name = $("import-name").value;
  const [status, answer] = await postJson("/api/datamodels/import", {name, csv: text, replace: $("import-replace").checked});
  if (status !== 200) { refused(answer); return; }
  state.current = answer.result.name;
  await load(true);
  say(t("web.models.imported", {name: answer.result.name, rows: answer.result.rows.length}), true);
}

async function exportCsv() {
  const [status, answer] = await getJson("/api/datamodels/export?name=" + encodeURIComponent(state.current));
  if (status !== 200) { say(answer.error || "", false); return; }
  const link = el("a", {href: URL.createObjectURL(new Blob([answer.csv], {type: "text/csv"})), download: answer.file});
  document.body.append(link);
  link.click();
  link.remove();
  say(t("web.models.exported", {file: answer.file}), true);
}

async function start() {
  if (!await startSession()) return;
  $("pick").addEventListener("change", () => { state.current = $("pick").value; showModel(); });
  $("new").addEventListener("click", () => { state.current = ""; $("pick").value = ""; showModel(); $("name").focus(); });
  $("delete").addEventListener("click", remove);
  $("add-row").addEventListener("click", () => { state.rows.push(blankRow()); drawRows(); });
  $("save").addEventListener("click", save);
  $("import-form").addEventListener("submit", importCsv);
  $("export").addEventListener("click", exportCsv);
  await load(false);
  pageReady();
  setInterval(() => { if (state.data) drawValues(); }, 5000);
}

start();
