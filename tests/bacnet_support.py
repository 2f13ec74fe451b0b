"""Helpers of the BACnet tests: the demo site with BACnet/IP on a free loopback port and a client.

(No tests here: the BACnet test modules import it.) The peers themselves
(the Node.js client, hand-built frames) are tests/bacnet/bacnet_peer.py.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bacnet"))

from bacnet_peer import DEVICE, PROP, NodeBacnet, frame_read_property  # noqa: E402
from conftest import DemoSite, demo_devices, free_udp_port, wait_for  # noqa: E402
from protocols.bacnet import BacnetService  # noqa: E402

NET = 1000                  # the virtual network of the meters
MAIN = 100                  # the gateway's device instance; a meter's is MAIN + its address
DEMO_ADDRESSES = tuple(d.address for d in demo_devices())


class Site(DemoSite):
    """The demo site with BACnet on loopback port 0 (the service binds a free port and reports it), its stack
    settled; ``node``: the Node.js client."""

    def __init__(self, tmp_path, overrides=None, clock=None):
        super().__init__(tmp_path, BacnetService, {"bacnet.enabled": True, "bacnet.port": 0,
                                                   "bacnet.bind": "127.0.0.1", "gateway.location": "Switchboard B2",
                                                   "time.utc_offset_min": 60},
                         overrides, clock)

    async def ready(self, stack):
        await wait_for(lambda: self.service.stack is not None and self.service.stack.settled()
                       and len(self.service.stack.meters) == len(DEMO_ADDRESSES))
        # @bacnet-js/client takes its UDP port as a number and cannot bind 0: it keeps a picked free port
        self.node = await stack.enter_async_context(NodeBacnet(free_udp_port()))

    @property
    def port(self):
        """The port the service bound (None while closed; a reopen on port 0 binds another)."""
        return self.service.port

    @property
    def gateway(self):
        return {"address": "127.0.0.1:%d" % self.port}

    def meter(self, address):
        return {"address": "127.0.0.1:%d" % self.port, "net": NET, "adr": [address]}


async def nothing_answered_so_far(raw, site, invoke=250):
    """What ``raw`` sent to the gateway so far got no answer, proven by a positive event rather than a wait:
    a ReadProperty sent now (``invoke``) gets the first answer; then, once no datagram is in process any
    more, a second one (``invoke`` + 1) gets the next. An answer to anything sent before would come first."""
    server = site.service.stack.server
    for marker in (invoke, invoke + 1):
        raw.send(frame_read_property(marker, DEVICE, MAIN, PROP["object_name"]), site.port)
        kind, answer = await raw.answer()
        assert (kind, answer.get("invoke")) == ("complex", marker), ("an answer came first", kind, answer)
        await wait_for(lambda: not server.inflight and not server.deferred)
