"""Time synchronization sets the gateway clock only to a real instant, only when allowed, and says who did.

Frames are built by hand (tests/bacnet/bacnet_peer.py) so every octet of the
Date and Time can be absurd. The sender is another host on loopback
(127.0.0.2): the event log must name it.
"""

import asyncio
import calendar

from bacnet_support import Site
from bacnet_peer import RawUdp, bvlc, npdu, time_synchronization_apdu
from board.base import ManualClock
from conftest import wait_for

T0 = 1_700_000_000.0                                      # 2023-11-14 22:13:20 UTC, the frozen gateway clock
TARGET = calendar.timegm((2030, 1, 2, 3, 4, 5))           # a Wednesday (BACnet weekday 3)
GOOD_DATE, GOOD_TIME = (130, 1, 2, 3), (3, 4, 5, 0)
SENDER = "127.0.0.2"

ABSURD = {                                                # (date, time): what a fuzzer and a broken supervisor sent
    "year 2154": ((254, 1, 2, 255), GOOD_TIME),
    "year 1901": ((1, 1, 2, 255), GOOD_TIME),
    "year 2019, before any build": ((119, 6, 1, 255), GOOD_TIME),
    "year 2070, beyond the window": ((170, 1, 1, 255), GOOD_TIME),
    "30 February": ((130, 2, 30, 255), GOOD_TIME),
    "29 February of 2031": ((131, 2, 29, 255), GOOD_TIME),
    "31 April": ((130, 4, 31, 255), GOOD_TIME),
    "day 0": ((130, 1, 0, 255), GOOD_TIME),
    "month 13 (odd months)": ((130, 13, 2, 255), GOOD_TIME),
    "day 32 (last day)": ((130, 1, 32, 255), GOOD_TIME),
    "99:99:99": (GOOD_DATE, (99, 99, 99, 0)),
    "24:00:00": (GOOD_DATE, (24, 0, 0, 0)),
    "second 60": (GOOD_DATE, (3, 4, 60, 0)),
    "hundredths 100": (GOOD_DATE, (3, 4, 5, 100)),
    "a Monday that is a Wednesday": ((130, 1, 2, 1), GOOD_TIME),
    "weekday 8": ((130, 1, 2, 8), GOOD_TIME),
    "unspecified year": ((255, 1, 2, 255), GOOD_TIME),
    "unspecified hour": (GOOD_DATE, (255, 4, 5, 0)),
}


def frame(date, time, utc=True):
    return bvlc(npdu(time_synchronization_apdu(date, time, utc), expecting_reply=False))


def clock_records(s):
    return [e for e in s.gw.alarms.events() if e.get("event") == "clock_set"]


def test_absurd_dates_are_refused_and_a_valid_one_is_applied_and_logged_with_its_sender(tmp_path):
    async def scenario():
        async with Site(tmp_path, clock=ManualClock(T0)) as s:
            counters = s.service.site.counters
            async with RawUdp(SENDER) as raw:
                # off by default: a valid synchronization is refused, the clock stays
                raw.send(frame(GOOD_DATE, GOOD_TIME), s.port)
                await wait_for(lambda: counters["time_sync_refused"] == 1)
                assert s.gw.clock.time() == T0 and clock_records(s) == []

                await s.gw.settings.set_many({"bacnet.time_sync": True})
                for date, time in ABSURD.values():
                    raw.send(frame(date, time), s.port)
                raw.send(frame(GOOD_DATE, (99, 99, 99, 0), utc=False), s.port)    # TimeSynchronization (local)
                await wait_for(lambda: counters["time_sync_invalid"] == len(ABSURD) + 1)
                assert s.gw.clock.time() == T0, "an absurd date moved the clock"
                assert counters["time_sync_applied"] == 0 and clock_records(s) == []

                # a real instant in the window: applied, and the event log says who, from what, to what
                raw.send(frame(GOOD_DATE, GOOD_TIME), s.port)
                await wait_for(lambda: counters["time_sync_applied"] == 1)
                assert s.gw.clock.time() == TARGET
                record, = clock_records(s)
                assert record["old"] == T0 and record["new"] == TARGET
                assert record["by"] == "bacnet from %s:%d" % raw.address, record
                # weekday unspecified and local time (the site is UTC+1) name the same instant
                raw.send(frame((130, 1, 2, 255), (4, 4, 6, 0), utc=False), s.port)
                await wait_for(lambda: counters["time_sync_applied"] == 2)
                assert s.gw.clock.time() == TARGET + 1
                assert [r["new"] for r in clock_records(s)] == [TARGET, TARGET + 1]
            assert counters["time_sync_invalid"] == len(ABSURD) + 1 and s.service.running
    asyncio.run(scenario())


def test_a_flood_of_valid_synchronizations_changes_the_clock_a_bounded_number_of_times(tmp_path):
    async def scenario():
        async with Site(tmp_path, {"bacnet.time_sync": True}, clock=ManualClock(T0)) as s:
            counters = s.service.site.counters
            sent = 50
            async with RawUdp(SENDER) as raw:
                for second in range(sent):
                    raw.send(frame(GOOD_DATE, (3, 4, second % 60, 0)), s.port)
                await wait_for(lambda: counters["time_sync_applied"] + counters["time_sync_limited"] == sent)
            # a burst of a few (site.CLOCK_CHANGES_BURST), then one a minute: the event log keeps its other records
            applied = counters["time_sync_applied"]
            assert 1 <= applied <= 6 and counters["time_sync_limited"] == sent - applied
            assert len(clock_records(s)) == applied
    asyncio.run(scenario())
