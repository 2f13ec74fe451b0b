"""The two export file layouts, field for field from the manuals (pure: writes to a stream it is given).

* **CSV** (WEBVIEW-M manual, annex I): a header block (``Device name, IP Address, Modbus Address, Begin date,
  End date`` and their values; then the rows ``Load Name, Usage, Nature, Measured value, Unit, Scale`` with one
  column per series), then one row per timestamp, **newest first**. Values are written in the registry's unit
  (energy in Wh, as the annex shows) so the Scale is always 1.0000000.
* **EMS** (M-70 manual annex III, WEBVIEW-M annex II): row 1 ``Data Type, TimeZone, Datation, Transfer Cycle
  (sec), Pooling Time, Version, Site name, Server name``, row 2 their values, row 3 empty, row 4 the key table's
  header ``Index Key, Key, Type, Name, Fluid, Use, Coef, Unit, Path, Device Id, Index, Data Id`` and one row per
  series (Key = ``site|server|deviceId|load|ANA|dataId``), an empty row, then ``Index Key, Date, Value, Quality``
  and the data rows, series by series, newest first (the annex's order). Value = physical value x Coef as an
  integer (THD I1 2.34 % with Coef 100 -> 234); Device Id is the device's Modbus address (unique on the gateway;
  the annex's 14 for "I-35@4" is the vendor's internal number), Index the load number, Path "/".

**Separator**: the manuals show the files as spreadsheet columns only. We write ``;`` (``SEPARATOR``): the product
is French, and a French spreadsheet's list separator is ``;`` so the file opens in columns as the annexes show;
our numbers use ``.`` as decimal mark, so no value contains the separator, and names (``Security lighting,
Circulation``) rarely do. Fields are quoted as RFC 4180 says when they hold the separator, a quote or a line
break; lines end with CRLF (RFC 4180); the text is UTF-8. A text field (a name) that a spreadsheet would take
for a formula (starts with = + - @) gets a leading apostrophe (OWASP's advice on CSV injection).

**Dates** are ISO ``YYYY-MM-DDTHH:MM:SS`` in the gateway's **local time** (settings ``time.utc_offset_min`` plus
60 min when ``time.dst`` is on, as BACnet's clock reads them): the EMS header says ``Datation: Local`` and its
``TimeZone`` field names the offset (``UTC`` when it is 0, as in the annex, else ``UTC+01:00``). The file name's
date is the export time, local too (the annex: "exported on January 18th 2019 at 3:15pm"). Load curves and
histories are stamped with the start of their interval (the store's stamp: the annex's export at 15:15:10 holds
the 1-minute point 15:14); an energy *index* is a reading, stamped when it was read: the end of its interval.

**Quality** (EMS): the store's quality of each point mapped to an OPC DA quality code (OPC Data Access
specification 2.05a/3.0, "Quality flags": bits QQSSSSLL; 0xC0 = 192 Good, 0x40 = 64 Uncertain (non-specific),
0x58 = 88 Uncertain / Sub-Normal, 0x18 = 24 Bad / Comm Failure). ``QUALITY_CODES`` is the table; the first
flag of the table a point has decides; a point without any of them is Good.
"""

import csv
import re
import time
import unicodedata

from core import registry

SEPARATOR = ";"
LINE_END = "\r\n"
ISO = "%Y-%m-%dT%H:%M:%S"
SCALE = "%.7f" % 1.0                    # the annex's "1.0000000": values are written in their unit

# The settings' data types (push.schedule.<type>) and the manuals' words for them (file names, EMS Data Type):
# LoadCurve (file name example), Avg (EMS Data Type example: a history of averages), Index (energy indexes).
DATA_TYPE_WORDS = {"energy": "Index", "measurements": "Avg", "load_curves": "LoadCurve"}

CSV_HEAD = ("Device name", "IP Address", "Modbus Address", "Begin date", "End date")
CSV_ROWS = ("Load Name", "Usage", "Nature", "Measured value", "Unit", "Scale")
EMS_HEAD = ("Data Type", "TimeZone", "Datation", "Transfer Cycle (sec)", "Pooling Time", "Version",
            "Site name", "Server name")
EMS_KEYS = ("Index Key", "Key", "Type", "Name", "Fluid", "Use", "Coef", "Unit", "Path", "Device Id", "Index",
            "Data Id")
EMS_DATA = ("Index Key", "Date", "Value", "Quality")
EMS_VERSION = "1"
EMS_TYPE = "ANA"                        # every exported value is an analog value (the annex's Type column)
EMS_PATH = "/"
NOT_APPLICABLE = "N/A"
NO_IP = "0.0.0.0"                       # a device on a serial bus (the annex's I35_102)

# store quality flag -> OPC DA quality code; first match wins (see the docstring); Good otherwise: a back-filled
# point is the meter's own recording, an "accumulated" energy index is a true reading of the meter's index.
QUALITY_CODES = (("missing", 24), ("incomplete", 88), ("clock_not_set", 64))
GOOD = 192

# EMS Coef per unit: the annex's (% -> 100, A -> 1000); other units take the registry's gateway scale
# (V x100, Hz x1000, power factor x1000, W/var/VA and energies x1).
COEF_BY_UNIT = {"%": 100, "A": 1000}

# The fluid of a circuit as the CSV's Nature (the annex: "Elec") and the EMS Fluid (the annex: "ELEC").
FLUID_WORDS = {"electricity": ("Elec", "ELEC"), "water": ("Water", "WATER"), "gas": ("Gas", "GAS"),
               "heat": ("Heat", "HEAT"), "cold": ("Cold", "COLD"), "compressed_air": ("Air", "AIR"),
               "other": ("Other", "OTHER"), "undefined": ("Undefined", "UNDEF")}

# A measurement's label in both files (CSV "Measured value", EMS Name): the annexes' own words (EA+, EA-,
# "I1 AVG"), their siblings' alike; any other measurement: the registry's name (the annex's "THD I1").
LABELS = {"ea_pos": "EA+", "ea_neg": "EA-", "er_pos": "ER+", "er_neg": "ER-", "es": "ES",
          "lc_p_pos": "P+", "lc_p_neg": "P-", "lc_q_pos": "Q+", "lc_q_neg": "Q-", "lc_s": "S",
          "avg_i1": "I1 AVG", "avg_i2": "I2 AVG", "avg_i3": "I3 AVG", "avg_in": "In AVG",
          "avg_p": "P AVG", "avg_q": "Q AVG", "avg_s": "S AVG"}

NAME_PART_MAX = 48                      # characters of one part of a file name
_UNSAFE = re.compile(r"[^A-Za-z0-9@.+-]+")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class Column:
    """One exported series: its store name, measurement, load and the circuit's facts.

    ``usage``: the usage as the CSV shows it (the annex: "Heating"); ``use``: the EMS Use code;
    ``fluid``: a key of FLUID_WORDS."""

    __slots__ = ("series", "key", "load", "load_name", "usage", "use", "fluid")

    def __init__(self, series, key, load, load_name="", usage="Undefined", use="Use1", fluid="electricity"):
        self.series = series
        self.key = key
        self.load = load
        self.load_name = load_name
        self.usage = usage
        self.use = use
        self.fluid = fluid


class Header:
    """What a file says about its gateway and device."""

    __slots__ = ("site", "server", "device_name", "device_ip", "device_address", "offset_s", "transfer_cycle_s")

    def __init__(self, site, server, device_name, device_address, device_ip=NO_IP, offset_s=0,
                 transfer_cycle_s=None):
        self.site = site
        self.server = server
        self.device_name = device_name
        self.device_ip = device_ip
        self.device_address = device_address
        self.offset_s = offset_s
        self.transfer_cycle_s = transfer_cycle_s


# ---------------------------------------------------------------- fields


def iso(ts, offset_s=0):
    """``YYYY-MM-DDTHH:MM:SS`` of unix time ``ts`` in local time ``offset_s`` from UTC."""
    return time.strftime(ISO, time.gmtime(int(ts) + offset_s))


def timezone_label(offset_s):
    """``UTC``, ``UTC+01:00``, ``UTC-05:30``."""
    if not offset_s:
        return "UTC"
    sign = "+" if offset_s > 0 else "-"
    minutes = abs(int(offset_s)) // 60
    return "UTC%s%02d:%02d" % (sign, minutes // 60, minutes % 60)


def sanitise(name, fallback="unnamed"):
    """A part of a file name: ASCII letters, digits and ``@ . + -`` only (no path separator, no character an FTP
    server or a file system refuses, no ``_``: it separates the parts), accents dropped, other runs -> one ``-``."""
    text = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode("ascii")
    text = re.sub("-{2,}", "-", _UNSAFE.sub("-", text)).strip("-.")
    return text[:NAME_PART_MAX].rstrip("-.") or fallback


def file_name(site, server, device_name, data_type, when, offset_s=0):
    """``Site_Server_Device_DataType_YYYY-MM-DD_HH-MM-SS.csv`` (the annex: socomec_E5C801_I35_LoadCurve_...);
    ``when``: the export time (unix), written in local time."""
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(int(when) + offset_s))
    return "%s_%s_%s_%s_%s.csv" % (sanitise(site), sanitise(server), sanitise(device_name),
                                   DATA_TYPE_WORDS[data_type], stamp)


def opc_quality(quality):
    """The OPC DA quality code of a store quality name ("good", "missing", "backfilled+clock_not_set"...)."""
    flags = quality.split("+")
    for flag, code in QUALITY_CODES:
        if flag in flags:
            return code
    return GOOD


def coefficient(key):
    row = registry.get(key)
    return COEF_BY_UNIT.get(row[registry.UNIT], row[registry.GW_SCALE])


def ems_value(key, value):
    """The EMS integer: physical value x Coef, rounded; "" for a missing value."""
    return "" if value is None else str(int(round(value * coefficient(key))))


def csv_value(key, value):
    """The CSV number in the registry's unit, with the decimals of the gateway's scale (Wh: none)."""
    if value is None:
        return ""
    decimals = len(str(registry.get(key)[registry.GW_SCALE])) - 1
    written = "%.*f" % (decimals, value)
    return written[1:] if written.startswith("-") and not written.strip("-0.") else written     # no "-0.00"


def text(value):
    """A name as a cell: a leading formula character is defused."""
    value = str(value)
    return "'" + value if value.startswith(_FORMULA_START) else value


def label(key):
    return LABELS.get(key) or registry.get(key)[registry.NAME]


def ems_name(column, device_name):
    """``THD I1 of PC 1-2-3 of I-35@4``: measurement of load of device (load 0: of the device only)."""
    parts = [label(column.key)]
    if column.load_name:
        parts.append(column.load_name)
    parts.append(device_name)
    return " of ".join(parts)


def ems_key(site, server, device_id, load, data_id):
    return "|".join(str(part) for part in (site, server, device_id, load, EMS_TYPE, data_id))


def _writer(stream):
    return csv.writer(stream, delimiter=SEPARATOR, quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator=LINE_END)


# ---------------------------------------------------------------- files


def write_csv(stream, header, columns, begin, end, rows, stamp_shift_s=0):
    """The CSV file: header block, then ``rows`` ((ts, cells) newest first, one cell per column: (value,
    quality name) or None). ``stamp_shift_s``: added to each row's time (an index is stamped at its interval's
    end). Returns the number of data rows written."""
    out = _writer(stream)
    offset = header.offset_s
    out.writerow(CSV_HEAD)
    out.writerow([text(header.device_name), header.device_ip, header.device_address, iso(begin, offset),
                  iso(end, offset)])
    out.writerow([CSV_ROWS[0]] + [text(c.load_name) for c in columns])
    out.writerow([CSV_ROWS[1]] + [text(c.usage) for c in columns])
    out.writerow([CSV_ROWS[2]] + [FLUID_WORDS.get(c.fluid, FLUID_WORDS["undefined"])[0] for c in columns])
    out.writerow([CSV_ROWS[3]] + [label(c.key) for c in columns])
    out.writerow([CSV_ROWS[4]] + [registry.get(c.key)[registry.UNIT] for c in columns])
    out.writerow([CSV_ROWS[5]] + [SCALE for _c in columns])
    count = 0
    keys = [c.key for c in columns]
    for ts, cells in rows:
        values = [csv_value(key, None if cell is None else cell[0]) for key, cell in zip(keys, cells, strict=True)]
        out.writerow([iso(ts + stamp_shift_s, offset)] + values)
        count += 1
    return count


def write_ems(stream, header, columns, data_type, read_column, stamp_shift_s=0):
    """The EMS file. ``read_column(i)``: rows ((ts, [(value, quality name) or None])) of column ``i`` alone,
    newest first. Returns the number of data rows written (grid points without a row are not written)."""
    out = _writer(stream)
    offset = header.offset_s
    cycle = NOT_APPLICABLE if not header.transfer_cycle_s else str(int(header.transfer_cycle_s))
    out.writerow(EMS_HEAD)
    out.writerow([DATA_TYPE_WORDS[data_type], timezone_label(offset), "Local", cycle, NOT_APPLICABLE,
                  EMS_VERSION, text(header.site), text(header.server)])
    out.writerow([])
    out.writerow(EMS_KEYS)
    for index, column in enumerate(columns):
        data_id = registry.get(column.key)[registry.DATA_ID]
        out.writerow([index, text(ems_key(header.site, header.server, header.device_address, column.load, data_id)),
                      EMS_TYPE, text(ems_name(column, header.device_name)),
                      FLUID_WORDS.get(column.fluid, FLUID_WORDS["undefined"])[1], text(column.use),
                      coefficient(column.key), registry.get(column.key)[registry.UNIT], EMS_PATH,
                      header.device_address, column.load, data_id])
    out.writerow([])
    out.writerow(EMS_DATA)
    count = 0
    for index, column in enumerate(columns):
        for ts, cells in read_column(index):
            cell = cells[0]
            if cell is None:
                continue
            value, quality = cell
            out.writerow([index, iso(ts + stamp_shift_s, offset), ems_value(column.key, value), opc_quality(quality)])
            count += 1
    return count
