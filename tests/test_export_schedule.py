"""When exports are due: every X minutes on the local grid, daily and weekly at a local time (SPEC §5).

Expected times are worked out with ``datetime`` and a fixed-offset time zone, not with the module's arithmetic.
"""

import datetime

import pytest

from outbound.export.schedule import Rule, next_due, stamp


def at(text, offset_min=0):
    """UTC seconds of a local wall-clock time ``text`` in a zone ``offset_min`` east of UTC."""
    zone = datetime.timezone(datetime.timedelta(minutes=offset_min))
    return datetime.datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


@pytest.mark.parametrize("offset_min", [0, 60, -300, 330])
def test_every_fifteen_minutes_lands_on_the_local_quarter(offset_min):
    rule = Rule("every", every_min=15)
    assert next_due(rule, at("2026-03-10 10:07:31", offset_min), offset_min * 60) == at("2026-03-10 10:15:00",
                                                                                          offset_min)
    # exactly on the grid: the next one, not the same instant again (no file twice)
    assert next_due(rule, at("2026-03-10 10:15:00", offset_min), offset_min * 60) == at("2026-03-10 10:30:00",
                                                                                          offset_min)


def test_every_period_that_does_not_divide_the_day_restarts_at_local_midnight():
    rule = Rule("every", every_min=7 * 60)        # 00:00, 07:00, 14:00, 21:00, then 00:00 again
    assert next_due(rule, at("2026-03-10 21:30:00", 120), 7200) == at("2026-03-11 00:00:00", 120)


def test_daily_at_a_local_time_today_or_tomorrow():
    rule = Rule("daily", time_of_day="02:30")
    assert next_due(rule, at("2026-03-10 01:00:00", 60), 3600) == at("2026-03-10 02:30:00", 60)
    assert next_due(rule, at("2026-03-10 02:30:00", 60), 3600) == at("2026-03-11 02:30:00", 60)


@pytest.mark.parametrize("now, expected", [
    ("2026-03-10 12:00:00", "2026-03-13 06:00:00"),      # Tuesday -> Friday this week
    ("2026-03-13 05:59:59", "2026-03-13 06:00:00"),      # Friday before the time -> today
    ("2026-03-13 06:00:00", "2026-03-20 06:00:00"),      # Friday at the time -> next week
    ("2026-03-14 00:00:00", "2026-03-20 06:00:00"),      # Saturday -> next Friday
])
def test_weekly_on_a_day_at_a_local_time(now, expected):
    assert datetime.date(2026, 3, 13).weekday() == 4          # the dates above: 13 March 2026 is a Friday
    rule = Rule("weekly", time_of_day="06:00", weekday="fri")
    assert next_due(rule, at(now, -240), -240 * 60) == at(expected, -240)


def test_off_is_never_due():
    assert next_due(Rule("off"), at("2026-03-10 10:00:00")) is None


def test_rules_read_from_the_settings_names():
    values = {"push.schedule.energy.mode": "daily", "push.schedule.energy.every_min": 60,
              "push.schedule.energy.time": "23:45", "push.schedule.energy.weekday": "sun"}
    rule = Rule.from_settings(values.__getitem__, "energy")
    assert (rule.mode, rule.time_s, rule.weekday) == ("daily", 23 * 3600 + 45 * 60, 6)


def test_the_file_name_stamp_is_local_time():
    assert stamp(at("2019-01-18 15:15:10", 60), 3600) == "2019-01-18_15-15-10"      # the manual's example name
