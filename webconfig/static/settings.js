// The configuration pages: one page that draws any page of the settings schema from the gateway's JSON
// (GET /api/settings/page/<page>) and saves a form all or nothing (POST, with the session's CSRF token).
// The gateway checks every value and right itself and answers in the session's language; this page only
// shows what it is told. Text goes in through textContent, never innerHTML.
"use strict";

let current = null;          // the page document last loaded (its fields' saved values)

function say(kind, text, note) {
  $("message").className = "message" + (kind ? " " + kind : "");
  $("message-text").textContent = text || "";
  $("restart-note").textContent = note || "";
  $("restart-note").hidden = !note;
}

// ---------------------------------------------------------------- the left list of pages

function drawMenus(pages, chosen) {
  const menus = $("menus");
  menus.replaceChildren();
  let list = null, menu = null;
  for (const entry of pages) {
    if (entry.menu !== menu) {
      menu = entry.menu;
      const title = el("h3", {id: "menu-" + menu}, entry.menu_title);
      list = el("ul", {"aria-labelledby": "menu-" + menu});
      menus.append(title, list);
    }
    const link = el("a", {href: "/settings?page=" + encodeURIComponent(entry.page),
                          "aria-current": entry.page === chosen ? "page" : null}, entry.title);
    const item = el("li");
    item.append(link);
    list.append(item);
  }
  // the Devices pages (sources list, circuits, usages: /devices/...), for a profile that has the Devices menu
  if (!pages.some((entry) => entry.menu === "devices") || $("devices-pages")) return;
  const box = el("div", {id: "devices-pages"});
  const links = el("ul", {"aria-labelledby": "devices-pages-title"});
  for (const view of ["sources", "circuits", "usages"]) {
    const item = el("li");
    item.append(el("a", {href: "/devices/" + view}, t("web.devices.link." + view)));
    links.append(item);
  }
  box.append(el("h3", {id: "devices-pages-title"}, t("web.devices.nav")), links);
  menus.before(box);
}

// ---------------------------------------------------------------- one field of the form

const IPV4 = "((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])";
const HOSTNAME = "[A-Za-z0-9]([A-Za-z0-9\\-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9\\-]{0,61}[A-Za-z0-9])?)*";

function control(field, id, describedBy) {
  const common = {id, name: field.name, "aria-describedby": describedBy, disabled: !field.editable};
  if (field.kind === "checkbox") {
    const input = el("input", Object.assign({type: "checkbox"}, common));
    input.checked = field.value === true;
    return input;
  }
  if (field.kind === "select") {
    const select = el("select", common);
    for (const choice of field.choices || []) select.append(el("option", {value: choice.value}, choice.label));
    select.value = field.value;
    return select;
  }
  const attrs = Object.assign({}, common, {maxlength: field.maxlength, required: field.minlength > 0});
  if (field.kind === "number") Object.assign(attrs, {type: "number", min: field.min, max: field.max, step: 1,
                                                     inputmode: "numeric", maxlength: null});
  else if (field.kind === "password") Object.assign(attrs, {type: "password", autocomplete: "new-password",
                                                            required: false});
  else if (field.kind === "ip") Object.assign(attrs, {type: "text", pattern: IPV4, inputmode: "decimal",
                                                      spellcheck: "false", autocomplete: "off"});
  else if (field.kind === "hostname") Object.assign(attrs, {type: "text", pattern: HOSTNAME, spellcheck: "false",
                                                            autocapitalize: "off", autocomplete: "off"});
  else if (field.kind === "email") Object.assign(attrs, {type: "email", autocomplete: "off"});
  else if (field.kind === "time") Object.assign(attrs, {type: "time"});
  else Object.assign(attrs, {type: "text", autocomplete: "off"});
  const input = el("input", attrs);
  input.value = field.secret || field.value === undefined || field.value === null ? "" : String(field.value);
  return input;
}

function drawField(field) {
  const id = "in-" + field.name;
  const ids = {help: "help-" + field.name, error: "error-" + field.name, note: "note-" + field.name};
  const notes = [];
  if (field.secret) notes.push(t(field.set === "set" ? "web.settings.secret_set" : "web.settings.secret_unset"));
  if (!field.editable) notes.push(t("web.settings.readonly"));
  const describedBy = [ids.help, ids.error].concat(notes.length ? [ids.note] : []).join(" ");
  const box = el("div", {class: field.kind === "checkbox" ? "field check" : "field", "data-field": field.name});
  const label = el("label", {for: id}, field.label);
  if (!field.live) label.append(el("span", {class: "tag"}, "(" + t("web.settings.restart_tag") + ")"));
  const input = control(field, id, describedBy);
  if (field.kind === "checkbox") box.append(input, label);
  else box.append(label, input);
  box.append(el("p", {class: "help", id: ids.help}, field.help));
  if (notes.length) box.append(el("p", {class: "note", id: ids.note}, notes.join(" ")));
  box.append(el("p", {class: "error", id: ids.error}));
  return box;
}

function drawPage(doc) {
  current = doc;
  $("page-title").textContent = doc.title;
  document.title = doc.title + " · " + t("web.settings.title");
  const sections = $("sections");
  sections.replaceChildren();
  let editable = 0;
  for (const section of doc.sections) {
    const fieldset = el("fieldset", {id: "section-" + section.section});
    fieldset.append(el("legend", null, section.title));
    for (const field of section.fields) {
      fieldset.append(drawField(field));
      if (field.editable) editable += 1;
    }
    sections.append(fieldset);
  }
  $("save").disabled = editable === 0;
  drawActions(doc);
  watchState(doc.status);
}

// ---------------------------------------------------------------- issue 16: the outbound clients' buttons, state

function drawActions(doc) {
  for (const action of doc.actions || []) {
    const fieldset = $("section-" + action.section);
    if (!fieldset) continue;
    const box = el("div", {class: "outbound-action"});
    const button = el("button", {type: "button", id: "action-" + action.id, class: "secondary"}, action.label);
    const result = el("p", {id: "result-" + action.id, class: "action-result", role: "status", "aria-live": "polite"});
    button.addEventListener("click", () => runAction(action, button, result));
    box.append(button, result);
    fieldset.append(box);
  }
}

async function runAction(action, button, result) {
  result.className = "action-result";
  if (Object.keys(changes()).length) { result.textContent = t("web.outbound.unsaved"); result.classList.add("bad"); return; }
  button.disabled = true;
  result.textContent = t("web.outbound.running");
  try {
    const [status, answer] = await postJson("/api/outbound/" + action.id, {});
    if (status === 401) { location.assign("/login"); return; }
    if (status !== 200) { result.textContent = answer.error || String(status); result.classList.add("bad"); return; }
    result.textContent = t(answer.ok ? "web.outbound.done" : "web.outbound.failed", {answer: answer.answer});
    result.classList.add(answer.ok ? "ok" : "bad");
    if (current && current.status) refreshState(current.status);
  } catch (err) {
    result.textContent = t("web.outbound.failed", {answer: err.message});
    result.classList.add("bad");
  } finally {
    button.disabled = false;
  }
}

let stateTimer = null;

function watchState(client) {
  if (stateTimer) clearInterval(stateTimer);
  stateTimer = null;
  $("outbound-state").hidden = !client;
  if (!client) return;
  refreshState(client);
  stateTimer = setInterval(() => refreshState(client), 5000);
}

function shown(row, language) {
  if (row.kind === "time") return new Date(row.value * 1000).toLocaleString(language);
  if (row.kind === "bytes") return row.value >= 1048576 ? (row.value / 1048576).toFixed(1) + " MB" :
    row.value >= 1024 ? (row.value / 1024).toFixed(1) + " kB" : row.value + " B";
  if (row.kind === "seconds") return (row.value >= 0 ? "+" : "") + Number(row.value).toFixed(3) + " s";
  return String(row.value);
}

async function refreshState(client) {
  const [status, doc] = await getJson("/api/outbound/status/" + encodeURIComponent(client));
  if (status !== 200) return;
  $("state-title").textContent = doc.title + " · " + t("web.outbound.state_title");
  const summary = $("state-summary");
  summary.textContent = doc.summary;
  summary.className = "state-summary " + (doc.alarms.length ? "bad" : doc.enabled ? "ok" : "");
  const alarms = $("state-alarms");
  alarms.replaceChildren(...doc.alarms.map((text) => el("li", null, text)));
  alarms.hidden = !doc.alarms.length;
  const rows = $("state-rows");
  rows.replaceChildren();
  const language = document.documentElement.lang;
  for (const row of doc.rows) rows.append(el("dt", null, row.label), el("dd", {"data-key": row.key}, shown(row, language)));
}

// ---------------------------------------------------------------- saving

function fields() {
  return current ? current.sections.flatMap((section) => section.fields) : [];
}

function formValue(field, input) {
  if (field.kind === "checkbox") return input.checked;
  if (field.type === "intenum") return parseInt(input.value, 10);     // a select of numbers (line speeds, QoS)
  if (field.kind === "number") return /^-?[0-9]+$/.test(input.value.trim()) ? parseInt(input.value, 10) : input.value;
  return input.value;
}

// Only what the form changed: an empty secret keeps the stored one, an untouched field is not sent.
function changes() {
  const out = {};
  for (const field of fields()) {
    const input = $("in-" + field.name);
    if (!field.editable || !input) continue;
    const value = formValue(field, input);
    if (field.secret ? value !== "" : value !== field.value) out[field.name] = value;
  }
  return out;
}

function clearErrors() {
  for (const field of fields()) {
    const input = $("in-" + field.name);
    if (input) input.removeAttribute("aria-invalid");
    const error = $("error-" + field.name);
    if (error) error.textContent = "";
  }
}

function showRefusal(answer) {
  const general = [];
  let first = null;
  for (const message of answer.messages || []) {
    const error = message.field ? $("error-" + message.field) : null;
    if (error) {
      error.textContent = message.message;
      $("in-" + message.field).setAttribute("aria-invalid", "true");
      first = first || $("in-" + message.field);
    } else {
      general.push(message.field ? message.field + ": " + message.message : message.message);
    }
  }
  // the fields say what is wrong; the whole refusal's text only when no field could show it
  say("bad", [t("web.settings.refused")].concat(first ? general : [answer.error].concat(general))
    .filter(Boolean).join(" "));
  if (first) first.focus();
}

function labelOf(name) {
  const field = fields().find((f) => f.name === name);
  return field ? field.label : name;
}

async function save(event) {
  event.preventDefault();
  clearErrors();
  const body = changes();
  if (!Object.keys(body).length) { say("", t("web.settings.nothing")); return; }
  $("save").disabled = true;
  say("", t("web.settings.saving"));
  try {
    const [status, answer] = await postJson("/api/settings/page/" + encodeURIComponent(current.page), body);
    if (status === 401) { location.assign("/login"); return; }
    if (status !== 200) { showRefusal(answer); return; }
    await loadPage(current.page);
    showRebootBanner(answer.restart.some((name) => name.startsWith("network.")));
    if (answer.restart.length) {
      say("ok", t("web.settings.saved_restart"),
          t("web.settings.restart_note", {names: answer.restart.map(labelOf).join(", ")}));
    } else {
      say("ok", t("web.settings.saved_live"));
    }
  } catch (err) {
    say("bad", t("web.settings.load_failed", {error: err.message}));
  } finally {
    $("save").disabled = false;
  }
}

async function cancel() {
  await loadPage(current.page);
  say("", t("web.settings.cancelled"));
}

// ---------------------------------------------------------------- start

async function loadPage(page) {
  const [status, doc] = await getJson("/api/settings/page/" + encodeURIComponent(page));
  if (status === 401) { location.assign("/login"); return false; }
  if (status !== 200) { say("bad", t("web.settings.load_failed", {error: doc.error || status})); return false; }
  drawPage(doc);
  return true;
}

async function start() {
  if (!await startSession()) return;
  getJson("/api/pages").then(([status, doc]) => {           // the links the rights allow (webconfig/navigation.py)
    $("accounts-link").hidden = !(status === 200 && doc.pages.some((entry) => entry.page === "accounts"));
  });
  say("", t("web.settings.loading"));
  const [status, answer] = await getJson("/api/settings/pages");
  if (status === 401) { location.assign("/login"); return; }
  if (status !== 200) { say("bad", answer.error || String(status)); return; }
  const asked = new URLSearchParams(location.search).get("page");
  const known = answer.pages.map((entry) => entry.page);
  const page = known.includes(asked) ? asked : known[0];
  drawMenus(answer.pages, page);
  if (page && await loadPage(page)) say("", "");
  pageReady();  // drawn once: what a benchmark waits for
}

// ---------------------------------------------------------------- network settings: the reboot prompt

function showRebootBanner(shown) {
  if (!shown) return;                      // once shown it stays until the page is left: the change still waits
  $("reboot-result").textContent = "";
  $("reboot-banner").hidden = false;
}

async function rebootNow() {
  if (!window.confirm(t("web.network.reboot_confirm"))) {
    $("reboot-result").textContent = t("web.network.reboot_cancelled");
    return;
  }
  $("reboot-now").disabled = true;
  try {
    const [status, answer] = await postJson("/api/reboot", {});
    if (status === 401) { location.assign("/login"); return; }
    $("reboot-result").textContent = status >= 200 && status < 300 ? t("web.network.reboot_started") :
      t("web.network.reboot_refused", {error: answer.error || status});
  } catch (err) {
    $("reboot-result").textContent = t("web.network.reboot_refused", {error: err.message});
  } finally {
    $("reboot-now").disabled = false;
  }
}

$("reboot-now").addEventListener("click", rebootNow);
$("form").addEventListener("submit", save);
$("cancel").addEventListener("click", cancel);
start().catch((err) => say("bad", t("web.settings.load_failed", {error: err.message})));
