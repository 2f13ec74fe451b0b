// The System page (SPEC §7.2): backup (a job with a progress bar, then a download), restore and upgrade (the file
// uploaded with its progress, then the gateway's check), reboot, reset topology, factory reset. The gateway checks
// every right and file and answers in the session's language; this page shows what it is told (textContent only).
"use strict";

const MIN_PASSWORD = 8;
const POLL_MS = 500;
let language = "en";

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
    const xhr = new XMLHttpRequest();
    xhr.open("POST", url);
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (event) => onProgress(event.lengthComputable ? event.loaded / event.total : null,
                                                  event.loaded);
    xhr.upload.onload = () => onProgress(1, file.size, true);
    xhr.onload = () => {
      let answer = {};
      try { answer = JSON.parse(xhr.responseText); } catch (e) { answer = {}; }
      resolve([xhr.status, answer]);
    };
    xhr.onerror = () => resolve([0, {error: t("web.system.connection_lost")}]);
    xhr.send(file);
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
  if (!await startSession()) return;
  language = session.language;
  document.title = t("web.system.title");
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
  pageReady();
}

start().catch((err) => say("page-message", "bad", t("web.settings.load_failed", {error: err.message})));
