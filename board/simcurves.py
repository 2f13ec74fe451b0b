"""The simulated meters' own caches: load curves and average trends.

Convention 7 of ../shared/socomec-registers.md [ours]: each load keeps a
ring of load-curve records (DATETIME, flag, P+, P-, Q+, Q-, S) at the
meter's period (default 10 min, 1..60 allowed), 8 760 records deep, served
through the B-30 window (0x8860 / 0x8870 / 0x8878) on Digiware/B-30 devices
and the A-14 window (0xF000 / 0xF010 / 0xF016) on PMD-classic ones. Devices
whose simulated product keeps "history" (board/simregisters.py) also keep the B-30 average-trend log
(0xA390 settings, 0xA3FA / 0xA3FC / 0xA400), 12 items.

Records are computed from the meter's physical model when the meter's clock
passes each period boundary (lazily, at the next access: the result is the
same as recording on time, and a silent meter keeps recording). Values are
period averages of the model sampled at SAMPLES instants.
"""

import collections
import math

from core import curve_windows as win, modbus_rtu as rtu, registry

CAPACITY = 8760
SAMPLES = 5
# [ours] what a meter logs in its trend log by default: network voltages on
# load 1 (or the device for a U-xx), then powers, then currents and PF per load.
TREND_NETWORK = ("v1", "v2", "v3", "vn", "u12", "u23", "u31", "v_sys", "u_sys", "freq")
TREND_PER_LOAD = ("p", "q", "s")
TREND_MORE_PER_LOAD = ("i1", "pf", "i2", "i3")


def wanted(product):
    """Does this simulated product (board/simregisters.Product) keep any cache we simulate?"""
    return bool(product.caches) and product.curve_window is not None


class _Ring:
    """Periodic records numbered from 0 (the meter's first), the newest CAPACITY kept."""

    def __init__(self, period, capacity):
        self.period = period
        self.records = collections.deque(maxlen=capacity)   # (seq, end meter time, flag, payload)
        self.next_seq = 0
        self.last_end = None

    def oldest_seq(self):
        return self.records[0][0] if self.records else self.next_seq

    def get(self, seq):
        if not self.records or seq < self.records[0][0] or seq >= self.next_seq:
            return None
        return self.records[seq - self.records[0][0]]


class CurveCache:
    """The curve caches of one SimMeter (called under the meter's lock)."""

    def __init__(self, meter, lc_period_s=600, trend_period_min=10, capacity=CAPACITY):
        if not 60 <= lc_period_s <= 3600 or lc_period_s % 60:
            raise ValueError("load-curve period must be 1..60 whole minutes")
        if not 1 <= trend_period_min <= 60:
            raise ValueError("trend period must be 1..60 minutes")
        self.meter = meter
        self.window = meter.product.curve_window
        kinds = meter.product.caches
        self.has_lc = "load_curve" in kinds and bool(meter.loads)
        self.has_trend = "history" in kinds
        self.capacity = capacity
        self.lc = dict((load.number, _Ring(lc_period_s, capacity)) for load in meter.loads) if self.has_lc else {}
        self.ratio = dict((load.number, self._ratio(load)) for load in meter.loads)
        self.trend_items = self._default_trend_items() if self.has_trend else []
        self.trend = _Ring(trend_period_min * 60, capacity) if self.has_trend else None
        self.b30_command = [win.LAST_RECORD, 0, 0]
        self.trend_command = [win.LAST_RECORD, 0]
        self.a14_type = 0
        self.a14_pointer = dict((t, 0) for t in range(len(win.POWER_TYPES)))
        self.a14_served = dict((t, 0) for t in range(len(win.POWER_TYPES)))
        self.started = self._meter_time()

    # ------------------------------------------------------------ configuration

    @staticmethod
    def _ratio(load):
        """numerator/denominator so the U16 value holds the load's largest power."""
        for numerator in (1, 10, 100, 1000):
            if 1.3 * load.nominal_w / numerator <= 0xFFFF:
                return numerator, 1
        return 1000, 1

    def _default_trend_items(self):
        meter = self.meter
        loads = [load.number for load in meter.loads]
        candidates = []
        if loads:
            candidates += [(key, loads[0]) for key in TREND_NETWORK[:3]]
            candidates += [(key, n) for n in loads for key in TREND_PER_LOAD]
            candidates += [(key, n) for n in loads for key in TREND_MORE_PER_LOAD]
        else:
            candidates += [(key, 0) for key in TREND_NETWORK]
        items = []
        for key, load in candidates:
            if key in meter.offered(load):
                items.append((key, load))
        return items[:win.TREND_SLOTS]

    # ------------------------------------------------------------ recording

    def _meter_time(self):
        return self.meter.clock.time() + self.meter.meter_clock_offset

    def _catch_up(self):
        now = self._meter_time()
        for number, ring in self.lc.items():
            self._record(ring, now, lambda start, end, n=number: self._lc_record(n, start, end))
        if self.trend is not None:
            self._record(self.trend, now, self._trend_record)

    def _record(self, ring, now, make):
        period = ring.period
        boundary = int(now // period) * period
        if ring.last_end is None:
            ring.last_end = int(self.started // period) * period
        if boundary <= ring.last_end:
            return
        count = (boundary - ring.last_end) // period
        skip = max(0, count - self.capacity)
        ring.next_seq += skip
        end = ring.last_end + (skip + 1) * period
        while end <= boundary:
            start = end - period
            flag = 0 if start >= self.started else 1          # powered up during the period
            if not self.meter.clock_set:
                flag |= 2
            ring.records.append((ring.next_seq, end, flag, make(start, end)))
            ring.next_seq += 1
            end += period
        ring.last_end = boundary

    def _model_times(self, start, end):
        offset = self.meter.meter_clock_offset
        step = (end - start) / float(SAMPLES)
        return [start - offset + (k + 0.5) * step for k in range(SAMPLES)]

    def _lc_record(self, number, start, end):
        """Raw U16 P+, P-, Q+, Q-, S averaged over the period."""
        load = self.meter.loads[number - 1]
        sums = [0.0] * 5
        tan_phi = math.tan(math.acos(load.pf))
        for t in self._model_times(start, end):
            p = load.power(t)
            q = p * tan_phi
            sums[0] += max(p, 0.0)
            sums[1] += max(-p, 0.0)
            sums[2] += max(q, 0.0)
            sums[3] += max(-q, 0.0)
            sums[4] += math.hypot(p, q)
        numerator, denominator = self.ratio[number]
        return [min(0xFFFF, int(round(total / SAMPLES * denominator / numerator))) for total in sums]

    def _trend_record(self, start, end):
        """Raw S32 of every trend item (registry gateway scale), averaged over the period."""
        sums = [0.0] * len(self.trend_items)
        for t in self._model_times(start, end):
            values = {}
            for i, (key, load) in enumerate(self.trend_items):
                if load not in values:
                    values[load] = self.meter._values(load, t)
                sums[i] += values[load].get(key, 0.0)
        return [registry.to_gateway_raw(key, total / SAMPLES) for total, (key, _load) in zip(sums, self.trend_items)]

    # ------------------------------------------------------------ register windows

    def blocks(self):
        out = []
        if self.has_lc and self.window == "b30":
            out += [(win.B30_COMMAND, 3), (win.B30_HEADER, win.B30_HEADER_WORDS + win.B30_ITEMS * 4)]
        if self.has_lc and self.window == "a14":
            out += [(win.A14_COMMAND, 1), (win.A14_HEADER, win.A14_HEADER_WORDS + win.A14_ITEMS * win.A14_ITEM_WORDS)]
        if self.has_trend:
            out += [(win.TREND_SETTINGS, win.TREND_SLOTS * win.TREND_SETTING_WORDS), (win.TREND_COMMAND, 2),
                    (win.TREND_HEADER, win.TREND_HEADER_WORDS + win.TREND_ITEMS * 4)]
        return out

    def owns(self, start):
        return any(block <= start < block + words for block, words in self.blocks())

    def read(self, start, count):
        """Words of a read inside one of our blocks (the meter checked the block)."""
        self._catch_up()
        for block, words in self.blocks():
            if block <= start < block + words:
                content = self._block_words(block)
                return content[start - block:start - block + count]
        return rtu.ILLEGAL_DATA_ADDRESS

    def _block_words(self, block):
        if block == win.B30_COMMAND:
            return list(self.b30_command)
        if block == win.B30_HEADER:
            return self._b30_page()
        if block == win.A14_COMMAND:
            return [win.A14_SELECT + self.a14_type]
        if block == win.A14_HEADER:
            return self._a14_batch()
        if block == win.TREND_SETTINGS:
            words = []
            for key, load in self.trend_items:
                sid = registry.get(key)[registry.DATA_ID]
                words += rtu.encode_value("u32", sid) + [load]
            return words + [0] * (win.TREND_SLOTS * win.TREND_SETTING_WORDS - len(words))
        if block == win.TREND_COMMAND:
            return list(self.trend_command)
        if block == win.TREND_HEADER:
            return self._trend_page()
        return []

    def write(self, start, words):
        """Apply a command; 0 or a Modbus exception code (bad input changes nothing)."""
        if start == win.B30_COMMAND and self.has_lc and self.window == "b30":
            if len(words) != 3:
                return rtu.ILLEGAL_DATA_ADDRESS
            record, load_index, power_type = words
            if load_index >= len(self.meter.loads) or power_type >= len(win.POWER_TYPES):
                return rtu.ILLEGAL_DATA_VALUE
            self.b30_command = [record, load_index, power_type]
            return 0
        if start == win.A14_COMMAND and self.has_lc and self.window == "a14":
            if len(words) != 1:
                return rtu.ILLEGAL_DATA_ADDRESS
            self._catch_up()
            word = words[0]
            ring = self.lc[1]
            if word == win.A14_RESET:
                self.a14_pointer[self.a14_type] = ring.oldest_seq()
            elif word == win.A14_NEXT:
                self.a14_pointer[self.a14_type] += self.a14_served[self.a14_type]
                self.a14_served[self.a14_type] = 0
            elif win.A14_SELECT <= word < win.A14_SELECT + len(win.POWER_TYPES):
                self.a14_type = word - win.A14_SELECT
            else:
                return rtu.ILLEGAL_DATA_VALUE
            return 0
        if start == win.TREND_COMMAND and self.has_trend:
            if len(words) != 2:
                return rtu.ILLEGAL_DATA_ADDRESS
            if words[1] >= len(self.trend_items):
                return rtu.ILLEGAL_DATA_VALUE
            self.trend_command = list(words)
            return 0
        return rtu.ILLEGAL_DATA_ADDRESS

    def owns_write(self, start):
        return start in (win.B30_COMMAND, win.A14_COMMAND, win.TREND_COMMAND) and self.owns(start)

    # ------------------------------------------------------------ pages

    @staticmethod
    def _page_seqs(ring, record, per_page):
        """(record number, first seq) of the page ``record`` (or the newest page)."""
        newest_page = max(ring.next_seq - 1, 0) // per_page
        if record == win.LAST_RECORD:
            return newest_page % win.RECORD_NUMBERS, newest_page * per_page
        distance = (newest_page - record) % win.RECORD_NUMBERS
        return record, (newest_page - distance) * per_page

    def _b30_page(self):
        record, load_index, power_type = self.b30_command
        ring = self.lc[load_index + 1]
        number, first = self._page_seqs(ring, record, win.B30_ITEMS)
        numerator, denominator = self.ratio[load_index + 1]
        header = [(number + 1) % win.RECORD_NUMBERS, win.B30_ITEMS, win.B30_ITEM_WORDS, load_index, power_type,
                  ring.period, numerator, denominator]
        return header + self._power_items(ring, range(first, first + win.B30_ITEMS), power_type)

    def _a14_batch(self):
        ring = self.lc[1]
        kind = self.a14_type
        pointer = max(self.a14_pointer[kind], ring.oldest_seq())
        self.a14_pointer[kind] = pointer
        count = max(0, min(win.A14_ITEMS, ring.next_seq - pointer))
        self.a14_served[kind] = count
        numerator, denominator = self.ratio[1]
        header = [count, 4, ring.period // 60, win.A14_UNIT_CODES[kind], numerator, denominator]
        served = range(pointer, pointer + count)
        return header + self._power_items(ring, range(pointer, pointer + win.A14_ITEMS), kind, served)

    @staticmethod
    def _power_items(ring, seqs, power_type, served=None):
        """Load-curve items (DATETIME, flag, value) of both windows; EMPTY_FLAG where no record is shown."""
        items = []
        for seq in seqs:
            found = ring.get(seq) if seq >= 0 and (served is None or seq in served) else None
            if found is None:
                items += [0, 0, win.EMPTY_FLAG, 0]
            else:
                _seq, end, flag, raw = found
                items += rtu.encode_value("datetime", rtu.unix_to_socomec(end)) + [flag, raw[power_type]]
        return items

    def _trend_page(self):
        record, item = self.trend_command
        ring = self.trend
        number, first = self._page_seqs(ring, record, win.TREND_ITEMS)
        header = [(number + 1) % win.RECORD_NUMBERS, win.TREND_ITEMS, win.TREND_ITEM_WORDS, ring.period // 60]
        items = []
        for seq in range(first, first + win.TREND_ITEMS):
            found = ring.get(seq) if seq >= 0 else None
            if found is None or item >= len(found[3]):
                items += [0, 0, 0, 0]
            else:
                _seq, end, _flag, raw = found
                items += rtu.encode_value("datetime", rtu.unix_to_socomec(end)) + rtu.encode_value("s32", raw[item])
        return header + items

    # ------------------------------------------------------------ for tests

    def load_curve(self, load, key):
        """[(end time, flag, value W/var/VA)] the meter holds for ``load``, oldest first."""
        self._catch_up()
        index = win.POWER_TYPES.index(key)
        numerator, denominator = self.ratio[load]
        return [(end, flag, raw[index] * numerator / float(denominator))
                for _seq, end, flag, raw in self.lc[load].records]

    def trend_values(self, key, load):
        """[(end time, value)] of one trend item, oldest first."""
        self._catch_up()
        i = self.trend_items.index((key, load))
        return [(end, registry.from_gateway_raw(key, raw[i])) for _seq, end, _flag, raw in self.trend.records]
