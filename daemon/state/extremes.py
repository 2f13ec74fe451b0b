"""Extremes: the minimum and maximum of each value the gateway has read, with when each was seen.

One object on the gateway (``gateway.extremes``), fed by a cache
subscription, read by every protocol that serves min/max: BACnet's
Min/Max_Pres_Value and Min/Max_Average_Value (annex II) and SNMP table 23.
Keeping them in one place means BACnet and SNMP always agree, and the fold
costs once per poll batch however many protocols serve it.

What it is, and is not:

* the extremes of the values *the gateway polled* since **the daemon
  started** — not the meters' own min/max registers (the registry has none).
  They live in memory only and start empty at every start; nothing is
  written to the flash.
* only kinds whose min/max means something are folded (``TRACKED_KINDS``):
  instantaneous values, averages and THD. Energy indexes only grow, load
  curve points and I/O states are not quantities with extremes.
* a device removed from the topology, or replaced at its address by another
  meter (another NET ID), loses its extremes: they were another meter's.
* ``reset()`` empties all of them, a device's or one load's (an operator
  starting a new observation period).
"""

from core import registry

TRACKED_KINDS = ("inst", "avg", "thd")
MIN, MIN_TS, MAX, MAX_TS = range(4)     # positions in an entry
_NONE = {}                              # an empty row, never written


def tracked_keys():
    return frozenset(row[registry.KEY] for row in registry.MEASUREMENTS if row[registry.KIND] in TRACKED_KINDS)


class Extremes:
    def __init__(self, topology):
        self.topology = topology
        self.tracked = tracked_keys()
        self.resets = 0
        self._entries = {}           # (address, load) -> {key: [min, min_ts, max, max_ts]}: one row a batch
        self._seen_version = None
        self._netids = {}            # address -> key (Device.uid) of the meter the entries belong to

    # ------------------------------------------------------------ cache subscriber

    def on_update(self, address, load, values, ts):
        """Fold one poll batch (``Cache.subscribe`` callback)."""
        self._follow_topology()
        tracked, row = self.tracked, self._entries.get((address, load))
        for key, value in values.items():
            if value is None or key not in tracked:
                continue
            if row is None:
                row = self._entries[(address, load)] = {}
            entry = row.get(key)
            if entry is None:
                row[key] = [value, ts, value, ts]
                continue
            if value < entry[MIN]:
                entry[MIN], entry[MIN_TS] = value, ts
            if value > entry[MAX]:
                entry[MAX], entry[MAX_TS] = value, ts

    # ------------------------------------------------------------ readers

    def get(self, address, load, key):
        """(min, min_ts, max, max_ts) of a value, or None when none was seen."""
        self._follow_topology()
        entry = self._entries.get((address, load), _NONE).get(key)
        return tuple(entry) if entry is not None else None

    def __len__(self):
        return sum(len(row) for row in self._entries.values())

    def items(self):
        """((address, load, key), [min, min_ts, max, max_ts]) of every extreme kept (tests, diagnosis)."""
        for (address, load), row in self._entries.items():
            for key, entry in row.items():
                yield (address, load, key), entry

    # ------------------------------------------------------------ forgetting

    def reset(self, address=None, load=None):
        """Start over: every extreme, one device's (``address``) or one load's."""
        if address is None:
            self._entries.clear()
        else:
            for k in [k for k in self._entries if k[0] == address and (load is None or k[1] == load)]:
                del self._entries[k]
        self.resets += 1

    def forget(self, address):
        """Drop a device's extremes (it left, or another meter took its address)."""
        for k in [k for k in self._entries if k[0] == address]:
            del self._entries[k]

    def _follow_topology(self):
        """Forget devices that left the topology or changed NET ID (cheap when it did not change)."""
        topology = self.topology
        if topology.version == self._seen_version:
            return
        self._seen_version = topology.version
        netids = dict((d.address, d.uid) for d in topology.devices)
        for address in set(self._netids) | set(k[0] for k in self._entries):
            if address not in netids or self._netids.get(address, netids[address]) != netids[address]:
                self.forget(address)
        self._netids = netids
