"""Simulated Socomec meters: register images computed from a physical model.

Values move like a real site: a daily load profile, voltages around 230 V,
consistent V/I/P/Q/S/PF, energy indexes integrating power, per-load values on
multi-load modules. Values change on whole seconds of the meter's clock (real
meters refresh about once a second), so a test that freezes the clock sees
stable registers. Register facts: ../shared/socomec-registers.md.
"""

import logging
import math
import random
import threading

from board import simcurves, simevents
from core import catalogue, meter_events, modbus_rtu as rtu

log = logging.getLogger("board.simmeter")


class SimLoad:
    """One circuit: nominal power, network type, phase angle and its energy."""

    def __init__(self, number, network, nominal_w, seed):
        self.number = number
        self.network = network
        self.nominal_w = nominal_w
        rnd = random.Random(seed)
        self.phase = rnd.uniform(0, 2 * math.pi)
        self.pf = rnd.uniform(0.86, 0.97)
        self.ea_pos = rnd.uniform(1e5, 5e6)   # Wh
        self.ea_neg = 0.0
        self.er_pos = self.ea_pos * 0.3
        self.er_neg = 0.0
        self.es = self.ea_pos * 1.05

    def power(self, t):
        """Active power at unix time t: a daily profile plus a slow wobble."""
        hour = (t % 86400) / 3600.0
        day = 0.55 + 0.45 * math.sin(math.pi * (hour - 6) / 12) if 6 <= hour <= 18 else 0.3
        wobble = 0.05 * math.sin(t / 97.0 + self.phase)
        return self.nominal_w * max(0.05, day + wobble)


class SimMeter:
    """One simulated device answering Modbus requests from its register image."""

    def __init__(self, reference, address, netid, clock, loads=None, seed=0,
                 network="3P+N", nominal_w=20000.0):
        self.row = catalogue.product(reference)
        self.reference = reference
        self.address = address
        self.netid = netid
        self.clock = clock
        self.lock = threading.RLock()
        self.silent = False
        self.extra_delay = 0.0
        self.crc_error_rate = 0.0
        self.com_led = False
        self.rng = random.Random(seed ^ netid)
        nloads = self.row[catalogue.LOADS] if loads is None else loads
        self.loads = [SimLoad(n, network, nominal_w / max(1, nloads) * (1 + 0.2 * n), seed * 31 + n)
                      for n in range(1, nloads + 1)]
        self.voltage_phase = self.rng.uniform(0, 2 * math.pi)
        self.inputs = 0
        self.outputs = 0
        self.clock_set = False
        self.meter_clock_offset = 0.0
        self.muted = False          # [ours] conflict arbitration filter
        self._second = None
        self._image = {}
        self._last_t = None
        self.requests = 0
        # the meter's own load-curve / trend caches (board/simcurves.py), if its product keeps any
        self.curves = simcurves.CurveCache(self) if simcurves.wanted(self.row) else None
        # its alarm and event log (board/simevents.py), on the products that keep one
        self.events = simevents.EventLog(self) if self.row[catalogue.PROFILE] in meter_events.PROFILES else None

    # ---------------------------------------------------------------- model

    def _advance(self):
        now = self.clock.time()
        second = int(now)
        if second == self._second:
            return
        if self._last_t is not None and second > self._last_t:
            dt_h = (second - self._last_t) / 3600.0
            for load in self.loads:
                p = load.power(second)
                q = p * math.tan(math.acos(load.pf))
                load.ea_pos += p * dt_h
                load.er_pos += q * dt_h
                load.es += math.hypot(p, q) * dt_h
        self._last_t = second
        self._second = second
        self._image = self._build_image(second)
        if self.events is not None:
            self.events.evaluate(second)

    def invalidate(self):
        """The register image is rebuilt (and alarms evaluated) at the next access."""
        self._second = None

    def voltage(self, t, phase):
        return 230.0 + 3.0 * math.sin(t / 311.0 + self.voltage_phase + phase * 2.1)

    def values(self, load_number):
        """Engineering values of one load (or the device, load 0) right now."""
        with self.lock:
            self._advance()
            return dict(self._values(load_number, self._second))

    def _values(self, load_number, t):
        v = [self.voltage(t, k) for k in range(3)]
        out = {"freq": 50.0 + 0.02 * math.sin(t / 53.0)}
        out.update({"v1": v[0], "v2": v[1], "v3": v[2], "vn": 0.4,
                    "v_sys": sum(v) / 3})
        u = [math.sqrt(3) * x for x in v]
        out.update({"u12": u[0], "u23": u[1], "u31": u[2], "u_sys": sum(u) / 3})
        if load_number == 0:
            for n in range(1, 5):
                out["in_%d" % n] = (self.inputs >> (n - 1)) & 1
            for n in range(1, 3):
                out["out_%d" % n] = (self.outputs >> (n - 1)) & 1
            return out
        load = self.loads[load_number - 1]
        p_total = load.power(t)
        shares = (0.36, 0.33, 0.31) if load.network != "1P+N" else (1.0, 0.0, 0.0)
        phi = math.acos(load.pf)
        for k, share in enumerate(shares, 1):
            pk = p_total * share
            qk = pk * math.tan(phi)
            sk = math.hypot(pk, qk)
            out["p%d" % k] = pk
            out["q%d" % k] = qk
            out["s%d" % k] = sk
            out["pf%d" % k] = load.pf if sk else 0.0
            out["pf%d_type" % k] = 2
            out["i%d" % k] = sk / v[k - 1] if sk else 0.0
        q_total = sum(out["q%d" % k] for k in (1, 2, 3))
        s_total = sum(out["s%d" % k] for k in (1, 2, 3))
        out.update({"p": p_total, "q": q_total, "s": s_total, "pf": p_total / s_total if s_total else 0.0,
                    "pf_type": 2, "in": abs(out["i1"] - out["i2"]) * 0.5,
                    "i_sys": (out["i1"] + out["i2"] + out["i3"]) / 3,
                    "s_nom": load.nominal_w * 1.2})
        imax = max(out["i1"], out["i2"], out["i3"])
        out["i_unb"] = 100.0 * (imax - out["i_sys"]) / out["i_sys"] if out["i_sys"] else 0.0
        out["i_nb"] = out["i_unb"] * 0.8
        out["i_dir"], out["i_inv"], out["i_hom"] = out["i_sys"], out["i_sys"] * 0.02, out["in"] / 3
        for key in ("i1", "i2", "i3", "in"):
            out["avg_" + key] = out[key] * 0.98
        out["avg_p"], out["avg_q"], out["avg_s"] = p_total * 0.98, q_total * 0.98, s_total * 0.98
        for n, key in enumerate(("thd_i1", "thd_i2", "thd_i3", "thd_in")):
            out[key] = 8.0 + n + 2 * math.sin(t / 71.0 + n)
        for n, key in enumerate(("thd_v1", "thd_v2", "thd_v3", "thd_u12", "thd_u23", "thd_u31")):
            out[key] = 2.0 + 0.1 * n
        out.update({"ea_pos": load.ea_pos, "ea_neg": load.ea_neg, "er_pos": load.er_pos,
                    "er_neg": load.er_neg, "es": load.es})
        return out

    # ---------------------------------------------------------------- registers

    def _build_image(self, t):
        image = {}
        ident = self._identification()
        for i, w in enumerate(ident):
            image[catalogue.IDENT_BASE + i] = w
        for load_number in range(0, len(self.loads) + 1):
            mapping = catalogue.measurement_map(self.reference, load_number,
                                                self.loads[load_number - 1].network if load_number else "3P+N")
            if not mapping:
                continue
            values = self._values(load_number, t)
            bits = {}
            for key, (reg, kind, mult) in mapping.items():
                value = values.get(key, 0)
                if kind.startswith("bit"):
                    bits[reg] = bits.get(reg, 0) | ((int(value) & 1) << int(kind[3:]))
                    continue
                for i, w in enumerate(catalogue.encode(kind, value, mult)):
                    image[reg + i] = w
            image.update(bits)
        if self.row[catalogue.PROFILE] == "digiware_load":
            for load in self.loads:
                image[catalogue.load_base(load.number)] = 1   # load status: enabled
                settings = catalogue.LOAD_SETTINGS_BASE + (load.number - 1) * catalogue.LOAD_SETTINGS_STRIDE
                image[settings] = 1
                image[settings + 1] = catalogue.NETWORK_LOAD_TYPE.get(load.network, 9)
        if self.row[catalogue.PROFILE] == "digiware_io":
            image[catalogue.IO_BASE] = self.row[catalogue.INPUTS]
            image[catalogue.IO_BASE + 1] = self.row[catalogue.OUTPUTS]
            for n in range(self.row[catalogue.OUTPUTS]):
                image[catalogue.IO_OUTPUT_REGISTER + n] = (self.outputs >> n) & 1
        return image

    def _identification(self):
        words = [0] * catalogue.IDENT_WORDS
        words[0:4] = rtu.encode_string_16("SOCO", 4)
        words[catalogue.IDENT_FAMILY] = self.row[catalogue.FAMILY]
        words[catalogue.IDENT_PRODUCT] = self.row[catalogue.PRODUCT_ID]
        words[6] = 101
        words[catalogue.IDENT_SOFTWARE] = 102
        words[catalogue.IDENT_SERIAL] = (self.netid >> 8) & 0xFFFF
        words[catalogue.IDENT_SERIAL + 1] = (self.netid & 0xFF) << 8
        words[catalogue.IDENT_SERIAL + 2] = 1
        words[18:22] = [1, 2, 0, 7]
        words[catalogue.IDENT_VENDOR:catalogue.IDENT_VENDOR + 8] = rtu.encode_string_norm("SOCOMEC", 8)
        words[catalogue.IDENT_NAME:catalogue.IDENT_NAME + 8] = rtu.encode_string_norm(self.reference, 8)
        words[catalogue.IDENT_EXT_NAME:catalogue.IDENT_EXT_NAME + 8] = rtu.encode_string_norm(
            self.row[catalogue.EXT_NAME], 8)
        words[catalogue.IDENT_NETID:catalogue.IDENT_NETID + 2] = rtu.encode_value("u32", self.netid)
        return words

    def _readable(self, start, count):
        for block_start, words in self._blocks():
            if block_start <= start and start + count <= block_start + words:
                return True
        return False

    def _blocks(self):
        blocks = [(catalogue.IDENT_BASE, catalogue.IDENT_WORDS), (catalogue.CLOCK_REGISTER, 6),
                  (catalogue.SLAVE_ADDRESS_REGISTER, 4)]
        if self.row[catalogue.LOADS] and self.row[catalogue.PROFILE] == "digiware_load":
            blocks.append((catalogue.LOAD_SETTINGS_BASE, catalogue.LOAD_SETTINGS_STRIDE * self.row[catalogue.LOADS]))
            for load in self.loads:
                blocks.extend(catalogue.readable_blocks(self.reference, load.number))
        else:
            blocks.extend(catalogue.readable_blocks(self.reference, 0))
        if self.curves is not None:
            blocks.extend(self.curves.blocks())
        if self.events is not None:
            blocks.extend(self.events.blocks())
        return blocks

    def read_registers(self, start, count):
        """Words at [start, start+count) or a Modbus exception code."""
        with self.lock:
            self._advance()
            if not self._readable(start, count):
                return rtu.ILLEGAL_DATA_ADDRESS
            if self.curves is not None and self.curves.owns(start):
                return self.curves.read(start, count)
            if self.events is not None and self.events.owns(start):
                return self.events.read(start, count)
            if start == catalogue.CLOCK_REGISTER:
                return self._clock_words()[:count]
            if start == catalogue.SLAVE_ADDRESS_REGISTER:
                return [self.address, 5, 0, 0][:count]
            image = self._image
            return [image.get(r, 0) for r in range(start, start + count)]

    def set_inputs(self, bits):
        """The digital inputs change (simulation): logical alarms are logged."""
        with self.lock:
            old, self.inputs = self.inputs, int(bits)
            if self.events is not None and old != self.inputs:
                self.events.inputs_changed(self.clock.time(), old, self.inputs)
            self.invalidate()

    def _clock_words(self):
        t = self.clock.time() + self.meter_clock_offset
        import time as _time
        tm = _time.gmtime(t)
        return [tm.tm_mday, tm.tm_mon, tm.tm_year, tm.tm_hour, tm.tm_min, tm.tm_sec]

    def write_registers(self, start, words):
        """Apply a write; returns 0 or a Modbus exception code."""
        with self.lock:
            if self.curves is not None and self.curves.owns_write(start):
                return self.curves.write(start, words)
            if self.events is not None and self.events.owns_write(start):
                return self.events.write(start, words)
            if start == catalogue.CLOCK_REGISTER:
                if len(words) != 6:
                    return rtu.ILLEGAL_DATA_ADDRESS
                import calendar
                day, month, year, hour, minute, second = words
                try:
                    target = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
                except (ValueError, OverflowError):
                    return rtu.ILLEGAL_DATA_VALUE
                self.meter_clock_offset = target - self.clock.time()
                self.clock_set = True
                return 0
            if start == catalogue.SLAVE_ADDRESS_REGISTER and len(words) == 1:
                if not 1 <= words[0] <= 247:
                    return rtu.ILLEGAL_DATA_VALUE
                self.address = words[0]
                return 0
            outputs = self.row[catalogue.OUTPUTS]
            if outputs and catalogue.IO_OUTPUT_REGISTER <= start and \
                    start + len(words) <= catalogue.IO_OUTPUT_REGISTER + outputs:
                for i, w in enumerate(words):
                    if w not in (0, 1):
                        return rtu.ILLEGAL_DATA_VALUE
                for i, w in enumerate(words):
                    bit = 1 << (start - catalogue.IO_OUTPUT_REGISTER + i)
                    self.outputs = (self.outputs | bit) if w else (self.outputs & ~bit)
                self.invalidate()
                return 0
            return rtu.ILLEGAL_DATA_ADDRESS

    def broadcast_write(self, start, words):
        """[ours] NET ID arbitration commands, sent to address 0 (no answer)."""
        with self.lock:
            if start == catalogue.NETID_ASSIGN_REGISTER and len(words) == 3:
                if rtu.decode_value("u32", words) == self.netid and 1 <= words[2] <= 247:
                    self.address = words[2]
                    self.muted = False
                    self.com_led = False
            elif start == catalogue.NETID_FILTER_REGISTER and len(words) == 5:
                address, lo, hi = words[0], rtu.decode_value("u32", words[1:3]), rtu.decode_value("u32", words[3:5])
                if address == self.address:
                    self.muted = not (lo <= self.netid <= hi)
            elif start == catalogue.CLOCK_REGISTER and len(words) == 6:
                self.write_registers(start, words)

    # ---------------------------------------------------------------- requests

    def handle_pdu(self, pdu):
        """Answer one request PDU (already addressed to us): response PDU.

        A fault in the model answers exception 04, as a meter's firmware
        would, instead of killing the bus thread that serves every meter.
        """
        try:
            return self._handle_pdu(pdu)
        except Exception:
            log.exception("simulated %s@%d failed on a request", self.reference, self.address)
            return rtu.exception_pdu(pdu[0] if pdu else 0, rtu.SERVER_DEVICE_FAILURE)

    def _handle_pdu(self, pdu):
        self.requests += 1
        code = rtu.validate_request_pdu(pdu)
        if code:
            return rtu.exception_pdu(pdu[0] if pdu else 0, code)
        function = pdu[0]
        if function not in (rtu.READ_HOLDING, rtu.READ_INPUT, rtu.WRITE_SINGLE_REGISTER,
                            rtu.WRITE_MULTIPLE_REGISTERS):
            return rtu.exception_pdu(function, rtu.ILLEGAL_FUNCTION)
        _function, start, count, words = rtu.request_fields(pdu)
        if words is None:                     # a read
            answer = self.read_registers(start, count)
            if isinstance(answer, int):
                return rtu.exception_pdu(function, answer)
            return rtu.read_response(function, answer)
        code = self.write_registers(start, words)
        if code:
            return rtu.exception_pdu(function, code)
        return pdu if function == rtu.WRITE_SINGLE_REGISTER else pdu[:5]
