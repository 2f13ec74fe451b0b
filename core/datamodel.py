"""Data models of generic Modbus devices (WEBVIEW-L §8.2.7 and §8.4), as data.

A *data model* describes a Modbus device the catalogue does not know: one
row per value with its name, *frame name*, function code, register address,
encoding, word order, coefficient and unit. The rows of one frame are read
in ONE request (the manual: "groups together and collects all the data from
the same Modbus table via a single request"), so a frame must fit a request:
at most 125 registers (2000 bits for coils and discrete inputs) from its
lowest to its highest address, and one function code.

A row named with a registry standard name (``IEaPInst``, ``II1Inst``,
appendix 2 of WEBVIEW-L) is that registry measurement, in the registry's unit
(the coefficient converts to it), served by every protocol; any other name is
a user value with the user's unit, shown in the web only.

Pure (MicroPython-safe in spirit: dicts, tuples, no I/O): the state store
(daemon/state/datamodels.py) keeps the models, the poller reads ``plan``.
Every refusal is a *detail* ``{"field", "key", "params"}`` (a catalogue key,
EN and FR in daemon/locale/*/generic.json), with a ``line`` on a CSV import.
"""

from core import registry

# encoding name shown (CSV, page) -> (codec type of core.modbus_rtu, words)
ENCODINGS = {"U16": ("u16", 1), "S16": ("s16", 1), "U32": ("u32", 2), "S32": ("s32", 2),
             "U64": ("u64", 4), "FLOAT32": ("f32", 2), "BIT": ("bit", 1)}
WORD_ORDERS = ("big", "swapped")        # big-endian words (the manual's default) or low word first
REGISTER_FUNCTIONS = (3, 4)
BIT_FUNCTIONS = (1, 2)
FUNCTIONS = BIT_FUNCTIONS + REGISTER_FUNCTIONS
MAX_REGISTER_SPAN = 125                 # one read request (Modbus: 125 registers)
MAX_BIT_SPAN = 2000                     # one read request (Modbus: 2000 coils / inputs)
MAX_MODELS = 16
MAX_ROWS = 64                           # rows of one model
MAX_NAME = 32
MAX_UNIT = 12
MAX_COEFFICIENT = 1e9
MAX_CSV_BYTES = 64 * 1024
COLUMNS = ("name", "frame", "function", "register", "encoding", "word_order", "coefficient", "unit")
LOAD = 1                                # a generic device has one circuit: its values are load 1's

STANDARD_KEYS = dict((row[registry.STD_NAME], row[registry.KEY]) for row in registry.MEASUREMENTS)
STANDARD_NAMES = sorted(STANDARD_KEYS)


def detail(field, key, line=None, **params):
    out = {"field": field, "key": key, "params": params}
    if line is not None:
        out["line"] = line
    return out


def standard_key(name):
    """The registry key of a standard name (``IEaPInst`` -> ``ea_pos``), or None for a user name."""
    return STANDARD_KEYS.get(name)


def row_key(row):
    """The key a row's value is kept under: the registry key, or ``user:<name>``."""
    return STANDARD_KEYS.get(row["name"]) or "user:" + row["name"]


def is_standard(key):
    return not key.startswith("user:")


def _text(value, field, limit, problems, required=True):
    if not isinstance(value, str):
        problems.append(detail(field, "generic.error.text"))
        return None
    value = value.strip()
    if not value and required:
        problems.append(detail(field, "generic.error.required"))
        return None
    if len(value) > limit:
        problems.append(detail(field, "generic.error.too_long", max=limit))
        return None
    if any(ord(c) < 32 or ord(c) == 127 or c in ";\"" for c in value):
        problems.append(detail(field, "generic.error.characters"))
        return None
    return value


def _integer(value, field, low, high, problems):
    if isinstance(value, str):
        text = value.strip().lower()
        try:
            value = int(text, 16) if text.startswith("0x") else int(text, 10)
        except ValueError:
            problems.append(detail(field, "generic.error.integer"))
            return None
    if type(value) is not int:
        problems.append(detail(field, "generic.error.integer"))
        return None
    if not low <= value <= high:
        problems.append(detail(field, "generic.error.range", min=low, max=high))
        return None
    return value


def _coefficient(value, problems):
    if isinstance(value, str):
        try:
            value = float(value.strip().replace(",", "."))
        except ValueError:
            problems.append(detail("coefficient", "generic.error.number"))
            return None
    if type(value) not in (int, float) or value != value or value == 0 or abs(value) > MAX_COEFFICIENT:
        problems.append(detail("coefficient", "generic.error.coefficient", max=MAX_COEFFICIENT))
        return None
    return float(value)


def check_row(data):
    """(clean row, problems) of one row as given (a form's JSON or a CSV line's text fields)."""
    problems = []
    if not isinstance(data, dict):
        return None, [detail(None, "generic.error.row")]
    for name in sorted(data):
        if name not in COLUMNS:
            problems.append(detail(str(name)[:40], "generic.error.unknown_field"))
    name = _text(data.get("name"), "name", MAX_NAME, problems)
    frame = _text(data.get("frame", ""), "frame", MAX_NAME, problems, required=False)
    function = _integer(data.get("function", 3), "function", 1, 4, problems)
    register = _integer(data.get("register"), "register", 0, 0xFFFF, problems)
    encoding = data.get("encoding", "U16")
    encoding = encoding.strip().upper() if isinstance(encoding, str) else encoding
    if encoding == "F32":
        encoding = "FLOAT32"
    if encoding not in ENCODINGS:
        problems.append(detail("encoding", "generic.error.encoding", choices=", ".join(sorted(ENCODINGS))))
        encoding = None
    order = data.get("word_order", "big")
    order = order.strip().lower() if isinstance(order, str) else order
    if order not in WORD_ORDERS:
        problems.append(detail("word_order", "generic.error.word_order", choices=", ".join(WORD_ORDERS)))
    coefficient = _coefficient(data.get("coefficient", 1), problems)
    unit = _text(data.get("unit", ""), "unit", MAX_UNIT, problems, required=False)
    if function is not None and encoding is not None:
        if (function in BIT_FUNCTIONS) != (encoding == "BIT"):
            problems.append(detail("encoding", "generic.error.bit_function"))
    if name is not None and unit is not None and standard_key(name) is not None:
        expected = registry.get(standard_key(name))[registry.UNIT]
        if unit and unit != expected:
            problems.append(detail("unit", "generic.error.standard_unit", name=name, unit=expected))
        unit = expected
    if problems:
        return None, problems
    if register + ENCODINGS[encoding][1] > 0x10000:
        return None, [detail("register", "generic.error.range", min=0, max=0x10000 - ENCODINGS[encoding][1])]
    return {"name": name, "frame": frame, "function": function, "register": register, "encoding": encoding,
            "word_order": order, "coefficient": coefficient, "unit": unit}, []


def frames(rows):
    """[(frame key, function, [rows])] in the order frames first appear. A row without a frame name is
    a frame of its own."""
    out, by_name = [], {}
    for index, row in enumerate(rows):
        name = row["frame"]
        if name and name in by_name:
            by_name[name][2].append(row)
            continue
        entry = (name or "#%d" % index, row["function"], [row])
        out.append(entry)
        if name:
            by_name[name] = entry
    return out


def span(rows):
    """(first address, count) one request must cover to read ``rows``."""
    start = min(r["register"] for r in rows)
    end = max(r["register"] + ENCODINGS[r["encoding"]][1] for r in rows)
    return start, end - start


def check_rows(rows, lines=None):
    """Problems of a model's rows taken together: their number, names twice, one function per frame,
    each frame's span within one request. ``lines``: the CSV line of each row, for the details."""
    problems = []
    line_of = (lambda i: lines[i]) if lines is not None else (lambda i: None)
    if not rows:
        problems.append(detail("rows", "generic.error.no_rows"))
    if len(rows) > MAX_ROWS:
        problems.append(detail("rows", "generic.error.too_many_rows", max=MAX_ROWS))
    seen = {}
    for index, row in enumerate(rows):
        key = row["name"].lower()
        if key in seen:
            problems.append(detail("name", "generic.error.name_twice", line_of(index), name=row["name"]))
        seen[key] = index
    position = dict((id(row), i) for i, row in enumerate(rows))
    for name, function, members in frames(rows):
        first = position[id(members[0])]
        if any(r["function"] != function for r in members):
            problems.append(detail("frame", "generic.error.frame_function", line_of(first), frame=name))
            continue
        limit = MAX_BIT_SPAN if function in BIT_FUNCTIONS else MAX_REGISTER_SPAN
        start, count = span(members)
        if count > limit:
            last = position[id(max(members, key=lambda r: r["register"]))]
            problems.append(detail("frame", "generic.error.frame_span", line_of(last), frame=name, count=count,
                                   max=limit))
    return problems


def check_model(data):
    """(clean model {name, rows}, problems) of a whole model as given."""
    if not isinstance(data, dict):
        return None, [detail(None, "generic.error.row")]
    problems = []
    for field in sorted(data):
        if field not in ("name", "rows"):
            problems.append(detail(str(field)[:40], "generic.error.unknown_field"))
    name = _text(data.get("name"), "model", MAX_NAME, problems)
    given = data.get("rows")
    if not isinstance(given, list) or len(given) > MAX_ROWS:
        problems.append(detail("rows", "generic.error.too_many_rows", max=MAX_ROWS))
        return None, problems
    rows = []
    for index, entry in enumerate(given):
        row, row_problems = check_row(entry)
        for problem in row_problems:
            problem["row"] = index + 1
        problems.extend(row_problems)
        if row is not None:
            rows.append(row)
    if not problems:
        problems.extend(check_rows(rows))
    if problems:
        return None, problems
    return {"name": name, "rows": rows}, []


# ---------------------------------------------------------------- CSV (";" separated, a header row)

def _split(line):
    return [cell.strip().strip('"').strip() for cell in line.split(";")]


def parse_csv(text):
    """(rows, problems) of a CSV model: a header naming COLUMNS (any order, ``;`` separated), one row a
    line. Every problem carries its ``line`` (1 = the header); with any problem, no row is returned."""
    if not isinstance(text, str):
        return None, [detail(None, "generic.error.csv_text", line=1)]
    if len(text.encode("utf-8")) > MAX_CSV_BYTES:
        return None, [detail(None, "generic.error.csv_size", line=1, max=MAX_CSV_BYTES)]
    lines = text.lstrip("\ufeff").splitlines()
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not numbered:
        return None, [detail(None, "generic.error.csv_empty", line=1)]
    header_line, header = numbered[0][0], [c.lower() for c in _split(numbered[0][1])]
    missing = [c for c in COLUMNS if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        return None, [detail(None, "generic.error.csv_header", line=header_line, columns=";".join(COLUMNS))]
    rows, lines_of, problems = [], [], []
    if len(numbered) - 1 > MAX_ROWS:
        return None, [detail("rows", "generic.error.too_many_rows", line=numbered[MAX_ROWS + 1][0], max=MAX_ROWS)]
    for number, line in numbered[1:]:
        cells = _split(line)
        if len(cells) != len(header):
            problems.append(detail(None, "generic.error.csv_cells", line=number, count=len(cells),
                                   expected=len(header)))
            continue
        row, row_problems = check_row(dict(zip(header, cells, strict=True)))
        for problem in row_problems:
            problem["line"] = number
        problems.extend(row_problems)
        if row is not None:
            rows.append(row)
            lines_of.append(number)
    if not problems:
        problems.extend(check_rows(rows, lines_of))
    if problems:
        return None, problems
    return rows, []


def _number(value):
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def to_csv(rows):
    """The rows as CSV text (header row, ``;`` separated, ``.`` decimal mark), what ``parse_csv`` reads."""
    out = [";".join(COLUMNS)]
    for row in rows:
        out.append(";".join((row["name"], row["frame"], str(row["function"]), str(row["register"]), row["encoding"],
                             row["word_order"], _number(row["coefficient"]), row["unit"])))
    return "\r\n".join(out) + "\r\n"


# ---------------------------------------------------------------- polling

def plan(rows):
    """The reads of a model: [(function, start, count, items)], items (key, offset, encoding, order,
    coefficient); one read per frame."""
    reads = []
    for _name, function, members in frames(rows):
        start, count = span(members)
        items = [(row_key(r), r["register"] - start, r["encoding"], r["word_order"], r["coefficient"])
                 for r in members]
        reads.append((function, start, count, items))
    return reads


def decode(encoding, order, coefficient, words):
    """A value from the words (bits for BIT) at its offset: raw * coefficient."""
    from core.modbus_rtu import decode_value
    kind, count = ENCODINGS[encoding]
    if kind == "bit":
        return words[0] & 1
    raw = decode_value(kind, words[:count], "little" if order == "swapped" else "big")
    return raw * coefficient


def encode(encoding, order, coefficient, value):
    """Words a device holds for ``value`` (the simulated generic slaves of tests and benches)."""
    from core.modbus_rtu import encode_value
    kind, _count = ENCODINGS[encoding]
    raw = value / coefficient
    if kind != "f32":
        raw = int(round(raw))
    return encode_value(kind, raw, "little" if order == "swapped" else "big")
