// The login page and the password change (forced after a default password, or asked for at /password).
// Every text comes from the gateway's catalogue (GET /api/i18n/<lang>); refusals come localized from the
// server, which checks everything: this page only shows what it is told. Text goes in through textContent.
"use strict";

const MIN_LENGTH = 10;
const LANDING = "/home";     // where a session starts (the manual §6.1: the home page of the menus)
let texts = {};
let csrf = null;
let who = null;             // the profile of the session, once logged in

function $(id) { return document.getElementById(id); }

function t(key, params) {
  let text = texts[key] || key;
  for (const [name, value] of Object.entries(params || {})) text = text.split("{" + name + "}").join(String(value));
  return text;
}

function chosenLanguage() {
  const asked = new URLSearchParams(location.search).get("lang") || localStorage.getItem("m70.lang") ||
    navigator.language || "en";
  return asked.slice(0, 2).toLowerCase() === "fr" ? "fr" : "en";
}

async function getJson(url) {
  const response = await fetch(url, {credentials: "same-origin", cache: "no-store"});
  return response.json();
}

async function postJson(url, body) {
  const headers = {"Content-Type": "application/json"};
  if (csrf) headers["X-CSRF-Token"] = csrf;
  const response = await fetch(url, {method: "POST", credentials: "same-origin", headers, body: JSON.stringify(body)});
  let answer = {};
  try { answer = await response.json(); } catch (e) { answer = {error: response.statusText}; }
  return [response.status, answer];
}

async function loadTexts(lang) {
  texts = (await getJson("/api/i18n/" + lang)).texts;
  document.documentElement.lang = lang;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  document.title = t("web.login.title");
  $("rule").textContent = t("web.change.rule", {min: MIN_LENGTH});
  $("recover-rule").textContent = t("web.change.rule", {min: MIN_LENGTH});
  $("language").value = lang;
  for (const option of $("profile").options) option.textContent = t("web.profile." + option.value);
  if (who) $("change-intro").textContent = t("web.change.intro", {profile: t("web.profile." + who)});
}

function passwordFieldFor(profile) {
  const none = profile === "user";
  $("password").disabled = none;
  if (none) $("password").value = "";
}

function showChange(profile) {
  who = profile;
  $("login-form").hidden = true;
  $("change-form").hidden = false;
  $("change-intro").textContent = t("web.change.intro", {profile: t("web.profile." + profile)});
  $("current").focus();
}

async function login(event) {
  event.preventDefault();
  const button = $("login-submit");
  button.disabled = true;
  $("login-message").className = "message";
  $("login-message").textContent = t("web.login.busy");
  try {
    const profile = $("profile").value;
    const [status, answer] = await postJson("/api/login", {profile, password: $("password").value,
                                                           language: $("language").value});
    if (status !== 200) {
      $("login-message").textContent = answer.error || t("web.refused.other");
      $("password").select();
      return;
    }
    csrf = answer.csrf;
    $("login-message").textContent = "";
    if (answer.must_change) showChange(answer.profile);
    else location.assign(LANDING);
  } finally {
    button.disabled = false;
  }
}

async function change(event) {
  event.preventDefault();
  $("change-problems").replaceChildren();
  if ($("new").value !== $("confirm").value) {
    $("change-text").textContent = t("web.change.mismatch");
    $("confirm").focus();
    return;
  }
  $("change-submit").disabled = true;
  try {
    const [status, answer] = await postJson("/api/password", {current: $("current").value, new: $("new").value});
    if (status === 200) {
      csrf = answer.csrf;
      $("change-text").textContent = t("web.change.done");
      location.assign(LANDING);
      return;
    }
    const problems = (answer.messages || []).map((m) => (typeof m === "string" ? m : m.message));
    $("change-text").textContent = problems.length ? t("web.change.refused") : (answer.error || "");
    for (const problem of problems) {
      const item = document.createElement("li");
      item.textContent = problem;
      $("change-problems").append(item);
    }
    $("new").focus();
  } finally {
    $("change-submit").disabled = false;
  }
}

// ---------------------------------------------------------------- recovery of the Cyber Security password

function showRecover(shown) {
  $("login-form").hidden = shown;
  $("recover-form").hidden = !shown;
  $("recover-text").textContent = "";
  $("recover-problems").replaceChildren();
  if (shown) $("passphrase").focus();
  else $("password").focus();
}

async function recover(event) {
  event.preventDefault();
  $("recover-problems").replaceChildren();
  $("recover-message").className = "message";
  if ($("recover-new").value !== $("recover-confirm").value) {
    $("recover-text").textContent = t("web.change.mismatch");
    $("recover-confirm").focus();
    return;
  }
  $("recover-submit").disabled = true;
  try {
    const [status, answer] = await postJson("/api/recover", {passphrase: $("passphrase").value,
                                                             new: $("recover-new").value});
    if (status === 200) {
      $("recover-form").reset();
      showRecover(false);
      $("profile").value = "cyber";
      passwordFieldFor("cyber");
      $("login-message").className = "message ok";
      $("login-message").textContent = t("web.recover.done");
      return;
    }
    const problems = (answer.messages || []).map((m) => (typeof m === "string" ? m : m.message));
    if (status === 401) $("recover-text").textContent = t("web.recover.wrong");
    else $("recover-text").textContent = problems.length ? t("web.change.refused") : (answer.error || "");
    for (const problem of problems) {
      const item = document.createElement("li");
      item.textContent = problem;
      $("recover-problems").append(item);
    }
    (status === 401 ? $("passphrase") : $("recover-new")).focus();
  } finally {
    $("recover-submit").disabled = false;
  }
}

async function start() {
  const session = await getJson("/api/session?lang=" + chosenLanguage());
  const lang = session.logged_in ? session.language : chosenLanguage();
  for (const profile of session.profiles) {
    const option = document.createElement("option");
    option.value = profile;
    $("profile").append(option);
  }
  $("profile").value = session.logged_in ? session.profile : "admin";
  await loadTexts(lang);
  $("banner").hidden = !session.banner;
  passwordFieldFor($("profile").value);
  $("profile").addEventListener("change", () => passwordFieldFor($("profile").value));
  $("language").addEventListener("change", async () => {
    localStorage.setItem("m70.lang", $("language").value);
    await loadTexts($("language").value);
  });
  $("login-form").addEventListener("submit", login);
  $("change-form").addEventListener("submit", change);
  $("recover-form").addEventListener("submit", recover);
  $("forgot").addEventListener("click", (event) => { event.preventDefault(); showRecover(true); });
  $("recover-back").addEventListener("click", (event) => { event.preventDefault(); showRecover(false); });
  if (session.logged_in && session.profile !== "user" && (session.must_change || location.pathname === "/password")) {
    csrf = session.csrf;
    showChange(session.profile);
  } else if (location.hash === "#recover") {
    showRecover(true);
  } else {
    $("password").focus();
  }
  document.documentElement.dataset.ready = "1";            // drawn once: what a benchmark waits for
}

start();
