"""The strict SNMPv3 header check in front of pysnmp: RFC 3412 §7.2.2–7.2.5 and RFC 3414 §3.2.1–3.2.5.

Why (issue 13): pysnmp decodes a whole v3 message with pyasn1 before it
checks anything, and a message with an empty authoritative engine ID and an
encrypted scoped PDU makes its USM push a security-state entry it never pops
(``process_incoming_message`` raises ``unknownEngineID`` without the state
reference: ~470 bytes per datagram, for ever). This gate reads only
msgGlobalData and msgSecurityParameters, with our strict codec, and lets
pysnmp see a message only when the next step is cryptographic:

- our engine ID, a configured user, that user's security level (or authNoPriv
  with boots and time 0: the time synchronisation step of discovery), and a
  msgData of the form the flags announce (encrypted exactly when privFlag);
- while v3 informs are on: another engine's ID in a message that is not
  reportable, from the trap user or (noAuthNoPriv) from no user: a
  receiver's answer to our inform, or its report to pysnmp's discovery.

Everything else is answered here with the report an authoritative engine owes
(usmStatsUnknownEngineIDs — which is also how engine-ID discovery is answered —,
usmStatsUnknownUserNames, usmStatsUnsupportedSecLevels; noAuthNoPriv, only when
the message is reportable) or dropped (snmpInASNParseErrs,
snmpUnknownSecurityModels, snmpInvalidMsgs), and counted. No pyasn1 runs
for any of them, and pysnmp keeps no state for them.
"""

from protocols.snmp import ber

DROP = b""
PASS = None

USM = 3
REPORT = 0xA8
MAX_INT32 = 2 ** 31 - 1
MIN_MAX_SIZE = 484                         # RFC 3412 msgMaxSize (484..2^31-1)
MAX_ENGINE_ID = 32                         # RFC 3411 SnmpEngineID; empty only in discovery
MAX_USER_NAME = 32                         # RFC 3414 usmUserName (SnmpAdminString (1..32))
REPORTABLE = 0x04
LEVELS = {0: 1, 1: 2, 3: 3}                # msgFlags auth/priv bits → noAuthNoPriv, authNoPriv, authPriv
USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)
REPORT_OIDS = {"usmStatsUnsupportedSecLevels": USM_STATS + (1, 0), "usmStatsUnknownUserNames": USM_STATS + (3, 0),
               "usmStatsUnknownEngineIDs": USM_STATS + (4, 0)}


class Header:
    """What the gate reads of one v3 message; ``scoped`` is the plaintext scoped PDU's (start, end) or None."""

    __slots__ = ("msg_id", "max_size", "flags", "model", "engine_id", "boots", "time", "user", "scoped", "auth",
                 "salt", "data")


def _integer(buf, pos, end, low, high):
    tag, start, stop = ber.read_tlv(buf, pos, end)
    if tag != ber.INTEGER:
        raise ber.BerError("INTEGER expected")
    value = ber.decode_integer(buf, start, stop)
    if not low <= value <= high:
        raise ber.BerError("INTEGER out of range")
    return value, stop


def _octets(buf, pos, end, most):
    tag, start, stop = ber.read_tlv(buf, pos, end)
    if tag != ber.OCTET_STRING or stop - start > most:
        raise ber.BerError("OCTET STRING expected")
    return bytes(buf[start:stop]), stop


def parse_header(buf):
    """The v3 header of ``buf`` (strict; every field in its RFC range) or BerError. msgData is framed, not read."""
    end = len(buf)
    tag, pos, msg_end = ber.read_tlv(buf, 0, end)
    if tag != ber.SEQUENCE or msg_end != end:
        raise ber.BerError("not one SEQUENCE")
    _version, pos = _integer(buf, pos, end, 3, 3)
    tag, gpos, gend = ber.read_tlv(buf, pos, end)
    if tag != ber.SEQUENCE:
        raise ber.BerError("msgGlobalData")
    head = Header()
    head.msg_id, gpos = _integer(buf, gpos, gend, 0, MAX_INT32)
    head.max_size, gpos = _integer(buf, gpos, gend, MIN_MAX_SIZE, MAX_INT32)
    flags, gpos = _octets(buf, gpos, gend, 1)
    if len(flags) != 1:
        raise ber.BerError("msgFlags")
    head.flags = flags[0]
    head.model, gpos = _integer(buf, gpos, gend, 1, MAX_INT32)
    if gpos != gend:
        raise ber.BerError("msgGlobalData length")
    tag, spos, send = ber.read_tlv(buf, gend, end)
    if tag != ber.OCTET_STRING:
        raise ber.BerError("msgSecurityParameters")
    tag, data, data_end = ber.read_tlv(buf, send, end)
    if tag not in (ber.SEQUENCE, ber.OCTET_STRING) or data_end != end:
        raise ber.BerError("msgData")
    head.scoped = (data, data_end) if tag == ber.SEQUENCE else None
    head.data = (data, data_end)                           # msgData's contents (encryptedPDU's octets, or not)
    if head.model == USM:
        tag, upos, uend = ber.read_tlv(buf, spos, send)
        if tag != ber.SEQUENCE or uend != send:
            raise ber.BerError("UsmSecurityParameters")
        head.engine_id, upos = _octets(buf, upos, uend, MAX_ENGINE_ID)
        head.boots, upos = _integer(buf, upos, uend, 0, MAX_INT32)
        head.time, upos = _integer(buf, upos, uend, 0, MAX_INT32)
        head.user, upos = _octets(buf, upos, uend, MAX_USER_NAME)
        tag, astart, upos = ber.read_tlv(buf, upos, uend)  # where the digest is (the fast path checks it)
        if tag != ber.OCTET_STRING or upos - astart > 64:  # HMAC-SHA-512-384: 48 octets
            raise ber.BerError("msgAuthenticationParameters")
        head.auth = (astart, upos)
        head.salt, upos = _octets(buf, upos, uend, 64)     # salts: 8 octets
        if upos != uend:
            raise ber.BerError("UsmSecurityParameters length")
    return head


def plaintext_request_id(buf, scoped):
    """The request-id of a plaintext scoped PDU (an Integer32), or 0 where it cannot be read (RFC 3412 §7.1.3c)."""
    start, end = scoped
    try:
        _name, pos = _octets(buf, start, end, MAX_ENGINE_ID)      # contextEngineID
        _name, pos = _octets(buf, pos, end, 255)                  # contextName
        _tag, pdu, pdu_end = ber.read_tlv(buf, pos, end)
        request_id, _pos = _integer(buf, pdu, pdu_end, -2 ** 31, MAX_INT32)
        return request_id
    except ber.BerError:
        return 0


class V3Gate:
    """Decides for each v3 datagram: pysnmp (PASS), nothing (DROP), or a report of ours.

    ``agent`` gives the engine's values and counters (engine_value, counter);
    ``counters`` is the intake's own Counter, which agent.counter adds to pysnmp's.
    """

    def __init__(self, agent, counters, max_size):
        self.agent = agent
        self.counters = counters
        self.max_size = max_size          # advertised as our msgMaxSize: what the intake accepts
        self.engine_id = b""
        self.users = {}                   # user name → security level (2 authNoPriv, 3 authPriv)
        self.inform_user = None           # the user v3 informs are sent as, while they are on
        self.fast = None                  # the read fast path (v3fast.V3Fast), when the intake has one

    def configure(self, engine_id, users, inform_user):
        """Our engine ID, {user name: level}, and the user of v3 informs (None: none are sent), whose receivers
        answer from their own engine IDs."""
        self.engine_id = engine_id
        self.users = dict(users)
        self.inform_user = inform_user

    def check(self, datagram):
        counters = self.counters
        try:
            head = parse_header(datagram)
        except ber.BerError:
            counters["snmpInPkts"] += 1
            counters["snmpInASNParseErrs"] += 1
            return DROP
        if head.model != USM:
            counters["snmpInPkts"] += 1
            counters["snmpUnknownSecurityModels"] += 1
            return DROP
        level = LEVELS.get(head.flags & 0x03)
        if level is None or (level == 3) != (head.scoped is None):
            counters["snmpInPkts"] += 1
            counters["snmpInvalidMsgs"] += 1        # privFlag without authFlag, or msgData not of the flags' form
            return DROP
        if head.engine_id != self.engine_id:
            if self.inform_user is not None and head.engine_id and not head.flags & REPORTABLE and (
                    head.user == self.inform_user or (not head.user and level == 1)):
                return PASS
            return self._refuse(datagram, head, "usmStatsUnknownEngineIDs")
        wanted = self.users.get(head.user)
        if wanted is None:
            return self._refuse(datagram, head, "usmStatsUnknownUserNames")
        if level != wanted and not (level == 2 and wanted == 3 and head.boots == 0 and head.time == 0):
            return self._refuse(datagram, head, "usmStatsUnsupportedSecLevels")
        if self.fast is not None:
            return self.fast.answer(datagram, head)     # the common case answered, the rest PASSed (v3fast.py)
        return PASS

    def _refuse(self, datagram, head, counter):
        self.counters["snmpInPkts"] += 1
        self.counters[counter] += 1
        if not head.flags & REPORTABLE:
            return DROP
        request_id = plaintext_request_id(datagram, head.scoped) if head.scoped else 0
        return self.report(head, REPORT_OIDS[counter], self.agent.counter(counter), request_id)

    def report(self, head, oid, value, request_id):
        """A noAuthNoPriv Report (RFC 3412 §7.1.3) from our engine, echoing msgID and msgUserName."""
        agent = self.agent
        varbind = ber.encode_varbind(ber.encode_oid(oid), ber.encode_integer(value & 0xFFFFFFFF, ber.COUNTER32))
        pdu = ber.tlv(REPORT, ber.encode_integer(request_id) + ber.encode_integer(0) + ber.encode_integer(0)
                      + ber.tlv(ber.SEQUENCE, varbind))
        scoped = ber.tlv(ber.SEQUENCE, ber.tlv(ber.OCTET_STRING, self.engine_id) + ber.tlv(ber.OCTET_STRING, b"")
                         + pdu)
        usm = ber.tlv(ber.SEQUENCE, ber.tlv(ber.OCTET_STRING, self.engine_id)
                      + ber.encode_integer(agent.engine_value("snmpEngineBoots"))
                      + ber.encode_integer(agent.engine_value("snmpEngineTime"))
                      + ber.tlv(ber.OCTET_STRING, head.user) + ber.tlv(ber.OCTET_STRING, b"")
                      + ber.tlv(ber.OCTET_STRING, b""))
        glob = ber.tlv(ber.SEQUENCE, ber.encode_integer(head.msg_id) + ber.encode_integer(self.max_size)
                       + ber.tlv(ber.OCTET_STRING, b"\x00") + ber.encode_integer(USM))
        return ber.tlv(ber.SEQUENCE, ber.encode_integer(3) + glob + ber.tlv(ber.OCTET_STRING, usm) + scoped)
