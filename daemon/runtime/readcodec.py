"""One precompiled decoder per poll read of a catalogue meter (issue 19, target 6: CPU per transaction).

``catalogue.decode`` reads one value at a time (its kind's word count looked up, the words sliced and
re-packed, the type tested by name), ~2 us a value, 30-60 values an answer, 27 answers a second per
bus. A read's layout never changes between two polls, so it is compiled once, when the poller plans it:
one ``struct.Struct`` over the answer's bytes whose fields are the read's registers in their types
(padding over the gaps), and per value its field and the one operation that remains (the multiplier, a
bit of a word, the low byte, an e48's kWh + residual). Decoding an answer is then one ``unpack_from``
and a loop over the values, each giving exactly what ``catalogue.decode`` gives (same types, same
arithmetic, same order of keys): tests/test_poll_cpu.py checks every product's reads against it.

A read the layout cannot express (two values overlapping differently, a kind not listed here) is not
compiled: ``compile_read`` returns None and the poller decodes it value by value as before.
"""

import struct

from core import datamodel

# kind -> (struct code, words) of the field a value of that kind is read from (big-endian words, as on
# Modbus; core/modbus_rtu.py decode_value: an N-word value is its words' big-endian concatenation)
FIELDS = {"u16": ("H", 1), "s16": ("h", 1), "u32": ("I", 2), "s32": ("i", 2), "u64": ("Q", 4),
          "s64": ("q", 4), "f32": ("f", 2), "datetime": ("I", 2), "u8": ("H", 1)}

# what is left to do with a value's field(s)
SCALE, LOW_BYTE, BIT, E48 = 0, 1, 2, 3


class ReadDecoder:
    """The compiled decoder of one read: ``decode(pdu)`` -> {key: value} of its one load."""

    __slots__ = ("load", "standard", "_struct", "_ops", "_scaled")

    def __init__(self, load, layout, ops):
        self.load = load
        self.standard = all(datamodel.is_standard(key) for key, _op, _i, _a in ops)   # all registry keys
        self._struct = struct.Struct(layout)
        self._ops = tuple(ops)
        # the common case, every value a field times its multiplier: one comprehension, no branches
        self._scaled = tuple((key, i, a) for key, _op, i, a in ops) if all(op == SCALE for _k, op, _i, _a in ops) \
            else None

    def decode(self, pdu):
        """{key: value} of a read's answer PDU (function, byte count, then the registers)."""
        fields = self._struct.unpack_from(pdu, 2)
        if self._scaled is not None:
            return {key: fields[i] * mult for key, i, mult in self._scaled}
        out = {}
        for key, op, i, arg in self._ops:
            if op == SCALE:
                out[key] = fields[i] * arg
            elif op == BIT:
                out[key] = (fields[i] >> arg) & 1
            elif op == LOW_BYTE:
                out[key] = (fields[i] & 0xFF) * arg
            else:                                              # e48: kWh (u32) x 1000 + residual x 10 Wh
                out[key] = fields[i] * 1000 + fields[i + 1] * 10
        return out


def compile_read(items):
    """The ReadDecoder of a catalogue read's ``items`` [(load, key, offset, kind, multiplier)], or None."""
    if not items or len(set(item[0] for item in items)) != 1:
        return None
    fields = {}                    # (word offset, code) -> words
    wanted = []                    # per item: (key, op, [(offset, code)...], arg)
    for _load, key, offset, kind, mult in items:
        if kind == "e48":
            spec = [(offset, "I", 2), (offset + 2, "H", 1)]
            op, arg = E48, None
        elif kind.startswith("bit") and kind[3:].isdigit():
            spec = [(offset, "H", 1)]
            op, arg = BIT, int(kind[3:])
        elif kind in FIELDS:
            code, words = FIELDS[kind]
            spec = [(offset, code, words)]
            op, arg = (LOW_BYTE if kind == "u8" else SCALE), mult
        else:
            return None
        for field_offset, code, words in spec:
            if fields.setdefault((field_offset, code), words) != words:
                return None
        wanted.append((key, op, [(o, c) for o, c, _w in spec], arg))
    layout, index, at = [">"], {}, 0
    for (offset, code), words in sorted(fields.items()):
        if offset < at:
            return None            # two fields overlap (not the same word read twice): value by value
        if offset > at:
            layout.append("%dx" % (2 * (offset - at)))
        index[(offset, code)] = len(index)
        layout.append(code)
        at = offset + words
    ops = []
    for key, op, spec, arg in wanted:
        first = index[spec[0]]
        if op == E48 and index[spec[1]] != first + 1:
            return None
        ops.append((key, op, first, arg))
    return ReadDecoder(items[0][0], "".join(layout), ops)
