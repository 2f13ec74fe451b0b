"""pysnmp's side of the OID index: a MIB instrumentation controller and an async SET responder.

pysnmp (SNMPv3/USM, SET, anything the fast path defers) reads through
``IndexInstrum``, which answers from the same OID index as the fast path,
with pysnmp's VACM checks (``acFun``) applied to every instance.

pysnmp's own SetCommandResponder calls the instrumentation synchronously;
a SET here waits for a meter on a serial bus, so ``AsyncSetResponder``
checks the request at once (answering errors right away) and sends the
response when the writes have finished, without blocking the loop.
"""

import asyncio
import logging

from pysnmp.entity.rfc3413 import cmdrsp
from pysnmp.proto import rfc1902, rfc1905
from pysnmp.proto.api import v2c
from pysnmp.smi import error as smi_error
from pysnmp.smi.instrum import AbstractMibInstrumController

from protocols.snmp import ber, setops

log = logging.getLogger("gateway.snmp")

_CONVERT = {
    ber.INTEGER: rfc1902.Integer32,
    ber.OCTET_STRING: rfc1902.OctetString,
    ber.OBJECT_IDENTIFIER: rfc1902.ObjectIdentifier,
    ber.COUNTER32: rfc1902.Counter32,
    ber.GAUGE32: rfc1902.Gauge32,
    ber.TIMETICKS: rfc1902.TimeTicks,
    ber.COUNTER64: rfc1902.Counter64,
}


def to_pyasn1(tag, value):
    return _CONVERT[tag](value)


class IndexInstrum(AbstractMibInstrumController):
    """Reads for pysnmp's GET / GETNEXT / GETBULK responders."""

    def __init__(self, index):
        self.index = index

    @staticmethod
    def _not_in_view(name, value, context, idx):
        ac = context.get("acFun")
        if ac is None:
            return False
        context["idx"] = idx
        return bool(ac("read", (name, value), **context))

    def read_variables(self, *var_binds, **context):
        index = self.index
        index.refresh()
        out = []
        for idx, (name, _value) in enumerate(var_binds):
            oid = tuple(name)
            found = index.get(oid)
            if found is None:
                out.append((name, rfc1905.noSuchInstance if index.is_object(oid) else rfc1905.noSuchObject))
                continue
            value = to_pyasn1(found[1], found[2])
            if self._not_in_view(name, value, context, idx):
                out.append((name, rfc1905.noSuchObject))
            else:
                out.append((name, value))
        return out

    def read_next_variables(self, *var_binds, **context):
        index = self.index
        index.refresh()
        out = []
        for idx, (name, _value) in enumerate(var_binds):
            oid = tuple(name)
            while True:
                found = index.next(oid)
                if found is None:
                    out.append((name, rfc1905.endOfMibView))
                    break
                oid = found[0]
                value = to_pyasn1(found[2], found[3])
                try:
                    if self._not_in_view(rfc1902.ObjectName(oid), value, context, idx):
                        continue
                except smi_error.NoAccessError:     # v1 manager and a Counter64: skip (RFC 3584)
                    continue
                out.append((rfc1902.ObjectName(oid), value))
                break
        return out

    def write_variables(self, *var_binds, **context):
        raise smi_error.NotWritableError(idx=0)     # SETs go through AsyncSetResponder


class AsyncSetResponder(cmdrsp.SetCommandResponder):
    """SET: synchronous checks, asynchronous writes, one response."""

    max_pending = 32        # SETs waiting for a bus at once; more answer resourceUnavailable

    def __init__(self, snmp_engine, snmp_context, service):
        cmdrsp.SetCommandResponder.__init__(self, snmp_engine, snmp_context)
        self.service = service
        self._deferred = set()
        self.tasks = set()

    def handle_management_operation(self, snmpEngine, stateReference, contextName, PDU):
        var_binds = v2c.apiPDU.get_varbinds(PDU)
        context = dict(snmpEngine=snmpEngine, acFun=self.verify_access, cbCtx=self.cbCtx)

        def access_check(i, name, value):
            context["idx"] = i
            try:
                return not self.verify_access("write", (name, value), **context)
            except smi_error.AuthorizationError:
                return False

        self.service.index.refresh()
        if len(self.tasks) >= self.max_pending:
            self.service.note_set("resourceUnavailable")
            self.send_varbinds(snmpEngine, stateReference, "resourceUnavailable", 1, var_binds)
            return
        try:
            writes = setops.plan(self.service.door, self.service.index, var_binds, access_check)
        except setops.SetRefused as refused:
            self.service.note_set(refused.status)
            self.send_varbinds(snmpEngine, stateReference, refused.status, refused.index + 1, var_binds)
            return
        self._deferred.add(stateReference)
        task = asyncio.get_running_loop().create_task(self._finish(snmpEngine, stateReference, writes, var_binds))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _finish(self, snmp_engine, state_reference, writes, var_binds):
        status, index = 0, 0
        try:
            await setops.apply(self.service.door, writes)
        except setops.SetRefused as refused:
            status, index = refused.status, refused.index + 1
        except Exception:
            log.exception("SET failed")
            status, index = "genErr", 1
        self.service.note_set(status or "noError")
        self._deferred.discard(state_reference)
        try:
            self.send_varbinds(snmp_engine, state_reference, status, index, var_binds)
        except Exception:
            log.exception("cannot send the SET response")
        self.release_state_information(state_reference)

    def release_state_information(self, stateReference):
        if stateReference in self._deferred:
            return       # the response is still to come (_finish)
        cmdrsp.SetCommandResponder.release_state_information(self, stateReference)
