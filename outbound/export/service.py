"""The export service (SPEC §5): on each data type's schedule, one file per device into the spool, then delivered.

The pieces, each with one job: ``schedule`` says when a data type is due, the ``Collector`` renders the files
covering exactly the points not yet exported, the ``Spool`` keeps them across power cuts, the ``Sender``
delivers them in order with back-off and alarm 6, the ``Transport`` speaks FTP/FTPS/HTTP(S).

Order of a due export, so that a power cut at any instant loses nothing and sends nothing twice: render
(temporary files) -> spool (each file fsynced and renamed in) -> the collector's cursors committed -> the
sender woken. A cut after the spool and before the commit is mended at the next start by
``Collector.reconcile`` over what the spool still holds.

EMS with the site name still ``SITE`` (SPEC §5) raises alarm 6 (cause "site") as soon as it is configured so,
and nothing is exported until the site is named; delivery failures are the alarm's other cause ("push",
raised and cleared by the sender).

When each data type last ran is kept in a small state file, so a restart does not export early, and an
export missed while the gateway was off runs at once (it covers everything since the last one).
"""

import asyncio
import logging
import os
import shutil

from daemon.atomicfile import read_json, write_json
from daemon.blocking import run_blocking
from daemon.security.policy import service_enabled
from daemon.supervise import Supervised
from outbound.export.collect import DATA_TYPES, DEFAULT_SITE, Collector, SiteNotNamed
from outbound.export.schedule import Rule, next_due
from outbound.export.sender import Sender
from outbound.export.spool import open_spool
from outbound.export.transports import Transport

log = logging.getLogger("gateway.push")

CHECK_S = 5.0                       # how often the schedule is looked at
STATE_FILE = "export-schedule.json"
RENDER_DIR = "export-render"        # the collector's temporary files (same file system as the spool)
SITE = "site"                       # alarm 6's cause "EMS with site SITE"


class ExportService:
    """Scheduled exports through the door of caller "push". ``cycle(now)`` does whatever is due (tests call it
    after moving a ManualClock); the background task calls it every CHECK_S seconds."""

    name = "push"

    def __init__(self, door, schedule_loop=True):
        self.door = door
        self.schedule_loop = schedule_loop       # False: only ``cycle()`` calls export (a test's ManualClock)
        self.settings = door.settings_view()
        self.spool = None
        self.collector = None
        self.sender = None
        self.transport = Transport(door)
        self._last_run = {}         # data type -> clock time of its last export (persisted)
        self._next = {}             # data type -> next due time (for the page)
        self.exports = 0            # files spooled since start
        self._cycle_lock = asyncio.Lock()
        self._task = Supervised("push-schedule", self._loop)

    def enabled(self):
        return service_enabled(self.settings, "push")

    # ---------------------------------------------------------------- lifecycle

    async def start(self):
        render_dir = self.door.state_path(RENDER_DIR)
        await run_blocking(_fresh_directory, render_dir)         # what an interrupted render left
        self.spool = await open_spool(self.door)
        # the cursor file is read, and rewritten after a cut between spool and commit, off the loop
        self.collector = await run_blocking(Collector, self.door, render_dir)
        await run_blocking(self.collector.reconcile, [entry.meta for entry in self.spool.entries()])
        self.sender = Sender(self.door, self.spool, self.transport)
        self._last_run = await run_blocking(self._read_state)
        self.settings.on_change(self._setting_changed)
        self.sender.start()
        if self.schedule_loop:
            self._task.start()
        self._check_site()

    async def stop(self):
        await self._task.stop()
        if self.sender is not None:
            await self.sender.stop()

    def _setting_changed(self, name, _value):
        if name.startswith("push.") or name.startswith("policy.") or name.startswith("time."):
            self._check_site()
            if self.enabled():
                self.sender.retry_now()        # a corrected server or password is tried at once

    async def _loop(self):
        while True:
            try:
                await self.cycle()
            except Exception:                  # a bug must not end the exports for good
                log.exception("export cycle failed")
            await asyncio.sleep(CHECK_S)

    # ---------------------------------------------------------------- the schedule

    def _check_site(self):
        """Alarm 6 (cause "site") while EMS is chosen with the site name still SITE and the push is on."""
        unnamed = (self.enabled() and self.settings.get("push.format") == "ems"
                   and self.settings.get("push.site_name") == DEFAULT_SITE)
        if unnamed:
            exc = SiteNotNamed()
            self.door.report_alarm(True, str(exc), exc.text, part=SITE)
        elif self.door.alarm_active(SITE) is not None:
            self.door.report_alarm(False, part=SITE)

    async def cycle(self, now=None):
        """Export every data type that is due at ``now`` (the gateway clock's time); the files spooled."""
        if not self.enabled() or self.spool is None:
            self._next = {}
            return []
        async with self._cycle_lock:
            now = self.door.time() if now is None else now
            offset = self.door.local_offset_s()
            spooled, changed = [], False
            for data_type in DATA_TYPES:
                rule = Rule.from_settings(self.settings.get, data_type)
                if rule.mode == "off":
                    self._next.pop(data_type, None)
                    continue
                if data_type not in self._last_run:        # first sight: due from now on, nothing early
                    self._last_run[data_type] = now
                    changed = True
                due = next_due(rule, self._last_run[data_type], offset)
                self._next[data_type] = due
                if now < due:
                    continue
                files = await self.export(data_type, now)
                if files is None:                           # the site is not named: wait for it
                    continue
                spooled.extend(files)
                self._last_run[data_type] = now
                self._next[data_type] = next_due(rule, now, offset)
                changed = True
            if changed:
                await run_blocking(write_json, self.door.state_path(STATE_FILE), self._last_run)
            return spooled

    async def export(self, data_type, now):
        """Render, spool and commit one data type's files now (None when EMS waits for a site name)."""
        self._check_site()
        try:
            files = await self.collector.render(data_type, until=now, now=now)
        except SiteNotNamed:
            return None
        for exported in files:
            await self.spool.put(exported.path, exported.name, {"data_type": exported.data_type,
                                                                "device": exported.device, "start": exported.start,
                                                                "end": exported.end})
        if files:
            await self.collector.commit(files)
            self.exports += len(files)
            log.info("export: %d %s file(s) spooled", len(files), data_type)
            self.sender.wake()
        return files

    # ---------------------------------------------------------------- for the page and the door

    async def test_connection(self):
        """The page's *Test connection*: a small file uploaded now, the server's answer (Transport)."""
        return await self.transport.test_connection()

    def status(self):
        """The page's rows (webconfig/outbound_pages.py STATUS_ROWS["push"]): the delivery's, then when each
        data type is due next."""
        out = self.sender.status() if self.sender is not None else {}
        out["exported"] = self.exports
        for data_type, due in self._next.items():
            out["next." + data_type] = due
        return out

    def _read_state(self):
        try:
            data = read_json(self.door.state_path(STATE_FILE), default={})
        except ValueError:                  # a damaged file: due from now on, as on first start
            data = {}
        if not isinstance(data, dict):
            return {}
        return dict((key, float(value)) for key, value in data.items()
                    if key in DATA_TYPES and isinstance(value, (int, float)))


def _fresh_directory(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
