"""One device summary, one rule: what every protocol and page says about a meter.

The Modbus gateway table, SNMP's device table, BACnet's Device
``System_Status``/``Status_Flags`` and the AIs' ``Reliability``, and
``/api/status`` all map the same state, so a meter cannot read *operational*
in one protocol and *conflict* in another. States, worst first:

* ``conflict``  — another device answers at its address (system alarm 4);
* ``comm_lost`` — it stopped answering (system alarm 3);
* ``unknown``   — its bus is not mastered or it never answered yet;
* ``stale``     — it answers, but a row holds a value older than the freshness limit;
* ``ok``;
* ``absent``    — no device of the topology at that address.
"""

ABSENT = "absent"
OK = "ok"
STALE = "stale"
COMM_LOST = "comm_lost"
CONFLICT = "conflict"
UNKNOWN = "unknown"
STATES = (ABSENT, OK, STALE, COMM_LOST, CONFLICT, UNKNOWN)


def link_state(conflict, comm_lost, answered):
    """The cheap first step: CONFLICT, COMM_LOST, UNKNOWN, or OK when the device answers cleanly.

    Per-value readers (a BACnet AI's Reliability) need only this; the row
    ages that make ``stale`` are the second step, ``device_state``.
    """
    if conflict:
        return CONFLICT
    if comm_lost:
        return COMM_LOST
    if not answered:
        return UNKNOWN
    return OK


def device_state(link, stale_rows):
    """The state of a device of the topology: its link state, or STALE when it answers but a row is stale."""
    return STALE if link == OK and stale_rows else link


class DeviceSummary:
    """A device's state, the age of its oldest value (s, None before the first) and its bus counters."""
    __slots__ = ("address", "bus", "state", "age", "counters", "last_success")

    def __init__(self, address, bus, state, age, counters, last_success):
        self.address = address
        self.bus = bus
        self.state = state
        self.age = age
        self.counters = counters
        self.last_success = last_success

    def as_dict(self):
        return {"state": self.state, "age_s": None if self.age is None else round(self.age, 1),
                "last_success": self.last_success}

    def __repr__(self):
        return "<DeviceSummary %s@%d %s>" % (self.bus, self.address, self.state)
