"""The firewall's whitelist page of Cyber Security over HTTP (issue 15, SPEC §8).

``GET /security/firewall-rules`` (firewall.html) and ``GET /api/firewall/rules``: the rules (at most ten),
whether the whitelist is enforced (``firewall.whitelist.enabled``, a setting of the policy page) and the
clients banned now. ``POST /api/firewall/rules {"rules": [...]}`` replaces the whole list: the page adds,
edits and deletes rows and sends the table; each refused field comes back as its own message
(``<row>.<field>``), nothing changed. Right ``manage_firewall`` (Cyber Security); the door checks again.
"""

from daemon import api
from webconfig import auth
from webconfig.customisation import serve_page
from webconfig.jsonio import body as _body, deferred


def mount(app, door, static):
    """Add the firewall rules' routes to ``app`` over the door (bound to User); ``static(name)`` serves an asset."""

    serve_page(app, door, static, "/security/firewall-rules", "manage_firewall", "firewall.html")

    @app.get("/api/firewall/rules", access="command", command="manage_firewall")
    def rules():
        return auth.door_reply(lambda bound: bound.firewall_rules())

    @app.post("/api/firewall/rules", access="command", command="manage_firewall")
    @deferred
    async def set_rules():
        data, bound, language = _body(), auth.door(), auth.language()
        if not isinstance(data, dict) or set(data) != {"rules"}:
            return auth.refusal("bad_request", language, "expected {\"rules\": [...]}")
        try:
            stored = await bound.set_firewall_rules(data["rules"])
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        return 200, {"ok": True, "rules": stored}
