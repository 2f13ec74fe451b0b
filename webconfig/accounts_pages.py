"""The accounts page of Cyber Security and the password recovery over HTTP (SPEC §7.1).

``GET /accounts`` (accounts.html) and ``GET /api/accounts``: each profile's password state (default, must
change, expiry, seconds locked, Totem's lock) and whether a recovery passphrase exists — Cyber Security only
(``manage_accounts``). ``POST /api/accounts/totem {"locked": bool}`` unlocks or locks the Totem User profile;
``POST /api/accounts/passphrase`` makes a new one-time recovery passphrase and answers it, the only time it
can be read. Another profile's password is changed with ``POST /api/password {current, new, profile}``
(webconfig/app.py). ``POST /api/recover {"passphrase", "new"}`` is public like the login (no session, so
no CSRF token; the Origin check still applies): a wrong passphrase counts as a failed login of Cyber
Security, so the accounts' lockout bounds the guesses. The door checks every right again.
"""

from daemon import api
from webconfig import auth
from webconfig.customisation import serve_page
from webconfig.jsonio import body as _body, deferred

MAX_FIELD = 1024            # longer is a malformed body (the accounts refuse beyond 128 anyway)


def _text(data, name):
    return isinstance(data.get(name), str) and len(data[name]) <= MAX_FIELD


def mount(app, door, static):
    """Add the accounts routes to ``app`` over the door (bound to User); ``static(name)`` serves an asset."""

    serve_page(app, door, static, "/accounts", "manage_accounts", "accounts.html")

    @app.get("/api/accounts", access="command", command="manage_accounts")
    def overview():
        return auth.door_reply(lambda bound: bound.accounts_overview())

    @app.post("/api/accounts/totem", access="command", command="manage_accounts")
    @deferred
    async def totem():
        """{"locked": false} lets the Totem User profile log in; {"locked": true} locks it and ends its sessions."""
        data, bound, language = _body(), auth.door(), auth.language()
        if not data or not isinstance(data.get("locked"), bool) or set(data) != {"locked"}:
            return auth.refusal("bad_request", language, "expected {\"locked\": true|false}")
        try:
            if data["locked"]:
                await bound.lock_totem()
            else:
                await bound.unlock_totem()
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        return 200, {"ok": True, "locked": data["locked"]}

    @app.post("/api/accounts/passphrase", access="command", command="generate_recovery_passphrase")
    @deferred
    async def passphrase():
        """A new one-time recovery passphrase (the previous one stops working); only its hash is kept."""
        data, bound, language = _body(), auth.door(), auth.language()
        if data is None or data:
            return auth.refusal("bad_request", language, "expected an empty JSON object {}")
        try:
            text = await bound.generate_recovery_passphrase()
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        return 200, {"ok": True, "passphrase": text}

    @app.post("/api/recover", access="public", csrf=False)
    @deferred
    async def recover():
        """{"passphrase", "new"}: Cyber Security's new password, proven by the one-time passphrase (used up)."""
        data, base, language = _body(), auth.door(), auth.language()
        if not data or not _text(data, "passphrase") or not _text(data, "new") or set(data) != {"passphrase", "new"}:
            return auth.refusal("bad_request", language, "expected {\"passphrase\": \"...\", \"new\": \"...\"}")
        try:
            await base.recover_with_passphrase(data["passphrase"], data["new"])
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        return 200, {"ok": True}

    return app
