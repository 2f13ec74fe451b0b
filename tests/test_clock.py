"""One clock: after a time synchronization every path out of the gateway tells the new time.

The demo gateway runs BACnet/IP, Modbus TCP and the web server on the
simulated board; the independent Node.js BACnet client sends a
UTCTimeSynchronization one day ahead, then the gateway's time is read back
over independent paths: BACnet (the gateway Device's Local_Date and
Local_Time), the web (/api/status gateway.time), the event log (/api/events,
an alarm raised after the synchronization) and Modbus TCP (the gateway
table's time registers 0x0022-0x0023, read by mbpoll). The simulated meters
are devices of their own: their clocks stay where they were. The daemon's
log lines carry the synchronized time too.
"""

import asyncio
import calendar
import logging
import signal
import time

import pytest
from bacnet_support import MAIN, NodeBacnet  # noqa: I001 (first: it puts tests/bacnet on the path)
from bacnet_peer import rpm_values
from conftest import (DEMO_TOPOLOGY, demo_devices, demo_topology, free_udp_port, http_json, mbpoll,
                      parse_mbpoll, running_gateway, start_daemon, wait_for, wait_until, web_server)

from board.base import ManualClock, OffsetClock, SystemClock
from board.sim import SimBoard
from daemon.__main__ import log_on_gateway_time
from daemon.gateway import Gateway
from protocols.bacnet import BacnetService
from protocols.modbus.tcp import ModbusTcpService

T0 = 1_700_000_000.0
DAY = 86400
EPOCH_2000 = calendar.timegm((2000, 1, 1, 0, 0, 0))       # the gateway table counts from 2000-01-01 UTC
DEVICE, LOCAL_DATE, LOCAL_TIME = 8, 56, 57
UTC_OFFSET_MIN = 60                                        # the site is UTC+1: BACnet serves local time
U30_NETID, U30_SOURCE = 0xD5038A, "digiware:11"
METER_CLOCK = 0xE100                                       # a meter's date/time: D, M, Y, h, m, s
CLOSE_S = 3.0


def iso_utc(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


async def tells_the_time(read, expected):
    """``read()`` (a path out of the gateway) tells the ``expected()`` time: between the times before and after
    the read (a second either side: Modbus counts whole seconds)."""
    low = expected()
    told = await read()
    high = expected()
    assert low - 1.0 <= told <= high + 1.0, (told, low, high)


def bacnet_local_time(dev):
    """Unix time of a Device's Local_Date + Local_Time as the Node client renders them (local, UTC+1)."""
    date, = dev[LOCAL_DATE]                 # "2023-11-15T00:00:00.000Z"
    clock, = dev[LOCAL_TIME]                # "1900-01-01T23:13:20.000Z"
    day = calendar.timegm(time.strptime(date[:10], "%Y-%m-%d"))
    hours, minutes, seconds = clock[11:19].split(":")
    local = day + int(hours) * 3600 + int(minutes) * 60 + float(seconds) + float("0" + clock[19:23])
    return local - UTC_OFFSET_MIN * 60


@pytest.mark.parametrize("kind", ["system-clock", "manual-clock"])
def test_a_time_synchronization_moves_the_time_of_every_path_but_not_the_meters(tmp_path, kind):
    injected = ManualClock(T0) if kind == "manual-clock" else None       # a test's clock, or none
    base = injected or SystemClock()          # the hardware clock: the meters keep it
    # every server binds port 0 and tells the port it got
    settings = {"bacnet.enabled": True, "bacnet.port": 0, "bacnet.bind": "127.0.0.1", "bacnet.time_sync": True,
                "time.utc_offset_min": UTC_OFFSET_MIN, "modbus.port": 0, "modbus.bind": "127.0.0.1"}
    http = web_server()

    async def scenario():
        async with running_gateway(tmp_path / "state", demo_topology(), settings, clock=injected,
                                   services=[BacnetService, ModbusTcpService, http]) as gw:
            await gw.topology.replace(demo_devices())
            await wait_for(lambda: all(p.cycles >= 2 for p in gw.pollers.values()), guard=30)
            bacnet, modbus = gw.services[0], gw.services[1]
            await wait_for(lambda: bacnet.stack is not None and bacnet.stack.settled() and modbus.running)
            gateway = {"address": "127.0.0.1:%d" % bacnet.port}
            modbus_port = modbus.status()["port"]
            web = "http://127.0.0.1:%d" % http.server.port
            async with NodeBacnet(free_udp_port()) as node:     # the Node client cannot bind 0: a picked port
                target = int(base.time()) + DAY
                base_at_sync = base.time()
                await node.call("timeSyncUTC", target=gateway, iso=iso_utc(target))
                await wait_for(lambda: bacnet.site.counters.get("time_sync_applied") == 1)

                def synchronized():
                    """The gateway's time now if the synchronization took: target, run on with the hardware."""
                    return target + (base.time() - base_at_sync)

                async def read_bacnet():
                    answer = await node.call("rpm", target=gateway, specs=[
                        {"type": DEVICE, "instance": MAIN, "properties": [LOCAL_DATE, LOCAL_TIME]}])
                    return bacnet_local_time(rpm_values(answer)[(DEVICE, MAIN)])
                # BACnet, the independent client: the gateway Device's Local_Date / Local_Time
                await tells_the_time(read_bacnet, synchronized)

            # the web: /api/status gateway.time over HTTP
            async def read_web():
                code, status = await asyncio.to_thread(http_json, web + "/api/status")
                assert code == 200
                return status["gateway"]["time"]
            await tells_the_time(read_web, synchronized)

            # Modbus TCP, mbpoll: the gateway table (unit 255) time, u32 big-endian at 0x0022
            async def read_modbus():
                proc = await asyncio.to_thread(mbpoll, "-m", "tcp", "-p", modbus_port, "-a", 255, "-t", "4:int",
                                               "-B", "-r", 0x0022, "-c", 1, "127.0.0.1")
                assert proc.returncode == 0, proc.stderr
                return parse_mbpoll(proc.stdout)[0x0022] + EPOCH_2000
            await tells_the_time(read_modbus, synchronized)

            # the event log (/api/events): an alarm raised now is stamped with the synchronized time
            await wait_for(lambda: (3, U30_SOURCE) not in gw.alarms.active, guard=30)   # a busy machine's blip
            code, body = await asyncio.to_thread(http_json, web + "/api/events")
            assert code == 200
            known = len(body["events"])
            assert known < 500                                       # /api/events: the newest 500

            async def read_event():
                gw.board.configure_meter(U30_NETID, silent=True)
                await wait_for(lambda: (3, U30_SOURCE) in gw.alarms.active)
                code, body = await asyncio.to_thread(http_json, web + "/api/events")
                raised = [e for e in body["events"][known:] if e["event"] == "raised" and e["source"] == U30_SOURCE]
                assert code == 200 and len(raised) == 1, body["events"][known:]
                return raised[0]["ts"]
            await tells_the_time(read_event, synchronized)

            # the meters are devices of their own: the I-35's clock (its date/time registers, read through
            # the gateway with mbpoll) still tells the hardware time
            async def read_meter_clock():
                proc = await asyncio.to_thread(mbpoll, "-m", "tcp", "-p", modbus_port, "-a", 4,
                                               "-r", METER_CLOCK, "-c", 6, "127.0.0.1")
                assert proc.returncode == 0, proc.stderr
                words = parse_mbpoll(proc.stdout)
                day, month, year, hour, minute, second = (words[METER_CLOCK + i] for i in range(6))
                return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
            await tells_the_time(read_meter_clock, base.time)
            assert abs(gw.board.time_offset - DAY) < CLOSE_S
    asyncio.run(scenario())


def test_the_gateway_reads_the_board_clock_over_an_injected_one(tmp_path):
    clock = ManualClock(T0)

    async def scenario():
        async with running_gateway(tmp_path / "state", demo_topology(), clock=clock) as gw:
            assert gw.clock is gw.board.clock and gw.clock.base is clock
            gw.set_time(T0 + DAY)
            assert gw.clock.time() == T0 + DAY and gw.clock.monotonic() == clock.monotonic()
            clock.advance(10)                                   # the time runs on from there
            assert gw.clock.time() == T0 + DAY + 10 and gw.board.find_meter(address=4).clock.time() == T0 + 10
    asyncio.run(scenario())
    board = SimBoard(clock=clock)
    try:
        with pytest.raises(ValueError):                         # a gateway on another clock than its board's
            Gateway(board, str(tmp_path / "other"), clock=ManualClock(T0))
    finally:
        board.close()


def test_log_records_carry_the_gateway_time_when_it_is_not_the_system_clock():
    previous = logging.getLogRecordFactory()
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.created, self.format(record)))

    logger = logging.getLogger("test_clock")
    handler = Keep()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    try:
        log_on_gateway_time(SystemClock())                       # a Pi: the system clock, nothing to do
        assert logging.getLogRecordFactory() is previous
        clock = OffsetClock(SystemClock())
        log_on_gateway_time(clock)
        log_on_gateway_time(clock)                               # run() again: still one layer
        assert logging.getLogRecordFactory().system_factory is previous
        logger.warning("before")
        clock.set(time.time() + DAY)
        logger.warning("after")
    finally:
        logging.setLogRecordFactory(previous)
        logger.removeHandler(handler)
        logger.propagate = True
    (before, _), (after, line) = records
    assert abs(before - time.time()) < CLOSE_S
    assert abs(after - (time.time() + DAY)) < CLOSE_S
    assert line.startswith(time.strftime("%Y-%m-%d %H:%M", time.localtime(after)))


def logged_at(line):
    """Unix time of a log line's asctime ("2030-01-02 04:04:05,123 INFO ...", local time)."""
    stamp, _, millis = line[:23].partition(",")
    return time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) + int(millis) / 1000.0


def test_the_daemon_logs_on_the_synchronized_time(tmp_path):
    proc = start_daemon(tmp_path / "state", "--board", "sim", "--topology", DEMO_TOPOLOGY,
                        "--set", "bacnet.enabled=true", "--bacnet-port", "0", "--set", "bacnet.time_sync=true",
                        "--set", "bacnet.bind=127.0.0.1", log_level="info")
    status_url = proc.base + "/api/status"
    try:
        def bacnet_running():
            state = http_json(status_url)[1]["services"]["bacnet"]
            return state if state.get("running") else None
        bacnet_port = wait_until(bacnet_running, guard=30)["port"]      # bound to 0, reported in /api/status
        target = int(time.time()) + DAY
        sent_at = time.monotonic()

        async def synchronize():
            async with NodeBacnet(free_udp_port()) as node:     # the Node client cannot bind 0: a picked port
                await node.call("timeSyncUTC", target={"address": "127.0.0.1:%d" % bacnet_port}, iso=iso_utc(target))
        asyncio.run(synchronize())
        wait_until(lambda: http_json(status_url)[1]["gateway"]["time"] >= target, guard=10)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
        stopped_at = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    synced = [line for line in err.splitlines() if "clock set by BACnet UTC time synchronization" in line]
    stopping = [line for line in err.splitlines() if line.endswith("gateway: stopping")]
    assert len(synced) == 1 and len(stopping) == 1, err
    for line in synced + stopping:           # logged after the synchronization: on the synchronized time
        assert target - 1 <= logged_at(line) <= target + (stopped_at - sent_at) + 1, line
