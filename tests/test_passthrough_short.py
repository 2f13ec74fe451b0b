"""Short pass-through (issue 19, target 3): the identification block from the words learnt once, a forwarded
read behind at most the one transaction on the wire, long poll reads in pieces only while pass-through is
active. Frames are counted on the simulated line itself (a spy on the simulated bus), not by the engine."""

import asyncio
import random
import struct

from board.base import ManualClock
from conftest import DemoSite, record_requests, wait_for
from core import catalogue, modbus_rtu as rtu
from daemon.runtime import bus
from daemon.runtime.bus import CURVE, FAIRNESS_BURST, PASSTHROUGH, POLL, SPLIT_WORDS, ClassQueues, _Transaction
from daemon.runtime.staticblocks import StaticBlocks
from daemon.state.topology import Device
from protocols.modbus.tcp import ModbusTcpService

A40, E23 = 20, 21                     # the demo site's RS485 port
T0 = 1_700_000_000.0
SETTINGS = 0xE000                     # the A-40's settings block (3 words): neither polled nor fixed


class Site(DemoSite):
    def __init__(self, tmp_path):
        # a still clock: the meters' values hold, so the cache can be compared with them word for word
        # and a patient timeout: on a loaded machine the simulated meters' thread may answer late, and a
        # retried frame is not what these tests count
        super().__init__(tmp_path, ModbusTcpService, {"modbus.port": 0, "modbus.bind": "127.0.0.1"},
                         {"bus.rs485.timeout_ms": 1000}, clock=ManualClock(T0))

    async def ready(self, stack):
        await wait_for(lambda: self.service.running)
        self.frames = record_requests(self.gw.board.buses["rs485"])   # every request frame on the RS485 line


async def frames_ahead(s, reader, writer, transaction):
    """One forwarded read of the A-40's settings block on an open Modbus TCP connection, its answer checked
    against the meter; how many frames the line carried before it (0: it went first, 1: behind the one on the
    wire when it came)."""
    settings = rtu.read_request(rtu.READ_HOLDING, SETTINGS, 3)
    seen = len(s.frames)
    writer.write(struct.pack(">HHHB", transaction, 0, len(settings) + 1, A40) + settings)
    header = await reader.readexactly(7)
    body = await reader.readexactly(header[5] - 1)
    assert body == rtu.read_response(3, s.gw.board.find_meter(address=A40).read_registers(SETTINGS, 3))
    between = s.frames[seen:]
    ours = [i for i, (unit, pdu) in enumerate(between) if unit == A40 and pdu == settings]
    assert ours, between
    return ours[0]


async def ask(port, unit, pdu, transaction=1):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(struct.pack(">HHHB", transaction, 0, len(pdu) + 1, unit) + pdu)
        header = await reader.readexactly(7)
        return await reader.readexactly(header[5] - 1)
    finally:
        writer.close()


def test_identification_from_the_cache_and_forwarded_reads_behind_one_transaction(tmp_path, monkeypatch):
    # the SPLIT_WORDS rule, as for irregular traffic: this client's random gaps (20-90 ms) may look steady
    # enough for fit scheduling, whose pieces are sized to the room instead (tests/test_passthrough_fit.py)
    monkeypatch.setattr(bus, "FIT_SCHEDULING", False)

    async def scenario():
        async with Site(tmp_path) as s:
            port = s.service.status()["port"]
            meter = s.gw.board.find_meter(address=A40)
            ident = rtu.read_request(rtu.READ_HOLDING, catalogue.IDENT_BASE, 4)

            def ident_frames():
                return sum(1 for unit, pdu in s.frames if unit == A40 and pdu == ident)
            first = await ask(port, A40, ident)
            assert first == rtu.read_response(3, [0x53, 0x4F, 0x43, 0x4F])        # "SOCO", the meter's constant
            assert ident_frames() == 1                                            # learnt from the meter once
            for t in range(5):
                assert await ask(port, A40, ident, t) == first
            assert ident_frames() == 1                                            # then no frame on the wire
            # a part of the block never read is asked of the meter, then known too
            name = rtu.read_request(rtu.READ_HOLDING, catalogue.IDENT_BASE + catalogue.IDENT_NAME, 8)
            answer = await ask(port, A40, name)
            assert answer == rtu.read_response(3, meter.read_registers(catalogue.IDENT_BASE + catalogue.IDENT_NAME, 8))
            await ask(port, A40, name)
            assert sum(1 for unit, pdu in s.frames if pdu == name) == 1
            # a read leaving the block (the A-40 has no NET ID words) is the meter's business: its own 02
            across = rtu.read_request(rtu.READ_HOLDING, catalogue.IDENT_BASE + 62, 6)
            assert await ask(port, A40, across) == rtu.exception_pdu(3, rtu.ILLEGAL_DATA_ADDRESS)
            assert sum(1 for unit, pdu in s.frames if pdu == across) == 1

            # forwarded reads at random moments of the poll cycle: between the request and its answer the
            # line carries at most one other frame (the one on the wire when it came), never a queue
            rnd = random.Random(19)
            worst, served = 0, 0
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for t in range(40):
                await asyncio.sleep(rnd.uniform(0.0, 0.05))
                worst = max(worst, await frames_ahead(s, reader, writer, t))
                served += 1
            writer.close()
            assert served == 40 and worst <= 1, worst

            # while pass-through is active, the long poll reads of the A-40 and E23 went in pieces of at most
            # SPLIT_WORDS registers, every piece inside the read and cut between two values; the cache holds
            # what the meter says (correct values, not just fast ones)
            long_reads = [rtu.request_fields(pdu) for unit, pdu in s.frames[-60:] if unit in (A40, E23)
                          and pdu[0] == 3 and 0xC552 <= rtu.request_fields(pdu)[1] < 0xC552 + 54]
            assert long_reads and all(count <= SPLIT_WORDS for _f, _s, count, _w in long_reads), long_reads
            assert all((start - 0xC552) % 2 == 0 for _f, start, _c, _w in long_reads)    # 32-bit values kept whole
            assert s.gw.cache.fresh_raw(A40, 0xC552, 54) == meter.read_registers(0xC552, 54)
            # and once pass-through has been quiet for a while, the same read is whole again
            quiet = len(s.frames)
            await asyncio.sleep(1.2)
            await wait_for(lambda: any(unit == A40 and pdu == rtu.read_request(3, 0xC552, 54)
                                       for unit, pdu in s.frames[quiet:]))
            assert s.gw.engines["rs485"].split_pieces > 0
    asyncio.run(scenario())


def _device(reference="A-40", address=20, serial="X1", netid=None):
    return Device("rs485", address, reference, netid, serial=serial)


def test_static_words_are_tied_to_the_device_and_to_what_was_read():
    blocks = StaticBlocks()
    a40 = _device()
    request = rtu.read_request(3, catalogue.IDENT_BASE, 4)
    assert blocks.read(a40, 3, catalogue.IDENT_BASE, 4) is None                  # nothing learnt yet
    blocks.learn(a40, request, rtu.read_response(3, [0x53, 0x4F, 0x43, 0x4F]))
    assert blocks.read(a40, 3, catalogue.IDENT_BASE + 1, 2) == [0x4F, 0x43]
    assert blocks.read(a40, 3, catalogue.IDENT_BASE, 5) is None                   # a word never read
    assert blocks.read(a40, 4, catalogue.IDENT_BASE, 4) is None                   # input registers: not ours
    assert blocks.read(_device(serial="X2"), 3, catalogue.IDENT_BASE, 4) is None  # another meter at 20
    # outside the block (the A-40's table ends at 66 words), a measurement, a write: never learnt
    blocks.learn(a40, rtu.read_request(3, 0xC552, 2), rtu.read_response(3, [1, 2]))
    assert blocks.read(a40, 3, 0xC552, 2) is None
    blocks.learn(a40, rtu.read_request(3, catalogue.IDENT_BASE + 64, 3), rtu.read_response(3, [1, 2, 3]))
    assert blocks.read(a40, 3, catalogue.IDENT_BASE + 64, 2) is None
    # a Digiware module's NET ID words follow its block: one range
    i35 = Device("digiware", 4, "I-35", "DC8600")
    words = list(range(69))
    blocks.learn(i35, rtu.read_request(3, catalogue.IDENT_BASE, 69), rtu.read_response(3, words))
    assert blocks.read(i35, 3, catalogue.IDENT_NETID_BASE, 3) == words[66:]
    blocks.forget(4)
    assert blocks.read(i35, 3, catalogue.IDENT_NETID_BASE, 3) is None


def test_a_split_read_is_cut_between_values_in_even_pieces():
    tx = _Transaction(20, b"", None, 0, 0.1, POLL, cuts=tuple(range(0, 54, 2)))
    ends = []
    while not ends or ends[-1] < 54:
        tx.offset = tx.piece_end(54, 32)
        ends.append(tx.offset)
    assert ends == [26, 54]                              # 26 + 28, not 32 + 22
    tx = _Transaction(20, b"", None, 0, 0.1, POLL, cuts=(0, 3, 40))
    assert tx.piece_end(50, 16) == 3                     # no cut in the share: the first one beyond


def test_a_due_class_lets_one_forwarded_read_go_first_but_not_a_flood():
    async def scenario():
        loop = asyncio.get_running_loop()
        queues = ClassQueues()

        def add(klass):
            queues.push(_Transaction(15, b"\x03", loop.create_future(), 0, 0.1, klass))
        add(CURVE)
        for _ in range(40):
            add(POLL)
        order = [queues.pick().klass for _ in range(32)]
        assert order == [POLL] * 32                        # the curve read is due now
        add(PASSTHROUGH)
        assert queues.pick().klass == PASSTHROUGH          # the forwarded read first: behind nothing queued
        add(PASSTHROUGH)
        assert queues.pick().klass == CURVE                # once: the next one waits for the curve read
        # a flood of pass-through that made poll due does not pass it further
        queues = ClassQueues()
        add(POLL)
        served = []
        for _ in range(FAIRNESS_BURST + 1):
            add(PASSTHROUGH)
            served.append(queues.pick().klass)
        assert served == [PASSTHROUGH] * FAIRNESS_BURST + [POLL]
    asyncio.run(scenario())
