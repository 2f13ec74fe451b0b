"""The faults a simulated meter can be given, with their kinds and ranges: checked once, before anything changes.

Topology files (``silent``, ``extra_delay_ms``, ``crc_error_rate``) and the
simulator's HTTP routes (board/simroutes.py: ``silent``, ``extra_delay``,
``crc_error_rate``, ``address``, ``inputs``) both come through here. A NaN,
an infinity or a delay of years would otherwise reach the simulated bus's
thread (its waits raise on them) and silence every meter of the line until a
restart. The bus keeps its own guard (``bus_delay``) for values set on a
meter directly. A topology's line settings (baud, turnaround), which the
bus thread sleeps on as well, are checked here too.
"""

import math

MAX_EXTRA_DELAY_S = 10.0          # twice the longest bus timeout a master can be given (5000 ms)


def _number(name, value, low, high, unit=""):
    """``value`` as a float within low..high, or a ValueError that says what is expected."""
    expected = "%s must be a number within %g..%g%s" % (name, low, high, unit)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("%s, not %r" % (expected, value))
    try:
        number = float(value)
    except OverflowError:                 # an integer of hundreds of digits
        raise ValueError("%s, not a %d-digit number" % (expected, len(str(abs(value))))) from None
    if not math.isfinite(number) or not low <= number <= high:
        raise ValueError("%s, not %r" % (expected, value))
    return number


def _integer(name, value, low, high):
    if type(value) is not int or not low <= value <= high:
        shown = value if type(value) is not int or abs(value) < 10 ** 12 else "a %d-digit number" % len(str(value))
        raise ValueError("%s must be an integer within %d..%d, not %r" % (name, low, high, shown))
    return value


def _flag(name, value):
    if not isinstance(value, bool):
        raise ValueError("%s must be true or false, not %r" % (name, value))
    return value


# name -> check(value) -> the value to set on the meter
RUN_TIME = {
    "silent": lambda v: _flag("silent", v),
    "extra_delay": lambda v: _number("extra_delay", v, 0, MAX_EXTRA_DELAY_S, " s"),
    "crc_error_rate": lambda v: _number("crc_error_rate", v, 0, 1),
    "address": lambda v: _integer("address", v, 1, 247),
    "inputs": lambda v: _integer("inputs", v, 0, 0xFF),
}


def checked(changes):
    """Run-time fault changes, every one checked (a ValueError names the first refused): {name: value}."""
    out = {}
    for name, value in changes.items():
        if name not in RUN_TIME:
            raise ValueError("cannot change %r (one of %s)" % (name, ", ".join(sorted(RUN_TIME))))
        out[name] = RUN_TIME[name](value)
    return out


def from_topology(spec):
    """The faults of one meter entry of a topology file: {silent, extra_delay (s), crc_error_rate}."""
    return {
        "silent": _flag("silent", spec.get("silent", False)),
        "extra_delay": _number("extra_delay_ms", spec.get("extra_delay_ms", 0), 0, MAX_EXTRA_DELAY_S * 1000,
                               " ms") / 1000.0,
        "crc_error_rate": _number("crc_error_rate", spec.get("crc_error_rate", 0), 0, 1),
    }


def line_from_topology(spec):
    """The line settings of one bus entry of a topology file, as SimBus takes them (its thread sleeps on them)."""
    parity = spec.get("parity", "N")
    if parity not in ("N", "E", "O"):
        raise ValueError("parity must be \"N\", \"E\" or \"O\", not %r" % (parity,))
    return {"baud": _integer("baud", spec.get("baud", 38400), 1200, 921600), "parity": parity,
            "stop_bits": _integer("stop_bits", spec.get("stop_bits", 1), 1, 2),
            "turnaround": _number("turnaround_ms", spec.get("turnaround_ms", 2), 0, 1000, " ms") / 1000.0}


def bus_delay(value):
    """A meter's extra delay as the bus thread may sleep it: whatever was set on the meter, a number of
    seconds within 0..MAX_EXTRA_DELAY_S (NaN and anything not a number count as none)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    try:
        value = float(value)
    except OverflowError:
        return MAX_EXTRA_DELAY_S if value > 0 else 0.0
    if math.isnan(value):
        return 0.0
    return min(max(value, 0.0), MAX_EXTRA_DELAY_S)
