"""Fit scheduling (issue 19, target 3): poll reads sized to end before the next forwarded request of a steady
client, the line left idle for it within a bounded budget, and the old splitting for unknown or irregular
traffic (daemon/runtime/bus.py PassthroughPace.expected / idle_for, _Transaction.fit_end). The pace decisions
are given their times (no clock); the engine test counts frames on the simulated line."""

import asyncio

from conftest import wait_for
from core import modbus_rtu as rtu
from daemon.runtime import bus
from daemon.runtime.bus import FIT_IDLE_SHARE, FIT_REGULAR, PACE_GAPS, POLL, PassthroughPace, _Transaction
from test_passthrough_short import A40, Site, frames_ahead

INST, INST_WORDS = 0xC552, 54          # the A-40's instantaneous block (test_passthrough_short's A40)
LEAD = 0.015                           # the time of the shortest read worth sending (the engine's: ~15 ms)


def steady(gaps, start=100.0):
    pace, now = PassthroughPace(), start
    pace.arrived(now)
    for gap in gaps:
        now += gap
        pace.arrived(now)
    return pace, now


def test_a_steady_client_is_expected_one_shortest_gap_after_its_last_request():
    pace, last = steady([0.100, 0.090, 0.110] * 3)
    assert pace.expected(last + 0.010) == last + 0.090
    assert pace.idle_for(last + 0.050, LEAD) == 0.0                 # room for reads: poll on
    assert abs(pace.idle_for(last + 0.080, LEAD) - 0.010) < 1e-9    # too little room: idle until it is due
    budget = FIT_IDLE_SHARE * 0.090
    assert abs(pace.idle_for(last + 0.090, LEAD) - budget) < 1e-9   # due: the line waits for it, bounded


def test_unknown_irregular_or_quiet_traffic_is_not_predicted():
    pace, last = steady([0.100] * (PACE_GAPS - 1))                  # one gap short of a known pace
    assert pace.expected(last + 0.01) is None and pace.idle_for(last + 0.1, LEAD) == 0.0
    pace, last = steady([0.050] * (PACE_GAPS - 1) + [0.050 * FIT_REGULAR + 0.001])   # one long gap: irregular
    assert pace.expected(last + 0.01) is None and pace.idle_for(last + 0.06, LEAD) == 0.0
    pace, last = steady([0.100] * PACE_GAPS)
    assert pace.expected(last + bus.PASSTHROUGH_ACTIVE_S + 0.01) is None          # quiet for a second
    saved = bus.FIT_SCHEDULING
    bus.FIT_SCHEDULING = False
    try:
        assert pace.expected(last + 0.01) is None                   # off: the pace alone, as before
    finally:
        bus.FIT_SCHEDULING = saved


def test_a_client_that_does_not_come_costs_polling_a_bounded_idle_time():
    """The engine's loop in miniature: ask, idle what it says (a submit of more polling may cut it short),
    account for it; a request that never comes stops the idling within lead + share x shortest gap."""
    pace, last = steady([0.100] * PACE_GAPS)
    now, idle, turns = last + 0.090, 0.0, 0
    while turns < 1000:
        wait = pace.idle_for(now, LEAD)
        if wait <= 0:
            break
        step = min(wait, 0.003)                          # woken every 3 ms by the poller's submits
        now += step
        idle += step
        pace.idled(now, step)
        turns += 1
    assert turns < 1000 and idle <= LEAD + FIT_IDLE_SHARE * 0.100 + 1e-9
    assert pace.idle_for(now + 0.001, LEAD) == 0.0                  # polling goes on (split as before)
    pace.arrived(now + 0.005)                                       # it came late after all: a new budget
    assert pace.idle_spent == 0.0


def test_idle_by_a_flooding_client_is_a_share_of_its_gaps():
    pace, last = steady([0.002] * PACE_GAPS)             # a flood: 500 requests/s, idle at most 0.4 ms each
    assert pace.idle_for(last + 0.002, LEAD) <= FIT_IDLE_SHARE * 0.002 + 1e-12


def test_a_fit_piece_ends_between_values_within_the_room():
    tx = _Transaction(20, b"", None, 0, 0.1, POLL, cuts=tuple(range(0, 54, 2)))
    assert tx.fit_end(54, 17) == 16                      # 17 registers of room: the 8 values that fit
    assert tx.fit_end(54, 60) == 54                      # the whole read fits
    tx.offset = 16
    assert tx.fit_end(54, 38) == 54 and tx.fit_end(54, 1) == 16   # the rest; not even one value: nothing
    tx = _Transaction(20, b"", None, 0, 0.1, POLL, cuts=(0, 3, 40))
    assert tx.fit_end(50, 30) == 3


class ExpectedSoon(PassthroughPace):
    """A steady client always expected 20 ms from now: every long poll read is cut to what fits."""

    def active(self, now):
        return True

    def expected(self, now):
        return now + 0.020

    def idle_for(self, now, lead):
        return 0.0


def test_fit_pieces_are_cut_between_values_and_the_cache_is_the_meters(tmp_path):
    async def scenario():
        async with Site(tmp_path) as s:
            engine = s.gw.engines["rs485"]
            room = 0.020 - engine._read_time(0)
            fits = int(room / (2 * engine.char_time))
            engine._pace = ExpectedSoon()
            # the read already on its way when the pace changed was sized before: counted from the next frame
            on_the_way = len(s.frames)
            await wait_for(lambda: len(s.frames) > on_the_way)
            seen = len(s.frames)
            poller = s.gw.pollers["rs485"]
            start = poller.cycles
            await wait_for(lambda: poller.cycles >= start + 2, guard=30)
            pieces = [rtu.request_fields(pdu) for unit, pdu in s.frames[seen:] if unit == A40 and pdu[0] == 3
                      and INST <= rtu.request_fields(pdu)[1] < INST + INST_WORDS]
            assert pieces and all(count <= fits for _f, _s, count, _w in pieces), (fits, pieces)
            assert all((start - INST) % 2 == 0 for _f, start, _c, _w in pieces)     # 32-bit values kept whole
            assert engine.fit_pieces > 0
            meter = s.gw.board.find_meter(address=A40)
            assert s.gw.cache.fresh_raw(A40, INST, INST_WORDS) == meter.read_registers(INST, INST_WORDS)
            # forwarded reads meanwhile: each behind at most the one frame on the wire when it came
            reader, writer = await asyncio.open_connection("127.0.0.1", s.service.status()["port"])
            worst = 0
            for t in range(10):
                await asyncio.sleep(0.013 * t % 0.05)
                worst = max(worst, await frames_ahead(s, reader, writer, t))
            writer.close()
            assert worst <= 1, worst
    asyncio.run(scenario())
