"""The poll tiers: how often each kind of measurement is read from a meter (issue 19).

Instantaneous values change every second and are what integrators watch, so
they are read every cycle; averages, THD and harmonics, min/max and energy
indexes move slowly (an average over its integration period, an index by a
few Wh a second) and are read at their own slower rates, leaving the bus to
the instantaneous values. Pure data (MicroPython-safe), keyed by the
registry's kinds (core/registry.py KIND_SNMP_TABLE).

Energies are also read promptly after each boundary of the integration
period (``storage.consumption_period_min``, daemon/runtime/poller.py), so a
period's consumption is computed from indexes read just after its end.
"""

from core import registry

FAST = "inst"

# tier, the registry kinds it holds, default seconds between two reads of it (0: every cycle); each slow tier's
# rate is the setting ``poll.<tier>_s`` (daemon/state/settings.py makes its rows from this table)
TIERS = (
    (FAST, ("inst", "io"), 0),
    ("avg", ("avg",), 30),
    ("thd", ("thd",), 30),
    ("maxmin", ("maxmin",), 30),
    ("energy", ("energy",), 60),
    ("load_curve", ("load_curve",), 60),
)

NAMES = tuple(row[0] for row in TIERS)
ENERGY = "energy"

_TIER_OF_KIND = dict((kind, row[0]) for row in TIERS for kind in row[1])
_PERIOD = dict((row[0], row[2]) for row in TIERS)


def tier_of(key):
    """The tier of a registry measurement; a key the registry does not know (a generic device's own
    ``user:`` value) is read with the fast tier."""
    try:
        return _TIER_OF_KIND[registry.get(key)[registry.KIND]]
    except KeyError:
        return FAST


def period(tier):
    """Default seconds between two reads of ``tier`` (0 for the fast tier: every cycle)."""
    return _PERIOD[tier]


def setting(tier):
    """The name of the setting that holds a slow tier's rate (seconds between two reads)."""
    return "poll.%s_s" % tier


SLOW = tuple(name for name, _kinds, every in TIERS if every)


def check_table():
    """Every registry kind is in exactly one tier, and the fast tier is read every cycle."""
    problems = []
    kinds = [kind for row in TIERS for kind in row[1]]
    for kind in registry.KIND_SNMP_TABLE:
        if kinds.count(kind) != 1:
            problems.append("kind %s is in %d tiers" % (kind, kinds.count(kind)))
    if _PERIOD.get(FAST) != 0:
        problems.append("the fast tier must be read every cycle")
    return problems
