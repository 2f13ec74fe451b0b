"""Which instants a (UTC)TimeSynchronization may set the gateway clock to.

A BACnet Date and Time hold more than instants: unspecified fields (255),
patterns (months 13/14 odd/even, days 32-34 last/odd/even), and whatever
the octets say: 30 February, 99:99:99, any year from 1900 to 2155. A clock
set to one of those is wrong everywhere the gateway tells the time (logs,
curves, exports, the meters after the next SNTP round), so the request is
refused unless it names one real instant (a calendar date, a time of day,
the weekday matching the date or unspecified) within the window: not
before EARLIEST_YEAR (older than any build of this firmware: a clock there
is a wrong clock) and before LATEST_YEAR (a product's service life, twice).
"""

import calendar

EARLIEST_YEAR = 2020
LATEST_YEAR = 2070                      # exclusive: the window ends on 1 January of that year
EARLIEST = calendar.timegm((EARLIEST_YEAR, 1, 1, 0, 0, 0))
LATEST = calendar.timegm((LATEST_YEAR, 1, 1, 0, 0, 0))
UNSPECIFIED = 255


def instant(date, time, offset_min):
    """(unix time, None) of a BACnet Date (year - 1900, month, day, weekday) and Time (hour, minute, second,
    hundredths) read as local time ``offset_min`` east of UTC (0 for UTC), or (None, why) when they are
    not one instant of the window."""
    year, month, day, weekday = date
    hour, minute, second, hundredth = time
    if UNSPECIFIED in (year, month, day, hour, minute, second):
        return None, "a field is unspecified"
    year += 1900
    if not 1 <= month <= 12:
        return None, "month %d is not a month" % month
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None, "%04d-%02d has no day %d" % (year, month, day)
    if weekday != UNSPECIFIED and weekday != calendar.weekday(year, month, day) + 1:     # BACnet: Monday = 1
        return None, "%04d-%02d-%02d is not weekday %d" % (year, month, day, weekday)
    if hour > 23 or minute > 59 or second > 59 or (hundredth != UNSPECIFIED and hundredth > 99):
        return None, "%02d:%02d:%02d.%02d is not a time of day" % (hour, minute, second, hundredth)
    hundredth = 0 if hundredth == UNSPECIFIED else hundredth
    ts = calendar.timegm((year, month, day, hour, minute, second)) + hundredth / 100.0 - offset_min * 60
    if not EARLIEST <= ts < LATEST:
        return None, "%04d-%02d-%02d is outside %d..%d" % (year, month, day, EARLIEST_YEAR, LATEST_YEAR - 1)
    return ts, None
