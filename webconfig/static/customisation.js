// The application customisation page (SPEC §7.2): the company logo and the background picture, each with its
// preview, its facts (type, pixels, bytes) and the bounds. A picture is sent as the request body with its own
// type; the gateway checks it (magic bytes, declared type, size, dimensions) and answers in the session's
// language: this page only shows what it is told. Text goes in through textContent, never innerHTML.
"use strict";

const KINDS = ["logo", "background"];

async function send(method, url, body, type) {
  const headers = {"X-CSRF-Token": csrf};
  if (type !== undefined) headers["Content-Type"] = type;
  const response = await fetch(url, {method, credentials: "same-origin", cache: "no-store", headers, body});
  let answer = {};
  try { answer = await response.json(); } catch (e) { answer = {error: response.statusText}; }
  return [response.status, answer];
}

function say(kind, cls, text) {
  const node = $(kind + "-message");
  node.className = "message" + (cls ? " " + cls : "");
  node.textContent = text || "";
}

function kib(bytes) { return (bytes / 1024).toFixed(bytes < 10240 ? 1 : 0) + " KiB"; }

function draw(kind, info, limits) {
  const preview = $(kind + "-preview");
  preview.replaceChildren();
  if (info) {
    const img = document.createElement("img");
    img.src = "/customisation/" + kind + "?v=" + info.version;
    img.alt = t("web.custom.preview_alt", {name: t("web.custom." + kind)});
    img.width = info.width;
    img.height = info.height;
    img.style.height = "auto";
    preview.append(img);
    $(kind + "-facts").textContent = t("web.custom.facts", {type: info.type === "image/png" ? "PNG" : "JPEG",
                                                            width: info.width, height: info.height,
                                                            size: kib(info.size)});
  } else {
    const none = document.createElement("span");
    none.className = "none";
    none.textContent = t("web.custom.none");
    preview.append(none);
    $(kind + "-facts").textContent = "";
  }
  $(kind + "-remove").disabled = !info;
  const limit = limits[kind];
  $(kind + "-limits").textContent = t("web.custom.limits", {size: kib(limit.bytes), width: limit.width,
                                                            height: limit.height});
}

async function refresh() {
  const [status, answer] = await getJson("/api/customisation");
  if (status !== 200) { $("page-message").textContent = t("web.settings.load_failed", {error: answer.error || status}); return; }
  for (const kind of KINDS) draw(kind, answer.pictures[kind], answer.limits);
}

function refusalText(answer) {
  const details = (answer.messages || []).map((m) => (typeof m === "string" ? m : m.message));
  return [t("web.custom.refused")].concat(details.length ? details : [answer.error]).filter(Boolean).join(" ");
}

async function upload(kind, event) {
  event.preventDefault();
  const file = $(kind + "-file").files[0];
  if (!file) { say(kind, "bad", t("web.custom.no_file")); $(kind + "-file").focus(); return; }
  $(kind + "-upload").disabled = true;
  say(kind, "", t("web.custom.sending"));
  try {
    const [status, answer] = await send("POST", "/api/customisation/" + kind, file, file.type || "application/octet-stream");
    if (status === 401) { location.assign("/login"); return; }
    if (status !== 200) { say(kind, "bad", refusalText(answer)); $(kind + "-file").focus(); return; }
    await refresh();
    $(kind + "-form").reset();
    say(kind, "ok", t("web.custom.saved", {name: t("web.custom." + kind)}));
  } catch (err) {
    say(kind, "bad", t("web.settings.load_failed", {error: err.message}));
  } finally {
    $(kind + "-upload").disabled = false;
  }
}

async function remove(kind) {
  if (!window.confirm(t("web.custom.remove_confirm", {name: t("web.custom." + kind)}))) {
    say(kind, "", t("web.custom.kept"));
    return;
  }
  const [status, answer] = await send("DELETE", "/api/customisation/" + kind);
  if (status === 401) { location.assign("/login"); return; }
  if (status !== 200) { say(kind, "bad", refusalText(answer)); return; }
  await refresh();
  say(kind, "ok", t("web.custom.removed", {name: t("web.custom." + kind)}));
}

async function start() {
  if (!await startSession()) return;
  document.title = t("web.custom.title");
  for (const kind of KINDS) {
    $(kind + "-form").addEventListener("submit", (event) => upload(kind, event));
    $(kind + "-remove").addEventListener("click", () => remove(kind));
  }
  await refresh();
  pageReady();  // drawn once, as every page says it
}

start().catch((err) => { $("page-message").textContent = t("web.settings.load_failed", {error: err.message}); });
