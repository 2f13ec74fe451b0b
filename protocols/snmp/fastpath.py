"""The v1/v2c intake: refusals before any costly decode, and the read fast path answered without pyasn1.

A v1/v2c datagram is read strictly (ber.py) up to its community and PDU tag
first: a community unknown for its version is dropped and counted
(snmpInBadCommunityNames, RFC 3584) without reading further; then the whole
message must pass the strict decoder, or it is dropped as a parse error
(snmpInASNParseErrs: RFC 3417 §8 allows neither indefinite lengths nor
constructed forms, and request-id is an Integer32, RFC 3416 §3). A GET,
GETNEXT or GETBULK is answered here from the OID index; only a well-formed
SET (with a community of its version) and a Response with the trap community
(an inform's acknowledgement) reach pysnmp, so pyasn1 never decodes what
anyone could send without a community (issue 13). Other PDU types (traps to
an agent) are dropped.

Answers follow RFC 3416 (v2c exceptions noSuchObject / noSuchInstance /
endOfMibView) and RFC 3584 for v1 (noSuchName, Counter64 objects invisible).
GETBULK answers are bounded by ``max_varbinds`` and, since the default
community is no credential, by ``bulk_factor`` × the request's size and one
Ethernet MTU (``bulk_mtu``): a 44-byte request cannot draw 5.9 KB to a forged
source address. RFC 3416 §4.2.3 lets the agent return fewer varbinds; a walk
takes more round trips (each answer carries at least one repetition).
"""

import collections

from protocols.snmp import ber

DROP = b""          # handled: nothing to send
PASS = None         # pysnmp processes it


class FastPath:
    max_varbinds = 256          # per GETBULK answer (net-snmp's own default is 100)
    max_message = 65507         # bytes: the largest UDP payload
    bulk_mtu = 1472             # bytes: one Ethernet frame's UDP payload (RFC 3417 §3.2's recommended size)
    bulk_factor = 8             # a GETBULK answer is at most this many times its request

    def __init__(self, index, counters=None):
        self.index = index
        self.communities = {0: frozenset(), 1: frozenset()}
        self.trap_communities = frozenset()
        self.counters = collections.Counter() if counters is None else counters

    def set_communities(self, v1_read, v1_write, v2c_read, v2c_write, trap=""):
        enc = lambda s: frozenset([s.encode("utf-8")])  # noqa: E731
        self.communities = {0: enc(v1_read) | enc(v1_write), 1: enc(v2c_read) | enc(v2c_write)}
        self.trap_communities = enc(trap)

    def handle(self, datagram):
        """Response bytes, DROP, or PASS to let pysnmp process the datagram (a v1/v2c message)."""
        counters = self.counters
        try:
            head = ber.decode_head(datagram)
            version, community, pdu_type = head[:3]
        except ber.BerError:
            return self._drop("snmpInASNParseErrs")
        if pdu_type == ber.RESPONSE:
            allowed = self.trap_communities
        elif pdu_type in (ber.GET, ber.GETNEXT, ber.GETBULK, ber.SET):
            allowed = self.communities[version]
        else:
            return self._drop("unexpected_pdu")
        if community not in allowed:
            return self._drop("snmpInBadCommunityNames")
        try:
            req = ber.decode_request(datagram, head)
        except ber.BerError:
            return self._drop("snmpInASNParseErrs")
        if pdu_type in (ber.SET, ber.RESPONSE):
            return PASS
        counters["snmpInPkts"] += 1
        counters["answered"] += 1
        self.index.refresh()
        if pdu_type == ber.GET:
            return self._get(req)
        if pdu_type == ber.GETNEXT:
            return self._next(req)
        return self._bulk(req, min(self.max_message, self.bulk_mtu, self.bulk_factor * len(datagram)))

    def _drop(self, counter):
        self.counters["snmpInPkts"] += 1
        self.counters[counter] += 1
        return DROP

    # ------------------------------------------------------------ operations

    def _finish(self, req, varbinds):
        payload = b"".join(varbinds)
        message = ber.encode_response(req.raw_head, req.raw_request_id, 0, 0, payload)
        if len(message) > self.max_message:
            if req.version == 0:
                return ber.encode_response(req.raw_head, req.raw_request_id, ber.TOO_BIG, 0, req.raw_varbinds)
            return ber.encode_response(req.raw_head, req.raw_request_id, ber.TOO_BIG, 0, b"")
        return message

    def _v1_error(self, req, status, index):
        return ber.encode_response(req.raw_head, req.raw_request_id, status, index, req.raw_varbinds)

    def _get(self, req):
        index = self.index
        v1 = req.version == 0
        varbinds = []
        for i, oid in enumerate(req.oids):
            found = index.get(oid)
            if found is None or (v1 and found[1] == ber.COUNTER64):
                if v1:
                    return self._v1_error(req, ber.NO_SUCH_NAME, i + 1)
                tag = ber.NO_SUCH_INSTANCE if index.is_object(oid) else ber.NO_SUCH_OBJECT
                varbinds.append(ber.encode_varbind(req.raw_oids[i], bytes((tag, 0))))
            else:
                varbinds.append(ber.encode_varbind(req.raw_oids[i], ber.encode_value(found[1], found[2])))
        return self._finish(req, varbinds)

    def _next_of(self, oid, v1):
        """(oid, encoded oid, tag, value) after ``oid``, Counter64 skipped for v1; None at the end."""
        index = self.index
        while True:
            found = index.next(oid)
            if found is None or not (v1 and found[2] == ber.COUNTER64):
                return found
            oid = found[0]

    def _next(self, req):
        v1 = req.version == 0
        varbinds = []
        for i, oid in enumerate(req.oids):
            found = self._next_of(oid, v1)
            if found is None:
                if v1:
                    return self._v1_error(req, ber.NO_SUCH_NAME, i + 1)
                varbinds.append(ber.encode_varbind(req.raw_oids[i], b"\x82\x00"))
            else:
                varbinds.append(ber.encode_varbind(found[1], ber.encode_value(found[2], found[3])))
        return self._finish(req, varbinds)

    def _bulk(self, req, limit):
        """Non-repeaters, then repetitions while the answer stays within ``limit`` bytes (at least one)."""
        oids = req.oids
        non_repeaters = min(max(req.non_repeaters, 0), len(oids))
        repetitions = max(req.max_repetitions, 0)
        repeaters = len(oids) - non_repeaters
        budget = limit - len(req.raw_head) - len(req.raw_request_id) - 32
        varbinds = []
        for i in range(non_repeaters):
            found = self._next_of(oids[i], False)
            if found is None:
                vb = ber.encode_varbind(req.raw_oids[i], b"\x82\x00")
            else:
                vb = ber.encode_varbind(found[1], ber.encode_value(found[2], found[3]))
            budget -= len(vb)
            varbinds.append(vb)
        if budget < 0:
            return self._finish(req, varbinds)      # the non-repeaters alone (tooBig past max_message)
        if repeaters:
            repetitions = min(repetitions, max(1, (self.max_varbinds - non_repeaters) // repeaters))
        cursors = list(oids[non_repeaters:])
        ended = [False] * repeaters
        for _ in range(repetitions):
            for j in range(repeaters):
                found = None if ended[j] else self._next_of(cursors[j], False)
                if found is None:
                    ended[j] = True
                    vb = ber.encode_varbind(ber.encode_oid(cursors[j]), b"\x82\x00")
                else:
                    cursors[j] = found[0]
                    vb = ber.encode_varbind(found[1], ber.encode_value(found[2], found[3]))
                budget -= len(vb)
                if budget < 0 and len(varbinds) > non_repeaters:
                    return self._finish(req, varbinds)   # truncated from the end (RFC 3416 4.2.3)
                varbinds.append(vb)
            if all(ended):
                break
        return self._finish(req, varbinds)
