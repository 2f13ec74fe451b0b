"""When a poll read may go whole while pass-through is active: the forwarded requests' own pace
(daemon/runtime/bus.py PassthroughPace), with the times given, so no clock is involved."""

from daemon.runtime.bus import PACE_GAPS, PASSTHROUGH_ACTIVE_S, PassthroughPace


def steady(period, n, start=100.0):
    pace = PassthroughPace()
    for i in range(n):
        pace.arrived(start + i * period)
    return pace, start + (n - 1) * period


def test_a_steady_client_leaves_room_for_a_whole_read_right_after_its_request():
    pace, last = steady(0.100, PACE_GAPS + 1)
    assert not pace.may_come_within(last + 0.010, 0.035)       # ends 45 ms after: the next comes ~100 ms after
    assert pace.may_come_within(last + 0.050, 0.035)           # would end at 85 ms: too near, split it


def test_unknown_or_irregular_traffic_splits_as_before():
    pace, last = steady(0.100, PACE_GAPS)                       # one gap short of a known pace
    assert pace.may_come_within(last + 0.001, 0.001)
    pace, last = steady(0.100, PACE_GAPS + 1)
    pace.arrived(last + 0.004)                                  # a burst: the shortest gap now rules
    assert pace.may_come_within(last + 0.010, 0.010)


def test_quiet_pass_through_never_splits_and_a_new_burst_learns_its_pace_afresh():
    pace, last = steady(0.100, PACE_GAPS + 1)
    assert not pace.active(last + PASSTHROUGH_ACTIVE_S + 0.01)
    assert not pace.may_come_within(last + PASSTHROUGH_ACTIVE_S + 0.01, 10.0)
    pace.arrived(last + 5.0)                                   # after a quiet spell: pace unknown again
    assert pace.active(last + 5.0) and len(pace.gaps) == 0
    assert pace.may_come_within(last + 5.01, 0.001)
