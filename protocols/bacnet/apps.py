"""The BACnet application of one virtual device: which services it answers and how.

A bacpypes3 ``Application`` answers whatever its mixins implement (COV,
ReadRange, DeviceCommunicationControl...). Ours answers the services of
SPEC §3.3 only, from one table: any other confirmed request gets Reject
unrecognized-service, any other unconfirmed request is dropped.

WriteProperty is ours rather than bacpypes3's: its generic version writes
any attribute of the object and reports an unknown property as an
operational problem. Here only Binary Output Present_Value is writable,
through the priority array and ``Door.write_value`` (the one door for device
writes, which checks the security policy). A command is checked at every
priority, winning or not: only active/inactive (or relinquish) enters the
array, so relinquishing a slot can never uncover a value the meter refuses.
"""

import asyncio
import logging

from bacpypes3.apdu import (
    APDU,
    AbortPDU,
    APCISequence,
    ComplexAckPDU,
    ConfirmedRequestPDU,
    RejectPDU,
    SimpleAckPDU,
    confirmed_request_types,
)
from bacpypes3.app import Application
from bacpypes3.appservice import ApplicationServiceAccessPoint, ServerSSM
from bacpypes3.basetypes import BinaryPV, PropertyIdentifier, ServicesSupported
from bacpypes3.comm import bind
from bacpypes3.errors import ExecutionError, ObjectError, PropertyError
from bacpypes3.netservice import NetworkServiceAccessPoint, NetworkServiceElement
from bacpypes3.pdu import Address
from bacpypes3.primitivedata import Null

from daemon import api
from protocols.bacnet import objects, rpm

log = logging.getLogger("gateway.bacnet")

# request class -> Protocol_Services_Supported bit; the gateway alone takes the clock.
METER_SERVICES = {
    "ReadPropertyRequest": "readProperty",
    "ReadPropertyMultipleRequest": "readPropertyMultiple",
    "WritePropertyRequest": "writeProperty",
    "WhoIsRequest": "whoIs",
    "WhoHasRequest": "whoHas",
}
GATEWAY_SERVICES = dict(METER_SERVICES, TimeSynchronizationRequest="timeSynchronization",
                        UTCTimeSynchronizationRequest="utcTimeSynchronization")

# the door's refusals -> BACnet (error class, error code)
WRITE_ERRORS = {
    api.POLICY: ("property", "writeAccessDenied"),
    api.RIGHTS: ("property", "writeAccessDenied"),
    api.NOT_WRITABLE: ("property", "writeAccessDenied"),
    api.NO_DEVICE: ("object", "unknownObject"),
    api.BAD_VALUE: ("property", "valueOutOfRange"),
    api.NO_ANSWER: ("communication", "timeout"),
    api.BUSY: ("device", "deviceBusy"),
    api.DEVICE_REFUSED: ("device", "operationalProblem"),
}
BINARY_COMMANDS = (0, 1)          # inactive, active: the only values a Binary Output's array holds
MINIMUM_ON_OFF_PRIORITY = 6       # reserved by the standard (Clause 19.2.1.1)
WILDCARD_INSTANCE = 4194303
DEVICE_TYPE = 8
YIELD_EVERY = 8                   # RPM elements computed between two yields to the loop
BROADCAST_ADDRESSES = (Address.localBroadcastAddr, Address.remoteBroadcastAddr, Address.globalBroadcastAddr)
SELECTIONS = {int(PropertyIdentifier("all")): "all", int(PropertyIdentifier("required")): "required",
              int(PropertyIdentifier("optional")): "optional"}


class DecodedServerSSM(ServerSSM):
    """bacpypes3's server transaction, handed a request we have already decoded."""

    async def request(self, apdu):
        decoded = getattr(apdu, "decoded", None)
        if decoded is None:
            return await ServerSSM.request(self, apdu)
        decoded.pduSource = self.pdu_address
        decoded.pduDestination = None
        await self.ssmSAP.sap_request(decoded)


class GuardedASAP(ApplicationServiceAccessPoint):
    """APDUs are checked (and decoded once) before bacpypes3's state machines see them.

    A header that does not decode is dropped (there is no invoke ID to answer);
    an unsegmented confirmed request for a service that does not exist, or
    whose parameters do not decode, is rejected (bacpypes3 would abort with
    reason "other"). A good one is decoded here and its server transaction
    uses that (bacpypes3 decodes it inside the transaction). A confirmed
    request that came as a broadcast is ignored (clause 5.4.5.1): the
    transport drops those before decoding; this catches any other way in.
    """

    counters = None                   # the Site's Counter, set by VirtualDeviceApplication.build

    async def confirmation(self, pdu):
        data = bytes(pdu.pduData)
        try:
            apdu = APDU.decode(pdu)
        except Exception:
            self.counters["apdu_dropped"] += 1
            return
        if not isinstance(apdu, ConfirmedRequestPDU):
            pdu.pduData = bytearray(data)       # decoding consumed it: give bacpypes3 a fresh copy
            return await ApplicationServiceAccessPoint.confirmation(self, pdu)
        if pdu.pduDestination is not None and pdu.pduDestination.addrType in BROADCAST_ADDRESSES:
            self.counters["confirmed_broadcast_ignored"] += 1
            return
        if not apdu.apduSeg:
            reason = None
            if apdu.apduService not in confirmed_request_types:
                reason = "unrecognizedService"
            elif apdu.apduService == rpm.SERVICE_CHOICE and self._parse_rpm(apdu):
                pass
            else:
                try:
                    apdu.decoded = APCISequence.decode(apdu)
                except Exception:
                    reason = "invalidTag"
            if reason is not None:
                self.counters["rejected"] += 1
                await self.request(RejectPDU(reason=reason, context=apdu))
                return
        for transaction in self.serverTransactions:
            if apdu.apduInvokeID == transaction.invokeID and apdu.pduSource == transaction.pdu_address:
                break
        else:
            transaction = DecodedServerSSM(self, apdu.pduSource)
            self.serverTransactions.append(transaction)
        await transaction.indication(apdu)

    @staticmethod
    def _parse_rpm(apdu):
        try:
            apdu.decoded = rpm.ReadPropertyMultipleRequest(apdu, rpm.parse_request(bytes(apdu.pduData)))
        except (ValueError, IndexError):
            return False
        return True


class RouterServiceElement(NetworkServiceElement):
    """The gateway's network layer: its IP-side network number is internal.

    bacpypes3 needs a number for every port of a router; the IP side's is not
    configured by the user (SPEC §3.3 has the virtual network only), so it is
    neither announced (What-Is-Network-Number goes unanswered there) nor
    learned from Network-Number-Is (a spoofed one must not re-route us).
    """

    ip_adapter = None

    async def WhatIsNetworkNumber(self, adapter, npdu):
        if adapter is self.ip_adapter:
            return None
        return await NetworkServiceElement.WhatIsNetworkNumber(self, adapter, npdu)

    def NetworkNumberIs(self, adapter, npdu):
        return None


class VirtualDeviceApplication(Application):
    """One device: the gateway (router, time sync) or a meter behind it."""

    services = METER_SERVICES

    def __init__(self, view, site, counters, services=None):
        Application.__init__(self)
        self.view = view
        self.site = site
        self.counters = counters
        if services is not None:
            self.services = services

    @classmethod
    def build(cls, view, site, counters, objects_list, services=None, nse=None):
        """Application + its stack (no link layer yet), like bacpypes3's from_object_list."""
        device = objects_list[0]
        app = cls(view, site, counters, services)
        app.asap = GuardedASAP(device, app.device_info_cache)
        app.asap.counters = counters
        app.nsap = NetworkServiceAccessPoint()
        app.nse = nse or NetworkServiceElement()
        bind(app.nse, app.nsap)
        bind(app, app.asap, app.nsap)
        for obj in objects_list:
            app.add_object(obj)
        view.object_ids = [obj.objectIdentifier for obj in objects_list]
        return app

    def get_services_supported(self):
        bits = ServicesSupported([])
        for bit in self.services.values():
            bits[getattr(bits, bit)] = 1
        return bits

    async def indication(self, apdu):
        if type(apdu).__name__ not in self.services:
            if isinstance(apdu, ConfirmedRequestPDU):
                self.counters["rejected"] += 1
                await self.response(RejectPDU(reason="unrecognizedService", context=apdu))
            return
        await Application.indication(self, apdu)

    # ReadPropertyMultiple --------------------------------------------------
    async def do_ReadPropertyMultipleRequest(self, apdu):
        """bacpypes3's version names vendor properties in ALL results by attribute name,
        which its standard PropertyIdentifier cannot encode, and builds several objects
        per value. Ours answers by number, in Property_List order, with one error element
        per unknown object or property, and encodes the ACK directly (rpm.py).

        An answer that cannot fit what the client accepts is aborted before any element
        is computed (its size has a floor: rpm.minimum_size), or as soon as the answer
        being built outgrows it; ``rpm_elements`` counts the elements computed."""
        specs = apdu.specs if isinstance(apdu, rpm.ReadPropertyMultipleRequest) else rpm.specs_of(apdu)
        resolved = []
        for oid, refs in specs:
            if oid == (DEVICE_TYPE, WILDCARD_INSTANCE) and self.device_object is not None:
                oid = self.device_object.objectIdentifier
            resolved.append((oid, self.objectIdentifier.get(oid), refs))
        limit, reason = rpm.capacity(apdu)
        counts = [rpm.elements(oid[0], refs, type(obj)) if obj is not None else len(refs)
                  for oid, obj, refs in resolved]
        if rpm.minimum_size(counts) > limit:
            await self._too_large(apdu, reason)
            return
        counters = self.counters
        body, found, done = bytearray(), False, 0
        for oid, obj, refs in resolved:
            found = found or obj is not None
            body += rpm.open_result(oid)
            for pid, index in refs:
                if len(body) > limit:
                    await self._too_large(apdu, reason)
                    return
                done += 1
                if done % YIELD_EVERY == 0:
                    await asyncio.sleep(0)          # short steps: the bus engines' callbacks get their turn
                if obj is None:
                    body += rpm.error_element(pid, index, "object", "unknownObject")
                    continue
                selection = SELECTIONS.get(pid)
                if selection is None:
                    counters["rpm_elements"] += 1
                    body += await rpm.read_element(obj, pid, index)
                    continue
                for name in objects.selection(type(obj), selection):
                    counters["rpm_elements"] += 1
                    body += await rpm.read_element(obj, objects.vendor_number(name), None, skip_errors=True)
            body += rpm.CLOSE_RESULT
        if not found:
            raise ObjectError("unknownObject")
        ack = ComplexAckPDU(context=apdu)
        ack.put_data(bytes(body))
        await self.response(ack)

    async def _too_large(self, apdu, reason):
        self.counters["rpm_too_large"] += 1
        await self.response(AbortPDU(True, reason=reason, context=apdu))

    # WriteProperty ---------------------------------------------------------
    async def do_WritePropertyRequest(self, apdu):
        obj = self.get_object_id(apdu.objectIdentifier)
        if obj is None:
            raise ObjectError("unknownObject")
        name = apdu.propertyIdentifier.attr
        if name not in obj.EXPOSED:
            raise PropertyError("unknownProperty")
        if not (isinstance(obj, objects.MeterBinaryOutput) and name == "presentValue"):
            raise PropertyError("writeAccessDenied")
        if apdu.propertyArrayIndex is not None:
            raise PropertyError("propertyIsNotAnArray")
        priority = 16 if apdu.priority is None else apdu.priority
        if not 1 <= priority <= 16:
            raise PropertyError("valueOutOfRange")
        if priority == MINIMUM_ON_OFF_PRIORITY:
            raise PropertyError("writeAccessDenied")
        try:
            value = apdu.propertyValue.cast_out(BinaryPV, null=True)
        except Exception:
            raise PropertyError("invalidDataType") from None
        command = None if isinstance(value, Null) else int(value)
        if command is not None and command not in BINARY_COMMANDS:
            raise PropertyError("valueOutOfRange")            # at every priority, winning or not
        await self.command(obj._point.key, priority, command)
        await self.response(SimpleAckPDU(context=apdu))

    async def command(self, key, priority, value):
        """Update one priority slot and drive the output to the winning command."""
        site, address = self.site, self.view.address
        async with site.command_lock:
            slots = list(self.view.priority_slots(key))
            slots[priority - 1] = value
            effective = next((v for v in slots if v is not None), 0)   # relinquish default: inactive
            try:
                await site.door.write_value(address, 0, key, effective)
            except api.Refused as refused:
                self.counters["writes_refused"] += 1
                error_class, error_code = WRITE_ERRORS.get(refused.reason, ("device", "operationalProblem"))
                raise ExecutionError(errorClass=error_class, errorCode=error_code) from None
            site.priorities[(address, key)] = slots
            self.counters["writes"] += 1

    # time synchronization (the gateway device only) -----------------------------
    async def do_TimeSynchronizationRequest(self, apdu):
        self.site.time_sync(apdu.time, local=True, source=peer(apdu.pduSource))

    async def do_UTCTimeSynchronizationRequest(self, apdu):
        self.site.time_sync(apdu.time, local=False, source=peer(apdu.pduSource))


def peer(address):
    """How the event log names a BACnet sender: IP:port (the port even when it is 47808), else network:MAC."""
    tup = getattr(address, "addrTuple", None)
    return "%s:%d" % tup if tup else str(address)
