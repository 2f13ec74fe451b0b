"""The export files against the manuals' own examples (WEBVIEW-M annexes I and II, M-70 annex III).

The parser below is written from the annexes' layouts (Python's csv reader does the RFC 4180 field splitting),
not from outbound/export/formats.py; the expected rows are the annexes' rows, transcribed here.
"""

import calendar
import csv
import io
import re

from outbound.export import formats
from outbound.export.formats import Column, Header

# ---------------------------------------------------------------- the parser (from the annexes)

SEP = ";"


def records(text):
    assert "\r\n" in text and "\n" not in text.replace("\r\n", "")          # RFC 4180: CRLF line breaks
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=SEP))


def parse_csv(text):
    """Annex I: 2 device rows, 6 column-description rows, then (date, values...) rows."""
    rows = records(text)
    assert rows[0] == ["Device name", "IP Address", "Modbus Address", "Begin date", "End date"]
    device = dict(zip(rows[0], rows[1], strict=True))
    labels = [r[0] for r in rows[2:8]]
    assert labels == ["Load Name", "Usage", "Nature", "Measured value", "Unit", "Scale"]
    columns = [dict(zip(labels, values, strict=True)) for values in zip(*[r[1:] for r in rows[2:8]], strict=True)]
    data = [(r[0], r[1:]) for r in rows[8:]]
    return device, columns, data


def parse_ems(text):
    """Annex III: header row + values, empty row, key table, empty row, data table."""
    rows = records(text)
    header = dict(zip(rows[0], rows[1], strict=True))
    assert rows[2] == []
    assert rows[3] == ["Index Key", "Key", "Type", "Name", "Fluid", "Use", "Coef", "Unit", "Path", "Device Id",
                       "Index", "Data Id"]
    end = rows.index([], 4)
    keys = [dict(zip(rows[3], r, strict=True)) for r in rows[4:end]]
    assert rows[end + 1] == ["Index Key", "Date", "Value", "Quality"]
    data = [tuple(r) for r in rows[end + 2:]]
    return header, keys, data


def utc(text):
    return calendar.timegm(tuple(int(x) for x in re.split("[-T:]", text)) + (0, 0, 0))


# ---------------------------------------------------------------- the manuals' examples, field for field

EMS_ANNEX_KEYS = [      # M-70 manual annex III rows 5..10 (the Key's separators are "|": the WEBVIEW-M text)
    ["0", "socomec|E5C801|14|1|ANA|100006", "ANA", "THD I1 of PC 1-2-3 of I-35@4", "ELEC", "Use2", "100", "%", "/",
     "14", "1", "100006"],
    ["1", "socomec|E5C801|14|1|ANA|100007", "ANA", "THD I2 of PC 1-2-3 of I-35@4", "ELEC", "Use2", "100", "%", "/",
     "14", "1", "100007"],
    ["2", "socomec|E5C801|14|1|ANA|100008", "ANA", "THD I3 of PC 1-2-3 of I-35@4", "ELEC", "Use2", "100", "%", "/",
     "14", "1", "100008"],
    ["3", "socomec|E5C801|14|1|ANA|10023", "ANA", "I1 AVG of PC 1-2-3 of I-35@4", "ELEC", "Use2", "1000", "A", "/",
     "14", "1", "10023"],
    ["4", "socomec|E5C801|14|1|ANA|10024", "ANA", "I2 AVG of PC 1-2-3 of I-35@4", "ELEC", "Use2", "1000", "A", "/",
     "14", "1", "10024"],
    ["5", "socomec|E5C801|14|1|ANA|10025", "ANA", "I3 AVG of PC 1-2-3 of I-35@4", "ELEC", "Use2", "1000", "A", "/",
     "14", "1", "10025"],
]
EMS_ANNEX_DATA = [      # rows 13..26
    ("0", "2019-01-18T15:14:00", "234", "192"), ("0", "2019-01-18T15:13:00", "237", "192"),
    ("0", "2019-01-18T15:12:00", "190", "192"), ("0", "2019-01-18T15:11:00", "201", "192"),
    ("0", "2019-01-18T15:10:00", "200", "192"), ("0", "2019-01-18T15:09:00", "198", "192"),
    ("0", "2019-01-18T15:08:00", "210", "192"), ("0", "2019-01-18T15:07:00", "231", "192"),
    ("0", "2019-01-18T15:06:00", "211", "192"), ("0", "2019-01-18T15:05:00", "199", "192"),
    ("1", "2019-01-18T15:14:00", "20001", "192"), ("1", "2019-01-18T15:13:00", "21605", "192"),
    ("1", "2019-01-18T15:12:00", "19804", "192"), ("1", "2019-01-18T15:11:00", "20901", "192"),
]
ANNEX_KEYS = ("thd_i1", "thd_i2", "thd_i3", "avg_i1", "avg_i2", "avg_i3")


def annex_columns():
    return [Column("history/X/1/%s" % key, key, 1, "PC 1-2-3", "Heating", "Use2", "electricity") for key in ANNEX_KEYS]


def render_ems(header, columns, per_column, data_type="measurements"):
    stream = io.StringIO(newline="")
    count = formats.write_ems(stream, header, columns, data_type, lambda i: iter(per_column.get(i, [])))
    return stream.getvalue(), count


def test_ems_reproduces_the_annex_field_for_field():
    header = Header("socomec", "E5C801", "I-35@4", 14, transfer_cycle_s=600)
    physical = {0: [2.34, 2.37, 1.90, 2.01, 2.00, 1.98, 2.10, 2.31, 2.11, 1.99], 1: [200.01, 216.05, 198.04, 209.01]}
    per_column = {}
    for index, values in physical.items():
        per_column[index] = [(utc("2019-01-18T15:14:00") - 60 * k, [(v, "good")]) for k, v in enumerate(values)]
    text, count = render_ems(header, annex_columns(), per_column)
    head, keys, data = parse_ems(text)
    # WEBVIEW-M annex II rows 1-2 (the M-70 annex cuts "Pooling Ti" and "Server n ame": the column titles)
    assert head == {"Data Type": "Avg", "TimeZone": "UTC", "Datation": "Local", "Transfer Cycle (sec)": "600",
                    "Pooling Time": "N/A", "Version": "1", "Site name": "socomec", "Server name": "E5C801"}
    assert [list(k.values()) for k in keys] == EMS_ANNEX_KEYS
    assert data == EMS_ANNEX_DATA and count == len(EMS_ANNEX_DATA)
    # the annex's reading of row 13: THD I1 = 2.34 % = Value / Coef
    first = data[0]
    assert int(first[2]) / float(keys[int(first[0])]["Coef"]) == 2.34 and keys[0]["Unit"] == "%"


CSV_ANNEX_HEAD = [
    ["Device name", "IP Address", "Modbus Address", "Begin date", "End date"],
    ["I35_102", "0.0.0.0", "102", "2000-01-01T00:00:00", "2018-09-26T09:55:00"],
    ["Load Name", "Security lighting Circulation", "Security lighting Circulation", "Security lighting Storage Metrol",
     "Security lighting Storage Metrol"],
    ["Usage", "Heating", "Heating", "Heating", "Heating"],
    ["Nature", "Elec", "Elec", "Elec", "Elec"],
    ["Measured value", "EA+", "EA-", "EA+", "EA-"],
    ["Unit", "Wh", "Wh", "Wh", "Wh"],
    ["Scale", "1.0000000", "1.0000000", "1.0000000", "1.0000000"],
]


def test_csv_reproduces_the_annex_header_and_newest_first_rows():
    header = Header("SITE", "E5C801", "I35_102", 102)
    columns = [Column("consumption/X/%d/%s" % (load, key), key, load, name, "Heating", "Use6", "electricity")
               for load, name in ((1, "Security lighting Circulation"), (2, "Security lighting Storage Metrol"))
               for key in ("ea_pos", "ea_neg")]
    newest = utc("2018-09-26T09:50:00")
    rows = [(newest - 600 * k, [(0.0, "good")] * 4) for k in range(42)]        # 09:50 down to 03:00
    stream = io.StringIO(newline="")
    count = formats.write_csv(stream, header, columns, utc("2000-01-01T00:00:00"), utc("2018-09-26T09:55:00"),
                              iter(rows))
    text = stream.getvalue()
    assert records(text)[:8] == CSV_ANNEX_HEAD
    device, parsed_columns, data = parse_csv(text)
    assert device["Device name"] == "I35_102" and len(parsed_columns) == 4 and count == 42
    assert data[0] == ("2018-09-26T09:50:00", ["0", "0", "0", "0"])
    assert data[-1] == ("2018-09-26T03:00:00", ["0", "0", "0", "0"])
    assert [utc(d) for d, _v in data] == sorted((utc(d) for d, _v in data), reverse=True)   # newest first


# ---------------------------------------------------------------- fields: quoting, names, dates, quality

def test_fields_are_quoted_as_rfc_4180_says_and_formulas_are_defused():
    header = Header("SITE", "SRV", 'Board "A"; east', 7)
    columns = [Column("load_curve/X/1/lc_p_pos", "lc_p_pos", 1, "Line 1\r\nLine 2", "Heating", "Use6", "water"),
               Column("load_curve/X/2/lc_s", "lc_s", 2, "=cmd|' /C calc'!A0", "My; usage", "Use17", "gas")]
    stream = io.StringIO(newline="")
    formats.write_csv(stream, header, columns, 0, 600, iter([(0, [(1234.4, "good"), None])]))
    text = stream.getvalue()
    assert '"Board ""A""; east"' in text                  # RFC 4180: quotes doubled, field quoted
    device, parsed, data = parse_csv(text)
    assert device["Device name"] == 'Board "A"; east'
    assert [c["Load Name"] for c in parsed] == ["Line 1\r\nLine 2", "'=cmd|' /C calc'!A0"]
    assert [c["Usage"] for c in parsed] == ["Heating", "My; usage"]
    assert [c["Nature"] for c in parsed] == ["Water", "Gas"]
    assert [c["Measured value"] for c in parsed] == ["P+", "S"] and [c["Unit"] for c in parsed] == ["W", "VA"]
    assert data == [("1970-01-01T00:00:00", ["1234", ""])]  # a series without that point: an empty cell


NAME = re.compile(r"^[A-Za-z0-9@.+-]+_[A-Za-z0-9@.+-]+_[A-Za-z0-9@.+-]+_(Index|Avg|LoadCurve)_"
                  r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.csv$")


def test_file_names_follow_the_annex_and_cannot_escape_the_folder():
    when = utc("2019-01-18T15:15:10")
    assert formats.file_name("socomec", "E5C801", "I35", "load_curves", when) == \
        "socomec_E5C801_I35_LoadCurve_2019-01-18_15-15-10.csv"                 # the annex's own example
    assert formats.file_name("socomec", "E5C801", "I-35@4", "measurements", when) == \
        "socomec_E5C801_I-35@4_Avg_2019-01-18_15-15-10.csv"
    hostile = formats.file_name("../../etc", "a/b\\c", "Éclairage_hall: *?<>|\x00\n", "energy", when, 3600)
    assert NAME.match(hostile) and "/" not in hostile and "\\" not in hostile and ".." not in hostile
    assert hostile == "etc_a-b-c_Eclairage-hall_Index_2019-01-18_16-15-10.csv"
    assert formats.file_name("", "...", "€ ✓", "energy", when).startswith("unnamed_unnamed_unnamed_Index_")
    assert len(formats.file_name("S", "S", "x" * 200, "energy", when)) < 100


def test_dates_are_local_time_and_the_header_names_the_offset():
    header = Header("socomec", "E5C801", "U-30@11", 11, offset_s=5400, transfer_cycle_s=None)
    columns = [Column("history/X/0/v1", "v1", 0, "", "Undefined", "Use1", "electricity")]
    text, _count = render_ems(header, columns, {0: [(utc("2019-01-18T23:00:00"), [(230.456, "good")])]})
    head, keys, data = parse_ems(text)
    assert head["TimeZone"] == "UTC+01:30" and head["Transfer Cycle (sec)"] == "N/A"
    assert data == [("0", "2019-01-19T00:30:00", "23046", "192")]              # V x100 (the gateway's scale)
    assert keys[0]["Name"] == "Voltage V1 of U-30@11" and keys[0]["Index"] == "0"
    assert formats.timezone_label(-5 * 3600) == "UTC-05:00"


# OPC DA quality codes (OPC Data Access 2.05a, "Quality flags": QQSSSSLL)
OPC_GOOD, OPC_UNCERTAIN, OPC_UNCERTAIN_SUBNORMAL, OPC_BAD_COMM_FAILURE = 0xC0, 0x40, 0x58, 0x18


def test_store_qualities_map_to_opc_da_codes():
    expected = {"good": OPC_GOOD, "backfilled": OPC_GOOD, "accumulated": OPC_GOOD,
                "clock_not_set": OPC_UNCERTAIN, "backfilled+clock_not_set": OPC_UNCERTAIN,
                "incomplete": OPC_UNCERTAIN_SUBNORMAL, "incomplete+clock_not_set": OPC_UNCERTAIN_SUBNORMAL,
                "missing": OPC_BAD_COMM_FAILURE}
    assert dict((q, formats.opc_quality(q)) for q in expected) == expected
    header = Header("s", "v", "d", 1)
    columns = [Column("load_curve/X/1/lc_s", "lc_s", 1, "L", "Heating", "Use6", "electricity")]
    rows = [(1200, [(None, "missing")]), (600, [(10.4, "clock_not_set")]), (0, [(9.6, "incomplete+clock_not_set")])]
    _head, _keys, data = parse_ems(render_ems(header, columns, {0: rows}, "load_curves")[0])
    assert data == [("0", "1970-01-01T00:20:00", "", "24"), ("0", "1970-01-01T00:10:00", "10", "64"),
                    ("0", "1970-01-01T00:00:00", "10", "88")]
