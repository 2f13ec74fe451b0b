"""Cyber Security's certificate page: the web certificate and the CA store over HTTP (issue 15, SPEC §8).

``GET /security/https`` (https.html) and ``GET /api/tls``: the served certificate (subject, issuer, validity,
SHA-256 fingerprint, self-signed or not, expiry state) and the CA store. ``POST /api/tls/web
{"certificate": PEM, "key": PEM}`` installs a pair once it is checked (daemon/security/tlsfiles.check_pair,
off the loop): a refusal is 400 with one message next to the field it is about, in the caller's language,
and nothing changes; on success new HTTPS connections get the new certificate at once.
``POST /api/tls/web/regenerate {}`` makes a new self-signed one. ``POST /api/tls/ca {"pem": PEM}`` adds
CA certificates, ``POST /api/tls/ca/delete {"id": fingerprint}`` removes one. Every route needs
``manage_certificates`` (Cyber Security); the door checks it again.
"""

import json

import bottle

from daemon import api
from webconfig import auth
from webconfig.customisation import serve_page
from webconfig.jsonio import body as _body, deferred

COMMAND = "manage_certificates"
MAX_UPLOAD = 2 * api.TLS_MAX_PEM + 4096     # a certificate chain and a key, each at most MAX_PEM, in JSON
_FIELDS = {"web": ("certificate", "key"), "ca": ("pem",)}


def _upload(kind, language):
    """(the posted fields, None) or (None, refusal): a JSON object of exactly the fields of ``kind``, strings.
    Too big a body is a field message (tls.too_large) on the first field, as a form shows it."""
    fields = _FIELDS[kind]
    raw = bottle.request.body.read(MAX_UPLOAD + 1)
    first = "ca" if kind == "ca" else fields[0]
    if len(raw) > MAX_UPLOAD:
        return None, auth.refusal(api.BAD_VALUE, language, "the upload is larger than %d bytes" % MAX_UPLOAD,
                                  [{"field": first, "key": "tls.too_large", "params": {}}])
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or set(data) != set(fields) or not all(isinstance(data[f], str) for f in fields):
        return None, auth.refusal("bad_request", language, "expected {%s}" % ", ".join(
            "\"%s\": \"-----BEGIN ...\"" % name for name in fields))
    return data, None


def _page_data(door):
    """What the page shows: the certificate, the store, and whether (and on which port) HTTPS is served now."""
    served = door.service_states().get("https", {})
    return {"web": door.web_certificate(), "cas": door.ca_certificates(), "time": door.time(),
            "https": {"running": bool(served.get("running")), "port": served.get("port") or door.setting("https.port"),
                      "error": served.get("error")},
            "redirect": door.setting("https.redirect")}


def mount(app, door, static):
    """Add the certificate routes to ``app`` over the door (bound to User); ``static(name)`` serves an asset."""

    serve_page(app, door, static, "/security/https", COMMAND, "https.html")

    @app.get("/api/tls", access="command", command=COMMAND)
    def overview():
        return auth.door_reply(_page_data)

    @app.post("/api/tls/web", access="command", command=COMMAND)
    @deferred
    async def install():
        """{"certificate", "key"}: the new web certificate, checked before use; answers its summary."""
        bound, language = auth.door(), auth.language()
        data, refusal = _upload("web", language)
        if refusal is not None:
            return refusal
        try:
            info = await bound.install_web_certificate(data["certificate"], data["key"])
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        return 200, {"ok": True, "web": info}

    @app.post("/api/tls/web/regenerate", access="command", command=COMMAND)
    @deferred
    async def regenerate():
        bound, language, data = auth.door(), auth.language(), _body()
        if data is None or data:
            return auth.refusal("bad_request", language, "expected an empty JSON object {}")
        try:
            info = await bound.regenerate_web_certificate()
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        return 200, {"ok": True, "web": info}

    @app.post("/api/tls/ca", access="command", command=COMMAND)
    @deferred
    async def add_ca():
        """{"pem"}: one or more CA certificates for the store; answers those added (none: all were there)."""
        bound, language = auth.door(), auth.language()
        data, refusal = _upload("ca", language)
        if refusal is not None:
            return refusal
        try:
            added = await bound.add_ca_certificates(data["pem"])
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        return 200, {"ok": True, "added": added}

    @app.post("/api/tls/ca/delete", access="command", command=COMMAND)
    @deferred
    async def delete_ca():
        bound, language, data = auth.door(), auth.language(), _body()
        if not data or set(data) != {"id"} or not isinstance(data["id"], str) or len(data["id"]) > 64:
            return auth.refusal("bad_request", language, "expected {\"id\": \"<SHA-256 fingerprint, hex>\"}")
        try:
            await bound.delete_ca_certificate(data["id"])
        except api.Refused as exc:
            return auth.refusal(exc.reason, language, str(exc), exc.details)
        return 200, {"ok": True}

    return app
