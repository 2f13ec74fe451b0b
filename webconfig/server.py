"""Small HTTP/1.1 server hosting a WSGI app on the daemon's single asyncio loop.

A threaded server would break the one-loop rule, so the app (fast, in-memory handlers) is
called inline; every input is bounded in size and time so no client can stall the loop or grow memory.

Fairness and bounds (SPEC §11). A connection is served one request per turn of the loop: after
each answer its task yields, so thousands of pipelined requests in one send are served in turn
with every other client instead of back to back. Per connection, what is buffered is bounded by
backpressure, not refusal: the reader stops reading the socket past twice ``max_header_bytes``
of unread input, and a connection whose answers pile up past WRITE_BUFFER_HIGH unsent bytes is
not served further until the client reads them (or is closed after ``idle_timeout``). Connections
are capped in all (``max_connections``, fitted under the descriptor limit: daemon/limits.py) and
per client address (``max_per_client``); when a cap is reached the oldest connection waiting
for a request (idle keep-alive, or silent since it opened) is closed to make room, and only when
none is idle is the newcomer refused with a 503. Refused sockets are closed at once, a few of them
after a short linger so the 503 is not lost to a reset; refusals are counted and logged at most
once a minute (daemon/listen.py), and running out of descriptors pauses accepting, quietly. Each
connection records its stage and since when (``status()``); one in a stage past every bounded wait is
aborted by a sweep and counted (SWEEP_S), so a wait without a bound of its own cannot hold a descriptor.

The parser is ours, stricter than RFC 9112 requires where it may choose (docs/architecture.md):
lines end with CR LF (a bare LF is refused at once with 400), no obs-fold, methods are
case-sensitive (an unknown one, ``get`` included, is 501), origin or absolute form only, one
Content-Length, no transfer codings. Its refusals are fixed texts, never Python's.

The async seam: a handler that must await (a command through the door) puts an
awaitable under ``environ[DEFERRED]`` and returns; the server then awaits it on
the loop, bounded by ``handler_timeout``, and sends what it yields, a WSGI-like
``(status, headers, body)``. No thread per request, nothing blocks the loop.
"""

import asyncio
import contextlib
import gzip
import http
import io
import logging
import re
import socket
import time
from email.utils import formatdate
from urllib.parse import unquote_to_bytes, urlsplit

from daemon.limits import fitted_cap
from daemon.listen import Listener, Tally, open_stream
from daemon.loopshare import LoopShare

log = logging.getLogger("gateway.http")

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")       # control chars except HT
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_STATUS = re.compile(r"[2-5][0-9][0-9] [^\x00-\x1f\x7f]*")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade"}
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")     # case-sensitive (RFC 9110 §9.1)
LINGER_S = 1.0      # after a refusal, keep reading (and discarding) this long so the reply is not lost to a RST
MAX_LINGERING = 16  # refused connections (over a cap) lingering at once; past this they are closed at once
WRITE_BUFFER_HIGH = 65536     # unsent answer bytes per connection before it waits for its client to read
COMPRESS_MIN = 1024          # smaller answers are sent as they are (gzip's header would eat the gain)
GZIP_KEPT = 128              # compressed page assets kept (each asset once; they are a few dozen)
_COMPRESSIBLE = ("application/json", "application/javascript", "image/svg+xml", "application/xml")
DEFERRED = "openm70.deferred"     # environ key of an async handler's awaitable (webconfig/jsonio.py)
UPLOAD = "openm70.upload"         # environ key of a streamed route's spooled body (webconfig/uploads.py)
# environ key of ``await environ[NEXT_TURN](spent)``: a deferred answer built over several turns of the loop (the
# status document: webconfig/statusdoc.py) charges each slice to its client, and its next slice waits for the
# client's share as its next request would; one ~13 ms turn held every other client (and the accept) that long
NEXT_TURN = "openm70.next_turn"
SLOW_WAIT_S = 1.0       # a request that waited this long for its loop share is counted ("share_waits_over_1s")
# Every connection is checked this often: one that has been in the same stage (opening, waiting, reading, queued,
# answering, sending, refusing, closing) longer than the server's longest bounded wait plus OVERDUE_MARGIN_S is
# overdue, a defect: it is counted and logged by stage (rate-limited) and aborted, so no descriptor is held forever
SWEEP_S = 5.0
UNSWEPT = ("receiving",)    # a body comes in reads each bounded by idle_timeout: a slow upload may take longer whole
OVERDUE_MARGIN_S = 5.0


def _stamp(conn, event):
    """Note when ``event`` happened to a traced connection (HttpServer.trace); nothing otherwise."""
    if conn.stamps is not None:
        conn.stamps.append((event, time.monotonic()))


def _accepts_gzip(header):
    """Whether an Accept-Encoding value accepts gzip: named (or x-gzip), else "*", with a q-value above 0."""
    weights = {}
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        weights[name.strip().lower()] = q
    for name in ("gzip", "x-gzip", "*"):
        if name in weights:
            return weights[name] > 0
    return False


class HttpError(Exception):
    """HttpError(code, message): a request the server refuses itself, then closes the connection."""


class _LogErrors(io.TextIOBase):
    """wsgi.errors that goes to the log instead of stderr or a growing buffer."""

    def write(self, text):
        if text.strip():
            log.error("wsgi: %s", text.rstrip())
        return len(text)


def _plain(code, message, keep=False, head_only=False):
    """Bytes of a small text/plain response the server writes itself."""
    body = (message + "\n").encode("utf-8")
    head = (f"HTTP/1.1 {code} {http.HTTPStatus(code).phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nDate: {formatdate(usegmt=True)}\r\n"
            + ("" if keep else "Connection: close\r\n") + "\r\n")
    return head.encode("ascii") + (b"" if head_only else body)


class _Connection:
    """One accepted connection: whose it is, since when it waits for a request (None while busy), and what
    it is doing since when (``stage``, ``stage_at``: the server's sweep finds one stuck)."""

    __slots__ = ("ip", "task", "writer", "idle_since", "stamps", "sock", "stage", "stage_at")

    def __init__(self, ip, sock, stamps=None):
        self.ip, self.task, self.writer, self.idle_since = ip, None, None, None
        self.sock, self.stage, self.stage_at = sock, "opening", time.monotonic()
        self.stamps = stamps        # [(event, monotonic time)] when the server is traced (HttpServer.trace)

    def enter(self, stage):
        self.stage, self.stage_at = stage, time.monotonic()


class HttpServer:
    name = "http"               # among the gateway's services (the HTTPS one is "https": webconfig/https_serve.py)
    def __init__(self, app, host="127.0.0.1", port=0, max_connections=64, header_timeout=10.0,
                 idle_timeout=30.0, max_header_bytes=16384, max_body_bytes=1048576, ssl_context=None,
                 handler_timeout=30.0, max_per_client=16):
        self.app, self.host, self.port, self.ssl_context = app, host, port, ssl_context
        self.max_connections, self.max_header_bytes, self.max_body_bytes = (
            max_connections, max_header_bytes, max_body_bytes)
        self.max_per_client = max_per_client        # one address (a browser opens 6) cannot take every slot
        self.header_timeout, self.idle_timeout = header_timeout, idle_timeout
        self.handler_timeout = handler_timeout     # an async handler (a write to a meter) gets this long
        self._listener, self._closing = None, False
        self._cap = max_connections
        self._tasks = set()             # connection and lingering-refusal tasks, for stop()
        self._open = set()              # connections being served (refused ones excluded)
        self._conns = set()             # every connection with a task, from accept to its end (evicted ones too)
        self._sweeper = None
        self._overdue = Tally(log, "HTTP connections held past every bounded wait (a defect)")
        self._by_ip = {}                # client address -> its connections among them
        self._lingering = 0
        self._refusals = Tally(log, "HTTP connections")
        self._gzipped = {}              # id(asset body) -> (body, its gzip): page assets compressed once
        self._last_packed = (None, None)    # the last dynamic body and its gzip: a reused status document's
        self._share = LoopShare()       # each client and all together: a share of the loop (daemon/loopshare.py)
        self.uploads = getattr(app, "uploads", None)      # streamed bodies (webconfig/uploads.py), if the app has any
        self._counts = {"accepted": 0, "requests": 0, "rejected": 0, "evicted": 0, "bad_requests": 0, "timeouts": 0,
                        "dropped": 0, "share_waits_over_1s": 0, "overdue": 0}
        # None, or a deque the bench sets: each connection's (ip, port, [(event, monotonic time)]) once it ends,
        # events accept, open, byte (the request's first), head, ready (its loop share), answer, drained, end
        self.trace = None

    @property
    def stats(self):
        idle = sum(conn.idle_since is not None for conn in self._open)
        return {"connections_open": len(self._open), "connections_idle": idle, "connection_cap": self._cap,
                **self._share.status(), **self._counts}

    @property
    def listening(self):
        """Whether it accepts connections."""
        return self._listener is not None

    def status(self):
        """As the northbound services say it (Door.service_states, the Diagnosis page, the upgrade trial)."""
        now = time.monotonic()
        return {"enabled": True, "running": self.listening, "port": self.port, "connections": len(self._conns),
                "oldest_stage_s": round(max((now - c.stage_at for c in self._conns), default=0.0), 1),
                "overdue": self._counts["overdue"]}

    async def start(self):
        self._closing = False
        self._cap = fitted_cap(self.max_connections, "http")
        self._listener = Listener(self._on_socket, self._refusals)
        self._listener.start(self.host, self.port)
        self.port = self._listener.port
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)

    async def stop(self):
        """Stop listening and abort every open connection right away."""
        if self._listener is None:
            return
        self._closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await self._listener.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()       # each handler aborts its transport on the way out
        await asyncio.gather(*tasks, return_exceptions=True)
        self._listener = None

    # ------------------------------------------------------------ admission: caps, eviction, refusal

    def _on_socket(self, sock, peer):
        """A new connection: served if there is room (made by closing the oldest idle one), else refused."""
        ip = peer[0]
        self._counts["accepted"] += 1
        if not self._make_room(ip):
            self._counts["rejected"] += 1
            self._refusals.add("503 (every slot busy)")
            self._refuse_socket(sock)
            return
        conn = _Connection(ip, sock, None if self.trace is None else [("accept", time.monotonic()), ("port", peer[1])])
        self._open.add(conn)
        self._conns.add(conn)
        self._by_ip.setdefault(ip, set()).add(conn)
        conn.task = asyncio.get_running_loop().create_task(self._run(conn, sock))
        self._tasks.add(conn.task)

    def _make_room(self, ip):
        mine = self._by_ip.get(ip, ())
        if len(mine) >= self.max_per_client:
            return self._evict(mine)            # a client at its cap only ever displaces itself
        if len(self._open) >= self._cap:
            return self._evict(self._open)
        return True

    def _evict(self, candidates):
        """Close the connection that has waited longest for a request; False if none is waiting."""
        idle = [conn for conn in candidates if conn.idle_since is not None]
        if not idle:
            return False
        victim = min(idle, key=lambda conn: conn.idle_since)
        self._forget(victim)
        victim.writer.transport.close()     # as an idle timeout would: its task reads EOF and ends
        self._counts["evicted"] += 1
        return True

    def _forget(self, conn):
        self._open.discard(conn)
        mine = self._by_ip.get(conn.ip)
        if mine is not None:
            mine.discard(conn)
            if not mine:
                del self._by_ip[conn.ip]

    def _sweep(self):
        """Abort every connection overdue in its stage (see SWEEP_S): counted, logged by stage, descriptor freed."""
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)
        bound = max(self.header_timeout, self.idle_timeout, self.handler_timeout) + OVERDUE_MARGIN_S
        now = time.monotonic()
        for conn in [c for c in self._conns if now - c.stage_at > bound and c.stage not in UNSWEPT]:
            self._counts["overdue"] += 1
            self._overdue.add(conn.stage)
            self._conns.discard(conn)
            self._forget(conn)
            if conn.writer is not None:
                conn.writer.transport.abort()
            else:
                conn.sock.close()
            conn.task.cancel()

    def _refuse_socket(self, sock):
        """503 and close; a few refusals linger briefly so the reply is read, the rest close at once."""
        if self.ssl_context is not None or self._lingering >= MAX_LINGERING:
            sock.close()
            return
        try:
            sock.send(_plain(503, "too many connections, try again later"))
        except OSError:
            sock.close()
            return
        task = asyncio.get_running_loop().create_task(self._linger(sock))
        self._tasks.add(task)

    async def _linger(self, sock):
        self._lingering += 1
        try:
            sock.shutdown(socket.SHUT_WR)
            async with asyncio.timeout(LINGER_S):
                while await asyncio.get_running_loop().sock_recv(sock, 65536):
                    pass
        except (OSError, asyncio.CancelledError):
            pass            # reset, LINGER_S over, or stop()
        finally:
            self._lingering -= 1
            sock.close()
            self._tasks.discard(asyncio.current_task())

    # ------------------------------------------------------------ one connection

    async def _run(self, conn, sock):
        clean, writer = False, None
        try:
            async with asyncio.timeout(self.header_timeout):     # a TLS handshake is part of the first request
                reader, writer = await open_stream(sock, self.max_header_bytes, self.ssl_context, self.header_timeout)
            writer.transport.set_write_buffer_limits(high=WRITE_BUFFER_HIGH)
            conn.writer = writer
            conn.enter("waiting")
            _stamp(conn, "open")
            await self._serve(conn, reader, writer)
            clean = True
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            self._counts["dropped"] += 1     # peer vanished or reset, stalled while we wrote, or stop()
        except Exception:
            log.exception("HTTP connection handler failed")
        finally:
            conn.enter("closing")
            self._forget(conn)
            if writer is None:
                sock.close()
            else:
                if clean and not self._closing:     # let the last reply flush, but not forever
                    writer.close()
                    try:
                        async with asyncio.timeout(self.idle_timeout):
                            await writer.wait_closed()
                    except BaseException:           # timeout, reset, or stop() cancelling us
                        pass
                writer.transport.abort()            # no-op if already closed
            self._tasks.discard(conn.task)
            self._conns.discard(conn)
            if conn.stamps is not None and self.trace is not None:
                _stamp(conn, "end")
                self.trace.append((conn.ip, conn.stamps[1][1], conn.stamps))

    async def _drain(self, writer):
        async with asyncio.timeout(self.idle_timeout):
            await writer.drain()

    async def _refuse(self, reader, writer, code, message):
        """Send an error reply, half-close, and discard input briefly so the client can read it."""
        writer.write(_plain(code, message))
        await self._drain(writer)
        if writer.can_write_eof():
            with contextlib.suppress(OSError):      # the peer may have reset already
                writer.write_eof()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINGER_S):
                while await reader.read(65536):
                    pass

    async def _serve(self, conn, reader, writer):
        first = True
        while True:
            try:
                head = await self._read_head(conn, reader, first)
                if head is None:
                    return
                method, path, query, version, headers = self._parse_head(head)
                most = None if self.uploads is None else self.uploads.admit(method, path, headers, conn.ip)
                keep, length = self._check(version, headers, most)
                conn.enter("receiving")
                body = await self._read_body(reader, writer, version, headers, length, most is not None)
                if body is None:
                    return
            except HttpError as err:
                self._counts["bad_requests"] += 1
                conn.enter("refusing")
                await self._refuse(reader, writer, *err.args)
                return
            first = False
            # The gateway's firewall (issue 15), per request. Its size is the head's: an upload (a 1 MB background,
            # an upgrade package) is one legitimate request that one second's bandwidth allowance would ban; the
            # body is bounded by max_body_bytes and the read timeouts instead.
            admit = getattr(self.app, "admit", None)
            if admit is not None and not admit(conn.ip, self.port, len(head)):
                self._counts["firewall_refused"] = self._counts.get("firewall_refused", 0) + 1
                conn.enter("refusing")
                await self._refuse(reader, writer, 429, "too many requests from this address: try again later")
                return
            environ = self._environ(writer, method, path, query, version, headers, body)
            _stamp(conn, "head")
            waited = time.monotonic()
            conn.enter("queued")
            await self._share.ready(conn.ip)
            if time.monotonic() - waited >= SLOW_WAIT_S:
                self._counts["share_waits_over_1s"] += 1
            _stamp(conn, "ready")
            conn.enter("answering")
            try:
                answer = await self._respond(environ, keep)
                started = time.monotonic()
                writer.write(answer)        # the copy to the socket is the client's too (a 308 KB answer: ~0.3 ms)
                self._share.charge(conn.ip, time.monotonic() - started)
                _stamp(conn, "answer")
            finally:
                if not isinstance(body, bytes):         # a spooled upload: its file goes with the answer
                    self.uploads.discard(body)
            conn.enter("sending")
            await self._drain(writer)
            _stamp(conn, "drained")
            if not keep:
                return
            await asyncio.sleep(0)      # one request per turn: a pipelining client waits its turn like the others

    async def _read_head(self, conn, reader, first):
        """Request line and headers as bytes; None if the client went quiet or away."""
        start = b""
        try:
            conn.idle_since = time.monotonic()      # waiting for a request: may be closed to make room
            conn.enter("waiting")
            try:
                async with asyncio.timeout(self.header_timeout if first else self.idle_timeout):
                    start = await reader.read(1)
            finally:
                conn.idle_since = None
            if not start:
                _stamp(conn, "eof")
                return None
            _stamp(conn, "byte")
            conn.enter("reading")
            async with asyncio.timeout(self.header_timeout):      # from the first byte: no slowloris
                return await self._read_lines(reader, start)
        except TimeoutError:
            if not start:
                _stamp(conn, "silent")
                return None             # silent or idle connection: just close
            self._counts["timeouts"] += 1
            raise HttpError(408, "request headers not received in time") from None
        except asyncio.LimitOverrunError:
            raise HttpError(431, f"request line and headers exceed {self.max_header_bytes} bytes") from None
        except asyncio.IncompleteReadError:
            return None

    async def _read_lines(self, reader, line):
        """Lines up to the empty one, each checked as it comes: a bare LF is refused at once, not timed out."""
        lines, size = [], 0
        while True:
            if line != b"\n":
                line += await reader.readuntil(b"\n")
            size += len(line)
            if size > self.max_header_bytes:
                raise HttpError(431, f"request line and headers exceed {self.max_header_bytes} bytes")
            if not line.endswith(b"\r\n"):
                raise HttpError(400, "malformed request: lines must end with CR LF")
            if line != b"\r\n":
                lines.append(line)
            elif lines:
                return b"".join(lines) + b"\r\n"
            line = b""                  # RFC 9112 2.2: empty lines before a request line are ignored

    @staticmethod
    def _parse_head(head):
        lines = head.decode("latin-1")[:-4].split("\r\n")
        method, target, version = (lines[0].split(" ") + ["", ""])[:3]
        match = _VERSION.fullmatch(version)
        if lines[0].count(" ") != 2 or not _TOKEN.fullmatch(method) or not match or _BAD_TARGET.search(target):
            raise HttpError(400, "malformed request line")
        if match.group(1) != "1":
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
        if method not in METHODS:
            raise HttpError(501, "method not implemented (methods are case-sensitive: " + ", ".join(METHODS) + ")")
        if target.startswith("/"):
            path, _, query = target.partition("?")
        elif target.lower().startswith(("http://", "https://")):
            split = urlsplit(target)
            path, query = split.path or "/", split.query
        else:
            raise HttpError(400, "request target must be an absolute path")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            value = value.strip(" \t")
            if not sep or not _TOKEN.fullmatch(name) or _CTL.search(value):
                raise HttpError(400, "malformed header line")
            name = name.lower()
            headers[name] = headers[name] + ", " + value if name in headers else value
        return method, unquote_to_bytes(path).decode("latin-1"), query, version, headers

    def _check(self, version, headers, most=None):
        """Validate framing headers; returns (keep connection open, body length). ``most``: a streamed route's
        own maximum in place of ``max_body_bytes``."""
        if version == "HTTP/1.1" and "host" not in headers:
            raise HttpError(400, "missing Host header")
        if "transfer-encoding" in headers:
            if headers["transfer-encoding"].lower().rstrip().endswith("chunked"):
                raise HttpError(411, "chunked request bodies are not supported, send Content-Length")
            raise HttpError(501, "transfer codings are not supported")
        length = headers.get("content-length", "0")
        if not (length.isascii() and length.isdigit()):
            raise HttpError(400, "invalid Content-Length")
        most = self.max_body_bytes if most is None else most
        if len(length) > 18 or int(length) > most:
            raise HttpError(413, f"request body exceeds {most} bytes")
        tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
        return version == "HTTP/1.1" and "close" not in tokens, int(length)

    async def _read_body(self, reader, writer, version, headers, length, spool=False):
        if not length and not spool:
            return b""
        if version == "HTTP/1.1" and headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if spool:           # written to a file as it arrives (webconfig/uploads.py), never held whole
            return await self.uploads.receive(reader, length, self.idle_timeout)
        try:
            async with asyncio.timeout(self.idle_timeout):
                return await reader.readexactly(length)
        except TimeoutError:
            self._counts["timeouts"] += 1
            raise HttpError(408, "request body not received in time") from None
        except asyncio.IncompleteReadError:
            return None

    def _environ(self, writer, method, path, query, version, headers, body):
        server = writer.get_extra_info("sockname") or (self.host, self.port)
        peer = writer.get_extra_info("peername") or ("", 0)
        environ = {
            "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
            "SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1]), "SERVER_PROTOCOL": version,
            "REMOTE_ADDR": str(peer[0]), "REMOTE_PORT": str(peer[1]),
            "wsgi.version": (1, 0), "wsgi.url_scheme": "https" if self.ssl_context else "http",
            "wsgi.input": io.BytesIO(body if isinstance(body, bytes) else b""), "wsgi.errors": _LogErrors(),
            "wsgi.multithread": False, "wsgi.multiprocess": False, "wsgi.run_once": False,
        }
        if not isinstance(body, bytes):
            environ[UPLOAD] = body
        environ[NEXT_TURN] = self._next_turn(str(peer[0]))
        for name, value in headers.items():
            if "_" in name:
                continue            # "X_Y" and "X-Y" would collide in the environ; drop the spoofable one
            key = name.upper().replace("-", "_")
            environ[key if name in ("content-type", "content-length") else "HTTP_" + key] = value
        return environ

    def _next_turn(self, ip):
        async def next_turn(spent):
            self._share.charge(ip, spent)
            await asyncio.sleep(0)
            await self._share.ready(ip)
        return next_turn

    async def _respond(self, environ, keep):
        """Run the app (and await its deferred part) and encode the response; a failure is a logged 500."""
        head_only = environ["REQUEST_METHOD"] == "HEAD"
        self._counts["requests"] += 1
        try:
            started = time.monotonic()
            try:
                response = self._call_app(environ)
            finally:
                self._share.charge(environ["REMOTE_ADDR"], time.monotonic() - started)
            pending = environ.pop(DEFERRED, None)
            if pending is not None:
                try:
                    async with asyncio.timeout(self.handler_timeout):
                        response = await pending
                except TimeoutError:
                    self._counts["timeouts"] += 1
                    return _plain(504, "the gateway did not finish in time", keep, head_only)
            return self._encode(*self._compressed(environ, *response), head_only, keep)
        except Exception:
            pending = environ.pop(DEFERRED, None)
            if pending is not None and hasattr(pending, "close"):
                pending.close()         # never started: no "coroutine was never awaited" noise
            log.exception("WSGI app failed on %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"])
            return _plain(500, "internal server error", keep, head_only)

    def _compressed(self, environ, status, headers, body):
        """gzip for a client that accepts it (RFC 9110 §12.5.3), text and JSON of COMPRESS_MIN bytes or more.

        A body the app marks cacheable (the page assets: the same bytes object every time) is compressed once,
        at the highest level, and kept; a dynamic one (JSON) is compressed at level 1 (a 300 KB status
        document: 2-3 ms, charged to the clients' share of the loop like the rest), unless it equals the last
        dynamic body compressed (the status document reused within a burst, webconfig/statusdoc.py: a
        comparison of a few microseconds instead)."""
        if len(body) < COMPRESS_MIN or not _accepts_gzip(environ.get("HTTP_ACCEPT_ENCODING", "")):
            return status, headers, body
        kind, cacheable = "", False
        for name, value in headers:
            lower = name.lower()
            if lower == "content-encoding":
                return status, headers, body
            if lower == "content-type":
                kind = value.split(";", 1)[0].strip().lower()
            elif lower == "cache-control":
                cacheable = "max-age" in value
        if not (kind.startswith("text/") or kind in _COMPRESSIBLE):
            return status, headers, body
        started = time.monotonic()
        kept = self._gzipped.get(id(body)) if cacheable else self._last_packed
        if kept is not None and (kept[0] is body or (not cacheable and kept[0] == body)):
            packed = kept[1]
        else:
            packed = gzip.compress(body, 9 if cacheable else 1, mtime=0)
            if not cacheable:
                self._last_packed = (body, packed)
            elif len(self._gzipped) < GZIP_KEPT:
                self._gzipped[id(body)] = (body, packed)        # the body is kept too: its id stays its own
        self._share.charge(environ["REMOTE_ADDR"], time.monotonic() - started)
        headers = [h for h in headers if h[0].lower() != "content-length"]
        return status, headers + [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")], packed

    def _call_app(self, environ):
        started, chunks = [], []

        def start_response(status, headers, exc_info=None):
            if started and not exc_info:
                raise AssertionError("start_response called twice without exc_info")
            started[:] = [status, list(headers)]    # nothing is sent before the app returns
            return chunks.append

        result = self.app(environ, start_response)
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        if not started:
            raise RuntimeError("WSGI app returned without calling start_response")
        return started[0], started[1], b"".join(chunks)

    @staticmethod
    def _encode(status, headers, body, head_only, keep):
        if not _STATUS.fullmatch(status):
            raise ValueError(f"invalid WSGI status {status!r}")
        lines, names = [f"HTTP/1.1 {status}"], set()
        for name, value in headers:
            lower = name.lower()
            if not _TOKEN.fullmatch(name) or _CTL.search(value):
                raise ValueError(f"invalid response header {name!r}")
            if lower in _HOP_BY_HOP or (lower == "content-length" and not head_only):
                continue
            names.add(lower)
            lines.append(f"{name}: {value}")
        no_body = status[:3] in ("204", "304")
        if not no_body and not (head_only and "content-length" in names):   # HEAD keeps the app's length
            lines.append(f"Content-Length: {len(body)}")
        if no_body or head_only:
            body = b""
        if "date" not in names:
            lines.append("Date: " + formatdate(usegmt=True))
        if not keep:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
