"""The door: the one object every front end receives (DESIGN.md, "The door").

Modbus TCP and the RTU slave, SNMP, BACnet, the web application, the
exporters and the MQTT publisher get a ``Door`` bound to who they are
(``rights.Caller``) and nothing else of the gateway. *Queries* read the
state (readings with quality and age, one summary per device, alarms,
events, documents, service states); *commands* change it (settings, writes
to devices, detection, acknowledgements, counter resets), and each command
is checked here, once, against the caller's rights and the security policy
(``daemon/security/rights.py``). A refusal is ``Refused(reason, message)``;
each front end maps the reason to its own error.

This module holds the core of the door (the gateway's state, devices and
values, alarms, the commands every protocol uses, sessions); each area the
later issues added is a mixin in ``daemon/door/`` (config, devices, system,
outbound, views, series, sources) that ``Door`` inherits, so a change to one
page's queries reads one short module. ``daemon/door/base.py`` holds the
refusal reasons and ``Refused``, re-exported here: front ends import only
``daemon.api``. Only the door (this module and its parts) and the composition
root (``daemon/gateway.py``) read the gateway's parts.
"""

import asyncio
import logging
import os
import signal

from board.base import BUS_NAMES
from core import modbus_rtu as rtu, registry
from daemon.blocking import BlockingQueueFull, run_blocking
from daemon.runtime import control
from daemon.security import accounts, audit, rights
from daemon.security.rights import Caller
from daemon.state import (devstate, settings as settings_mod)
from daemon.state.alarms import device_source
from daemon.state.cache import STALE
from daemon.version import VERSION
from daemon.door.base import (  # noqa: F401 (re-exported)
    RIGHTS, POLICY, NO_DEVICE, NOT_WRITABLE, BAD_VALUE, NO_ANSWER, DEVICE_REFUSED, BUSY,
    NOT_FOUND, UNSUPPORTED, AUTH, LOCKED, MUST_CHANGE, STORAGE, SYSTEM, OFF, ALARM_CONFLICT, REBOOT_EXIT,
    REBOOT_DELAY_S, Refused, _bus_refusals, _account_refusals)
from daemon.door.config import ConfigPart
from daemon.door.devices import DevicesPart
from daemon.door.outbound import OutboundPart
from daemon.door.series import (  # noqa: F401 (re-exported: the pages' limits)
    CONSUMPTION_KEYS, CONSUMPTION_STEPS, TREND_MAX_NAMES, TREND_MAX_POINTS, TREND_STEPS, SeriesPart)
from daemon.door.sources import SourcesPart
from daemon.door.system import TLS_MAX_PEM, SystemPart  # noqa: F401 (re-exported: the upload's bound)
from daemon.door.views import ViewsPart

__all__ = ["Caller", "Door", "Refused"]

log = logging.getLogger("gateway.api")

class SettingsView:
    """The settings a front end may read and watch; changes go through ``Door.set_settings``."""
    __slots__ = ("get", "on_change")

    def __init__(self, store):
        self.get = store.get
        self.on_change = store.on_change


class Door(ConfigPart, DevicesPart, SystemPart, OutboundPart, ViewsPart, SeriesPart,
           SourcesPart):
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
        return self.status_frame([self.device_status(device) for device in self.devices()])

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

    # ================================================================ issue 19: short pass-through
    def static_registers(self, address, function, start, count):
        """A meter's identification words (fixed while it is in the topology) that an earlier forwarded
        read brought back, or None: then the read goes to the meter (``passthrough``)."""
        return control.static_registers(self._gw.parts, address, function, start, count)

    # ================================================================ issue 19: no client stalls the loop, HTTP
    def device_status(self, device):
        """One device's entry of the status document (``status``), for a front end that builds the document
        over several turns of the loop: on the reference site the whole is ~13 ms of loop, a device ~0.4 ms."""
        gw = self._gw
        summary = self.device_summary(device.address)
        values = {}
        for load, readings in gw.cache.snapshot(device.address).items():
            out = {}
            for key, reading in readings.items():
                name, unit = measurement(key)
                out[key] = dict(reading.as_dict(), unit=unit, name=name)
            values[str(load)] = out
        return {
            "address": device.address, "bus": device.bus, "reference": device.reference,
            "name": device.name, "netid": device.netid, "area": device.area,
            "status": summary.state, "age_s": None if summary.age is None else round(summary.age, 1),
            "not_found": device.not_found,
            "loads": device.loads, "counters": summary.counters, "values": values,
        }

    def status_frame(self, devices):
        """The status document around its ``devices`` (the entries of ``device_status``, or anything in their
        place: the web server puts them in already encoded)."""
        gw = self._gw
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


def measurement(key):
    """(name, unit) of a registry key, for pages and documents that show one."""
    row = registry.get(key)
    return row[registry.NAME], row[registry.UNIT]

