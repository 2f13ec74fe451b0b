"""Modbus TCP server/gateway, checked with independent clients (mbpoll, pymodbus)."""

import asyncio
import collections
import contextlib
import random
import struct

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ExceptionResponse

from board.base import ManualClock
from conftest import DemoSite, mbpoll, parse_mbpoll, wait_for
from core import catalogue
from core import modbus_rtu as rtu
from protocols.modbus.tables import NORMALIZED_BASE
from protocols.modbus.tcp import ModbusTcpService

T0 = 1_700_000_000.0
IO10_OUT1_NORMALIZED = NORMALIZED_BASE + 156        # registry gw_offset of out_1, load 0


class Setup(DemoSite):
    """The demo site with Modbus TCP on loopback port 0 (the service binds a free one and reports it in its
    status); ``async with client()``: a pymodbus client."""

    def __init__(self, tmp_path, overrides=None, clock=None):
        super().__init__(tmp_path, ModbusTcpService, {"modbus.port": 0, "modbus.bind": "127.0.0.1"},
                         overrides, clock)

    async def ready(self, stack):
        await wait_for(lambda: self.service.running)

    @property
    def port(self):
        """The port the service bound (None while closed; a reopen binds a new one)."""
        return self.service.status()["port"]

    @contextlib.asynccontextmanager
    async def client(self):
        client = AsyncModbusTcpClient("127.0.0.1", port=self.port, timeout=5, retries=0)
        try:
            assert await client.connect()
            yield client
        finally:
            client.close()


def words_of(meter, start, count):
    return meter.read_registers(start, count)


def test_mbpoll_and_pymodbus_read_meters_through_the_gateway(tmp_path):
    clock = ManualClock(T0)
    async def scenario():
        async with Setup(tmp_path, clock=clock) as s:
            a40 = s.gw.board.find_meter(address=20)
            expected = words_of(a40, 0xC552, 54)
            proc = await asyncio.to_thread(mbpoll, "-m", "tcp", "-p", s.port, "-a", 20, "-r", 0xC552, "-c", 54,
                                           "127.0.0.1")
            assert proc.returncode == 0, proc.stderr
            got = parse_mbpoll(proc.stdout)
            assert [got[0xC552 + i] & 0xFFFF for i in range(54)] == expected
            async with s.client() as client:
                i35 = s.gw.board.find_meter(address=4)
                base = catalogue.load_base(2)
                rr = await client.read_holding_registers(base, count=88, device_id=4)
                assert not rr.isError() and rr.registers == words_of(i35, base, 88)
                # the normalized table: I1 of load 2 in mA (u32, x1000)
                rr = await client.read_holding_registers(NORMALIZED_BASE + 2 * 200 + 22, count=2, device_id=4)
                assert rtu.decode_value("u32", rr.registers) == round(i35.values(2)["i1"] * 1000)
                rr = await client.read_holding_registers(0xC350, count=4, device_id=99)
                assert isinstance(rr, ExceptionResponse) and rr.exception_code == 0x0A
    asyncio.run(scenario())


def test_polled_reads_come_from_the_cache_others_reach_the_meter(tmp_path):
    async def scenario():
        async with Setup(tmp_path) as s:
            async with s.client() as client:
                meter = s.gw.board.find_meter(address=21)
                counters = s.service.handler.counters
                before_meter, before_cache = meter.requests, counters.from_cache
                cycles_before = s.gw.pollers["rs485"].device_cycles[21]
                for _ in range(20):                          # inside the E23 poll plan
                    rr = await client.read_holding_registers(0xC558, count=6, device_id=21)
                    assert not rr.isError()
                assert counters.from_cache - before_cache == 20
                # only the poller talks to the meter meanwhile: its requests stay far below 20 extra
                cycles = s.gw.pollers["rs485"].device_cycles[21] - cycles_before
                assert meter.requests - before_meter <= 2 * (cycles + 1)    # 2 polled reads per cycle
                before = meter.requests
                rr = await client.read_holding_registers(catalogue.IDENT_BASE, count=4, device_id=21)
                assert rr.registers == [0x53, 0x4F, 0x43, 0x4F]   # "SOCO", forwarded
                assert counters.forwarded >= 1 and meter.requests > before
                rr = await client.read_holding_registers(0x2345, count=2, device_id=21)
                assert isinstance(rr, ExceptionResponse) and rr.exception_code == 0x02   # the meter's own 02
    asyncio.run(scenario())


def test_silent_meter_gives_0B_within_the_timeout(tmp_path):
    async def scenario():
        async with Setup(tmp_path, {"bus.digiware.timeout_ms": 100}) as s:
            s.gw.board.configure_meter(0xD5038A, silent=True)
            await wait_for(lambda: s.gw.cache.comm_lost(11))
            async with s.client() as client:
                rr = await client.read_holding_registers(0x9003, count=4, device_id=11)
                assert isinstance(rr, ExceptionResponse) and rr.exception_code == 0x0B
                # the gateway table flags it for integrators: status 3 = comm lost, alarm 3 bit
                rr = await client.read_holding_registers(0x0100 + 11, count=1, device_id=1)
                assert rr.registers == [3]
                rr = await client.read_holding_registers(0x001C, count=2, device_id=255)
                assert rtu.decode_value("u32", rr.registers) & (1 << 2)
    asyncio.run(scenario())


def test_writes_follow_the_policy_at_once(tmp_path):
    async def scenario():
        async with Setup(tmp_path) as s:
            io10 = s.gw.board.find_meter(address=15)
            async with s.client() as client:
                rr = await client.write_register(catalogue.IO_OUTPUT_REGISTER, 1, device_id=15)
                assert isinstance(rr, ExceptionResponse) and rr.exception_code == 0x01
                rr = await client.write_registers(IO10_OUT1_NORMALIZED, [0, 1], device_id=15)
                assert isinstance(rr, ExceptionResponse) and rr.exception_code == 0x01
                assert io10.outputs == 0
                await s.gw.settings.set_many({"policy.modbus_write": True})
                rr = await client.write_register(catalogue.IO_OUTPUT_REGISTER, 1, device_id=15)   # native, forwarded
                assert not rr.isError() and io10.outputs == 0b01
                rr = await client.write_registers(IO10_OUT1_NORMALIZED + 2, [0, 1], device_id=15)  # out_2 normalized
                assert not rr.isError() and io10.outputs == 0b11
                rr = await client.write_registers(IO10_OUT1_NORMALIZED, [0, 7], device_id=15)
                assert isinstance(rr, ExceptionResponse) and rr.exception_code == 0x03 and io10.outputs == 0b11
                rr = await client.write_register(0x0000, 1, device_id=1)       # the gateway table is read-only
                assert isinstance(rr, ExceptionResponse) and rr.exception_code == 0x01
                await s.gw.settings.set_many({"policy.modbus_write": False})
                rr = await client.write_register(catalogue.IO_OUTPUT_REGISTER, 0, device_id=15)
                assert isinstance(rr, ExceptionResponse) and rr.exception_code == 0x01 and io10.outputs == 0b11
    asyncio.run(scenario())


def test_gateway_table_and_device_identification(tmp_path):
    async def scenario():
        async with Setup(tmp_path) as s:
            async with s.client() as client:
                rr = await client.read_holding_registers(0, count=0x24, device_id=1)
                words = rr.registers
                assert rtu.decode_string_norm(words[8:16]) == "M-70"
                assert "%06X" % rtu.decode_value("u32", words[0x18:0x1A]) == s.gw.identity["netid"]
                assert words[0x20] == 8                                   # devices in the topology
                beat = rtu.decode_value("u32", words[0x1E:0x20])
                await asyncio.sleep(1.1)
                rr = await client.read_holding_registers(0x1E, count=2, device_id=1)
                assert rtu.decode_value("u32", rr.registers) > beat       # the heartbeat moves
                rr = await client.read_holding_registers(0x0100 + 4, count=2, device_id=1)
                assert rr.registers == [1, 1]                             # meters 4 and 5 ok
                rr = await client.read_holding_registers(0x24, count=10, device_id=1)
                assert isinstance(rr, ExceptionResponse) and rr.exception_code == 0x02
                info = await client.read_device_information(read_code=1, object_id=0, device_id=20)
                assert info.information[0] == b"SOCOMEC" and info.information[1] == b"A-40"
                info = await client.read_device_information(read_code=2, object_id=0, device_id=1)
                assert info.information[1] == b"M-70"
    asyncio.run(scenario())


def test_32_clients_read_at_once_and_the_33rd_is_refused(tmp_path):
    """SPEC §3.1: 32 connections (8 from each of four hosts: the per-address cap) are served at once. The 33rd
    from another host is refused cleanly, whether the 32 are busy or idle (nobody's connection is closed for
    it); once one of the 32 closes, a newcomer gets in."""
    async def scenario():
        async with Setup(tmp_path) as s:
            s.service.frame_timeout = 3600      # the half-sent requests below wait for the test, not for a clock
            clients = [await connect_from(s.port, "127.0.0.%d" % (1 + i // 8)) for i in range(32)]
            await wait_for(lambda: s.service.stats["accepted"] == 32)
            frame = mbap(7, 20, rtu.read_request(3, 0xC558, 6))
            for _, writer in clients:
                writer.write(frame)
            for reader, _ in clients:
                assert (await read_answer(reader))[:9] == frame[:2] + b"\x00\x00\x00\x0f\x14\x03\x0c"
            for _, writer in clients:
                writer.write(frame[:3])                                  # a request begun: not idle
            await wait_for(lambda: s.service.status()["connections_idle"] == 0)
            reader, writer = await connect_from(s.port, "127.0.0.5")
            assert await asyncio.wait_for(reader.read(10), 20) == b""     # closed at once, cleanly
            writer.close()
            assert s.service.stats["refused"] == 1
            for reader, writer in clients:                               # answered in turn: the first waits longest
                writer.write(frame[3:])
                assert (await read_answer(reader))[:2] == frame[:2]
            await wait_for(lambda: s.service.status()["connections_idle"] == 32)
            reader, writer = await connect_from(s.port, "127.0.0.5")          # all idle: still refused
            assert await asyncio.wait_for(reader.read(10), 20) == b""
            writer.close()
            assert s.service.stats["evicted"] == 0 and s.service.stats["refused"] == 2
            for reader, writer in clients[1:]:                                # none of the 32 was touched
                assert (await exchange_on(reader, writer, frame))[:2] == frame[:2]
            clients[0][1].close()
            await wait_for(lambda: len(s.service.connections) == 31)
            reader, writer = await connect_from(s.port, "127.0.0.5")          # a place is free
            assert (await exchange_on(reader, writer, mbap(9, 255, rtu.read_request(3, 0, 8))))[:2] == b"\x00\x09"
            for _, w in clients + [(reader, writer)]:
                w.close()
            await wait_for(lambda: len(s.service.connections) == 0)
    asyncio.run(scenario())


def test_turning_modbus_off_closes_the_port_at_once(tmp_path):
    async def scenario():
        async with Setup(tmp_path) as s:
            async with s.client():
                port = s.port
                await s.gw.settings.set_many({"modbus.enabled": False})
                await wait_for(lambda: not s.service.running)
                assert s.port is None
                with pytest.raises(OSError):
                    await asyncio.open_connection("127.0.0.1", port)
            await s.gw.settings.set_many({"modbus.enabled": True})
            await wait_for(lambda: s.service.running)
            async with s.client() as client:
                assert not (await client.read_holding_registers(0, count=1, device_id=1)).isError()
    asyncio.run(scenario())


# ---------------------------------------------------------------- malformed input

def mbap(transaction, unit, pdu, protocol=0, length=None):
    return struct.pack(">HHHB", transaction, protocol, len(pdu) + 1 if length is None else length, unit) + pdu


async def exchange(port, frame, expect_answer=True, guard=5.0):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame)
    await writer.drain()
    try:
        if not expect_answer:
            return await asyncio.wait_for(reader.read(100), guard)
        header = await asyncio.wait_for(reader.readexactly(7), guard)
        length = struct.unpack(">H", header[4:6])[0]
        return header + await reader.readexactly(length - 1)
    finally:
        writer.close()


async def connect_from(port, address):
    """A connection to the server from ``address`` (127.0.0.x: another host as the server sees it)."""
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))


async def read_answer(reader, guard=20.0):
    header = await asyncio.wait_for(reader.readexactly(7), guard)
    return header + await asyncio.wait_for(reader.readexactly(struct.unpack(">H", header[4:6])[0] - 1), guard)


async def exchange_on(reader, writer, frame):
    writer.write(frame)
    return await read_answer(reader)


def exception_of(answer):
    assert answer[7] & 0x80, answer
    return answer[8]


def test_malformed_frames_get_exceptions_or_a_clean_close(tmp_path):
    async def scenario():
        async with Setup(tmp_path) as s:
            s.service.frame_timeout = 0.3
            async with s.client() as good:
                port = s.port
                cases = [
                    (mbap(1, 20, b"\x63\x00\x00"), 0x01),                          # unknown function
                    (mbap(2, 20, rtu.read_request(3, 0, 0)), 0x03),                 # quantity 0
                    (mbap(3, 20, rtu.read_request(3, 0, 126)), 0x03),               # quantity > 125
                    (mbap(4, 20, rtu.read_request(1, 0, 2001)), 0x03),              # > 2000 coils
                    (mbap(5, 20, rtu.read_request(3, 0xFFFF, 2)), 0x02),            # address overflow
                    (mbap(6, 20, b"\x03\x00"), 0x03),                               # PDU too short for its function
                    (mbap(7, 20, b"\x10\x00\x00\x00\x02\x03\x00\x01\x00"), 0x03),    # byte count mismatch
                ]
                for frame, code in cases:
                    answer = await exchange(port, frame)
                    assert answer[:2] == frame[:2] and exception_of(answer) == code, (frame, answer)
                for frame in (mbap(8, 20, rtu.read_request(3, 0, 1), protocol=1),   # protocol id != 0
                              mbap(9, 20, b"", length=0),                           # length 0
                              mbap(10, 20, b"", length=261) + b"\x00" * 300,        # length > 260
                              mbap(11, 20, rtu.read_request(3, 0, 1), length=20),   # length larger than the data
                              mbap(12, 20, rtu.read_request(3, 0, 1))[:9],          # truncated frame
                              b"\xde\xad\xbe\xef" * 8):                            # garbage
                    assert await exchange(port, frame, expect_answer=False) == b""
                # slowloris: one byte per 0.1 s never completes a frame within the frame timeout
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                frame = mbap(13, 20, rtu.read_request(3, 0xC558, 2))
                closed = False
                for b in frame:
                    writer.write(bytes((b,)))
                    await asyncio.sleep(0.1)
                    if reader.at_eof():
                        closed = True
                        break
                data = await asyncio.wait_for(reader.read(100), 5)
                assert closed or data == b""
                writer.close()
                # everyone else was served throughout
                assert not (await good.read_holding_registers(0xC558, count=2, device_id=20)).isError()
            assert s.service.stats["closed_bad_frame"] == 7              # the six frames above and the slowloris
    asyncio.run(scenario())


MBAP_MAX_LENGTH = 254            # Modbus TCP: unit + a PDU of at most 253 bytes
EXCEPTION_CODES = {0x01, 0x02, 0x03, 0x04, 0x06, 0x0A, 0x0B}


def whole_frames(stream):
    """The requests a Modbus TCP server reads off ``stream`` (MBAP framing, Modbus Messaging on TCP/IP
    §3.1.3), in order: (transaction, unit, function) of each whole frame, up to the first bad header or the
    end of the bytes. Whether the stream stops at a bad header, a cut frame or a frame boundary."""
    frames, at = [], 0
    while len(stream) - at >= 7:
        transaction, protocol, length, unit = struct.unpack(">HHHB", stream[at:at + 7])
        if protocol != 0 or length < 2 or length > MBAP_MAX_LENGTH:
            return frames, "bad header"
        if len(stream) - at < 6 + length:
            return frames, "cut"
        frames.append((transaction, unit, stream[at + 7]))
        at += 6 + length
    return frames, "cut" if at < len(stream) else "boundary"


def answers_in(stream):
    """Split what the server sent back into MBAP answers; every byte must belong to a whole, well-formed one:
    (transaction, unit, function, pdu)."""
    answers, at = [], 0
    while at < len(stream):
        assert len(stream) - at >= 9, ("a cut answer", stream[at:])
        transaction, protocol, length, unit = struct.unpack(">HHHB", stream[at:at + 7])
        assert protocol == 0 and 3 <= length <= MBAP_MAX_LENGTH, ("bad MBAP header", stream[at:at + 7])
        assert len(stream) - at >= 6 + length, ("a cut answer", stream[at:])
        pdu = stream[at + 7:at + 6 + length]
        function = pdu[0]
        if function & 0x80:
            assert len(pdu) == 2 and pdu[1] in EXCEPTION_CODES, ("bad exception answer", pdu)
        elif function in (1, 2, 3, 4):
            assert pdu[1] == len(pdu) - 2 and (function <= 2 or pdu[1] % 2 == 0), ("bad read answer", pdu)
        elif function in (5, 6, 15, 16):
            assert len(pdu) == 5, ("bad write answer", pdu)
        else:
            assert function == 0x2B, ("an answer with a function we never serve", pdu)
        answers.append((transaction, unit, function, pdu))
        at += 6 + length
    return answers


def test_fuzzed_frames_neither_crash_nor_leak_connections(tmp_path):
    rnd = random.Random(4)
    valid = [mbap(1, 20, rtu.read_request(3, 0xC558, 2)), mbap(2, 1, rtu.read_request(3, 0, 8)),
             mbap(3, 15, rtu.write_single_request(6, catalogue.IO_OUTPUT_REGISTER, 1)),
             mbap(4, 99, rtu.read_request(4, 0, 1)), mbap(5, 4, b"\x2b\x0e\x01\x00")]
    quiet = 1.0          # no byte for this long: every whole frame was answered (frame timeout: 0.2 s)

    def mutate(frame):
        data = bytearray(frame)
        for _ in range(rnd.randint(1, 4)):
            op = rnd.random()
            if op < 0.5 and data:
                data[rnd.randrange(len(data))] = rnd.randrange(256)
            elif op < 0.7:
                data = data[:rnd.randrange(len(data) + 1)]
            elif op < 0.9:
                data += bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
            else:
                data[4:6] = struct.pack(">H", rnd.randrange(0x10000))
        return bytes(data)

    async def scenario():
        async with Setup(tmp_path) as s:
            s.service.frame_timeout = 0.2
            sent = opened = answered = 0
            ends = collections.Counter()

            async def worker(n):
                nonlocal sent, opened, answered
                while sent < 10000:
                    reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
                    opened += 1
                    stream, received = b"", b""
                    try:
                        for _ in range(50):
                            frame = mutate(rnd.choice(valid))
                            stream += frame
                            writer.write(frame)
                            sent += 1
                        await writer.drain()
                        while True:                   # every answer, until the server closes or falls quiet
                            try:
                                chunk = await asyncio.wait_for(reader.read(65536), quiet)
                            except asyncio.TimeoutError:
                                end = "quiet"
                                break
                            if not chunk:
                                end = "closed"
                                break
                            received += chunk
                    except ConnectionError:
                        end = "reset"
                    finally:
                        writer.close()
                    ends[end] += 1
                    # Each answer is whole and well formed, and answers the request at its place in the
                    # stream (same transaction and unit, its function or the function's exception).
                    # The server answers whole frames one by one, up to a bad header, a cut frame or the end:
                    # answers were sent before it closed (a reset only drops what we had not sent yet).
                    requests, stop = whole_frames(stream)
                    answers = answers_in(received)
                    assert len(answers) == len(requests), (end, stop, answers, requests)   # none left out
                    for (transaction, unit, function, pdu), (asked, of, code) in zip(answers, requests):
                        assert (transaction, unit) == (asked, of) and function in (code, code | 0x80), (pdu, code)
                    answered += len(answers)
            await asyncio.gather(*[worker(n) for n in range(8)])
            await wait_for(lambda: len(s.service.connections) == 0, guard=30)
            stats = s.service.stats
            assert stats["accepted"] + stats["refused"] == opened        # every connection was served or refused
            assert stats["frames"] > 0 and stats["closed_bad_frame"] > 0  # the fuzz reached both paths
            assert answered == stats["frames"] > 0, (answered, stats, ends)    # every frame read was answered
            async with s.client() as client:
                rr = await client.read_holding_registers(0xC558, count=2, device_id=20)
                assert not rr.isError()
    asyncio.run(scenario())


def test_register_map_is_served_and_the_committed_copy_is_current(tmp_path):
    from protocols.modbus.regmap import as_csv, as_markdown
    from conftest import REPO
    import os
    with open(os.path.join(REPO, "docs", "modbus-register-map.md"), encoding="utf-8") as f:
        assert f.read() == as_markdown(), "regenerate: python -m tools.regmap --format md > docs/modbus-register-map.md"
    csv_text = as_csv()
    assert "0x1000,4096,2,u32,x100,V,v_sys" in csv_text
    assert ",heartbeat," in csv_text
    async def scenario():
        async with Setup(tmp_path) as s:
            content_type, render = s.gw.documents["modbus-register-map.csv"]
            assert content_type.startswith("text/csv") and render() == csv_text
    asyncio.run(scenario())


def test_idle_connections_are_closed_after_the_timeout(tmp_path):
    async def scenario():
        async with Setup(tmp_path, {"modbus.idle_timeout_s": 1}) as s:
            reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
            assert await asyncio.wait_for(reader.read(10), 10) == b""      # closed by the server
            writer.close()
            assert s.service.stats["closed_idle"] == 1
    asyncio.run(scenario())
