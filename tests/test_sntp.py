"""SNTP (issue 16): the client against a real NTP server (chronyd from Debian) and hostile ones, the gateway's
clock set through the door, the simulated meters' clocks set after it, alarm 2 raised and cleared.

The packets the tests' own servers send are built here from RFC 5905's layout (figure 8), not with the client's
helpers; chronyd is the peer that checks our requests.
"""

import asyncio
import calendar
import contextlib
import datetime
import os
import socket
import struct
import subprocess
import time

import pytest

from board.base import ManualClock
from conftest import free_udp_port, polled, running_gateway, topology_with, wait_for
from core import catalogue, modbus_rtu as rtu
from daemon.api import OFF, RIGHTS, Refused
from daemon.runtime import clocks
from daemon.security.rights import Caller
from daemon.state.topology import devices_from_simulation
from daemon.storage.format import Geometry
from daemon.storage.store import Q_CLOCK_NOT_SET, Q_VALID
from outbound.sntp import client
from outbound.sntp.service import RETRY_MAX_S, SntpService, retry_delay

CHRONYD = "/usr/sbin/chronyd"
NTP_EPOCH = 2208988800            # 1900-01-01 -> 1970-01-01 (RFC 868)
THREE_HOURS = 3 * 3600.0

needs_chronyd = pytest.mark.skipif(not os.access(CHRONYD, os.X_OK), reason="chrony (Debian) is not installed")


# ---------------------------------------------------------------- servers the tests start


class Chronyd:
    """chronyd as an NTP server on a loopback UDP port: its own local clock at stratum 8, the system clock
    untouched (-x), in the foreground (-d), no command port; as root it keeps root (-u root), else -U."""

    def __init__(self, directory, port):
        self.directory, self.port, self.proc = str(directory), port, None
        os.makedirs(self.directory, exist_ok=True)
        self.conf = os.path.join(self.directory, "chrony.conf")
        with open(self.conf, "w") as handle:
            handle.write("port %d\nbindaddress 127.0.0.1\nlocal stratum 8\nallow 127.0.0.1\ncmdport 0\n"
                         "pidfile %s/chronyd.pid\ndriftfile %s/drift\n" % (port, self.directory, self.directory))

    def start(self):
        user = ["-u", "root"] if os.geteuid() == 0 else ["-U"]
        log = os.path.join(self.directory, "chronyd.log")
        with open(log, "ab") as output:                     # the child keeps its own descriptor
            self.proc = subprocess.Popen([CHRONYD, "-f", self.conf, "-d", "-x"] + user, stdout=output,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:                  # answering: a plain exchange goes through
            if self.proc.poll() is not None:
                with open(log) as text:
                    raise AssertionError("chronyd stopped: %s" % text.read())
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:    # blocking: the harness's own
                probe.settimeout(0.2)
                request = bytes([0x23]) + bytes(39) + os.urandom(8)
                try:
                    probe.sendto(request, ("127.0.0.1", self.port))
                    if probe.recv(512)[24:32] == request[40:48]:
                        return self
                except OSError:
                    time.sleep(0.1)
        raise AssertionError("chronyd did not answer")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


def ntp_stamp(unix_time):
    seconds = int(unix_time)
    return struct.pack("!II", (seconds + NTP_EPOCH) & 0xFFFFFFFF, int((unix_time - seconds) * 2 ** 32))


def server_answer(request, leap=0, version=4, mode=4, stratum=2, refid=b"\x7f\x00\x00\x01", origin=None,
                  receive=None, transmit=None, now=None):
    """An answer laid out as RFC 5905 figure 8: LI VN Mode, stratum, poll, precision, root delay, root
    dispersion, reference id, reference, originate (the request's transmit), receive, transmit timestamps."""
    now = time.time() if now is None else now
    head = struct.pack("!BBbb", (leap << 6) | (version << 3) | mode, stratum, 6, -20)
    return (head + struct.pack("!II", 0, 0) + refid + ntp_stamp(now - 10) +
            (request[40:48] if origin is None else origin) +
            (ntp_stamp(now) if receive is None else receive) + (ntp_stamp(now) if transmit is None else transmit))


# what a hostile server does with a request: the datagrams it sends back
HOSTILE = {
    "kiss_rate": lambda r: [server_answer(r, stratum=0, refid=b"RATE")],
    "stratum_16": lambda r: [server_answer(r, stratum=16)],
    "leap_alarm": lambda r: [server_answer(r, leap=3)],
    "wrong_mode": lambda r: [server_answer(r, mode=3)],
    "broadcast_mode": lambda r: [server_answer(r, mode=5)],
    "version_2": lambda r: [server_answer(r, version=2)],
    "wrong_origin": lambda r: [server_answer(r, origin=os.urandom(8))],
    "truncated": lambda r: [server_answer(r)[:40]],
    "zero_transmit": lambda r: [server_answer(r, transmit=bytes(8))],
    "silent": lambda r: [],
    "flood": lambda r: [server_answer(r, origin=os.urandom(8)) for _ in range(200)],
    "hour_round_trip": lambda r: [server_answer(r, receive=ntp_stamp(time.time() - 3600))],
    "year_2000": lambda r: [server_answer(r, now=946684800.0)],
}
EXPECTED = {"kiss_rate": (client.KISS, {"code": "RATE"}), "stratum_16": (client.UNSYNCHRONISED, {"stratum": 16}),
            "leap_alarm": (client.LEAP_ALARM_CODE, {}), "wrong_mode": (client.BAD_MODE, {"mode": 3}),
            "broadcast_mode": (client.BAD_MODE, {"mode": 5}), "version_2": (client.BAD_VERSION, {"version": 2}),
            "wrong_origin": (client.WRONG_ORIGIN, {}), "truncated": (client.TRUNCATED, {"size": 40}),
            "zero_transmit": (client.ZERO_TIMESTAMP, {}), "silent": (client.NO_ANSWER, {}),
            "flood": (client.WRONG_ORIGIN, {}), "hour_round_trip": (client.BAD_DELAY, {}),
            "year_2000": (client.IMPLAUSIBLE, {"time": "2000-01-01T00:00:00Z"})}


class ScriptedServer(asyncio.DatagramProtocol):
    """A UDP server on loopback that answers as ``behaviour`` says (a HOSTILE key, or "good")."""

    def __init__(self, behaviour="good"):
        self.behaviour = behaviour
        self.requests = []

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.requests.append(data)
        answers = [server_answer(data)] if self.behaviour == "good" else HOSTILE[self.behaviour](data)
        for answer in answers:
            self.transport.sendto(answer, addr)


async def scripted_server(behaviour="good"):
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(lambda: ScriptedServer(behaviour),
                                                            local_addr=("127.0.0.1", 0))
    return transport, server, transport.get_extra_info("sockname")[1]


# ---------------------------------------------------------------- the client alone


def test_ntp_timestamps_follow_the_rfc_eras():
    """RFC 868/5905: 1970-01-01 is NTP second 2208988800 of era 0; era 1 starts 2036-02-07 06:28:16 UTC, when
    the seconds wrap (RFC 4330 §3: a timestamp with the top bit clear is in era 1)."""
    assert client.ntp_to_unix(2208988800, 0) == 0
    era1 = datetime.datetime(2036, 2, 7, 6, 28, 16, tzinfo=datetime.UTC).timestamp()
    assert client.ntp_to_unix(0, 0) == era1
    assert client.ntp_to_unix(0xFFFFFFFF, 1 << 31) == era1 - 0.5
    now = time.time()
    assert abs(client.ntp_to_unix(*client.unix_to_ntp(now)) - now) < 1e-6
    assert client.unix_to_ntp(era1 + 5) == (5, 0)
    packet = client.request_packet(b"12345678")
    assert len(packet) == 48 and packet[0] == 0x23 and packet[40:] == b"12345678" and not any(packet[1:40])


@needs_chronyd
def test_the_client_reads_chronyds_time_and_its_offset_to_a_wrong_clock(tmp_path):
    server = Chronyd(tmp_path / "chrony", free_udp_port()).start()
    try:
        right = asyncio.run(client.query("127.0.0.1", server.port, time.time))
        late = asyncio.run(client.query("127.0.0.1", server.port, lambda: time.time() - THREE_HOURS))
        named = asyncio.run(client.query("localhost", server.port, time.time))
    finally:
        server.stop()
    for answer in (right, named):                 # chronyd's clock is the system clock (-x: it does not steer it)
        assert abs(answer.offset) < 0.1 and answer.stratum == 8 and answer.leap == 0 and answer.version == 4
    assert abs(late.offset - THREE_HOURS) < 0.1
    assert right.refid == "127.127.1.1"           # chrony's reference id for its "local" source
    assert 0 <= right.delay < 0.1 and named.server in ("127.0.0.1", "::1")


@pytest.mark.parametrize("behaviour", sorted(HOSTILE))
def test_a_hostile_answer_is_refused_with_its_reason_within_the_tries(behaviour):
    code, params = EXPECTED[behaviour]

    async def scenario():
        transport, server, port = await scripted_server(behaviour)
        try:
            with pytest.raises(client.SntpError) as caught:
                await client.query("127.0.0.1", port, time.time, timeout=0.3, tries=2)
        finally:
            transport.close()
        return caught.value, len(server.requests)

    error, requests = asyncio.run(scenario())
    assert error.code == code and all(error.params[k] == v for k, v in params.items()), (error.code, str(error))
    ours_but_unusable = code not in (client.NO_ANSWER, client.WRONG_ORIGIN, client.TRUNCATED)
    assert requests == (1 if ours_but_unusable else 2)      # dropped datagrams: the tries go on, and end


def test_a_closed_port_and_an_unknown_name_fail_at_once():
    port = free_udp_port()

    async def scenario():
        with pytest.raises(client.SntpError) as closed:
            await client.query("127.0.0.1", port, time.time, timeout=5, tries=2)
        with pytest.raises(client.SntpError) as unknown:
            await client.query("no-such-host.invalid", 123, time.time, timeout=0.3, tries=1)
        return closed.value, unknown.value

    closed, unknown = asyncio.run(scenario())
    assert closed.code == client.UNREACHABLE                  # the ICMP port unreachable, not a timeout's no_answer
    assert unknown.code == client.UNRESOLVED and unknown.params["host"] == "no-such-host.invalid"


def test_retries_back_off_and_stay_bounded():
    assert retry_delay(0, 3600) == 3600
    assert [retry_delay(n, 3600) for n in range(1, 8)] == [30, 60, 120, 240, 480, 900, 900]
    assert retry_delay(3, 60) == 60 and RETRY_MAX_S == 900


def test_the_products_with_a_clock_follow_the_register_tables():
    """0xE100 is in the B-30, A14 and E34/E44 tables [OE-*], not in the E14/E23/E24 and A-10 ones."""
    clocked = dict((row[catalogue.REF], catalogue.has_clock(row[catalogue.REF])) for row in catalogue.PRODUCTS)
    assert all(clocked[r] for r in ("B-30 RS485", "A14", "E34", "E44", "I-35", "U-30", "IO-10", "A-40", "ECI3"))
    assert not any(clocked[r] for r in ("E14", "E23", "E24", "A-10", "M-70", "ATyS p M"))
    # the words of one FC16, as the table lays them out: day, month, year, hour, minute, second
    stamp = calendar.timegm((2026, 12, 7, 23, 59, 58))
    assert clocks.clock_words(stamp + 0.6) == [7, 12, 2026, 23, 59, 59]


# ---------------------------------------------------------------- the gateway

DIGIWARE = [{"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 3, "nominal_w": 45000},
            {"reference": "U-30", "address": 11, "netid": "D5038A"}]
RS485 = [{"reference": "A-40", "address": 20, "netid": "A40001", "nominal_w": 60000},
         {"reference": "E23", "address": 21, "netid": "E23001", "nominal_w": 9000}]
OVERRIDES = {"poll.min_cycle_ms": 300, "poll.backoff_max_s": 1}
GEOMETRY = Geometry(64, 2048, segments=4, segment_bytes=1 << 18)


def sntp_factory(timeout=0.3, tries=2):
    def make(door):
        return SntpService(door, timeout=timeout, tries=tries)
    make.name = "sntp"
    return make


def three_hours_late(board):
    board.clock.offset = -THREE_HOURS              # the gateway's clock starts wrong; the meters' do not move


def stored(storage, name):
    return [(t, v, q) for t, v, q in storage.store.read(name, 0, 2 ** 40).points() if q & Q_VALID]


def meter_time(meter):
    """The simulated meter's clock as it answers over Modbus (0xE100), read as UTC."""
    day, month, year, hour, minute, second = meter.read_registers(catalogue.CLOCK_REGISTER, 6)
    return calendar.timegm((year, month, day, hour, minute, second))


@needs_chronyd
def test_chronyd_sets_the_gateway_clock_then_the_meters_and_their_curves_lose_clock_not_set(tmp_path):
    # frozen (only SNTP moves the gateway's clock) and an hour behind: the meters' clocks, set, jump forward
    clock = ManualClock(float(int(time.time())) - 3600)
    topology = topology_with(DIGIWARE, RS485, baud=115200)
    chrony = Chronyd(tmp_path / "chrony", free_udp_port()).start()
    settings = dict(OVERRIDES, **{"sntp.server": "127.0.0.1", "sntp.port": chrony.port})

    async def scenario():
        async with running_gateway(tmp_path / "state", topology, settings, clock, services=[sntp_factory()],
                                   prepare_board=three_hours_late, storage_geometry=GEOMETRY) as gw:
            sntp = gw.outbound("sntp")
            await gw.topology.replace(devices_from_simulation(topology))
            await polled(gw)
            await gw.curves.cycle()
            clock.advance(1800)
            await polled(gw)
            await gw.curves.cycle()                         # points recorded while no meter's clock was set
            name = "load_curve/DC85E9/1/lc_p_pos"
            before = stored(gw.storage, name)
            assert len(before) >= 2 and all(q & Q_CLOCK_NOT_SET for _t, _v, q in before)
            assert gw.clock.time() == clock.time() - THREE_HOURS

            await gw.settings.set_many({"sntp.enabled": True})         # the background task synchronises
            await wait_for(lambda: sntp.meters is not None, guard=30)
            assert abs(gw.clock.time() - time.time()) < 0.5
            status = sntp.status()
            assert status["stratum"] == 8 and status["error"] is None and status["failures"] == 0
            assert abs(status["offset_s"] - (3600 + THREE_HOURS - 1800)) < 60         # the meters' hour, 30 min on
            moved = [e for e in gw.alarms.events() if e.get("event") == "clock-synchronised"]
            assert len(moved) == 1 and abs(moved[0]["step"] - status["offset_s"]) < 0.01
            assert (2, "sntp") not in gw.alarms.active

            # the meters: set, read back as the register says; the E23 has no clock and is left alone
            result = sntp.meters
            assert [e["address"] for e in result["set"]] == [4, 11, 20] and result["failed"] == []
            assert [e["address"] for e in result["without_clock"]] == [21]
            for address in (4, 11, 20):
                meter = gw.board.find_meter(address=address)
                assert meter.clock_set and abs(meter_time(meter) - gw.clock.time()) <= 2
            day, month, year, hour, minute, second = await gw.engines["rs485"].read_registers(
                20, catalogue.CLOCK_REGISTER, 6)                                  # over the wire, as a master reads
            assert abs(calendar.timegm((year, month, day, hour, minute, second)) - gw.clock.time()) <= 2
            e23 = gw.board.find_meter(address=21)
            assert not e23.clock_set and abs(meter_time(e23) - clock.time()) <= 1

            # the curves downloaded from now on carry no "clock not set"
            clock.advance(1800)
            await polled(gw)
            await gw.curves.cycle()
            after = stored(gw.storage, name)[len(before):]
            assert len(after) >= 2 and not any(q & Q_CLOCK_NOT_SET for _t, _v, q in after)
            a40 = stored(gw.storage, "load_curve/%s/1/lc_p_pos" % devices_from_simulation(topology)[2].uid)
            assert a40 and not a40[-1][2] & Q_CLOCK_NOT_SET

            # the page's button: Admin may, User may not; switched off it is refused as OFF
            admin = gw.door(Caller("web", "admin"))
            answer = await admin.sync_time_now()
            assert answer["ok"] and answer["stratum"] == 8 and -1800 < answer["offset"] < -1740     # the advance
            assert abs(gw.clock.time() - time.time()) < 0.5
            with pytest.raises(Refused) as refused:
                await gw.door(Caller("web", "user")).sync_time_now()
            assert refused.value.reason == RIGHTS

            # the server stops: alarm 2 with its reason, the clock stays; it comes back: cleared
            chrony.stop()
            held = gw.clock.time()
            failed = await sntp.cycle()
            assert not failed["ok"] and failed["code"] in (client.UNREACHABLE, client.NO_ANSWER)
            alarm = gw.alarms.active[(2, "sntp")]
            assert alarm["text"]["key"] == "sntp.error." + failed["code"] and str(chrony.port) in alarm["detail"]
            assert gw.clock.time() == held and failed["retry_in_s"] == 30
            chrony.start()
            assert (await sntp.cycle())["ok"]
            assert (2, "sntp") not in gw.alarms.active
            assert [e["event"] for e in gw.alarms.events() if e.get("alarm") == 2] == ["raised", "cleared"]

            await gw.settings.set_many({"sntp.enabled": False})
            with pytest.raises(Refused) as off:
                await admin.sync_time_now()
            assert off.value.reason == OFF

    try:
        asyncio.run(scenario())
    finally:
        chrony.stop()


def test_hostile_servers_raise_alarm_2_leave_the_clock_and_the_loop_alone(tmp_path):
    clock = ManualClock(float(int(time.time())))
    topology = topology_with(DIGIWARE[:1], RS485[1:])

    async def scenario():
        transport, server, port = await scripted_server("silent")
        settings = dict(OVERRIDES, **{"sntp.enabled": True, "sntp.server": "127.0.0.1", "sntp.port": port})
        with contextlib.ExitStack() as stack:
            stack.callback(transport.close)
            async with running_gateway(tmp_path / "state", topology, settings, clock, services=[sntp_factory()],
                                       prepare_board=three_hours_late, storage_geometry=GEOMETRY) as gw:
                sntp = gw.outbound("sntp")
                await gw.topology.replace(devices_from_simulation(topology))
                await wait_for(lambda: sntp.attempts >= 1 and sntp.failures >= 1)    # the background's first try
                gw.looplag.reset()
                held = gw.clock.time()
                failures = sntp.failures
                for behaviour in sorted(HOSTILE):
                    server.behaviour = behaviour
                    result = await sntp.cycle()
                    failures += 1
                    assert not result["ok"] and result["code"] == EXPECTED[behaviour][0], (behaviour, result)
                    assert gw.clock.time() == held and sntp.failures == failures
                    assert result["retry_in_s"] == retry_delay(failures, 3600) <= RETRY_MAX_S
                    alarm = gw.alarms.active[(2, "sntp")]
                    assert alarm["text"]["key"] == "sntp.error." + result["code"]
                    assert sntp.meters is None                          # no meter was written
                lag = gw.looplag.summary()
                print("event-loop lag under hostile SNTP servers:", lag)
                assert lag["samples"] >= 10 and lag["p99_ms"] < 20, lag
                assert [e["event"] for e in gw.alarms.events() if e.get("alarm") == 2] == ["raised"]
                assert not gw.board.find_meter(address=4).clock_set

                # another server, a sane one: the service starts again on the new port and asks at once
                sane_transport, sane, sane_port = await scripted_server("good")
                stack.callback(sane_transport.close)
                await gw.settings.set_many({"sntp.port": sane_port})
                await wait_for(lambda: sntp.meters is not None)
                assert abs(gw.clock.time() - time.time()) < 0.5 and sntp.status()["server"] == "127.0.0.1"
                assert (2, "sntp") not in gw.alarms.active and sntp.failures == 0
                assert [e["address"] for e in sntp.meters["set"]] == [4]

                sane.behaviour = "silent"                               # failing again, then switched off
                assert not (await sntp.cycle())["ok"] and (2, "sntp") in gw.alarms.active
                await gw.settings.set_many({"sntp.enabled": False})
                await wait_for(lambda: not sntp.running)
                assert (2, "sntp") not in gw.alarms.active and sntp.status()["next_attempt"] is None

    asyncio.run(scenario())


def test_a_meter_that_refuses_or_does_not_answer_is_named_in_one_event(tmp_path):
    clock = ManualClock(float(int(time.time())))
    topology = topology_with(DIGIWARE, RS485[:1], baud=115200)

    async def scenario():
        async with running_gateway(tmp_path / "state", topology, OVERRIDES, clock,
                                   storage_geometry=GEOMETRY) as gw:
            await gw.topology.replace(devices_from_simulation(topology))
            await polled(gw)
            gw.board.configure_meter(0xD5038A, silent=True)              # the U-30 stops answering
            refusing = gw.board.find_meter(address=20)
            refusing.write_registers = lambda start, words: rtu.ILLEGAL_DATA_ADDRESS   # an A-40 without 0xE100
            door = gw.door(Caller("sntp"))
            result = await door.set_meter_clocks()
            assert [e["address"] for e in result["set"]] == [4]
            failed = dict((e["address"], e) for e in result["failed"])
            assert failed[11]["reason"] == clocks.NO_ANSWER
            assert failed[20]["reason"] == clocks.REFUSED and failed[20]["exception"] == rtu.ILLEGAL_DATA_ADDRESS
            events = [e for e in gw.alarms.events() if e.get("event") == "meter-clocks-not-set"]
            assert len(events) == 1 and [d["address"] for d in events[0]["devices"]] == [11, 20]
            assert "U-30@11" in events[0]["detail"] and "exception 2" in events[0]["detail"]
            with pytest.raises(Refused) as refused:                      # only the SNTP client may ask
                await gw.door(Caller("web", "admin")).set_meter_clocks()
            assert refused.value.reason == RIGHTS

    asyncio.run(scenario())
