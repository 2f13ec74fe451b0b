"""The composition root's body: builds every part and starts/stops them in order.

``daemon/__main__.py`` parses the command line and calls ``Gateway``; tests
build a ``Gateway`` directly on a simulated board. Nothing here talks to a
meter: the buses, pollers and discovery do.
"""

import asyncio
import datetime
import logging
import os
import random
import sys

from board.base import SystemClock
from daemon import sdnotify
from daemon.api import Door, Refused
from daemon.atomicfile import read_json, write_json
from daemon.blocking import run_blocking
from daemon.looplag import LoopLagMonitor
from daemon.memory import trim_loop
from daemon.runtime.ble import BleScan
from daemon.runtime.bus import BusEngine
from daemon.runtime.curves import CurveService
from daemon.runtime.device_alarms import DeviceAlarms, EventReader
from daemon.runtime.discovery import Discovery
from daemon.runtime.parts import Parts
from daemon.runtime.poller import BusPoller
from daemon.runtime.tcplink import TcpLink
from daemon.security.accounts import Accounts
from daemon.security.audit import AuditedLog
from daemon.security.guard import GatewayFirewall
from daemon.security.rights import Caller
from daemon.security.secrets import SecretBox
from daemon.security.sessions import SessionTable
from daemon.security.webtls import CA_SOURCE, WEB_SOURCE, WebTls, own_names
from daemon.state.alarms import Alarms
from daemon.state import blesources
from daemon.state.cache import Cache
from daemon.state.datamodels import DataModels
from daemon.state.extremes import Extremes
from daemon.state.hierarchies import Hierarchies
from daemon.state.settings import Settings
from daemon.state.topology import TCP_BUS, Topology
from daemon.state.usages import Usages
from daemon.storage.service import Storage
from daemon.supervise import Supervised
from daemon.sysload import SystemLoad
from daemon.system import reset
from daemon.system.service import SystemOps
from daemon.upgrade.launch import ROOT_ENV
from daemon.version import VERSION

log = logging.getLogger("gateway")

ADDR_BUTTON_HOLD_S = 3.0
# How long a thread holding the interpreter lock keeps it before the others may run: Python's 5 ms let an
# export render in the executor (pure Python) stall the loop for 194 ms at p99 and starve the bus threads into
# false timeouts (bench/export.py); at 0.5 ms the same render takes as long and the loop's p99 stays under 10 ms.
SWITCH_INTERVAL_S = 0.0005
HEARTBEAT_S = 5.0


def load_identity(state_dir):
    """The gateway's own NET ID and serial, made once and kept in the state dir."""
    path = os.path.join(state_dir, "identity.json")
    try:
        data = read_json(path)
        int(data["netid"], 16)
        return data
    except (OSError, ValueError, KeyError, TypeError):
        pass
    rnd = random.SystemRandom()
    data = {"netid": "%06X" % rnd.randrange(0x100000, 0xFFFFFF), "serial": "%011d" % rnd.randrange(10 ** 10, 10 ** 11)}
    write_json(path, data)
    return data


class Gateway:
    def __init__(self, board, state_dir, overrides=None, clock=None, storage_geometry=None, curve_overrides=None,
                 release_key=None, install_root=None):
        self.board = board
        self.state_dir = state_dir
        os.makedirs(state_dir, exist_ok=True)
        factory_reset = reset.finish(state_dir) if reset.pending(state_dir) else None    # before any part reads
        # the one clock: the board's (board/base.py Board.wall_clock; on the simulated board an OffsetClock
        # over the injected clock, so set_system_time moves what every protocol, event and log reads)
        self.clock = board.wall_clock(clock) if hasattr(board, "wall_clock") else clock or SystemClock()
        self.secret_box = SecretBox.for_state_dir(state_dir)
        self.settings = Settings(os.path.join(state_dir, "settings.json"), overrides, self.secret_box)
        self.identity = load_identity(state_dir)
        self.alarms = Alarms(self.clock, os.path.join(state_dir, "events.ring"),
                             self.settings.get("events.capacity"))
        self.cache = Cache(self.clock, self.settings.get("poll.stale_after_s"))
        self.storage = Storage(os.path.join(state_dir, "tsdb"), self.settings, self.clock,
                               on_event=self.alarms.record_event, geometry=storage_geometry)
        self.topology = Topology(os.path.join(state_dir, "topology.json"), settings=self.settings)
        self.engines = {}          # bus name -> BusEngine, filled by start()
        self.parts = Parts(self.topology, self.engines, self.cache, self.settings, self.clock)   # for the runtime
        self.curves = CurveService(self.parts, self.storage, curve_overrides)
        self.device_alarms = DeviceAlarms(self.alarms, self.clock, os.path.join(state_dir, "event-cursors.json"))
        self.event_reader = EventReader(self.parts, self.device_alarms)
        self.extremes = Extremes(self.topology)          # min/max seen since start: BACnet, SNMP table 23
        self.cache.subscribe(self.extremes.on_update)
        # profiles' passwords; their events reach the event log completed to the audit trail's fields
        self.accounts = Accounts(state_dir, self.clock, AuditedLog(self.alarms), self.settings)
        # the one firewall every service's intake asks through its door (alarm 7 and an audit event per ban)
        self.firewall = GatewayFirewall(state_dir, self.settings, self.alarms, board)
        self.settings.on_change(self.firewall.setting_changed)
        self.sessions = SessionTable(self.clock, lambda: self.settings.get("session.lifetime_s"))
        self.usages = Usages(state_dir)                  # predefined and custom usages (the Devices pages)
        self.hierarchies = Hierarchies(state_dir)        # issue 17: the energy hierarchies (read when built)
        self.datamodels = DataModels(state_dir)          # issue 18: generic Modbus devices' data models
        self.links = {}            # issue 18: engines of devices off the master buses (Modbus TCP): bus -> link
        self.link_pollers = {}     # ... and their pollers (apart from ``pollers``: those are the serial buses')
        # issue 18: the Bluetooth scan (policy.bluetooth AND bluetooth.enabled) and the sensors added as sources
        self.ble = BleScan(board, self.settings, self.clock, self.cache, self.alarms)
        self._account_alarms = Supervised("account-alarms", self._account_alarm_loop)
        self.webtls = WebTls(state_dir)       # web certificate and CA store (issue 15); alarm 7 follows them
        self._certificate_alarms = Supervised("certificate-alarms", self._certificate_alarm_loop)
        self.looplag = LoopLagMonitor()
        self.system_load = SystemLoad(state_dir)         # CPU / RAM / storage indicators (Diagnosis)
        self.reboot_requested = None     # who asked for a restart (Door.reboot): the daemon exits with REBOOT_EXIT
        self.pollers = {}
        self.bus_errors = {}       # bus name -> why its port could not be opened
        self.discovery = None
        self.services = []         # northbound servers: objects with start()/stop()
        self.documents = {}        # generated files served over HTTP: name -> (content type, render())
        self.started_at = None
        self._reconcile_handle = None
        self._heartbeat = Supervised("heartbeat", self._heartbeat_loop)
        self._heap_trim = Supervised("heap-trim", trim_loop)     # freed heap pages back to the system (RSS)
        self.settings.on_change(self._setting_changed)
        # the System page (issue 15): the release key is the build's (a test's own), the root the launcher's
        self.system = SystemOps(self, release_key, install_root if install_root is not None
                                else os.environ.get(ROOT_ENV))
        if factory_reset is not None:
            self.alarms.record_event({"event": "factory-reset-done", "name": "factory reset done", "category": "system",
                                      "source": "gateway", "criticality": "information",
                                      "detail": "removed: %s" % ", ".join(factory_reset)})

    # ---------------------------------------------------------------- lifecycle

    def master_buses(self):
        buses = ["digiware"]
        if self.settings.get("bus.rs485.mode") == "master":
            buses.append("rs485")
        return buses

    async def start(self):
        loop = asyncio.get_running_loop()
        sys.setswitchinterval(SWITCH_INTERVAL_S)       # the loop and the buses keep their turn (see above)
        for name, part in (("settings.json", self.settings), ("topology.json", self.topology)):
            if part.load_problem:      # a damaged file was set aside on load: the event log says so
                self.alarms.record_event({"event": "state-file", "file": name, "detail": part.load_problem})
        self.started_at = self.clock.monotonic()       # uptime does not jump when the clock is set
        self.board.start(loop)
        self.board.on_button(self._button)
        self.looplag.start()
        for bus in self.master_buses():
            prefix = "bus.%s." % bus
            try:
                port = self.board.open_port(bus, self.settings.get(prefix + "baud"),
                                            self.settings.get(prefix + "parity"),
                                            self.settings.get(prefix + "stop_bits"))
            except OSError as exc:   # no such port: the rest of the gateway still serves
                self.bus_errors[bus] = str(exc)
                log.error("%s bus unavailable: %s", bus, exc)
                continue
            engine = BusEngine(bus, port, self.settings.get(prefix + "baud"), self.settings.get(prefix + "parity"),
                               self.settings.get(prefix + "stop_bits"),
                               timeout=self.settings.get(prefix + "timeout_ms") / 1000.0,
                               retries=self.settings.get(prefix + "retries"), clock=self.clock)
            engine.start()
            self.engines[bus] = engine
            poller = BusPoller(bus, engine, self.topology, self.cache, self.alarms, self.settings, self.clock)
            poller.start()
            self.pollers[bus] = poller
        # issue 18: generic Modbus TCP devices, polled by the same poller through a TCP link (daemon/runtime/tcplink.py)
        link = TcpLink(TCP_BUS, self.topology, self.settings.get("generic.tcp_timeout_ms") / 1000.0,
                       self.settings.get("generic.tcp_retries"), clock=self.clock)
        link.start()
        self.links[TCP_BUS] = link
        self.link_pollers[TCP_BUS] = BusPoller(TCP_BUS, link, self.topology, self.cache, self.alarms, self.settings,
                                               self.clock)
        self.link_pollers[TCP_BUS].start()
        self.discovery = Discovery(self.engines, self.topology, self.alarms, self.settings)
        if await self.settings.seal_stored():       # an older file's clear secrets, sealed now
            self.alarms.record_event({"event": "secrets-sealed", "category": "security", "source": "gateway",
                                      "detail": "secrets found in clear in settings.json are now sealed"})
        await self.accounts.start()
        self._account_alarms.start()
        await self.storage.start()
        await self.curves.start()
        await self.event_reader.start()
        self.ble_sources_changed()
        self.topology.on_change(self.ble_sources_changed)
        await self.ble.start()
        await self._start_tls()
        try:
            await self.firewall.write_ruleset()
        except OSError as exc:
            log.error("the nftables ruleset could not be written: %s", exc)
        for service in self.services:
            await service.start()
        # Alarms restored from the event log must be confirmed by a live source
        # within a few poll cycles, or they are cleared (no duplicates, no losses).
        self._reconcile_handle = loop.call_later(30.0, self.alarms.reconcile)
        self._update_leds()
        self.alarms.on_event(lambda record: self._update_leds())
        self._heartbeat.start()
        self._heap_trim.start()
        sdnotify.notify("READY=1")
        log.info("gateway %s %s (NET ID %s) started on the %s board", self.settings.get("gateway.name"), VERSION,
                 self.identity["netid"], self.board.kind)

    async def stop(self):
        """Stop services, pollers and buses; flush what must survive."""
        sdnotify.notify("STOPPING=1")
        if self._reconcile_handle is not None:
            self._reconcile_handle.cancel()
        await self._heartbeat.stop()
        await self._heap_trim.stop()
        await self._account_alarms.stop()
        await self._certificate_alarms.stop()
        self.firewall.stop()
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %r", service)
        await self.ble.stop()
        await self.curves.stop()
        await self.event_reader.stop()
        if self.discovery is not None:
            await self.discovery.stop()
        for poller in list(self.pollers.values()) + list(self.link_pollers.values()):
            await poller.stop()
        for engine in list(self.engines.values()) + list(self.links.values()):
            await engine.stop()
        await self.storage.stop()
        await self.alarms.flush()
        await self.looplag.stop()
        await run_blocking(self.board.close)     # joins the simulated buses' threads, closes the watchdog

    async def _heartbeat_loop(self):
        """Kick the hardware watchdog and systemd's while the loop is alive."""
        while True:
            self.board.kick_watchdog()
            sdnotify.notify("WATCHDOG=1")
            await asyncio.sleep(HEARTBEAT_S)

    async def _account_alarm_loop(self):
        """Alarm 8 follows the passwords' expiry and the lockouts' end on the gateway clock."""
        while True:
            await asyncio.sleep(float(self.settings.get("alarms.check_s")))
            self.accounts.refresh_alarms()

    async def _start_tls(self):
        """The web certificate (made self-signed on first start) and the CA store, before the HTTPS server
        starts; alarm 7 checked now, after each change and on the gateway clock from then on."""
        try:
            await self.webtls.start(own_names(self.settings.get),
                                    datetime.datetime.fromtimestamp(self.clock.time(), datetime.timezone.utc))
        except OSError as exc:       # the HTTPS server does not start; everything else serves
            log.error("web certificate unavailable: %s", exc)
        self.webtls.on_change(self.check_certificates)
        self.check_certificates()
        self._certificate_alarms.start()

    def check_certificates(self):
        """Alarm 7 per certificate (web, each CA) that is expired or expires within 30 days; cleared when it
        is replaced, removed or the clock says otherwise."""
        states = self.webtls.alarm_states(self.clock.time())
        for number, source in list(self.alarms.active):
            if number == 7 and source.startswith((WEB_SOURCE, CA_SOURCE)) and source not in states:
                self.alarms.set(7, source, False, "certificate removed")
        for source, detail in states.items():
            self.alarms.set(7, source, detail is not None, detail or "")

    async def _certificate_alarm_loop(self):
        """The certificates' expiry on the gateway clock: checked every alarms.check_s (an in-memory comparison),
        so a day passing or the clock being set is seen within seconds, not only daily."""
        while True:
            await asyncio.sleep(float(self.settings.get("alarms.check_s")))
            self.check_certificates()

    # ---------------------------------------------------------------- events

    def _button(self, held_seconds):
        if held_seconds >= ADDR_BUTTON_HOLD_S:
            log.info("ADDR button held %.1f s: starting auto-detection", held_seconds)
            try:
                self.door(Caller("button")).start_detection()
            except Refused as exc:
                log.info("ADDR button: %s", exc)

    def _setting_changed(self, name, value):
        if name == "log.level":
            logging.getLogger().setLevel(value.upper())
        elif name == "poll.stale_after_s":
            self.cache.stale_after = value
        elif name.startswith("bus.") and name.endswith(".timeout_ms"):
            engine = self.engines.get(name.split(".")[1])
            if engine is not None:
                engine.timeout = value / 1000.0
        elif name.startswith("bus.") and name.endswith(".retries"):
            engine = self.engines.get(name.split(".")[1])
            if engine is not None:
                engine.retries = value
        elif name in ("generic.tcp_timeout_ms", "generic.tcp_retries") and TCP_BUS in self.links:
            if name == "generic.tcp_timeout_ms":
                self.links[TCP_BUS].timeout = value / 1000.0
            else:
                self.links[TCP_BUS].retries = value

    def _update_leds(self):
        self.board.set_led("status", "on")
        self.board.set_led("alarm", "blink" if self.alarms.active else "off")

    def link_engine(self, bus):
        """What reaches the devices on ``bus`` and counts their answers (``counters[address]``): a serial bus's
        engine, the Modbus TCP link (issue 18) or the Bluetooth scan; None for a bus the gateway does not master."""
        if bus == blesources.BUS:
            return self.ble
        return self.engines.get(bus) or self.links.get(bus)

    # ---------------------------------------------------------------- Bluetooth sources (issue 18)

    def ble_sources_changed(self, _topology=None):
        """The topology's Bluetooth sources, each with its feed into the cache (daemon/runtime/ble.py)."""
        self.ble.set_sources(blesources.sources(self.topology.devices))

    # ---------------------------------------------------------------- for the door

    def uptime(self):
        now = self.clock.monotonic()
        return now - (self.started_at if self.started_at is not None else now)

    def set_time(self, unix_time):
        """Set the gateway's clock: the board's (system clock on a Pi, an offset on the simulated board)."""
        self.board.set_system_time(unix_time)

    def outbound(self, name):
        """The outbound service (exports, e-mail, SNTP: outbound/) called ``name``, or None."""
        return next((s for s in self.services if getattr(s, "name", None) == name), None)

    def event_log_file(self, records):
        """(file name, bytes) of ``records`` as the Diagnosis page's syslog file (blocking: the executor's).
        Here because only the composition root may import the web's renderer (issue 16, the log upload)."""
        from webconfig import syslogfile
        return (syslogfile.file_name(self.clock.time()),
                syslogfile.render(records, self.settings.get("gateway.name")))

    def door(self, caller):
        """The one object a front end receives (daemon/api.py), bound to ``caller``."""
        return Door(self, caller)
