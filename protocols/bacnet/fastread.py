"""The read path of a supervisor's polling: ReadProperty and small ReadPropertyMultiple answered from the datagram.

A BMS reads points one request at a time; through bacpypes3 each one crosses the BVLL, the router's
network layer, the virtual LAN, the meter's network layer, a server transaction and the generic
ReadProperty handler (objects built to decode the request and to encode the answer): 0.7-1.6 ms of the
loop, some 50 times what bacnet-stack's C server takes. Here, in the datagram's own callback, the common
case is answered at once from the objects the meter's application holds: an unsegmented confirmed
ReadProperty or ReadPropertyMultiple (named properties, at most MAX_ELEMENTS, no ALL/REQUIRED/OPTIONAL),
sent to the gateway or to a meter behind it (DNET = the virtual network, one-octet DADR), with no network
priority and no source network. The answer is the bytes bacpypes3's router sends (NPDU with SNET/SADR of
the meter, Complex-ACK), encoded as rpm.py does. Anything else, and any read that fails or would not fit
the client's maximum APDU, returns None: bacpypes3 answers it as before, errors and aborts included.

Reading a property is a coroutine in bacpypes3; ours never wait for anything, so it is run to its end
here (``run_now``); one that would wait is closed and the request goes the slow way.
"""

import struct

from protocols.bacnet import objects, points as pts, rpm

READ_PROPERTY, READ_PROPERTY_MULTIPLE = 12, 14
MAX_ELEMENTS = 32                       # an RPM computing more goes the slow way (it yields to the loop meanwhile)
WILDCARD_DEVICE = (8, 4194303)
_BVLC = struct.Struct(">BBH")
_HEAD = struct.Struct(">I")
_REAL = struct.Struct(">f")
PRESENT_VALUE = 85
# The reads a supervisor polls, by object class: the encoded value straight from the cache, without the
# bacpypes3 objects (the same as the class's property: objects.py; tests compare both ways' bytes).
DIRECT = {(objects.MeterAnalogInput, PRESENT_VALUE): lambda obj: b"\x44" + _REAL.pack(pts.present(obj._reading())[0])}


def run_now(coro):
    """(True, result) of a coroutine that finishes without waiting; (False, None) if it would wait."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return True, stop.value
    coro.close()
    return False, None


def _direct(obj, pid):
    """The DIRECT read of ``pid`` for the object's class (or a base's), or None."""
    for cls in type(obj).__mro__:
        direct = DIRECT.get((cls, pid))
        if direct is not None:
            return direct
    return None


class FastReader:
    """Answers for the stack's server (``GuardedDatagramServer.fast``)."""

    def __init__(self, stack):
        self.stack = stack
        self.counters = stack.counters

    def answer(self, data, apdu):
        """The whole datagram answering ``data`` (its APDU at offset ``apdu``), or None (the slow way)."""
        if data[1] != 0x0A or len(data) < apdu + 5:
            return None                                 # forwarded NPDUs, short APDUs: the slow way
        control = data[5]
        if control & 0xDB != 0:                         # only DNET (0x20) and expecting-reply (0x04) set
            return None
        if control & 0x20:
            stack = self.stack
            if data[8] != 1 or (data[6] << 8 | data[7]) != stack.network:
                return None
            entry = stack.meters.get(data[9])
            if entry is None or entry[1] is None:
                return None
            app = entry[1]
            npdu = b"\x01\x08" + data[6:10]             # SNET, SLEN 1, SADR: the meter answers through the router
        else:
            app = self.stack.router
            npdu = b"\x01\x00"
        kind, max_resp, invoke, service = data[apdu], data[apdu + 1], data[apdu + 2], data[apdu + 3]
        if kind & 0xF8:                                 # not a confirmed request, or segmented
            return None
        limit, _reason = rpm.answer_limit(False, 0, max_resp & 0x0F)
        try:
            if service == READ_PROPERTY:
                body = self._read_property(app, data, apdu + 4)
            elif service == READ_PROPERTY_MULTIPLE:
                body = self._read_multiple(app, data, apdu + 4, limit)
            else:
                return None
        except (ValueError, IndexError, struct.error):     # malformed: bacpypes3 rejects it properly
            return None
        if body is None or len(body) + 3 > limit:
            return None
        self.counters["fast_reads"] += 1
        size = 4 + len(npdu) + 3 + len(body)
        return _BVLC.pack(0x81, 0x0A, size) + npdu + bytes((0x30, invoke, service)) + body

    def _read_property(self, app, data, p):
        """object identifier [0], property [1], array index [2]?: the ACK's service data, or None."""
        if data[p] != 0x0C:
            return None
        word = _HEAD.unpack_from(data, p + 1)[0]
        oid = (word >> 22, word & 0x3FFFFF)
        pid, q = rpm._context(data, p + 5, 1)
        index = None
        if q < len(data):
            index, q = rpm._context(data, q, 2)
        if q != len(data) or oid == WILDCARD_DEVICE or pid in rpm.SELECTION_IDS:
            return None
        value = self._value(app, oid, pid, index)
        if value is None:
            return None
        head = data[p:p + 5] + rpm._context_unsigned(1, pid)
        if index is not None:
            head += rpm._context_unsigned(2, index)
        return head + b"\x3e" + value + b"\x3f"

    def _read_multiple(self, app, data, p, limit):
        specs = rpm.parse_request(data[p:])
        if sum(len(refs) for _oid, refs in specs) > MAX_ELEMENTS:
            return None
        body = bytearray()
        for oid, refs in specs:
            obj = app.objectIdentifier.get(oid) if oid != WILDCARD_DEVICE else None
            if obj is None:
                return None
            body += rpm.open_result(oid)
            for pid, index in refs:
                if pid in rpm.SELECTION_IDS:
                    return None
                direct = _direct(obj, pid) if index is None else None
                if direct is not None:
                    element = rpm._head(pid, None) + b"\x4e" + direct(obj) + b"\x4f"
                else:
                    done, element = run_now(rpm.read_element(obj, pid, index))
                    if not done:
                        return None
                self.counters["rpm_elements"] += 1
                body += element
                if len(body) > limit:
                    return None
            body += rpm.CLOSE_RESULT
        return body

    @staticmethod
    def _value(app, oid, pid, index):
        """The encoded value of one property, or None (unknown object or property, an error, a wait)."""
        obj = app.objectIdentifier.get(oid)
        if obj is None:
            return None
        direct = _direct(obj, pid) if index is None else None
        if direct is not None:
            return direct(obj)
        name = objects.VendorPropertyIdentifier(pid).attr
        if name not in obj.EXPOSED:
            return None
        try:
            done, value = run_now(obj.read_property(name, index))
        except Exception:                   # an error answer: bacpypes3 encodes it
            return None
        return rpm.value_bytes(value) if done else None
