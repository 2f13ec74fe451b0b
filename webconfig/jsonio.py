"""JSON in and out of the Bottle application, and the async seam.

Every JSON answer is built by ``reply``/``error`` (no caching, compact); a
request body is read by ``body`` (a JSON object of at most MAX_JSON_BODY
bytes, else None). ``deferred`` turns an ``async def`` handler into one the
loop's HTTP server awaits (``webconfig/server.py``, ``DEFERRED``): the handler
runs on the daemon's loop, may await the door's commands, and no thread is
spent per request. An async handler reads what it needs of the request
*before* its first ``await`` (Bottle's request object belongs to the next
request after that) and returns ``(status, data)``, or ``(status, data, headers)``
to add headers (a session cookie).
"""

import functools
import json

import bottle

from webconfig.server import DEFERRED

MAX_JSON_BODY = 4096
JSON_TYPE = "application/json"


def encode(data):
    return json.dumps(data, separators=(",", ":"))


def reply(data, status=200):
    bottle.response.status = status
    bottle.response.content_type = JSON_TYPE
    bottle.response.set_header("Cache-Control", "no-store")
    return encode(data)


def error(status, message):
    return reply({"error": message}, status)


def body():
    """The request's JSON object, or None when absent/invalid."""
    raw = bottle.request.body.read(MAX_JSON_BODY + 1)
    if not raw:
        return {}
    if len(raw) > MAX_JSON_BODY:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def deferred(handler):
    """Decorator: an ``async def`` handler returning ``(status, data)``, answered as JSON when it finishes."""
    @functools.wraps(handler)
    def start(*args, **kwargs):
        coroutine = handler(*args, **kwargs)
        bottle.request.environ[DEFERRED] = _as_wsgi(coroutine)
        return b""
    return start


async def _as_wsgi(coroutine):
    status, data, *extra = await coroutine
    payload = encode(data).encode("utf-8")
    headers = [("Content-Type", JSON_TYPE), ("Cache-Control", "no-store")] + list(extra[0] if extra else ())
    return "%d %s" % (status, bottle.HTTP_CODES.get(status, "Unknown")), headers, payload
