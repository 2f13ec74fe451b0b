"""What the runtime services share, and nothing more: not the gateway.

The composition root (``daemon/gateway.py``) builds one ``Parts`` and hands it
to the runtime services that need several of these (writes to devices, the
device-alarm reader, the curve download); front ends never see it, they get
the door (``daemon/api.py``).
"""

from daemon.runtime.staticblocks import StaticBlocks


class Parts:
    """The topology, the bus engines (bus name → BusEngine, filled as buses open), the cache,
    the settings and the one clock; ``static``: the meters' fixed registers pass-through learnt."""
    __slots__ = ("topology", "engines", "cache", "settings", "clock", "static")

    def __init__(self, topology, engines, cache, settings, clock):
        self.topology = topology
        self.engines = engines
        self.cache = cache
        self.settings = settings
        self.clock = clock
        self.static = StaticBlocks()
