"""The Monitor page's live values: a long-poll of the JSON document through the door (issue 17).

Why a long-poll and not server-sent events: the web server answers one request at a time per connection
and an async handler's answer is written once, whole (webconfig/server.py, the deferred seam); an event
stream would need a second kind of answer there and per-stream send buffers, while a long-poll is an
ordinary deferred request that the server already bounds (connections per client and in all, the handler's
timeout, the loop's share). The page asks ``GET /api/monitor/<address>?load=L&since=V``; the answer waits
until the poller stores a new batch for that device and load (``door.on_values``), at most ``WAIT_S``, then
carries the whole document (webconfig/monitor_view.py) and its version.

Bounded: a waiter is one future and the (address, load) it waits for, nothing is queued per browser (the
answer is built from the cache when it leaves, so a slow browser only gets fresher values); at most
``MAX_WAITERS`` wait at once, past them a request is refused at once (the page retries a little later); a
gone browser's waiter ends with its timeout. The listener the pollers call per batch is O(waiters of that
device): a counter and a dictionary look-up when nobody watches.
"""

import asyncio

MAX_WAITERS = 32            # browsers (or scripts) waiting at once, all devices together
WAIT_S = 5.0                # longest wait without a new batch: then the answer says the values' ages anyway


class Full(Exception):
    """MAX_WAITERS already wait."""


class LiveValues:
    """Versions of each (address, load) row the pollers store, and the long-poll waiters woken by them."""

    def __init__(self, door, max_waiters=MAX_WAITERS, wait_s=WAIT_S):
        self.max_waiters, self.wait_s = max_waiters, wait_s
        self._versions = {}          # (address, load) -> batches stored
        self._waiting = {}           # address -> {future: load}
        self.waiters = 0
        self.woken = 0               # answers sent because a batch arrived (the bench counts them)
        door.on_values(self._stored)

    def version(self, address, load):
        """The document's version: the batches stored for the load and for the device's own values (load 0)."""
        versions = self._versions
        return versions.get((address, load), 0) + (versions.get((address, 0), 0) if load else 0)

    def _stored(self, address, load, _values, _ts):
        key = (address, load)
        self._versions[key] = self._versions.get(key, 0) + 1
        waiting = self._waiting.get(address)
        if not waiting:
            return
        for future, wanted in list(waiting.items()):
            if (wanted == load or load == 0) and not future.done():
                future.set_result(None)
                del waiting[future]
                self.woken += 1

    async def wait(self, address, load, since):
        """Return once the row's version differs from ``since`` or after ``wait_s``; Full past the cap."""
        if since is None or since != self.version(address, load):
            return
        if self.waiters >= self.max_waiters:
            raise Full()
        future = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(address, {})
        waiting[future] = load
        self.waiters += 1
        try:
            await asyncio.wait_for(future, self.wait_s)
        except asyncio.TimeoutError:
            pass
        finally:
            self.waiters -= 1
            waiting.pop(future, None)
            if not waiting and self._waiting.get(address) is waiting:
                del self._waiting[address]
