"""The outbound clients on their settings pages (issue 16): the buttons and the live state.

The data push page gets *Test connection*, the e-mail pages *Send test e-mail*, the time section *Synchronise
now* (SPEC §5); each page that configures a client shows that client's state (on or off, its alarm, what it
did last) under its form. Both come from two tables below; ``settings.js`` draws what the page document says
(``actions`` and ``status``), so a new button is one row here.

``POST /api/outbound/<action>`` runs the door's command and answers ``{ok, answer}``: ``ok`` false when the
server refused or could not be reached (the page shows its answer as an error), a refusal of the door (rights,
switched off) as the usual JSON refusal. ``GET /api/outbound/status/<client>`` is the state as rows already in
the caller's language.
"""

from daemon import api, i18n
from webconfig import auth
from webconfig.jsonio import deferred, reply as _json

# action id: (page, section it follows, door command = right, catalogue key of the button)
ACTIONS = {
    "push-test": ("protocols.data_push", "server", "test_push", "web.outbound.push.test"),
    "mail-test": ("protocols.email", "smtp", "send_test_email", "web.outbound.mail.test"),
    "notify-test": ("devices.notifications", "email", "send_test_email", "web.outbound.mail.test"),
    "sntp-sync": ("protocols.field", "time", "sync_time_now", "web.outbound.sntp.sync"),
}

# page -> the client whose state it shows
PAGE_CLIENT = {"protocols.data_push": "push", "devices.planning": "push", "protocols.email": "mail",
               "devices.notifications": "mail", "protocols.field": "sntp", "protocols.mqtt": "mqtt"}

# client -> (state key, kind) in the order shown; kinds: time (Unix s), count, bytes, seconds, text
STATUS_ROWS = {
    "push": (("spool_files", "count"), ("spool_bytes", "bytes"), ("spool_max_bytes", "bytes"),
             ("last_delivery", "time"), ("last_delivered", "text"), ("last_error", "text"),
             ("next_retry", "time"), ("next.energy", "time"), ("next.measurements", "time"),
             ("next.load_curves", "time"), ("dropped", "count")),
    "mail": (("last_sent", "time"), ("held", "count"), ("more", "count"), ("sent", "count"), ("error", "text"),
             ("next_try", "time")),
    "sntp": (("last_sync", "time"), ("server", "text"), ("stratum", "count"), ("offset_s", "seconds"),
             ("error", "text"), ("next_attempt", "time")),
    "mqtt": (("broker", "text"), ("connected_since", "time"), ("published", "count"), ("spool_samples", "count"),
             ("spool_bytes", "bytes"), ("spool_max_bytes", "bytes"), ("dropped", "count"), ("last_error", "text"),
             ("next_retry", "time"), ("sessions", "count")),
}
# an error given as {"code", "message", "params"}: said from the client's catalogue keys, "<prefix><code>"
ERROR_KEYS = {"sntp": "sntp.error.", "mqtt": "mqtt.error."}


def page_extras(page, language):
    """What a settings page document adds for its outbound client: {"actions": [...], "status": client}."""
    actions = [{"id": action, "section": section, "label": i18n.text(key, language)}
               for action, (on_page, section, _command, key) in ACTIONS.items() if on_page == page]
    return {"actions": actions, "status": PAGE_CLIENT.get(page)}


def status_document(state, language):
    """The door's ``outbound_status`` as rows a page shows without knowing the client."""
    name = state["name"]
    rows = []
    for key, kind in STATUS_ROWS[name]:
        value = state["state"].get(key)
        if isinstance(value, dict) and "code" in value:
            key_of = ERROR_KEYS.get(name, "") + str(value["code"])
            value = i18n.Message(key_of, **(value.get("params") or {})).text(language) if i18n.has(key_of) \
                else value.get("message", "")
        if value is None or value == "":
            continue
        rows.append({"key": key, "label": i18n.text("web.outbound.%s.%s" % (name, key), language), "kind": kind,
                     "value": value})
    alarms = [i18n.Message(a["text"]["key"], **a["text"].get("params", {})).text(language)
              if a.get("text") else a.get("detail", "") for a in state["alarms"]]
    return {"client": name, "title": i18n.text("web.outbound.%s.title" % name, language),
            "enabled": state["enabled"],
            "summary": i18n.text("web.outbound.%s" % ("alarm" if alarms else "on" if state["enabled"] else "off"),
                                 language),
            "alarms": alarms, "rows": rows}


def answer_of(outcome, language):
    """What a button's outcome says to its reader: a failure's catalogue text when it has one ({"key",
    "params"} or "text": {"key", "params"}), else the server's answer or the error as the client gave it."""
    text = outcome.get("text") if isinstance(outcome.get("text"), dict) else outcome if "key" in outcome else None
    if not outcome.get("ok") and text is not None and i18n.has(text.get("key", "")):
        return i18n.Message(text["key"], **(text.get("params") or {})).text(language)
    answer = str(outcome.get("answer") or outcome.get("message") or "")
    code = outcome.get("code")
    return "%s %s" % (code, answer) if isinstance(code, int) and not answer.startswith(str(code)) else answer


def mount(app, door):
    """Add the outbound routes to ``app`` over the door."""

    def run(action):
        """The door coroutine behind ``action`` for this request's caller."""
        command = ACTIONS[action][2]
        return getattr(auth.door(), command)

    for action, (_page, _section, command, _key) in ACTIONS.items():
        def make(action=action):
            @deferred
            async def post():
                language = auth.language()
                try:
                    outcome = await run(action)()
                except api.Refused as exc:
                    return auth.refusal(exc.reason, language, str(exc), exc.details)
                return 200, {"ok": bool(outcome.get("ok")), "answer": answer_of(outcome, language)[:2000]}
            post.__name__ = "outbound_" + action.replace("-", "_")
            return post
        app.post("/api/outbound/" + action, access="command", command=command)(make())

    @app.get("/api/outbound/status/<client>", access="command", command="set_settings")
    def status(client):
        if client not in STATUS_ROWS:
            status_code, answer = auth.refusal(api.NOT_FOUND, auth.language(), "no outbound client %r" % client[:32])
            return _json(answer, status_code)
        return _json(status_document(auth.door().outbound_status(client), auth.language()))

    return app
