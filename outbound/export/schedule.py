"""When each data type's export is due (SPEC §5: every X minutes or hours, or at a time of the day or week).

Pure: the export service asks ``next_due(rule, after, local_offset_s)`` with the gateway clock's time and the
local offset (time zone + daylight saving). ``every`` runs on the grid of its period counted from midnight
local time, so a 60-minute export lands on the hour and a 15-minute one on the quarter, whatever time the
gateway started; ``daily`` and ``weekly`` at the local time of day the settings give.
"""

import calendar
import time

from daemon.state.settings import WEEKDAYS

DAY_S = 86400


class Rule:
    """One data type's schedule, read from ``push.schedule.<data_type>.*``."""
    __slots__ = ("mode", "every_s", "time_s", "weekday")

    def __init__(self, mode, every_min=60, time_of_day="00:00", weekday="mon"):
        self.mode = mode
        self.every_s = int(every_min) * 60
        hours, minutes = (int(part) for part in time_of_day.split(":"))
        self.time_s = hours * 3600 + minutes * 60
        self.weekday = WEEKDAYS.index(weekday)

    @classmethod
    def from_settings(cls, get, data_type):
        prefix = "push.schedule.%s." % data_type
        return cls(get(prefix + "mode"), get(prefix + "every_min"), get(prefix + "time"), get(prefix + "weekday"))

    def __repr__(self):
        return "Rule(%s, every %d s, at %d s, weekday %d)" % (self.mode, self.every_s, self.time_s, self.weekday)


def next_due(rule, after, local_offset_s=0):
    """The first due time strictly after ``after`` (UTC seconds), or None when the rule is off."""
    if rule.mode == "off":
        return None
    local = after + local_offset_s
    midnight = local - local % DAY_S
    if rule.mode == "every":
        since = local - midnight
        return midnight + min((since // rule.every_s + 1) * rule.every_s, DAY_S) - local_offset_s
    candidate = midnight + rule.time_s
    if rule.mode == "daily":
        if candidate <= local:
            candidate += DAY_S
        return candidate - local_offset_s
    weekday = time.gmtime(midnight).tm_wday           # 0 = Monday, as WEEKDAYS
    candidate += ((rule.weekday - weekday) % 7) * DAY_S
    if candidate <= local:
        candidate += 7 * DAY_S
    return candidate - local_offset_s


def stamp(unix_time, local_offset_s=0):
    """``YYYY-MM-DD_HH-MM-SS`` in local time: the date part of an export file's name."""
    return time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(unix_time + local_offset_s))


def utc(year, month, day, hour=0, minute=0, second=0):
    """UTC seconds of a calendar time (tests and tools)."""
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
