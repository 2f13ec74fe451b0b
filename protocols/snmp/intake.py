"""Every SNMP datagram's first stop: size and version, then the v1/v2c fast path or the v3 gate.

Why (issue 13): pysnmp decodes a whole message with pyasn1 before it checks
a community or a user (0.3–0.6 s of the loop for one 56 KB datagram). Here,
with our strict codec only:

1. A datagram longer than ``MAX_DATAGRAM`` is dropped unread and counted as
   a parse error, as if our receive buffer ended there; it is also the
   msgMaxSize our own reports advertise. 4,096 bytes: RFC 3417 §3.2 asks an
   entity to accept 484 and recommends one Ethernet frame (1,472); 4,096
   still holds a v2c GET of ~150 metrology OIDs or a v3 authPriv GET of
   ~140, and bounds what pyasn1 may still be given (an authenticated v3
   message, a SET with a write community) to ~12 ms on the test machine.
2. msgVersion: v1/v2c go to the fast path (fastpath.py: community first,
   then the strict decoder), v3 to the gate (v3gate.py: engine ID, user and
   security level before the scoped PDU) and then, for a read of a known
   user, to the v3 fast path (v3fast.py), any other version is dropped
   (snmpInBadVersions), and so is what has no readable version
   (snmpInASNParseErrs).

The answer is response bytes, DROP, or PASS (pysnmp processes it). The
counters kept here are added to pysnmp's own where the agent serves them.
"""

import collections

from protocols.snmp import ber
from protocols.snmp.fastpath import DROP, FastPath
from protocols.snmp.v3fast import V3Fast
from protocols.snmp.v3gate import V3Gate

MAX_DATAGRAM = 4096


class Intake:
    def __init__(self, index, agent):
        self.counters = collections.Counter()
        self.fast = FastPath(index, self.counters)
        self.v3 = V3Gate(agent, self.counters, MAX_DATAGRAM)
        self.v3.fast = V3Fast(index, self.counters, MAX_DATAGRAM)

    def handle(self, datagram):
        """Response bytes, DROP, or PASS for one datagram."""
        counters = self.counters
        if len(datagram) > MAX_DATAGRAM:
            counters["snmpInPkts"] += 1
            counters["snmpInASNParseErrs"] += 1
            counters["oversized"] += 1
            return DROP
        try:
            version = ber.message_version(datagram)
        except ber.BerError:
            counters["snmpInPkts"] += 1
            counters["snmpInASNParseErrs"] += 1
            return DROP
        if version in (0, 1):
            return self.fast.handle(datagram)
        if version == 3:
            return self.v3.check(datagram)
        counters["snmpInPkts"] += 1
        counters["snmpInBadVersions"] += 1
        return DROP
