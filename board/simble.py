"""The simulated board's Bluetooth radio and the sensors it hears (issue 18).

Each simulated sensor advertises real frame bytes every ``period_s`` while a scan runs, built here from the
formats' documentation (the daemon's decoder, core/ble_formats.py, is not used: the simulator is separate
hardware): BTHome v2 (service data 0xFCD2: device information 0x40, packet id, battery, temperature x0.01 °C,
humidity x0.01 %), pvvx custom (0x181A: MAC little-endian, temperature, humidity, mV, %, counter, flags),
Ruuvi RAWv2 (manufacturer 0x0499: data format 5, big-endian fields, MAC), or ``raw`` bytes given as hex
(an encrypted or malformed frame). Sensors come from the topology's ``"ble"`` list and from tests
(``add``, ``configure``: values, silent, rssi). The radio counts its starts and stops, so a test can see that
no scan ran.

A sensor entry: ``{"address": "A4:C1:38:00:00:01", "name": "ATC_000001", "format": "pvvx", "period_s": 2,
"rssi": -60, "values": {"temperature": 21.5, "humidity": 45.0, "battery": 90, "voltage": 2.95}}``; for
``raw``: ``"service_data": {"fcd2": "41..."}`` and/or ``"manufacturer_data": {"1177": "05..."}``.
"""

import asyncio
import struct

from board.bleradio import advertisement

FORMATS = ("bthome", "pvvx", "ruuvi", "raw")
DEFAULT_VALUES = {"temperature": 21.0, "humidity": 45.0, "battery": 90, "voltage": 2.95, "pressure": 1013.25}
PERIOD_MIN_S = 0.05


def _mac(address):
    parts = address.split(":")
    if len(parts) != 6:
        raise ValueError("a BLE address is 6 hex bytes: %r" % address)
    return bytes(int(p, 16) for p in parts)


def bthome_frame(values, packet):
    """BTHome v2, bthome.io/format: 0x40 = version 2, not encrypted; objects in id order, little-endian."""
    frame = bytes((0x40, 0x00, packet & 0xFF, 0x01, int(values["battery"]) & 0xFF))
    frame += b"\x02" + struct.pack("<h", int(round(values["temperature"] * 100)))
    frame += b"\x03" + struct.pack("<H", int(round(values["humidity"] * 100)))
    return {0xFCD2: frame}, {}


def pvvx_frame(address, values, packet):
    """pvvx custom format: MAC [0] = lowest byte, int16 0.01 °C, uint16 0.01 %, uint16 mV, uint8 %, counter, flags."""
    body = _mac(address)[::-1] + struct.pack("<hHHBBB", int(round(values["temperature"] * 100)),
                                             int(round(values["humidity"] * 100)),
                                             int(round(values["voltage"] * 1000)), int(values["battery"]),
                                             packet & 0xFF, 0)
    return {0x181A: body}, {}


def ruuvi_frame(address, values, packet):
    """Ruuvi data format 5: 0.005 °C, 0.0025 %, Pa - 50000, acceleration mg, (mV - 1600) << 5 | tx, movement,
    sequence, MAC."""
    power = (int(round(values["voltage"] * 1000)) - 1600) << 5 | ((4 + 40) // 2)
    body = struct.pack(">BhHHhhhHBH", 5, int(round(values["temperature"] / 0.005)),
                       int(round(values["humidity"] / 0.0025)), int(round(values["pressure"] * 100)) - 50000,
                       0, 0, 1000, power, 0, packet & 0xFFFF) + _mac(address)
    return {}, {0x0499: body}


def _hex_map(mapping, base):
    return dict((int(str(k), base), bytes.fromhex(v)) for k, v in (mapping or {}).items())


class SimSensor:
    def __init__(self, spec):
        if not isinstance(spec, dict) or spec.get("format") not in FORMATS:
            raise ValueError("a simulated BLE sensor needs a format of %s: %r" % (FORMATS, spec))
        self.address = str(spec["address"]).upper()
        _mac(self.address)
        self.name = str(spec.get("name", ""))
        self.format = spec["format"]
        self.period_s = max(PERIOD_MIN_S, float(spec.get("period_s", 2.0)))
        self.rssi = int(spec.get("rssi", -60))
        self.values = dict(DEFAULT_VALUES, **spec.get("values", {}))
        self.raw = (_hex_map(spec.get("service_data"), 16), _hex_map(spec.get("manufacturer_data"), 10))
        self.silent = bool(spec.get("silent", False))
        self.packet = 0
        self.sent = 0

    def frame(self):
        """(service data, manufacturer data) of the next advertisement."""
        self.packet += 1
        if self.format == "bthome":
            return bthome_frame(self.values, self.packet)
        if self.format == "pvvx":
            return pvvx_frame(self.address, self.values, self.packet)
        if self.format == "ruuvi":
            return ruuvi_frame(self.address, self.values, self.packet)
        return self.raw

    def advertisement(self):
        service, manufacturer = self.frame()
        self.sent += 1
        return advertisement(self.address, self.name, self.rssi, service, manufacturer)


class SimRadio:
    """The simulated board's radio: ``start(callback)`` runs one task on the daemon loop that makes each sensor
    advertise on its period; ``stop()`` ends it. ``starts`` / ``stops`` count the scans (tests)."""

    def __init__(self, specs=()):
        self.sensors = {}
        self.starts = 0
        self.stops = 0
        self._callback = None
        self._task = None
        for spec in specs or ():
            self.add(spec)

    @property
    def scanning(self):
        return self._callback is not None

    def add(self, spec):
        sensor = SimSensor(spec)
        self.sensors[sensor.address] = sensor
        return sensor

    def configure(self, address, values=None, silent=None, rssi=None):
        """Change what a sensor says: some of its values, silence it (it stops advertising) or its signal."""
        sensor = self.sensors[str(address).upper()]
        if values:
            sensor.values.update(values)
        if silent is not None:
            sensor.silent = bool(silent)
        if rssi is not None:
            sensor.rssi = int(rssi)
        return sensor

    def emit(self, address):
        """One advertisement of ``address`` now, if a scan runs (True when it was heard)."""
        sensor = self.sensors[str(address).upper()]
        if self._callback is None or sensor.silent:
            return False
        self._callback(sensor.advertisement())
        return True

    async def start(self, callback):
        self.starts += 1
        self._callback = callback
        self._task = asyncio.get_running_loop().create_task(self._advertise(), name="sim-ble")

    async def stop(self):
        self.stops += 1
        self._callback = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _advertise(self):
        loop = asyncio.get_running_loop()
        due = dict((address, loop.time()) for address in self.sensors)
        while self._callback is not None:
            now = loop.time()
            for address, sensor in list(self.sensors.items()):
                when = due.setdefault(address, now)
                if now >= when:
                    due[address] = now + sensor.period_s
                    if not sensor.silent and self._callback is not None:
                        self._callback(sensor.advertisement())
            await asyncio.sleep(max(PERIOD_MIN_S, min(due.values(), default=now + 1.0) - loop.time()))
