"""Crashed services restart; the heartbeat kicks the watchdog and systemd."""

import asyncio
import socket

from conftest import running_gateway, topology_with, wait_for
from daemon import sdnotify
from daemon.supervise import Supervised


def test_a_crashing_task_is_restarted_with_backoff_and_counted():
    async def scenario():
        runs = []

        async def body():
            runs.append(1)
            if len(runs) < 3:
                raise RuntimeError("boom %d" % len(runs))
            await asyncio.sleep(3600)

        task = Supervised("flaky", body, first_backoff=0.01)
        task.start()
        await wait_for(lambda: len(runs) >= 3)
        assert len(runs) == 3 and task.restarts == 2 and "boom 2" in task.last_error
        await task.stop()
    asyncio.run(scenario())


def test_a_poller_crash_does_not_stop_polling(tmp_path):
    topo = topology_with([{"reference": "IO-10", "address": 15, "netid": "C0E45D"}])
    async def scenario():
        async with running_gateway(tmp_path / "s", topo) as gw:
            await gw.topology.replace([])
            poller = gw.pollers["digiware"]
            original = poller._sync_topology
            calls = []

            def crash_once():
                calls.append(1)
                if len(calls) == 1:
                    raise RuntimeError("injected")
                return original()
            poller._sync_topology = crash_once
            from daemon.state.topology import Device
            await gw.topology.replace([Device("digiware", 15, "IO-10", "C0E45D")])
            await wait_for(lambda: poller.device_cycles[15] >= 2)
            assert poller.status()["restarts"] == 1
    asyncio.run(scenario())


def test_heartbeat_kicks_watchdog_and_notifies_systemd(tmp_path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    async def scenario():
        async with running_gateway(tmp_path / "s", topology_with()) as gw:
            await wait_for(lambda: gw.board.watchdog_kicks >= 1)
    asyncio.run(scenario())
    messages = set()
    sock.setblocking(False)
    while True:
        try:
            messages.add(sock.recv(100).decode())
        except BlockingIOError:
            break
    sock.close()
    assert {"READY=1", "WATCHDOG=1", "STOPPING=1"} <= messages
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert sdnotify.notify("READY=1") is False


def test_a_stop_that_lands_with_the_answer_bytes_still_stops_the_bus():
    """engine.stop()'s cancel in the loop turn where the answer arrives (asyncio.wait_for lost it on 3.11,
    CPython gh-86296): the bus task must end, or gateway.stop() waits forever."""
    from board.sim import SimBoard
    from conftest import demo_topology
    from core import meter_events as ev, modbus_rtu as rtu
    from daemon.runtime.bus import POLL, BusEngine

    async def scenario():
        board = SimBoard(topology=demo_topology())
        engine = BusEngine("digiware", board.open_port("digiware", 38400, "N", 1))
        engine.start()
        loop, real, stopping = asyncio.get_running_loop(), engine._on_readable, []

        def on_readable():
            real()
            if engine._rx and not stopping:           # the first answer bytes are in: the gateway stops now
                stopping.append(loop.create_task(engine.stop()))
        loop.remove_reader(engine._fd)
        loop.add_reader(engine._fd, on_readable)
        engine.submit(5, rtu.read_request(rtu.READ_HOLDING, ev.HEADER, ev.HEADER_WORDS), POLL)
        await wait_for(lambda: stopping)
        done, _ = await asyncio.wait(stopping, timeout=5)
        if not done:                                      # a second cancel lets the lost one be cleaned up
            engine._task._task.cancel()
            await stopping[0]
        await asyncio.to_thread(board.close)
        assert done, "engine.stop() never returned: the bus task lost its cancellation"
    asyncio.run(scenario())
