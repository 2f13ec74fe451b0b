"""The simulated meters: consistent physics, Socomec register facts, faults."""

import math
import os
import select
import time

from board.base import ManualClock
from board.simbus import SimBus
from board.simmeter import SimMeter
from core import catalogue, modbus_rtu as rtu
from daemon.runtime.discovery import parse_identification

T0 = 1_700_000_000.0   # 2023-11-14 22:13:20 UTC


def test_values_are_physically_consistent():
    meter = SimMeter("I-35", 4, 0xDC85E9, ManualClock(T0 + 43200), loads=3)
    for load in (1, 2, 3):
        v = meter.values(load)
        assert 220 < v["v1"] < 240 and abs(v["u12"] / v["v1"] - math.sqrt(3)) < 1e-9
        for k in (1, 2, 3):
            assert abs(v["s%d" % k] - math.hypot(v["p%d" % k], v["q%d" % k])) < 1e-6
            assert abs(v["i%d" % k] * v["v%d" % k] - v["s%d" % k]) < 1e-6
        assert abs(v["p"] - (v["p1"] + v["p2"] + v["p3"])) < 1e-6
        assert abs(v["pf"] - v["p"] / v["s"]) < 1e-9


def test_daily_profile_and_energy_integration():
    clock = ManualClock(T0 - (T0 % 86400) + 3 * 3600)      # 03:00 UTC
    meter = SimMeter("A-40", 20, 0xA40001, clock)
    night = meter.values(1)
    clock.advance(9 * 3600)                                  # noon
    noon = meter.values(1)
    assert noon["p"] > 1.5 * night["p"]
    e0 = noon["ea_pos"]
    clock.advance(3600)
    e1 = meter.values(1)["ea_pos"]
    p_now = meter.values(1)["p"]
    # one hour at roughly the noon power: the index moved by about P × 1 h
    assert 0.8 * p_now < e1 - e0 < 1.2 * p_now


def test_registers_follow_the_socomec_tables():
    clock = ManualClock(T0)
    meter = SimMeter("I-35", 4, 0xDC85E9, clock, loads=3)
    # identification: 66 words every family has, then resource version + NET ID (B-30 generation)
    ident = parse_identification(meter.read_registers(0xC350, 66), meter.read_registers(0xC392, 3))
    assert ident["netid"] == 0xDC85E9 and ident["vendor"] == "SOCOMEC" and ident["ext_name"] == "DIRIS I-35"
    assert parse_identification(meter.read_registers(0xC350, 69))["netid"] == 0xDC85E9
    assert meter.read_registers(0xC350, 70) == rtu.ILLEGAL_DATA_ADDRESS     # the block ends at 0xC394
    values = meter.values(2)
    base = 0x5000                                           # load 2 = 0x4800 + 0x800 (socomec-registers §3.3)
    words = meter.read_registers(base + 26, 2)               # I1 of load 2, mA
    assert abs(rtu.decode_value("u32", words) / 1000.0 - values["i1"]) <= 0.0005
    freq = meter.read_registers(base + 10, 2)
    assert abs(rtu.decode_value("u32", freq) / 1000.0 - values["freq"]) <= 0.0005
    # outside every documented block: illegal data address (convention 10)
    assert meter.read_registers(0x1234, 2) == rtu.ILLEGAL_DATA_ADDRESS
    assert meter.read_registers(base + 90, 10) == rtu.ILLEGAL_DATA_ADDRESS


def test_clock_write_must_be_six_words_in_one_request():
    meter = SimMeter("I-35", 4, 1, ManualClock(T0))
    assert meter.write_registers(catalogue.CLOCK_REGISTER, [1, 2, 2024]) == rtu.ILLEGAL_DATA_ADDRESS
    assert not meter.clock_set
    assert meter.write_registers(catalogue.CLOCK_REGISTER, [15, 6, 2024, 12, 30, 0]) == 0
    assert meter.read_registers(catalogue.CLOCK_REGISTER, 6) == [15, 6, 2024, 12, 30, 0]


def test_io10_output_write_changes_the_output_and_refuses_bad_values():
    meter = SimMeter("IO-10", 15, 0xC0E45D, ManualClock(T0))
    assert meter.write_registers(catalogue.IO_OUTPUT_REGISTER + 1, [1]) == 0
    assert meter.outputs == 0b10
    assert meter.values(0)["out_2"] == 1
    assert meter.write_registers(catalogue.IO_OUTPUT_REGISTER, [7]) == rtu.ILLEGAL_DATA_VALUE
    assert meter.write_registers(catalogue.IO_OUTPUT_REGISTER + 2, [1]) == rtu.ILLEGAL_DATA_ADDRESS
    assert meter.outputs == 0b10


def _exchange(fd, frame, guard=2.0):
    os.write(fd, frame)
    data = b""
    end = time.monotonic() + guard
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            data += os.read(fd, 512)
            need = rtu.response_length_from_header(data)
            if need and len(data) >= need:
                return data
    return data


def test_simulated_bus_answers_with_wire_timing_and_collides_on_shared_addresses():
    import pty
    import tty
    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    clock = ManualClock(T0)
    a = SimMeter("I-35", 4, 0x111111, clock)
    b = SimMeter("I-35", 7, 0x222222, clock)
    bus = SimBus(master, [a, b], baud=9600, turnaround=0.002)
    bus.start()
    try:
        request = rtu.request_frame(4, rtu.read_request(3, catalogue.IDENT_BASE, 66))
        answer = _exchange(slave, request)
        assert rtu.parse_response(answer, 4, rtu.read_request(3, catalogue.IDENT_BASE, 66))
        # (that the answer takes its wire time is measured, not asserted: bench/poll_cycle.py
        # would show a ratio below 1 against the wire-time bound if it did not)
        b.address = 4                                          # now two devices share address 4
        answer = _exchange(slave, request, guard=1.0)
        assert answer and not rtu.check_crc(answer[:137])
        assert bus.stats["collisions"] == 1 and a.com_led and b.com_led
        a.silent = True                                        # only b answers again
        answer = _exchange(slave, request)
        assert rtu.check_crc(answer)
    finally:
        bus.stop()
        os.close(master)
        os.close(slave)


def test_countis_and_diris_a_refuse_reads_past_their_66_word_identification_block():
    # socomec-registers §1: 66 words on A-10/A-14/COUNTIS tables, the NET ID (0xC393) is B-30 only
    for reference, address in (("E23", 21), ("A-40", 20), ("E14", 22), ("A-10", 23), ("E34", 24)):
        meter = SimMeter(reference, address, 0xE23001, ManualClock(T0))
        words = meter.read_registers(0xC350, 66)
        assert words[:4] == [0x53, 0x4F, 0x43, 0x4F], reference                 # "SOCO", one char per word
        ident = parse_identification(words)
        assert ident["netid"] is None and ident["vendor"] == "SOCOMEC"
        assert meter.read_registers(0xC350, 67) == rtu.ILLEGAL_DATA_ADDRESS, reference
        assert meter.read_registers(0xC392, 3) == rtu.ILLEGAL_DATA_ADDRESS, reference
        # the NET ID arbitration of ours does not concern them: they never go quiet
        meter.broadcast_write(0xE020, [address, 0, 1, 0, 0])
        assert not meter.muted


def test_a_countis_e23_counts_its_frequency_in_thousandths_of_hertz():
    meter = SimMeter("E23", 21, 0xE23001, ManualClock(T0))
    raw = rtu.decode_value("u32", meter.read_registers(0xC55E, 2))         # [OE-E23] Hz/1000
    assert 49_900 < raw < 50_100 and abs(raw / 1000.0 - meter.values(1)["freq"]) <= 0.0005
    a40 = SimMeter("A-40", 20, 0xA40001, ManualClock(T0))
    raw = rtu.decode_value("u32", a40.read_registers(0xC55E, 2))           # [OE-A10] Hz/100
    assert 4_990 < raw < 5_010


def test_an_exporting_leading_load_has_signed_registers_and_counts_exported_energy():
    clock = ManualClock(T0 - (T0 % 86400) + 12 * 3600)
    meter = SimMeter("I-35", 4, 0xDC85E9, clock, loads=3)
    meter.configure_load(2, export=True, pf=0.9)           # quadrant III: P < 0, Q < 0, lagging
    meter.configure_load(3, export=True, pf=-0.8)          # quadrant II: P < 0, Q > 0, leading
    lagging, leading = meter.values(2), meter.values(3)
    assert lagging["p"] < 0 and lagging["q"] < 0 and abs(lagging["pf"] - 0.9) < 1e-9 and lagging["pf_type"] == 2
    assert leading["p"] < 0 and leading["q"] > 0 and abs(leading["pf"] + 0.8) < 1e-9 and leading["pf_type"] == 1
    for values in (lagging, leading):
        assert abs(values["s"] - math.hypot(values["p"], values["q"])) < 1e-6
    base = 0x5800                                           # load 3
    assert rtu.decode_value("s32", meter.read_registers(base + 44, 2)) == round(leading["p"])     # ΣP, W
    assert rtu.decode_value("s32", meter.read_registers(base + 46, 2)) == round(leading["q"])     # ΣQ, var
    assert rtu.decode_value("s16", meter.read_registers(base + 54, 1)) == -800                    # ΣPF /1000
    assert meter.read_registers(base + 55, 1) == [1]                                            # leading
    assert rtu.decode_value("s32", meter.read_registers(base + 50, 2)) == round(leading["q"])     # ΣQ leading
    assert rtu.decode_value("s32", meter.read_registers(base + 48, 2)) == 0                       # ΣQ lagging
    before = meter.values(2)
    clock.advance(3600)
    after = meter.values(2)
    assert after["ea_pos"] == before["ea_pos"] and after["er_pos"] == before["er_pos"]
    assert 0.8 * abs(after["p"]) < after["ea_neg"] - before["ea_neg"] < 1.2 * abs(after["p"])
    assert after["er_neg"] > before["er_neg"]
    a40 = SimMeter("A-40", 20, 0xA40001, clock)
    a40.configure_load(1, export=True, pf=-0.5)
    values = a40.values(1)
    assert rtu.decode_value("s32", a40.read_registers(0xC568, 2)) == round(values["p"] / 10) < 0   # 10 W
    assert rtu.decode_value("s32", a40.read_registers(0xC56E, 2)) == -500
    for bad in ({"pf": 0}, {"pf": 1.5}, {"pf": float("nan")}, {"export": "yes"}):
        try:
            a40.configure_load(1, **bad)
        except ValueError:
            continue
        raise AssertionError("accepted %r" % bad)
    try:
        a40.configure_load(2, export=True)
    except ValueError:
        pass
    else:
        raise AssertionError("an A-40 has one load")


def test_topology_files_set_exporting_loads():
    from board.sim import make_meter
    meter = make_meter({"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 3,
                        "load_flows": [{"load": 3, "export": True, "pf": -0.85}]}, ManualClock(T0))
    assert meter.loads[2].export and meter.loads[2].pf == -0.85 and not meter.loads[0].export
    for flows in ([{"load": 4, "export": True}], [{"load": 1, "sign": -1}], {"load": 1}):
        try:
            make_meter({"reference": "I-35", "address": 4, "netid": "DC85E9", "load_flows": flows},
                       ManualClock(T0))
        except ValueError:
            continue
        raise AssertionError("accepted %r" % (flows,))


def test_the_simulator_offers_only_what_it_has_tables_for():
    try:
        SimMeter("ATyS p M", 3, 1, ManualClock(T0))
    except KeyError:
        pass
    else:
        raise AssertionError("no register table for an ATyS")
    try:
        SimMeter("I-35", 4, 1, ManualClock(T0), loads=4)
    except ValueError:
        pass
    else:
        raise AssertionError("an I-35 has 3 loads")
    meter = SimMeter("I-35", 14, 0xDC8601, ManualClock(T0), loads=2)
    # a load the module has but the site does not use: status 0 and zeros (convention 6.5)
    assert meter.read_registers(0x5800, 92) == [0] * 92
    assert meter.read_registers(0x3640, 2) == [0, 0] and meter.read_registers(0x3620, 2) == [1, 9]


def test_a_meter_given_an_unusable_fault_value_directly_does_not_stop_its_bus():
    from board.nullmodem import open_raw_pty
    master, slave = open_raw_pty()
    meter = SimMeter("I-35", 4, 0x111111, ManualClock(T0))
    bus = SimBus(master, [meter], baud=38400)
    bus.start()
    try:
        request = rtu.request_frame(4, rtu.read_request(3, catalogue.IDENT_BASE, 4))
        # values the routes and topology files refuse, set on the meter itself: the bus sleeps no such delay
        for delay in (float("nan"), -1.0, "slow", None, True):
            meter.extra_delay = delay
            answer = _exchange(slave, request)
            assert rtu.check_crc(answer) and answer[:3] == b"\x04\x03\x08", (delay, answer)
        meter.extra_delay = 0.0
        meter.crc_error_rate = "often"           # not a number: serving this request fails, the line lives on
        os.write(slave, request)
        end = time.monotonic() + 20
        while bus.stats["errors"] < 1 and time.monotonic() < end:
            time.sleep(0.01)
        assert bus.stats["errors"] == 1
        meter.crc_error_rate = 0.0
        answer = _exchange(slave, request)
        assert rtu.check_crc(answer) and len(answer) == 13          # exactly one answer: none to the failed one
        end = time.monotonic() + 20          # the bus thread counts an answer after writing it: the count may lag
        while bus.stats["answers"] < 6 and time.monotonic() < end:
            time.sleep(0.01)
        assert bus._thread.is_alive() and bus.stats["answers"] == 6 and bus.stats["requests"] == 7
        # a meter far too slow still lets its bus stop at once, writing nothing after its descriptor closes
        meter.extra_delay = 10.0
        os.write(slave, request)
        end = time.monotonic() + 20
        while bus.stats["requests"] < 8 and time.monotonic() < end:
            time.sleep(0.01)
        bus.stop()
        assert not bus._thread.is_alive() and bus.stats["answers"] == 6
    finally:
        bus.stop()
        os.close(master)
        os.close(slave)


def test_the_bus_sleeps_only_a_bounded_number_of_seconds_whatever_a_meter_holds():
    from board.simfaults import MAX_EXTRA_DELAY_S, bus_delay
    assert [bus_delay(v) for v in (0.2, float("inf"), 1e308, 10 ** 400, 11)] == [0.2] + [MAX_EXTRA_DELAY_S] * 4
    assert [bus_delay(v) for v in (float("nan"), -1, float("-inf"), -10 ** 400, "1", None, True)] == [0.0] * 7


def test_topology_files_with_impossible_faults_or_line_settings_are_refused():
    import pytest
    from board.sim import SimBoard, make_meter, make_simbus
    good = {"reference": "I-35", "address": 4, "netid": "DC85E9"}
    meter = make_meter(dict(good, extra_delay_ms=250, crc_error_rate=0.1, silent=True), ManualClock(T0))
    assert (meter.extra_delay, meter.crc_error_rate, meter.silent) == (0.25, 0.1, True)
    for fault, field in (({"extra_delay_ms": float("nan")}, "extra_delay_ms"),
                         ({"extra_delay_ms": float("inf")}, "extra_delay_ms"),
                         ({"extra_delay_ms": -1}, "extra_delay_ms"),
                         ({"extra_delay_ms": 1e308}, "extra_delay_ms"),
                         ({"extra_delay_ms": "slow"}, "extra_delay_ms"),
                         ({"crc_error_rate": float("nan")}, "crc_error_rate"),
                         ({"crc_error_rate": 2}, "crc_error_rate"),
                         ({"silent": "false"}, "silent"),
                         ({"address": float("inf")}, "address"),
                         ({"address": 0}, "address")):
        with pytest.raises(ValueError, match=field):
            make_meter(dict(good, **fault), ManualClock(T0))
    for line, field in (({"turnaround_ms": float("nan")}, "turnaround_ms"), ({"turnaround_ms": 1e308}, "turnaround_ms"),
                        ({"baud": 0}, "baud"), ({"baud": 38400.5}, "baud"), ({"parity": "X"}, "parity"),
                        ({"stop_bits": 3}, "stop_bits")):
        with pytest.raises(ValueError, match=field):
            make_simbus(-1, "digiware", dict(line, meters=[good]), ManualClock(T0), 0)
    # refused while the board is being built: nothing it opened stays open
    held = len(os.listdir("/proc/self/fd"))
    bad = {"buses": {"digiware": {"meters": [good]}, "rs485": {"meters": [dict(good, extra_delay_ms=float("nan"))]}}}
    with pytest.raises(ValueError, match="extra_delay_ms"):
        SimBoard(topology=bad)
    assert len(os.listdir("/proc/self/fd")) == held
