"""The gateway's own Modbus tables, as data (one row per field).

* The **gateway table** answers at the gateway's own unit ID
  (``gateway.modbus_address``, and 255 over TCP): identification, status,
  system alarms bitfield, heartbeat, and a quality word per meter address.
* The **normalized table** answers at every meter's unit ID from
  ``NORMALIZED_BASE``: each registry measurement of load L at
  ``NORMALIZED_BASE + L * GW_LOAD_WINDOW + gw_offset`` in the registry's
  ``gw_type`` / ``gw_scale``, whatever the meter's native layout; the last two
  words of each load window are its quality code and age in seconds.
  Socomec tables use nothing in 0x1000–0x15FF, so both coexist with the
  meter's native registers, which the gateway forwards or serves from cache.

``tools/regmap.py`` generates the CSV / Markdown register map from these rows
and ``core/registry.py``; nothing else lists them.
"""

from core import modbus_rtu as rtu, registry

NORMALIZED_BASE = 0x1000
MAX_LOADS = 7                          # load 0 (device) + 6 circuits
QUALITY_OFFSET = registry.GW_LOAD_WINDOW - 2
AGE_OFFSET = registry.GW_LOAD_WINDOW - 1
QUALITY_CODES = {"good": 0, "stale": 1, "comm_lost": 2, "not_supported": 3}
DEVICE_STATUS_CODES = {"absent": 0, "ok": 1, "stale": 2, "comm_lost": 3, "conflict": 4, "unknown": 5}

METER_QUALITY_BASE = 0x0100            # + address: DEVICE_STATUS_CODES
METER_AGE_BASE = 0x0200                # + address: age of its oldest value, s (0xFFFF = none)

# register, words, type, name, description — values come from GatewayTable.values()
GATEWAY_FIELDS = (
    (0x0000, 8, "string", "vendor", "Vendor name (2 ASCII characters per register)"),
    (0x0008, 8, "string", "product", "Product name"),
    (0x0010, 8, "string", "firmware", "Software version"),
    (0x0018, 2, "u32", "netid", "Gateway NET ID (24 bits)"),
    (0x001A, 1, "u16", "modbus_address", "Gateway Modbus address"),
    (0x001B, 1, "u16", "status", "Status bits: 0 running, 1 a system alarm is active, 2 detection running"),
    (0x001C, 2, "u32", "alarms", "Active system alarms: bit n-1 = system alarm n (SPEC §6)"),
    (0x001E, 2, "u32", "heartbeat", "Heartbeat: seconds since start, watch it change"),
    (0x0020, 1, "u16", "devices", "Devices in the topology"),
    (0x0021, 1, "u16", "lost", "Devices not answering"),
    (0x0022, 2, "u32", "time", "Gateway time, seconds since 2000-01-01 UTC"),
)
GATEWAY_TABLE_END = 0x0024
COUNTS_START, COUNTS_END = 0x0020, 0x0022     # "devices" and "lost": from every device's summary


def _pack(kind, words, value):
    if kind == "string":
        return rtu.encode_string_norm(str(value), words)
    return rtu.encode_value(kind, int(value))


class GatewayTable:
    """Register image of the gateway table, built on demand from live state."""

    def __init__(self, door):
        self.door = door

    def values(self, counts=True):
        """The fields' values; ``counts`` False leaves "devices" and "lost" at 0 (they cost every device's
        summary, ~2.5 ms for 32 meters: a read of the identification alone does not pay it)."""
        door = self.door
        summaries = door.device_summaries() if counts else {}
        lost = sum(1 for s in summaries.values() if s.state == "comm_lost")
        alarm_active, detecting = door.gateway_flags()
        identity = door.identity()
        return {"vendor": identity["vendor"], "product": identity["product"], "firmware": identity["firmware"],
                "netid": int(identity["netid"], 16),
                "modbus_address": identity["modbus_address"], "status": 1 | (2 if alarm_active else 0) | (
                    4 if detecting else 0),
                "alarms": door.alarm_bits(), "heartbeat": int(door.uptime()) & 0xFFFFFFFF,
                "devices": len(summaries), "lost": lost,
                "time": max(0, rtu.unix_to_socomec(door.time()))}

    def read(self, start, count):
        """Words or an exception code (02 outside the table)."""
        end = start + count
        image = {}
        if start < GATEWAY_TABLE_END:
            values = self.values(counts=start < COUNTS_END and end > COUNTS_START)
            for reg, words, kind, name, _desc in GATEWAY_FIELDS:
                for i, w in enumerate(_pack(kind, words, values[name])):
                    image[reg + i] = w
        if end > METER_QUALITY_BASE and start < METER_AGE_BASE + 248:
            summaries = self.door.device_summaries()      # the one device summary (daemon/state/devstate.py)
            for address in range(248):
                summary = summaries.get(address)
                image[METER_QUALITY_BASE + address] = DEVICE_STATUS_CODES[summary.state] if summary else 0
                age = summary.age if summary else None
                image[METER_AGE_BASE + address] = 0xFFFF if age is None else min(0xFFFE, int(age))
        words = []
        for reg in range(start, end):
            if reg not in image:
                return rtu.ILLEGAL_DATA_ADDRESS
            words.append(image[reg])
        return words


def normalized_location(register):
    """(load, registry row, word index) for a normalized-table register, or None."""
    offset = register - NORMALIZED_BASE
    if offset < 0 or offset >= MAX_LOADS * registry.GW_LOAD_WINDOW:
        return None
    load, within = divmod(offset, registry.GW_LOAD_WINDOW)
    return load, within


_BY_OFFSET = {}
for _row in registry.MEASUREMENTS:
    for _i in range(rtu.TYPE_WORDS[_row[registry.GW_TYPE]]):
        _BY_OFFSET[_row[registry.GW_OFFSET] + _i] = (_row, _i)


def normalized_read(door, address, start, count):
    """Words of the normalized table of one meter, from the cache (never the bus)."""
    now = door.time()
    words = []
    rendered = {}
    for reg in range(start, start + count):
        where = normalized_location(reg)
        if where is None:
            return rtu.ILLEGAL_DATA_ADDRESS
        load, within = where
        if within == QUALITY_OFFSET or within == AGE_OFFSET:
            quality, _newest, oldest, _count = door.load_summary(address, load)
            if within == QUALITY_OFFSET:
                words.append(QUALITY_CODES[quality])
            else:
                words.append(0xFFFF if oldest is None else min(0xFFFE, max(0, int(now - oldest))))
            continue
        entry = _BY_OFFSET.get(within)
        if entry is None:
            words.append(0)
            continue
        row, index = entry
        key = (load, row[registry.KEY])
        if key not in rendered:
            reading = door.reading(address, load, row[registry.KEY])
            value = reading.value if reading.value is not None else 0
            kind = row[registry.GW_TYPE]
            raw = rtu.saturate(registry.to_gateway_raw(row[registry.KEY], value), rtu.TYPE_RANGE[kind])
            rendered[key] = rtu.encode_value(kind, raw)
        words.append(rendered[key][index])
    return words


def normalized_write(register, words):
    """(load, key, engineering value) of a write of ``words`` at ``register``, or None.

    The inverse of ``normalized_read``: the words must cover exactly one
    writable value, decoded with the row's gateway type and scale
    (``registry.from_gateway_raw``). A single word written to the second
    word of a 2-word value is its low word (high word 0): masters that write
    an output with function 6 address the register that holds the bit.
    """
    target = _write_row(register, len(words))
    if target is None and len(words) == 1:
        target = _write_row(register - 1, 2)
        words = [0] + list(words)
    if target is None:
        return None
    load, row = target
    key = row[registry.KEY]
    return load, key, registry.from_gateway_raw(key, rtu.decode_value(row[registry.GW_TYPE], words))


def _write_row(register, count):
    """(load, registry row) when [register, register+count) is exactly one writable value."""
    where = normalized_location(register)
    if where is None:
        return None
    load, within = where
    entry = _BY_OFFSET.get(within)
    if entry is None or entry[1] != 0:
        return None
    row = entry[0]
    if not row[registry.WRITABLE] or count != rtu.TYPE_WORDS[row[registry.GW_TYPE]]:
        return None
    return load, row
