"""ReadPropertyMultiple (ASHRAE 135 clause 15.7): request parsing and ACK encoding in bytes.

A supervisor's favourite request, and the costliest: bacpypes3 builds about
four objects per property to decode the request and as many to encode the
answer, more than reading the values costs. The request is a list of
(object identifier [0], list [1] of (property [0], array index [1]?)); the
ACK a list of (object identifier [0], list [1] of (property [2], index [3]?,
value [4] or error [5])). Values themselves are still encoded by bacpypes3
(``value.encode()``), except Present_Value's REAL, the common case. A request
this parser does not accept goes to bacpypes3's decoder (which rejects it if
it is really malformed).

Its cost is known from the request: the number of elements (an ALL,
REQUIRED or OPTIONAL counting as the properties it expands to) and, since an
element takes at least ELEMENT_MIN_BYTES in the ACK, a lower bound of the
answer's size. The transport paces requests by ``elements_asked``; the
application refuses an answer that cannot fit the client's maximum APDU (or
its segments) before computing any element, and stops as soon as the answer
being built outgrows it (a few unreadable properties of an ALL may be left
out, so the bound is only a floor).
"""

import struct

from bacpypes3.apdu import ConfirmedRequestPDU, decode_max_apdu_length_accepted, decode_max_segments_accepted
from bacpypes3.basetypes import ErrorClass, ErrorCode
from bacpypes3.errors import ExecutionError
from bacpypes3.primitivedata import Real

from protocols.bacnet import objects

CLOSE_RESULT = b"\x1f"                  # closing tag 1 (listOfResults)
SERVICE_CHOICE = 14
SELECTION_IDS = {8: "all", 105: "required", 80: "optional"}      # PropertyIdentifier all / required / optional
RESULT_MIN_BYTES = 7                    # object identifier [0] (5) + opening and closing tag 1
ELEMENT_MIN_BYTES = 5                   # property [2] (1+1) + opening [4], a 1-byte value, closing [4]
MAX_ANSWER_SEGMENTS = 16                # an answer is sent in at most this many segments, whatever the client says


class ReadPropertyMultipleRequest(ConfirmedRequestPDU):
    """A parsed request, with the PCI fields bacpypes3's transaction, ACK and errors need.

    The class name is what the application dispatches on (do_ReadPropertyMultipleRequest);
    being a ConfirmedRequestPDU is what makes bacpypes3 answer its errors.
    """

    def __init__(self, apdu, specs):        # no PDU initialisation: nothing is encoded from it
        self.specs = specs                  # [((type, instance), [(property, index or None)])]
        self.pduUserData = apdu.pduUserData
        self.pduNetworkPriority = apdu.pduNetworkPriority
        self.pduExpectingReply = apdu.pduExpectingReply
        self.apduInvokeID = apdu.apduInvokeID
        self.apduService = apdu.apduService
        self.pduSource = apdu.pduSource
        self.pduDestination = None
        self.apduSA = apdu.apduSA             # what the client accepts: segments, their number and size
        self.apduMaxSegs = apdu.apduMaxSegs
        self.apduMaxResp = apdu.apduMaxResp


def _context(data, p, tag):
    """(unsigned value, next offset) of context tag ``tag`` (1..4 bytes) at p."""
    head = data[p]
    length = head & 0x07
    if head & 0xF8 != (tag << 4 | 0x08) or not 1 <= length <= 4:
        raise ValueError("context tag %d expected" % tag)
    return int.from_bytes(data[p + 1:p + 1 + length], "big"), p + 1 + length


def parse_request(data):
    """[((type, instance), [(property, index)])] of an RPM request's service data."""
    specs, p, size = [], 0, len(data)
    while p < size:
        if data[p] != 0x0C or p + 6 > size:
            raise ValueError("object identifier expected")
        word = int.from_bytes(data[p + 1:p + 5], "big")
        p += 5
        if data[p] != 0x1E:
            raise ValueError("opening tag 1 expected")
        p += 1
        refs = []
        while data[p] != 0x1F:
            pid, p = _context(data, p, 0)
            index = None
            if p < size and 0x19 <= data[p] <= 0x1C:         # context tag 1, 1..4 octets (0x1F closes the list)
                index, p = _context(data, p, 1)
            refs.append((pid, index))
        if not refs:
            raise ValueError("empty property list")
        p += 1
        specs.append(((word >> 22, word & 0x3FFFFF), refs))
    if not specs:
        raise ValueError("empty request")
    return specs


def _largest_selections():
    """{object type: {selection property id: the most properties it expands to}}, over our object classes."""
    sizes = {}
    for cls in objects.OBJECT_CLASSES:
        per_type = sizes.setdefault(int(cls.objectType), {})
        for pid, which in SELECTION_IDS.items():
            per_type[pid] = max(per_type.get(pid, 0), len(objects.selection(cls, which)))
    return sizes


_SELECTION_SIZES = _largest_selections()


def elements(object_type, refs, cls=None):
    """Elements the references of one object ask for: one per property, a selection as many as it expands
    to (for ``cls`` when the object is known, else the most any object of the type has)."""
    sizes = _SELECTION_SIZES.get(object_type, {})
    count = 0
    for pid, _index in refs:
        which = SELECTION_IDS.get(pid)
        if which is None:
            count += 1
        elif cls is not None:
            count += len(objects.selection(cls, which))
        else:
            count += sizes.get(pid, 1)
    return count


def elements_asked(data, offset):
    """Elements a confirmed request can make us compute, from its raw bytes (``offset``: its APDU): those of
    an RPM, at most as many as its answer can hold (the rest is never computed: the answer is aborted);
    one for any other request (an RPM that does not parse is rejected before any work: one too)."""
    if offset + 4 <= len(data) and not data[offset] & 0x08 and data[offset + 3] == SERVICE_CHOICE:
        try:
            count = sum(elements(oid[0], refs) for oid, refs in parse_request(data[offset + 4:]))
        except (ValueError, IndexError):
            return 1
        limit, _reason = answer_limit(data[offset] & 0x02, data[offset + 1] >> 4 & 0x07, data[offset + 1] & 0x0F)
        return max(1, min(count, limit // ELEMENT_MIN_BYTES + 1))
    return 1


def answer_limit(segmented_accepted, max_segs, max_resp):
    """(bytes of ACK service data a client accepts, abort reason when more is needed), from the request's
    flag and codes (clause 20.1.2.4, 20.1.2.5)."""
    try:
        size = decode_max_apdu_length_accepted(max_resp)
    except (ValueError, IndexError, TypeError):
        size = objects.MAX_APDU
    if not segmented_accepted:
        return size, "segmentationNotSupported"
    try:
        segments = decode_max_segments_accepted(max_segs)
    except (IndexError, TypeError):
        segments = None
    return size * min(segments or MAX_ANSWER_SEGMENTS, MAX_ANSWER_SEGMENTS), "apduTooLong"


def capacity(apdu):
    """answer_limit of a decoded request."""
    return answer_limit(apdu.apduSA, apdu.apduMaxSegs, apdu.apduMaxResp)


def minimum_size(counts):
    """The fewest bytes of an ACK with ``counts`` elements per object (each element at least ELEMENT_MIN_BYTES)."""
    return sum(RESULT_MIN_BYTES + ELEMENT_MIN_BYTES * n for n in counts)


def specs_of(decoded):
    """The same list from bacpypes3's decoded ReadPropertyMultipleRequest."""
    return [((int(spec.objectIdentifier[0]), spec.objectIdentifier[1]),
             [(int(ref.propertyIdentifier), ref.propertyArrayIndex) for ref in spec.listOfPropertyReferences])
            for spec in decoded.listOfReadAccessSpecs]
_REAL = struct.Struct(">f")


def _context_unsigned(tag, value):
    if value < 0x100:
        data = bytes((value,))
    elif value < 0x10000:
        data = struct.pack(">H", value)
    elif value < 0x1000000:
        data = struct.pack(">I", value)[1:]
    else:
        data = struct.pack(">I", value)
    return bytes((tag << 4 | 0x08 | len(data),)) + data


def _enumerated(value):
    """Application-tagged ENUMERATED (tag 9)."""
    data = bytes((value,)) if value < 0x100 else struct.pack(">H", value)
    return bytes((0x90 | len(data),)) + data


def open_result(object_identifier):
    object_type, instance = object_identifier
    return b"\x0c" + struct.pack(">I", int(object_type) << 22 | instance) + b"\x1e"


def _head(pid, index):
    head = _context_unsigned(2, pid)
    if index is not None:
        head += _context_unsigned(3, index)
    return head


def error_element(pid, index, error_class, error_code):
    return (_head(pid, index) + b"\x5e" + _enumerated(int(ErrorClass(error_class)))
            + _enumerated(int(ErrorCode(error_code))) + b"\x5f")


def value_bytes(value):
    if type(value) is Real:
        return b"\x44" + _REAL.pack(value)
    return bytes(value.encode().encode().pduData)


async def read_element(obj, pid, index, skip_errors=False):
    """One property of one object: value or error, as bytes (b"" for a skipped error)."""
    name = objects.VendorPropertyIdentifier(pid).attr
    if name not in obj.EXPOSED:
        return b"" if skip_errors else error_element(pid, index, "property", "unknownProperty")
    try:
        value = await obj.read_property(name, index)
    except ExecutionError as error:
        return b"" if skip_errors else error_element(pid, index, error.errorClass, error.errorCode)
    except AttributeError:
        return b"" if skip_errors else error_element(pid, index, "property", "unknownProperty")
    return _head(pid, index) + b"\x4e" + value_bytes(value) + b"\x4f"
