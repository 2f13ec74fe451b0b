// The System page (SPEC §7.2): backup (a job with a progress bar, then a download), restore and upgrade (the file
// uploaded with its progress, then the gateway's check), reboot, reset topology, factory reset. The gateway checks
// every right and file and answers in the session's language; this page shows what it is told (textContent only).
"use strict";

const MIN_PASSWORD = 8;
const POLL_MS = 500;
let texts = {};
let csrf = null;
let language = "en";

function $(id) { return document.getElementById(id); }

function t(key, params) {
  let text = texts[key] || key;
  for (const [name, value] of Object.entries(params || {})) text = text.split("{" + name + "}").join(String(value));
  return text;
}

async function getJson(url) {
  const response = await fetch(url, {credentials: "same-origin", cache: "no-store"});
  let answer = {};
  try { answer = await response.json(); } catch (e) { answer = {error: response.statusText}; }
  return [response.status, answer];
}

async function postJson(url, body) {
  const response = await fetch(url, {method: "POST", credentials: "same-origin", cache: "no-store",
                                     headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
                                     body: JSON.stringify(body)});
  let answer = {};
  try { answer = await response.json(); } catch (e) { answer = {error: response.statusText}; }
  return [response.status, answer];
}

function say(id, cls, text) {
  $(id).className = "message" + (cls ? " " + cls : "");
  $(id).textContent = text || "";
}

function bytes(n) {
  if (n >= 1048576) return (n / 1048576).toFixed(1) + " MB";
  if (n >= 1024) return (n / 1024).toFixed(0) + " kB";
  return n + " B";
}

function progress(prefix, fraction, text) {
  $(prefix + "-progress-box").hidden = false;
  if (fraction === null) $(prefix + "-progress").removeAttribute("value");
  else $(prefix + "-progress").value = Math.round(fraction * 100);
  $(prefix + "-phase").textContent = text;
}

function refusal(status, answer) {
  // the gateway's words in the session's language; a plain-text refusal of the upload itself by its status
  if (answer && answer.error) return answer.error;
  if (status === 401) return t("web.system.refused_login");
  if (status === 403) return t("web.system.refused_rights");
  if (status === 413) return t("web.system.refused_too_big");
  return t("web.system.refused_other", {status});
}

// An upload with its progress (fetch has none): resolves to [status, JSON answer or {}].
function upload(url, file, headers, onProgress) {
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open("POST", url);
    request.setRequestHeader("X-CSRF-Token", csrf);
    request.setRequestHeader("Content-Type", "application/octet-stream");
    for (const [name, value] of Object.entries(headers || {})) request.setRequestHeader(name, value);
    request.upload.onprogress = (event) => onProgress(event.lengthComputable ? event.loaded / event.total : null,
                                                      event.loaded);
    request.upload.onload = () => onProgress(1, file.size, true);
    request.onload = () => {
      let answer = {};
      try { answer = JSON.parse(request.responseText); } catch (e) { answer = {}; }
      resolve([request.status, answer]);
    };
    request.onerror = () => resolve([0, {error: t("web.system.connection_lost")}]);
    request.send(file);
  });
}

function base64url(text) {
  const data = new TextEncoder().encode(text);
  let binary = "";
  for (const byte of data) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// ---------------------------------------------------------------- backup

async function pollBackup(id) {
  for (;;) {
    const [status, job] = await getJson("/api/system/backup/" + id);
    if (status !== 200) { say("backup-message", "bad", refusal(status, job)); return; }
    if (job.state === "failed") { say("backup-message", "bad", t("web.system.backup_failed", {error: job.error})); break; }
    if (job.state === "done") {
      progress("backup", 1, t("web.system.backup_done_phase"));
      say("backup-message", "ok", t("web.system.backup_done", {size: bytes(job.size)}));
      $("backup-download").href = "/api/system/backup/" + id + "/file";
      $("backup-download").hidden = false;
      $("backup-download").focus();
      break;
    }
    const fraction = job.total ? job.done / job.total : null;
    progress("backup", fraction, job.phase === "encrypting" ?
      t("web.system.backup_encrypting", {done: bytes(job.done), total: bytes(job.total)}) :
      t("web.system.backup_collecting"));
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

async function startBackup(event) {
  event.preventDefault();
  $("backup-download").hidden = true;
  const password = $("backup-password").value;
  if (password.length < MIN_PASSWORD) {
    say("backup-message", "bad", t("web.system.password_short", {min: MIN_PASSWORD}));
    $("backup-password").focus();
    return;
  }
  if (password !== $("backup-confirm").value) {
    say("backup-message", "bad", t("web.change.mismatch"));
    $("backup-confirm").focus();
    return;
  }
  const kind = document.querySelector("input[name=kind]:checked").value;
  $("backup-start").disabled = true;
  try {
    const [status, job] = await postJson("/api/system/backup", {kind, password});
    if (status === 401) { location.assign("/login"); return; }
    if (status !== 202) { say("backup-message", "bad", refusal(status, job)); return; }
    say("backup-message", "", t("web.system.backup_started"));
    progress("backup", 0, t("web.system.backup_collecting"));
    await pollBackup(job.id);
  } finally {
    $("backup-start").disabled = false;
  }
}

// ---------------------------------------------------------------- restore

async function startRestore(event) {
  event.preventDefault();
  const file = $("restore-file").files[0];
  if (!file) { say("restore-message", "bad", t("web.system.choose_file")); $("restore-file").focus(); return; }
  if (!$("restore-password").value) {
    say("restore-message", "bad", t("web.system.password_needed"));
    $("restore-password").focus();
    return;
  }
  if (!window.confirm(t("web.system.restore_confirm", {file: file.name}))) {
    say("restore-message", "", t("web.system.nothing_done"));
    return;
  }
  $("restore-start").disabled = true;
  try {
    const [status, answer] = await upload("/api/system/restore", file,
      {"X-Backup-Password": base64url($("restore-password").value)},
      (fraction, loaded, finished) => progress("restore", finished ? null : fraction,
        finished ? t("web.system.checking") : t("web.system.uploading", {done: bytes(loaded), total: bytes(file.size)})));
    $("restore-progress-box").hidden = true;
    if (status === 200) {
      say("restore-message", "ok", t("web.system.restored", {devices: answer.devices, settings: answer.settings}));
      $("restore-form").reset();
    } else {
      say("restore-message", "bad", refusal(status, answer));
    }
  } finally {
    $("restore-start").disabled = false;
  }
}

// ---------------------------------------------------------------- upgrade

function showVersion(upgrade) {
  if (!upgrade) { $("upgrade-state").textContent = ""; return; }
  const slots = upgrade.slots;
  $("upgrade-state").textContent = slots ?
    t("web.system.version_slots", {version: upgrade.version, active: slots.active,
                                   trial: slots.trial || "—"}) :
    t("web.system.version_no_slots", {version: upgrade.version});
}

async function startUpgrade(event) {
  event.preventDefault();
  const file = $("upgrade-file").files[0];
  if (!file) { say("upgrade-message", "bad", t("web.system.choose_file")); $("upgrade-file").focus(); return; }
  $("upgrade-start").disabled = true;
  $("upgrade-restart").hidden = true;
  try {
    const [status, answer] = await upload("/api/system/upgrade", file, {},
      (fraction, loaded, finished) => progress("upgrade", finished ? null : fraction,
        finished ? t("web.system.verifying") : t("web.system.uploading", {done: bytes(loaded), total: bytes(file.size)})));
    $("upgrade-progress-box").hidden = true;
    if (status === 200) {
      say("upgrade-message", "ok", t("web.system.upgrade_installed", {version: answer.version, slot: answer.slot}));
      $("upgrade-restart").hidden = false;
      $("upgrade-restart").focus();
    } else {
      say("upgrade-message", "bad", refusal(status, answer));
    }
  } finally {
    $("upgrade-start").disabled = false;
  }
}

// ---------------------------------------------------------------- restart and resets

async function confirmed(question, url, body, done) {
  if (!window.confirm(question)) { say("reset-message", "", t("web.system.nothing_done")); return; }
  const [status, answer] = await postJson(url, body);
  if (status === 401) { location.assign("/login"); return; }
  if (status === 200 || status === 202) say("reset-message", "ok", done(answer));
  else say("reset-message", "bad", refusal(status, answer));
}

function restarted(answer) {
  return answer.action === "exit" ? t("web.system.restarting") : t("web.system.services_restarted");
}

async function start() {
  const [, session] = await getJson("/api/session");
  if (!session.logged_in || session.must_change) { location.assign("/login"); return; }
  csrf = session.csrf;
  language = session.language;
  texts = (await getJson("/api/i18n/" + language))[1].texts || {};
  document.documentElement.lang = language;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  document.title = t("web.system.title");
  $("who").textContent = t("web.session.as", {profile: t("web.profile." + session.profile)});
  const [status, overview] = await getJson("/api/system");
  if (status !== 200) { say("page-message", "bad", refusal(status, overview)); return; }
  showVersion(overview.upgrade);
  $("backup-form").addEventListener("submit", startBackup);
  $("restore-form").addEventListener("submit", startRestore);
  $("upgrade-form").addEventListener("submit", startUpgrade);
  $("upgrade-restart").addEventListener("click", () => confirmed(t("web.system.restart_confirm"), "/api/reboot", {},
                                                                   restarted));
  $("reboot").addEventListener("click", () => confirmed(t("web.system.restart_confirm"), "/api/reboot", {}, restarted));
  $("reset-topology").addEventListener("click", () => confirmed(t("web.system.reset_topology_confirm"),
    "/api/system/reset-topology", {confirm: true}, (answer) => t("web.system.topology_reset", {count: answer.removed})));
  $("factory-reset").addEventListener("click", () => confirmed(t("web.system.factory_confirm"),
    "/api/system/factory-reset", {confirm: true}, (answer) =>
      answer.action === "exit" ? t("web.system.factory_restarting") : t("web.system.factory_next_start")));
  document.documentElement.dataset.ready = "1";
}

start().catch((err) => say("page-message", "bad", t("web.settings.load_failed", {error: err.message})));
