"""The door: the one object every front end receives (DESIGN.md, "The door").

Modbus TCP and the RTU slave, SNMP, BACnet, the web application and, later,
exporters and the MQTT publisher get a ``Door`` bound to who they are
(``rights.Caller``) and nothing else of the gateway. *Queries* read the
state (readings with quality and age, one summary per device, alarms,
events, documents, service states); *commands* change it (settings, writes
to devices, detection, acknowledgements, counter resets), and each command
is checked here, once, against the caller's rights and the security policy
(``daemon/security/rights.py``). A refusal is ``Refused(reason, message)``;
each front end maps the reason to its own error.

Only this module and the composition root (``daemon/gateway.py``) read the
gateway's parts.
"""

import asyncio
import contextlib
import datetime
import logging
import os
import signal

from board import netconfig
from board.base import BUS_NAMES
from core import ble_formats, datamodel, modbus_rtu as rtu, registry
from daemon import pictures
from daemon.blocking import BlockingQueueFull, run_blocking
from daemon.runtime import clocks, control, curves, refresh
from daemon.runtime.bus import BusBusy, BusTimeout
from daemon.security import accounts, audit, firewall as firewall_mod, rights, tlsfiles, webtls
from daemon.security.rights import Caller
from daemon.state import (alarmlog, blesources, datamodels as datamodels_mod, devicefields, devstate, favourites,
                          genericfields, hierarchies as hierarchies_mod, photoviews, settings as settings_mod,
                          topology as topology_mod, usages as usages_mod)
from daemon.state.alarms import device_source
from daemon.state.cache import STALE
from daemon.storage import consumption as consumption_mod, store as store_mod
from daemon.storage.format import Q_VALID, quality_name
from daemon.storage.query import SeriesData
from daemon.system.service import SystemRefused
from daemon.version import VERSION

log = logging.getLogger("gateway.api")

# refusal reasons (the write reasons are control's, so a protocol maps one set)
RIGHTS = "rights"                    # the caller's profile or protocol may not do this
POLICY = control.POLICY              # the security policy forbids it now
NO_DEVICE = control.NO_DEVICE
NOT_WRITABLE = control.NOT_WRITABLE
BAD_VALUE = control.BAD_VALUE
NO_ANSWER = control.NO_ANSWER
DEVICE_REFUSED = control.DEVICE_REFUSED
BUSY = "busy"                        # already running (a detection)
NOT_FOUND = "not_found"              # no such alarm, document...
UNSUPPORTED = "unsupported"          # the board cannot (set its clock, open a port)
AUTH = accounts.AUTH                 # wrong password or passphrase, no (or an ended) session
LOCKED = accounts.LOCKED             # a profile locked after failed logins, Totem not unlocked
MUST_CHANGE = "must_change"          # the session's password must be changed before anything else
STORAGE = accounts.STORAGE           # a state file could not be written: nothing changed
SYSTEM = "system"                    # a backup, restore or upgrade refused: ``Refused.why`` says why (issue 15)
OFF = "off"                          # the outbound client asked for (exports, e-mail, SNTP) is switched off

ALARM_CONFLICT = 4                   # system alarm numbers the summary reads (SPEC §6)
REBOOT_EXIT = 75                     # the daemon's exit code after a reboot asked for: systemd starts it again
REBOOT_DELAY_S = 1.0                 # the answer to the reboot request leaves before the daemon stops


class Refused(Exception):
    """A command the door refuses: ``reason`` (one of the constants above), a message for people and,
    for a form, ``details``: one message per problem (what a new password misses; for settings, one dict
    per refused field: field, catalogue key and parameters, English message — SettingError.details)."""

    def __init__(self, reason, message, details=None):
        Exception.__init__(self, message)
        self.reason = reason
        self.details = list(details or ())


@contextlib.contextmanager
def _bus_refusals():
    """The runtime's errors as the door's refusals, so front ends import nothing of the runtime."""
    try:
        yield
    except control.WriteRefused as exc:
        raise Refused(exc.reason, str(exc)) from None
    except BusBusy:
        raise Refused(BUSY, "the bus queue is full, try again") from None
    except BusTimeout:
        raise Refused(NO_ANSWER, "the device did not answer") from None


@contextlib.contextmanager
def _account_refusals():
    """The accounts' refusals (and a full executor) as the door's."""
    try:
        yield
    except accounts.AccountRefused as exc:
        raise Refused(exc.reason, str(exc), exc.details) from None
    except BlockingQueueFull:
        raise Refused(BUSY, "the gateway is busy, try again") from None


__all__ = ["Caller", "Door", "Refused"]

# ---------------------------------------------------------------- issue 14: network settings, pictures
# board/netconfig.py's problems with a network configuration as a whole -> catalogue keys
NETWORK_PROBLEMS = {"address": "error.network.address", "not_host": "error.network.not_host",
                    "gateway_self": "error.network.gateway_self", "gateway_subnet": "error.network.gateway_subnet",
                    "proxy_host": "error.network.proxy_host"}


def _network_config(settings, changes):
    """The network configuration the settings will give once ``changes`` are applied."""
    return netconfig.config_from_settings(lambda name: changes[name] if name in changes else settings.get(name))


def _touches_network(changes):
    return any(name in netconfig.SETTINGS for name in changes)


def _picture_refusals(coroutine_function):
    """PictureRefused as Refused(BAD_VALUE) with its catalogue message, a full executor as BUSY, a write that
    failed as STORAGE."""
    async def run(self, *args):
        try:
            return await coroutine_function(self, *args)
        except pictures.PictureRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [{"field": "file", "key": exc.key, "params": exc.params}]) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        except OSError as exc:
            raise Refused(STORAGE, "the picture could not be written: %s" % exc.strerror) from None
    run.__name__, run.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return run


# ---------------------------------------------------------------- issue 15: web certificate, CA store
TLS_MAX_PEM = tlsfiles.MAX_PEM       # one certificate chain or one key: what an upload form may send

def _utc_now(clock):
    return datetime.datetime.fromtimestamp(clock.time(), datetime.timezone.utc)


def _certificate_view(info, now):
    if info is None:
        return None
    return dict(info, state=tlsfiles.expiry_state(info["not_after"], now))


def _tls_refusals(coroutine_function):
    """TlsRefused as Refused(BAD_VALUE) naming its field and catalogue key; a full CA store likewise; a full
    executor as BUSY, a write that failed as STORAGE."""
    async def run(self, *args):
        try:
            return await coroutine_function(self, *args)
        except tlsfiles.TlsRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [{"field": exc.field, "key": exc.key, "params": {}}]) from None
        except webtls.StoreRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [{"field": "ca", "key": exc.key, "params": {}}]) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        except OSError as exc:
            raise Refused(STORAGE, "the certificate could not be written: %s" % exc.strerror) from None
    run.__name__, run.__doc__ = coroutine_function.__name__, coroutine_function.__doc__
    return run


class SettingsView:
    """The settings a front end may read and watch; changes go through ``Door.set_settings``."""
    __slots__ = ("get", "on_change")

    def __init__(self, store):
        self.get = store.get
        self.on_change = store.on_change


class Door:
    """The gateway as one front end sees it. Build with ``Door(gateway, caller)``; ``as_caller`` rebinds."""

    def __init__(self, gateway, caller):
        self._gw = gateway
        self.caller = caller

    def as_caller(self, caller):
        """The same door for another caller (the web: one per request, with the session's profile)."""
        return Door(self._gw, caller)

    def check(self, command):
        """Refused unless this caller may run ``command`` now (rights and policy; nothing is done)."""
        self._check(command)

    def _check(self, command):
        refusal = rights.check(self._gw.settings, self.caller, command)
        if refusal is not None:
            reason, message = refusal
            log.info("refused %s to %r: %s", command, self.caller, message)
            raise Refused(reason, message)

    # ================================================================ queries: the gateway

    def time(self):
        """The one clock (the board's, with any offset set by a time synchronization)."""
        return self._gw.clock.time()

    def uptime(self):
        return self._gw.uptime()

    def setting(self, name):
        return self._gw.settings.get(name)

    def on_setting_change(self, listener):
        """``listener(name, value)`` after every applied change."""
        self._gw.settings.on_change(listener)

    def settings_view(self):
        """Read-only settings (``get``, ``on_change``) for a service that reads many of its own."""
        return SettingsView(self._gw.settings)

    def identity(self):
        gw = self._gw
        get = gw.settings.get
        return {"vendor": "OPEN-M70", "product": "M-70", "firmware": VERSION, "board": gw.board.kind,
                "netid": gw.identity["netid"], "serial": gw.identity["serial"], "name": get("gateway.name"),
                "description": get("gateway.description"), "location": get("gateway.location"),
                "contact": get("gateway.contact"), "area": get("gateway.area"),
                "modbus_address": get("gateway.modbus_address")}

    def state_path(self, name):
        """Where a service keeps a small state file of its own (SNMP engine boots) in the state dir."""
        if "/" in name or name.startswith("."):
            raise ValueError("a state file name, not a path: %r" % name)
        return os.path.join(self._gw.state_dir, name)

    def gateway_flags(self):
        """(any system alarm active, detection running): the gateway table's status bits."""
        discovery = self._gw.discovery
        return bool(self._gw.alarms.active), bool(discovery is not None and discovery.running())

    # ================================================================ queries: devices and values

    def devices(self):
        """The topology's devices, by address."""
        return sorted(self._gw.topology.devices, key=lambda d: d.address)

    def device(self, address):
        return self._gw.topology.device(address)

    def topology_version(self):
        return self._gw.topology.version

    def on_topology_change(self, listener):
        self._gw.topology.on_change(listener)

    def served_device(self, address):
        """The device at ``address`` when a mastered bus reaches it, else None (Modbus routes by it)."""
        device = self._gw.topology.device(address)
        if device is None or (device.bus not in self._gw.engines and device.bus not in self._gw.links):
            return None
        return device

    def reading(self, address, load, key):
        """The latest ``Reading`` (value, timestamp, quality) of one measurement."""
        return self._gw.cache.get(address, load, key)

    def snapshot(self, address):
        return self._gw.cache.snapshot(address)

    def loads(self, address):
        return self._gw.cache.loads(address)

    def load_summary(self, address, load):
        """(worst quality, newest ts, oldest ts, count) of one row: ``Cache.load_summary``."""
        return self._gw.cache.load_summary(address, load)

    def on_values(self, listener):
        """``listener(address, load, values, ts)`` for every batch the pollers store."""
        return self._gw.cache.subscribe(listener)

    def polled_registers(self, address, start, count):
        """A meter's native words from the last poll when they are fresh by the one rule, else None."""
        return self._gw.cache.fresh_raw(address, start, count)

    def extremes(self, address, load, key):
        """(min, min_ts, max, max_ts) since start or the last reset, or None."""
        return self._gw.extremes.get(address, load, key)

    def device_link(self, address):
        """The cheap part of the device summary: conflict, comm_lost, unknown, ok (``devstate.link_state``)."""
        gw = self._gw
        device = gw.topology.device(address)
        if device is None:
            return devstate.ABSENT
        engine = gw.link_engine(device.bus)
        return devstate.link_state((ALARM_CONFLICT, device_source(device.bus, address)) in gw.alarms.active,
                                   gw.cache.comm_lost(address),
                                   engine is not None and engine.counters[address].last_success is not None)

    def device_summary(self, address):
        """The one ``DeviceSummary`` of the device at ``address`` (state ``absent`` when there is none)."""
        gw = self._gw
        device = gw.topology.device(address)
        if device is None:
            return devstate.DeviceSummary(address, None, devstate.ABSENT, None, None, None)
        cache = gw.cache
        stale_rows, oldest = False, None
        for load in cache.loads(address):
            quality, _newest, row_oldest, _count = cache.load_summary(address, load)
            stale_rows = stale_rows or quality == STALE
            if row_oldest is not None and (oldest is None or row_oldest < oldest):
                oldest = row_oldest
        state = devstate.device_state(self.device_link(address), stale_rows)
        counters = self.device_counters(address)
        age = None if oldest is None else max(0.0, gw.clock.time() - oldest)
        return devstate.DeviceSummary(address, device.bus, state, age, counters,
                                      counters["last_success"] if counters else None)

    def device_counters(self, address):
        """The counters of one device (a dict; None off a mastered bus): its bus's, its Modbus TCP link's or, for a
        Bluetooth source, its advertisements'. Cheaper than a summary."""
        device = self._gw.topology.device(address)
        engine = self._gw.link_engine(device.bus) if device is not None else None
        return engine.counters[address].as_dict() if engine is not None else None

    def device_summaries(self):
        """{address: DeviceSummary} of every device of the topology."""
        return dict((d.address, self.device_summary(d.address)) for d in self._gw.topology.devices)

    # ================================================================ queries: alarms, events, documents

    def system_alarms(self):
        """Active system alarms grouped by number (``Alarms.active_list``)."""
        return self._gw.alarms.active_list()

    def system_alarm_states(self):
        """[((number, source), state dict)] of the active system alarms (traps re-send them)."""
        return list(self._gw.alarms.active.items())

    def alarm_bits(self):
        return self._gw.alarms.bitfield()

    def on_alarm_event(self, listener):
        """``listener(record)`` for every system alarm event (raised, cleared, acknowledged)."""
        self._gw.alarms.on_event(listener)

    def device_alarms(self):
        return self._gw.device_alarms.active_list()

    def device_alarm_states(self):
        return list(self._gw.device_alarms.active.values())

    def on_device_alarm_event(self, listener):
        self._gw.device_alarms.on_event(listener)

    def events(self, limit=500):
        """The newest ``limit`` records of the event log (all of them for None), oldest first."""
        records = self._gw.alarms.events()
        return records if limit is None else records[-limit:]

    def discovery_status(self):
        discovery = self._gw.discovery
        return discovery.status() if discovery is not None else None

    def publish_document(self, name, content_type, render):
        """A generated file (register map, MIB, EDE) served at /api/files/<name>; ``render()`` → text."""
        self._gw.documents[name] = (content_type, render)

    def document_names(self):
        return sorted(self._gw.documents)

    def document(self, name):
        """(content type, text) of a generated document, or None."""
        entry = self._gw.documents.get(name)
        if entry is None:
            return None
        content_type, render = entry
        return content_type, render()

    def service_states(self):
        return dict((s.name, s.status()) for s in self._gw.services if hasattr(s, "status"))

    # ================================================================ queries: diagnosis (SPEC §7.2)

    def diagnosis(self):
        """The document behind GET /api/diagnosis, without the board's load figures (``system_load``): who the
        gateway is, its services, the event loop's lag, the time-series store's use, and every device's
        communication counters with the age of its last success (docs/status-api.md)."""
        gw = self._gw
        now = gw.clock.time()
        identity = self.identity()
        devices = []
        for device in self.devices():
            summary = self.device_summary(device.address)
            last = summary.last_success
            devices.append({"address": device.address, "bus": device.bus, "reference": device.reference,
                            "name": device.name, "netid": device.netid, "status": summary.state,
                            "not_found": device.not_found, "counters": summary.counters, "last_success": last,
                            "last_success_age_s": None if last is None else round(max(0.0, now - last), 1)})
        return {"gateway": {"name": identity["name"], "serial": identity["serial"], "netid": identity["netid"],
                            "firmware": identity["firmware"], "board": identity["board"], "time": now,
                            "uptime_s": round(gw.uptime(), 1), "dhcp": bool(self.setting("network.dhcp")),
                            "address": self.setting("network.address")},
                "services": self.service_states(), "loop_lag": gw.looplag.summary(), "storage": gw.storage.status(),
                "devices": devices}

    async def system_load(self):
        """CPU, RAM and state-filesystem indicators of the board with their time ``ts`` (daemon/sysload.py:
        read off the loop, at most once a second); Refused(BUSY) while the blocking executor is full."""
        try:
            return await self._gw.system_load.figures(run_blocking, self._gw.clock.time)
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None

    def status(self):
        """The document behind GET /api/status (docs/status-api.md)."""
        gw = self._gw
        devices = []
        for device in self.devices():
            summary = self.device_summary(device.address)
            values = {}
            for load, readings in gw.cache.snapshot(device.address).items():
                out = {}
                for key, reading in readings.items():
                    name, unit = measurement(key)
                    out[key] = dict(reading.as_dict(), unit=unit, name=name)
                values[str(load)] = out
            devices.append({
                "address": device.address, "bus": device.bus, "reference": device.reference,
                "name": device.name, "netid": device.netid, "area": device.area,
                "status": summary.state, "age_s": None if summary.age is None else round(summary.age, 1),
                "not_found": device.not_found,
                "loads": device.loads, "counters": summary.counters, "values": values,
            })
        buses = {}
        for bus in BUS_NAMES:
            prefix = "bus.%s." % bus
            entry = {"port": gw.board.port_path(bus), "baud": self.setting(prefix + "baud"),
                     "parity": self.setting(prefix + "parity"), "stop_bits": self.setting(prefix + "stop_bits"),
                     "mode": "master" if bus in gw.engines else "slave"}
            if bus in gw.pollers:
                entry.update(gw.pollers[bus].status())
                entry["queued"] = gw.engines[bus].queued()
            if bus in gw.bus_errors:
                entry["error"] = gw.bus_errors[bus]
            if gw.board.peer_path(bus) is not None:      # the simulated board's null-modem, in slave mode
                entry["slave_port"] = gw.board.peer_path(bus)
            buses[bus] = entry
        identity = self.identity()
        return {
            "gateway": {"name": identity["name"], "reference": identity["product"], "netid": identity["netid"],
                        "serial": identity["serial"], "firmware": identity["firmware"], "board": identity["board"],
                        "uptime_s": round(gw.uptime(), 1), "time": self.time(),
                        "modbus_address": identity["modbus_address"]},
            "buses": buses,
            "devices": devices,
            "alarms": self.system_alarms(),
            "device_alarms": dict(gw.device_alarms.status(), reader=gw.event_reader.status(),
                                  list=self.device_alarms()),
            "discovery": self.discovery_status(),
            "loop_lag": gw.looplag.summary(),
            "services": self.service_states(),
            "storage": gw.storage.status(),
            "curves": gw.curves.status(),
        }

    # ================================================================ resources for one front end

    def open_serial_port(self, bus, baud, parity, stop_bits):
        """The RS485 port for the RTU slave (OSError when the board has none)."""
        if self.caller.protocol != "rtu_slave":
            raise Refused(RIGHTS, "only the RTU slave opens a serial port")
        return self._gw.board.open_port(bus, baud, parity, stop_bits)

    def port_path(self, bus):
        return self._gw.board.port_path(bus)

    # ================================================================ commands

    def check_write(self, address, load, key, value):
        """Refused unless this write may be sent now (SNMP checks every varbind before it writes)."""
        self._check("write_value")
        with _bus_refusals():
            control.check_write(self._gw.parts, address, load, key, value)

    async def write_value(self, address, load, key, value):
        """Write one registry value to a device with pass-through priority; the value now in the cache."""
        self._check("write_value")
        with _bus_refusals():
            return await control.write_value(self._gw.parts, address, load, key, value, origin=repr(self.caller))

    async def passthrough(self, address, pdu):
        """Forward a raw Modbus request PDU to a device; its answer PDU. Writes need the policy.

        The meter's own exception answer is raised as ``modbus_rtu.ModbusException``.
        """
        if pdu and pdu[0] in rtu.WRITE_FUNCTIONS:
            self._check("passthrough_write")
        with _bus_refusals():
            return await control.passthrough(self._gw.parts, address, pdu)

    def check_settings(self, changes):
        """Refused unless every change may be made by this caller and is valid (nothing applied)."""
        self._check("set_settings")
        for name in changes:
            try:
                spec = settings_mod.row(name)
            except settings_mod.SettingError as exc:
                raise Refused(BAD_VALUE, str(exc), exc.details()) from None
            if not rights.may_change_setting(self.caller, name, spec[settings_mod.PROFILE]):
                raise Refused(RIGHTS, "%r may not change %s" % (self.caller, name))
        try:
            self._gw.settings.check_many(changes)       # each value, then the cross-checks set_many applies
        except settings_mod.SettingError as exc:
            raise Refused(BAD_VALUE, str(exc), exc.details()) from None
        self._check_network(changes)

    async def set_settings(self, changes):
        """Validate every change, then apply all at once (one atomic write) or none."""
        self.check_settings(changes)
        await self._apply_network(changes)
        old = dict((name, self._gw.settings.get(name)) for name in changes)
        try:
            await self._gw.settings.set_many(changes)
        except settings_mod.SettingError as exc:
            raise Refused(BAD_VALUE, str(exc)) from None
        log.info("%r changed %s", self.caller, ", ".join(sorted(changes)))
        for name in sorted(changes):            # the audit trail: which setting, old -> new (never a secret's value)
            new = self._gw.settings.get(name)
            if new != old[name]:
                audit.audit(self._gw.alarms, "setting-changed", self.caller, "success",
                            **audit.setting_change(name, old[name], new, settings_mod.row(name)[settings_mod.SECRET]))

    def reset_extremes(self, address=None, load=None):
        """Start a new min/max period: every device's, one device's or one load's."""
        self._check("reset_extremes")
        self._gw.extremes.reset(address, load)

    def set_time(self, unix_time):
        """Set the gateway's clock (BACnet TimeSynchronization, the web). Refused when the board cannot.

        Each change is an event-log record ("clock_set"): who (``by``, the caller with its address),
        the time before (``old``) and after (``new``)."""
        self._check("set_time")
        old = self._gw.clock.time()
        try:
            self._gw.set_time(unix_time)
        except (OSError, NotImplementedError, ValueError, OverflowError) as exc:
            raise Refused(UNSUPPORTED, "the clock could not be set: %s" % exc) from None
        self._gw.alarms.record_event({"event": "clock_set", "by": repr(self.caller), "old": old, "new": unix_time})
        log.info("clock set from %.3f to %.3f by %r", old, unix_time, self.caller)

    def start_detection(self, mode=None, synchronise=False):
        """Start an auto-detection (FAST/FULL); Refused(BUSY) while one runs.

        A detection adds and updates devices; ``synchronise`` also removes the devices it does not find
        (a command of its own in the rights table)."""
        self._check("start_detection")
        if synchronise:
            self._check("synchronise_topology")
        discovery = self._gw.discovery
        if discovery is None:
            raise Refused(UNSUPPORTED, "no bus to detect on")
        if self._gw.topology.edit_lock.locked():      # a Devices page's change (a refresh reads the bus) goes first
            raise Refused(BUSY, "the devices are being changed: try again when it is saved")
        try:
            started = discovery.start(mode, remove_missing=bool(synchronise))
        except settings_mod.SettingError as exc:
            raise Refused(BAD_VALUE, str(exc)) from None
        if not started:
            raise Refused(BUSY, "a detection is already running")
        log.info("auto-detection (%s%s) started by %r", discovery.mode, ", synchronise" if synchronise else "",
                 self.caller)
        return discovery.status()

    def acknowledge_alarm(self, number, source):
        """Acknowledge an active system alarm; Refused(NOT_FOUND) when it is not active."""
        self._check("acknowledge_alarm")
        if not self._gw.alarms.acknowledge(number, source, repr(self.caller)):
            raise Refused(NOT_FOUND, "system alarm %r is not active for %r" % (number, source))

    def reset_counters(self, address=None):
        """Zero the communication counters of one device or of all (last success is kept)."""
        self._check("reset_counters")
        for engine in self._gw.engines.values():
            engine.reset_counters(address)
        log.info("communication counters reset%s by %r",
                 "" if address is None else " for address %d" % address, self.caller)

    async def reboot(self):
        """Restart the gateway (Diagnosis); the event log records who asked ("reboot", ``by``). On a Pi the
        daemon stops cleanly and exits with REBOOT_EXIT for systemd (Restart=always) to start it again; the
        simulated board has no supervisor to bring a process back, so there the northbound services are
        closed and opened again in this process (the web server, answering this request, stays).
        Returns ``{"action": "exit"}`` or ``{"action": "services", "restarted": [names]}``."""
        self._check("reboot")
        gw = self._gw
        system = gw.board.kind == "rpi" and gw.board.system_reboot_needed()      # network settings: the system
        gw.alarms.record_event({"event": "reboot", "name": "reboot requested", "by": repr(self.caller),
                                "source": "gateway", "criticality": "information",
                                "detail": "system reboot (network settings)" if system else
                                "daemon restart" if gw.board.kind == "rpi" else "services restart"})
        log.warning("reboot asked by %r", self.caller)
        if system:
            await run_blocking(gw.board.request_system_reboot, gw.state_dir)
        if gw.board.kind == "rpi":
            gw.reboot_requested = repr(self.caller)
            asyncio.get_running_loop().call_later(REBOOT_DELAY_S, os.kill, os.getpid(), signal.SIGTERM)
            return {"action": "exit"}
        restarted = []
        for service in gw.services:
            if hasattr(service, "apply"):          # the switched services (daemon/service.py)
                await service.stop()
                await service.apply()
                restarted.append(service.name)
        return {"action": "services", "restarted": restarted}

    # ================================================================ accounts and sessions (SPEC §7.1)

    def session(self, session_id):
        """The live session behind ``session_id`` as a dict (session, csrf, profile, must_change, language), or
        None; a lookup counts as use (the idle time restarts)."""
        session = self._gw.sessions.lookup(session_id)
        return None if session is None else session.as_dict()

    def session_caller(self, session_id, peer=None):
        """The ``Caller`` a request with ``session_id`` acts as; Refused(AUTH) without a live session,
        Refused(MUST_CHANGE) while its password must be changed (nothing else is allowed then)."""
        session = self._gw.sessions.lookup(session_id)
        if session is None:
            raise Refused(AUTH, "not logged in, or the session ended")
        if session.must_change:
            raise Refused(MUST_CHANGE, "the password of the %s profile must be changed first"
                          % accounts.PROFILE_NAMES[session.profile])
        return Caller("web", session.profile, peer)

    def csrf_ok(self, session_id, token):
        """Whether ``token`` is the CSRF token of the live session ``session_id``."""
        session = self._gw.sessions.lookup(session_id, touch=False)
        return session is not None and self._gw.sessions.csrf_ok(session, token)

    def account_state(self, profile):
        """A profile's password state: default, expiry (wall time), seconds still locked, Totem's lock."""
        return self._gw.accounts.state(profile)

    async def login(self, profile, password="", language=None, replacing=None):
        """Log ``profile`` in; the new session as ``session()`` returns it. The session ``replacing`` (the id
        the client had before) ends: an id never survives a login. Refused(AUTH, LOCKED, BUSY, BAD_VALUE)."""
        self._check("login")
        if language is not None and not (isinstance(language, str) and 0 < len(language) <= 8
                                         and language.replace("-", "").isalpha()):
            raise Refused(BAD_VALUE, "a language is a short code such as en or fr")
        with _account_refusals():
            must_change = await self._gw.accounts.authenticate(profile, password, repr(self.caller))
        self._gw.sessions.end(replacing)
        return self._gw.sessions.create(profile, must_change, language, self.caller.peer).as_dict()

    def logout(self, session_id):
        """End the session (False when there was none)."""
        return self._gw.sessions.end(session_id)

    async def change_password(self, session_id, current, new, profile=None):
        """Change a password from the session ``session_id``, proven by its own ``current`` password: its
        profile's own (allowed even while a change is due), or, for Cyber Security, ``profile``'s. Every
        session of the changed profile ends; the session to use from now on is returned (a new one when
        the own password changed)."""
        session = self._gw.sessions.lookup(session_id)
        if session is None:
            raise Refused(AUTH, "not logged in, or the session ended")
        target = session.profile if profile is None else profile
        caller = Caller("web", session.profile, self.caller.peer)
        door = self.as_caller(caller)
        if target == session.profile:
            door._check("change_password")
        else:
            if session.must_change:
                raise Refused(MUST_CHANGE, "change your own password first")
            door._check("set_password")
        with _account_refusals():
            await self._gw.accounts.change_password(target, new, current, session.profile, repr(caller))
        self._gw.sessions.end_profile(target)
        if target != session.profile:
            return session.as_dict()
        return self._gw.sessions.create(target, False, session.language, self.caller.peer).as_dict()

    async def unlock_totem(self):
        """Let the Totem User profile log in (Cyber Security)."""
        self._check("unlock_totem")
        with _account_refusals():
            await self._gw.accounts.set_totem_locked(False, repr(self.caller))

    async def lock_totem(self):
        """Lock the Totem User profile again; its sessions end (Cyber Security)."""
        self._check("lock_totem")
        with _account_refusals():
            await self._gw.accounts.set_totem_locked(True, repr(self.caller))
        self._gw.sessions.end_profile("totem")

    async def generate_recovery_passphrase(self):
        """A new one-time passphrase that recovers the Cyber Security password: shown once, kept hashed."""
        self._check("generate_recovery_passphrase")
        with _account_refusals():
            return await self._gw.accounts.generate_passphrase(repr(self.caller))

    async def recover_with_passphrase(self, passphrase, new_password):
        """Set the Cyber Security password with the recovery passphrase, which is used up; Cyber Security's
        sessions end. A wrong passphrase counts as a failed login of the profile."""
        self._check("recover_password")
        with _account_refusals():
            await self._gw.accounts.recover(passphrase, new_password, repr(self.caller))
        self._gw.sessions.end_profile("cyber")

    # ================================================================ network, customisation, accounts (issue 14)

    def _check_network(self, changes):
        """Refused(BAD_VALUE) with one message per field when ``changes`` leave a network configuration the
        system could not use (a static address that is the subnet's own, a gateway outside it...)."""
        if not _touches_network(changes):
            return
        found = netconfig.problems(_network_config(self._gw.settings, changes))
        if found:
            details = [{"field": field, "key": NETWORK_PROBLEMS[problem], "params": params}
                       for field, problem, params in found]
            raise Refused(BAD_VALUE, "; ".join("%s: %s" % (field, problem.replace("_", " "))
                                               for field, problem, _params in found), details)

    async def _apply_network(self, changes):
        """Give the board the network configuration ``changes`` lead to (before they are stored: a board that
        cannot write it refuses the change, and nothing is saved). It takes effect at the next boot."""
        if not _touches_network(changes):
            return
        config = _network_config(self._gw.settings, changes)
        try:
            written = await run_blocking(self._gw.board.apply_network, config, self._gw.state_dir)
        except NotImplementedError:
            raise Refused(UNSUPPORTED, "this board cannot change the network configuration") from None
        except OSError as exc:
            raise Refused(STORAGE, "the network configuration could not be written: %s" % exc.strerror) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        self._gw.alarms.record_event({"event": "network_configured", "name": "network configuration saved",
                                      "by": repr(self.caller), "source": "gateway", "criticality": "information",
                                      "detail": "DHCP" if config["dhcp"] else "%s/%s" % (config["address"],
                                                                                         config["netmask"])})
        log.info("network configuration written by %r for the next boot: %s", self.caller, ", ".join(written or ()))

    async def picture_infos(self):
        """{kind: {type, width, height, size, version} or None} of the customisation pictures (anyone: the pages
        show them)."""
        return await pictures.store_for(self._gw.state_dir).infos()

    def picture_limits(self):
        """{kind: (most bytes, widest, tallest)} of the customisation pictures (daemon/pictures.py)."""
        return dict(pictures.KINDS)

    async def picture(self, kind):
        """(info, bytes) of a customisation picture, or None."""
        if kind not in pictures.KINDS:
            return None
        return await pictures.store_for(self._gw.state_dir).get(kind)

    @_picture_refusals
    async def set_picture(self, kind, declared_type, data):
        """Store the company logo or the background (SPEC §7.2) once it is checked (daemon/pictures.py)."""
        self._check("customise")
        info = await pictures.store_for(self._gw.state_dir).put(kind, declared_type, data)
        self._gw.alarms.record_event({"event": "customised", "name": "%s picture set" % kind, "by": repr(self.caller),
                                      "source": "gateway", "criticality": "information",
                                      "detail": "%s %dx%d" % (info["type"], info["width"], info["height"])})
        log.info("%s picture set by %r: %s %dx%d, %d bytes", kind, self.caller, info["type"], info["width"],
                 info["height"], info["size"])
        return info

    @_picture_refusals
    async def reset_picture(self, kind):
        """Back to the default (no picture); Refused(NOT_FOUND) for an unknown kind."""
        self._check("customise")
        if kind not in pictures.KINDS:
            raise Refused(NOT_FOUND, "no picture kind %r" % kind[:32])
        removed = await pictures.store_for(self._gw.state_dir).delete(kind)
        if removed:
            self._gw.alarms.record_event({"event": "customised", "name": "%s picture removed" % kind,
                                          "by": repr(self.caller), "source": "gateway", "criticality": "information"})
        return removed

    def accounts_overview(self):
        """Each profile's password state for the Cyber Security's accounts page: default, must change, expiry,
        seconds locked, Totem's lock; and whether a recovery passphrase exists (never the passphrase)."""
        self._check("manage_accounts")
        accounts_ = self._gw.accounts
        now = self._gw.clock.time()
        profiles = []
        for profile in rights.PROFILES:
            state = dict(accounts_.state(profile))
            if state.get("password"):
                expires = state.get("expires")
                state["must_change"] = bool(state["default"]) or (expires is not None and now >= expires)
            profiles.append(state)
        return {"profiles": profiles, "recovery_passphrase": accounts_.has_recovery_passphrase(),
                "time": now, "max_attempts": self.setting("session.max_attempts"),
                "lockout_s": self.setting("session.lockout_s")}

    # ================================================================ the Devices pages (SPEC §7.2, issue 14)
    # Sources (add by hand, edit, delete, refresh), Circuits (name, fluid, usage per load), Usages (custom ones).
    # Every change goes through Topology.replace (the SPEC §1 limits, all or nothing); a form's refusal is
    # Refused(BAD_VALUE) with one detail per field (daemon/state/devicefields.py).

    def _usages(self):
        """The usages store of this gateway (daemon/state/usages.py, read when the gateway is built)."""
        return self._gw.usages

    def _baud_or_none(self, bus):
        try:
            return self._gw.settings.get("bus.%s.baud" % bus)
        except (KeyError, ValueError):
            return None

    def devices_catalogue(self):
        """What the Devices forms offer: addable products, buses, fluids, usages, the name bound, the limits."""
        return {"products": devicefields.products(), "buses": list(BUS_NAMES), "fluids": list(usages_mod.FLUIDS),
                "usages": self._usages().listing(), "max_name": usages_mod.MAX_NAME,
                "default_fluid": usages_mod.DEFAULT_FLUID, "default_usage": usages_mod.DEFAULT_USAGE,
                "address_range": [devicefields.MIN_ADDRESS, devicefields.MAX_ADDRESS],
                "limits": {"devices": topology_mod.MAX_DEVICES, "circuits": topology_mod.MAX_CIRCUITS,
                           "slow_baud": topology_mod.SLOW_BAUD, "devices_slow": topology_mod.MAX_DEVICES_SLOW}}

    def sources(self):
        """The Sources table: the gateway first (it cannot be deleted), then every device with its
        communication state and the age of its values and of its last answer."""
        now = self._gw.clock.time()
        identity = self.identity()
        rows = [{"gateway": True, "reference": identity["product"], "name": identity["name"],
                 "area": identity["area"], "address": identity["modbus_address"], "bus": "ethernet",
                 "netid": identity["netid"], "serial": identity["serial"], "status": devstate.OK, "age_s": 0.0,
                 "networks": [], "loads": 0, "not_found": False}]
        for device in self.devices():
            summary = self.device_summary(device.address)
            last = summary.last_success
            rows.append({"gateway": False, "reference": device.reference, "name": device.name, "area": device.area,
                         "address": device.address, "bus": device.bus, "netid": device.netid, "serial": device.serial,
                         "status": summary.state, "age_s": None if summary.age is None else round(summary.age, 1),
                         "last_success_age_s": None if last is None else round(max(0.0, now - last), 1),
                         "networks": sorted(set(x.get("network", "3P+N") for x in device.loads)),
                         "loads": len(device.loads), "not_found": device.not_found})
        return rows

    def circuits(self):
        """Every load of every device: its device, number, network type, name, fluid and usage."""
        return [{"address": d.address, "device": d.name, "reference": d.reference, "area": d.area,
                 "load": x["load"], "network": x.get("network", "3P+N"), "name": x.get("name", ""),
                 "fluid": usages_mod.fluid_of(x), "usage": usages_mod.usage_of(x),
                 "status": self.device_link(d.address)}
                for d in self.devices() for x in d.loads]

    def usage_counts(self):
        """{usage key: loads that have it} (a load without one counts as the default usage)."""
        counts = {}
        for device in self._gw.topology.devices:
            for load in device.loads:
                key = usages_mod.usage_of(load)
                counts[key] = counts.get(key, 0) + 1
        return counts

    def _editing(self, command="edit_topology"):
        self._check(command)
        discovery = self._gw.discovery
        if discovery is not None and discovery.running():
            raise Refused(BUSY, "a detection is running: change the devices when it has ended")

    async def _replace_devices(self, devices, what):
        """Topology.replace with the refusals said per field; BAD_VALUE, STORAGE or BUSY change nothing."""
        details = devicefields.limit_details(devices, self._baud_or_none)
        if details:
            raise Refused(BAD_VALUE, "%s refused: %s" % (what, ", ".join(d["key"].rsplit(".", 1)[-1]
                                                                          for d in details)), details)
        try:
            await self._gw.topology.replace(devices)
        except topology_mod.TopologyRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [devicefields.detail(None, "web.devices.error.topology")]) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        except OSError as exc:
            raise Refused(STORAGE, "the topology could not be saved: %s" % exc) from None

    @staticmethod
    def _form_refused(what, details):
        raise Refused(BAD_VALUE, "%s refused: %s" % (what, ", ".join(sorted(set(str(d["field"]) for d in details)))),
                      details)

    async def add_device(self, fields):
        """Add a device by hand: {bus, address, reference, name, area[, netid, serial]}; the device added."""
        self._editing()
        if not isinstance(fields, dict):
            self._form_refused("device", [devicefields.detail(None, "web.devices.error.object")])
        clean, details = devicefields.check_device(fields, BUS_NAMES, creating=True)
        if details:
            self._form_refused("device", details)
        topology = self._gw.topology
        async with topology.edit_lock:
            device = devicefields.new_device(clean)
            if device.netid and any(d.uid == device.uid for d in topology.devices):
                self._form_refused("device", [devicefields.detail("netid", "web.devices.error.netid_taken")])
            await self._replace_devices(topology.devices + [device], "device")
        log.info("%r added %r", self.caller, device)
        return device.as_dict()

    async def edit_device(self, address, fields):
        """Change a device's name, area, address or bus (the limits checked again); the device as it is now."""
        self._editing()
        if not isinstance(fields, dict) or not fields:
            self._form_refused("device", [devicefields.detail(None, "web.devices.error.object")])
        clean, details = devicefields.check_device(fields, BUS_NAMES, creating=False)
        if details:
            self._form_refused("device", details)
        topology = self._gw.topology
        async with topology.edit_lock:
            old = topology.device(address)
            if old is None:
                raise Refused(NOT_FOUND, "no device at address %r" % address)
            new = devicefields.edited_device(old, clean)
            await self._replace_devices([new if d is old else d for d in topology.devices], "device")
        log.info("%r edited %r: %s", self.caller, new, ", ".join(sorted(clean)))
        return new.as_dict()

    async def delete_devices(self, targets):
        """Delete devices by address; "gateway" (the gateway's own row) is refused, as an unknown address."""
        self._editing()
        topology = self._gw.topology
        async with topology.edit_lock:
            details = []
            if not isinstance(targets, list) or not targets or len(targets) > topology_mod.MAX_DEVICES + 1:
                details.append(devicefields.detail("addresses", "web.devices.error.selection",
                                                   max=topology_mod.MAX_DEVICES + 1))
            else:
                for target in targets:
                    if target == "gateway":
                        details.append(devicefields.detail("gateway", "web.devices.error.gateway"))
                    elif type(target) is not int or topology.device(target) is None:
                        details.append(devicefields.detail("addresses", "web.devices.error.no_device",
                                                           address=str(target)[:16]))
            if details:
                self._form_refused("deletion", details)
            gone = set(targets)
            await self._replace_devices([d for d in topology.devices if d.address not in gone], "deletion")
        log.info("%r deleted the devices at %s", self.caller, ", ".join(str(a) for a in sorted(gone)))
        return sorted(gone)

    async def refresh_devices(self, addresses=None):
        """Read the identification of the devices at ``addresses`` (all for None) again on their buses:
        [{address, result}] with result same / other_product / silent / conflict / unknown / no_bus
        (refresh.py); a device that does not answer is kept and flagged not found."""
        self._editing()
        discovery = self._gw.discovery
        if discovery is None:
            raise Refused(UNSUPPORTED, "no bus to read the devices on")
        topology = self._gw.topology
        async with topology.edit_lock:
            if addresses is None:
                targets = list(topology.devices)
            else:
                targets = [topology.device(a) for a in addresses]
                if None in targets:
                    raise Refused(NOT_FOUND, "no device at address %s" % addresses[targets.index(None)])
            results, replaced = [], {}
            for device in targets:
                engine = self._gw.engines.get(device.bus)
                if engine is None or device.link is not None:     # a generic device has no identification
                    results.append({"address": device.address, "result": "no_bus"})
                    continue
                with _bus_refusals():
                    outcome, found = await refresh.identify(discovery, engine, device)
                answer = {"address": device.address, "result": outcome}
                if outcome == refresh.SAME:
                    replaced[device.address] = refresh.refreshed(device, found)
                elif outcome == refresh.SILENT:
                    replaced[device.address] = refresh.silent(device)
                elif outcome == refresh.OTHER:
                    answer["reference"] = found.reference
                results.append(answer)
            await self._replace_devices([replaced.get(d.address, d) for d in topology.devices], "refresh")
        log.info("%r refreshed %d devices", self.caller, len(results))
        return results

    async def edit_circuits(self, form):
        """Name, fluid and usage of one load, or the same fluid / usage / name pattern for several
        (devicefields.check_circuit_edit); how many loads changed."""
        self._editing()
        if not isinstance(form, dict):
            self._form_refused("circuits", [devicefields.detail(None, "web.devices.error.object")])
        topology = self._gw.topology
        async with topology.edit_lock:
            edits, details = devicefields.check_circuit_edit(form, topology.devices, self._usages().known)
            if details:
                self._form_refused("circuits", details)
            await self._replace_devices(devicefields.with_circuit_edits(topology.devices, edits), "circuits")
        log.info("%r edited %d circuits", self.caller, len(edits))
        return len(edits)

    async def _usage_change(self, change, *args):
        self._check("edit_usages")
        try:
            return await change(*args)
        except usages_mod.UsageRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [exc.detail]) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        except OSError as exc:
            raise Refused(STORAGE, "the usages could not be saved: %s" % exc) from None

    async def add_usage(self, name):
        """A custom usage; its key (custom-<n>)."""
        key = await self._usage_change(self._usages().add, name)
        log.info("%r added the usage %s (%r)", self.caller, key, name)
        return key

    async def rename_usage(self, key, name):
        await self._usage_change(self._usages().rename, key, name)

    async def delete_usage(self, key):
        """Delete a custom usage; refused while a load has it (change those loads first)."""
        async with self._gw.topology.edit_lock:        # no circuit gets it while it goes
            in_use = devicefields.usage_count(self._gw.topology.devices, key)
            await self._usage_change(self._usages().delete, key, in_use)

    # ================================================================ the System page (issue 15)
    # daemon/system/service.py does the work; its own refusals come out as Refused(SYSTEM) with ``why`` (a
    # backup's "password", "damaged", "foreign", a package's reason, "no_slots", "busy"...) for the page.

    def _audit(self, event, outcome, **fields):
        """One audit-trail record of this caller (daemon/security/audit.py): time, profile, client, outcome."""
        audit.audit(self._gw.alarms, event, self.caller, outcome, **fields)

    def start_backup(self, kind, password):
        """Start making a ``kind`` backup ("configuration" or "full") encrypted under ``password``; the job."""
        self._check("backup")
        with self._audited("backup", kind=kind), _system_refusals():
            return self._gw.system.start_backup(kind, password, repr(self.caller))

    @contextlib.contextmanager
    def _audited(self, event, **fields):
        """Audit ``event``: success when the block returns, refused (and why) when it raises Refused or the
        System page's own refusal."""
        try:
            yield
        except (Refused, SystemRefused) as exc:
            self._audit(event, "refused", why=getattr(exc, "why", None) or getattr(exc, "reason", ""), **fields)
            raise
        self._audit(event, "success", **fields)

    def backup_job(self, job_id):
        """The backup job ``job_id`` (state, phase, done, total, file, size) or None."""
        self._check("backup")
        return self._gw.system.job(job_id)

    def backup_file(self, job_id):
        """(file name, path) of the finished backup ``job_id``, or None."""
        self._check("backup")
        return self._gw.system.backup_path(job_id)

    async def restore_backup(self, path, password):
        """Restore the uploaded backup at ``path`` (all or nothing); what was restored."""
        self._check("restore")
        with self._audited("restore"), _system_refusals():
            return await self._gw.system.restore(path, password, repr(self.caller))

    async def reset_topology(self):
        """Forget every device (detection finds them again); how many were removed."""
        self._check("reset_topology")
        with self._audited("reset-topology"):
            return await self._gw.system.reset_topology(repr(self.caller))

    async def factory_reset(self):
        """Everything back to the factory state at the next start (daemon/system/reset.py), then restart."""
        self._check("factory_reset")
        with self._audited("factory-reset"):
            await self._gw.system.factory_reset(repr(self.caller))
        return await self.reboot()

    def upgrade_state(self):
        """The running version and the slots ({active, trial, slots}), None without an installation."""
        self._check("upgrade")
        return {"version": VERSION, "slots": self._gw.system.slots()}

    async def install_upgrade(self, path):
        """Verify the uploaded package at ``path`` and install it into the inactive slot; {version, slot}."""
        self._check("upgrade")
        with self._audited("upgrade"), _system_refusals():
            return await self._gw.system.upgrade(path, repr(self.caller))

    def spool_dir(self):
        """Where the web spools an uploaded body (a backup, a package) while it arrives."""
        return os.path.join(self._gw.state_dir, "spool")


    # ================================================================ issue 15: web certificate, CA store

    def web_certificate(self):
        """The served certificate's summary (subject, issuer, validity, SHA-256, self-signed) and its alarm-7
        state; Cyber Security only."""
        self._check("manage_certificates")
        return _certificate_view(self._gw.webtls.web, self._gw.clock.time())

    @_tls_refusals
    async def install_web_certificate(self, cert_pem, key_pem):
        """Check the uploaded pair (tlsfiles.check_pair, off the loop) and serve it to new HTTPS connections at
        once; Refused(BAD_VALUE) with the field and catalogue key of the first problem, nothing changed."""
        self._check("manage_certificates")
        info = await self._gw.webtls.install(cert_pem, key_pem, _utc_now(self._gw.clock))
        self._certificate_event("web certificate installed", info)
        return _certificate_view(info, self._gw.clock.time())

    @_tls_refusals
    async def regenerate_web_certificate(self):
        """A new self-signed certificate for the gateway's own names, served at once."""
        self._check("manage_certificates")
        info = await self._gw.webtls.regenerate(webtls.own_names(self._gw.settings.get), _utc_now(self._gw.clock))
        self._certificate_event("self-signed web certificate made", info)
        return _certificate_view(info, self._gw.clock.time())

    def ca_certificates(self):
        """The CA store: issued to, issued by, validity, fingerprint and state of each."""
        self._check("manage_certificates")
        now = self._gw.clock.time()
        return [_certificate_view(info, now) for info in self._gw.webtls.cas]

    @_tls_refusals
    async def add_ca_certificates(self, pem):
        """Add the CA certificates of one PEM upload (tlsfiles.check_ca); those already there are kept once."""
        self._check("manage_certificates")
        added = await self._gw.webtls.add_cas(pem, _utc_now(self._gw.clock))
        for info in added:
            self._certificate_event("CA certificate added", info)
        return [_certificate_view(info, self._gw.clock.time()) for info in added]

    @_tls_refusals
    async def delete_ca_certificate(self, ca_id):
        """Remove one CA from the store by its fingerprint id; Refused(NOT_FOUND) when there is none."""
        self._check("manage_certificates")
        info = next((entry for entry in self._gw.webtls.cas if entry["id"] == ca_id), None)
        if info is None or not await self._gw.webtls.delete_ca(ca_id):
            raise Refused(NOT_FOUND, "no CA certificate %r in the store" % str(ca_id)[:80])
        self._certificate_event("CA certificate deleted", info)

    def web_ssl_context(self):
        """The HTTPS server's SSLContext for new connections (None when no certificate could be loaded)."""
        return self._gw.webtls.context

    def on_web_certificate_change(self, listener):
        """``listener()`` after the web certificate or the CA store changed."""
        self._gw.webtls.on_change(listener)

    def tls_client_context(self):
        """An SSLContext for the gateway's own TLS clients (FTPS, SMTPS, HTTPS push, MQTT): it verifies servers
        against the CA store only (docs/architecture.md, "HTTPS and the CA store")."""
        return self._gw.webtls.client_context()

    def _certificate_event(self, name, info):
        """A certificate or CA change in the audit trail (the certificate's subject and fingerprint, never a key)."""
        self._audit("certificate", "success", name=name, subject=info["subject"], sha256=info["sha256"],
                    detail="%s (SHA-256 %s)" % (info["subject"], info["sha256"]))

    # ================================================================ the firewall (issue 15)

    def admit(self, ip, port, size=0):
        """Whether this front end may serve a request of ``size`` bytes from client ``ip`` on ``port`` (the
        gateway's firewall: rates, bans, whitelist). Every service's intake asks it; False: drop or close."""
        return self._gw.firewall.admit(ip, self.caller.protocol, port, size)

    def firewall_rules(self):
        """The whitelist's rules, whether it is enforced and the clients banned now (Cyber Security)."""
        self._check("manage_firewall")
        guard = self._gw.firewall
        return {"rules": guard.rules(), "max_rules": firewall_mod.MAX_RULES,
                "enabled": bool(self.setting("firewall.whitelist.enabled")), "banned": guard.firewall.banned(),
                "protocols": list(firewall_mod.PROTOCOLS)}

    async def set_firewall_rules(self, rules):
        """Replace the whitelist's rules: each field checked (one refusal per field), stored, enforced at once,
        the nftables ruleset rewritten; audited with the old and new count."""
        self._check("manage_firewall")
        guard = self._gw.firewall
        problems = guard.problems(rules)
        if problems:
            raise Refused(BAD_VALUE, "; ".join("%s: %s" % item for item in problems),
                          [{"field": field, "key": "firewall.problem." + field.split(".")[-1], "params": {},
                            "message": problem} for field, problem in problems])
        before = guard.rules()
        try:
            await guard.set_rules(rules)
        except OSError as exc:
            raise Refused(STORAGE, "the rules could not be stored: %s" % exc) from None
        audit.audit(self._gw.alarms, "firewall-rules-changed", self.caller, "success",
                    old=len(before), new=len(rules), names=[rule["name"] for rule in rules])
        return guard.rules()

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

    # ================================================================ issue 17: Home

    def home_summary(self):
        """What the Home page shows live (GET /api/home): the gateway's name and time, the active alarms counted by
        criticality (a system alarm once per source it is active for, a device alarm once), every device's state
        and age. No values: it is polled every few seconds by every open Home page, and the values of a device
        weigh ~8 KB of JSON in /api/status."""
        alarms = {"critical": 0, "non-critical": 0, "information": 0}
        for alarm in self.system_alarms():
            alarms[alarm["criticality"]] = alarms.get(alarm["criticality"], 0) + len(alarm["sources"])
        for alarm in self.device_alarms():
            alarms[alarm["criticality"]] = alarms.get(alarm["criticality"], 0) + 1
        devices = []
        for device in self.devices():
            summary = self.device_summary(device.address)
            devices.append({"address": device.address, "bus": device.bus, "reference": device.reference,
                            "name": device.name, "status": summary.state,
                            "age_s": None if summary.age is None else round(summary.age, 1)})
        return {"gateway": {"name": self.setting("gateway.name"), "time": self.time()}, "alarms": alarms,
                "devices": devices}


    # ================================================================ issue 17: alarms and events
    # The Alarms and events page (SPEC §6, manual §8.3) reads the event log as alarm occurrences, filtered and
    # paged on the gateway (daemon/state/alarmlog.py, in the executor): the browser never gets the whole log.
    # Acknowledging is ``acknowledge_alarm`` (system alarms: the device alarms are acknowledged on the meters).

    def _alarm_inputs(self):
        """What the occurrences are built from, copied on the loop: the log, the live active sets, the names."""
        gw = self._gw
        names = dict((device_source(d.bus, d.address), d.name) for d in gw.topology.devices)
        system_active = dict((key, dict(state)) for key, state in gw.alarms.active.items())
        device_active = dict(gw.device_alarms.active)
        return gw.alarms.events(), system_active, device_active, names, gw.clock.time()

    @staticmethod
    def _alarm_query(params):
        """{name: text} of a request's period, filters and paging -> the checked query, else Refused(BAD_VALUE)."""
        try:
            return alarmlog.parse_query(params)
        except alarmlog.BadQuery as exc:
            raise Refused(BAD_VALUE, str(exc)) from None

    async def alarm_occurrences(self, params):
        """{"total", "page", "size", "rows" (one page, newest first), "active" (occurrences active in the whole
        log), "sources" ([{source, name}] for the filter), "now"} of the occurrences that pass ``params``
        (alarmlog.parse_query: from, to, type, status, category, criticality, source, page, size as texts).
        Refused(BAD_VALUE) for a bad filter, Refused(BUSY) when the executor is full."""
        query = self._alarm_query(params)
        records, system_active, device_active, names, now = self._alarm_inputs()

        def build():
            rows = alarmlog.occurrences(records, system_active, device_active, names, now)
            found = alarmlog.select(rows, query, now)
            return {"total": len(found), "page": query["page"], "size": query["size"],
                    "rows": alarmlog.page_of(found, query), "active": sum(r["status"] == "active" for r in rows),
                    "sources": alarmlog.source_options(rows, names), "now": now}
        try:
            return await run_blocking(build)
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None

    async def alarm_export(self, params):
        """(file name, zip bytes) of every occurrence that passes ``params`` (as ``alarm_occurrences``, paging
        ignored): alarms.csv and events.csv, named after the gateway and the day."""
        query = self._alarm_query(params)
        records, system_active, device_active, names, now = self._alarm_inputs()
        offset, name = self.local_offset_s(), self._gw.settings.get("gateway.name")

        def build():
            rows = alarmlog.occurrences(records, system_active, device_active, names, now)
            return alarmlog.export_zip(alarmlog.select(rows, query, now), offset, name, now)
        try:
            return await run_blocking(build)
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
    # ================================================================ issue 17: trends
    # The Trends page reads the stored curves as the exports do (series_catalogue above is the push's), but for
    # a web profile, aggregated in local-time buckets and bounded so one answer draws one chart; and each
    # profile keeps its favourite selections (daemon/state/favourites.py).

    async def trend_catalogue(self):
        """Every stored curve of a device of the topology: name, kind, category ("measure": load curves and
        the meters' histories; "meter": consumption), key, unit, name (the registry's English words), address,
        device, reference, load, load_name, period_s, counter, first, newest."""
        self._check("read_trends")
        storage = self._gw.storage
        if storage is None or not storage.ready:
            return []
        devices = dict((d.uid, d) for d in self._gw.topology.devices)
        out = []
        for name, info in sorted((await run_blocking(storage.store.series)).items()):
            try:
                kind, uid, load, key = curves.parse_series_name(name)
                row = registry.get(key)
            except (ValueError, KeyError):
                continue                                   # not a curve of ours (a tool's series)
            device = devices.get(uid)
            if device is None:
                continue                                   # a device no longer in the topology
            load_row = next((x for x in device.loads if x["load"] == load), {})
            out.append(dict(info, name=name, kind=kind, category=TREND_CATEGORIES[kind], key=key,
                            unit=row[registry.UNIT], label=row[registry.NAME], address=device.address,
                            device=device.name, reference=device.reference, load=load,
                            load_name=load_row.get("name", "")))
        return out

    async def trend_series(self, names, start, end, step):
        """{"utc_offset_s", "step", "series": [{name, step, counter, period_s, t, v, q[, min, max, count]}]}:
        the points of ``names`` whose interval starts in [start, end), raw (``step`` "raw") or in local-time
        buckets ("hour", "day", "week", "month": sums for counters, means with min/max for gauges; q "good",
        "partial", "missing"). A raw point's q is the store's quality name ("missing" has v None).
        Refused(BAD_VALUE) past TREND_MAX_NAMES series or TREND_MAX_POINTS points in one answer (details: a
        catalogue key saying which), Refused(NOT_FOUND) for a series the store does not hold."""
        self._check("read_trends")
        names = list(names)
        if step not in TREND_STEPS:
            raise Refused(BAD_VALUE, "step must be one of %s" % ", ".join(TREND_STEPS))
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
            raise Refused(BAD_VALUE, "from and to must be Unix seconds with from < to")
        if not 1 <= len(names) <= TREND_MAX_NAMES or len(set(names)) != len(names):
            raise Refused(BAD_VALUE, "ask for 1 to %d different series at a time" % TREND_MAX_NAMES,
                          [{"field": "names", "key": "web.trends.error.too_many_series",
                            "params": {"max": TREND_MAX_NAMES}}])
        storage = self._gw.storage
        if storage is None or not storage.ready:
            raise Refused(UNSUPPORTED, "the time-series store is not available")
        held = await run_blocking(storage.store.series)
        unknown = [n for n in names if n not in held]
        if unknown:
            raise Refused(NOT_FOUND, "no stored series %s" % ", ".join(unknown))
        points = sum(-(-(end - start) // (held[n]["period_s"] if step == "raw" else TREND_BUCKET_S[step]))
                     for n in names)
        if points > TREND_MAX_POINTS:
            raise Refused(BAD_VALUE, "%d points asked for, more than the %d one answer holds: choose a coarser "
                          "step or a shorter period" % (points, TREND_MAX_POINTS),
                          [{"field": "step", "key": "web.trends.error.too_many_points",
                            "params": {"points": points, "max": TREND_MAX_POINTS}}])
        offset, store = self.local_offset_s(), storage.store

        def read():
            found = store.query(names, start, end, None if step == "raw" else step, offset)
            return [_trend_answer(found[n], held[n]["period_s"]) for n in names]
        return {"utc_offset_s": offset, "step": step, "from": start, "to": end, "series": await run_blocking(read)}

    def _favourites_owner(self):
        self._check("trend_favourites")
        if self.caller.protocol != "web":
            raise Refused(RIGHTS, "favourites belong to a web profile")
        return self._gw.state_dir, self.caller.profile

    async def trend_favourites(self):
        """This caller's profile's favourites (each {name, series, period, step, mode, scale, table})."""
        state_dir, profile = self._favourites_owner()
        return await run_blocking(favourites.listing, state_dir, profile)

    async def save_trend_favourite(self, favourite):
        """Save ``favourite`` for this caller's profile (one of the same name is replaced): {favourite,
        replaced}. Refused(BAD_VALUE) with the field and catalogue key; Refused(STORAGE) when not written."""
        state_dir, profile = self._favourites_owner()
        try:
            stored, replaced = await run_blocking(favourites.save, state_dir, profile, favourite)
        except favourites.FavouriteRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [{"field": exc.field, "key": exc.key, "params": exc.params}]) \
                from None
        except OSError as exc:
            raise Refused(STORAGE, "the favourites could not be written: %s" % exc.strerror) from None
        return {"favourite": stored, "replaced": replaced}

    async def delete_trend_favourite(self, name):
        """Delete this caller's profile's favourite ``name``; Refused(NOT_FOUND) when it has none."""
        state_dir, profile = self._favourites_owner()
        try:
            deleted = await run_blocking(favourites.delete, state_dir, profile, name)
        except OSError as exc:
            raise Refused(STORAGE, "the favourites could not be written: %s" % exc.strerror) from None
        if not deleted:
            raise Refused(NOT_FOUND, "no favourite named %r" % (name,))
    # ================================================================ issue 17: the Monitor view
    # The Monitor page's long-poll (webconfig/monitor_live.py) answers after every batch a poller stores for the
    # watched load: it reads that one row, not every load of the device as ``snapshot`` and ``device_summary`` do.

    def monitor_row(self, address, load):
        """({key: Reading} of one load's row (load 0: the device's own values), the device's state as
        ``device_summary`` says it but judged on this row (its link; stale when a value of the row is))."""
        cache = self._gw.cache
        readings = dict((key, cache.get(address, load, key)) for key in cache.keys(address, load))
        stale = any(reading.quality == STALE for reading in readings.values())
        return readings, devstate.device_state(self.device_link(address), stale)

    # ================================================================ issue 17: hierarchies
    # The hierarchies (manual §9.7, daemon/state/hierarchies.py): every profile reads them (the Consumption
    # page's organisation), Admin and Cyber Security change them, one operation at a time.

    def _hierarchies(self):
        return self._gw.hierarchies

    def hierarchies(self):
        """[{id, name, fluid, items: [{id, kind, parent, name/circuit/ref[, meter]}]}], the limits."""
        self._check("read_consumption")
        return {"hierarchies": self._hierarchies().listing(), "max_hierarchies": hierarchies_mod.MAX_HIERARCHIES,
                "max_nodes": hierarchies_mod.MAX_NODES, "max_circuits": hierarchies_mod.MAX_CIRCUITS}

    async def change_hierarchies(self, change):
        """Apply one change ({op: create|rename|delete|add|meter|move|remove, ...}); what it returns (a new
        hierarchy's or item's id). Refused(BAD_VALUE) with the field and catalogue key of the rule it breaks,
        Refused(STORAGE) when not written."""
        self._check("edit_hierarchies")
        circuits = dict(("%d:%d" % (c["address"], c["load"]), c["fluid"]) for c in self.circuits())
        try:
            result = await self._hierarchies().change(change, circuits)
        except hierarchies_mod.HierarchyRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [{"field": exc.field, "key": exc.key, "params": exc.params}]) \
                from None
        except OSError as exc:
            raise Refused(STORAGE, "the hierarchies could not be written: %s" % exc.strerror) from None
        log.info("%r changed the hierarchies: %s", self.caller, change.get("op"))
        return result
    # ================================================================ issue 17: photoview
    # The photoview pages (SPEC §7.2, manual §8.4/§9.8: daemon/state/photoviews.py): every profile reads them,
    # Admin and Cyber Security make them. Their live values are the Monitor's (monitor_row), read by the page.

    async def _photoview_call(self, command, func, *args):
        """``func(state_dir, *args)`` in the executor once ``command`` is allowed; the store's refusals as the
        door's (BAD_VALUE with the field and catalogue key, NOT_FOUND for an unknown page)."""
        self._check(command)
        try:
            return await run_blocking(func, self._gw.state_dir, *args)
        except photoviews.PhotoviewRefused as exc:
            reason = NOT_FOUND if exc.key == "web.photoview.error.no_page" else BAD_VALUE
            raise Refused(reason, str(exc), [{"field": exc.field, "key": exc.key, "params": exc.params}]) from None
        except pictures.PictureRefused as exc:
            raise Refused(BAD_VALUE, str(exc), [{"field": "file", "key": exc.key, "params": exc.params}]) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        except OSError as exc:
            raise Refused(STORAGE, "the photoview could not be written: %s" % exc.strerror) from None

    def photoview_limits(self):
        """The bounds the editor says and the store applies."""
        most, widest, tallest = photoviews.BACKGROUND
        return {"pages": photoviews.MAX_PAGES, "widgets": photoviews.MAX_WIDGETS, "name": photoviews.MAX_NAME,
                "text": photoviews.MAX_TEXT, "keys": photoviews.MAX_KEYS, "canvas": list(photoviews.DEFAULT_CANVAS),
                "background": {"bytes": most, "width": widest, "height": tallest}}

    async def photoview_pages(self):
        """Every page ({id, name, background, widgets}) with its canvas size (the background's, else the default)."""
        pages = await self._photoview_call("read_photoviews", photoviews.listing)
        for page in pages:
            page["canvas"] = list(photoviews.canvas(page))
        return pages

    async def create_photoview(self, name):
        page = await self._photoview_call("edit_photoviews", photoviews.create, name)
        log.info("photoview page %s (%r) made by %r", page["id"], page["name"], self.caller)
        return page

    async def save_photoview(self, page_id, name, widgets):
        """Replace a page's name and widgets, every widget checked (nothing written on a refusal)."""
        page = await self._photoview_call("edit_photoviews", photoviews.save, page_id, name, widgets)
        log.info("photoview page %s saved by %r: %d widgets", page_id, self.caller, len(page["widgets"]))
        return page

    async def delete_photoview(self, page_id):
        await self._photoview_call("edit_photoviews", photoviews.delete, page_id)
        log.info("photoview page %s deleted by %r", page_id, self.caller)

    async def set_photoview_background(self, page_id, declared_type, path):
        """The uploaded file at ``path`` (spooled to disk) as the page's background once checked."""
        def from_file(state_dir, page_id, declared_type, path):
            with open(path, "rb") as handle:
                data = handle.read(photoviews.BACKGROUND[0] + 1)
            return photoviews.set_background(state_dir, page_id, declared_type, data)
        info = await self._photoview_call("edit_photoviews", from_file, page_id, declared_type, path)
        log.info("photoview page %s background set by %r: %s %dx%d, %d bytes", page_id, self.caller,
                 info["type"], info["width"], info["height"], info["size"])
        return info

    async def photoview_background(self, page_id):
        """(info, bytes) of a page's background, or None."""
        return await self._photoview_call("read_photoviews", photoviews.background, page_id)

    def photoview_devices(self):
        """What the editor offers: each device's loads and the values its rows hold ({address, name, loads:
        [{load, name, keys}]}); load 0 is a device's own values (an I/O block)."""
        self._check("edit_photoviews")
        out = []
        for device in self.devices():
            names = dict((entry["load"], entry.get("name") or "") for entry in device.loads)
            loads = [{"load": load, "name": names.get(load, ""),
                      "keys": sorted(self._gw.cache.keys(device.address, load))}
                     for load in sorted(set(names) | set(self.loads(device.address)))]
            out.append({"address": device.address, "name": device.name, "reference": device.reference,
                        "loads": loads})
        return out

    # ================================================================ issue 17: drag and drop (photoview, hierarchies)
    # The Photoview editor's "drop by location" (manual §9.8: "all the devices from one location") and its resize
    # handle's least size. The hierarchies' drag and drop needs nothing new: a drop sends change_hierarchies.

    def photoview_areas(self):
        """{areas: [{area, addresses}] (each area of the topology in the order of its first device, then "" for the
        devices without one), min_size: the least width and height of an area or icon (the store's)}."""
        self._check("edit_photoviews")
        areas = {}
        for device in self.devices():
            areas.setdefault(device.area or "", []).append(device.address)
        ordered = sorted(areas.items(), key=lambda pair: pair[0] == "")
        return {"areas": [{"area": area, "addresses": addresses} for area, addresses in ordered],
                "min_size": photoviews.MIN_AREA}

    # ================================================================ issue 18: generic Modbus devices
    # Data models (core/datamodel.py, the store daemon/state/datamodels.py) and the devices described by them:
    # on a master bus (link rtu) or over Modbus TCP (link tcp, daemon/runtime/tcplink.py). A refusal is
    # Refused(BAD_VALUE) with one detail per field (and per CSV line); nothing changes.

    def data_model_catalogue(self):
        """What the Data models page and the generic-device form offer: encodings, functions, word orders, the
        standard names with their units, the limits, the models' names, the buses."""
        self._check("read_data_models")
        return {"encodings": sorted(datamodel.ENCODINGS), "functions": list(datamodel.FUNCTIONS),
                "word_orders": list(datamodel.WORD_ORDERS), "columns": list(datamodel.COLUMNS),
                "standard": [{"name": n, "unit": registry.get(datamodel.STANDARD_KEYS[n])[registry.UNIT],
                              "label": registry.get(datamodel.STANDARD_KEYS[n])[registry.NAME]}
                             for n in datamodel.STANDARD_NAMES],
                "limits": {"models": datamodel.MAX_MODELS, "rows": datamodel.MAX_ROWS, "name": datamodel.MAX_NAME,
                           "unit": datamodel.MAX_UNIT, "register_span": datamodel.MAX_REGISTER_SPAN,
                           "bit_span": datamodel.MAX_BIT_SPAN, "csv_bytes": datamodel.MAX_CSV_BYTES},
                "models": self._gw.datamodels.names(), "buses": [b for b in BUS_NAMES if b in self._gw.engines],
                "tcp_bus": topology_mod.TCP_BUS}

    def data_models(self):
        """Every model with its rows and the devices that use it."""
        self._check("read_data_models")
        store = self._gw.datamodels
        return [dict(store.get(name), devices=self._model_users(name)) for name in store.names()]

    def _model_users(self, name):
        return [d.name for d in self._gw.topology.devices if d.model is not None and d.model["name"] == name]

    async def _model_change(self, change, *args):
        try:
            return await change(*args)
        except datamodels_mod.ModelRefused as exc:
            raise Refused(BAD_VALUE, str(exc), exc.details) from None
        except BlockingQueueFull:
            raise Refused(BUSY, "the gateway is busy, try again") from None
        except OSError as exc:
            raise Refused(STORAGE, "the data models could not be saved: %s" % exc) from None

    async def save_data_model(self, data, replacing=None):
        """Create a model, or replace the one named ``replacing`` (a rename too); the devices that use it take
        the new rows in one topology change (their poll plans follow). The clean model."""
        self._editing("edit_data_models")
        topology = self._gw.topology
        async with topology.edit_lock:
            old_name = replacing if replacing is not None else (data.get("name") if isinstance(data, dict) else None)
            if replacing is None and isinstance(old_name, str) and self._gw.datamodels.get(old_name.strip()):
                raise Refused(BAD_VALUE, "a model is already named %r" % old_name,
                              [datamodel.detail("model", "generic.error.model_taken", name=old_name.strip())])
            checked, problems = datamodel.check_model(data)
            if problems:
                raise Refused(BAD_VALUE, "model refused: %s" % datamodels_mod.summary(problems), problems)
            users = [d for d in topology.devices if d.model is not None and d.model["name"] == replacing]
            if users:          # the devices first: a refused topology (limits) leaves the model as it was
                await self._replace_devices([d.kept(model=checked) if d in users else d for d in topology.devices],
                                            "model")
            model = await self._model_change(self._gw.datamodels.save, checked, replacing)
        log.info("%r saved the data model %r (%d rows, %d devices)", self.caller, model["name"], len(model["rows"]),
                 len(users))
        return model

    async def delete_data_model(self, name):
        """Delete a model no device uses (refused naming the devices that do)."""
        self._editing("edit_data_models")
        async with self._gw.topology.edit_lock:
            await self._model_change(self._gw.datamodels.delete, name, self._model_users(name))
        log.info("%r deleted the data model %r", self.caller, name)

    async def import_data_model(self, name, text, replace=False):
        """A model from CSV text (``;`` separated, a header row: core/datamodel.py COLUMNS). Refused with one
        detail per line at fault, and then nothing is imported; ``replace``: the rows of the model ``name``."""
        self._editing("edit_data_models")
        rows, problems = datamodel.parse_csv(text)
        if problems:
            raise Refused(BAD_VALUE, "CSV refused: %s" % datamodels_mod.summary(problems), problems)
        return await self.save_data_model({"name": name, "rows": rows}, name if replace else None)

    def export_data_model(self, name):
        """(file name, CSV text) of one model: what ``import_data_model`` reads back."""
        self._check("read_data_models")
        model = self._gw.datamodels.get(name)
        if model is None:
            raise Refused(NOT_FOUND, "no data model %r" % str(name)[:40])
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in model["name"])
        return "model-%s.csv" % safe, datamodel.to_csv(model["rows"])

    async def add_generic_device(self, fields):
        """Add a generic device: {link: "rtu", bus, address, model, name[, area]} or {link: "tcp", host, port,
        unit, address (its place in the protocols' tables), model, name[, area]}; the device added."""
        self._editing()
        clean, details = genericfields.check_generic(fields, list(self._gw.engines) or list(BUS_NAMES),
                                                     self._gw.datamodels.get)
        if details:
            self._form_refused("device", details)
        topology = self._gw.topology
        async with topology.edit_lock:
            device = genericfields.new_generic(clean, self._gw.datamodels.get(clean["model"]))
            await self._replace_devices(topology.devices + [device], "device")
        log.info("%r added the generic device %r", self.caller, device)
        return device.as_dict()

    def generic_values(self, address):
        """Every row of a generic device's model with its value, unit, quality and age: the registry ones from the
        cache (as every protocol reads them), the model's own ones (shown in the web only)."""
        self._check("read_data_models")
        device = self._gw.topology.device(address)
        if device is None or device.model is None:
            raise Refused(NOT_FOUND, "no generic device at address %r" % address)
        cache, now = self._gw.cache, self._gw.clock.time()
        out = []
        for row in device.model["rows"]:
            key = datamodel.row_key(row)
            standard = datamodel.is_standard(key)
            reading = cache.get(address, datamodel.LOAD, key) if standard else \
                cache.get_extra(address, datamodel.LOAD, key)
            out.append({"name": row["name"], "key": key, "standard": standard, "unit": row["unit"],
                        "frame": row["frame"], "value": reading.value, "quality": reading.quality,
                        "ts": reading.timestamp,
                        "age_s": None if reading.timestamp is None else round(max(0.0, now - reading.timestamp), 1)})
        return {"address": address, "name": device.name, "model": device.model["name"], "link": device.link,
                "bus": device.bus, "status": self.device_link(address), "values": out}

    # ================================================================ issue 18: Bluetooth sources
    # The scan (daemon/runtime/ble.py) runs while policy.bluetooth AND bluetooth.enabled; the Bluetooth page
    # (Admin, Cyber Security) reads what was heard and adds or removes sources, devices of the topology
    # (daemon/state/blesources.py) whose values the scan puts in the cache: read like a meter's everywhere.

    def bluetooth_status(self):
        """{radio, policy, enabled, running, error, received, dropped, led, sources, max_sources, units}: ``units``
        of the values the formats give (core/ble_formats.py UNITS)."""
        self._check("read_bluetooth")
        out = self._gw.ble.status()
        out.update(sources=len(blesources.sources(self._gw.topology.devices)), max_sources=blesources.MAX_SOURCES,
                   units=dict(ble_formats.UNITS))
        return out

    def bluetooth_heard(self):
        """What the scan heard, by address: [{address, name, format, values, values_age_s, quality, refusal, rssi,
        age_s, count, source}] (``source``: the name it was added under, or None)."""
        self._check("read_bluetooth")
        known = blesources.sources(self._gw.topology.devices)
        rows = self._gw.ble.heard_list()
        for row in rows:
            device = known.get(row["address"])
            row["source"] = device.name if device is not None else None
        return rows

    def bluetooth_sources(self):
        """The sources: [{address, name, area, format, device, values}]; ``device`` is the Modbus address the
        protocols' tables give it, ``values`` {registry key: [value, quality, age_s]} from the cache."""
        self._check("read_bluetooth")
        cache, now = self._gw.cache, self._gw.clock.time()
        out = blesources.listing(self._gw.topology.devices)
        for entry in out:
            readings = dict((key, cache.get(entry["device"], 1, key)) for key in cache.keys(entry["device"], 1))
            entry["values"] = dict((key, [r.value, r.quality, None if r.timestamp is None
                                          else round(max(0.0, now - r.timestamp), 1)])
                                   for key, r in readings.items())
        return out

    async def _bluetooth_change(self, change):
        """``change(devices)`` -> new devices, under the sources' lock, then the topology replaced (its limits
        and the devices pages' refusals apply); BleRefused as BAD_VALUE / NOT_FOUND with the catalogue key."""
        self._editing("edit_bluetooth_sources")
        async with self._gw.ble.sources_lock:
            try:
                devices, result = change(list(self._gw.topology.devices))
            except blesources.BleRefused as exc:
                reason = NOT_FOUND if exc.detail["key"] == "ble.error.no_source" else BAD_VALUE
                raise Refused(reason, str(exc), [exc.detail]) from None
            await self._replace_devices(devices, "Bluetooth source")
        return result

    async def add_bluetooth_source(self, address, name, area=""):
        """Add a sensor the scan heard in a readable frame as a source named ``name`` in ``area``; its entry."""
        normal = blesources.normal_address(address)
        heard = self._gw.ble.heard_format(normal) if normal else None
        device = await self._bluetooth_change(
            lambda devices: blesources.with_source(devices, address, name, area, heard))
        log.info("%r added the Bluetooth source %s (%s, %s) at address %d", self.caller, device.link["mac"],
                 device.name, device.link["format"], device.address)
        return next(e for e in blesources.listing(self._gw.topology.devices) if e["address"] == device.link["mac"])

    async def remove_bluetooth_source(self, address):
        await self._bluetooth_change(lambda devices: (blesources.without_source(devices, address), None))
        log.info("%r removed the Bluetooth source %s", self.caller, address)


    # ================================================================ issue 17: consumption
    # The Consumption page (manual §8.5): the energy of the selected loads in one shared grid of local-time
    # buckets, summed here (daemon/storage/consumption.py) so the browser never gets the raw points; a
    # hierarchy's node as its children plus the non-measured point (daemon/state/hierarchies.py breakdown).

    async def consumption(self, selection, start, end, step, key="ea_pos"):
        """{utc_offset_s, step, from, to, key, unit, period_s, buckets: [[start, end]], node, loads}: ``key``'s
        consumption (a CONSUMPTION_KEYS counter) over [start, end) in ``step`` buckets (CONSUMPTION_STEPS;
        "period" is the finest integration period of the loads read). ``selection``: {"circuits": ["4:1", ...]}
        (each a load: {id, kind "circuit", circuit, address, load, device, reference, name, v, q}) or
        {"hierarchy": id, "node": item id} (``node``: {id, name, meter, v, q} of that node, the loads its
        children and the non-measured point, hierarchies.breakdown). v: Wh (varh, VAh) or None, q: good,
        partial, missing. Refused(BAD_VALUE) for a bad key, step, range or selection, or past
        CONSUMPTION_MAX_VALUES values; Refused(NOT_FOUND) for a circuit, hierarchy or node that is not there."""
        self._check("read_consumption")
        if key not in CONSUMPTION_KEYS:
            raise Refused(BAD_VALUE, "data must be one of %s" % ", ".join(CONSUMPTION_KEYS))
        if step not in consumption_mod.STEPS:
            raise Refused(BAD_VALUE, "step must be one of %s" % ", ".join(consumption_mod.STEPS))
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
            raise Refused(BAD_VALUE, "from and to must be Unix seconds with from < to")
        circuits = dict(("%d:%d" % (d.address, x["load"]), (d, x)) for d in self.devices() for x in d.loads)
        hierarchy = None
        if isinstance(selection, dict) and "hierarchy" in selection:
            doc = self._hierarchies().listing()
            hierarchy = next((h for h in doc if h["id"] == selection["hierarchy"]), None)
            if hierarchy is None:
                raise Refused(NOT_FOUND, "no hierarchy %r" % str(selection["hierarchy"])[:40])
            node_id = selection.get("node")
            if not any(i["id"] == node_id and i["kind"] == "node" for i in hierarchy["items"]):
                raise Refused(NOT_FOUND, "no node %r in the hierarchy %s" % (str(node_id)[:40], hierarchy["name"]))
            wanted = set()
            hierarchies_mod.breakdown(doc, hierarchy["id"], lambda c: wanted.add(c))
            wanted = sorted(wanted)
        elif isinstance(selection, dict) and isinstance(selection.get("circuits"), list):
            wanted = list(selection["circuits"])
            if not 1 <= len(wanted) <= CONSUMPTION_MAX_LOADS or len(set(wanted)) != len(wanted):
                raise Refused(BAD_VALUE, "ask for 1 to %d different circuits at a time" % CONSUMPTION_MAX_LOADS)
            unknown = [str(c)[:20] for c in wanted if c not in circuits]
            if unknown:
                raise Refused(NOT_FOUND, "no circuit %s in the topology" % ", ".join(unknown[:5]))
        else:
            raise Refused(BAD_VALUE, "the selection is {\"circuits\": [...]} or {\"hierarchy\": id, \"node\": id}")
        storage = self._gw.storage
        if storage is None or not storage.ready:
            raise Refused(UNSUPPORTED, "the time-series store is not available")
        store, offset = storage.store, self.local_offset_s()
        default_period_s = 60 * self._gw.settings.get("storage.consumption_period_min")
        names = dict((c, curves.series_name("consumption", circuits[c][0].uid, circuits[c][1]["load"], key))
                     for c in wanted if c in circuits)

        def read():
            held = store.series()
            periods = [held[n]["period_s"] for n in names.values() if n in held]
            period_s = min(periods) if periods else default_period_s
            shortest = period_s if step == "period" else TREND_BUCKET_S[step]
            if (-(-(end - start) // shortest) + 1) * max(1, len(wanted)) > CONSUMPTION_MAX_VALUES:
                return period_s, -(-(end - start) // shortest), None          # refused before any grid is made
            buckets = consumption_mod.grid(step, start, end, offset, period_s)
            if len(buckets) * max(1, len(wanted)) > CONSUMPTION_MAX_VALUES:
                return period_s, len(buckets), None
            series = {}
            for circuit, name in names.items():
                if name in held:
                    series[circuit] = consumption_mod.bucket_sums(store.read(name, start, end), buckets)
            return period_s, buckets, series
        period_s, buckets, series = await run_blocking(read)
        if series is None:
            raise Refused(BAD_VALUE, "%d buckets of %d loads asked for, more than the %d values one answer holds: "
                          "choose a coarser step or a shorter period" % (buckets, len(wanted),
                                                                          CONSUMPTION_MAX_VALUES),
                          [{"field": "step", "key": "web.consumption.error.too_many",
                            "params": {"max": CONSUMPTION_MAX_VALUES}}])
        missing = ([None] * len(buckets), ["missing"] * len(buckets))
        answer = {"utc_offset_s": offset, "step": step, "from": start, "to": end, "key": key,
                  "unit": registry.get(key)[registry.UNIT], "period_s": period_s,
                  "buckets": [list(b) for b in buckets], "node": None}
        if hierarchy is None:
            answer["loads"] = [dict(self._consumption_circuit(c, circuits), id=c, kind="circuit",
                                    v=series.get(c, missing)[0], q=series.get(c, missing)[1]) for c in wanted]
            return answer
        node, loads = consumption_mod.hierarchy_loads(doc, hierarchy["id"],
                                                      selection["node"], dict((c, series.get(c, missing))
                                                                              for c in wanted))
        for load in loads:
            if load["circuit"]:
                load.update(self._consumption_circuit(load["circuit"], circuits))
        node["meter_name"] = self._consumption_circuit(node["meter"], circuits)["name"] if node["meter"] else None
        answer.update(node=node, loads=loads, hierarchy={"id": hierarchy["id"], "name": hierarchy["name"],
                                                         "fluid": hierarchy["fluid"]})
        return answer

    @staticmethod
    def _consumption_circuit(circuit, circuits):
        """What names a circuit on the page (one no longer in the topology: its key alone)."""
        if circuit not in circuits:
            return {"circuit": circuit, "address": None, "load": None, "device": "", "reference": "", "name": ""}
        device, load = circuits[circuit]
        return {"circuit": circuit, "address": device.address, "load": load["load"], "device": device.name,
                "reference": device.reference, "name": load.get("name", "")}

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


@contextlib.contextmanager
def _system_refusals():
    """The System page's own refusals (daemon/system/service.py SystemRefused) as Refused(SYSTEM) with ``why``."""
    try:
        yield
    except SystemRefused as exc:
        refused = Refused(SYSTEM, str(exc))
        refused.why = exc.why
        raise refused from None


def measurement(key):
    """(name, unit) of a registry key, for pages and documents that show one."""
    row = registry.get(key)
    return row[registry.NAME], row[registry.UNIT]


# ---------------------------------------------------------------- issue 17: trends (Door.trend_series)
TREND_CATEGORIES = {"load_curve": "measure", "history": "measure", "consumption": "meter"}   # manual §8.6
TREND_STEPS = ("raw", "hour", "day", "week", "month")
TREND_BUCKET_S = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 28 * 86400}   # the shortest of each
TREND_MAX_NAMES = favourites.MAX_SERIES          # series in one request (one chart)
TREND_MAX_POINTS = 100_000                       # points in one answer: 10 series of a leap year of hours fit


def _compact(value):
    """A float32 widened to a double, said with its own 7 significant digits (230.1, not 230.10000610351562)."""
    return None if value is None else float("%.7g" % value)


def _trend_answer(data, period_s):
    """One series of Door.trend_series from the store's SeriesData (raw) or Aggregate."""
    if isinstance(data, SeriesData):
        quality = data.quality
        names = dict((code, quality_name(code)) for code in set(quality))       # a few codes, named once
        return {"name": data.name, "step": "raw", "counter": data.counter, "period_s": period_s,
                "t": data.times(), "v": [_compact(v) if quality[i] & Q_VALID else None
                                         for i, v in enumerate(data.values)],
                "q": [names[q] for q in quality]}
    out = {"name": data.name, "step": data.step, "counter": data.counter, "period_s": period_s,
           "t": list(data.times), "v": [_compact(v) for v in data.values],
           "q": [data.quality(i) for i in range(len(data.times))], "count": list(data.counts)}
    if not data.counter:
        out["min"] = [_compact(v) for v in data.minimum]
        out["max"] = [_compact(v) for v in data.maximum]
    return out


# ---------------------------------------------------------------- issue 17: consumption (Door.consumption)
CONSUMPTION_KEYS = store_mod.CONSUMPTION_KEYS      # the consumption curves' counters (Ea+, Ea-, Er+, Er-, Es)
CONSUMPTION_STEPS = consumption_mod.STEPS
CONSUMPTION_MAX_LOADS = 256                       # circuits in one request: the 192 of the reference site fit
CONSUMPTION_MAX_VALUES = 200_000                  # buckets x loads in one answer: 192 loads x a month of hours
