"""Modbus request handling shared by the TCP server and the RTU slave.

One function decides what a request means (SPEC §3.1):
* unit = the gateway's own address (or 255 over TCP): the gateway table;
* unit = a meter's address: the normalized table from the cache, reads the
  poll cycle already covers from the cache (fresh within one cycle, device
  answering), its identification block (fixed while it is in the topology)
  from the words an earlier forwarded read brought back, anything else forwarded to the meter's bus with pass-through
  priority and the answer relayed;
* no such meter: exception 0A; the meter did not answer: 0B; writes while
  the policy's Modbus write is off: 01.
Every path returns a response PDU; nothing raises to the transport.
"""

import logging

from core import catalogue, modbus_rtu as rtu
from daemon import api
from protocols.modbus.tables import GatewayTable, normalized_location, normalized_read, normalized_write

log = logging.getLogger("gateway.modbus")

SERVER_BUSY = 0x06
READ_REGISTERS = (rtu.READ_HOLDING, rtu.READ_INPUT)
# the door's refusals -> exception codes (SPEC §3.1)
_REFUSAL_CODES = {api.POLICY: rtu.ILLEGAL_FUNCTION, api.RIGHTS: rtu.ILLEGAL_FUNCTION,
                  api.NO_DEVICE: rtu.GATEWAY_PATH_UNAVAILABLE, api.NOT_WRITABLE: rtu.ILLEGAL_DATA_ADDRESS,
                  api.BAD_VALUE: rtu.ILLEGAL_DATA_VALUE, api.NO_ANSWER: rtu.GATEWAY_TARGET_FAILED,
                  api.DEVICE_REFUSED: SERVER_BUSY, api.BUSY: SERVER_BUSY}


class Counters:
    def __init__(self):
        self.requests = self.from_cache = self.forwarded = self.exceptions = self.gateway_table = 0

    def as_dict(self):
        return dict(self.__dict__)


class ModbusHandler:
    def __init__(self, door, own_units=()):
        self.door = door
        self.table = GatewayTable(door)
        self.own_units = tuple(own_units)     # extra unit IDs meaning "the gateway" (255 over TCP)
        self.counters = Counters()

    def is_gateway(self, unit):
        return unit == self.door.setting("gateway.modbus_address") or unit in self.own_units

    async def handle(self, unit, pdu):
        """Response PDU for request ``pdu`` to ``unit``."""
        answer = self.answer_now(unit, pdu)
        if answer is None:
            answer = await self.answer_later(unit, pdu)
        return answer

    def answer_now(self, unit, pdu):
        """The response PDU when no wait is needed (gateway table, cache, refusals); None when the request
        must wait for a bus or a write: then ``answer_later``. Lets a server answer most requests without
        a task of their own."""
        self.counters.requests += 1
        function = pdu[0] if pdu else 0
        code = rtu.validate_request_pdu(pdu)
        if code:
            return self._exception(function, code)
        try:
            if function == rtu.ENCAPSULATED_TRANSPORT:
                return self._device_identification(unit, pdu)
            if self.is_gateway(unit):
                return self._gateway_table(pdu)
            return self._meter_now(unit, pdu)
        except Exception:   # the boundary: a bug answers 04, never kills the server
            log.exception("request %r to unit %d", pdu[:8], unit)
            return self._exception(function, rtu.SERVER_DEVICE_FAILURE)

    async def answer_later(self, unit, pdu):
        """The response PDU of a request ``answer_now`` left to the bus or a write."""
        function = pdu[0]
        try:
            return await self._meter_later(unit, pdu)
        except Exception:   # the boundary, as above
            log.exception("request %r to unit %d", pdu[:8], unit)
            return self._exception(function, rtu.SERVER_DEVICE_FAILURE)

    def _exception(self, function, code):
        self.counters.exceptions += 1
        return rtu.exception_pdu(function, code)

    # ---------------------------------------------------------------- gateway

    def _gateway_table(self, pdu):
        function, start, count, _words = rtu.request_fields(pdu)
        self.counters.gateway_table += 1
        if function not in READ_REGISTERS:
            return self._exception(function, rtu.ILLEGAL_FUNCTION)   # a read-only table
        words = self.table.read(start, count)
        if isinstance(words, int):
            return self._exception(function, words)
        return rtu.read_response(function, words)

    # ---------------------------------------------------------------- meters

    def _meter_now(self, unit, pdu):
        door = self.door
        function, start, count, _words = rtu.request_fields(pdu)
        if door.served_device(unit) is None:
            return self._exception(function, rtu.GATEWAY_PATH_UNAVAILABLE)
        if function in READ_REGISTERS and normalized_location(start) is not None:
            values = normalized_read(door, unit, start, count)
            if isinstance(values, int):
                return self._exception(function, values)
            self.counters.from_cache += 1
            return rtu.read_response(function, values)
        if function in READ_REGISTERS:
            cached = door.polled_registers(unit, start, count)    # fresh by the cache's one rule
            if cached is None:
                cached = door.static_registers(unit, function, start, count)   # identification: fixed
            if cached is not None:
                self.counters.from_cache += 1
                return rtu.read_response(function, cached)
        return None

    async def _meter_later(self, unit, pdu):
        function, start, _count, words = rtu.request_fields(pdu)
        if function in rtu.WRITE_FUNCTIONS and normalized_location(start) is not None:
            return await self._normalized_write(unit, pdu, function, start, words)
        self.counters.forwarded += 1
        try:
            return await self.door.passthrough(unit, pdu)
        except api.Refused as exc:
            return self._exception(function, _REFUSAL_CODES.get(exc.reason, rtu.SERVER_DEVICE_FAILURE))
        except rtu.ModbusException as exc:
            return self._exception(function, exc.code)   # relay the meter's own answer

    async def _normalized_write(self, unit, pdu, function, start, words):
        """A write into the normalized table: one value at the gateway's type and scale."""
        if words is None:                                     # coil writes: the table is registers
            return self._exception(function, rtu.ILLEGAL_FUNCTION)
        target = normalized_write(start, words)
        if target is None:
            return self._exception(function, rtu.ILLEGAL_DATA_ADDRESS)
        load, key, value = target
        try:
            await self.door.write_value(unit, load, key, value)
        except api.Refused as exc:
            return self._exception(function, _REFUSAL_CODES.get(exc.reason, rtu.SERVER_DEVICE_FAILURE))
        if function == rtu.WRITE_SINGLE_REGISTER:
            return pdu
        return pdu[:5]

    # ---------------------------------------------------------------- 43 / 14

    def _device_identification(self, unit, pdu):
        function = pdu[0]
        read_code, object_id = pdu[2], pdu[3]
        if read_code not in (1, 2, 3, 4):
            return self._exception(function, rtu.ILLEGAL_DATA_VALUE)
        objects = self._identification_objects(unit)
        if objects is None:
            return self._exception(function, rtu.GATEWAY_PATH_UNAVAILABLE)
        if read_code == 4:
            if object_id not in objects:
                return self._exception(function, rtu.ILLEGAL_DATA_ADDRESS)
            chosen = [object_id]
        else:
            limit = {1: 0x02, 2: 0x06, 3: 0xFF}[read_code]
            if object_id > limit:
                object_id = 0
            chosen = [i for i in sorted(objects) if object_id <= i <= limit]
        body = b""
        for i in chosen:
            value = objects[i].encode("ascii", "replace")[:60]
            body += bytes((i, len(value))) + value
        conformity = 0x83
        return bytes((function, 14, read_code, conformity, 0, 0, len(chosen))) + body

    def _identification_objects(self, unit):
        if self.is_gateway(unit):
            identity = self.door.identity()
            return {0: identity["vendor"], 1: identity["product"], 2: identity["firmware"],
                    3: "https://example.invalid/open-m70", 4: "Energy-metering gateway", 5: identity["product"],
                    6: identity["name"], 0x80: identity["netid"]}
        device = self.door.device(unit)
        if device is None:
            return None
        return {0: "SOCOMEC", 1: device.reference, 2: "", 3: "", 4: device.product[catalogue.EXT_NAME],
                5: device.reference, 6: device.name, 0x80: device.netid}
