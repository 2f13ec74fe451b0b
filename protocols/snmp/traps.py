"""Notifications: what to send, when, and the re-sending of alarms still active.

Sources:
* system alarms — ``door.on_alarm_event``: gwAlarmRaised when one
  starts, gwAlarmCleared when it ends;
* digital inputs — a cache subscription on the ``in_*`` values of load 0:
  gwInputChanged on every change after the first reading;
* device alarms read from the meters' event logs — ``door.on_device_alarm_event``
  (daemon/runtime/device_alarms.py): gwMeterAlarm for measurement, logical,
  combined and device alarms, gwPowerQualityEvent for EN 50160 events,
  each with state raised when it starts and cleared when it ends.

Alarms still active are re-sent every ``snmp.trap.period_s`` on the
gateway's clock, with state active: gwAlarmActive for system alarms, their
own notification for device alarms. The active
set is kept even while the agent is off, so it is complete when it opens.
This module builds (oid, tag, value) varbinds; the agent turns them into
pysnmp notifications (v1 trap, v2c trap or v3 trap, per the settings).
"""

import asyncio
import collections
import logging

from daemon.supervise import cancel_and_wait
from protocols.snmp import ber, mibdef
from protocols.snmp.tree import CRITICALITY, date_and_time, text

log = logging.getLogger("gateway.snmp.traps")

STATE = dict(mibdef.ALARM_STATE)
OID = mibdef.TRAP_OBJECT_OIDS


def _scalar(name):
    return OID[name] + (0,)


class TrapSender:
    def __init__(self, door):
        self.door = door
        self.active = {}               # (category, number, source) -> alarm dict + "due"
        self.version = 0               # bumps when the active set changes (alarm table)
        self.sent = collections.Counter()
        self.transmit = None           # set by the agent while it runs: transmit(notification, varbinds)
        self._inputs = {}              # (address, key) -> last state
        self._task = None
        now = self.door.time()
        for (number, source), state in door.system_alarm_states():
            self._remember(self._system_record(number, source, state["since"], state.get("detail", "")), now)
        door.on_alarm_event(self._alarm_event)
        for alarm in door.device_alarm_states():
            self._remember(self._device_record(alarm), now)
        door.on_device_alarm_event(self._device_event)
        door.on_values(self._cache_update)

    # ------------------------------------------------------------ sources

    @staticmethod
    def _system_record(number, source, since, detail):
        from daemon.state.alarms import SYSTEM_ALARMS
        name, criticality = SYSTEM_ALARMS[number]
        return {"category": "system", "alarm": number, "source": str(source), "name": name,
                "criticality": criticality, "since": since, "detail": detail}

    def _alarm_event(self, record):
        if record.get("event") not in ("raised", "cleared"):
            return          # other event-log records (storage, device logs) are not system alarms
        alarm = self._system_record(record["alarm"], record["source"], record["ts"], record.get("detail", ""))
        key = ("system", alarm["alarm"], alarm["source"])
        if record["event"] == "raised":
            self._remember(alarm, self.door.time() + self.period())
            self.send("gwAlarmRaised", alarm, "raised")
        else:
            self.active.pop(key, None)
            self.version += 1
            self.send("gwAlarmCleared", dict(alarm, since=record["ts"]), "cleared")

    def _cache_update(self, address, load, values, _ts):
        if load != 0 or "in_1" not in values:
            return
        for key, value in values.items():
            if not key.startswith("in_"):
                continue
            state = int(value)
            previous = self._inputs.get((address, key))
            self._inputs[(address, key)] = state
            if previous is not None and previous != state:
                self.send_input_change(address, int(key[3:]), state)

    @staticmethod
    def _device_record(alarm):
        """A device alarm (daemon/runtime/device_alarms.py) as the trap sender keeps it."""
        notification = "gwPowerQualityEvent" if alarm["kind"] == "power_quality" else "gwMeterAlarm"
        return dict(alarm, notification=notification, raw=int(alarm.get("raw") or 0))

    def _device_event(self, alarm, state):
        record = self._device_record(alarm)
        key = (record["category"], record["alarm"], record["source"])
        if state == "raised":
            if key in self.active:
                return
            self._remember(record, self.door.time() + self.period())
        elif self.active.pop(key, None) is not None:
            self.version += 1
        self.send(record["notification"], record, state)

    def _remember(self, alarm, due):
        self.active[(alarm["category"], alarm["alarm"], alarm["source"])] = dict(alarm, due=due)
        self.version += 1

    def active_alarms(self):
        return sorted(self.active.values(), key=lambda a: (a["alarm"], a["source"]))

    # ------------------------------------------------------------ sending

    def period(self):
        return self.door.setting("snmp.trap.period_s")

    def send(self, notification, alarm, state):
        varbinds = [
            (_scalar("gwTrapAlarmNumber"), ber.INTEGER, int(alarm["alarm"])),
            (_scalar("gwTrapSource"), ber.OCTET_STRING, text(alarm["source"])),
            (_scalar("gwTrapName"), ber.OCTET_STRING, text(alarm["name"])),
            (_scalar("gwTrapCriticality"), ber.INTEGER, CRITICALITY.get(alarm["criticality"], 1)),
            (_scalar("gwTrapDetail"), ber.OCTET_STRING, text(alarm["detail"])),
            (_scalar("gwTrapCategory"), ber.OCTET_STRING, text(alarm["category"])),
            (_scalar("gwTrapTime"), ber.OCTET_STRING, date_and_time(self.door.time())),
            (_scalar("gwTrapState"), ber.INTEGER, STATE[state]),
        ]
        if notification in ("gwMeterAlarm", "gwPowerQualityEvent"):
            varbinds[6] = (_scalar("gwTrapTime"), ber.OCTET_STRING,
                           date_and_time(alarm["end"] if state == "cleared" else alarm["since"]))
            varbinds.append((_scalar("gwTrapAddress"), ber.INTEGER, alarm["address"]))
            varbinds.append((_scalar("gwTrapLoad"), ber.INTEGER, alarm["load"]))
            varbinds.append((_scalar("gwTrapValue"), ber.INTEGER, alarm["raw"]))
            if notification == "gwPowerQualityEvent":
                varbinds.append((_scalar("gwTrapDuration"), ber.INTEGER, alarm.get("duration_ms", 0)))
        self._transmit(notification, varbinds)

    def send_input_change(self, address, number, state):
        self._transmit("gwInputChanged", [
            (_scalar("gwTrapAddress"), ber.INTEGER, address),
            (_scalar("gwTrapInput"), ber.INTEGER, number),
            (_scalar("gwTrapValue"), ber.INTEGER, state),
            (_scalar("gwTrapTime"), ber.OCTET_STRING, date_and_time(self.door.time())),
        ])

    def _transmit(self, notification, varbinds):
        if self.transmit is None:
            self.sent["not_running"] += 1
            return
        try:
            if self.transmit(notification, varbinds):
                self.sent[notification] += 1
            else:
                self.sent["no_receiver"] += 1
        except Exception:
            log.exception("cannot send %s", notification)
            self.sent["errors"] += 1

    # ------------------------------------------------------------ re-sending

    def start(self, transmit):
        """The agent is open: send from now on, re-send active alarms when due."""
        self.transmit = transmit
        now = self.door.time()
        for alarm in self.active.values():
            alarm["due"] = min(alarm["due"], now)      # a fresh agent tells what is still active
        self._task = asyncio.get_running_loop().create_task(self._resend_loop(), name="snmp-trap-resend")

    async def stop(self):
        self.transmit = None
        await cancel_and_wait(self._task)
        self._task = None

    async def _resend_loop(self):
        while True:
            self.resend_due()
            await asyncio.sleep(min(1.0, float(self.period())))

    def resend_due(self):
        now = self.door.time()
        period = self.period()
        for alarm in list(self.active.values()):
            if alarm["due"] <= now:
                alarm["due"] = now + period
                self.send(alarm.get("notification", "gwAlarmActive"), alarm, "active")
