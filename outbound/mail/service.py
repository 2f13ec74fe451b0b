"""MailService: alarm reports by e-mail, at most one per ``notify.min_interval_min`` (SPEC §5).

It listens to the system alarms and the device alarms through its door and holds each new one at or above
``notify.min_criticality`` (outbound/mail/pending.py). ``cycle(now)`` sends one report when alarms are held and
the interval since the last accepted report has passed: alarms that arrive inside the interval go together in
the next report. A failed send (connection, TLS, authentication, 4xx/5xx, timeout, the policy's *SMTPS
mandatory*) keeps everything held, raises system alarm 1 with the reason (a catalogue key, so the pages say it
in their language) and is retried with a back-off on the gateway clock; the next accepted mail clears alarm 1.
The time of the last report and the held rows live in ``mail.json`` in the state directory, so a restart
neither loses a pending report nor sends one twice.

The service runs while ``smtp.enabled`` and the policy's ``policy.smtp`` allow it (policy.SERVICE_SWITCHES);
switched off, it holds nothing, and clears its alarm. smtplib runs in the one executor (outbound/mail/smtp.py).
"""

import asyncio
import logging

from daemon.atomicfile import read_json, write_json
from daemon.blocking import BlockingQueueFull, run_blocking
from daemon.service import SwitchedService
from daemon.state.alarms import SYSTEM_ALARMS
from daemon.supervise import Supervised
from outbound.mail import report as report_mod, smtp
from outbound.mail.pending import MAX_ROWS, Pending

log = logging.getLogger("gateway.mail")

STATE_FILE = "mail.json"
TICK_S = 1.0                 # how often the background task looks (real time; the throttle is the gateway's)
SMTP_TIMEOUT_S = 20.0        # per socket operation (connect, greeting, TLS handshake, each reply)
FIRST_BACKOFF_S = 60.0       # after a failed report, on the gateway clock; doubles up to
MAX_BACKOFF_S = 1800.0
SAVE_DELAY_S = 0.2           # events arriving together are written once
LIST_LIMIT = 20              # alarms named in each list of the summary
RECIPIENTS = ("notify.recipient1", "notify.recipient2", "notify.recipient3")


def system_row(number, source, since, detail="", text=None, acknowledged=None):
    name, criticality = SYSTEM_ALARMS[number]
    return {"category": "system", "kind": "system", "alarm": number, "name": name, "detail": detail or "",
            "text": text, "source": str(source), "product": None, "since": since, "end": None,
            "criticality": criticality, "acknowledged": acknowledged}


def device_row(alarm, product=None):
    return {"category": "device", "kind": alarm.get("kind"), "alarm": alarm.get("alarm"),
            "name": alarm.get("name") or "", "detail": alarm.get("detail") or "", "text": None,
            "source": str(alarm.get("source")), "product": product, "since": alarm.get("since"),
            "end": alarm.get("end"), "criticality": alarm.get("criticality")}


def _with_texts(rows, active):
    """A system alarm's catalogue text is set just after its "raised" event: rows still active take it now."""
    texts = dict(((row["alarm"], row["source"], row["since"]), row["text"]) for row in active
                 if row["category"] == "system" and row.get("text"))
    for row in rows:
        if row["category"] == "system" and not row.get("text"):
            row["text"] = texts.get((row["alarm"], row["source"], row["since"]))


class MailService(SwitchedService):
    name = "mail"

    def __init__(self, door, timeout=SMTP_TIMEOUT_S, max_rows=MAX_ROWS):
        SwitchedService.__init__(self, door)
        self.timeout = timeout
        self.path = door.state_path(STATE_FILE)
        try:
            self.book = Pending.from_doc(read_json(self.path, None), max_rows)
        except (OSError, ValueError) as exc:
            log.warning("mail state %s unreadable (%s): no report pending", self.path, exc)
            self.book = Pending(max_rows)
        self.sent = 0                  # reports the server accepted since start
        self.failures = 0              # failed attempts in a row
        self.next_try = 0.0            # gateway time before which a failed report is not retried
        self.last_answer = None
        self._send_lock = asyncio.Lock()
        self._save_lock = asyncio.Lock()
        self._task = None
        self._saver = None
        door.on_alarm_event(self._system_event)
        door.on_device_alarm_event(self._device_event)

    # ------------------------------------------------------------ switched on and off

    async def start(self):
        await SwitchedService.start(self)
        if not self.enabled():
            await self._forget("e-mail is switched off")

    async def _open(self):
        self._task = Supervised("mail", self._run)
        self._task.start()

    async def _close(self):
        # A report in flight may finish (bounded): cut off after the server took it, the held alarms would stay
        # and go a second time.
        try:
            async with asyncio.timeout(self.timeout + 1.0):
                await self._send_lock.acquire()
            locked = True
        except TimeoutError:
            locked = False
        try:
            task, self._task = self._task, None
            if task is not None:
                await task.stop()
        finally:
            if locked:
                self._send_lock.release()
        if not self.enabled():         # switched off (not a gateway stop): nothing held, no alarm
            await self._forget("e-mail switched off")

    async def stop(self):
        await SwitchedService.stop(self)
        if self._saver is not None:
            await self._saver            # not cancelled: its write would go on in the executor beside ours
        await self._save()

    async def _forget(self, why):
        if len(self.book):
            log.info("%s: %d held alarms dropped", why, len(self.book))
            self.book.clear()
            await self._save()
        if self.door.alarm_active() is not None:
            self.door.report_alarm(False, why)

    async def _run(self):
        while True:
            await self.cycle()
            await asyncio.sleep(TICK_S)

    # ------------------------------------------------------------ alarms in

    def _wanted(self, criticality):
        return self.enabled() and report_mod.at_least(criticality, self.settings.get("notify.min_criticality"))

    def _system_event(self, record):
        event, number = record.get("event"), record.get("alarm")
        if event not in ("raised", "cleared") or number not in SYSTEM_ALARMS:
            return                      # other event-log records (device logs, audit) are not system alarms
        if not self._wanted(SYSTEM_ALARMS[number][1]):
            return
        source = str(record.get("source"))
        if event == "raised":
            changed = self.book.add(system_row(number, source, record.get("ts"), record.get("detail")))
        else:
            changed = self.book.end("system", number, source, record.get("ts"))
        if changed:
            self._save_soon()

    def _device_event(self, alarm, state):
        if not self._wanted(alarm.get("criticality")):
            return
        if state == "raised":
            changed = self.book.add(device_row(alarm, self._product(alarm.get("address"))))
        else:
            changed = self.book.end("device", alarm.get("alarm"), str(alarm.get("source")), alarm.get("end"))
        if changed:
            self._save_soon()

    def _product(self, address):
        device = self.door.device(address) if isinstance(address, int) else None
        if device is None:
            return None
        name, reference = device.name or "", device.reference or ""
        return name if reference in name else ("%s %s" % (name, reference)).strip() or None

    # ------------------------------------------------------------ the state file

    def _save_soon(self):
        if self._saver is None or self._saver.done():
            self._saver = asyncio.get_running_loop().create_task(self._save_later(), name="mail-state")

    async def _save_later(self):
        await asyncio.sleep(SAVE_DELAY_S)
        await self._save()

    async def _save(self):
        """Write the book as it is now; one write at a time (atomic_write has one temporary file per path)."""
        async with self._save_lock:
            try:
                await run_blocking(write_json, self.path, self.book.as_doc())
            except (OSError, BlockingQueueFull) as exc:
                log.error("mail state not written: %s", exc)

    # ------------------------------------------------------------ reports out

    def _server(self):
        """(Server, sender, recipients) from the settings; MailFailure when they cannot make a mail."""
        get = self.settings.get
        if not get("smtp.secure") and get("policy.smtps_mandatory"):
            raise smtp.MailFailure("mail.error.plain_refused")
        if not get("smtp.host"):
            raise smtp.MailFailure("mail.error.no_host")
        if not get("notify.sender"):
            raise smtp.MailFailure("mail.error.no_sender")
        recipients = [get(name) for name in RECIPIENTS if get(name)]
        if not recipients:
            raise smtp.MailFailure("mail.error.no_recipient")
        mode = get("smtp.tls_mode") if get("smtp.secure") else smtp.PLAIN
        netid = self.door.identity()["netid"] or "gateway"
        server = smtp.Server(get("smtp.host"), get("smtp.port"), mode,
                             get("smtp.user") if get("smtp.auth") else None,
                             get("smtp.password") if get("smtp.auth") else None,
                             self.timeout, "m70-%s.invalid" % str(netid).lower())
        return server, get("notify.sender"), recipients

    async def _deliver(self, make_message):
        """Send the message ``make_message(sender, recipients)`` makes; the server's answer, or MailFailure."""
        server, sender, recipients = self._server()
        context = self.door.tls_client_context() if server.mode != smtp.PLAIN else None
        message = make_message(sender, recipients)
        return await run_blocking(smtp.send, message, sender, recipients, server, context)

    def _gateway(self):
        identity = self.door.identity()
        return {"name": identity["name"], "netid": identity["netid"]}

    def _clock(self):
        return report_mod.Clock(self.door.local_offset_s() // 60)        # the time zone, plus DST when on

    def _current(self):
        """(still active, awaiting acknowledgement): rows of the alarms active now at the minimum criticality."""
        minimum = self.settings.get("notify.min_criticality")
        system = [system_row(number, source, state.get("since"), state.get("detail"), state.get("text"),
                             state.get("acknowledged"))
                  for (number, source), state in sorted(self.door.system_alarm_states(), key=lambda item: item[0])
                  if number in SYSTEM_ALARMS]
        device = [device_row(alarm, self._product(alarm.get("address"))) for alarm in self.door.device_alarm_states()]
        active = [row for row in system + device if report_mod.at_least(row["criticality"], minimum)]
        awaiting = [row for row in active if row["category"] == "system" and not row.get("acknowledged")]
        return active, awaiting

    def due(self, now):
        """Whether a report may go at gateway time ``now`` (something held, interval passed, no back-off)."""
        if not len(self.book) or now < self.next_try:
            return False
        last = self.book.last_sent
        interval = 60.0 * self.settings.get("notify.min_interval_min")
        return last is None or now >= last + interval or now < last      # before it: the clock was set back

    async def cycle(self, now=None):
        """Send the held alarms as one report if one is due; "sent", "failed", "held" or "idle"."""
        async with self._send_lock:
            now = self.door.time() if now is None else now
            if not self.enabled() or not len(self.book):
                return "idle"
            if not self.due(now):
                return "held"
            batch = self.book.begin()
            outcome = "failed"
            try:
                active, awaiting = self._current()
                language = self.settings.get("notify.language")
                _with_texts(batch.rows, active)
                report = report_mod.Report(batch.rows, batch.more, batch.more_finished, active, awaiting,
                                           self._gateway(), self.settings.get("notify.min_interval_min"))
                answer = await self._deliver(lambda sender, recipients: report_mod.report_message(
                    report, sender, recipients, language, self._clock(), now, LIST_LIMIT))
                outcome = "sent"
            except smtp.MailFailure as failure:
                self._failed(failure, now)
            except BlockingQueueFull:
                log.warning("mail report waits: the executor is full")
                outcome = "held"
            finally:
                if outcome == "sent":
                    self.book.sent(batch, now)
                else:
                    self.book.failed(batch)
            if outcome == "sent":
                self._succeeded(answer, len(batch.rows) + batch.more)
            await self._save()
            return outcome

    def _failed(self, failure, now):
        backoff = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** min(self.failures, 10))
        self.failures += 1
        self.next_try = now + backoff
        self.last_error = str(failure)
        log.warning("alarm report not sent (%s): retried in %.0f s", failure, backoff)
        self.door.report_alarm(True, str(failure), failure.text())

    def _succeeded(self, answer, count):
        self.sent += 1
        self.failures, self.next_try, self.last_error = 0, 0.0, None
        self.last_answer = answer
        log.info("alarm report of %d alarms sent: %s", count, answer["answer"])
        if self.door.alarm_active() is not None:
            self.door.report_alarm(False, "a mail was accepted")

    async def send_test(self):
        """A short test mail now, whatever the throttle (the page's *Send test e-mail* button):
        {"ok": True, "code", "answer", "refused"} or {"ok": False, "key", "params", "message"}."""
        now = self.door.time()
        language = self.settings.get("notify.language")
        try:
            answer = await self._deliver(lambda sender, recipients: report_mod.trial_message(
                self._gateway(), sender, recipients, language, self._clock(), now))
        except smtp.MailFailure as failure:
            self.last_error = str(failure)
            self.door.report_alarm(True, str(failure), failure.text())
            return {"ok": False, "key": failure.key, "params": failure.params, "message": str(failure)}
        self.last_error = None
        self.failures, self.next_try = 0, 0.0          # the server is back: a held report need not wait
        if self.door.alarm_active() is not None:
            self.door.report_alarm(False, "a test mail was accepted")
        return dict(answer, ok=True)

    def status(self):
        return dict(SwitchedService.status(self), held=len(self.book.rows), more=self.book.more,
                    last_sent=self.book.last_sent, sent=self.sent, failures=self.failures,
                    next_try=self.next_try or None)
