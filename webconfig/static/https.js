// Cyber Security's certificate page (issue 15): the web server's certificate, installing a new one, a new
// self-signed one, and the CA store of the gateway's own TLS clients. The gateway checks every upload and
// answers in the session's language, one message per field; this page only shows what it is told.
"use strict";

const FIELDS = ["certificate", "key", "ca"];
let language = "en";

function say(id, cls, text) {
  $(id).className = "message" + (cls ? " " + cls : "");
  $(id).textContent = text || "";
}

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString(language === "fr" ? "fr-FR" : "en-GB",
                                                 {dateStyle: "medium", timeStyle: "short", timeZone: "UTC"}) + " UTC";
}

function stateClass(state) {
  return state === "valid" ? "good-state" : (state === "expiring" ? "warn-state" : "bad-state");
}

function clearErrors(fields) {
  for (const field of fields) {
    $(field + "-error").textContent = "";
    $(field).removeAttribute("aria-invalid");
  }
}

function showRefusal(answer, fields, messageId) {
  let first = null;
  for (const entry of answer.messages || []) {
    const field = fields.includes(entry.field) ? entry.field : fields[0];
    $(field + "-error").textContent = entry.message;
    $(field).setAttribute("aria-invalid", "true");
    first = first || field;
  }
  say(messageId, "bad", first ? t("web.https.refused") : (answer.error || ""));
  if (first) $(first).focus();
}

function drawWeb(web, https, time) {
  $("web-state").textContent = t("web.https.state_" + web.state);
  $("web-state").className = "state " + stateClass(web.state);
  $("web-subject").textContent = web.subject;
  $("web-issuer").textContent = web.issuer;
  $("web-not-before").textContent = when(web.not_before);
  $("web-not-after").textContent = when(web.not_after);
  $("web-self-signed").textContent = web.self_signed ? t("web.https.yes") : t("web.https.no");
  $("web-sha256").textContent = web.sha256;
  $("web-port").textContent = https.running ? t("web.https.served_on", {port: https.port}) :
    t("web.https.not_served", {port: https.port, error: https.error || "—"});
  $("web-port").className = https.running ? "help" : "error";
  $("web-read").textContent = t("web.https.as_of", {time: when(time)});
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function drawStore(cas) {
  const body = $("cas").tBodies[0];
  body.replaceChildren();
  if (!cas.length) {
    const row = document.createElement("tr");
    const empty = cell(t("web.https.store_empty"));
    empty.colSpan = 5;
    row.append(empty);
    body.append(row);
    return;
  }
  for (const ca of cas) {
    const row = document.createElement("tr");
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = ca.subject;
    row.append(name, cell(ca.issuer), cell(when(ca.not_after), "nowrap"),
               cell(t("web.https.state_" + ca.state), "nowrap " + stateClass(ca.state)));
    const action = document.createElement("td");
    action.className = "nowrap";
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = t("web.https.delete");
    button.setAttribute("aria-label", t("web.https.delete_named", {name: ca.subject}));
    button.addEventListener("click", () => deleteCa(ca));
    action.append(button);
    row.append(action);
    body.append(row);
  }
}

async function refresh() {
  const [status, data] = await getJson("/api/tls");
  if (status === 401) { location.assign("/login"); return; }
  if (status !== 200) { say("page-message", "bad", data.error || String(status)); return; }
  if (data.web) drawWeb(data.web, data.https, data.time);
  else say("page-message", "bad", t("web.https.no_certificate"));
  drawStore(data.cas);
}

async function install(event) {
  event.preventDefault();
  clearErrors(["certificate", "key"]);
  $("install-submit").disabled = true;
  say("install-message", "", t("web.https.checking"));
  try {
    const [status, answer] = await postJson("/api/tls/web", {certificate: $("certificate").value, key: $("key").value});
    if (status === 401) { location.assign("/login"); return; }
    if (status !== 200) { showRefusal(answer, ["certificate", "key"], "install-message"); return; }
    $("install-form").reset();
    say("install-message", "ok", t("web.https.installed", {subject: answer.web.subject}));
    await refresh();
  } finally {
    $("install-submit").disabled = false;
  }
}

async function regenerate() {
  if (!window.confirm(t("web.https.regenerate_confirm"))) {
    say("regenerate-message", "", t("web.https.nothing_done"));
    return;
  }
  $("regenerate").disabled = true;
  try {
    const [status, answer] = await postJson("/api/tls/web/regenerate", {});
    if (status === 401) { location.assign("/login"); return; }
    if (status !== 200) { say("regenerate-message", "bad", answer.error); return; }
    say("regenerate-message", "ok", t("web.https.regenerated"));
    await refresh();
  } finally {
    $("regenerate").disabled = false;
  }
}

async function addCa(event) {
  event.preventDefault();
  clearErrors(["ca"]);
  $("ca-submit").disabled = true;
  try {
    const [status, answer] = await postJson("/api/tls/ca", {pem: $("ca").value});
    if (status === 401) { location.assign("/login"); return; }
    if (status !== 200) { showRefusal(answer, ["ca"], "ca-message"); return; }
    $("ca-form").reset();
    say("ca-message", "ok", answer.added.length ? t("web.https.ca_added", {count: answer.added.length}) :
      t("web.https.ca_known"));
    await refresh();
  } finally {
    $("ca-submit").disabled = false;
  }
}

async function deleteCa(ca) {
  if (!window.confirm(t("web.https.delete_confirm", {name: ca.subject}))) {
    say("ca-message", "", t("web.https.nothing_done"));
    return;
  }
  const [status, answer] = await postJson("/api/tls/ca/delete", {id: ca.id});
  if (status === 401) { location.assign("/login"); return; }
  if (status !== 200) { say("ca-message", "bad", answer.error); return; }
  say("ca-message", "ok", t("web.https.ca_deleted", {name: ca.subject}));
  await refresh();
  $("ca").focus();
}

function readFile(event) {
  const input = event.target;
  const file = input.files && input.files[0];
  if (!file) return;
  const target = input.dataset.target;
  file.text().then((text) => { $(target).value = text; $(target).removeAttribute("aria-invalid");
                               $(target + "-error").textContent = ""; })
    .catch((err) => { $(target + "-error").textContent = err.message; });
}

async function start() {
  if (!await startSession()) return;
  language = session.language;
  document.title = t("web.https.title");
  $("install-form").addEventListener("submit", install);
  $("ca-form").addEventListener("submit", addCa);
  $("regenerate").addEventListener("click", regenerate);
  for (const field of FIELDS) $(field + "-file").addEventListener("change", readFile);
  await refresh();
  pageReady();  // drawn once, as the other pages say it
}

start().catch((err) => say("page-message", "bad", t("web.settings.load_failed", {error: err.message})));
