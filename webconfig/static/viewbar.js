// The top bar every data view shares (Home, Monitor, Alarms and events, Trends...): the way back to Home, the
// page's title, who is logged in and Log off. Loaded after page.js and before the page's own script; the page
// calls startView() where it would call startSession() (page.js), and draws nothing when it answers false (the
// browser is then on its way to the login page). Styles: /static/views.css.
//
// Markup (the texts come from the catalogue through data-t; the page names its own title key):
//
//   <link rel="stylesheet" href="/static/views.css">            (before the page's own stylesheet)
//   <script src="/static/page.js" defer></script>
//   <script src="/static/viewbar.js" defer></script>
//   <script src="/static/<page>.js" defer></script>
//   ...
//   <header class="viewbar">
//     <a id="viewbar-home" class="viewbar-home" href="/home"><span data-t="web.viewbar.home">Home</span></a>
//     <h1 id="view-title" data-t="web.<page>.title">...</h1>
//     <span id="who"></span>
//     <button id="logoff" type="button" data-t="web.session.logoff">Log off</button>
//   </header>
//
// startView() puts the house icon in the Home link (marked aria-current on /home itself), names the document
// after the title (unless the page names it later), and makes Log off end the session on the gateway
// (POST /api/logout) before going to the login page; a refused log off is said under the bar.
"use strict";

const HOUSE = "M3 11.5 12 4l9 7.5M5.5 9.5V20h5v-6h3v6h5V9.5";       // the Home link's icon, one SVG path

// A line-drawn icon of one SVG path in the text's colour (the Home link, the tiles, the photoview's widgets).
function lineIcon(d, strokeWidth) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS(ns, "path");
  for (const [name, value] of [["d", d], ["fill", "none"], ["stroke", "currentColor"],
                               ["stroke-width", String(strokeWidth || 1.8)], ["stroke-linejoin", "round"],
                               ["stroke-linecap", "round"]]) path.setAttribute(name, value);
  svg.append(path);
  return svg;
}

// A refusal of the bar's own (the log off), in a line under the bar, made when first needed.
function viewbarSay(text) {
  let line = $("viewbar-message");
  if (!line) {
    line = el("p", {id: "viewbar-message", class: "viewbar-message", role: "alert"});
    document.querySelector("header.viewbar").after(line);
  }
  line.textContent = text;
  line.hidden = !text;
}

async function logOff() {
  const button = $("logoff");
  button.disabled = true;
  try {
    const [status, answer] = await postJson("/api/logout", {});
    if (status === 200) { location.assign("/login"); return; }
    if (status !== 401) viewbarSay(t("web.viewbar.logoff_failed", {reason: answer.error || status}));
  } catch (err) {
    viewbarSay(t("web.viewbar.logoff_failed", {reason: err.message || String(err)}));
  } finally {
    button.disabled = false;
  }
}

// startSession() and the bar: false without a session (page.js sends the browser to the login page).
async function startView() {
  if (!(await startSession())) return false;
  const home = $("viewbar-home");
  home.prepend(lineIcon(HOUSE, 2));
  if (location.pathname === home.getAttribute("href")) home.setAttribute("aria-current", "page");
  document.title = $("view-title").textContent;
  $("logoff").addEventListener("click", logOff);
  return true;
}
