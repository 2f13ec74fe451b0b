"""The composition root's body: builds every part and starts/stops them in order.

``daemon/__main__.py`` parses the command line and calls ``Gateway``; tests
build a ``Gateway`` directly on a simulated board. Nothing here talks to a
meter: the buses, pollers and discovery do.
"""

import asyncio
import logging
import os
import random

from board.base import BUS_NAMES, SystemClock
from daemon import registry, sdnotify
from daemon.alarms import Alarms, device_source
from daemon.atomicfile import read_json, write_json
from daemon.blocking import run_blocking
from daemon.bus import BusEngine
from daemon.cache import STALE, Cache
from daemon.curves import CurveService
from daemon.device_alarms import DeviceAlarms, EventReader
from daemon.discovery import ALARM_CONFLICT, Discovery
from daemon.extremes import Extremes
from daemon.looplag import LoopLagMonitor
from daemon.poller import BusPoller
from daemon.secrets import SecretBox
from daemon.settings import Settings
from daemon.supervise import Supervised
from daemon.tsdb_service import Storage
from daemon.topology import Topology

log = logging.getLogger("gateway")

VERSION = "0.1.0"
ADDR_BUTTON_HOLD_S = 3.0
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
    def __init__(self, board, state_dir, overrides=None, clock=None, storage_geometry=None, curve_overrides=None):
        self.board = board
        self.state_dir = state_dir
        os.makedirs(state_dir, exist_ok=True)
        self.clock = clock or getattr(board, "clock", None) or SystemClock()
        self.secret_box = SecretBox.for_state_dir(state_dir)
        self.settings = Settings(os.path.join(state_dir, "settings.json"), overrides, self.secret_box)
        self.identity = load_identity(state_dir)
        self.alarms = Alarms(self.clock, os.path.join(state_dir, "events.ring"),
                             self.settings.get("events.capacity"))
        self.cache = Cache(self.clock, self.settings.get("poll.stale_after_s"))
        self.storage = Storage(os.path.join(state_dir, "tsdb"), self.settings, self.clock,
                               on_event=self.alarms.record_event, geometry=storage_geometry)
        self.curves = CurveService(self, self.storage, curve_overrides)
        self.topology = Topology(os.path.join(state_dir, "topology.json"))
        self.device_alarms = DeviceAlarms(self.alarms, self.clock, os.path.join(state_dir, "event-cursors.json"))
        self.event_reader = EventReader(self, self.device_alarms)
        self.extremes = Extremes(self.topology)          # min/max seen since start: BACnet, SNMP table 23
        self.cache.subscribe(self.extremes.on_update)
        self.looplag = LoopLagMonitor()
        self.engines = {}
        self.pollers = {}
        self.bus_errors = {}       # bus name -> why its port could not be opened
        self.discovery = None
        self.services = []         # northbound servers: objects with start()/stop()
        self.documents = {}        # generated files served over HTTP: name -> (content type, render())
        self.started_at = None
        self._reconcile_handle = None
        self._heartbeat = Supervised("heartbeat", self._heartbeat_loop)
        self.settings.on_change(self._setting_changed)

    # ---------------------------------------------------------------- lifecycle

    def master_buses(self):
        buses = ["digiware"]
        if self.settings.get("bus.rs485.mode") == "master":
            buses.append("rs485")
        return buses

    async def start(self):
        loop = asyncio.get_running_loop()
        self.started_at = self.clock.time()
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
        self.discovery = Discovery(self.engines, self.topology, self.alarms, self.settings)
        await self.storage.start()
        await self.curves.start()
        await self.event_reader.start()
        for service in self.services:
            await service.start()
        # Alarms restored from the event log must be confirmed by a live source
        # within a few poll cycles, or they are cleared (no duplicates, no losses).
        self._reconcile_handle = loop.call_later(30.0, self.alarms.reconcile)
        self._update_leds()
        self.alarms.on_event(lambda record: self._update_leds())
        self._heartbeat.start()
        sdnotify.notify("READY=1")
        log.info("gateway %s (NET ID %s) started on the %s board", self.settings.get("gateway.name"),
                 self.identity["netid"], self.board.kind)

    async def stop(self):
        """Stop services, pollers and buses; flush what must survive."""
        sdnotify.notify("STOPPING=1")
        if self._reconcile_handle is not None:
            self._reconcile_handle.cancel()
        await self._heartbeat.stop()
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %r", service)
        await self.curves.stop()
        await self.event_reader.stop()
        if self.discovery is not None:
            await self.discovery.stop()
        for poller in self.pollers.values():
            await poller.stop()
        for engine in self.engines.values():
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

    # ---------------------------------------------------------------- events

    def _button(self, held_seconds):
        if held_seconds >= ADDR_BUTTON_HOLD_S:
            log.info("ADDR button held %.1f s: starting auto-detection", held_seconds)
            self.discovery.start()

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

    def _update_leds(self):
        self.board.set_led("status", "on")
        self.board.set_led("alarm", "blink" if self.alarms.active else "off")

    # ---------------------------------------------------------------- status

    version = VERSION

    def uptime(self):
        return self.clock.time() - (self.started_at or self.clock.time())

    def status_codes(self):
        """{address: code} for the gateway Modbus table (protocols/modbus_tables.py).

        An answering device is "stale" when one of its rows is, by the row
        rule every protocol shares (``Cache.load_summary``: worst quality of
        the row's values).
        """
        from protocols.modbus_tables import DEVICE_STATUS_CODES
        cache = self.cache
        codes = {}
        for device in self.topology.devices:
            state = self.device_status(device)
            if state == "ok" and any(cache.load_summary(device.address, load)[0] == STALE
                                     for load in cache.loads(device.address)):
                state = "stale"
            codes[device.address] = DEVICE_STATUS_CODES[state]
        return codes

    def data_ages(self):
        """{address: seconds since its newest value} for devices with data."""
        now = self.clock.time()
        ages = {}
        for device in self.topology.devices:
            engine = self.engines.get(device.bus)
            last = engine.counters[device.address].last_success if engine else None
            if last is not None:
                ages[device.address] = max(0.0, now - last)
        return ages

    def device_status(self, device):
        if (ALARM_CONFLICT, device_source(device.bus, device.address)) in self.alarms.active:
            return "conflict"
        if self.cache.comm_lost(device.address):
            return "comm_lost"
        engine = self.engines.get(device.bus)
        if engine is None:
            return "unknown"
        return "ok" if engine.counters[device.address].last_success else "unknown"

    def status(self):
        """The document behind GET /api/status (docs/status-api.md)."""
        devices = []
        for device in self.topology.devices:
            engine = self.engines.get(device.bus)
            values = {}
            for load, readings in self.cache.snapshot(device.address).items():
                out = {}
                for key, reading in readings.items():
                    row = registry.get(key)
                    out[key] = dict(reading.as_dict(), unit=row[registry.UNIT], name=row[registry.NAME])
                values[str(load)] = out
            devices.append({
                "address": device.address, "bus": device.bus, "reference": device.reference,
                "name": device.name, "netid": device.netid, "area": device.area,
                "status": self.device_status(device), "loads": device.loads,
                "counters": engine.counters[device.address].as_dict() if engine else None,
                "values": values,
            })
        buses = {}
        for bus in BUS_NAMES:
            prefix = "bus.%s." % bus
            entry = {"port": self.board.port_path(bus), "baud": self.settings.get(prefix + "baud"),
                     "parity": self.settings.get(prefix + "parity"),
                     "stop_bits": self.settings.get(prefix + "stop_bits"),
                     "mode": "master" if bus in self.engines else "slave"}
            if bus in self.pollers:
                entry.update(self.pollers[bus].status())
                entry["queued"] = self.engines[bus].queued()
            if bus in self.bus_errors:
                entry["error"] = self.bus_errors[bus]
            buses[bus] = entry
        return {
            "gateway": {"name": self.settings.get("gateway.name"), "reference": "M-70",
                        "netid": self.identity["netid"], "serial": self.identity["serial"],
                        "firmware": VERSION, "board": self.board.kind,
                        "uptime_s": round(self.uptime(), 1),
                        "time": self.clock.time(), "modbus_address": self.settings.get("gateway.modbus_address")},
            "buses": buses,
            "devices": devices,
            "alarms": self.alarms.active_list(),
            "device_alarms": dict(self.device_alarms.status(), reader=self.event_reader.status(),
                                  list=self.device_alarms.active_list()),
            "discovery": self.discovery.status() if self.discovery else None,
            "loop_lag": self.looplag.summary(),
            "services": dict((s.name, s.status()) for s in self.services if hasattr(s, "status")),
            "storage": self.storage.status(),
            "curves": self.curves.status(),
        }
