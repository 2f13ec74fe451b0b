"""The web UI over HTTPS, and HTTP's redirect to it (issue 15).

``HttpsServer`` is the loop's HttpServer with the door's SSLContext (daemon/security/webtls.py: TLS 1.2 and
later). When Cyber Security installs or regenerates the certificate, the door tells the server, which takes
the new context: connections accepted from then on are served with the new certificate, those already open
keep theirs until they close; nothing restarts.

``redirecting(app, door, https)`` wraps the application the plain HTTP server serves: while the setting
``https.redirect`` says so, every request gets a 308 (method and body kept) to the same path and query on
``https://<the host the client asked for>:<the HTTPS server's port>``. ``auto`` redirects on the Raspberry
Pi when HTTP listens beyond loopback (a page in clear crosses a network only then), not on the simulated
board, whose tests and developers talk plain HTTP on loopback; ``on`` and ``off`` decide on any board
(docs/architecture.md).
"""

import ipaddress
import logging
import re
from urllib.parse import quote

from webconfig.server import HttpServer

log = logging.getLogger("gateway.http")

REDIRECT_STATUS = "308 Permanent Redirect"
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]{1,253})(:[0-9]{1,5})?\Z")


class HttpsServer(HttpServer):
    """The HTTPS web server: its certificate is the door's, swapped for new connections on every change."""

    name = "https"

    def __init__(self, app, door, **options):
        super().__init__(app, **options)
        self._door = door
        door.on_web_certificate_change(self._certificate_changed)

    def _certificate_changed(self):
        context = self._door.web_ssl_context()
        if context is not None:
            self.ssl_context = context          # read per accepted connection (webconfig/server.py _run)

    async def start(self):
        """Serve HTTPS, or say why not (no certificate, the port taken or privileged): the plain HTTP pages
        and every other service go on, and the status and the upgrade trial see it is not running."""
        self.error = None
        self.ssl_context = self._door.web_ssl_context()
        if self.ssl_context is None:            # no certificate could be loaded or made: said in the log
            self.error = "no web certificate"
            return
        try:
            await super().start()
        except OSError as exc:
            self._listener = None               # never listened: not running, nothing to stop
            self.error = "port %s: %s" % (self.port, exc.strerror or exc)
            log.error("HTTPS not served: %s", self.error)

    def status(self):
        state = dict(super().status(), transport="https")
        if getattr(self, "error", None):
            state["error"] = self.error
        return state


def _loopback(bind):
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


def redirect_wanted(setting, board_kind, bind="0.0.0.0"):
    """Whether plain HTTP answers with a redirect to HTTPS, by ``https.redirect``, the board and where HTTP
    listens (``http.bind``)."""
    return setting == "on" or (setting == "auto" and board_kind != "sim" and not _loopback(bind))


def _host_of(environ):
    """The host name the client used (Host header, else the address it reached), without its port."""
    header = environ.get("HTTP_HOST", "")
    found = _HOST.match(header)
    if found:
        return found.group(1)
    address = environ.get("SERVER_NAME", "127.0.0.1")
    try:
        return "[%s]" % address if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return "127.0.0.1"


class Redirecting:
    """The WSGI app of the plain HTTP server (listening on ``bind``): ``app``, or the redirect to ``https``
    (an HttpsServer). Everything else the server asks of its application (the firewall's ``admit``, the
    streamed ``uploads``) is the wrapped application's: plain HTTP is as guarded as HTTPS."""

    def __init__(self, app, door, https, board_kind, bind):
        self.app, self.door, self.https, self.board_kind, self.bind = app, door, https, board_kind, bind

    def __getattr__(self, name):
        return getattr(self.__dict__["app"], name)

    def __call__(self, environ, start_response):
        https = self.https
        if not redirect_wanted(self.door.setting("https.redirect"), self.board_kind, self.bind) \
                or https.ssl_context is None:
            return self.app(environ, start_response)
        path = quote((environ.get("PATH_INFO") or "/").encode("latin-1", "replace"), safe=_PATH_SAFE)
        target = "https://%s:%d%s" % (_host_of(environ), https.port, path)
        if environ.get("QUERY_STRING"):
            target += "?" + quote(environ["QUERY_STRING"].encode("latin-1", "replace"), safe=_QUERY_SAFE)
        start_response(REDIRECT_STATUS, [("Location", target), ("Content-Type", "text/plain; charset=utf-8"),
                                         ("Cache-Control", "no-store")])
        return [("moved to %s\n" % target).encode("utf-8")]


def redirecting(app, door, https, board_kind, bind="0.0.0.0"):
    """The plain HTTP server's application: ``app`` behind the redirect to ``https`` (see Redirecting)."""
    return Redirecting(app, door, https, board_kind, bind)
