"""System alarms (SPEC §6) and the fixed-size event log.

An alarm is active while at least one of its *sources* reports its condition
(alarm 3: each silent device is a source). Raising and clearing are
functions of state: reporting the same condition twice writes nothing, and
after a restart the alarms still open in the event log are restored as
*unconfirmed*; a source that reports the condition again confirms it without
a new "raised" event, and ``reconcile()`` clears those nobody confirmed. So a
restart neither duplicates nor loses an alarm.

The event log is a ring: an alarm active for longer than the ring takes to
wrap would lose its "raised" record. The writer keeps the active set
recoverable: before a write, an active alarm whose *stating* record (its
"raised", or its latest "still_active" restatement) is the next or the
one-after-next to be overwritten is re-recorded as "still_active" (its
original ``since``, detail and acknowledgement) at the head. A write thus
only ever overwrites a slot the active set no longer needs, so even a write
torn by a power cut cannot take an active alarm with it.
"""

import asyncio
import logging

from daemon.blocking import run_blocking
from daemon.state.ringlog import RingLog

log = logging.getLogger("gateway.alarms")

SYSTEM_ALARMS = {
    1: ("e-mail transmission error", "non-critical"),
    2: ("SNTP synchronisation error", "non-critical"),
    3: ("Modbus slave timeout", "critical"),
    4: ("Modbus address conflict", "critical"),
    5: ("product damaged", "critical"),
    6: ("FTP export error", "non-critical"),
    7: ("cyber security alert", "critical"),
    8: ("password alarm", "information"),
}


# Records that state an alarm is active: its start, and the re-recording that keeps it in the ring.
STATING = ("raised", "still_active")
_RESTATED_FIELDS = ("alarm", "name", "source", "criticality", "detail", "category")


def device_source(bus, address, load=None):
    """How alarms name a device ("digiware:5") or one of its loads ("digiware:5:1")."""
    return "%s:%d" % (bus, address) if load is None else "%s:%d:%d" % (bus, address, load)


class Alarms:
    def __init__(self, clock, path=None, capacity=2000):
        self.clock = clock
        self.log = RingLog(path, capacity) if path else None
        self._memory_log = []
        self.capacity = capacity
        self.active = {}          # (number, source) -> {"since": ts, "detail": str, "confirmed": bool}
        self._listeners = []
        self._pending = []        # records waiting to be written, in order
        self._writer = None
        self._written = None      # the last record the writer appended to the ring (events(): not shown twice)
        # (number, source) -> seq of the ring record that states the alarm (writer side only)
        self._stating = {}
        self.restated = 0         # "still_active" records written to keep the active set in the ring
        self._crowded = False
        if self.log is not None:
            self._restore()

    def _restore(self):
        for record in self.log.records():
            key = (record.get("alarm"), record.get("source"))
            event = record.get("event")
            if event in STATING and key[0] in SYSTEM_ALARMS:
                self.active[key] = {"since": record.get("since", record.get("ts")),
                                    "detail": record.get("detail", ""), "confirmed": False}
                if record.get("acknowledged"):
                    self.active[key]["acknowledged"] = record["acknowledged"]
                self._stating[key] = record["seq"]
            elif event == "cleared":
                self.active.pop(key, None)
                self._stating.pop(key, None)
            elif event == "acknowledged" and key in self.active:
                self.active[key]["acknowledged"] = {"by": record.get("by"), "ts": record.get("ts")}

    def on_event(self, listener):
        """``listener(record)`` for every raised/cleared event (traps, mails, LEDs)."""
        self._listeners.append(listener)

    def set(self, number, source, active, detail="", text=None):
        """Report the state of alarm ``number`` for ``source``; idempotent. ``text``: the detail as a catalogue
        key and its parameters ({"key", "params"}), so a page can say it in its reader's language (``detail``,
        English, stays what logs, traps and the event log carry)."""
        if number not in SYSTEM_ALARMS:
            raise ValueError("no system alarm %r" % number)
        key = (number, str(source))
        current = self.active.get(key)
        if active:
            if current is None:
                self.active[key] = {"since": self.clock.time(), "detail": detail, "confirmed": True}
                self._event("raised", key, detail)
                current = self.active[key]
            else:
                current["confirmed"] = True
                if detail:
                    current["detail"] = detail      # what it says follows the cause (which profiles, which date)
            if text is not None:
                current["text"] = text
        elif current is not None:
            del self.active[key]
            self._event("cleared", key, detail or current.get("detail", ""))

    def acknowledge(self, number, source, by):
        """Mark an active alarm as seen by ``by``; False when it is not active (nothing written)."""
        state = self.active.get((number, str(source)))
        if state is None:
            return False
        if state.get("acknowledged") is None:
            state["acknowledged"] = {"by": by, "ts": self.clock.time()}
            self._event("acknowledged", (number, str(source)), state.get("detail", ""), by=by)
        return True

    def reconcile(self):
        """Clear restored alarms nobody confirmed since the restart."""
        for key, state in list(self.active.items()):
            if not state["confirmed"]:
                self.set(key[0], key[1], False, "not confirmed after restart")

    def record_event(self, record):
        """An event that is not one of the 8 system alarms (storage write error, recovery).

        Its ``event`` is never "raised"/"cleared", so restoring alarms from the
        log cannot mistake it for one.
        """
        record = dict(record)
        if record.get("ts") is None:
            record["ts"] = self.clock.time()
        self._append(record)

    def _append(self, record):
        if self.log is not None:
            self._pending.append(record)
            self._kick_writer()
        else:                      # no file (tools, unit tests): a bounded list stands in for it
            self._memory_log.append(record)
            if len(self._memory_log) > self.capacity:
                del self._memory_log[0]
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception:      # a listener's fault must not lose the record for the others
                log.exception("event listener failed on %r", record.get("event"))

    def _event(self, event, key, detail, **extra):
        number, source = key
        name, criticality = SYSTEM_ALARMS[number]
        record = {"ts": self.clock.time(), "event": event, "alarm": number, "name": name,
                  "source": source, "criticality": criticality, "detail": detail,
                  "category": "system"}
        record.update(extra)
        log.log(logging.WARNING if event == "raised" else logging.INFO,
                "system alarm %d (%s) %s for %s %s", number, name, event, source, detail)
        self._append(record)

    def _kick_writer(self):
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:   # no loop (tools, unit tests): write now
            while self._pending:
                self._write(self._pending.pop(0))
            return
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write_pending(), name="eventlog-writer")

    async def _write_pending(self):
        while self._pending:
            record = self._pending[0]
            try:
                await run_blocking(self._write, record)
            except Exception:   # disk trouble: keep the record in memory, retry later
                log.exception("event log write failed")
                await asyncio.sleep(1)
                continue
            self._pending.pop(0)

    # ------------------------------------------------------------ the writer (blocking: executor or no loop)

    def _write(self, record):
        """Append ``record``, first re-recording active alarms the ring is about to overwrite."""
        self._keep_active()
        seq = self.log.append(record)
        self._written = record
        key = (record.get("alarm"), record.get("source"))
        if record.get("event") == "raised":
            self._stating[key] = seq
        elif record.get("event") == "cleared":
            self._stating.pop(key, None)
        return seq

    def _needed(self, seq):
        """Ring record ``seq`` if it is the only record stating an alarm still active, else None."""
        if seq < 1:
            return None
        record = self.log.record(seq)
        if record is None or record.get("event") not in STATING:
            return None
        key = (record.get("alarm"), record.get("source"))
        # self.active is the loop's (ahead of the ring: an alarm cleared there has its
        # "cleared" record queued behind this write, so its "raised" may go)
        if self._stating.get(key) != seq or key not in self.active:
            return None
        return record

    def _keep_active(self):
        ring = self.log
        if len(self._stating) * 2 > ring.capacity:
            if not self._crowded:
                log.error("%d active alarms in an event log of %d records: the oldest may be lost at a restart",
                          len(self._stating), ring.capacity)
                self._crowded = True
            return
        self._crowded = False
        for _ in range(len(self._stating) + 1):
            # the record the next write overwrites (only after an upgrade can it be needed),
            # then the one after: restated now, into a slot nothing needs
            for seq in (ring.next_seq - ring.capacity, ring.next_seq + 1 - ring.capacity):
                victim = self._needed(seq)
                if victim is not None:
                    break
            else:
                return
            self._restate(victim)

    def _restate(self, victim):
        key = (victim.get("alarm"), victim.get("source"))
        since = victim.get("since", victim.get("ts"))
        record = dict((k, victim[k]) for k in _RESTATED_FIELDS if k in victim)
        record.update(event="still_active", ts=self.clock.time(), since=since)
        state = self.active.get(key)
        acknowledged = state.get("acknowledged") if state is not None and state.get("since") == since else None
        acknowledged = acknowledged or victim.get("acknowledged")
        if acknowledged:
            record["acknowledged"] = dict(acknowledged)
        self._stating[key] = self.log.append(record)
        self.restated += 1

    async def flush(self):
        if self._writer is not None:
            # shielded: a caller cancelled while it waits must not cancel the shared writer mid-record
            await asyncio.shield(self._writer)

    def active_list(self):
        """Active system alarms grouped by number, for status pages and protocols."""
        out = {}
        for (number, source), state in sorted(self.active.items()):
            entry = out.setdefault(number, {"alarm": number, "name": SYSTEM_ALARMS[number][0],
                                            "criticality": SYSTEM_ALARMS[number][1], "sources": []})
            entry["sources"].append({"source": source, "since": state["since"], "detail": state["detail"],
                                     "confirmed": state["confirmed"],
                                     "acknowledged": state.get("acknowledged"),
                                     **({"text": state["text"]} if state.get("text") else {})})
        return [out[n] for n in sorted(out)]

    def bitfield(self):
        """Bit n-1 set while system alarm n is active (gateway's own Modbus table)."""
        bits = 0
        for number, _source in self.active:
            bits |= 1 << (number - 1)
        return bits

    def events(self):
        if self.log is not None:
            # The head of the queue may be in the ring already: the executor wrote it, and the loop has not
            # yet taken it off the queue (it does once the write's future is back). It is not shown twice.
            pending = self._pending
            if pending and pending[0] is self._written:
                pending = pending[1:]
            return self.log.records() + [dict(r, pending=True) for r in pending]
        return list(self._memory_log)
