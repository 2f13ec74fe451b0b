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
"""

import struct

from bacpypes3.apdu import ConfirmedRequestPDU
from bacpypes3.basetypes import ErrorClass, ErrorCode
from bacpypes3.errors import ExecutionError
from bacpypes3.primitivedata import Real

from protocols.bacnet import objects

CLOSE_RESULT = b"\x1f"                  # closing tag 1 (listOfResults)
SERVICE_CHOICE = 14


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
            if p < size and data[p] & 0xF8 == 0x18:
                index, p = _context(data, p, 1)
            refs.append((pid, index))
        if not refs:
            raise ValueError("empty property list")
        p += 1
        specs.append(((word >> 22, word & 0x3FFFFF), refs))
    if not specs:
        raise ValueError("empty request")
    return specs


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
