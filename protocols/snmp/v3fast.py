"""The SNMPv3 read fast path: authNoPriv / authPriv GET, GETNEXT and GETBULK answered without pysnmp (issue 19).

Why: pysnmp decodes, decrypts and re-encodes every v3 message with pyasn1
(~5 ms for a 10-repetition GETBULK: a walk at 0.1 x net-snmp's snmpd).
Here the USM work is hashlib's HMAC and the cryptography package's AES
(usm.py) and the scoped PDU is read and answered with the v2c fast path's
codec and operations (ber.py, fastpath.py), from the same OID index.

The gate (v3gate.py) has already checked engine ID, user and security level.
This path answers only the common case, checked in RFC 3414 §3.2 order:

1. a user whose algorithms usm.py has (MD5, SHA, SHA-2; AES, AES-256),
2. a digest of the right length that verifies (§3.2.6),
3. in the time window (§3.2.7a: our boots, |time - ours| <= 150 s),
4. an encryptedPDU that decrypts to one well-formed scoped PDU (§3.2.8),
5. our contextEngineID, the default context, a GET, GETNEXT or GETBULK.

Anything else — wrong digest, not in time window, decryption error, another
context, a SET, DES — is passed to pysnmp unchanged, which answers it with
the same reports and counts it (usmStatsWrongDigests, ...NotInTimeWindows,
...DecryptionErrors) exactly as before. Both configured users read the whole
tree (VACM: view "all" for the ro and rw groups), so no view check is needed
for reads. GETBULK answers keep pysnmp's 64-varbind bound and fit the
requester's msgMaxSize (else tooBig, RFC 3416 §4.2.3 / RFC 3412 §7.1.3).
"""

import hmac
import os
import time

from protocols.snmp import ber
from protocols.snmp.fastpath import FastPath

PASS = None
USM = 3
WINDOW = 150                     # seconds (RFC 3414 §3.2.7)
MAX_BOOTS = 2 ** 31 - 1
MAX_MESSAGE = 65507              # the largest UDP payload
LEVEL = {0: 1, 1: 2, 3: 3}       # msgFlags auth/priv bits → security level
ENVELOPE = 200                   # bytes of a v3 response around its varbinds (headers, USM, keys up to 48 bytes)


class _ScopedAnswer(FastPath):
    """The v2c fast path's operations, returning the varbinds' bytes instead of a v2c message."""

    max_varbinds = 64            # pysnmp's BulkCommandResponder bound, kept for v3

    def _finish(self, req, varbinds):
        return b"".join(varbinds)


class V3Fast:
    def __init__(self, index, counters, max_size):
        self.ops = _ScopedAnswer(index, counters)
        self.counters = counters
        self.max_size = max_size          # our msgMaxSize (what the intake accepts)
        self.engine_id = b""
        self.users = {}                   # user name → usm.User (only users whose algorithms we have)
        self.boots = 0
        self.time_origin = 0.0            # time.time() when snmpEngineTime was 0
        self.salt = int.from_bytes(os.urandom(8), "big")

    def configure(self, engine_id, users, boots, engine_time):
        """Our engine ID, {name: usm.User}, snmpEngineBoots, and snmpEngineTime now (pysnmp's, so both paths
        tell the same time)."""
        self.engine_id = engine_id
        self.users = dict(users)
        self.boots = boots
        self.time_origin = time.time() - engine_time
        # the parts of every response that only change with the configuration
        self._context = ber.tlv(ber.OCTET_STRING, engine_id) + b"\x04\x00"
        self._usm_head = ber.tlv(ber.OCTET_STRING, engine_id) + ber.encode_integer(boots)
        self._glob_tail = dict((flags, ber.encode_integer(self.max_size) + bytes((4, 1, flags))
                                + ber.encode_integer(USM)) for flags in (1, 3))
        # per user: msgUserName and the digest's zeros (the USM parameters after snmpEngineTime)
        self._user_part = dict((name, ber.tlv(ber.OCTET_STRING, name) + bytes((4, user.mac_length))
                                + bytes(user.mac_length)) for name, user in self.users.items())

    def answer(self, datagram, head):
        """Response bytes, or PASS (pysnmp handles it) for a v3 message of our engine, a configured user at
        that user's level."""
        user = self.users.get(head.user)
        if user is None or user.level != LEVEL[head.flags & 0x03]:
            return PASS
        start, end = head.auth
        if end - start != user.mac_length:
            return PASS
        unsigned = datagram[:start] + bytes(end - start) + datagram[end:]
        if not hmac.compare_digest(user.sign(unsigned), datagram[start:end]):
            return PASS
        now = int(time.time() - self.time_origin)
        if self.boots >= MAX_BOOTS or head.boots != self.boots or abs(now - head.time) > WINDOW:
            return PASS
        data_start, data_end = head.data
        if user.level == 3:
            if len(head.salt) != 8:
                return PASS
            plain = user.crypt(datagram[data_start:data_end], head.boots, head.time, head.salt, False)
            try:
                tag, pos, scoped_end = ber.read_tlv(plain, 0, len(plain))
            except ber.BerError:
                return PASS
            if tag != ber.SEQUENCE or scoped_end != len(plain):
                return PASS
        else:
            plain, pos, scoped_end = datagram, data_start, data_end
        req = self._scoped_request(plain, pos, scoped_end)
        if req is None:
            return PASS
        counters = self.counters
        counters["snmpInPkts"] += 1
        counters["answered_v3"] += 1
        self.ops.index.refresh()
        limit = min(head.max_size, MAX_MESSAGE)
        if req.pdu_type == ber.GET:
            payload = self.ops._get(req)
        elif req.pdu_type == ber.GETNEXT:
            payload = self.ops._next(req)
        else:
            payload = self.ops._bulk(req, limit - ENVELOPE)
        message = self._response(head, user, req, 0, payload, now)
        if len(message) > limit:
            message = self._response(head, user, req, ber.TOO_BIG, b"", now)
        return message

    def _scoped_request(self, buf, pos, end):
        """The ber.Request of a scoped PDU for our engine's default context, or None (pysnmp decides)."""
        try:
            tag, s, e = ber.read_tlv(buf, pos, end)
            if tag != ber.OCTET_STRING or buf[s:e] != self.engine_id:
                return None
            tag, s, e = ber.read_tlv(buf, e, end)
            if tag != ber.OCTET_STRING or s != e:
                return None
            pdu_type, pstart, pend = ber.read_tlv(buf, e, end)
            if pdu_type not in (ber.GET, ber.GETNEXT, ber.GETBULK) or pend != end:
                return None
            req = ber.Request()
            req.version = 1
            req.raw_head = b""
            return ber.decode_pdu(buf, pdu_type, pstart, pend, req)
        except ber.BerError:
            return None

    def _response(self, head, user, req, status, payload, now):
        """The Response message: scoped PDU (encrypted under a fresh salt at authPriv), USM parameters, HMAC."""
        tlv = ber.tlv
        pdu = req.raw_request_id + (b"\x02\x01\x00" if status == 0 else ber.encode_integer(status)) \
            + b"\x02\x01\x00" + tlv(ber.SEQUENCE, payload)
        scoped = tlv(ber.SEQUENCE, self._context + tlv(ber.RESPONSE, pdu))
        if user.level == 3:
            self.salt = (self.salt + 1) & 0xFFFFFFFFFFFFFFFF        # RFC 3826 §3.1.1.1: a 64-bit counter
            salt = self.salt.to_bytes(8, "big")
            data = tlv(ber.OCTET_STRING, user.crypt(scoped, self.boots, now, salt, True))
            tail = b"\x04\x08" + salt
        else:
            data = scoped
            tail = b"\x04\x00"
        mac = user.mac_length
        usm = tlv(ber.SEQUENCE, self._usm_head + ber.encode_integer(now) + self._user_part[head.user] + tail)
        glob = tlv(ber.SEQUENCE, ber.encode_integer(head.msg_id) + self._glob_tail[head.flags & 0x03])
        usm_tlv = tlv(ber.OCTET_STRING, usm)
        body = b"\x02\x01\x03" + glob + usm_tlv + data
        message = tlv(ber.SEQUENCE, body)
        # the digest's place: the zeros before the privacy parameters' TLV, at the end of the USM sequence
        where = len(message) - len(body) + 3 + len(glob) + len(usm_tlv) - len(tail) - mac
        return message[:where] + user.sign(message) + message[where + mac:]
