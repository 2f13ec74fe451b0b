"""Device alarms, centralised: read from the meters' event logs, kept, announced.

SPEC §6: measurement-threshold, logical, combined alarms, power-quality
events and the devices' own alarms "are read from the devices and
centralised". Each meter that keeps a log (daemon/meter_events.py) is asked
every ``alarms.check_s`` seconds for its next record number (one small
read); new records are then fetched a page at a time, at the poll priority.

Every alarm has a start and an end (a 60 ms dip too: its end record gives
its duration); between them it is *active*. Starts and ends go into the
gateway's fixed-size event log with the meter's time stamp, and to the
listeners (SNMP traps, later e-mail) as ``raised`` / ``cleared``.

Nothing lost, nothing twice: the reader keeps, per meter (by NET ID, since
addresses can change), the number of the next record it wants. It is saved
after the records it covers are in the event log, and on restart it is the
larger of the saved value and the highest record number found in the event
log. Records the meter overwrote before the gateway could read them (a long
cut) are counted and logged as lost. A page that is not the one asked for
(another master moved the window) is refused and asked again; a record that
does not follow the convention is refused, logged, and skipped.

History read from a meter seen for the first time is logged but not
announced, except the alarms still active at the end of it.
"""

import asyncio
import json
import logging
import os

from daemon import catalogue
from daemon import meter_events as ev
from daemon.atomicfile import atomic_write
from daemon.blocking import run_blocking
from daemon.bus import POLL, BusBusy, BusTimeout
from daemon.supervise import Supervised
from protocols import modbus_rtu as rtu

log = logging.getLogger("gateway.device_alarms")

EVENT = "device-alarm"
STATES = ("start", "end")
RETRY_UNSUPPORTED_S = 3600.0     # a device that answers "no such register" is asked again this late


def has_event_log(device):
    return catalogue.product(device.reference)[catalogue.PROFILE] in ev.PROFILES


class DeviceAlarms:
    """The active device alarms, their history (the gateway event log) and the read cursors."""

    def __init__(self, alarms, clock, cursor_path=None):
        self.alarms = alarms              # daemon.alarms.Alarms: owns the event log
        self.clock = clock
        self.cursor_path = cursor_path
        self.active = {}                  # (netid, number, load) -> alarm dict
        self.cursors = {}                 # netid -> next record number wanted
        self.counters = {"records": 0, "refused_records": 0, "lost_records": 0, "refused_pages": 0}
        self._listeners = []
        self._restore()

    # ------------------------------------------------------------ persistence

    def _restore(self):
        if self.cursor_path and os.path.exists(self.cursor_path):
            try:
                with open(self.cursor_path, encoding="utf-8") as handle:
                    saved = json.load(handle)
                self.cursors = dict((str(k), int(v)) for k, v in saved.items())
            except (OSError, ValueError, TypeError, AttributeError):
                log.warning("event cursors unreadable: records are re-read and de-duplicated by the event log")
        for record in self.alarms.events():
            if record.get("event") != EVENT:
                continue
            netid = record.get("netid")
            if isinstance(record.get("rec"), int):
                self.cursors[netid] = max(self.cursors.get(netid, 0), record["rec"] + 1)
            key = (netid, record.get("alarm"), record.get("load"))
            if record.get("state") == "start":
                self.active[key] = self._alarm_from_record(record)
            elif record.get("state") == "end":
                self.active.pop(key, None)

    @staticmethod
    def _alarm_from_record(record):
        keep = ("alarm", "name", "detail", "criticality", "category", "kind", "address", "bus", "netid",
                "load", "source", "value", "raw")
        alarm = dict((k, record.get(k)) for k in keep)
        alarm["since"] = record.get("ts")
        return alarm

    async def commit(self):
        """Records first, then the cursors that say they are read (the order makes a cut safe)."""
        await self.alarms.flush()
        if self.cursor_path:
            data = json.dumps(self.cursors, sort_keys=True).encode()
            await run_blocking(atomic_write, self.cursor_path, data)

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

    def apply(self, device, event, announce=True):
        """One decoded meter record: the active set, the event log, the listeners."""
        number = ev.alarm_number(event["kind"], event["index"])
        key = (device.netid, number, event["load"])
        ts = float(rtu.socomec_to_unix(event["datetime"]))
        name, detail = ev.describe(event)
        current = self.active.get(key)
        if event["start"] and current is not None:
            return                          # already known active (a start read twice)
        if current is not None:
            name = current["name"]          # an alarm keeps the name it started with
        alarm = {"alarm": number, "name": name, "detail": detail, "criticality": event["criticality"],
                 "category": ev.KINDS[ev.KIND_CODES[event["kind"]]][1], "kind": event["kind"],
                 "address": device.address, "bus": device.bus, "netid": device.netid, "load": event["load"],
                 "source": "%s:%d:%d" % (device.bus, device.address, event["load"]),
                 "value": ev.scaled(event["key"], event["raw_value"]), "raw": event["raw_value"], "since": ts}
        if event["kind"] == "power_quality" and not event["start"]:
            alarm["duration_ms"] = event["raw_reference"]
        record = dict(alarm, ts=ts, event=EVENT, state="start" if event["start"] else "end", rec=event["rec"],
                      logged=self.clock.time())
        del record["since"]
        self.counters["records"] += 1
        if event["start"]:
            self.active[key] = alarm
        else:
            self.active.pop(key, None)
            record["since"] = current["since"] if current else None
            alarm = dict(alarm, since=record["since"], end=ts)
        self.alarms.record_event(record)
        log.info("%s %s: %s %s (%s)", alarm["source"], record["state"], name, detail, event["criticality"])
        if announce:
            self._notify(alarm, "raised" if event["start"] else "cleared")

    def announce_active(self, netid):
        for key, alarm in list(self.active.items()):
            if key[0] == netid:
                self._notify(alarm, "raised")

    def note(self, device, what, count=0):
        """A fact about a meter's log worth keeping: records lost or refused, log restarted."""
        self.alarms.record_event({"event": "device-log", "netid": device.netid, "address": device.address,
                                  "bus": device.bus, "detail": what, "count": count})
        log.warning("%s@%d event log: %s", device.reference, device.address, what)

    def forget(self, netid, why):
        """A device left the topology: its alarms end now."""
        now = self.clock.time()
        for key, alarm in list(self.active.items()):
            if key[0] == netid:
                del self.active[key]
                ended = dict(alarm, end=now, detail=why)
                self.alarms.record_event(dict(ended, ts=now, event=EVENT, state="end", logged=now))
                self._notify(ended, "cleared")

    def active_list(self):
        return sorted(self.active.values(), key=lambda a: (a["address"], a["load"], a["alarm"]))

    def status(self):
        return dict(self.counters, active=len(self.active))


class _ReaderState:
    def __init__(self):
        self.next_due = 0.0
        self.checks = 0
        self.errors = 0
        self.last_error = None


class EventReader:
    """Reads the event log of every meter that keeps one, bus by bus in parallel."""

    def __init__(self, gateway, center):
        self.gateway = gateway
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
        while True:
            await self.cycle()
            await asyncio.sleep(min(1.0, float(self.gateway.settings.get("alarms.check_s"))))

    async def cycle(self):
        devices = [d for d in self.gateway.topology.devices if has_event_log(d)]
        wanted = set(d.netid for d in devices)
        for netid in list(self.states):
            if netid not in wanted:
                del self.states[netid]
                self._locks.pop(netid, None)
                self.center.forget(netid, "device removed from the topology")
        by_bus = {}
        for device in devices:
            if device.bus in self.gateway.engines:
                by_bus.setdefault(device.bus, []).append(device)
        await asyncio.gather(*[self._check_bus(self.gateway.engines[bus], group) for bus, group in by_bus.items()])

    async def _check_bus(self, engine, devices):
        """Every due meter of a bus at once: the checks queue behind the poll reads
        already waiting, so one round costs one queue's wait, not one per meter."""
        now = self.gateway.clock.time()
        due = []
        for device in devices:
            state = self.states.setdefault(device.netid, _ReaderState())
            if now < state.next_due or self.gateway.cache.comm_lost(device.address):
                continue
            state.next_due = now + self.gateway.settings.get("alarms.check_s")
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
        lock = self._locks.setdefault(device.netid, asyncio.Lock())
        async with lock:
            await self._check_device(engine, device)

    async def _check_device(self, engine, device):
        address = device.address
        next_number, _ = ev.decode_header(await engine.read_registers(address, ev.HEADER, ev.HEADER_WORDS,
                                                                      priority=POLL))
        cursor = self.center.cursors.get(device.netid)
        first_contact = cursor is None
        if first_contact:
            cursor = 0
        elif cursor > next_number:
            self.center.note(device, "the meter's log restarted (record %d after %d)" % (next_number, cursor))
            cursor = 0
        if next_number - cursor > 0xFFFF:
            # record numbers in the window are 16 bits: look no further back than that
            skipped = next_number - 0xFFFF - cursor
            if not first_contact:
                self.center.counters["lost_records"] += skipped
                self.center.note(device, "%d records too far behind to be read" % skipped, skipped)
            cursor = next_number - 0xFFFF
        changed = False
        while cursor < next_number:
            page = await self._page(engine, device, cursor, next_number)
            if page is None:
                break
            next_number, first, items = page
            if first > cursor and not first_contact:
                self.center.counters["lost_records"] += first - cursor
                self.center.note(device, "%d records overwritten in the meter before they could be read"
                                 % (first - cursor), first - cursor)
            for number, item in enumerate(items, first):
                try:
                    event = ev.decode_item(item, number)
                except ev.BadRecord as exc:
                    self.center.counters["refused_records"] += 1
                    self.center.note(device, "refused record %d: %s" % (number, exc))
                    continue
                self.center.apply(device, event, announce=not first_contact)
            cursor = first + len(items)
            self.center.cursors[device.netid] = cursor
            changed = True
        if first_contact and device.netid not in self.center.cursors:
            self.center.cursors[device.netid] = cursor
            changed = True
        if changed:
            await self.center.commit()
        if first_contact:
            self.center.announce_active(device.netid)

    async def _page(self, engine, device, cursor, next_number):
        """(next record number, first record, [item words]) from ``cursor`` on, or None.

        The window shows the oldest record the meter still holds when
        ``cursor`` was overwritten; a first record after ``cursor`` is asked
        twice before it counts as a loss, since another master may have moved
        the window between our command and our read. A page whose record
        numbers do not follow is refused (nothing applied, asked again at
        the next check).
        """
        address = device.address
        for attempt in (1, 2):
            wanted = min(ev.ITEMS, next_number - cursor)
            await engine.write_registers(address, ev.COMMAND, [cursor >> 16, cursor & 0xFFFF], priority=POLL)
            words = await engine.read_registers(address, ev.HEADER, ev.HEADER_WORDS + wanted * ev.ITEM_WORDS,
                                                priority=POLL)
            next_number, count = ev.decode_header(words)
            count = min(count, wanted)
            if count == 0:
                return None
            items = [words[ev.HEADER_WORDS + i * ev.ITEM_WORDS:ev.HEADER_WORDS + (i + 1) * ev.ITEM_WORDS]
                     for i in range(count)]
            first = cursor + ((items[0][0] - cursor) & 0xFFFF)
            in_order = all(item[0] == (first + i) & 0xFFFF for i, item in enumerate(items))
            if in_order and first + count <= next_number and (first == cursor or attempt == 2):
                return next_number, first, items
            if not in_order or first + count > next_number:
                break
        self.center.counters["refused_pages"] += 1
        self.center.note(device, "refused a page that is not the one asked for (from record %d)" % cursor)
        return None

    def status(self):
        return {"devices": len(self.states), "checks": sum(s.checks for s in self.states.values()),
                "errors": sum(s.errors for s in self.states.values())}
