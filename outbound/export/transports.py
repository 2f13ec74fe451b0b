"""How a finished export file reaches its server: FTP, FTPS (explicit AUTH TLS or implicit), HTTP(S) POST.

The clients are the standard library's (ftplib, http.client, ssl): blocking, so every call runs in the one
executor (``run_blocking``), each socket bounded by a connect timeout and a per-operation timeout. A TLS
server is verified against the gateway's CA store only, its name included (``Door.tls_client_context``).

FTP: login, ``PROT P`` when secure, passive or active data connections (push.ftp_mode), the destination
folder entered (each missing level created), each file stored under a temporary name (``<name>.part``) then
renamed (RNFR/RNTO) to its own, so a reader of the folder never sees half a file. HTTP: the file as
``multipart/form-data`` (field ``file``) POSTed to ``/<folder>`` with Basic authentication; any 2xx is
delivered. *FTPS mandatory* (policy.ftps_mandatory) refuses both plain FTP and plain HTTP before any
connection: the M-70 manual's policy is "a secure connection to export data" (docs/architecture.md).

A failure is a ``PushError``: a catalogue key with its parameters (daemon/locale/*/ftp.json) and the English
text, which the sender puts in alarm 6 and the *Test connection* button shows.
"""

import base64
import collections
import ftplib
import http.client
import io
import logging
import os
import socket
import ssl
import time
import urllib.parse
import uuid

from daemon.blocking import BlockingQueueFull, run_blocking

log = logging.getLogger("gateway.push.transport")

CONNECT_TIMEOUT_S = 10.0          # TCP connect (and, for HTTPS, the TLS handshake)
OPERATION_TIMEOUT_S = 30.0        # every later socket operation: a reply, a data block, an accept
ANSWER_LIMIT = 64 * 1024          # what is read of an HTTP answer's body
BLOCK = 64 * 1024
PART_SUFFIX = ".part"

Target = collections.namedtuple("Target", "protocol host port user password folder secure tls_mode ftp_mode "
                                          "ftps_mandatory site server")

CONTENT_TYPES = {".csv": "text/csv", ".txt": "text/plain", ".log": "text/plain"}


class PushError(Exception):
    """A delivery that failed or was refused: ``key`` and ``params`` for the catalogue, ``str()`` in English."""

    def __init__(self, key, message, **params):
        Exception.__init__(self, message)
        self.key = key
        self.params = params

    def text(self):
        return {"key": self.key, "params": dict(self.params)}


class LocalFileGone(Exception):
    """The spooled file vanished before it was sent (dropped to make room meanwhile): not the server's fault."""


def target_of(door):
    """The destination as the settings describe it now (server name: push.server_name, else the NET ID)."""
    get = door.setting
    return Target(protocol=get("push.protocol"), host=get("push.host"), port=int(get("push.port")),
                  user=get("push.user"), password=get("push.password"), folder=get("push.folder"),
                  secure=bool(get("push.secure")), tls_mode=get("push.tls_mode"), ftp_mode=get("push.ftp_mode"),
                  ftps_mandatory=bool(get("policy.ftps_mandatory")), site=get("push.site_name"),
                  server=get("push.server_name") or door.identity()["netid"])


def refusal(target):
    """The PushError that stops a delivery before any connection, or None."""
    if target.protocol not in ("ftp", "http"):
        return PushError("push.transfer.off", "no export server is configured (push.protocol is none)")
    if not target.host:
        return PushError("push.transfer.no_host", "no export server address is set (push.host)")
    if target.ftps_mandatory and not target.secure:
        name = {"ftp": "FTP", "http": "HTTP"}[target.protocol]
        return PushError("push.transfer.plain_refused", "plain %s refused: the security policy makes a secure "
                         "export mandatory (FTPS mandatory); turn on secure communication" % name, protocol=name)
    return None


def classify(exc, target):
    """A client library's exception as a PushError naming the server."""
    where = "%s:%d" % (target.host, target.port)
    if isinstance(exc, PushError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        return PushError("push.transfer.tls_verify", "the certificate of %s is not trusted: %s (add its CA to the "
                         "CA store)" % (where, reason), server=where, reason=reason)
    if isinstance(exc, ssl.SSLError):
        return PushError("push.transfer.tls", "TLS with %s failed: %s" % (where, exc.reason or exc),
                         server=where, reason=str(exc.reason or exc))
    if isinstance(exc, TimeoutError):            # socket.timeout is TimeoutError since 3.10
        return PushError("push.transfer.timeout", "%s did not answer in time" % where, server=where)
    if isinstance(exc, ConnectionRefusedError):
        return PushError("push.transfer.refused", "%s refused the connection" % where, server=where)
    if isinstance(exc, ftplib.error_perm) and str(exc)[:3] in ("530", "331", "332"):
        return PushError("push.transfer.login", "%s refused the login: %s" % (where, _line(exc)), server=where,
                         answer=_line(exc))
    if isinstance(exc, ftplib.Error):
        return PushError("push.transfer.answer", "%s answered: %s" % (where, _line(exc)), server=where,
                         answer=_line(exc))
    if isinstance(exc, HttpStatus):
        key = "push.transfer.login" if exc.status in (401, 403) else "push.transfer.answer"
        return PushError(key, "%s answered: %s" % (where, exc.line), server=where, answer=exc.line)
    if isinstance(exc, (EOFError, http.client.HTTPException, ConnectionError)):
        return PushError("push.transfer.closed", "%s closed the connection" % where, server=where)
    if isinstance(exc, BlockingQueueFull):
        return PushError("push.transfer.busy", "the gateway is busy: the export waits", server=where)
    if isinstance(exc, (OSError, UnicodeError, ValueError)):
        return PushError("push.transfer.network", "%s cannot be reached: %s" % (where, exc), server=where,
                         reason=str(exc))
    log.exception("export to %s: unexpected failure", where)
    return PushError("push.transfer.failed", "the export to %s failed: %s" % (where, _line(exc)), server=where,
                     reason=_line(exc))


def _line(exc):
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


def _local(path):
    try:
        return open(path, "rb")
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise LocalFileGone(path) from None


# ---------------------------------------------------------------- FTP and FTPS (blocking)

class _TimedConnect:
    """ftplib's connect with its own timeout; the socket then takes the per-operation timeout, and implicit
    FTPS wraps it in TLS before the first byte (RFC 4217 leaves implicit TLS to port 990 practice)."""
    implicit = False
    connect_timeout = CONNECT_TIMEOUT_S

    def connect(self, host="", port=0, timeout=-999, source_address=None):
        self.host, self.port = host, port
        sock = socket.create_connection((host, port), self.connect_timeout)
        try:
            sock.settimeout(self.timeout)
            if self.implicit:
                sock = self.context.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.af = sock.family
        self.file = sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome


class PlainFtp(_TimedConnect, ftplib.FTP):
    pass


class ExplicitFtps(_TimedConnect, ftplib.FTP_TLS):
    """AUTH TLS on the control connection; data connections resume its TLS session (servers may require it)."""

    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            try:
                conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
            except BaseException:
                conn.close()
                raise
        return conn, size


class ImplicitFtps(ExplicitFtps):
    """TLS from the first byte."""
    implicit = True


class FtpSession:
    """One logged-in FTP(S) connection in the destination folder; ``put`` stores one file."""

    def __init__(self, target, context, connect_timeout=CONNECT_TIMEOUT_S, timeout=OPERATION_TIMEOUT_S):
        if not target.secure:
            ftp = PlainFtp(timeout=timeout)
        else:
            ftp = (ImplicitFtps if target.tls_mode == "implicit" else ExplicitFtps)(context=context,
                                                                                    timeout=timeout)
        ftp.connect_timeout = connect_timeout
        self.ftp = ftp
        self.last = ""
        try:
            self.last = ftp.connect(target.host, target.port)
            self.last = ftp.login(target.user or "anonymous", target.password or "")   # FTP_TLS: AUTH TLS first
            if target.secure:
                self.last = ftp.prot_p()
            ftp.set_pasv(target.ftp_mode != "active")
            self._enter(target.folder)
        except BaseException:
            self.close()
            raise

    def _enter(self, folder):
        if folder.startswith("/"):
            self.last = self.ftp.cwd("/")
        for part in (p for p in folder.split("/") if p):
            try:
                self.last = self.ftp.cwd(part)
            except ftplib.error_perm:
                self.ftp.mkd(part)
                self.last = self.ftp.cwd(part)

    def put(self, path, name):
        with _local(path) as handle:
            return self._store(handle, name)

    def put_bytes(self, name, data):
        return self._store(io.BytesIO(data), name)

    def _store(self, handle, name):
        temporary = name + PART_SUFFIX
        self.last = self.ftp.storbinary("STOR " + temporary, handle, blocksize=BLOCK)
        try:
            self.last = self.ftp.rename(temporary, name)
        except ftplib.error_perm:          # a server that will not rename over a file already there (a resend)
            self.ftp.delete(name)
            self.last = self.ftp.rename(temporary, name)
        return self.last

    def close(self):
        try:
            if self.ftp.sock is not None:                  # connected: say goodbye
                self.ftp.quit()
        except (OSError, EOFError, ftplib.Error):          # a server gone or rude at QUIT: close anyway
            log.debug("QUIT failed", exc_info=True)
        finally:
            self.ftp.close()


# ---------------------------------------------------------------- HTTP(S) POST (blocking)

class HttpStatus(Exception):
    def __init__(self, status, reason):
        Exception.__init__(self, "%d %s" % (status, reason))
        self.status = status
        self.line = "%d %s" % (status, reason)


class HttpSession:
    """A kept-alive HTTP(S) connection; ``put`` POSTs one file as multipart/form-data to /<folder>."""

    def __init__(self, target, context, connect_timeout=CONNECT_TIMEOUT_S, timeout=OPERATION_TIMEOUT_S):
        self.target = target
        self.context = context
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.path = "/" + urllib.parse.quote(target.folder.strip("/"))
        credentials = ("%s:%s" % (target.user, target.password or "")).encode("utf-8")
        self.authorization = "Basic " + base64.b64encode(credentials).decode("ascii") if target.user else None
        self.last = ""
        self.conn = None
        self._connect()

    def _connect(self):
        target = self.target
        if target.secure:
            conn = http.client.HTTPSConnection(target.host, target.port, timeout=self.connect_timeout,
                                               context=self.context)
        else:
            conn = http.client.HTTPConnection(target.host, target.port, timeout=self.connect_timeout)
        try:
            conn.connect()                      # the TLS handshake now: a bad certificate fails before any file
            conn.sock.settimeout(self.timeout)
        except BaseException:
            conn.close()
            raise
        self.conn = conn

    def put(self, path, name):
        with _local(path) as handle:
            return self._post(handle, os.fstat(handle.fileno()).st_size, name)

    def put_bytes(self, name, data):
        return self._post(io.BytesIO(data), len(data), name)

    def _post(self, handle, size, name):
        if self.conn is None or self.conn.sock is None:
            self._connect()
        boundary = uuid.uuid4().hex
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        content_type = CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")
        head = ('--%s\r\nContent-Disposition: form-data; name="file"; filename="%s"\r\nContent-Type: %s\r\n\r\n'
                % (boundary, quoted, content_type)).encode("utf-8")
        tail = ("\r\n--%s--\r\n" % boundary).encode("ascii")
        conn = self.conn
        try:
            conn.putrequest("POST", self.path)
            conn.putheader("Content-Type", "multipart/form-data; boundary=" + boundary)
            conn.putheader("Content-Length", str(len(head) + size + len(tail)))
            if self.authorization:
                conn.putheader("Authorization", self.authorization)
            conn.endheaders()
            conn.send(head)
            for block in iter(lambda: handle.read(BLOCK), b""):
                conn.send(block)
            conn.send(tail)
            response = conn.getresponse()
            response.read(ANSWER_LIMIT)
            if not response.isclosed() or response.will_close:
                self._drop()                    # an answer longer than we read, or a server closing: reconnect
        except BaseException:
            self._drop()
            raise
        self.last = "%d %s" % (response.status, response.reason)
        if not 200 <= response.status < 300:
            raise HttpStatus(response.status, response.reason)
        return self.last

    def _drop(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self):
        self._drop()


SESSIONS = {"ftp": FtpSession, "http": HttpSession}


def _open_session(target, make_context, connect_timeout, timeout):
    """A session (blocking); the TLS context is built here too: loading a CA store of 50 costs milliseconds."""
    context = make_context() if make_context is not None else None
    return SESSIONS[target.protocol](target, context, connect_timeout, timeout)


# ---------------------------------------------------------------- the transport as the loop sees it

class Transport:
    """Opens sessions to the configured server and sends files through them, off the loop."""

    def __init__(self, door, connect_timeout=CONNECT_TIMEOUT_S, timeout=OPERATION_TIMEOUT_S):
        self.door = door
        self.connect_timeout = connect_timeout
        self.timeout = timeout

    def target(self):
        return target_of(self.door)

    async def open(self):
        """A session to the server the settings name now; PushError when refused or failed."""
        target = self.target()
        problem = refusal(target)
        if problem is not None:
            raise problem
        session = await self._blocking(target, _open_session, target, self.door.tls_client_context if target.secure
                                       else None, self.connect_timeout, self.timeout)
        session.target = target
        return session

    async def put(self, session, path, name):
        """Send one spooled file; the server's last answer. LocalFileGone when the file is no longer there."""
        return await self._blocking(session.target, session.put, path, name)

    async def put_bytes(self, session, name, data):
        return await self._blocking(session.target, session.put_bytes, name, data)

    async def close(self, session):
        try:
            await run_blocking(session.close)
        except Exception:                 # closing is courtesy: a dead server or a full executor loses nothing
            log.debug("closing the export session failed", exc_info=True)

    async def upload_log(self, session):
        """The event log as the Diagnosis page's syslog file, into the same folder (push.upload_log)."""
        name, data = await self.door.event_log_file()
        return await self.put_bytes(session, name, data)

    async def test_connection(self):
        """Upload ``<site>_<server>_test_<date>.txt``: {"ok", "answer" (the server's last reply or the error),
        "file", "text" (catalogue key and parameters of a failure, else None)}."""
        target = self.target()
        name = "%s_%s_test_%s.txt" % (target.site, target.server,
                                      time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(self.door.time())))
        data = ("open-M70 export test from %s (%s) at %s UTC\r\n" % (
            target.server, target.site, time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.door.time())))).encode()
        session = None
        try:
            session = await self.open()
            answer = await self.put_bytes(session, name, data)
        except PushError as exc:
            return {"ok": False, "answer": str(exc), "file": name, "text": exc.text()}
        finally:
            if session is not None:
                await self.close(session)
        return {"ok": True, "answer": answer, "file": name, "text": None}

    async def _blocking(self, target, func, *args):
        try:
            return await run_blocking(func, *args)
        except LocalFileGone:
            raise
        except Exception as exc:  # noqa: BLE001 - any client library failure is an alarm and a retry, not a crash
            raise classify(exc, target) from None
