"""Data models of generic Modbus devices (core/datamodel.py): rows, frames, CSV, decoding.

Decoding is checked against words packed here with ``struct`` (IEEE 754 and two's complement as the standard
defines them), not against our own encoder; CSV refusals name every line at fault and return no row.
"""

import struct

from core import datamodel

HEADER = "name;frame;function;register;encoding;word_order;coefficient;unit"
GOOD = "\n".join([
    HEADER,
    "Water temperature;main;3;100;FLOAT32;big;1;°C",
    "IEaPInst;main;3;102;U32;big;1000;Wh",
    "IPSumInst;main;3;104;S16;big;10;",
    "IV1Inst;volts;4;0;FLOAT32;swapped;1;V",
    "Pump running;bits;1;7;BIT;big;1;",
])


def test_a_good_csv_gives_its_rows_and_round_trips():
    rows, problems = datamodel.parse_csv(GOOD)
    assert problems == []
    assert [r["name"] for r in rows] == ["Water temperature", "IEaPInst", "IPSumInst", "IV1Inst", "Pump running"]
    assert rows[2]["unit"] == "W"                      # a standard name takes the registry's unit
    again, problems = datamodel.parse_csv(datamodel.to_csv(rows))
    assert problems == [] and again == rows


def test_frames_become_one_read_each():
    rows, _ = datamodel.parse_csv(GOOD)
    reads = datamodel.plan(rows)
    assert [(f, start, count) for f, start, count, _items in reads] == [(3, 100, 5), (4, 0, 2), (1, 7, 1)]


def test_a_malformed_csv_is_refused_line_by_line_and_nothing_is_returned():
    text = "\n".join([
        HEADER,
        "Good one;a;3;10;U16;big;1;",                    # line 2: fine
        "Bad function;a;7;11;U16;big;1;",                # line 3: function 7
        "Bad register;b;3;70000;U16;big;1;",             # line 4: beyond 65535
        "Bad coefficient;c;3;12;U16;big;abc;",           # line 5: not a number
        "Too few;cells",                                 # line 6: 2 cells
        "IEaPInst;d;3;20;U32;big;1;kWh",                 # line 7: Ea+ is in Wh
        "Coil as U16;e;1;3;U16;big;1;",                  # line 8: bits need BIT
    ])
    rows, problems = datamodel.parse_csv(text)
    assert rows is None
    assert sorted(set(p["line"] for p in problems)) == [3, 4, 5, 6, 7, 8]
    keys = dict((p["line"], p["key"]) for p in problems)
    assert keys[6] == "generic.error.csv_cells" and keys[7] == "generic.error.standard_unit"
    assert keys[8] == "generic.error.bit_function"


def test_a_wrong_header_and_an_empty_file_are_refused():
    assert datamodel.parse_csv("name,frame,function\n1,2,3")[1][0]["key"] == "generic.error.csv_header"
    assert datamodel.parse_csv("\n\n")[1][0]["key"] == "generic.error.csv_empty"


def test_a_frame_over_125_registers_is_refused_and_125_is_taken():
    edge = [{"name": "a", "frame": "f", "register": 0, "encoding": "U16"},
            {"name": "b", "frame": "f", "register": 123, "encoding": "U32"}]          # 0..124: 125 registers
    assert datamodel.check_model({"name": "m", "rows": edge})[1] == []
    over = [{"name": "a", "frame": "f", "register": 0, "encoding": "U16"},
            {"name": "b", "frame": "f", "register": 124, "encoding": "U32"}]          # 0..125: 126 registers
    model, problems = datamodel.check_model({"name": "m", "rows": over})
    assert model is None and [p["key"] for p in problems] == ["generic.error.frame_span"]
    assert problems[0]["params"]["count"] == 126 and problems[0]["params"]["max"] == 125
    csv = HEADER + "\nx;f;3;0;U16;big;1;\ny;f;3;200;U16;big;1;\n"
    rows, problems = datamodel.parse_csv(csv)
    assert rows is None and problems[0]["line"] == 3 and problems[0]["key"] == "generic.error.frame_span"


def test_one_frame_one_function_and_names_once():
    rows = [{"name": "a", "frame": "f", "function": 3, "register": 0},
            {"name": "A", "frame": "f", "function": 4, "register": 1}]
    keys = [p["key"] for p in datamodel.check_model({"name": "m", "rows": rows})[1]]
    assert "generic.error.name_twice" in keys and "generic.error.frame_function" in keys


def test_limits_of_rows():
    rows = [{"name": "v%d" % i, "register": i} for i in range(datamodel.MAX_ROWS + 1)]
    assert datamodel.check_model({"name": "m", "rows": rows})[1][0]["key"] == "generic.error.too_many_rows"


def test_values_decode_from_words_packed_by_the_standard():
    f32 = struct.unpack(">HH", struct.pack(">f", 21.5))
    assert datamodel.decode("FLOAT32", "big", 1.0, list(f32)) == 21.5
    assert datamodel.decode("FLOAT32", "swapped", 1.0, [f32[1], f32[0]]) == 21.5
    assert datamodel.decode("S16", "big", 10.0, list(struct.unpack(">H", struct.pack(">h", -150)))) == -1500.0
    assert datamodel.decode("U32", "big", 1000.0, list(struct.unpack(">HH", struct.pack(">I", 12345)))) \
        == 12345000.0
    words = list(struct.unpack(">HHHH", struct.pack(">Q", 2 ** 40 + 7)))
    assert datamodel.decode("U64", "big", 1.0, words) == 2 ** 40 + 7
    assert datamodel.decode("U64", "swapped", 1.0, words[::-1]) == 2 ** 40 + 7
    assert datamodel.decode("S32", "big", 1.0, list(struct.unpack(">HH", struct.pack(">i", -2500)))) == -2500
