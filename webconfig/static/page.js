// What every signed-in page shares (loaded before the page's own script): the element and text helpers, the
// JSON requests with the session's CSRF token, and the start of a session (who is signed in, the catalogue in
// their language, the static texts marked data-t). A page script keeps only what is its own.
// Text goes in through textContent, never innerHTML.
"use strict";

let texts = {};                  // the catalogue in the session's language (GET /api/i18n/<lang>)
let csrf = null;                 // the session's CSRF token, sent with every request that changes something
let session = null;              // GET /api/session once started

function $(id) { return document.getElementById(id); }

function t(key, params) {
  let text = texts[key] || key;
  for (const [name, value] of Object.entries(params || {})) text = text.split("{" + name + "}").join(String(value));
  return text;
}

function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// [status, answer]: the JSON answer, or {error} when the body is not JSON. The page stays on a 401: for the one
// answer where it means a wrong password, not an ended session (POST /api/password on the accounts page).
async function exchange(method, url, body) {
  const options = {method, credentials: "same-origin", cache: "no-store", headers: {}};
  // A read route never looks the session up (webconfig/auth.py: a polling page must not keep it alive), so a
  // GET says the session's language itself: every answer's texts then follow the reader, whatever the route.
  if (method === "GET" && session && !/[?&]lang=/.test(url)) {
    url += (url.includes("?") ? "&" : "?") + "lang=" + encodeURIComponent(session.language);
  }
  if (method !== "GET") {
    options.headers = {"Content-Type": "application/json", "X-CSRF-Token": csrf};
    options.body = JSON.stringify(body || {});
  }
  const response = await fetch(url, options);
  let answer = {};
  try { answer = await response.json(); } catch (e) { answer = {error: response.statusText}; }
  return [response.status, answer];
}

// As exchange(), and a 401 (no session, or it ended) goes back to the login page.
async function request(method, url, body) {
  const [status, answer] = await exchange(method, url, body);
  if (status === 401) location.assign("/login");
  return [status, answer];
}

function getJson(url) { return request("GET", url); }
function postJson(url, body) { return request("POST", url, body); }

// The session, its catalogue and the page's static texts; false (and the login page) without a session.
async function startSession() {
  const [, answer] = await getJson("/api/session");
  if (!answer.logged_in || answer.must_change) { location.assign("/login"); return false; }
  session = answer;
  csrf = answer.csrf;
  texts = (await getJson("/api/i18n/" + answer.language))[1].texts || {};
  document.documentElement.lang = answer.language;
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = t(node.dataset.t);
  const who = $("who");
  if (who) {
    who.textContent = t("web.session.as", {profile: t("web.profile." + answer.profile)});
    addLogOff(who, t, () => csrf);
  }
  return true;
}

// Drawn once: what the tests and the web benchmark wait for.
function pageReady() { document.documentElement.dataset.ready = "1"; }
