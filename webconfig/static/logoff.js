// Log off where the page says who is signed in (loaded before page.js, and by the diagnosis page, which has
// its own session code): every signed-in page can end its session, on a shared screen or a wall display. The
// data views draw their own button (viewbar.js); a page without one gets it here, after "Signed in as ...". A
// refused log off is said beside the button and the page stays. ``text(key, params)`` is the page's catalogue,
// ``token()`` the session's CSRF token.
"use strict";

function addLogOff(who, text, token) {
  if (document.getElementById("logoff")) return;
  const button = document.createElement("button");
  Object.assign(button, {id: "logoff", type: "button", className: "logoff", textContent: text("web.session.logoff")});
  const said = document.createElement("span");
  Object.assign(said, {id: "logoff-message", className: "logoff-message"});
  said.setAttribute("role", "status");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const response = await fetch("/api/logout", {method: "POST", credentials: "same-origin", cache: "no-store",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": token() || ""}, body: "{}"});
      if (response.ok || response.status === 401) { location.assign("/login"); return; }
      let reason = response.status;
      try { reason = (await response.json()).error || reason; } catch (e) { /* not JSON: the status says it */ }
      said.textContent = text("web.viewbar.logoff_failed", {reason});
    } catch (err) {
      said.textContent = text("web.viewbar.logoff_failed", {reason: err.message || String(err)});
    } finally {
      button.disabled = false;
    }
  });
  who.after(button, said);
}
