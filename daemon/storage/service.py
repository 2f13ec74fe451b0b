"""The time-series store as a daemon service: opened at start, every call off the loop.

``daemon/storage/store.py`` is the (blocking) store; this wraps it for the event
loop: file I/O through ``daemon.blocking.run_blocking``, a status that never
waits for the store, write errors turned into events.
"""

import logging

from daemon.blocking import BlockingQueueFull, run_blocking
from daemon.storage import format as fmt
from daemon.storage.store import Q_VALID, TimeSeriesStore, geometry_from_settings

log = logging.getLogger("gateway.tsdb")


class Storage:
    """The store as a daemon service: opened at start, every call off the loop.

    A write error (disk full, I/O error) is counted, logged and reported as
    an event (``on_event(record)``) once per streak; the daemon keeps
    running and the points wait in memory for the next commit.
    """

    name = "storage"

    def __init__(self, directory, settings=None, clock=None, on_event=None, geometry=None):
        self.directory = directory
        self.settings = settings
        self.clock = clock
        self.on_event = on_event
        self.geometry = geometry
        self.store = None
        self.error = None
        self._failing = False
        self._written = []              # (series, period, ts, value, quality, index) added since the last commit
        self._listeners = []            # on_written (issue 18: the MQTT publisher's history)

    async def start(self):
        geometry = self.geometry or geometry_from_settings(self.settings)
        try:
            self.store = await run_blocking(TimeSeriesStore, self.directory, geometry, self.clock)
        except (OSError, fmt.FormatError) as exc:
            self.error = "%s: %s" % (type(exc).__name__, exc)
            log.error("time-series store unavailable: %s", self.error)
            self._event("unavailable", "time-series store unavailable", self.error, "critical")
            return
        recovery = self.store.recovery
        if not recovery["clean_shutdown"]:
            self._event("unclean_shutdown", "time-series store recovered after an unclean shutdown",
                        "last complete commit at %s; %d torn record(s); %d corrupt chunk(s) rebuilt"
                        % (recovery["last_commit"], recovery["torn_records"], recovery["bad_chunks"]),
                        "non-critical")

    async def stop(self):
        if self.store is not None:
            try:
                await run_blocking(self.store.close)
            except OSError as exc:
                log.error("closing the time-series store: %s", exc)

    @property
    def ready(self):
        return self.store is not None

    def add(self, series, ts, value, quality=Q_VALID, index=None):
        if self.store is not None:
            self.store.add(series, ts, value, quality, index)
            if self._listeners:
                self._written.append((series.name, series.period, ts, value, quality, index))

    def on_written(self, listener):
        """``listener(points)`` after each commit that wrote points: [(series name, period, ts, value, quality,
        index)] in the order added (what a failed commit kept waits for the next one)."""
        self._listeners.append(listener)

    async def commit(self):
        """Write what was added; False (and an event) if the disk refused."""
        if self.store is None:
            return False
        written, self._written = self._written, []      # what this commit writes (more may come meanwhile)
        try:
            await run_blocking(self.store.commit)
        except BlockingQueueFull:
            self._written[:0] = written
            return False                   # busy: the points stay queued for the next commit
        except OSError as exc:
            self._written[:0] = written
            if not self._failing:
                self._failing = True
                self._event("write_error", "time-series store write error", "%s" % exc, "critical")
            log.error("time-series commit failed: %s", exc)
            return False
        if self._failing:
            self._failing = False
            self._event("write_recovered", "time-series store writes again", "", "information")
        for listener in self._listeners if written else ():
            try:
                listener(written)
            except Exception:              # a listener's bug must not fail the store's commit
                log.exception("a listener of the written points failed")
        return True

    async def query(self, names, start, end, step=None, utc_offset_s=0):
        return await run_blocking(self.store.query, list(names), start, end, step, utc_offset_s)

    async def newest(self, name):
        return await run_blocking(self.store.newest, name)

    async def last_index(self, name):
        return await run_blocking(self.store.last_index, name)

    async def snapshot(self, destination):
        return await run_blocking(self.store.snapshot, destination)

    def status(self):
        """For the status endpoint: never waits for the store (runs on the loop)."""
        if self.store is None:
            return {"available": False, "error": self.error}
        out = dict(self.store.last_status)
        out["available"] = True
        out["queued_points"] = self.store.pending_points()
        return out

    def _event(self, event, name, detail, criticality):
        """Not one of the 8 system alarms: own event names, so an event log that
        restores alarms from "raised"/"cleared" records never mistakes them."""
        record = {"ts": self.clock.time() if self.clock else None, "event": event, "name": name,
                  "source": "storage", "criticality": criticality, "detail": detail, "category": "system"}
        if self.on_event is not None:
            try:
                self.on_event(record)
            except Exception:   # a listener must not break storage
                log.exception("storage event listener")

