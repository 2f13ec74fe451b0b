"""A simulated generic Modbus slave (issue 18): a register image given by hand, not by a data model.

Tests and benches put one on a simulated bus (``SimBus.add``) to stand for a
device the catalogue does not know: its holding and input registers, coils
and discrete inputs are plain dicts of address -> word (or bit) that the test
writes itself, so what the gateway decodes through a user's data model is
checked against an image made independently of that model. An address not
in the image answers exception 02 (illegal data address), as a real device
does; ``silent`` stops every answer.
"""

import threading

from core import modbus_rtu as rtu


class GenericSlave:
    """One RTU slave at ``address`` answering functions 1-4 from its image (and nothing else: exception 01)."""

    def __init__(self, address, holding=None, inputs=None, coils=None, discrete=None):
        self.address = address
        self.netid = None
        self.holding = dict(holding or {})
        self.inputs = dict(inputs or {})
        self.coils = dict(coils or {})
        self.discrete = dict(discrete or {})
        self.silent = False
        self.muted = False
        self.com_led = False
        self.extra_delay = 0.0
        self.crc_error_rate = 0.0
        self.requests = 0
        self.lock = threading.Lock()

    def broadcast_write(self, start, words):
        """A broadcast (the gateway's NET ID orders) means nothing to a generic device."""

    def handle_pdu(self, pdu):
        with self.lock:
            self.requests += 1
            code = rtu.validate_request_pdu(pdu)
            if code:
                return rtu.exception_pdu(pdu[0], code)
            function, start, count, _words = rtu.request_fields(pdu)
            table = {rtu.READ_HOLDING: self.holding, rtu.READ_INPUT: self.inputs,
                     rtu.READ_COILS: self.coils, rtu.READ_DISCRETE_INPUTS: self.discrete}.get(function)
            if table is None:
                return rtu.exception_pdu(function, rtu.ILLEGAL_FUNCTION)
            addresses = range(start, start + count)
            if any(a not in table for a in addresses):
                return rtu.exception_pdu(function, rtu.ILLEGAL_DATA_ADDRESS)
            if function in (rtu.READ_COILS, rtu.READ_DISCRETE_INPUTS):
                data = rtu.pack_bits([table[a] & 1 for a in addresses])
                return bytes((function, len(data))) + data
            return rtu.read_response(function, [table[a] & 0xFFFF for a in addresses])
