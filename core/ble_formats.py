"""Bluetooth Low Energy advertisement formats: bytes -> values, one table per format (SPEC §1, BLE sources).

Pure and MicroPython-safe (``struct`` only). A radio hands over an advertisement's service data
``{16-bit UUID: bytes}`` and manufacturer data ``{company id: bytes}``; ``decode`` finds the format and
gives ``(format, values, None)`` or ``(format or None, None, refusal)``. A frame that cannot be read
whole (short, wrong length, unknown object id, encrypted, unknown version) is refused with a reason,
never half-read, never with an exception.

Values are in the units below (``UNITS``); names are ours, one per physical quantity, so a BTHome
and a Ruuvi thermometer both give ``temperature`` in °C.

Sources: BTHome v2 (bthome.io/format: service data UUID 0xFCD2, device-information byte, then
object id + little-endian value); pvvx custom firmware "custom format" and atc1441 format (service
data UUID 0x181A, github.com/pvvx/ATC_MiThermometer README); Ruuvi data format 5 "RAWv2"
(manufacturer id 0x0499, github.com/ruuvi/ruuvi-sensor-protocols dataformat_05.md).
"""

import struct

BTHOME_UUID = 0xFCD2
ENVIRONMENTAL_UUID = 0x181A          # pvvx / atc1441
RUUVI_COMPANY = 0x0499

# refusals (catalogue keys ble.refused.<reason>)
SHORT = "short"                      # fewer bytes than the format's fixed part
LENGTH = "length"                    # a length no variant of the format has
UNKNOWN_OBJECT = "unknown_object"    # a BTHome object id we cannot size: the rest cannot be read
ENCRYPTED = "encrypted"              # a BTHome frame encrypted with a bind key we do not hold
BAD_VERSION = "version"              # a BTHome version or Ruuvi data format other than the one we read
NO_FORMAT = "no_format"              # nothing in the advertisement is a format we know

UNITS = {"temperature": "°C", "humidity": "%", "battery": "%", "voltage": "V", "pressure": "hPa",
         "illuminance": "lx", "dewpoint": "°C", "co2": "ppm", "tvoc": "µg/m³", "pm25": "µg/m³",
         "pm10": "µg/m³", "moisture": "%", "power": "W", "energy": "kWh", "current": "A", "count": "",
         "packet": "", "acceleration_x": "g", "acceleration_y": "g", "acceleration_z": "g",
         "tx_power": "dBm", "movement": "", "sequence": "", "mass": "kg", "distance": "mm", "gas": "m³",
         "water": "L", "volume": "L", "duration": "s", "speed": "m/s", "rotation": "°", "uv_index": "",
         "conductivity": "µS/cm", "flags": ""}

# ---------------------------------------------------------------- BTHome v2
# object id: (name or None = read and ignored, bytes, signed, factor). bthome.io/format "Sensor data",
# "Binary sensor data", "Events", "Device information". Sizes are what make a frame readable: an id not in
# this table ends the reading (its size is unknown), so the frame is refused whole.
BTHOME_OBJECTS = {
    0x00: ("packet", 1, False, 1), 0x01: ("battery", 1, False, 1), 0x02: ("temperature", 2, True, 0.01),
    0x03: ("humidity", 2, False, 0.01), 0x04: ("pressure", 3, False, 0.01), 0x05: ("illuminance", 3, False, 0.01),
    0x06: ("mass", 2, False, 0.01), 0x07: (None, 2, False, 0.01),          # mass in lb: not our unit
    0x08: ("dewpoint", 2, True, 0.01), 0x09: ("count", 1, False, 1), 0x0A: ("energy", 3, False, 0.001),
    0x0B: ("power", 3, False, 0.01), 0x0C: ("voltage", 2, False, 0.001), 0x0D: ("pm25", 2, False, 1),
    0x0E: ("pm10", 2, False, 1), 0x12: ("co2", 2, False, 1), 0x13: ("tvoc", 2, False, 1),
    0x14: ("moisture", 2, False, 0.01), 0x2E: ("humidity", 1, False, 1), 0x2F: ("moisture", 1, False, 1),
    0x3A: (None, 1, False, 1), 0x3C: (None, 2, False, 1),                  # button, dimmer events
    0x3D: ("count", 2, False, 1), 0x3E: ("count", 4, False, 1), 0x3F: ("rotation", 2, True, 0.1),
    0x40: ("distance", 2, False, 1), 0x41: (None, 2, False, 0.1), 0x42: ("duration", 3, False, 0.001),
    0x43: ("current", 2, False, 0.001), 0x44: ("speed", 2, False, 0.01), 0x45: ("temperature", 2, True, 0.1),
    0x46: ("uv_index", 1, False, 0.1), 0x47: ("volume", 2, False, 0.1), 0x48: (None, 2, False, 1),
    0x49: (None, 2, False, 0.001), 0x4A: ("voltage", 2, False, 0.1), 0x4B: ("gas", 3, False, 0.001),
    0x4C: ("gas", 4, False, 0.001), 0x4D: ("energy", 4, False, 0.001), 0x4E: ("volume", 4, False, 0.001),
    0x4F: ("water", 4, False, 0.001), 0x50: (None, 4, False, 1), 0x51: (None, 2, False, 0.001),
    0x52: (None, 2, False, 0.001), 0x55: (None, 4, False, 0.001), 0x56: ("conductivity", 2, False, 1),
    0x57: ("temperature", 1, True, 1), 0x58: ("temperature", 1, True, 0.35), 0x59: ("count", 1, True, 1),
    0x5A: ("count", 2, True, 1), 0x5B: ("count", 4, True, 1), 0x5C: ("power", 4, True, 0.01),
    0x5D: ("current", 2, True, 0.001), 0x5E: (None, 2, False, 0.01), 0x5F: (None, 2, False, 0.1),
    0x60: (None, 1, False, 1), 0x61: (None, 2, False, 1),
    0xF0: (None, 2, False, 1), 0xF1: (None, 4, False, 1), 0xF2: (None, 3, False, 1),   # device type, firmware
}
for _binary in range(0x10, 0x12):
    BTHOME_OBJECTS[_binary] = (None, 1, False, 1)
for _binary in range(0x15, 0x2E):
    BTHOME_OBJECTS[_binary] = (None, 1, False, 1)
BTHOME_SIZED = (0x53, 0x54)          # text, raw: a length byte, then that many bytes (ignored)
BTHOME_ENCRYPTED = 0x01              # device-information bit 0
BTHOME_VERSION = 2                   # device-information bits 5-7


def _integer(data, signed):
    value = 0
    for i in range(len(data) - 1, -1, -1):
        value = (value << 8) | data[i]
    if signed and data and data[-1] & 0x80:
        value -= 1 << (8 * len(data))
    return value


def _scaled(raw, factor):
    """raw x factor, rounded to the factor's own decimals (0.01 -> 2), so 2500 x 0.01 reads 25.0, not 25.000000001."""
    if factor == 1:
        return raw
    text = repr(factor)
    return round(raw * factor, len(text.split(".")[1]) if "." in text else 0)


def decode_bthome(data):
    """(values, None) or (None, refusal) for one BTHome v2 service data payload (after the UUID)."""
    if len(data) < 1:
        return None, SHORT
    info = data[0]
    if info & BTHOME_ENCRYPTED:
        return None, ENCRYPTED
    if info >> 5 != BTHOME_VERSION:
        return None, BAD_VERSION
    values = {}
    i = 1
    while i < len(data):
        oid = data[i]
        i += 1
        if oid in BTHOME_SIZED:
            if i >= len(data) or i + 1 + data[i] > len(data):
                return None, SHORT
            i += 1 + data[i]
            continue
        row = BTHOME_OBJECTS.get(oid)
        if row is None:
            return None, UNKNOWN_OBJECT
        name, size, signed, factor = row
        if i + size > len(data):
            return None, SHORT
        if name is not None and name not in values:    # the first of a repeated object (BTHome lists them in order)
            values[name] = _scaled(_integer(data[i:i + size], signed), factor)
        i += size
    if not values:
        return None, SHORT
    return values, None


# ---------------------------------------------------------------- pvvx custom and atc1441 (UUID 0x181A)
# by payload length: (variant, struct format, fields (name, factor) after the 6 MAC bytes).
ENVIRONMENTAL_VARIANTS = {
    15: ("pvvx", "<hHHBBB", (("temperature", 0.01), ("humidity", 0.01), ("voltage", 0.001), ("battery", 1),
                             ("packet", 1), ("flags", 1))),
    13: ("atc1441", ">hBBHB", (("temperature", 0.1), ("humidity", 1), ("battery", 1), ("voltage", 0.001),
                               ("packet", 1))),
}


def decode_environmental(data):
    """(variant, values, None) or (None, None, refusal) for a 0x181A service data payload."""
    variant = ENVIRONMENTAL_VARIANTS.get(len(data))
    if variant is None:
        return None, None, SHORT if len(data) < 13 else LENGTH
    name, layout, fields = variant
    raw = struct.unpack(layout, bytes(data[6:]))
    return name, dict((fields[i][0], _scaled(raw[i], fields[i][1])) for i in range(len(fields))), None


# ---------------------------------------------------------------- Ruuvi RAWv2 (data format 5)
RUUVI_FORMAT = 5
RUUVI_LENGTH = 24
# offset, struct format, name, factor, "not available" raw value (dataformat_05.md)
RUUVI_FIELDS = (
    (1, ">h", "temperature", 0.005, -32768),
    (3, ">H", "humidity", 0.0025, 0xFFFF),
    (5, ">H", "pressure", 0.01, 0xFFFF),            # Pa - 50000, given in hPa
    (7, ">h", "acceleration_x", 0.001, -32768),
    (9, ">h", "acceleration_y", 0.001, -32768),
    (11, ">h", "acceleration_z", 0.001, -32768),
    (15, ">B", "movement", 1, 0xFF),
    (16, ">H", "sequence", 1, 0xFFFF),
)


def decode_ruuvi(data):
    """(values, None) or (None, refusal) for Ruuvi manufacturer data (after the company id)."""
    if len(data) < 1:
        return None, SHORT
    if data[0] != RUUVI_FORMAT:
        return None, BAD_VERSION
    if len(data) != RUUVI_LENGTH:
        return None, SHORT if len(data) < RUUVI_LENGTH else LENGTH
    data = bytes(data)
    values = {}
    for offset, layout, name, factor, missing in RUUVI_FIELDS:
        raw = struct.unpack(layout, data[offset:offset + struct.calcsize(layout)])[0]
        if raw == missing:
            continue
        if name == "pressure":
            raw += 50000
        values[name] = _scaled(raw, factor)
    power = struct.unpack(">H", data[13:15])[0]
    if power >> 5 != 0x7FF:
        values["voltage"] = round((1600 + (power >> 5)) / 1000.0, 3)
    if power & 0x1F != 0x1F:
        values["tx_power"] = -40 + 2 * (power & 0x1F)
    return values, None


# ---------------------------------------------------------------- one advertisement
# (format name, where its bytes are, UUID or company id); the first present wins
FORMATS = (
    ("bthome", "service", BTHOME_UUID),
    ("pvvx", "service", ENVIRONMENTAL_UUID),
    ("ruuvi", "manufacturer", RUUVI_COMPANY),
)


def decode(service_data, manufacturer_data):
    """(format, values, None) or (format or None, None, refusal) for one advertisement.

    ``service_data``: {16-bit UUID (int): bytes}; ``manufacturer_data``: {company id: bytes}.
    """
    for name, where, key in FORMATS:
        source = service_data if where == "service" else manufacturer_data
        data = (source or {}).get(key)
        if data is None:
            continue
        if name == "bthome":
            values, refusal = decode_bthome(data)
        elif name == "pvvx":
            variant, values, refusal = decode_environmental(data)
            name = variant or name
        else:
            values, refusal = decode_ruuvi(data)
        return name, values, refusal
    return None, None, NO_FORMAT
