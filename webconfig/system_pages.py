"""The System page's routes (SPEC §7.2, issue 15): backup, restore, reset topology, factory reset, upgrade.

Admin and Cyber Security (rights ``backup``, ``restore``, ``reset_topology``,
``factory_reset``, ``upgrade``: daemon/security/rights.py). The door does the
work (daemon/system/service.py); this turns its answers and refusals into
JSON in the caller's language. A backup is a job the page polls
(``GET /api/system/backup/<id>``) and then downloads. A restore and an
upgrade upload the file as the request body, spooled to disk as it arrives
(webconfig/uploads.py: admitted before the body is read); the backup's
password travels in the ``X-Backup-Password`` header as base64url of its
UTF-8 bytes (a header is latin-1). The reboot is Diagnosis's ``POST /api/reboot``.
"""

import base64
import binascii

import bottle

from daemon import api, i18n
from daemon.blocking import BlockingQueueFull, run_blocking
from webconfig import auth
from webconfig.customisation import serve_page
from webconfig.diagnosis import may
from webconfig.jsonio import body as _body, deferred, reply as _json
from webconfig.server import DEFERRED, UPLOAD

MAX_BACKUP_UPLOAD = 1024 * 1024 * 1024       # a full backup of a large store
MAX_PACKAGE_UPLOAD = 64 * 1024 * 1024        # daemon/upgrade/package.py MAX_PACKAGE (which the check applies again)
MAX_PASSWORD = 128                           # longer is a malformed header (daemon/system/service.py refuses it too)
PASSWORD_HEADER = "X-Backup-Password"
PAGE_COMMANDS = ("backup", "restore", "reset_topology", "factory_reset", "upgrade", "reboot")
# the bodies read as a stream: (method, path) -> (right, most bytes)
STREAMED = {("POST", "/api/system/restore"): ("restore", MAX_BACKUP_UPLOAD),
            ("POST", "/api/system/upgrade"): ("upgrade", MAX_PACKAGE_UPLOAD)}
# a refusal of the System page's own -> HTTP status (the catalogue says each as web.system.refused.<why>)
STATUS = {"busy": 409, "no_slots": 409}


def refusal(exc, language):
    """(status, answer) of the door's refusal: a System one (``api.SYSTEM``, its ``why``) in the reason's words in
    ``language`` with the precise English as detail; any other as every route says it."""
    if exc.reason != api.SYSTEM:
        return auth.refusal(exc.reason, language, str(exc), exc.details)
    key = "web.system.refused." + exc.why
    text = i18n.text(key, language)
    return STATUS.get(exc.why, 400), {"error": text if text != key else str(exc), "reason": exc.why,
                                      "detail": str(exc)}


def _password_header(environ):
    raw = environ.get("HTTP_" + PASSWORD_HEADER.upper().replace("-", "_"), "")
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if 0 < len(text) <= MAX_PASSWORD else None


def _download(door, job_id):
    async def answer():
        found = door.backup_file(job_id)
        if found is None:
            payload = b'{"error":"no such finished backup","reason":"not_found"}'
            return "404 Not Found", [("Content-Type", "application/json"), ("Cache-Control", "no-store")], payload
        name, path = found
        try:
            payload = await run_blocking(_read, path)
        except (OSError, BlockingQueueFull):
            payload = b'{"error":"the backup file could not be read","reason":"storage"}'
            return "503 Service Unavailable", [("Content-Type", "application/json")], payload
        return "200 OK", [("Content-Type", "application/octet-stream"), ("Cache-Control", "no-store"),
                          ("Content-Disposition", "attachment; filename=\"%s\"" % name)], payload
    return answer()


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def mount(app, door, static):
    """Add the System routes to ``app`` over the door (bound to User); ``static(name)`` serves an asset."""

    serve_page(app, door, static, "/system", "backup", "system.html")

    @app.get("/api/system", access="command", command="backup")
    def overview():
        """The running version, the software slots (null without an installation), the last backup job, and
        which of the page's commands this profile may run."""
        bound = auth.door()             # bound to the session's caller by the route's check
        return _json({"upgrade": bound.upgrade_state() if may(bound, "upgrade") else None,
                      "may": dict((command, may(bound, command)) for command in PAGE_COMMANDS)})

    @app.post("/api/system/backup", access="command", command="backup")
    def start_backup():
        """{"kind": "configuration"|"full", "password": "..."}: a job (202) the page polls, then downloads."""
        data, language = _body(), auth.language()
        if not data or set(data) != {"kind", "password"} or not isinstance(data.get("password"), str):
            status, answer = auth.refusal("bad_request", language,
                                          "expected {\"kind\": \"configuration\"|\"full\", \"password\": \"...\"}")
            return _json(answer, status)
        try:
            return _json(auth.door().start_backup(data["kind"], data["password"]), 202)
        except api.Refused as exc:
            status, answer = refusal(exc, language)
        return _json(answer, status)

    @app.get("/api/system/backup/<job_id:int>", access="command", command="backup")
    def backup_job(job_id):
        job = auth.door().backup_job(job_id)
        if job is None:
            status, answer = auth.refusal(api.NOT_FOUND, auth.language(), "no backup job %d" % job_id)
            return _json(answer, status)
        return _json(job)

    @app.get("/api/system/backup/<job_id:int>/file", access="command", command="backup")
    def backup_download(job_id):
        bottle.request.environ[DEFERRED] = _download(auth.door(), job_id)
        return b""

    @app.post("/api/system/restore", access="command", command="restore")
    @deferred
    async def restore():
        """The backup file as the body, its password in X-Backup-Password: all restored, or nothing changed."""
        environ, bound, language = bottle.request.environ, auth.door(), auth.language()
        spooled, password = environ.get(UPLOAD), _password_header(environ)
        if spooled is None or spooled.size == 0 or password is None:
            return auth.refusal("bad_request", language, "send the backup file as the body and its password in %s"
                                % PASSWORD_HEADER)
        try:
            return 200, dict(await bound.restore_backup(spooled.path, password), ok=True)
        except api.Refused as exc:
            return refusal(exc, language)

    @app.post("/api/system/upgrade", access="command", command="upgrade")
    @deferred
    async def upgrade():
        """The signed package as the body: verified, then installed into the inactive slot (restart to run it)."""
        environ, bound, language = bottle.request.environ, auth.door(), auth.language()
        spooled = environ.get(UPLOAD)
        if spooled is None or spooled.size == 0:
            return auth.refusal("bad_request", language, "send the upgrade package as the body")
        try:
            return 200, dict(await bound.install_upgrade(spooled.path), ok=True)
        except api.Refused as exc:
            return refusal(exc, language)

    def _confirmed(handler_name, run):
        async def handler():
            data, bound, language = _body(), auth.door(), auth.language()
            if data != {"confirm": True}:
                return auth.refusal("bad_request", language, "expected {\"confirm\": true}")
            try:
                return 200, dict(await run(bound), ok=True)
            except api.Refused as exc:
                return auth.refusal(exc.reason, language, str(exc), exc.details)
        handler.__name__ = handler_name
        return deferred(handler)

    async def _reset_topology(bound):
        return {"removed": await bound.reset_topology()}

    async def _factory_reset(bound):
        return await bound.factory_reset()

    app.post("/api/system/reset-topology", access="command", command="reset_topology")(
        _confirmed("reset_topology", _reset_topology))
    app.post("/api/system/factory-reset", access="command", command="factory_reset")(
        _confirmed("factory_reset", _factory_reset))
    return app
