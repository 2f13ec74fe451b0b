"""The gateway's own clients: exports, e-mail, SNTP (issue 16) and the MQTT publisher (issue 18).

One part of the door (daemon/api.py composes ``Door`` from these mixins; docs/architecture.md, "The door")."""

import logging

from daemon.blocking import BlockingQueueFull, run_blocking
from daemon.door.base import BUSY, UNSUPPORTED, OFF, Refused
from daemon.runtime import clocks, curves
from daemon.security import rights
from daemon.storage.format import quality_name

log = logging.getLogger("gateway.api")


class OutboundPart:
    """Mixed into ``daemon.api.Door``: reads ``self._gw``, checks rights with ``self._check``."""

    # ================================================================ issue 16: the outbound clients' bookkeeping
    # Exports (push), e-mail reports (mail) and the SNTP client (sntp) call out instead of answering; each
    # owns one system alarm and writes its own events. Their data and clock commands follow in their sections.

    def report_alarm(self, active, detail="", text=None, part=None):
        """Raise or clear the system alarm this outbound client owns (push 6, mail 1, sntp 2; SPEC §6).
        ``text``: the detail as a catalogue key and parameters, so a French page says it in French. ``part``
        names one of several causes (push: "delivery", "site"), each raised and cleared on its own."""
        self._check("report_alarm")
        number = rights.ALARM_OWNERS[self.caller.protocol]
        self._gw.alarms.set(number, self._alarm_source(part), active, detail, text)

    def _alarm_source(self, part=None):
        return self.caller.protocol if part is None else "%s:%s" % (self.caller.protocol, part)

    def alarm_active(self, part=None):
        """The active state dict of this outbound client's own alarm (or of one ``part`` of it), or None."""
        number = rights.ALARM_OWNERS.get(self.caller.protocol)
        return self._gw.alarms.active.get((number, self._alarm_source(part))) if number else None

    def local_offset_s(self):
        """Seconds local time is ahead of UTC: the time zone plus an hour in daylight saving (time.*)."""
        get = self._gw.settings.get
        return (get("time.utc_offset_min") + (60 if get("time.dst") else 0)) * 60

    def _outbound(self, name):
        """The running outbound service ``name`` (push, mail, sntp) for a button of its page, else Refused(OFF)."""
        service = self._gw.outbound(name)
        if service is None or not service.enabled():
            raise Refused(OFF, "%s is switched off" % {"push": "the data push", "mail": "e-mail",
                                                       "sntp": "SNTP"}[name])
        return service

    def outbound_status(self, name):
        """{name, enabled, alarms: [state dicts of its alarm's causes], state: the service's own ``status()``}
        of one outbound client (push, mail, sntp), for its settings page."""
        number = rights.ALARM_OWNERS[name]
        service = self._gw.outbound(name)
        alarms = [dict(state) for (alarm, source), state in self._gw.alarms.active.items()
                  if alarm == number and (source == name or source.startswith(name + ":"))]
        return {"name": name, "enabled": bool(service is not None and service.enabled()), "alarms": alarms,
                "state": service.status() if service is not None else {}}

    def record_event(self, event, detail, criticality="information", **fields):
        """One event of this outbound client in the event log (a spool file dropped, a clock set)."""
        self._check("report_alarm")
        record = dict(fields)
        record.update({"event": event, "name": event.replace("-", " "), "category": "system",
                       "source": self.caller.protocol, "criticality": criticality, "detail": detail})
        self._gw.alarms.record_event(record)

    # ================================================================ issue 16: export formats and collector
    # The exports read the stored curves (daemon/storage) through these two queries only: which series exist,
    # and their rows streamed into a file off the loop (outbound/export/collect.py).

    async def series_catalogue(self):
        """Every stored curve as a dict: name, kind ("consumption", "load_curve", "history"), device (its uid),
        load, key, period_s, counter, first and newest (start times of the oldest and newest points held)."""
        self._check("read_series")
        storage = self._gw.storage
        if storage is None or not storage.ready:
            return []
        out = []
        for name, info in sorted((await run_blocking(storage.store.series)).items()):
            try:
                kind, device, load, key = curves.parse_series_name(name)
            except ValueError:
                continue                                   # not a curve of ours (a tool's series)
            out.append(dict(info, name=name, kind=kind, device=device, load=load, key=key))
        return out

    async def render_series(self, names, start, end, render, indexes=False, newest_first=True):
        """``render(read)`` in the executor, where ``read(subset=None)`` streams the rows of ``names`` (or of
        the subset) with start times in [start, end): (ts, [(value, quality name) or None per series]); see
        TimeSeriesStore.export for ``indexes`` and ``newest_first``. Returns what ``render`` returns.
        Memory stays bounded whatever the range: rows are read chunk by chunk while ``render`` writes them."""
        self._check("read_series")
        storage = self._gw.storage
        if storage is None or not storage.ready:
            raise Refused(UNSUPPORTED, "the time-series store is not available")
        store, names = storage.store, list(names)

        def read(subset=None):
            return store.export(names if subset is None else list(subset), start, end, indexes, newest_first)
        return await run_blocking(render, read)

    # ================================================================ issue 16: export transports (spool, FTP/HTTP)

    async def test_push(self):
        """The data-push page's *Test connection* button: a small file uploaded to the configured server;
        {"ok", "answer" (the server's last reply or the error), "file", "text"}. Refused(OFF) when push is off."""
        self._check("test_push")
        return await self._outbound("push").test_connection()

    async def event_log_file(self):
        """(file name, bytes) of the event log as the Diagnosis page's syslog file, rendered off the loop: the
        exports' optional log upload (push.upload_log)."""
        self._check("report_alarm")
        records = self._gw.alarms.events()
        return await run_blocking(self._gw.event_log_file, records)

    # ================================================================ issue 16: SNTP and the meters' clocks
    # The SNTP client (outbound/sntp) sets the gateway's clock, then has the gateway write its time to the meters
    # (daemon/runtime/clocks.py); the SNTP page's button asks the running client for a synchronisation now.

    def sync_clock(self, unix_time):
        """Set the gateway's clock from an SNTP answer (the board's ``set_system_time``, as ``set_time``); returns
        the step, new - old, in seconds. Refused(UNSUPPORTED) when the board cannot. The event (a step beyond a
        second) is the client's to record: a synchronisation every hour must not fill the log with "clock_set"."""
        self._check("sync_clock")
        old = self._gw.clock.time()
        try:
            self._gw.set_time(unix_time)
        except (OSError, NotImplementedError, ValueError, OverflowError) as exc:
            raise Refused(UNSUPPORTED, "the clock could not be set: %s" % exc) from None
        return unix_time - old

    async def set_meter_clocks(self):
        """Write the gateway's time to every meter that has a clock (bus engine, CURVE priority). Returns
        {"set", "failed", "without_clock"}: lists of devices (bus, address, reference, name, uid; a failure adds
        "reason": no_answer, refused with "exception", busy). Failures are one event in the log, naming them."""
        self._check("set_meter_clocks")
        outcome = await clocks.set_meter_clocks(self._gw.parts)
        failed = outcome["failed"]
        if failed:
            self.record_event("meter-clocks-not-set", "%d of %d meters' clocks not set: %s" % (
                len(failed), len(failed) + len(outcome["set"]),
                ", ".join("%s (%s)" % (e["name"], e["reason"] if "exception" not in e else
                                       "exception %d" % e["exception"]) for e in failed)),
                "non-critical", devices=[dict(e) for e in failed])
        return outcome

    async def sync_time_now(self):
        """The SNTP page's *Synchronise now* button: {"ok": True, "offset", "delay", "server", "stratum", ...}
        or {"ok": False, "code", "message", "server", "retry_in_s"}; Refused(OFF) when SNTP is switched off."""
        self._check("sync_time_now")
        outcome = dict(await self._outbound("sntp").sync_now())
        if outcome.get("ok"):        # what the page shows as the server's answer
            outcome.setdefault("answer", "%s, stratum %s, clock corrected by %+.3f s" % (
                outcome.get("server"), outcome.get("stratum"), outcome.get("offset") or 0.0))
        else:
            outcome.setdefault("answer", outcome.get("message") or outcome.get("code") or "")
        return outcome

    # ================================================================ issue 16: mail

    async def send_test_email(self):
        """Send a short test mail now, whatever the reports' throttle (the e-mail page's *Send test e-mail*
        button): {"ok": True, "code", "answer", "refused"} with the server's answer, or {"ok": False, "key",
        "params", "message"} saying why (a catalogue key: mail.error.*). Refused(OFF) while e-mail is off."""
        self._check("send_test_email")
        service = self._outbound("mail")
        try:
            return await service.send_test()
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None

    # ================================================================ issue 18: the MQTT publisher
    # The publisher (outbound/mqtt) reads values as every front end does (devices, reading, on_values, device_link);
    # these add what only it needs: the logged-curve points as they are written, and its settings' own rules.

    def on_curve_points(self, listener):
        """``listener(points)`` after each commit of the time-series store that wrote curve points: a list of
        {kind, device (uid), load, key, ts (interval start, s), period_s, value, quality (name), index (a
        counter's index at the interval's end, else None)}, in the order written."""
        self._check("watch_curve_points")
        storage = self._gw.storage

        def written(points):
            out = []
            for name, period, ts, value, quality, index in points:
                try:
                    kind, device, load, key = curves.parse_series_name(name)
                except ValueError:
                    continue
                out.append({"kind": kind, "device": device, "load": load, "key": key, "ts": ts, "period_s": period,
                            "value": value, "quality": quality_name(quality), "index": index})
            if out:
                listener(out)
        if storage is not None:
            storage.on_written(written)

    def check_settings_with(self, check):
        """``check(proposed)`` before every settings change (``proposed``: every setting after it); it raises
        daemon.state.settings.SettingError naming the refused fields (a front end's rules over its settings)."""
        self._check("check_own_settings")
        self._gw.settings.add_check(check)
