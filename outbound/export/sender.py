"""Delivery of the spool: oldest first, one session for a round, stop at the first failure (store and forward).

A failure raises alarm 6 with its reason (the English detail and a catalogue text) and waits: the wait doubles
from ``min_backoff`` to ``max_backoff`` (10 s .. 10 min) while the server keeps failing; a new file, a changed
setting or ``retry_now()`` tries again at once. A file leaves the spool only once the server has it, so while
the spool has room nothing is lost; a file resent after a power cut between the server's answer and the
spool's remove lands under the same name (the server replaces it: no second copy). The next round that
delivers clears alarm 6 (its ``delivery`` part: the service's ``site`` part is its own).
"""

import asyncio
import logging

from daemon.supervise import cancel_and_wait
from outbound.export.transports import LocalFileGone, PushError

log = logging.getLogger("gateway.push.sender")

MIN_BACKOFF_S = 10.0
MAX_BACKOFF_S = 600.0
ALARM_PART = "delivery"           # alarm 6's cause owned here (the service owns "site": EMS with site name SITE)


class Sender:
    def __init__(self, door, spool, transport, min_backoff=MIN_BACKOFF_S, max_backoff=MAX_BACKOFF_S):
        self.door = door
        self.spool = spool
        self.transport = transport
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self.failures = 0              # failed rounds in a row
        self.backoff = 0.0             # the wait before the next try (0: none)
        self.delivered = 0             # files delivered since start
        self.last_error = None         # the PushError of the last failed round
        self.last_delivery = None      # gateway time of the last file delivered, and its name
        self.last_delivered = None
        self._retry_at = 0.0           # loop time before which the background task does not try
        self._wake = asyncio.Event()
        self._round = asyncio.Lock()
        self._task = None

    # ---------------------------------------------------------------- one round

    async def deliver(self):
        """One round: send every waiting file in order until the spool is empty or the server fails; the
        number delivered. Never raises for a server's fault (it is alarm 6 and a back-off)."""
        async with self._round:
            if not self.spool.entries():
                return 0
            count = 0
            session = None
            try:
                session = await self.transport.open()
                while True:
                    waiting = self.spool.entries()
                    if not waiting:
                        break
                    entry = waiting[0]
                    try:
                        await self.transport.put(session, entry.path, entry.name)
                    except LocalFileGone:
                        # dropped to make room while it was being sent, or unreadable: never block the queue
                        await self.spool.discard(entry.id)
                        continue
                    await self.spool.remove(entry.id)
                    count += 1
                    self.delivered += 1
                    self.last_delivery, self.last_delivered = self.door.time(), entry.name
                if count and self.door.setting("push.upload_log"):
                    await self.transport.upload_log(session)
            except PushError as exc:
                self._failed(exc, count)
                return count
            finally:
                if session is not None:
                    await self.transport.close(session)
            self._succeeded(count)
            return count

    def _failed(self, exc, count):
        self.failures += 1
        self.last_error = exc
        self.backoff = min(self.max_backoff, self.min_backoff * 2 ** min(self.failures - 1, 30))
        self._retry_at = asyncio.get_running_loop().time() + self.backoff
        log.warning("export: %s (%d delivered this round, %d waiting; next try in %.0f s)", exc, count,
                    self.spool.count(), self.backoff)
        self.door.report_alarm(True, str(exc), text=exc.text(), part=ALARM_PART)

    def _succeeded(self, count):
        if count:
            log.info("export: %d file(s) delivered", count)
        self.failures = 0
        self.backoff = 0.0
        self.last_error = None
        self._retry_at = 0.0
        if self.door.alarm_active(part=ALARM_PART) is not None:
            self.door.report_alarm(False, part=ALARM_PART)

    # ---------------------------------------------------------------- the background task

    def wake(self):
        """Something to send (a new file, a changed setting): the task tries now unless it is backing off."""
        self._wake.set()

    def retry_now(self):
        """Try at once even while backing off (the page's button, a test)."""
        self._retry_at = 0.0
        self._wake.set()

    def start(self):
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="push-sender")

    async def stop(self):
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self):
        loop = asyncio.get_running_loop()
        while True:
            wait = max(0.0, self._retry_at - loop.time())
            if wait == 0.0 and not self.spool.entries():
                wait = None                                   # nothing to send: sleep until woken
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), wait)
            except TimeoutError:
                pass
            if loop.time() < self._retry_at:                  # woken by a new file while backing off
                continue
            try:
                await self.deliver()
            except Exception:                                 # a bug must not end deliveries for good
                log.exception("export: delivery round failed")
                self._failed(PushError("push.transfer.internal", "the export failed (see the log)"), 0)

    def status(self):
        """The delivery's part of the push service's ``status()`` (webconfig/outbound_pages.py STATUS_ROWS)."""
        loop = asyncio.get_running_loop()
        waiting = max(0.0, self._retry_at - loop.time())
        return {"spool_files": self.spool.count(), "spool_bytes": self.spool.used_bytes(),
                "spool_max_bytes": self.spool.max_bytes, "dropped": self.spool.dropped,
                "last_delivery": self.last_delivery, "last_delivered": self.last_delivered,
                "last_error": str(self.last_error) if self.last_error else None,
                "next_retry": self.door.time() + waiting if self.failures and waiting else None,
                "delivered": self.delivered, "failures": self.failures}
