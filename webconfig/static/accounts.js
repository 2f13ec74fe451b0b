// Cyber Security's accounts page (SPEC §7.1): each profile's password state, the Totem User's lock, another
// profile's password, the one-time recovery passphrase. The gateway checks every right and value and answers
// in the session's language; this page only shows what it is told. Text goes in through textContent.
"use strict";

const MIN_LENGTH = 10;
const OTHERS = ["advanced", "totem", "admin"];         // whose password Cyber Security may set here
let language = "en";
let state = null;

function say(id, cls, text) {
  $(id).className = "message" + (cls ? " " + cls : "");
  $(id).textContent = text || "";
}

function when(seconds) {
  return new Date(seconds * 1000).toLocaleString(language === "fr" ? "fr-FR" : "en-GB",
                                                 {dateStyle: "medium", timeStyle: "short"});
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function drawTable(overview) {
  const body = $("profiles").tBodies[0];
  body.replaceChildren();
  for (const entry of overview.profiles) {
    const row = document.createElement("tr");
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = t("web.profile." + entry.profile);
    row.append(name);
    if (!entry.password) {
      row.append(cell(t("web.accounts.no_password")), cell("—"), cell("—"));
    } else {
      const password = entry.default ? t("web.accounts.default") :
        (entry.must_change ? t("web.accounts.expired") : t("web.accounts.set"));
      row.append(cell(password, entry.must_change ? "warn-state" : ""));
      row.append(cell(entry.expires ? when(entry.expires) : "—"));
      const locks = [];
      if (entry.locked_for) locks.push(t("web.accounts.locked_for", {seconds: entry.locked_for}));
      if (entry.totem_locked) locks.push(t("web.accounts.totem_locked"));
      row.append(cell(locks.length ? locks.join(" · ") : t("web.accounts.not_locked"),
                      locks.length ? "bad-state" : ""));
    }
    body.append(row);
  }
  $("updated").textContent = t("web.accounts.as_of", {time: when(overview.time),
                                                      attempts: overview.max_attempts, seconds: overview.lockout_s});
}

function drawTotem(overview) {
  const totem = overview.profiles.find((entry) => entry.profile === "totem");
  const locked = totem.totem_locked;
  $("totem-state").textContent = locked ? t("web.accounts.totem_is_locked") : t("web.accounts.totem_is_unlocked");
  $("totem-state").className = "state " + (locked ? "bad-state" : "good-state");
  $("totem-toggle").textContent = locked ? t("web.accounts.unlock") : t("web.accounts.lock_again");
  $("totem-toggle").dataset.locked = locked ? "yes" : "no";
}

function drawPassphrase(overview) {
  $("passphrase-state").textContent = overview.recovery_passphrase ? t("web.accounts.passphrase_exists") :
    t("web.accounts.passphrase_none");
  $("passphrase-state").className = "state " + (overview.recovery_passphrase ? "good-state" : "warn-state");
}

async function refresh() {
  const [status, overview] = await getJson("/api/accounts");
  if (status === 401) { location.assign("/login"); return; }
  if (status !== 200) { say("page-message", "bad", overview.error || String(status)); return; }
  state = overview;
  drawTable(overview);
  drawTotem(overview);
  drawPassphrase(overview);
}

async function toggleTotem() {
  const unlocking = $("totem-toggle").dataset.locked === "yes";
  if (!window.confirm(t(unlocking ? "web.accounts.unlock_confirm" : "web.accounts.lock_confirm"))) {
    say("totem-message", "", t("web.accounts.nothing_done"));
    return;
  }
  $("totem-toggle").disabled = true;
  try {
    const [status, answer] = await postJson("/api/accounts/totem", {locked: !unlocking});
    if (status === 401) { location.assign("/login"); return; }
    if (status !== 200) { say("totem-message", "bad", answer.error); return; }
    await refresh();
    say("totem-message", "ok", t(unlocking ? "web.accounts.unlocked" : "web.accounts.locked"));
  } finally {
    $("totem-toggle").disabled = false;
  }
}

async function changePassword(event) {
  event.preventDefault();
  $("password-problems").replaceChildren();
  if ($("new").value !== $("confirm").value) {
    $("password-message").className = "message bad";
    $("password-text").textContent = t("web.change.mismatch");
    $("confirm").focus();
    return;
  }
  const profile = $("target").value;
  $("password-submit").disabled = true;
  try {
    // exchange, not postJson: here a 401 is a wrong current password, said on this page (page.js)
    const [status, answer] = await exchange("POST", "/api/password", {current: $("current").value,
                                                                       new: $("new").value, profile});
    if (status === 200) {
      csrf = answer.csrf || csrf;
      $("password-form").reset();
      $("password-message").className = "message ok";
      $("password-text").textContent = t("web.accounts.changed", {profile: t("web.profile." + profile)});
      await refresh();
      return;
    }
    if (status === 401 && answer.reason === "auth" && !answer.messages) {
      $("password-message").className = "message bad";
      $("password-text").textContent = t("web.accounts.wrong_own");
      $("current").focus();
      return;
    }
    const problems = (answer.messages || []).map((m) => (typeof m === "string" ? m : m.message));
    $("password-message").className = "message bad";
    $("password-text").textContent = problems.length ? t("web.change.refused") : (answer.error || "");
    for (const problem of problems) {
      const item = document.createElement("li");
      item.textContent = problem;
      $("password-problems").append(item);
    }
    $("new").focus();
  } finally {
    $("password-submit").disabled = false;
  }
}

async function generate() {
  const question = state && state.recovery_passphrase ? "web.accounts.generate_replace" : "web.accounts.generate_confirm";
  if (!window.confirm(t(question))) { say("passphrase-message", "", t("web.accounts.nothing_done")); return; }
  $("passphrase-generate").disabled = true;
  try {
    const [status, answer] = await postJson("/api/accounts/passphrase", {});
    if (status === 401) { location.assign("/login"); return; }
    if (status !== 200) { say("passphrase-message", "bad", answer.error); return; }
    $("passphrase").textContent = answer.passphrase;
    $("passphrase-box").hidden = false;
    say("passphrase-message", "ok", t("web.accounts.generated"));
    $("passphrase-hide").focus();
    await refresh();
  } finally {
    $("passphrase-generate").disabled = false;
  }
}

function hidePassphrase() {
  $("passphrase").textContent = "";
  $("passphrase-box").hidden = true;
  say("passphrase-message", "", t("web.accounts.hidden"));
  $("passphrase-generate").focus();
}

async function start() {
  if (!await startSession()) return;
  language = session.language;
  document.title = t("web.accounts.title");
  $("rule").textContent = t("web.change.rule", {min: MIN_LENGTH});
  for (const profile of OTHERS) {
    const option = document.createElement("option");
    option.value = profile;
    option.textContent = t("web.profile." + profile);
    $("target").append(option);
  }
  $("totem-toggle").addEventListener("click", toggleTotem);
  $("password-form").addEventListener("submit", changePassword);
  $("passphrase-generate").addEventListener("click", generate);
  $("passphrase-hide").addEventListener("click", hidePassphrase);
  await refresh();
  pageReady();  // drawn once, as every page says it
}

start().catch((err) => say("page-message", "bad", t("web.settings.load_failed", {error: err.message})));
