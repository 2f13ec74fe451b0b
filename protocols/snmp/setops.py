"""SET: check every varbind first, then act — on the meter through the one write door.

A SetRequest changes nothing unless every varbind passes: write credentials
(VACM write view), the door's rights and policy check (``policy.modbus_write``),
a writable object, a value of the right type and range. Only then are the
writes sent, through the door: device values with ``Door.write_value`` (the
bus engine, pass-through priority), MIB-II sysContact/sysName/sysLocation
with one ``Door.set_settings``, gwDevMinMaxReset with ``Door.reset_extremes``
(nothing reaches the device). Refusals map to RFC 3416 error statuses:

| cause                                   | error-status   |
| --------------------------------------- | -------------- |
| read-only credentials, policy off       | noAccess       |
| object read-only or unknown             | notWritable    |
| writable column, no such device/load    | noCreation     |
| wrong ASN.1 type                        | wrongType      |
| text of the wrong length                | wrongLength    |
| value out of range (output not 0/1)     | wrongValue     |
| device silent or refusing at commit     | commitFailed   |
"""

from pyasn1.type import univ
from pysnmp.proto import rfc1902

from daemon import api
from daemon.state import settings as settings_mod

_INTEGER_TYPES = (rfc1902.Integer32, rfc1902.Unsigned32, rfc1902.Gauge32, univ.Integer)


class SetRefused(Exception):
    def __init__(self, status, index):
        Exception.__init__(self, status)
        self.status = status      # RFC 3416 error-status name
        self.index = index        # 0-based varbind index


# the door's refusals -> RFC 3416 error status
_REFUSAL_STATUS = {api.POLICY: "noAccess", api.RIGHTS: "noAccess", api.NO_DEVICE: "noCreation",
                   api.NOT_WRITABLE: "notWritable", api.BAD_VALUE: "wrongValue"}
# what each kind of SET target asks of the door (rights and policy), before anything else
_COMMAND = {"setting": "set_settings", "minmax_reset": "reset_extremes", "device": "write_value"}


def plan(door, index, varbinds, access_check):
    """Check every varbind; returns the list of writes or raises SetRefused.

    ``access_check(i, name, value)`` returns False when the credentials may
    not write (VACM notInView) and raises for other VACM failures.
    """
    writes = []
    for i, (name, value) in enumerate(varbinds):
        oid = tuple(name)
        if not access_check(i, name, value):
            raise SetRefused("noAccess", i)
        target = index.writer(oid)
        try:
            door.check(_COMMAND[target[0]] if target is not None else "write_value")
        except api.Refused:
            raise SetRefused("noAccess", i) from None
        if target is None:
            raise SetRefused("noCreation" if index.writable_object(oid) and index.get(oid) is None
                             else "notWritable", i)
        if target[0] == "setting":
            if not isinstance(value, univ.OctetString) or isinstance(value, rfc1902.IpAddress):
                raise SetRefused("wrongType", i)
            try:
                text = bytes(value).decode("utf-8")
                door.check_settings({target[1]: text})
            except api.Refused as exc:
                if exc.reason != api.BAD_VALUE:
                    raise SetRefused("noAccess", i) from None
                bounds = settings_mod.row(target[1])[settings_mod.BOUNDS]
                status = "wrongLength" if not bounds[0] <= len(text) <= bounds[1] else "wrongValue"
                raise SetRefused(status, i) from None
            except UnicodeDecodeError:
                raise SetRefused("wrongValue", i) from None
            writes.append(("setting", i, target[1], text))
        elif target[0] == "minmax_reset":
            if not isinstance(value, _INTEGER_TYPES) or isinstance(value, (rfc1902.TimeTicks, rfc1902.Counter32,
                                                                          rfc1902.Counter64)):
                raise SetRefused("wrongType", i)
            if int(value) != 1:
                raise SetRefused("wrongValue", i)
            writes.append(("minmax_reset", i, target[1], 1))
        else:
            _kind, address, load, key = target
            if not isinstance(value, _INTEGER_TYPES) or isinstance(value, (rfc1902.TimeTicks, rfc1902.Counter32,
                                                                          rfc1902.Counter64)):
                raise SetRefused("wrongType", i)
            number = int(value)
            try:
                door.check_write(address, load, key, number)
            except api.Refused as exc:
                raise SetRefused(_REFUSAL_STATUS.get(exc.reason, "genErr"), i) from None
            writes.append(("device", i, (address, load, key), number))
    return writes


async def apply(door, writes):
    """Send the checked writes; raises SetRefused(commitFailed) when one fails."""
    changes = dict((w[2], w[3]) for w in writes if w[0] == "setting")
    for kind, i, target, value in writes:
        if kind != "device":
            continue
        address, load, key = target
        try:
            await door.write_value(address, load, key, value)
        except api.Refused as exc:
            # a device that did not answer or refused (no entry in the table): commitFailed
            raise SetRefused(_REFUSAL_STATUS.get(exc.reason, "commitFailed"), i) from None
    for kind, i, address, _value in writes:
        if kind == "minmax_reset":
            try:
                door.reset_extremes(address)
            except api.Refused:
                raise SetRefused("commitFailed", i) from None
    if changes:
        try:
            await door.set_settings(changes)
        except (api.Refused, OSError):
            first = min(w[1] for w in writes if w[0] == "setting")
            raise SetRefused("commitFailed", first) from None

