"""What the MQTT publisher takes from the gateway (outbound/mqtt/samples.py), without a broker: with
mqtt.publish "change" a poll's batch gives only the values that moved since the last published; with "period"
the polls give nothing and each period gives every supported value of every device, stale ones with their
quality. Counts and qualities (the values themselves are checked against the meters through the broker in
tests/test_mqtt.py)."""

import asyncio

from conftest import polled, running_gateway, topology_with

from board.base import ManualClock
from daemon.security.rights import Caller
from daemon.state.topology import devices_from_simulation
from outbound.mqtt.samples import Collector

T0 = 1_700_000_000.0
METER = {"reference": "I-35", "address": 4, "netid": "DC85E9", "loads": 3, "nominal_w": 45000}


def test_change_gives_what_moved_and_period_gives_every_value_with_its_quality(tmp_path):
    clock = ManualClock(T0)

    async def scenario():
        seen = {}
        async with running_gateway(tmp_path, topology_with([METER], ()), {"poll.min_cycle_ms": 300},
                                   clock=clock) as gw:
            await gw.topology.replace(devices_from_simulation(topology_with([METER], ())))
            await polled(gw)
            door = gw.door(Caller("mqtt"))
            got, stored = [], []
            collector = Collector(door, door.settings_view(), got.append)
            door.on_values(lambda _address, load, values, _ts: stored.extend((load, key) for key in values))
            door.on_values(collector.on_values)
            collector.start()
            await polled(gw)                                    # the first polls: every value stored is new
            first, first_stored = list(got), list(stored)
            supported = sum(1 for load, row in door.snapshot(4).items() for r in row.values()
                            if r.quality != "not_supported")
            got.clear()
            stored.clear()
            await polled(gw)                                    # the clock stands still: the meter repeats itself
            seen["change"] = (first, first_stored, list(got), list(stored))

            await gw.door(Caller("web", "admin")).set_settings({"mqtt.publish": "period"})
            got.clear()
            clock.advance(5)
            await polled(gw)
            seen["period_polls"] = len(got)                     # polls give nothing in "period"
            collector.period(door.time())
            seen["period"] = list(got)
            got.clear()
            clock.advance(120)            # past every tier's freshness limit (energies: 1.5 x 61 s); no await before
            #                               period(): no poll between
            collector.period(door.time())
            seen["stale"] = list(got)
            seen["supported"] = supported
        return seen

    seen = asyncio.run(scenario())
    first, first_stored, repeated, repeated_stored = seen["change"]
    # every value the first polls stored is published (the slow tiers' too, when they were due), live and good
    assert {(s.load, s.key) for s in first} == set(first_stored)
    assert all(s.history is False and s.quality == "good" for s in first)
    assert {(s.load, s.key) for s in first} >= {(1, "i1"), (1, "v1"), (1, "p")}
    # unchanged values are not published again: at most what the simulated meter varies between two polls
    assert len(repeated) < len(repeated_stored)
    assert seen["period_polls"] == 0
    period = seen["period"]
    assert len(period) == seen["supported"] and len({(s.load, s.key) for s in period}) == len(period)
    assert all(s.quality == "good" for s in period if s.value is not None)
    stale = seen["stale"]
    assert len(stale) == seen["supported"] and {s.quality for s in stale} == {"stale"}


class _NoDevices:
    """The two door queries Collector.start asks (no device is lost): the interval logic alone is tested."""

    def devices(self):
        return []

    def device_link(self, _address):
        return "ok"


def _published(interval, polls):
    settings = {"mqtt.publish": "change", "mqtt.min_interval_s": interval}
    got = []
    collector = Collector(_NoDevices(), type("View", (), {"get": staticmethod(settings.get)})(), got.append)
    collector.start()
    for ts, value in polls:
        collector.on_values(4, 1, {"v1": value}, T0 + ts)
    return [(round(s.t / 1000.0 - T0), s.value) for s in got]


def test_a_minimum_interval_holds_changes_back_and_the_latest_value_still_goes():
    polls = [(0, 230.0), (1, 231.0), (5, 232.0), (11, 232.0), (12, 232.0), (13, 233.0), (25, 233.0)]
    # every change, the interval off
    assert _published(0, polls) == [(0, 230.0), (1, 231.0), (5, 232.0), (13, 233.0)]
    # at most every 10 s: 231 and 232 wait; at 11 s the value then current (232) goes, though it did not move
    # at that poll; 233 at 13 s waits until the first poll past 21 s
    assert _published(10, polls) == [(0, 230.0), (11, 232.0), (25, 233.0)]
