"""Device alarms, centralised: read from the meters' event logs, kept, announced.

SPEC §6: measurement-threshold, logical, combined alarms, power-quality
events and the devices' own alarms "are read from the devices and
centralised". Each meter that keeps a log (core/meter_events.py) is asked
every ``alarms.check_s`` seconds for its next record number (one small
read); new records are then fetched a page at a time, at the poll priority.

Every alarm has a start and an end (a 60 ms dip too: its end record gives
its duration); between them it is *active*. Starts and ends go into the
gateway's fixed-size event log with the meter's time stamp, and to the
listeners (SNMP traps, later e-mail) as ``raised`` / ``cleared``.

Nothing lost, nothing twice. Per meter (by NET ID, since addresses change)
the reader keeps a cursor: the next record number it wants, and the
*generation* of the meter's log (bumped when the meter's numbering goes
backwards: a reset or a replaced log). Records carry both into the event
log; the cursor file is written after the records it covers are there. On
restart the cursor is the larger (generation first) of the file's and the
one the event log implies, so a cut between the two writes neither repeats
nor loses a record. Records the meter overwrote before they could be read
are counted and logged as lost; a page that is not the one asked for is
refused and asked again; a record that breaks the convention is refused,
logged and skipped.

A meter seen for the first time has a *history*: the records it held at
the first look. History is read for the state it leaves (which alarms are
active) but not announced, and only its last HISTORY_LOGGED records go into
the event log (32 meters x 256 records would flush a 2000-slot log); when
the reader reaches the end of the history, the alarms still active are
logged (if their start was not) and announced.
"""

import asyncio
import logging

from core import catalogue, meter_events as ev, modbus_rtu as rtu
from daemon.atomicfile import read_json, write_json
from daemon.blocking import run_blocking
from daemon.runtime.bus import POLL, BusBusy, BusTimeout
from daemon.state.alarms import device_source
from daemon.supervise import Supervised

log = logging.getLogger("gateway.device_alarms")

EVENT = "device-alarm"
NOTE = "device-log"
HISTORY_LOGGED = 24              # records of a first-contact history kept in the event log
RETRY_UNSUPPORTED_S = 3600.0     # a device that answers "no such register" is asked again this late


# Meters are keyed by ``Device.uid`` (their NET ID; reference + serial number for a device
# without one): cursors, the active set and the records' "netid" field.


def has_event_log(device):
    return catalogue.product(device.reference)[catalogue.PROFILE] in ev.PROFILES


class Cursor:
    """Where the reader stands in one meter's log."""

    __slots__ = ("gen", "next", "history")

    def __init__(self, gen=0, next_number=0, history=None):
        self.gen, self.next, self.history = gen, next_number, history

    def as_list(self):
        return [self.gen, self.next, self.history]

    def position(self):
        return (self.gen, self.next)


class DeviceAlarms:
    """The active device alarms, their history (the gateway event log) and the read cursors."""

    def __init__(self, alarms, clock, cursor_path=None):
        self.alarms = alarms              # daemon.state.alarms.Alarms: owns the event log
        self.clock = clock
        self.cursor_path = cursor_path
        self.active = {}                  # (netid, number, load) -> alarm dict
        self.cursors = {}                 # netid -> Cursor
        self.counters = {"records": 0, "refused_records": 0, "lost_records": 0, "refused_pages": 0,
                         "log_restarts": 0}
        self._listeners = []
        self._commit_lock = asyncio.Lock()
        self._restore()

    # ------------------------------------------------------------ persistence

    def _restore(self):
        if self.cursor_path:
            try:
                for netid, (gen, next_number, history) in read_json(self.cursor_path, {}).items():
                    self.cursors[str(netid)] = Cursor(int(gen), int(next_number),
                                                      None if history is None else int(history))
            except (OSError, ValueError, TypeError, AttributeError):
                log.warning("event cursors unreadable: taken from the event log")
                self.cursors = {}
        implied = {}                      # netid -> Cursor the event log implies
        for record in self.alarms.events():
            netid = record.get("netid")
            if record.get("event") == NOTE and record.get("restarted"):
                implied[netid] = Cursor(record.get("gen", 0), 0)
                for key in [k for k in self.active if k[0] == netid]:
                    del self.active[key]
                continue
            if record.get("event") != EVENT:
                continue
            if isinstance(record.get("rec"), int):
                cursor = implied.setdefault(netid, Cursor(record.get("gen", 0), 0))
                if record.get("gen", 0) == cursor.gen:
                    cursor.next = max(cursor.next, record["rec"] + 1)
                    cursor.history = record.get("history")
            key = (netid, record.get("alarm"), record.get("load"))
            if record.get("repeat"):
                continue
            if record.get("state") == "start":
                self.active[key] = self._alarm_from_record(record)
            elif record.get("state") == "end":
                self.active.pop(key, None)
        for netid, cursor in implied.items():
            saved = self.cursors.get(netid)
            if saved is None or cursor.position() > saved.position():
                self.cursors[netid] = cursor

    @staticmethod
    def _alarm_from_record(record):
        keep = ("alarm", "name", "detail", "criticality", "category", "kind", "address", "bus", "netid",
                "load", "source", "value", "raw", "rec")
        alarm = dict((k, record.get(k)) for k in keep)
        alarm["since"] = record.get("ts")
        return alarm

    async def commit(self):
        """Records first, then the cursors that say they are read (the order makes a cut safe).

        The cursors are copied before waiting for the records: every record
        they cover was queued before the copy, so the flush covers it.
        """
        async with self._commit_lock:
            doc = dict((netid, c.as_list()) for netid, c in self.cursors.items())
            await self.alarms.flush()
            if self.cursor_path:
                await run_blocking(write_json, self.cursor_path, doc)

    # ------------------------------------------------------------ events

    def on_event(self, listener):
        """``listener(alarm, state)`` with state "raised" or "cleared"."""
        self._listeners.append(listener)

    def _notify(self, alarm, state):
        for listener in list(self._listeners):
            try:
                listener(alarm, state)
            except Exception:
                log.exception("device alarm listener")

    def _log(self, alarm, state, gen, **extra):
        record = dict(alarm, event=EVENT, state=state, gen=gen, logged=self.clock.time(), **extra)
        record["ts"] = record.pop("since") if state == "start" else record.get("end")
        self.alarms.record_event(record)

    def apply(self, device, event, gen=0, announce=True, keep=True, history=None):
        """One decoded meter record: the active set, the event log (if ``keep``), the listeners."""
        number = ev.alarm_number(event["kind"], event["index"])
        key = (device.uid, number, event["load"])
        ts = float(rtu.socomec_to_unix(event["datetime"]))
        name, detail = ev.describe(event)
        current = self.active.get(key)
        self.counters["records"] += 1
        alarm = {"alarm": number, "name": name, "detail": detail, "criticality": event["criticality"],
                 "category": ev.KINDS[ev.KIND_CODES[event["kind"]]][1], "kind": event["kind"],
                 "address": device.address, "bus": device.bus, "netid": device.uid, "load": event["load"],
                 "source": device_source(device.bus, device.address, event["load"]),
                 "value": ev.scaled(event["key"], event["raw_value"]), "raw": event["raw_value"], "since": ts,
                 "rec": event["rec"]}
        if event["kind"] == "power_quality" and not event["start"]:
            alarm["duration_ms"] = event["raw_reference"]
        if current is not None:
            # it keeps the identity it started with (the device may have moved since)
            for field in ("name", "address", "bus", "source"):
                alarm[field] = current[field]
        if event["start"]:
            if current is not None:       # a second start while active: logged, nothing changes
                if keep:
                    self._log(alarm, "start", gen, history=history, repeat=True)
                return
            alarm["kept"] = keep
            self.active[key] = alarm
            if keep:
                self._log(alarm, "start", gen, history=history)
            log.info("%s start: %s %s (%s)", alarm["source"], alarm["name"], detail, event["criticality"])
            if announce:
                self._notify(alarm, "raised")
            return
        self.active.pop(key, None)
        ended = dict(alarm, since=current["since"] if current else None, end=ts)
        if keep:
            self._log(ended, "end", gen, history=history)
        log.info("%s end: %s %s", alarm["source"], alarm["name"], detail)
        if announce:
            self._notify(ended, "cleared")

    def history_read(self, netid, gen, history_end):
        """The first-contact history is read: keep and announce the alarms it left active."""
        for key, alarm in list(self.active.items()):
            if key[0] != netid or alarm["rec"] >= history_end:
                continue
            if not alarm.get("kept"):
                alarm["kept"] = True
                self._log(alarm, "start", gen, from_history=True)
            self._notify(alarm, "raised")

    def note(self, device, what, count=0, **extra):
        """A fact about a meter's log worth keeping: records lost or refused, log restarted."""
        self.alarms.record_event(dict({"event": NOTE, "netid": device.uid, "address": device.address,
                                       "bus": device.bus, "detail": what, "count": count}, **extra))
        log.warning("%s@%d event log: %s", device.reference, device.address, what)

    def restarted(self, device, cursor, next_number):
        """The meter's numbering went backwards: its alarms end, its log is read again from 0."""
        self.counters["log_restarts"] += 1
        self.forget(device.uid, "the meter's event log restarted")
        what = "the meter's log restarted (record %d after %d)" % (next_number, cursor.next)
        cursor.gen, cursor.next, cursor.history = cursor.gen + 1, 0, None
        self.note(device, what, restarted=True, gen=cursor.gen)

    def forget(self, netid, why):
        """A device left the topology (or its log restarted): its alarms end now."""
        now = self.clock.time()
        gen = self.cursors[netid].gen if netid in self.cursors else 0
        for key, alarm in list(self.active.items()):
            if key[0] == netid:
                del self.active[key]
                ended = dict(alarm, end=now, detail=why)
                del ended["rec"]              # no meter record behind this end
                self._log(ended, "end", gen, forgotten=True)
                self._notify(ended, "cleared")

    def active_list(self):
        alarms = sorted(self.active.values(), key=lambda a: (a["address"], a["load"], a["alarm"]))
        return [dict((k, v) for k, v in alarm.items() if k != "kept") for alarm in alarms]

    def status(self):
        return dict(self.counters, active=len(self.active))


class _ReaderState:
    def __init__(self):
        self.next_due = 0.0
        self.checks = 0
        self.errors = 0
        self.last_error = None
        self.refusing = False             # the last page was refused: a new refusal is not noted again


class EventReader:
    """Reads the event log of every meter that keeps one; each bus on its own."""

    def __init__(self, parts, center):
        self.parts = parts                # topology, engines, cache, settings, clock (daemon/runtime/parts.py)
        self.center = center
        self.states = {}                  # netid -> _ReaderState
        self._locks = {}                  # netid -> lock: one reader of a meter's log at a time
        self._task = None

    async def start(self):
        self._task = Supervised("device-alarms", self._run)
        self._task.start()

    async def stop(self):
        if self._task is not None:
            await self._task.stop()

    async def _run(self):
        await asyncio.gather(*[self._bus_loop(bus) for bus in list(self.parts.engines)])

    async def _bus_loop(self, bus):
        """A slow bus (a long first contact, a busy line) never holds back the other's checks."""
        engine = self.parts.engines[bus]
        while True:
            devices = [d for d in self.parts.topology.devices if has_event_log(d)]
            self._forget_removed(devices)
            await self._check_bus(engine, [d for d in devices if d.bus == bus])
            await asyncio.sleep(min(1.0, float(self.parts.settings.get("alarms.check_s"))))

    def _forget_removed(self, devices):
        wanted = set(d.uid for d in devices)
        for netid in list(self.states):
            if netid not in wanted:
                del self.states[netid]
                self._locks.pop(netid, None)
        for netid in set(key[0] for key in self.center.active) - wanted:
            self.center.forget(netid, "device removed from the topology")

    async def _check_bus(self, engine, devices):
        """Every due meter of a bus at once: the checks queue behind the poll reads
        already waiting, so one round costs one queue's wait, not one per meter."""
        now = self.parts.clock.time()
        due = []
        for device in devices:
            state = self.states.setdefault(device.uid, _ReaderState())
            if now < state.next_due or self.parts.cache.comm_lost(device.address):
                continue
            state.next_due = now + self.parts.settings.get("alarms.check_s")
            due.append(self._check_one(engine, device, state, now))
        await asyncio.gather(*due)

    async def _check_one(self, engine, device, state, now):
        try:
            await self.check_device(engine, device)
            state.checks += 1
            state.last_error = None
        except (BusTimeout, BusBusy) as exc:      # the poller owns "device silent"
            state.errors += 1
            state.last_error = str(exc)
        except rtu.ModbusException as exc:
            state.errors += 1
            state.last_error = "exception %d" % exc.code
            state.next_due = now + RETRY_UNSUPPORTED_S
            log.info("%s@%d has no readable event log (exception %d)", device.reference, device.address,
                     exc.code)
        except Exception as exc:        # one meter's surprise must not stop the others' checks
            state.errors += 1
            state.last_error = "%s: %s" % (type(exc).__name__, exc)
            log.exception("event log of %s@%d", device.reference, device.address)

    async def check_device(self, engine, device):
        """One look at a meter's log; fetches and applies every record it has not seen."""
        lock = self._locks.setdefault(device.uid, asyncio.Lock())
        async with lock:
            before = self._position(device.uid)
            try:
                await self._check_device(engine, device)
            finally:       # what was applied before a timeout is kept too; an idle check writes nothing
                if self._position(device.uid) != before:
                    await self.center.commit()

    def _position(self, netid):
        cursor = self.center.cursors.get(netid)
        return None if cursor is None else cursor.as_list()

    async def _check_device(self, engine, device):
        center = self.center
        state = self.states.setdefault(device.uid, _ReaderState())
        next_number, _ = ev.decode_header(await engine.read_registers(device.address, ev.HEADER, ev.HEADER_WORDS,
                                                                      priority=POLL))
        cursor = center.cursors.get(device.uid)
        if cursor is None:                # first contact: what the meter holds now is history
            cursor = center.cursors[device.uid] = Cursor(0, 0, next_number)
        elif cursor.next > next_number:
            center.restarted(device, cursor, next_number)
        if next_number - cursor.next > ev.NUMBER_MASK:
            # record numbers in the window are 16 bits: look no further back than that
            self._lost(device, cursor, next_number - ev.NUMBER_MASK)
            cursor.next = next_number - ev.NUMBER_MASK
        while cursor.next < next_number:
            page = await self._page(engine, device, state, cursor.next, next_number)
            if page is None:
                break
            next_number, first, items = page
            self._lost(device, cursor, first)
            history = cursor.history
            for number, item in enumerate(items, first):
                try:
                    event = ev.decode_item(item, number)
                except ev.BadRecord as exc:
                    center.counters["refused_records"] += 1
                    center.note(device, "refused record %d: %s" % (number, exc))
                    continue
                in_history = history is not None and number < history
                center.apply(device, event, cursor.gen, announce=not in_history,
                             keep=not in_history or number >= history - HISTORY_LOGGED,
                             history=history if in_history else None)
            cursor.next = first + len(items)
        if cursor.history is not None and cursor.next >= cursor.history:
            history_end, cursor.history = cursor.history, None
            center.history_read(device.uid, cursor.gen, history_end)

    def _lost(self, device, cursor, first):
        """Records between the cursor and ``first`` are gone (history excepted: never known)."""
        start = cursor.next if cursor.history is None else max(cursor.next, cursor.history)
        if first > start:
            self.center.counters["lost_records"] += first - start
            self.center.note(device, "%d records overwritten in the meter before they could be read"
                             % (first - start), first - start)

    async def _page(self, engine, device, state, cursor, next_number):
        """(next record number, first record, [item words]) from ``cursor`` on, or None.

        The window shows the oldest record the meter still holds when
        ``cursor`` was overwritten; a first record after ``cursor`` is asked
        twice before it counts as a loss, since another master may have moved
        the window between our command and our read. A page whose record
        numbers do not follow is refused (nothing applied, asked again at
        the next check; noted once per run of refusals).
        """
        address = device.address
        for attempt in (1, 2):
            wanted = min(ev.ITEMS, next_number - cursor)
            await engine.write_registers(address, ev.COMMAND, rtu.encode_value("u32", cursor), priority=POLL)
            words = await engine.read_registers(address, ev.HEADER, ev.HEADER_WORDS + wanted * ev.ITEM_WORDS,
                                                priority=POLL)
            next_number, count = ev.decode_header(words)
            count = min(count, wanted)
            if count == 0:
                return None
            items = [words[ev.HEADER_WORDS + i * ev.ITEM_WORDS:ev.HEADER_WORDS + (i + 1) * ev.ITEM_WORDS]
                     for i in range(count)]
            first = ev.full_number(cursor, items[0][0])
            in_order = all(item[0] == (first + i) & ev.NUMBER_MASK for i, item in enumerate(items))
            if in_order and first + count <= next_number and (first == cursor or attempt == 2):
                state.refusing = False
                return next_number, first, items
            if not in_order or first + count > next_number:
                break
        self.center.counters["refused_pages"] += 1
        if not state.refusing:            # counted always, noted once per run of refusals
            state.refusing = True
            self.center.note(device, "refused a page that is not the one asked for (from record %d)" % cursor)
        return None

    def status(self):
        return {"devices": len(self.states), "checks": sum(s.checks for s in self.states.values()),
                "errors": sum(s.errors for s in self.states.values())}
