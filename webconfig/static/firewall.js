// Cyber Security's firewall rules page (SPEC §8): the whitelist's rules (at most ten), added, edited and deleted
// here; the gateway checks each field and answers one message per refused field in the session's language.
// Every change sends the whole list (POST /api/firewall/rules), applied at once. Text goes in through textContent.
"use strict";

let language = "en";
let state = null;          // the last GET /api/firewall/rules
let editing = null;        // index of the rule being edited, or -1 for a new one
const FIELDS = ["name", "mac", "ip", "protocols", "ports"];
const PROTOCOL_NAMES = {http: "HTTP", https: "HTTPS", modbus: "Modbus TCP", snmp: "SNMP", bacnet: "BACnet/IP"};

function say(id, cls, text) {
  $(id).className = "message" + (cls ? " " + cls : "");
  $(id).textContent = text || "";
}

function shown(value, names) {
  if (value === "*") return t("web.firewall.any");
  return Array.isArray(value) ? value.map((v) => (names && names[v]) || v).join(", ") : String(value);
}

function cell(text, label) {
  const td = document.createElement("td");
  td.textContent = text;
  td.dataset.label = label;
  return td;
}

function button(key, name, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "secondary";
  b.textContent = t(key);
  b.setAttribute("aria-label", t(key) + " " + name);
  b.addEventListener("click", action);
  return b;
}

function draw() {
  const body = $("rules").tBodies[0];
  body.replaceChildren();
  state.rules.forEach((rule, index) => {
    const row = document.createElement("tr");
    row.append(cell(rule.name, t("web.firewall.name")), cell(shown(rule.mac), t("web.firewall.mac")),
               cell(shown(rule.ip), t("web.firewall.ip")), cell(shown(rule.protocols, PROTOCOL_NAMES), t("web.firewall.protocols")),
               cell(shown(rule.ports), t("web.firewall.ports")));
    const actions = document.createElement("td");
    actions.className = "actions";
    actions.append(button("web.firewall.edit", rule.name, () => openEditor(index)),
                   button("web.firewall.delete", rule.name, () => remove(index)));
    row.append(actions);
    body.append(row);
  });
  $("empty").hidden = state.rules.length > 0;
  $("count").textContent = t("web.firewall.count", {count: state.rules.length, max: state.max_rules});
  $("add").disabled = state.rules.length >= state.max_rules;
  $("add").title = $("add").disabled ? t("web.firewall.full") : "";
  $("enforced").textContent = t(state.enabled ? "web.firewall.enabled" : "web.firewall.disabled");
  $("enforced").className = "state " + (state.enabled ? "good-state" : "warn-state");
  const banned = $("banned");
  banned.replaceChildren();
  const entries = Object.entries(state.banned || {});
  for (const [ip, seconds] of entries) {
    const item = document.createElement("li");
    item.textContent = t("web.firewall.banned_left", {ip: ip, seconds: Math.ceil(seconds)});
    banned.append(item);
  }
  if (!entries.length) {
    const item = document.createElement("li");
    item.textContent = t("web.firewall.banned_none");
    banned.append(item);
  }
  $("loaded").textContent = t("web.firewall.loaded", {time: new Date().toLocaleTimeString(
    language === "fr" ? "fr-FR" : "en-GB")});
}

async function refresh() {
  const [status, answer] = await getJson("/api/firewall/rules");
  if (status === 401) { location.assign("/login"); return; }
  if (status !== 200) { say("page-message", "bad", answer.error || t("web.firewall.error")); return; }
  state = answer;
  draw();
}

function clearErrors() {
  for (const field of FIELDS) $("e-" + field).textContent = "";
  say("rule-message", "", "");
}

function openEditor(index) {
  editing = index;
  const rule = index >= 0 ? state.rules[index] : {name: "", mac: "*", ip: "", protocols: "*", ports: "*"};
  $("editor-title").textContent = index >= 0 ? t("web.firewall.edit") + " " + rule.name : t("web.firewall.add");
  $("f-name").value = rule.name;
  $("f-mac").value = rule.mac;
  $("f-ip").value = rule.ip;
  $("f-ports").value = rule.ports === "*" ? "*" : rule.ports.join(", ");
  for (const box of document.querySelectorAll("#f-protocols input")) {
    box.checked = box.value === "*" ? rule.protocols === "*" : rule.protocols !== "*" && rule.protocols.includes(box.value);
  }
  clearErrors();
  $("editor").hidden = false;
  $("f-name").focus();
}

function closeEditor() {
  editing = null;
  $("editor").hidden = true;
  $("add").focus();
}

function fromForm() {
  const checked = Array.from(document.querySelectorAll("#f-protocols input:checked")).map((box) => box.value);
  const ports = $("f-ports").value.trim();
  return {
    name: $("f-name").value.trim(), mac: $("f-mac").value.trim(), ip: $("f-ip").value.trim(),
    protocols: checked.includes("*") ? "*" : checked,
    // a word that is not a number goes as it is: the gateway names the field it refuses
    ports: ports === "*" ? "*" : ports.split(",").map((p) => p.trim()).filter((p) => p)
      .map((p) => (/^\d+$/.test(p) ? Number(p) : p)),
  };
}

async function send(rules, index, done) {
  const [status, answer] = await postJson("/api/firewall/rules", {rules: rules});
  if (status === 401) { location.assign("/login"); return false; }
  if (status === 200) {
    state.rules = answer.rules;
    await refresh();
    say("page-message", "ok", t(done));
    return true;
  }
  const target = editing !== null ? "rule-message" : "page-message";
  // per-field refusals are said at their fields; the form's message says only that it was not saved
  say(target, "bad", status === 400 && (answer.messages || []).length ? t("web.firewall.refused") : answer.error);
  for (const message of answer.messages || []) {
    const [row, field] = String(message.field).split(".");
    if (editing !== null && Number(row) === index && $("e-" + field)) $("e-" + field).textContent = message.message;
  }
  return false;
}

async function save(event) {
  event.preventDefault();
  clearErrors();
  const rules = state.rules.slice();
  const index = editing >= 0 ? editing : rules.length;
  rules[index] = fromForm();
  $("save").disabled = true;
  try {
    if (await send(rules, index, "web.firewall.saved")) closeEditor();
    else {
      const first = FIELDS.find((field) => $("e-" + field).textContent);
      if (first) (first === "protocols" ? document.querySelector("#f-protocols input") : $("f-" + first)).focus();
    }
  } finally {
    $("save").disabled = false;
  }
}

async function remove(index) {
  const rule = state.rules[index];
  if (!window.confirm(t("web.firewall.confirm_delete", {name: rule.name}))) return;
  if (editing !== null) closeEditor();
  await send(state.rules.filter((_r, i) => i !== index), -1, "web.firewall.deleted");
}

async function start() {
  if (!await startSession()) return;
  language = session.language;
  document.title = t("web.firewall.title");
  await refresh();
  const legend = $("f-protocols").querySelector("legend");
  for (const protocol of ["*"].concat(state ? state.protocols : [])) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = protocol;
    box.name = "protocols";
    label.append(box, " " + (protocol === "*" ? t("web.firewall.any") : PROTOCOL_NAMES[protocol] || protocol));
    legend.after(label);
  }
  // keep the order: "any" first
  const labels = Array.from($("f-protocols").querySelectorAll("label")).reverse();
  for (const label of labels) $("e-protocols").before(label);
  $("add").addEventListener("click", () => openEditor(-1));
  $("cancel").addEventListener("click", closeEditor);
  $("rule-form").addEventListener("submit", save);
  $("editor").addEventListener("keydown", (event) => { if (event.key === "Escape") closeEditor(); });
  pageReady();  // drawn once: what a test waits for
}

start().catch((err) => say("page-message", "bad", t("web.firewall.error") + " " + err.message));
