"""The compiled decoder of a poll read (daemon/runtime/readcodec.py) gives every value exactly as before.

For every product of the catalogue, every load and network type it offers, every read of its poll plan
(each tier's reads and the untiered plan), answers made of random words (extreme words included: 0x0000,
0x7FFF, 0x8000, 0xFFFF, so signs, NaN and infinities of f32 and carries of e48 are met) are decoded by
the compiled decoder and compared with

* an independent decoder: pymodbus's ``convert_from_registers`` (big-endian words, as Modbus puts them)
  for the register types, the bit and byte arithmetic of the register tables (shared/socomec-registers.md:
  bitN = bit N of the word, U8 = the low byte, E48 = kWh (U32) then the residual in 10 Wh), times the
  catalogue's multiplier;
* the value-by-value path it replaces (``decode_read``): the same values, of the same types, keys in the
  same order (what listeners such as MQTT iterate).
"""

import math
import random

import pytest
from pymodbus.client.mixin import ModbusClientMixin

from core import catalogue, modbus_rtu as rtu, poll_tiers
from daemon.runtime.poller import PlannedRead, decode_read, plan_reads
from daemon.runtime.readcodec import compile_read

DT = ModbusClientMixin.DATATYPE
PYMODBUS = {"u16": DT.UINT16, "s16": DT.INT16, "u32": DT.UINT32, "s32": DT.INT32, "u64": DT.UINT64,
            "s64": DT.INT64, "f32": DT.FLOAT32, "datetime": DT.UINT32}
EDGES = (0x0000, 0x0001, 0x7FFF, 0x8000, 0xFFFF, 0x7F80, 0xFF80, 0x7FC0)


def independent(kind, words, mult):
    if kind.startswith("bit"):
        return (words[0] >> int(kind[3:])) & 1
    if kind == "u8":
        return (words[0] & 0xFF) * mult
    if kind == "e48":
        return ModbusClientMixin.convert_from_registers(words[:2], DT.UINT32) * 1000 + words[2] * 10
    return ModbusClientMixin.convert_from_registers(words[:catalogue.type_words(kind)], PYMODBUS[kind]) * mult


def every_read():
    for row in catalogue.PRODUCTS:
        reference = row[catalogue.REF]
        networks = row[catalogue.NETWORKS] or ("3P+N",)
        for network in networks:
            loads = [(n, network) for n in range(0, row[catalogue.LOADS] + 1)]
            for tier in (None,) + poll_tiers.NAMES:
                for read in plan_reads(reference, loads, tier=tier):
                    yield reference, network, read


READS = list(every_read())


def same(a, b):
    return type(a) is type(b) and (a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)))


def test_every_catalogue_read_compiles():
    assert len(READS) > 100
    assert [(ref, read) for ref, _n, read in READS if read.decoder is None] == []


@pytest.mark.parametrize("seed", range(6))
def test_compiled_values_are_the_independent_decoding_and_the_old_path(seed):
    rnd = random.Random(seed)
    checked = 0
    for reference, network, read in READS:
        words = [rnd.choice(EDGES) if rnd.random() < 0.3 else rnd.randrange(0x10000) for _ in range(read.count)]
        pdu = rtu.read_response(read.function, words)
        values = read.decoder.decode(pdu)
        old = decode_read(read, words)
        assert list(old) == [read.decoder.load], (reference, read)
        assert list(values) == list(old[read.decoder.load]), (reference, network, read)   # keys, in order
        for load, key, offset, kind, mult in read.items:
            expected = independent(kind, words[offset:], mult)
            assert same(values[key], expected), (reference, network, key, kind, words[offset:offset + 4])
            assert same(values[key], old[load][key]), (reference, network, key)
            checked += 1
    assert checked > 2000


def test_layouts_it_cannot_express_are_decoded_value_by_value():
    # a u32 over a u16 at the same register, two loads in one read, an unknown kind: not compiled
    assert compile_read([(1, "p", 0, "u32", 1), (1, "q", 0, "u16", 1)]) is None
    assert compile_read([(1, "p", 0, "u16", 1), (2, "q", 1, "u16", 1)]) is None
    assert compile_read([(1, "p", 0, "u128", 1)]) is None
    assert compile_read([]) is None
    read = PlannedRead(0, 2, [(1, "p", 0, "u32", 1), (1, "q", 0, "u16", 1)])
    assert read.decoder is None
    # bits of one word and gaps are fine
    decoder = compile_read([(0, "in_1", 0, "bit0", 1), (0, "in_2", 0, "bit1", 1), (0, "v1", 3, "s16", 0.1)])
    assert decoder.decode(rtu.read_response(3, [0b10, 0, 0, 0xFFFE])) == {"in_1": 0, "in_2": 1, "v1": -0.2}
