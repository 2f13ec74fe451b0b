"""Curves into the store: consumption read every period, load curves and
histories downloaded from the meters' own caches, gaps back-filled.

* **Consumption curves** (SPEC §1, M-70 manual): at each period boundary the
  energy indexes the poller keeps in the cache are read; the store gets the
  energy of the interval (a counter series). A boundary missed while the
  meter was silent is not invented: the first reading after it carries the
  whole consumption since, flagged "accumulated".
* **Load curves and histories** are recorded by the meters, at the period
  configured in each meter (1..60 min, read from the window header); the
  gateway downloads them with the bus engine's CURVE priority (below
  polling), from the newest point it already has, after each of the meter's
  period boundaries. After a communication cut, the next download simply
  starts further back: that is the back-fill.

The meters' register windows (addresses, page layouts, item decoding) are
pure facts shared with the simulated meters: core/curve_windows.py. This
module is the service: scheduling, paging through the windows over the bus,
turning items into store points.

Point timestamps in the store are the *start* of each interval; meters
stamp the end.
"""

import asyncio
import logging
import math

from core import catalogue, modbus_rtu as rtu, registry
from core.curve_windows import (
    A14_COMMAND,
    A14_HEADER,
    A14_HEADER_WORDS,
    A14_ITEM_WORDS,
    A14_ITEMS,
    A14_NEXT,
    A14_SELECT,
    B30_COMMAND,
    B30_HEADER,
    B30_HEADER_WORDS,
    B30_ITEM_WORDS,
    B30_ITEMS,
    FLAG_CLOCK_NOT_SET,
    FLAG_INCOMPLETE,
    LAST_RECORD,
    LC_WINDOW,
    POWER_TYPES,
    RECORD_NUMBERS,
    TREND_COMMAND,
    TREND_HEADER,
    TREND_HEADER_WORDS,
    TREND_ITEM_WORDS,
    TREND_ITEMS,
    TREND_SETTING_WORDS,
    TREND_SETTINGS,
    TREND_SLOTS,
    b30_ratio,
    decode_a14_header,
    decode_b30_items,
    decode_trend_items,
    decode_trend_settings,
    header_period,
)
from daemon.runtime.bus import CURVE, BusBusy, BusTimeout
from daemon.state.cache import GOOD
from daemon.storage.store import (
    CONSUMPTION_KEYS,
    Q_ACCUMULATED,
    Q_BACKFILLED,
    Q_CLOCK_NOT_SET,
    Q_INCOMPLETE,
    Q_VALID,
    Series,
    setting,
)
from daemon.supervise import Supervised

log = logging.getLogger("gateway.curves")

# The meters' item flags as store quality bits (the store's bits are not core's business).
FLAG_QUALITY = {0: Q_VALID, FLAG_INCOMPLETE: Q_VALID | Q_INCOMPLETE, FLAG_CLOCK_NOT_SET: Q_VALID | Q_CLOCK_NOT_SET,
                FLAG_INCOMPLETE | FLAG_CLOCK_NOT_SET: Q_VALID | Q_INCOMPLETE | Q_CLOCK_NOT_SET}

CHECK_S = 5.0                    # how often the service looks at the clock
DEFAULT_PERIOD_S = 600           # meters' default recording period, until a header says otherwise
DOWNLOAD_DELAY_S = 5.0           # after a period boundary, give the meter time to record
RETRY_S = 60.0                   # after a failed download
INITIAL_BACKFILL_S = 7 * 86400   # how far back a series never seen before is fetched
BACKFILL_GRACE_S = 60.0          # a point fetched later than period + this is "backfilled"


def series_name(kind, netid, load, key):
    """"load_curve/DC85E9/1/lc_p_pos": kind, device key (``Device.uid``: its NET ID, or reference +
    serial number for a device without one), load (0 = device), registry key."""
    return "%s/%s/%d/%s" % (kind, netid, load, key)


def parse_series_name(name):
    kind, netid, load, key = name.split("/")
    return kind, netid, int(load), key


class _DeviceState:
    def __init__(self, device):
        self.netid = device.uid
        self.next_due = 0.0
        self.failures = 0
        self.last_ok = None
        self.last_error = None
        self.points = 0
        self.unsupported = set()         # "load_curve" / "history" windows the meter refused
        self.consumption_boundary = None


class CurveService:
    """Downloads curves for every device of the topology into ``storage``.

    ``cycle()`` does whatever is due at the gateway clock's time (tests call
    it after moving a ManualClock); the background task calls it every
    CHECK_S seconds.
    """

    name = "curves"

    def __init__(self, parts, storage, period_overrides=None):
        self.parts = parts                # topology, engines, cache, settings, clock (daemon/runtime/parts.py)
        self.storage = storage
        self.clock = parts.clock
        self.period_overrides = dict(period_overrides or {})   # NET ID -> consumption minutes
        self.states = {}
        self._series = {}
        self._indexes = {}           # consumption series -> (index, boundary) of the last reading
        self._newest = {}            # series -> start time of its newest stored point
        self.cycles = 0
        self.points = 0
        self.errors = 0
        self._task = None
        self._running = asyncio.Lock()

    async def start(self):
        self._task = Supervised("curves", self._run)
        self._task.start()

    async def stop(self):
        if self._task is not None:
            await self._task.stop()
        if self.storage.ready and self.storage.store.pending_points():
            await self.storage.commit()

    async def _run(self):
        while True:
            await self.cycle()
            await asyncio.sleep(CHECK_S)

    # ------------------------------------------------------------ one pass

    async def cycle(self):
        """Read consumption at boundaries, download due caches, commit once."""
        if not self.storage.ready:
            return
        async with self._running:
            now = self.clock.time()
            devices = list(self.parts.topology.devices)
            wanted = set(d.uid for d in devices)
            for netid in list(self.states):
                if netid not in wanted:
                    del self.states[netid]
            for device in devices:
                if device.uid not in self.states:
                    self.states[device.uid] = _DeviceState(device)
            await self._consumption(devices, now)
            by_bus = {}
            for device in devices:
                if device.bus in self.parts.engines and self._caches(device):
                    by_bus.setdefault(device.bus, []).append(device)
            await asyncio.gather(*[self._download_bus(bus, group, now) for bus, group in by_bus.items()])
            if self.storage.store.pending_points():
                await self.storage.commit()
            self.cycles += 1

    def _series_for(self, name, period, counter=False):
        series = self._series.get(name)
        if series is None or series.period != period:
            series = Series(name, period, counter)
            self._series[name] = series
        return series

    async def _newest_of(self, name):
        if name not in self._newest:
            self._newest[name] = await self.storage.newest(name)
        return self._newest[name]

    def _add(self, series, ts, value, quality, index=None):
        self.storage.add(series, ts, value, quality, index)
        if self._newest.get(series.name) is None or ts > self._newest[series.name]:
            self._newest[series.name] = ts
        self.points += 1

    # ------------------------------------------------------------ consumption

    def consumption_period(self, device):
        minutes = self.period_overrides.get(device.uid) or setting(self.parts.settings,
                                                                      "storage.consumption_period_min")
        return max(10, min(60, int(minutes))) * 60

    async def _consumption(self, devices, now):
        cache = self.parts.cache
        for device in devices:
            state = self.states[device.uid]
            period = self.consumption_period(device)
            boundary = int(now // period) * period
            if state.consumption_boundary == boundary:
                continue
            if cache.comm_lost(device.address):
                state.consumption_boundary = boundary      # nothing to read: this interval stays empty
                continue
            readings = []
            fresh = True
            for load in device.load_numbers():
                for key in CONSUMPTION_KEYS:
                    if not cache.supported(device.address, load, key):
                        continue
                    reading = cache.get(device.address, load, key)
                    # an index read before the boundary belongs to the last period: the poller reads
                    # energies again promptly after each boundary (issue 19, daemon/runtime/poller.py)
                    if reading.quality != GOOD or reading.timestamp < boundary:
                        fresh = False
                        break
                    readings.append((load, key, reading.value))
            if not fresh or not readings:
                continue                                   # not polled (yet): try again at the next pass
            state.consumption_boundary = boundary
            for load, key, index in readings:
                await self._consumption_point(device, load, key, float(index), boundary, period)

    async def _consumption_point(self, device, load, key, index, boundary, period):
        name = series_name("consumption", device.uid, load, key)
        series = self._series_for(name, period, counter=True)
        last = self._indexes.get(name)
        if last is None:
            newest = await self.storage.newest(name)
            stored = await self.storage.last_index(name)
            if newest is not None and stored is not None:
                last = (stored, newest + period)
        self._indexes[name] = (index, boundary)
        if last is None:
            return                                         # first reading: a baseline only
        previous_index, previous_boundary = last
        if previous_boundary >= boundary:
            return
        delta = index - previous_index
        if delta < 0:                                      # counter reset on the meter: start again
            log.info("%s: index went down (%.0f -> %.0f): new baseline", name, previous_index, index)
            return
        quality = Q_VALID if previous_boundary == boundary - period else Q_VALID | Q_ACCUMULATED
        self._add(series, boundary - period, delta, quality, index)

    # ------------------------------------------------------------ downloads

    @staticmethod
    def _caches(device):
        row = catalogue.product(device.reference)
        kinds = set(row[catalogue.CURVES])
        return kinds if LC_WINDOW.get(row[catalogue.PROFILE]) else set()

    async def _download_bus(self, bus, devices, now):
        engine = self.parts.engines[bus]
        for device in devices:
            state = self.states[device.uid]
            if self.parts.cache.comm_lost(device.address):
                state.failures = max(state.failures, 1)     # due again as soon as it answers
                state.next_due = 0.0
                continue
            if now < state.next_due:
                continue
            try:
                period = await self._download_device(engine, device, state, now)
            except (BusTimeout, BusBusy) as exc:
                state.failures += 1
                state.last_error = "%s" % exc
                state.next_due = now + RETRY_S
                self.errors += 1
                log.info("curve download from %s@%d failed: %s", device.reference, device.address, exc)
                continue
            except Exception as exc:        # one device's surprise must not stop the others
                state.failures += 1
                state.last_error = "%s: %s" % (type(exc).__name__, exc)
                state.next_due = now + RETRY_S
                self.errors += 1
                log.exception("curve download from %s@%d", device.reference, device.address)
                continue
            state.failures = 0
            state.last_ok = now
            state.last_error = None
            state.next_due = (now // period + 1) * period + DOWNLOAD_DELAY_S

    async def _download_device(self, engine, device, state, now):
        """Every cache of one device; returns the shortest period seen (s)."""
        kinds = self._caches(device)
        window = LC_WINDOW[catalogue.product(device.reference)[catalogue.PROFILE]]
        periods = []
        if "load_curve" in kinds and "load_curve" not in state.unsupported:
            for load in [n for n in device.load_numbers() if n >= 1]:
                for type_index, key in enumerate(POWER_TYPES):
                    name = series_name("load_curve", device.uid, load, key)
                    try:
                        if window == "b30":
                            period = await self._b30_load_curve(engine, device, load, type_index, name, now)
                        else:
                            period = await self._a14_load_curve(engine, device, type_index, name, now)
                    except rtu.ModbusException as exc:
                        log.info("%s@%d has no load-curve window (%s)", device.reference, device.address, exc)
                        state.unsupported.add("load_curve")
                        break
                    if period:
                        periods.append(period)
                if "load_curve" in state.unsupported:
                    break
        if "history" in kinds and "history" not in state.unsupported:
            try:
                periods.extend(await self._trends(engine, device, now))
            except rtu.ModbusException as exc:
                log.info("%s@%d has no trend window (%s)", device.reference, device.address, exc)
                state.unsupported.add("history")
        return min(periods) if periods else DEFAULT_PERIOD_S

    def _quality(self, flags, end, period, now):
        quality = FLAG_QUALITY.get(flags & (FLAG_INCOMPLETE | FLAG_CLOCK_NOT_SET), Q_VALID)
        if now - end > period + BACKFILL_GRACE_S:
            quality |= Q_BACKFILLED
        return quality

    async def _paged(self, engine, address, command, header_register, header_words, items, item_words,
                     decode, after, now):
        """(newest page header, period s, items newer than ``after``) from a
        record-numbered window (B-30 style).

        Reads the newest page, then older pages while the gap reaches further
        back (bounded by the gap's length and the start of the meter's ring).
        """
        async def page(number):
            await engine.write_registers(address, command[0], [number] + command[1:], priority=CURVE)
            words = await engine.read_registers(address, header_register, header_words + items * item_words,
                                                priority=CURVE)
            return words[:header_words], decode(words[header_words:])

        header, newest_items = await page(LAST_RECORD)
        period = header_period(header)
        if not period:
            return header, None, []
        last_number = (header[0] - 1) % RECORD_NUMBERS
        floor = now - INITIAL_BACKFILL_S if after is None else after
        pages = [newest_items]
        # Walk back while the gap reaches before the oldest item read so far; an
        # empty page is the start of the meter's ring.
        limit = int(math.ceil((now - floor) / float(period * items))) + 1
        for distance in range(1, min(limit, RECORD_NUMBERS - 1) + 1):
            oldest = pages[-1]
            if not oldest or oldest[0][0] - period <= floor + period:
                break
            _header, found = await page((last_number - distance) % RECORD_NUMBERS)
            pages.append(found)
        collected = [item for found in reversed(pages) for item in found]
        return header, period, [item for item in collected if item[0] - period > floor]

    async def _b30_load_curve(self, engine, device, load, type_index, name, now):
        after = await self._newest_of(name)
        header, period, items = await self._paged(engine, device.address, [B30_COMMAND, load - 1, type_index],
                                                  B30_HEADER, B30_HEADER_WORDS, B30_ITEMS, B30_ITEM_WORDS,
                                                  decode_b30_items,
                                                  after, now)
        if not period:
            return None
        ratio = b30_ratio(header)
        series = self._series_for(name, period)
        for end, flags, raw in items:
            self._add(series, end - period, raw * ratio, self._quality(flags, end, period, now))
        return period

    async def _a14_load_curve(self, engine, device, type_index, name, now):
        """Drain the meter's read pointer for one power type (PMD-classic window)."""
        after = await self._newest_of(name)
        floor = now - INITIAL_BACKFILL_S if after is None else after
        address = device.address
        await engine.write_registers(address, A14_COMMAND, [A14_SELECT + type_index], priority=CURVE)
        period = None
        series = None
        for _page in range(1 + setting(self.parts.settings, "storage.points_per_series") // A14_ITEMS):
            words = await engine.read_registers(address, A14_HEADER, A14_HEADER_WORDS + A14_ITEMS * A14_ITEM_WORDS,
                                                priority=CURVE)
            count, period, numerator, denominator = decode_a14_header(words[:A14_HEADER_WORDS])
            if not count or not period:
                break
            series = self._series_for(name, period)
            for end, flags, raw in decode_b30_items(words[A14_HEADER_WORDS:], min(count, A14_ITEMS)):
                if end - period > floor:
                    self._add(series, end - period, raw * numerator / float(denominator),
                              self._quality(flags, end, period, now))
            await engine.write_registers(address, A14_COMMAND, [A14_NEXT], priority=CURVE)
            if count < A14_ITEMS:
                break
        return period

    async def _trends(self, engine, device, now):
        """Every item of the meter's average-trend log; returns the periods seen."""
        words = await engine.read_registers(device.address, TREND_SETTINGS, TREND_SLOTS * TREND_SETTING_WORDS,
                                            priority=CURVE)
        periods = []
        for slot, key, load in decode_trend_settings(words):
            name = series_name("history", device.uid, load, key)
            after = await self._newest_of(name)
            _header, period, items = await self._paged(engine, device.address, [TREND_COMMAND, slot],
                                                       TREND_HEADER, TREND_HEADER_WORDS,
                                                       TREND_ITEMS, TREND_ITEM_WORDS, decode_trend_items, after, now)
            if not period:
                continue
            series = self._series_for(name, period)
            for end, raw in items:
                self._add(series, end - period, registry.from_gateway_raw(key, raw), self._quality(0, end, period, now))
            periods.append(period)
        return periods

    # ------------------------------------------------------------ status

    def status(self):
        return {"cycles": self.cycles, "points": self.points, "errors": self.errors,
                "restarts": self._task.restarts if self._task else 0,
                "devices": dict((netid, {"failures": s.failures, "last_ok": s.last_ok,
                                         "last_error": s.last_error, "next_due": s.next_due,
                                         "unsupported": sorted(s.unsupported)})
                                for netid, s in sorted(self.states.items()))}
