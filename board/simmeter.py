"""Simulated Socomec meters: register images computed from a physical model.

Values move like a real site: a daily load profile, voltages around 230 V,
consistent V/I/P/Q/S/PF, energy indexes integrating power, per-load values on
multi-load modules. Values change on whole seconds of the meter's clock (real
meters refresh about once a second), so a test that freezes the clock sees
stable registers.

Where each value lives, in which type and scale, which blocks answer and
where exception 02 begins: board/simregisters.py, the meters' own tables
written from ../shared/socomec-registers.md. The gateway's catalogue
(core/catalogue.py) is never consulted here: tests compare the two.

Signs follow the Socomec tables [OE-A10]: P and Q are signed (a load that
exports has P < 0), PF is negative when leading and positive when lagging.
A load's ``pf`` carries that sign: Q = P * tan(acos(pf)), so a lagging load
has Q of P's sign (quadrants I and III) and a leading one the opposite sign
(quadrants II and IV).
"""

import calendar
import logging
import math
import random
import threading
import time

from board import simcurves, simevents, simregisters as regs
from core import modbus_rtu as rtu

log = logging.getLogger("board.simmeter")

RTU_TYPES = {"U16": "u16", "S16": "s16", "U8": "u8", "U32": "u32", "S32": "s32", "DATETIME": "datetime"}
BUILD_TIME = 1578406320          # [ours] 2020-01-07 14:12 UTC, the build date the meters report
PF_TYPE_LEADING, PF_TYPE_LAGGING = 1, 2      # [OE-A10] [OE-B30] PF type codes


class SimLoad:
    """One circuit: nominal power, network type, power factor, direction and its energy.

    ``pf`` is signed as Socomec's registers are (- leading, + lagging);
    ``export`` turns the active power negative (the circuit feeds the network).
    """

    def __init__(self, number, network, nominal_w, seed):
        self.number = number
        self.network = network
        self.nominal_w = nominal_w
        rnd = random.Random(seed)
        self.phase = rnd.uniform(0, 2 * math.pi)
        self.pf = rnd.uniform(0.86, 0.97)
        self.ea_pos = rnd.uniform(1e5, 5e6)   # Wh
        self.er_pos = self.ea_pos * 0.3
        self.es = self.ea_pos * 1.05
        # some energy exported in the past, so that every index has digits a scale error would move
        self.ea_neg = self.ea_pos * rnd.uniform(0.002, 0.02)
        self.er_neg = self.er_pos * rnd.uniform(0.002, 0.02)
        self.export = False

    def power(self, t):
        """Active power at unix time t: a daily profile plus a slow wobble; negative when exporting."""
        hour = (t % 86400) / 3600.0
        day = 0.55 + 0.45 * math.sin(math.pi * (hour - 6) / 12) if 6 <= hour <= 18 else 0.3
        wobble = 0.05 * math.sin(t / 97.0 + self.phase)
        magnitude = self.nominal_w * max(0.05, day + wobble)
        return -magnitude if self.export else magnitude

    def reactive(self, p):
        """Q for active power p: of p's sign when lagging, of the opposite sign when leading."""
        return p * math.tan(math.acos(self.pf))


def _encode(kind, value, scale):
    """One register value of the meter's table → words."""
    if kind == "KWH+10WH":
        units = int(max(0.0, value) // scale)
        residual = int((max(0.0, value) - units * scale) // (scale / 100.0))
        return rtu.encode_value("u32", min(units, 0xFFFFFFFF)) + [min(max(residual, 0), 99)]
    rtu_kind = RTU_TYPES[kind]
    raw = rtu.saturate(int(round(value / scale)), rtu.TYPE_RANGE[rtu_kind])
    if kind == "U8":
        raw = min(raw, 0xFF)
    return rtu.encode_value(rtu_kind, raw)


class SimMeter:
    """One simulated device answering Modbus requests from its register image.

    ``netid`` is the simulator's handle of the meter (topology files, the
    simulation API): the NET ID it reports where its family has one (B-30 /
    Digiware generation), else only the seed of its serial number.
    """

    def __init__(self, reference, address, netid, clock, loads=None, seed=0,
                 network=None, nominal_w=20000.0):
        self.product = regs.Product(reference)
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
        most = self.product.loads
        nloads = most if loads is None or not most else loads
        if not 0 <= nloads <= most:
            raise ValueError("a %s has at most %d loads" % (reference, most))
        network = network or (self.product.networks[0] if self.product.networks else "3P+N")
        if self.product.networks and network not in self.product.networks:
            raise ValueError("a %s measures %s, not %s" % (reference, "/".join(self.product.networks), network))
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
        self._static_blocks = self._fixed_blocks()
        self.requests = 0
        # the meter's own load-curve / trend caches (board/simcurves.py), if its product keeps any
        self.curves = simcurves.CurveCache(self) if simcurves.wanted(self.product) else None
        # its alarm and event log (board/simevents.py), on the products that keep one
        self.events = simevents.EventLog(self) if self.product.event_log else None

    # ---------------------------------------------------------------- configuration

    def configure_load(self, number, export=None, pf=None):
        """A circuit starts exporting (or importing) and/or takes a power factor (- leading, + lagging)."""
        with self.lock:
            if type(number) is not int or not 1 <= number <= len(self.loads):
                raise ValueError("the meter has no load %r" % (number,))
            if export is not None and not isinstance(export, bool):
                raise ValueError("export must be true or false")
            if pf is not None:
                if isinstance(pf, bool) or not isinstance(pf, (int, float)) or not math.isfinite(pf) \
                        or not 0.05 <= abs(pf) <= 1.0:
                    raise ValueError("pf must be within -1..-0.05 (leading) or 0.05..1 (lagging)")
            load = self.loads[number - 1]
            if export is not None:
                load.export = export
            if pf is not None:
                load.pf = float(pf)
            self.invalidate()

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
                q = load.reactive(p)
                if p >= 0:
                    load.ea_pos += p * dt_h
                else:
                    load.ea_neg -= p * dt_h
                if q >= 0:
                    load.er_pos += q * dt_h
                else:
                    load.er_neg -= q * dt_h
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

    def offered(self, load_number):
        """Names of the values the meter's registers carry for a load (its network's own)."""
        network = self.loads[load_number - 1].network if load_number else "3P+N"
        names = set()
        for _reg, kind, name, _scale, _src in regs.rows_at(self.product, load_number):
            if kind == "BITS":
                count = self.product.inputs if name == "in_" else self.product.outputs
                names.update(name + str(n) for n in range(1, count + 1))
            else:
                names.add(name)
        return names - set(regs.NOT_MEASURED.get(network, ()))

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
        pf_type = PF_TYPE_LAGGING if load.pf >= 0 else PF_TYPE_LEADING
        for k, share in enumerate(shares, 1):
            pk = p_total * share
            qk = load.reactive(pk)
            sk = math.hypot(pk, qk)
            out["p%d" % k] = pk
            out["q%d" % k] = qk
            out["s%d" % k] = sk
            out["pf%d" % k] = load.pf if sk else 0.0
            out["pf%d_type" % k] = pf_type
            out["i%d" % k] = sk / v[k - 1] if sk else 0.0
        q_total = sum(out["q%d" % k] for k in (1, 2, 3))
        s_total = sum(out["s%d" % k] for k in (1, 2, 3))
        out.update({"p": p_total, "q": q_total,
                    "s": s_total, "pf": math.copysign(abs(p_total) / s_total, load.pf) if s_total else 0.0,
                    "pf_type": pf_type, "in": abs(out["i1"] - out["i2"]) * 0.5,
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

    def _register_values(self, load_number, t):
        """The values plus what only the registers show (status words, dates, hour meters)."""
        out = self._values(load_number, t)
        hours = max(0.0, t - BUILD_TIME) / 3600.0
        out.update({"date": rtu.unix_to_socomec(t + self.meter_clock_offset), "hour_meter": hours,
                    "hour_meter_s": hours * 3600.0, "load_status": 1,
                    "n_inputs": self.product.inputs, "n_outputs": self.product.outputs})
        if load_number:
            lagging = self.loads[load_number - 1].pf >= 0
            for prefix in ("q", "q1", "q2", "q3"):
                q = out[prefix]
                out[prefix + "_lagging"], out[prefix + "_leading"] = (q, 0.0) if lagging else (0.0, q)
        return out

    # ---------------------------------------------------------------- registers

    def _build_image(self, t):
        image = {}
        for i, w in enumerate(self._identification()):
            image[regs.IDENT_BASE + i] = w
        product = self.product
        if product.load_blocks:
            for load in self.loads:
                values = self._register_values(load.number, t)
                self._encode_rows(image, regs.rows_at(product, load.number), values)
                settings = regs.LOAD_SETTINGS_BASE + (load.number - 1) * regs.LOAD_SETTINGS_STRIDE
                self._encode_rows(image, [(settings + off, kind, name, scale, src)
                                          for off, kind, name, scale, src in regs.LOAD_SETTINGS],
                                  {"enabled": 1, "load_type": regs.LOAD_TYPE_CODES[load.network],
                                   "inom": max(1, int(round(load.nominal_w * 1.2 / 230.0 / 3)))})
            # loads the module has but the site does not use: status 0 and zeros (convention 6.5)
        else:
            number = 1 if product.loads else 0
            self._encode_rows(image, regs.rows_at(product, number), self._register_values(number, t))
        for n in range(product.outputs):
            image[regs.IO_OUTPUT_REGISTER + n] = (self.outputs >> n) & 1
        return image

    @staticmethod
    def _encode_rows(image, rows, values):
        for reg, kind, name, scale, _source in rows:
            if kind == "BITS":
                word = 0
                for n in range(16):
                    if values.get(name + str(n + 1)):
                        word |= 1 << n
                image[reg] = word
                continue
            value = values.get(name)
            if value is None:
                continue                      # not modelled: reads 0 like a Reserved word
            for i, w in enumerate(_encode(kind, value, scale)):
                image[reg + i] = w

    def _identification(self):
        product = self.product
        handle = self.netid & 0xFFFFFF
        tm = time.gmtime(BUILD_TIME)
        fields = {
            "soco": "SOCO", "family": product.family, "product_id": product.product_id,
            "table_version": 101, "software_version": 102,
            "serial_aa_ss": (handle >> 8) & 0xFFFF, "serial_sst_l": (handle & 0xFF) << 8, "serial_order": 1,
            "version_major": 1, "version_minor": 2, "version_revision": 0, "version_build": 7,
            "build_date": [tm.tm_year, tm.tm_mon * 256 + tm.tm_mday, tm.tm_hour * 256 + tm.tm_min],
            "base_major": 1, "vendor": "SOCOMEC", "product_name": self.reference,
            "ext_name": product.ext_name, "resource_version": 1, "netid": handle,
        }
        table = regs.IDENT_FIELDS + (regs.IDENT_FIELDS_NETID if product.has_netid else ())
        words = [0] * product.ident_words
        for offset, count, kind, field, _source in table:
            value = fields.get(field)
            if value is None:
                continue
            if kind == "STRING_16":
                encoded = rtu.encode_string_16(value, count)
            elif kind == "STRING_NORM":
                encoded = rtu.encode_string_norm(value, count)
            elif kind == "DATETIME_3":
                encoded = list(value)
            else:
                encoded = rtu.encode_value(kind.lower(), value)
            words[offset:offset + count] = encoded
        return words

    def _fixed_blocks(self):
        """(start, words) of every block the meter's tables define (caches and logs apart)."""
        product = self.product
        blocks = [(regs.IDENT_BASE, product.ident_words), (regs.CLOCK_REGISTER, 6)]
        blocks.append((regs.RS485_SETTINGS, 4) if product.has_netid else (regs.PMD_SETTINGS, 3))
        if product.load_blocks:
            blocks.append((regs.LOAD_SETTINGS_BASE, regs.LOAD_SETTINGS_STRIDE * product.loads))
            for n in range(1, product.loads + 1):
                base = regs.load_base(n)
                blocks += [(base + start, words) for start, words, _rows, _source in product.load_blocks]
        else:
            blocks += [(start, words) for start, words, _rows, _source in product.device_blocks]
        if product.outputs:
            blocks.append((regs.IO_OUTPUT_REGISTER, product.outputs))
        return blocks

    def blocks(self):
        """Every (start, words) a read may span; anything else answers exception 02."""
        blocks = list(self._static_blocks)
        if self.curves is not None:
            blocks.extend(self.curves.blocks())
        if self.events is not None:
            blocks.extend(self.events.blocks())
        return blocks

    def _readable(self, start, count):
        for block_start, words in self.blocks():
            if block_start <= start and start + count <= block_start + words:
                return True
        return False

    def _settings_words(self):
        if self.product.has_netid:        # [OE-B30] address, baud code (38400 [ours]), 1 stop bit, no parity
            return [self.address, regs.BAUD_CODES[38400], 0, 0]
        network = self.loads[0].network if self.loads else "3P+N"
        return [regs.PMD_NETWORK_CODES[network], 5, 100]      # [OE-A10] network type; CT 100/5 A [ours]

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
            for base, make in ((regs.CLOCK_REGISTER, self._clock_words), (regs.RS485_SETTINGS, self._settings_words)):
                words = len(make())
                if base <= start < base + words:
                    return make()[start - base:start - base + count]
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
        tm = time.gmtime(self.clock.time() + self.meter_clock_offset)
        return [tm.tm_mday, tm.tm_mon, tm.tm_year, tm.tm_hour, tm.tm_min, tm.tm_sec]

    def write_registers(self, start, words):
        """Apply a write; returns 0 or a Modbus exception code."""
        with self.lock:
            if self.curves is not None and self.curves.owns_write(start):
                return self.curves.write(start, words)
            if self.events is not None and self.events.owns_write(start):
                return self.events.write(start, words)
            if start == regs.CLOCK_REGISTER:
                if len(words) != 6:
                    return rtu.ILLEGAL_DATA_ADDRESS
                day, month, year, hour, minute, second = words
                try:
                    target = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
                except (ValueError, OverflowError):
                    return rtu.ILLEGAL_DATA_VALUE
                self.meter_clock_offset = target - self.clock.time()
                self.clock_set = True
                return 0
            if start == regs.RS485_SETTINGS and len(words) == 1 and self.product.has_netid:
                if not 1 <= words[0] <= 247:
                    return rtu.ILLEGAL_DATA_VALUE
                self.address = words[0]
                return 0
            outputs = self.product.outputs
            if outputs and regs.IO_OUTPUT_REGISTER <= start and \
                    start + len(words) <= regs.IO_OUTPUT_REGISTER + outputs:
                for w in words:
                    if w not in (0, 1):
                        return rtu.ILLEGAL_DATA_VALUE
                for i, w in enumerate(words):
                    bit = 1 << (start - regs.IO_OUTPUT_REGISTER + i)
                    self.outputs = (self.outputs | bit) if w else (self.outputs & ~bit)
                self.invalidate()
                return 0
            return rtu.ILLEGAL_DATA_ADDRESS

    def broadcast_write(self, start, words):
        """[ours] NET ID arbitration commands, sent to address 0 (no answer).

        Only a meter that has a NET ID takes part: a COUNTIS or a DIRIS A
        ignores them (and keeps answering at its address)."""
        with self.lock:
            if start == regs.CLOCK_REGISTER and len(words) == 6:
                self.write_registers(start, words)
                return
            if not self.product.has_netid:
                return
            netid = self.netid & 0xFFFFFF
            if start == regs.NETID_ASSIGN_REGISTER and len(words) == 3:
                if rtu.decode_value("u32", words) == netid and 1 <= words[2] <= 247:
                    self.address = words[2]
                    self.muted = False
                    self.com_led = False
            elif start == regs.NETID_FILTER_REGISTER and len(words) == 5:
                address, lo, hi = words[0], rtu.decode_value("u32", words[1:3]), rtu.decode_value("u32", words[3:5])
                if address == self.address:
                    self.muted = not (lo <= netid <= hi)

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
