"""Streamed uploads: a request body larger than the server's 1 MiB limit, written to a spool file as it arrives.

A full backup or an upgrade package is tens of MB; the HTTP server holds
every other body in memory, bounded at 1 MiB. A route named here instead has
its body written to ``<state>/spool/`` while it is read (at most SPOOL_CHUNK
bytes in memory, each write in the executor), bounded by the route's own
maximum, and the handler finds the file under ``environ[UPLOAD]``; the server
removes it once the answer is made.

The caller is admitted *before* one byte of the body is read: the session
cookie, the CSRF token, the Origin and the route's right (the door's table),
so nobody without the right can fill the disk or hold the spool. At most
MAX_SPOOLING uploads run at once. Refusals are the server's own (plain text,
connection closed): 401/403 for the caller, 413 over the maximum, 503 when busy.
"""

import asyncio
import itertools
import logging
import os
import re
import shutil
from urllib.parse import urlsplit

from daemon import api
from daemon.blocking import BlockingQueueFull, run_blocking
from webconfig.auth import CSRF_HEADER, SESSION_COOKIE
from webconfig.server import HttpError

log = logging.getLogger("gateway.http")

SPOOL_CHUNK = 1 << 20               # bytes gathered in memory before each write
MAX_SPOOLING = 2                    # uploads received at once
_COOKIE = re.compile(r"(?:^|;)\s*%s=([A-Za-z0-9_-]{1,128})\s*(?:;|$)" % SESSION_COOKIE)


class Spooled:
    """An uploaded body on disk: its path and size."""
    __slots__ = ("path", "size")

    def __init__(self, path, size):
        self.path, self.size = path, size


def _open_spool(folder, name):
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return os.open(os.path.join(folder, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def _write(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _discard(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Uploads:
    """The streamed routes of the application: ``routes`` maps (method, path) to (command, most bytes)."""

    def __init__(self, door, routes):
        self.door = door                   # bound to User: sessions and rights are looked up through it
        self.routes = dict(routes)
        self.folder = door.spool_dir()
        self.spooling = 0
        self.abandoned = 0                 # uploads whose client went away before the end of the body
        self._names = itertools.count(1)
        shutil.rmtree(self.folder, ignore_errors=True)      # what a stopped daemon left half received

    def admit(self, method, path, headers, peer):
        """None for a route whose body is read as usual, else its maximum in bytes; HttpError to refuse."""
        route = self.routes.get((method, path))
        if route is None:
            return None
        command, most = route
        source = headers.get("origin") or headers.get("referer")
        if source and (source == "null" or urlsplit(source).netloc.lower() != headers.get("host", "").lower()):
            raise HttpError(403, "cross-site request refused")
        found = _COOKIE.search(headers.get("cookie", ""))
        sid = found.group(1) if found else None
        if sid is None or self.door.session(sid) is None:
            raise HttpError(401, "not logged in, or the session ended")
        if not self.door.csrf_ok(sid, headers.get(CSRF_HEADER.lower())):
            raise HttpError(403, "missing or wrong CSRF token")
        try:
            self.door.as_caller(self.door.session_caller(sid, peer)).check(command)
        except api.Refused as exc:
            raise HttpError(403, str(exc)) from None
        if self.spooling >= MAX_SPOOLING:
            raise HttpError(503, "other uploads are being received, try again")
        return most

    async def receive(self, reader, length, timeout):
        """Read ``length`` body bytes into a new spool file; the Spooled file, or None if the client went away.
        HttpError 408 when the client stalls past ``timeout`` between reads."""
        self.spooling += 1
        name = "upload-%d-%d" % (os.getpid(), next(self._names))
        path, fd = os.path.join(self.folder, name), None       # set first: a cancelled open leaves no file behind
        try:
            fd = await run_blocking(_open_spool, self.folder, name)
            left = length
            while left:
                pending = bytearray()
                while left and len(pending) < SPOOL_CHUNK:
                    async with asyncio.timeout(timeout):
                        chunk = await reader.read(min(left, SPOOL_CHUNK - len(pending), 65536))
                    if not chunk:
                        raise asyncio.IncompleteReadError(bytes(pending), left)
                    pending += chunk
                    left -= len(chunk)
                await run_blocking(_write, fd, bytes(pending))
            os.close(fd)
            fd = None
            spooled, path = Spooled(path, length), None
            return spooled
        except TimeoutError:
            raise HttpError(408, "request body not received in time") from None
        except BlockingQueueFull:
            raise HttpError(503, "the gateway is busy, try again") from None
        except asyncio.IncompleteReadError:
            self.abandoned += 1
            return None
        finally:
            self.spooling -= 1
            if fd is not None:
                os.close(fd)
            if path is not None:
                _discard(path)

    def discard(self, spooled):
        if spooled is not None:
            _discard(spooled.path)
