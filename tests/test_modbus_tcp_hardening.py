"""Modbus TCP under a hostile or greedy client (issue 13): pipelining, unread answers, hoarding, lying lengths.

Nothing here measures seconds: fairness is shown by the order in which answers came and by turns of the
loop, bounds by counts (frames, bytes, connections, requests queued on a bus).
"""

import asyncio
import socket
import struct

from conftest import wait_for
from core import modbus_rtu as rtu
from protocols.modbus.tcp import MAX_LENGTH, READ_BUFFER_BYTES, WRITE_BUFFER_HIGH
from test_modbus_tcp import Setup, connect_from, exchange_on, mbap, read_answer

PIPELINED = 3000
GATEWAY_READ = rtu.read_request(3, 0, 8)                # 8 registers of the gateway table: always answered at once


# the whole gateway table, its device counts included: every device's summary per read (~2.5 ms for the
# demo's meters), the costly read a greedy client can hold the loop with
WHOLE_TABLE = rtu.read_request(3, 0, 0x24)


def gateway_answer(transaction, registers=8):
    return struct.pack(">HHHBBB", transaction, 0, 3 + 2 * registers, 255, 3, 2 * registers)


async def read_answers(reader, count, received):
    for _ in range(count):
        received.append(await read_answer(reader, guard=60))


def test_a_pipeline_is_served_one_frame_per_turn_and_another_client_in_between(tmp_path):
    """3,000 reads in one send: a ticker that runs once per turn of the loop sees at most one frame of each
    connection served between two of its ticks (a span may hold the end of one turn and the start of the
    next: at most 2 x 2 frames), a second client is answered many times before the last pipelined answer,
    and every pipelined read is answered, in order, its transaction id echoed."""
    async def scenario():
        async with Setup(tmp_path) as s:
            seen = []

            async def ticker():
                while True:
                    seen.append(s.service.stats["frames"])
                    await asyncio.sleep(0)

            reader, writer = await connect_from(s.port, "127.0.0.2")
            other = await connect_from(s.port, "127.0.0.3")
            ticking = asyncio.create_task(ticker())
            writer.write(b"".join(mbap(i, 255, GATEWAY_READ) for i in range(PIPELINED)))
            received, others = [], 0
            pipeline = asyncio.create_task(read_answers(reader, PIPELINED, received))
            while not pipeline.done():
                answer = await exchange_on(*other, mbap(others & 0xFFFF, 1, GATEWAY_READ))
                assert answer[:2] == struct.pack(">H", others & 0xFFFF) and answer[7] == 3
                others += 1
            await pipeline
            ticking.cancel()
            assert others >= 20, "the other client waited for the whole pipeline"
            most = max(b - a for a, b in zip(seen, seen[1:]))
            assert most <= 4, "%d frames served within one turn of the loop" % most
            assert [answer[:9] for answer in received] == [gateway_answer(i) for i in range(PIPELINED)]
            for w in (writer, other[1]):
                w.close()
    asyncio.run(scenario())


def test_pass_through_requests_are_one_in_flight_per_connection(tmp_path):
    """Three connections pipeline 40 reads each that only the meter can answer: the bus never has more than
    one of each connection's queued, the server holds at most READ_BUFFER_BYTES of any connection's input,
    and every read is answered, in order."""
    count = 40

    async def scenario():
        async with Setup(tmp_path) as s:
            engine = s.gw.engines["rs485"]
            meter = s.gw.board.find_meter(address=21)
            before = meter.requests
            queued, buffered = [0], [0]

            async def watch():
                while True:
                    queued[0] = max(queued[0], engine.queued()["passthrough"])
                    buffered[0] = max([buffered[0]] + [len(conn.buffer) for conn in s.service.connections])
                    await asyncio.sleep(0)

            watching = asyncio.create_task(watch())
            # the meter's settings (0xE000, 3 words): neither polled nor fixed (the identification block is
            # answered from the words learnt once, issue 19), so every read goes to the meter
            frames = b"".join(mbap(i, 21, rtu.read_request(3, 0xE000, 3)) for i in range(count))
            clients = [await connect_from(s.port, "127.0.0.%d" % (2 + i)) for i in range(3)]
            for _, writer in clients:
                writer.write(frames)
            results = [[] for _ in clients]
            await asyncio.wait_for(asyncio.gather(*[read_answers(reader, count, out)
                                                    for (reader, _), out in zip(clients, results)]), 120)
            watching.cancel()
            for out in results:
                assert [answer[:2] for answer in out] == [struct.pack(">H", i) for i in range(count)]
                assert all(answer[7:9] == b"\x03\x06" for answer in out)         # 3 words, the meter's
            assert meter.requests - before >= 3 * count                   # each one went to the meter
            assert queued[0] <= 3, queued                                  # not 3 x 40
            assert buffered[0] <= READ_BUFFER_BYTES
            for _, writer in clients:
                writer.close()
    asyncio.run(scenario())


BIG_READ = rtu.read_request(3, 0x0100, 125)             # 125 registers of the gateway table: 259-byte answers
BIG_ANSWER = 259


async def unread_client(service, frames):
    """A socket from 127.0.0.2 with small kernel buffers at both ends (the server's fixed at 4 KiB: no
    autotuning to megabytes) that sends ``frames`` and reads nothing yet; (socket, the server's socket)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind(("127.0.0.2", 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", service.status()["port"]))
    await wait_for(lambda: any(conn.transport for conn in service.connections if conn.ip == "127.0.0.2"))
    [server_side] = [conn.transport.get_extra_info("socket") for conn in service.connections]
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    await asyncio.get_running_loop().sock_sendall(sock, frames)
    return sock, server_side


def test_a_client_that_does_not_read_is_not_served_further_then_gets_everything_in_order(tmp_path):
    """2,000 reads with 259-byte answers pipelined, the answers not read: while another client is served 1,000
    times, the server has produced no more answers than the two sockets' buffers and WRITE_BUFFER_HIGH hold
    (and 64 KiB of slack). Once read, every answer arrives, in order."""
    count = 2000

    async def scenario():
        async with Setup(tmp_path, {"modbus.idle_timeout_s": 3600}) as s:
            sock, server_side = await unread_client(s.service, b"".join(mbap(i, 255, BIG_READ) for i in range(count)))
            other = await connect_from(s.port, "127.0.0.3")
            for i in range(1000):
                assert (await exchange_on(*other, mbap(i, 255, GATEWAY_READ)))[:9] == gateway_answer(i)
            produced = s.service.stats["frames"] - 1000
            kernel = (server_side.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                      + sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))      # both as the kernel counts
            bound = (kernel + WRITE_BUFFER_HIGH + 65536) // BIG_ANSWER + 2      # + slack for the kernel's ways
            data, loop = b"", asyncio.get_running_loop()
            while len(data) < count * BIG_ANSWER:
                data += await asyncio.wait_for(loop.sock_recv(sock, 65536), 60)
            assert len(data) == count * BIG_ANSWER
            for i in range(count):
                at = i * BIG_ANSWER
                assert data[at:at + 9] == struct.pack(">HHHBBB", i, 0, BIG_ANSWER - 6, 255, 3, 250), i
            sock.close()
            other[1].close()
            return produced, bound

    produced, bound = asyncio.run(scenario())
    assert produced <= bound < count // 4, (produced, bound)


def test_a_client_that_never_reads_is_closed_after_the_idle_timeout(tmp_path):
    """Answers piled up and never read: the connection is aborted once ``modbus.idle_timeout_s`` is over."""
    async def scenario():
        async with Setup(tmp_path, {"modbus.idle_timeout_s": 1}) as s:
            sock, _ = await unread_client(s.service, b"".join(mbap(i, 255, BIG_READ) for i in range(2000)))
            await wait_for(lambda: s.service.stats["closed_stalled"] == 1, guard=60)
            await wait_for(lambda: len(s.service.connections) == 0)
            sock.close()
            assert s.service.stats["closed_idle"] == 0
    asyncio.run(scenario())


def test_one_address_cannot_take_every_slot(tmp_path):
    """Idle connections beyond an address's cap close its own oldest (a host that rebooted gets back in); a
    newcomer from another address into a full server is refused (SPEC §3.1) and closes nobody's connection;
    once a place is free it gets in."""
    async def scenario():
        async with Setup(tmp_path, {"modbus.max_connections": 8}) as s:
            s.service.max_per_address = 4
            s.service.frame_timeout = 3600
            hoard = []
            for address in ("127.0.0.2", "127.0.0.3"):
                for i in range(6):
                    conn = await connect_from(s.port, address)
                    assert (await exchange_on(*conn, mbap(i, 255, GATEWAY_READ)))[:9] == gateway_answer(i)
                    hoard.append(conn)
            stats = s.service.stats
            assert len(s.service.connections) == 8 and stats["evicted"] == 4      # 4 per address kept
            for reader, _ in hoard[:2] + hoard[6:8]:        # each address's two oldest went first
                assert await asyncio.wait_for(reader.read(10), 20) == b""
            hoard[5][1].write(mbap(1, 255, GATEWAY_READ)[:3])       # one is busy: a request under way
            await wait_for(lambda: s.service.status()["connections_idle"] == 7)
            refused = await connect_from(s.port, "127.0.0.4")      # the server is full
            assert await asyncio.wait_for(refused[0].read(10), 20) == b""
            refused[1].close()
            assert stats["evicted"] == 4 and stats["refused"] == 1
            hoard[5][1].write(mbap(1, 255, GATEWAY_READ)[3:])
            assert (await read_answer(hoard[5][0]))[:9] == gateway_answer(1)
            for conn in hoard[2:5] + hoard[8:]:                     # every kept connection still served
                assert (await exchange_on(*conn, mbap(5, 255, GATEWAY_READ)))[:9] == gateway_answer(5)
            hoard[2][1].close()
            await wait_for(lambda: len(s.service.connections) == 7)
            newcomer = await connect_from(s.port, "127.0.0.4")     # a place is free
            assert (await exchange_on(*newcomer, mbap(77, 255, GATEWAY_READ)))[:9] == gateway_answer(77)
            for _, w in hoard + [newcomer]:
                w.close()
            await wait_for(lambda: len(s.service.connections) == 0)
    asyncio.run(scenario())


def test_a_length_that_lies_holds_one_frame_and_only_for_the_frame_timeout(tmp_path):
    """A header announcing 254 bytes followed by fewer: the server keeps at most one frame's bytes, answers
    nothing, and closes the connection once the frame timeout is over; others are served meanwhile."""
    async def scenario():
        async with Setup(tmp_path) as s:
            s.service.frame_timeout = 0.5
            reader, writer = await connect_from(s.port, "127.0.0.2")
            writer.write(struct.pack(">HHHB", 1, 0, MAX_LENGTH, 255) + rtu.read_request(3, 0, 8) + b"\0" * 100)
            await wait_for(lambda: any(conn.buffer for conn in s.service.connections))
            assert [len(conn.buffer) for conn in s.service.connections if conn.buffer] == [7 + 5 + 100]
            other = await connect_from(s.port, "127.0.0.3")
            assert (await exchange_on(*other, mbap(3, 255, GATEWAY_READ)))[:9] == gateway_answer(3)
            assert await asyncio.wait_for(reader.read(100), 20) == b""          # closed, nothing answered
            assert s.service.stats["closed_bad_frame"] == 1
            for w in (writer, other[1]):
                w.close()
    asyncio.run(scenario())


def test_frames_sent_before_the_client_half_closes_are_all_answered(tmp_path):
    """A client writes 200 frames and shuts its side down: it still gets 200 answers, then the server closes."""
    async def scenario():
        async with Setup(tmp_path) as s:
            reader, writer = await connect_from(s.port, "127.0.0.2")
            writer.write(b"".join(mbap(i, 255, GATEWAY_READ) for i in range(200)))
            writer.write_eof()
            received = []
            await read_answers(reader, 200, received)
            assert [answer[:9] for answer in received] == [gateway_answer(i) for i in range(200)]
            assert await asyncio.wait_for(reader.read(10), 20) == b""
            writer.close()
            await wait_for(lambda: len(s.service.connections) == 0)
    asyncio.run(scenario())


def test_greedy_clients_are_held_to_a_share_of_the_loop_while_the_buses_poll(tmp_path):
    """16 closed-loop clients from four hosts read the whole gateway table back to back while both buses complete
    three more poll cycles: the server holds them to its share of the loop (turns waited for credit), and
    every read is answered, in order."""
    async def scenario():
        async with Setup(tmp_path) as s:
            pollers = list(s.gw.pollers.values())
            goal = [poller.cycles + 3 for poller in pollers]
            done = asyncio.Event()
            answered = [0]

            async def greedy(i):
                conn = await connect_from(s.port, "127.0.0.%d" % (2 + i % 4))
                transaction = 0
                while not done.is_set():
                    transaction = (transaction + 1) & 0xFFFF
                    assert (await exchange_on(*conn, mbap(transaction, 255, WHOLE_TABLE)))[:9] == \
                        gateway_answer(transaction, 0x24)
                    answered[0] += 1
                conn[1].close()

            clients = asyncio.gather(*[greedy(i) for i in range(16)])
            await wait_for(lambda: all(p.cycles >= g for p, g in zip(pollers, goal)), guard=120)
            done.set()
            await clients
            assert answered[0] > 0 and s.service.status()["turns_deferred"] > 0
    asyncio.run(scenario())
