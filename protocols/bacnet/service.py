"""The BACnet/IP service: switched by ``bacnet.enabled`` and ``policy.bacnet`` (SPEC §3.3, §8).

Opening builds the router and one virtual device per meter of the topology
(``stack.py``) on the daemon's loop; closing drops the UDP port at once.
Changing the port, bind address, main instance or network number reopens.
"""

import logging

from daemon.service import SwitchedService
from protocols.bacnet import ede
from protocols.bacnet.site import Site
from protocols.bacnet.stack import BacnetStack

log = logging.getLogger("gateway.bacnet")


class BacnetService(SwitchedService):
    name = "bacnet"
    reopen_keys = ("bacnet.port", "bacnet.bind", "bacnet.main_instance", "bacnet.network")

    def __init__(self, door):
        SwitchedService.__init__(self, door)
        self.site = Site(door)
        self.stack = None
        self.port = None
        door.on_topology_change(self._topology_changed)
        door.publish_document("bacnet-ede.csv", "text/csv; charset=utf-8", self._ede)
        door.publish_document("bacnet-pics.md", "text/markdown; charset=utf-8", self._pics)

    async def _open(self):
        settings = self.settings
        stack = BacnetStack(self.site)
        stack.admit = lambda ip, size: self.door.admit(ip, self.port, size)
        try:
            bound = await stack.open(settings.get("bacnet.bind"), settings.get("bacnet.port"),
                                     settings.get("bacnet.main_instance"), settings.get("bacnet.network"))
        except OSError:
            stack.close()
            raise
        self.stack = stack
        self.port = bound[1]
        await stack.sync(self.door.devices())
        await stack.announce()

    async def _close(self):
        self.stack.close()
        self.stack = None
        self.port = None
        self.site.priorities.clear()

    def _topology_changed(self, topology):
        if self.stack is not None:
            self.stack.sync(topology.devices)

    def _ede(self):
        return ede.ede_csv(self.door.setting, self.door.devices(), now=self.door.time())

    def _pics(self):
        return ede.pics(self.door.setting, self.door.devices())

    def status(self):
        out = SwitchedService.status(self)
        out["port"] = self.port
        out["transport"] = "udp"
        out["devices"] = 1 + sum(1 for entry in self.stack.meters.values() if entry[1] is not None) \
            if self.stack else 0
        out["counters"] = dict(self.site.counters)
        return out
