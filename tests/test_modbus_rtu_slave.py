"""The RS485 port as Modbus RTU slave, driven by independent RTU masters
(mbpoll in RTU mode, the pymodbus serial client) over a pty null-modem."""

import asyncio

from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu import ExceptionResponse

from board.base import ManualClock
from conftest import demo_devices, demo_topology, mbpoll, parse_mbpoll, running_gateway, wait_for
from core import catalogue
from core import modbus_rtu as rtu
from protocols.modbus.rtu_slave import RtuSlaveService

T0 = 1_700_000_000.0


def slave_topology():
    topo = demo_topology()
    topo["buses"]["rs485"] = {"upstream": True}
    return topo


def serial_client(path):
    client = ModbusSerialClient(path, baudrate=38400, parity="N", stopbits=1, timeout=2, retries=0)
    assert client.connect()
    return client


def test_rtu_master_reads_and_writes_through_the_slave_port(tmp_path):
    clock = ManualClock(T0)
    async def scenario():
        async with running_gateway(tmp_path / "s", slave_topology(),
                                   {"bus.rs485.mode": "slave", "bus.rs485.address": 7}, clock=clock,
                                   services=[RtuSlaveService]) as gw:
            service = gw.services[0]
            assert service.running and "rs485" not in gw.engines      # the port is not polled as master
            await gw.topology.replace([d for d in demo_devices() if d.bus == "digiware"])
            await wait_for(lambda: gw.pollers["digiware"].cycles >= 2, guard=30)
            peer = gw.board.peer_path("rs485")
            i35 = gw.board.find_meter(address=4)
            proc = await asyncio.to_thread(mbpoll, "-m", "rtu", "-b", 38400, "-P", "none", "-a", 4,
                                           "-r", catalogue.load_base(1) + 26, "-c", 8, peer)
            assert proc.returncode == 0, proc.stderr + proc.stdout
            got = parse_mbpoll(proc.stdout)
            start = catalogue.load_base(1) + 26
            assert [got[start + i] & 0xFFFF for i in range(8)] == i35.read_registers(start, 8)

            def master_session():
                client = serial_client(peer)
                try:
                    out = {}
                    rr = client.read_holding_registers(0x0000, count=16, device_id=7)   # the gateway itself
                    out["product"] = rtu.decode_string_norm(rr.registers[8:16])
                    try:
                        out["unknown"] = client.read_holding_registers(0x9003, count=2, device_id=99)
                    except ModbusIOException:
                        out["unknown"] = "no answer"
                    rr = client.write_register(catalogue.IO_OUTPUT_REGISTER, 1, device_id=15)
                    out["denied"] = rr
                    return out
                finally:
                    client.close()
            out = await asyncio.to_thread(master_session)
            assert out["product"] == "M-70"
            assert out["unknown"] == "no answer"            # not ours on a shared line: silence
            assert isinstance(out["denied"], ExceptionResponse) and out["denied"].exception_code == 0x01
            io10 = gw.board.find_meter(address=15)
            assert io10.outputs == 0
            await gw.settings.set_many({"policy.modbus_write": True})

            def write_allowed():
                client = serial_client(peer)
                try:
                    return client.write_register(catalogue.IO_OUTPUT_REGISTER + 1, 1, device_id=15)
                finally:
                    client.close()
            rr = await asyncio.to_thread(write_allowed)
            assert not rr.isError() and io10.outputs == 0b10
            assert service.stats["answers"] >= 4
    asyncio.run(scenario())


def test_bad_crc_and_garbage_on_the_slave_port_are_ignored(tmp_path):
    async def scenario():
        async with running_gateway(tmp_path / "s", slave_topology(), {"bus.rs485.mode": "slave"},
                                   services=[RtuSlaveService]) as gw:
            service = gw.services[0]
            peer = gw.board.peer_path("rs485")

            def session():
                import os, select, tty
                fd = os.open(peer, os.O_RDWR | os.O_NOCTTY)
                tty.setraw(fd)
                try:
                    bad = bytearray(rtu.request_frame(1, rtu.read_request(3, 0, 8)))
                    bad[-1] ^= 0xFF
                    os.write(fd, bytes(bad))
                    os.write(fd, b"\x01\x99garbage")
                    ready, _, _ = select.select([fd], [], [], 0.5)
                    silent = not ready
                    import time
                    time.sleep(0.05)
                    os.write(fd, rtu.request_frame(1, rtu.read_request(3, 0, 8)))
                    data = b""
                    for _ in range(40):
                        ready, _, _ = select.select([fd], [], [], 0.1)
                        if ready:
                            data += os.read(fd, 256)
                            if len(data) >= 21:
                                break
                    return silent, data
                finally:
                    os.close(fd)
            silent, data = await asyncio.to_thread(session)
            assert silent
            assert len(data) == 21 and rtu.check_crc(data) and data[:3] == b"\x01\x03\x10"
            assert service.stats["bad_crc"] >= 1
    asyncio.run(scenario())


def test_the_simulated_board_gives_a_slave_port_a_null_modem_instead_of_its_meters():
    import os
    from board.sim import SimBoard
    board = SimBoard(topology=demo_topology())
    try:
        assert board.peer_path("rs485") is None and board.find_meter(address=20) is not None
        held = len(os.listdir("/proc/self/fd"))
        board.serve_upstream("rs485")
        board.serve_upstream("rs485")                  # once is enough: a second call changes nothing
        peer = board.peer_path("rs485")
        assert peer.startswith("/dev/pts/") and peer != board.port_path("rs485")
        assert "rs485" not in board.buses
        assert board.find_meter(address=20) is None and board.find_meter(address=21) is None
        assert board.find_meter(address=4) is not None and board.peer_path("digiware") is None
        # the line's pty pair is closed, the null-modem holds two pairs
        assert len(os.listdir("/proc/self/fd")) == held - 2 + 4
    finally:
        board.close()
