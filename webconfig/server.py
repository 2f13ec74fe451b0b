"""Small HTTP/1.1 server hosting a WSGI app on the daemon's single asyncio loop.

A threaded server would break the one-loop rule, so the app (fast, in-memory handlers) is
called inline; every input is bounded in size and time so no client can stall the loop or grow memory.

The async seam: a handler that must await (a command through the door) puts an
awaitable under ``environ[DEFERRED]`` and returns; the server then awaits it on
the loop, bounded by ``handler_timeout``, and sends what it yields, a WSGI-like
``(status, headers, body)``. No thread per request, nothing blocks the loop.
"""

import asyncio
import contextlib
import http
import io
import logging
import re
from email.utils import formatdate
from urllib.parse import unquote_to_bytes, urlsplit

log = logging.getLogger("gateway.http")

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
_CTL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")       # control chars except HT
_BAD_TARGET = re.compile(r"[\x00-\x20\x7f]")
_STATUS = re.compile(r"[2-5][0-9][0-9] [^\x00-\x1f\x7f]*")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade"}
LINGER_S = 1.0      # after a refusal, keep reading (and discarding) this long so the reply is not lost to a RST
DEFERRED = "openm70.deferred"     # environ key of an async handler's awaitable (webconfig/jsonio.py)


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


class HttpServer:
    def __init__(self, app, host="127.0.0.1", port=0, max_connections=64, header_timeout=10.0,
                 idle_timeout=30.0, max_header_bytes=16384, max_body_bytes=1048576, ssl_context=None,
                 handler_timeout=30.0):
        self.app, self.host, self.port, self.ssl_context = app, host, port, ssl_context
        self.max_connections, self.max_header_bytes, self.max_body_bytes = (
            max_connections, max_header_bytes, max_body_bytes)
        self.header_timeout, self.idle_timeout = header_timeout, idle_timeout
        self.handler_timeout = handler_timeout     # an async handler (a write to a meter) gets this long
        self._server, self._closing = None, False
        self._tasks = set()             # one handler task per accepted connection, for stop()
        self._open = 0                  # connections being served (rejected ones excluded)
        self._counts = {"requests": 0, "rejected": 0, "bad_requests": 0, "timeouts": 0}

    @property
    def stats(self):
        return {"connections_open": self._open, **self._counts}

    async def start(self):
        self._closing = False
        extra = {"ssl": self.ssl_context, "ssl_handshake_timeout": self.header_timeout} if self.ssl_context else {}
        self._server = await asyncio.start_server(self._on_connect, self.host, self.port,
                                                  limit=self.max_header_bytes, **extra)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self):
        """Stop listening and abort every open connection right away."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()       # each handler aborts its transport on the way out
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _on_connect(self, reader, writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        clean = False
        try:
            if self._open >= self.max_connections:
                self._counts["rejected"] += 1
                await self._refuse(reader, writer, 503, "too many connections, try again later")
            else:
                self._open += 1
                try:
                    await self._serve(reader, writer)
                finally:
                    self._open -= 1
            clean = True
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass        # peer vanished, stalled while we wrote, or stop(): nothing to answer
        except Exception:
            log.exception("HTTP connection handler failed")
        finally:
            if clean and not self._closing:     # let the last reply flush, but not forever
                writer.close()
                try:
                    async with asyncio.timeout(self.idle_timeout):
                        await writer.wait_closed()
                except BaseException:           # timeout, reset, or stop() cancelling us
                    pass
            writer.transport.abort()            # no-op if already closed
            self._tasks.discard(task)

    async def _drain(self, writer):
        async with asyncio.timeout(self.idle_timeout):
            await writer.drain()

    async def _refuse(self, reader, writer, code, message):
        """Send an error reply, half-close, and discard input briefly so the client can read it."""
        writer.write(_plain(code, message))
        await self._drain(writer)
        if writer.can_write_eof():
            writer.write_eof()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINGER_S):
                while await reader.read(65536):
                    pass

    async def _serve(self, reader, writer):
        first = True
        while True:
            try:
                head = await self._read_head(reader, first)
                if head is None:
                    return
                method, path, query, version, headers = self._parse_head(head)
                keep, length = self._check(version, headers)
                body = await self._read_body(reader, writer, version, headers, length)
                if body is None:
                    return
            except HttpError as err:
                self._counts["bad_requests"] += 1
                await self._refuse(reader, writer, *err.args)
                return
            first = False
            environ = self._environ(writer, method, path, query, version, headers, body)
            writer.write(await self._respond(environ, keep))
            await self._drain(writer)
            if not keep:
                return

    async def _read_head(self, reader, first):
        """Request line and headers as bytes; None if the client went quiet or away."""
        start = b""
        try:
            async with asyncio.timeout(self.header_timeout if first else self.idle_timeout):
                start = await reader.read(1)
            if not start:
                return None
            async with asyncio.timeout(self.header_timeout):      # from the first byte: no slowloris
                rest = await reader.readuntil(b"\r\n\r\n")
        except TimeoutError:
            if not start:
                return None             # silent or idle connection: just close
            self._counts["timeouts"] += 1
            raise HttpError(408, "request headers not received in time") from None
        except asyncio.LimitOverrunError:
            raise HttpError(431, f"request line and headers exceed {self.max_header_bytes} bytes") from None
        except asyncio.IncompleteReadError:
            return None
        return (start + rest).lstrip(b"\r\n")       # RFC 9112 2.2: ignore stray CRLF before a request

    @staticmethod
    def _parse_head(head):
        lines = head.decode("latin-1")[:-4].split("\r\n")
        method, target, version = (lines[0].split(" ") + ["", ""])[:3]
        match = _VERSION.fullmatch(version)
        if lines[0].count(" ") != 2 or not _TOKEN.fullmatch(method) or not match or _BAD_TARGET.search(target):
            raise HttpError(400, "malformed request line")
        if match.group(1) != "1":
            raise HttpError(505, "only HTTP/1.0 and HTTP/1.1 are supported")
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

    def _check(self, version, headers):
        """Validate framing headers; returns (keep connection open, body length)."""
        if version == "HTTP/1.1" and "host" not in headers:
            raise HttpError(400, "missing Host header")
        if "transfer-encoding" in headers:
            if headers["transfer-encoding"].lower().rstrip().endswith("chunked"):
                raise HttpError(411, "chunked request bodies are not supported, send Content-Length")
            raise HttpError(501, "transfer codings are not supported")
        length = headers.get("content-length", "0")
        if not (length.isascii() and length.isdigit()):
            raise HttpError(400, "invalid Content-Length")
        if len(length) > 18 or int(length) > self.max_body_bytes:
            raise HttpError(413, f"request body exceeds {self.max_body_bytes} bytes")
        tokens = {t.strip() for t in headers.get("connection", "").lower().split(",")}
        return version == "HTTP/1.1" and "close" not in tokens, int(length)

    async def _read_body(self, reader, writer, version, headers, length):
        if not length:
            return b""
        if version == "HTTP/1.1" and headers.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
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
            "wsgi.input": io.BytesIO(body), "wsgi.errors": _LogErrors(), "wsgi.multithread": False,
            "wsgi.multiprocess": False, "wsgi.run_once": False,
        }
        for name, value in headers.items():
            if "_" in name:
                continue            # "X_Y" and "X-Y" would collide in the environ; drop the spoofable one
            key = name.upper().replace("-", "_")
            environ[key if name in ("content-type", "content-length") else "HTTP_" + key] = value
        return environ

    async def _respond(self, environ, keep):
        """Run the app (and await its deferred part) and encode the response; a failure is a logged 500."""
        head_only = environ["REQUEST_METHOD"] == "HEAD"
        self._counts["requests"] += 1
        try:
            response = self._call_app(environ)
            pending = environ.pop(DEFERRED, None)
            if pending is not None:
                try:
                    async with asyncio.timeout(self.handler_timeout):
                        response = await pending
                except TimeoutError:
                    self._counts["timeouts"] += 1
                    return _plain(504, "the gateway did not finish in time", keep, head_only)
            return self._encode(*response, head_only, keep)
        except Exception:
            pending = environ.pop(DEFERRED, None)
            if pending is not None and hasattr(pending, "close"):
                pending.close()         # never started: no "coroutine was never awaited" noise
            log.exception("WSGI app failed on %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"])
            return _plain(500, "internal server error", keep, head_only)

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
