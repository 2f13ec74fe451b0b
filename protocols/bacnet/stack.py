"""The gateway as a BACnet router to a virtual network of meters (SPEC §3.3).

As in bacpypes3's "ipv4 to vlan" sample: the gateway's application has two
ports, B/IP (``transport.py``) and a bacpypes3 ``VirtualNetwork``; every
meter of the topology is an application of its own on that virtual network
(MAC = its Modbus address), so bacpypes3's network layer does the routing,
Who-Is-Router-To-Network and I-Am-Router-To-Network. A supervisor reaches a
meter at network ``bacnet.network``, MAC = Modbus address; a global-broadcast
Who-Is finds the gateway and every meter.

The meters follow the topology: ``sync`` adds, rebuilds and removes meter
applications one at a time, yielding to the loop between two.
"""

import asyncio
import itertools
import logging
from copy import deepcopy

from bacpypes3.pdu import LocalStation
from bacpypes3.vlan import VirtualNetwork
from bacpypes3.vlan.link import VirtualLinkLayer

from protocols.bacnet import apps, objects, points as pts, rpm
from protocols.bacnet.fastread import FastReader
from protocols.bacnet.site import GatewayView, MeterView
from protocols.bacnet.transport import GuardedDatagramServer, GuardedLinkLayer

log = logging.getLogger("gateway.bacnet")

ROUTER_MAC = 0                     # Modbus address 0 is never a device
_names = itertools.count(1)


class GuardedVirtualNetwork(VirtualNetwork):
    """bacpypes3's virtual LAN, minus the random drops, with each delivery's failure contained.

    A unicast PDU is handed over as it is (its sender is done with it); only a
    broadcast is copied for each receiver (decoding consumes a PDU).
    """

    counters = None                   # the Site's Counter, set by BacnetStack.open

    async def process_pdu(self, pdu):
        broadcast = pdu.pduDestination == self.broadcast_address
        for node in list(self.nodes):
            if broadcast and pdu.pduSource == node.address:
                continue
            if not broadcast and pdu.pduDestination != node.address:
                continue
            try:
                await node.response(deepcopy(pdu) if broadcast else pdu)
            except Exception:
                self.counters["vlan_errors"] += 1

    def close(self):
        VirtualNetwork._networks.pop(self.name, None)


def ip_network_number(virtual_network):
    """The internal number of the IP side (never on the wire): anything but the virtual one."""
    return 1 if virtual_network != 1 else 2


class BacnetStack:
    def __init__(self, site):
        self.site = site
        self.counters = site.counters
        self.server = None
        self.router = None
        self.vlan = None
        self.meters = {}         # address -> (signature, application, link layer)
        self.main_instance = None
        self.network = None
        self._sync_task = None
        self._wanted = None
        self.admit = None

    async def open(self, host, port, main_instance, network):
        self.main_instance, self.network = main_instance, network
        self.server = GuardedDatagramServer(self.counters)
        self.server.admit = self.admit      # the gateway's firewall, asked for every datagram (set by the service)
        bound = await self.server.open(host, port)
        self.server.networks = frozenset((network,))
        self.server.elements = rpm.elements_asked
        self.server.fast = FastReader(self).answer          # the common reads, answered in the datagram's callback
        self.vlan = GuardedVirtualNetwork("openm70-bacnet-%d" % next(_names))
        self.vlan.counters = self.counters
        view = GatewayView(self.site, main_instance)
        nse = apps.RouterServiceElement()
        self.router = apps.VirtualDeviceApplication.build(
            view, self.site, self.counters, [objects.VirtualDevice(view)], apps.GATEWAY_SERVICES, nse)
        ip_net = ip_network_number(network)
        self.router.nsap.bind(GuardedLinkLayer(self.server), net=ip_net, address=self.server.local_address)
        mac = LocalStation(ROUTER_MAC)
        self.router.nsap.bind(VirtualLinkLayer(mac, self.vlan.name), net=network, address=mac)
        nse.ip_adapter = self.router.nsap.adapters[ip_net]
        return bound

    async def announce(self):
        """I-Am-Router-To-Network on the IP side, as a router does when it starts."""
        nse = self.router.nse
        try:
            await nse.i_am_router_to_network(adapter=nse.ip_adapter, network=[self.network])
        except Exception:
            self.counters["announce_errors"] += 1

    def close(self):
        if self._sync_task is not None:
            self._sync_task.cancel()
            self._sync_task = None
        if self.server is not None:
            self.server.close()
        for _signature, _app, link in self.meters.values():
            if link is not None:
                self._detach(link)
        self.meters.clear()
        if self.vlan is not None:
            self.vlan.close()

    # topology --------------------------------------------------------------
    def sync(self, devices):
        """Make the meter applications follow ``devices`` (done in a task, one device per step)."""
        self._wanted = dict((d.address, d) for d in devices)
        if self._sync_task is None or self._sync_task.done():
            self._sync_task = asyncio.get_running_loop().create_task(self._sync(), name="bacnet-sync")
        return self._sync_task

    async def _sync(self):
        while True:
            wanted = self._wanted
            step = self._next_step(wanted)
            if step is None:
                if wanted is self._wanted:
                    return
                continue
            address, device = step
            old = self.meters.pop(address, None)
            if old is not None and old[2] is not None:
                self._detach(old[2])
                if device is None or old[1] is None or old[1].view.device.uid != device.uid:
                    self.site.forget(address)       # another meter: its extremes and commands go
            if device is not None:
                try:
                    self.meters[address] = self._build(device)
                except Exception:                   # e.g. a device named like one of its objects
                    self.counters["build_errors"] += 1
                    self.meters[address] = (_signature(device), None, None)
                    log.exception("BACnet device for %r not built", device)
            await asyncio.sleep(0)

    def _next_step(self, wanted):
        for address in sorted(self.meters):
            if address not in wanted:
                return address, None
        for address in sorted(wanted):
            device = wanted[address]
            entry = self.meters.get(address)
            if entry is None or entry[0] != _signature(device):
                return address, device
        return None

    def _build(self, device):
        view = MeterView(self.site, pts.device_instance(self.main_instance, device.address), device)
        meter_points = pts.device_points(device)
        if device.name in set(p.name for p in meter_points):       # names are unique within a device
            view.object_name = "%s [%d]" % (device.name, view.instance)
        objs = [objects.VirtualDevice(view)] + [objects.make_object(view, p) for p in meter_points]
        app = apps.VirtualDeviceApplication.build(view, self.site, self.counters, objs)
        mac = LocalStation(device.address)
        link = VirtualLinkLayer(mac, self.vlan.name)
        app.nsap.bind(link, address=mac)
        return _signature(device), app, link

    @staticmethod
    def _detach(link):
        """Take a meter's link off the virtual LAN (its application goes with it)."""
        if link.node.lan is not None:
            link.node.lan.remove_node(link.node)

    def settled(self):
        return self._sync_task is None or self._sync_task.done()


def _signature(device):
    return repr(sorted(device.as_dict().items()))
