"""The Bluetooth scan (SPEC §1 "BLE sources", §8 policy.bluetooth; issue 18).

The board's radio (``Board.ble_scanner()``) scans only while the security policy allows Bluetooth
(``policy.bluetooth``) AND the configuration enables it (``bluetooth.enabled``); turning either off stops the
scan at once, and an advertisement that arrives meanwhile is dropped. The board's "bluetooth" LED is on while a
scan runs, off otherwise.

Every advertisement is decoded here (core/ble_formats.py) into the *heard* list the Bluetooth page shows:
address, name, format, values or the refusal, RSSI, when last heard. The list is bounded (``MAX_HEARD``: the
sensor heard longest ago leaves for a new one) and forgets a sensor not heard for ``FORGET_S``. A radio that
fails to start (no adapter, BlueZ down) leaves the scan off with the error said in the status; the next change
of either switch tries again.

**Sources.** A sensor added as a source is a device of the topology (daemon/state/blesources.py); its values
go into the cache through the device-link foundation (daemon/runtime/feed.py ``SourceFeed``): registry keys
(``VALUE_KEYS``: temperature, humidity, pressure, battery level and voltage) are served by every protocol,
the other values a format carries are the device's own (``user:<name>``, the web). One freshness rule for the
heard list and the cache: a value is stale once older than 3 of its sensor's mean advertising intervals, at
least ``FRESH_FLOOR_S`` (the cache's refresh period of the device is set so). While a scan runs, a source
not heard for 10 of its intervals (at least ``LOST_FLOOR_S``) is communication lost and raises system alarm
3, like a meter that stops answering; heard again, both clear. A stopped scan leaves the values to go stale
and raises nothing (the switches say why).
"""

import asyncio
import logging

from core import ble_formats
from daemon.runtime.feed import FeedCounters, SourceFeed
from daemon.supervise import Supervised

log = logging.getLogger("gateway.ble")

SWITCHES = ("policy.bluetooth", "bluetooth.enabled")
MAX_HEARD = 64
FORGET_S = 600.0             # a sensor silent this long leaves the heard list (a source keeps its row)
FRESH_FLOOR_S = 10.0         # a heard value is stale once older than 3 of its sensor's intervals, and this
FRESH_INTERVALS = 3.0
LED = "bluetooth"
LOST_INTERVALS = 10.0
LOST_FLOOR_S = 60.0
WATCH_S = 5.0                # how often the sources' silence is checked
# a format's value name -> the registry key it is stored under; the others are the device's own values
VALUE_KEYS = {"temperature": "temperature", "humidity": "humidity", "pressure": "pressure", "battery": "battery",
              "voltage": "battery_v"}


class _Counters:
    """Counters by a source's Modbus address; an address without a source reads empty counters."""
    __slots__ = ("feeds",)

    def __init__(self, feeds):
        self.feeds = feeds

    def __getitem__(self, address):
        for feed in self.feeds.values():
            if feed.device.address == address:
                return feed.counters
        return FeedCounters()


def stored_key(name):
    """The cache key of a format's value: its registry key, or ``user:<name>``."""
    return VALUE_KEYS.get(name) or "user:" + name


class BleScan:
    def __init__(self, board, settings, clock, cache=None, alarms=None):
        self.board = board
        self.radio = board.ble_scanner()
        self.settings = settings
        self.clock = clock
        self.cache = cache
        self.alarms = alarms
        self.feeds = {}              # BLE address -> SourceFeed of a source's device
        self._declared = {}          # BLE address -> the keys declared for it
        self.sources_lock = asyncio.Lock()       # one change of the sources at a time (the door's)
        self.started_at = None       # gateway time the running scan started
        self._watch = Supervised("ble-watch", self._watch_loop)
        self.running = False
        self.error = None            # why the radio could not start (text), None otherwise
        self.heard = {}              # address -> entry (see _heard)
        self.received = 0            # advertisements taken in
        self.dropped = 0             # advertisements that arrived while the scan was being switched off
        self._lock = asyncio.Lock()
        self._pending = None

    def wanted(self):
        return self.radio is not None and all(bool(self.settings.get(key)) for key in SWITCHES)

    async def start(self):
        self.settings.on_change(self._changed)
        await self.apply()
        self._watch.start()

    async def stop(self):
        await self._watch.stop()
        async with self._lock:
            await self._stop_radio()

    def _changed(self, key, _value):
        if key not in SWITCHES:
            return
        if self.running and not self.wanted():
            self.board.set_led(LED, "off")          # at once; the radio stops in the task below
        if self._pending is None or self._pending.done():
            self._pending = asyncio.get_running_loop().create_task(self.apply(), name="ble-apply")

    async def apply(self):
        """Bring the radio in line with the two switches (idempotent)."""
        async with self._lock:
            want = self.wanted()
            if self.running and not want:
                await self._stop_radio()
                log.info("Bluetooth scan stopped")
            elif want and not self.running:
                try:
                    await self.radio.start(self._heard)
                except Exception as exc:            # the radio's own errors (bleak, D-Bus, no adapter)
                    self.error = str(exc) or exc.__class__.__name__
                    log.error("Bluetooth scan cannot start: %s", self.error)
                    self.board.set_led(LED, "off")
                    return
                self.running, self.error, self.started_at = True, None, self.clock.time()
                self.board.set_led(LED, "on")
                log.info("Bluetooth scan started")
            if not self.running:
                self.board.set_led(LED, "off")

    async def _stop_radio(self):
        if self.running:
            self.running = False
            self.board.set_led(LED, "off")
            try:
                await self.radio.stop()
            except Exception as exc:
                log.error("Bluetooth scan did not stop cleanly: %s", exc)

    # ------------------------------------------------------------ advertisements (on the loop)

    def _heard(self, adv):
        if not self.running or not self.wanted():
            self.dropped += 1
            return
        self.received += 1
        now = self.clock.time()
        fmt, values, refusal = ble_formats.decode(adv.get("service_data") or {}, adv.get("manufacturer_data") or {})
        address = adv["address"]
        entry = self.heard.get(address)
        if entry is None:
            self._make_room(now)
            entry = self.heard[address] = {"address": address, "count": 0, "values": None}
        if values is not None:
            if entry.get("values_at") is not None and now > entry["values_at"]:    # mean interval (EWMA 1/4)
                gap = now - entry["values_at"]
                entry["interval"] = gap if entry.get("interval") is None else 0.75 * entry["interval"] + 0.25 * gap
            entry["values"], entry["values_at"] = values, now
        entry.update(name=adv.get("name") or entry.get("name") or "", rssi=adv.get("rssi"), seen=now,
                     format=fmt, refusal=refusal, count=entry["count"] + 1)
        if values is not None and address in self.feeds:
            self._store(address, values, now)

    def _make_room(self, now):
        for address in [a for a, e in self.heard.items() if now - e["seen"] > FORGET_S]:
            del self.heard[address]
        while len(self.heard) >= MAX_HEARD:
            del self.heard[min(self.heard, key=lambda a: self.heard[a]["seen"])]

    # ------------------------------------------------------------ sources: their values into the cache

    def set_sources(self, devices):
        """The topology's Bluetooth sources now ({BLE address: Device}): one feed each; a feed whose device left
        (or moved to another Modbus address) forgets its values and its alarm."""
        for address, feed in list(self.feeds.items()):
            device = devices.get(address)
            if device is None or device.address != feed.device.address:
                feed.forget()
                del self.feeds[address]
                self._declared.pop(address, None)
            else:
                feed.device = device
        for address, device in devices.items():
            if address not in self.feeds:
                self.feeds[address] = SourceFeed(self.cache, self.alarms, self.clock, device)
                self._declared[address] = frozenset()
                self.feeds[address].declare(())
                entry = self.heard.get(address)
                if entry is not None and entry.get("values") is not None and self.running:
                    self._store(address, entry["values"], entry["values_at"])

    def _store(self, address, values, timestamp):
        feed = self.feeds[address]
        stored = dict((stored_key(name), value) for name, value in values.items())
        keys = self._declared[address] | frozenset(stored)
        if keys != self._declared[address]:
            self._declared[address] = keys
            feed.declare(keys)
        self.cache.set_refresh_period((feed.device.address,), self.fresh_limit(address) / self.cache.FRESH_CYCLES)
        feed.values(stored, timestamp)

    @property
    def counters(self):
        """{Modbus address: FeedCounters} of the sources (a device link's counters, as a bus engine's)."""
        return _Counters(self.feeds)

    def lost_limit(self, address):
        interval = (self.heard.get(address) or {}).get("interval")
        return max(LOST_FLOOR_S, LOST_INTERVALS * interval) if interval else LOST_FLOOR_S

    def check_sources(self):
        """A source silent past ``lost_limit`` while a scan runs: communication lost (and alarm 3)."""
        if not self.running:
            return
        now = self.clock.time()
        for address, feed in self.feeds.items():
            entry = self.heard.get(address)
            last = entry.get("values_at") if entry else None
            silent = now - (last if last is not None else self.started_at)
            if silent > self.lost_limit(address):
                feed.lost("Bluetooth sensor %s not heard for %d s" % (address, silent))

    async def _watch_loop(self):
        while True:
            await asyncio.sleep(WATCH_S)
            self.check_sources()

    # ------------------------------------------------------------ for the door

    def fresh_limit(self, address):
        """Age (s) above which a heard sensor's values are stale: 3 of its mean intervals, at least 10 s."""
        interval = (self.heard.get(address) or {}).get("interval")
        return max(FRESH_FLOOR_S, FRESH_INTERVALS * interval) if interval else FRESH_FLOOR_S

    def heard_list(self):
        """[{address, name, format, values, values_age_s, quality, refusal, rssi, age_s, count}] by address;
        ``quality`` of the values: good, stale (older than ``fresh_limit``) or None (none read)."""
        now = self.clock.time()
        rows = []
        for e in self.heard.values():
            if now - e["seen"] > FORGET_S:
                continue
            age = now - e["values_at"] if e.get("values_at") is not None else None
            rows.append({"address": e["address"], "name": e["name"], "format": e["format"], "values": e["values"],
                         "values_age_s": None if age is None else round(age, 1),
                         "quality": None if age is None else ("good" if age <= self.fresh_limit(e["address"])
                                                              else "stale"),
                         "refusal": e["refusal"], "rssi": e["rssi"], "age_s": round(now - e["seen"], 1),
                         "count": e["count"]})
        rows.sort(key=lambda r: r["address"])          # a stable order: the live page does not jump
        return rows

    def heard_format(self, address):
        """The format ``address`` was last heard in when its frame was readable, else None."""
        entry = self.heard.get(address)
        if entry is None or entry["values"] is None or entry["format"] is None:
            return None
        return entry["format"]

    def status(self):
        return {"radio": self.radio is not None, "policy": bool(self.settings.get("policy.bluetooth")),
                "enabled": bool(self.settings.get("bluetooth.enabled")), "running": self.running,
                "error": self.error, "received": self.received, "dropped": self.dropped,
                "led": self.board.leds.get(LED)}
